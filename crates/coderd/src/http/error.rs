//! One error type for every handler, rendered as a `codersdk.Response`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coderd_db::StoreError;
use codersdk::ValidationError;

use super::encode::json_response;

/// An error answered to the client. Internal causes are logged, never sent.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: codersdk::Response,
    /// What went wrong, for callers that act on the error rather than answer it.
    pub kind: ErrorKind,
    /// The cause that was logged and not sent, for the request's access log line.
    cause: Option<String>,
    /// The unique constraint whose violation this is the default answer to, so that
    /// [`ApiError::on_constraint`] can answer it better; never sent.
    constraint: Option<Box<str>>,
}

/// A response's internal cause (see [`ApiError::internal`]), put in its extensions for the
/// access log line; never sent.
#[derive(Clone, Debug)]
pub struct ErrorCause(pub String);

/// The errors a caller may act on; the rest are `Other`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorKind {
    #[default]
    Other,
    /// A rich parameter value is missing or fails its validation.
    InvalidParameter,
}

pub type ApiResult<T> = Result<T, ApiError>;

pub const NOT_FOUND_MESSAGE: &str = "Resource not found or you do not have access to this resource";
const INTERNAL_MESSAGE: &str = "An internal server error occurred.";
/// What a request (and a watcher's error event) says while the database cannot be reached.
pub const DATABASE_UNAVAILABLE_MESSAGE: &str = "The database is unavailable.";
/// Seconds a client is asked to wait (`Retry-After`) before trying again after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 5;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: codersdk::Response {
                message: message.into(),
                ..Default::default()
            },
            kind: ErrorKind::Other,
            cause: None,
            constraint: None,
        }
    }

    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// What a caller sees for a missing resource and for one it may not read: the same answer.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, NOT_FOUND_MESSAGE)
    }

    /// The caller can read the resource but may not do this to it.
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden.").with_detail(
            "You don't have permission to view this content. If you believe this is a mistake, \
             please contact your administrator or try signing in with different credentials.",
        )
    }

    /// Logs `cause` with `context` and answers 500 without revealing the cause.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "{context}");
        let mut err = Self::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_MESSAGE).with_detail(
            format!("{context}. The cause has been logged by the server."),
        );
        err.cause = Some(format!("{context}: {cause}"));
        err
    }

    /// 503: the database cannot be reached right now (logged with `context`); answered with
    /// `Retry-After`.
    pub fn database_unavailable(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "{context}: the database is unavailable");
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            DATABASE_UNAVAILABLE_MESSAGE,
        )
        .with_detail(format!(
            "The server cannot reach its database. Try again in {RETRY_AFTER_SECONDS} seconds."
        ));
        err.cause = Some(format!("{context}: the database is unavailable: {cause}"));
        err
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.body.detail = detail.into();
        self
    }

    pub fn with_validation(mut self, field: impl Into<String>, detail: impl Into<String>) -> Self {
        self.body.validations.push(ValidationError {
            field: field.into(),
            detail: detail.into(),
        });
        self
    }

    /// 400 "Validation failed." in the go-playground validator's words.
    pub fn validation_tag(field: &str, tag: &str, value: &str) -> Self {
        Self::bad_request("Validation failed.").with_validation(field, tag_detail(tag, value))
    }

    /// 409 for a value that must be unique.
    pub fn duplicate(message: impl Into<String>, field: &str) -> Self {
        Self::conflict(message)
            .with_validation(field, "This value is already in use and should be unique.")
    }

    /// When this is the default answer to a violation of unique constraint `constraint`:
    /// [`ApiError::duplicate`]`(message, field)` instead. Anything else is left as it is.
    pub fn on_constraint(self, constraint: &str, field: &str, message: impl Into<String>) -> Self {
        match &self.constraint {
            Some(c) if **c == *constraint => Self::duplicate(message, field),
            _ => self,
        }
    }

    /// Like [`ApiError::on_constraint`], for a violation of any unique constraint.
    pub fn on_conflict(self, field: &str, message: impl Into<String>) -> Self {
        match self.constraint {
            Some(_) => Self::duplicate(message, field),
            None => self,
        }
    }
}

/// [`ApiError::on_constraint`] and [`ApiError::on_conflict`] on a result, usually a store
/// call's: `store.insert_group(..).await.on_conflict("name", "A group named .. exists.")?`.
pub trait ConflictExt<T> {
    fn on_constraint(
        self,
        constraint: &str,
        field: &str,
        message: impl Into<String>,
    ) -> ApiResult<T>;
    fn on_conflict(self, field: &str, message: impl Into<String>) -> ApiResult<T>;
}

impl<T, E: Into<ApiError>> ConflictExt<T> for Result<T, E> {
    fn on_constraint(
        self,
        constraint: &str,
        field: &str,
        message: impl Into<String>,
    ) -> ApiResult<T> {
        self.map_err(|e| e.into().on_constraint(constraint, field, message))
    }

    fn on_conflict(self, field: &str, message: impl Into<String>) -> ApiResult<T> {
        self.map_err(|e| e.into().on_conflict(field, message))
    }
}

pub fn tag_detail(tag: &str, value: &str) -> String {
    format!("Validation failed for tag {tag:?} with value: {value:?}")
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::not_found(),
            // The constraint's name is the schema's business: kept for `on_constraint`, not sent.
            StoreError::Conflict(constraint) => ApiError {
                constraint: Some(constraint.into()),
                ..ApiError::conflict("The resource conflicts with an existing one.")
                    .with_detail("A value that must be unique is already in use.")
            },
            e if e.is_unavailable() => ApiError::database_unavailable("Database query failed", e),
            StoreError::Database(e) => ApiError::internal("Database query failed", e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = json_response(self.status, &self.body);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(RETRY_AFTER_SECONDS),
            );
        }
        if let Some(cause) = self.cause {
            resp.extensions_mut().insert(ErrorCause(cause));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violated(constraint: &str) -> ApiResult<()> {
        Err(StoreError::Conflict(constraint.into()).into())
    }

    #[test]
    fn the_default_conflict_names_no_constraint() {
        let e = violated("users_email_lower_idx").unwrap_err();
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert!(!e.body.detail.contains("users_email_lower_idx"), "{e:?}");
        assert!(e.body.validations.is_empty());
    }

    #[test]
    fn a_named_constraint_answers_its_field() {
        let answer = |c: &str| {
            violated(c)
                .on_constraint("users_email_lower_idx", "email", "User already exists.")
                .on_conflict("username", "User already exists.")
                .unwrap_err()
        };
        assert_eq!(
            answer("users_email_lower_idx").body.validations[0].field,
            "email"
        );
        assert_eq!(
            answer("users_username_lower_idx").body.validations[0].field,
            "username"
        );
        let other: ApiResult<()> = Err(ApiError::not_found());
        let e = other.on_conflict("name", "taken").unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }
}
