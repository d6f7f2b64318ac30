//! Layers every response passes through: the request log and the standard headers.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::{Authn, LoggedUser};
use crate::http::error::{ApiError, ErrorCause};
use crate::state::AppState;

/// The server's version, as sent in `X-Coder-Build-Version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs the request in its span (see [`crate::traces::request_span`]) and logs one line for it
/// (method, path, status, latency, request id, user, and the internal cause of an error
/// answer), plus the headers Coder puts on every response.
pub async fn log_and_headers(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = Uuid::new_v4();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let span =
        crate::traces::request_span(method.as_str(), route.as_deref().unwrap_or(""), request_id);
    let mut resp = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", resp.status().as_u16());
    let h = resp.headers_mut();
    h.insert(
        codersdk::BUILD_VERSION_HEADER,
        HeaderValue::from_static(VERSION),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id.to_string()) {
        h.insert("x-request-id", v);
    }
    let user = resp
        .extensions()
        .get::<LoggedUser>()
        .map(|u| u.0.to_string());
    let status = resp.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let error = resp.extensions().get::<ErrorCause>().map(|c| c.0.as_str());
    tracing::info!(
        target: "coderd::http",
        %method,
        path,
        route = route.as_deref().unwrap_or(""),
        status,
        latency_ms = format!("{latency_ms:.2}"),
        request_id = %request_id,
        user_id = user.as_deref().unwrap_or(""),
        error,
        "request"
    );
    resp
}

/// Answers 400 for a URL holding text the database cannot store (see `check_url_text`).
pub async fn refuse_unstorable_url(req: Request, next: Next) -> Response {
    match crate::http::params::check_url_text(req.uri().path(), req.uri().query()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

// Rate limits (`crate::ratelimit` keeps the counters).

#[derive(Clone, Copy)]
pub enum Which {
    Api,
    Login,
    Files,
}

async fn limit(which: Which, state: AppState, req: Request, next: Next) -> Response {
    let limiter = match which {
        Which::Api => &state.limits.api,
        Which::Login => &state.limits.login,
        Which::Files => &state.limits.files,
    };
    if !limiter.enabled() {
        return next.run(req).await;
    }
    let actor = match req.extensions().get::<Authn>() {
        Some(Authn::Authenticated(a)) => Some(a.clone()),
        _ => None,
    };
    let bypass = req
        .headers()
        .get(codersdk::BYPASS_RATELIMIT_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if bypass {
        if actor.as_ref().is_some_and(|a| a.is_owner()) {
            return next.run(req).await;
        }
        return ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "Only owners may bypass rate limits.",
        )
        .into_response();
    }
    let who = match &actor {
        Some(a) => a.user_id.to_string(),
        None => crate::proxy::client_ip(req.extensions())
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
    };
    let key = format!("{who}|{}", req.uri().path());
    let d = limiter.check(&key);
    let mut resp = if d.allowed {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "You've been rate limited for sending more than {} requests in 1m0s.",
                d.limit
            ),
        )
        .into_response()
    };
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", d.limit.to_string()),
        ("x-ratelimit-remaining", d.remaining.to_string()),
        ("x-ratelimit-reset", d.reset_secs.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

pub async fn api_limit(State(s): State<AppState>, req: Request, next: Next) -> Response {
    limit(Which::Api, s, req, next).await
}

pub async fn login_limit(State(s): State<AppState>, req: Request, next: Next) -> Response {
    limit(Which::Login, s, req, next).await
}

pub async fn files_limit(State(s): State<AppState>, req: Request, next: Next) -> Response {
    limit(Which::Files, s, req, next).await
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;
    use crate::http::error::ApiError;

    /// JSON log lines written to memory by this thread's subscriber, while the guard lives.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn start() -> (Captured, tracing::subscriber::DefaultGuard) {
            let logs = Captured::default();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_writer(logs.clone())
                .finish();
            (logs.clone(), tracing::subscriber::set_default(subscriber))
        }

        fn lines(&self) -> (String, Vec<serde_json::Value>) {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            let lines = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            (text, lines)
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    async fn get_through_the_log(app: Router, path: &str) -> Response {
        app.layer(axum::middleware::from_fn(log_and_headers))
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_500_is_logged_in_its_request_and_its_cause_is_on_the_access_line() {
        let (logs, _guard) = Captured::start();
        let sql_error = r#"relation "things" does not exist"#;
        let app =
            Router::new().route(
                "/things",
                get(move || async move {
                    Err::<(), _>(ApiError::internal("Reading things", sql_error))
                }),
            );
        let resp = get_through_the_log(app, "/things").await;
        assert_eq!(resp.status(), 500);
        let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            !body.contains("relation"),
            "the cause reached the client: {body}"
        );

        let (text, lines) = logs.lines();
        let logged = lines
            .iter()
            .find(|l| l["level"] == "ERROR")
            .unwrap_or_else(|| panic!("no error logged: {text}"));
        assert_eq!(logged["message"], "Reading things", "{text}");
        assert_eq!(logged["span"]["request_id"], request_id, "{text}");
        let access = lines
            .iter()
            .find(|l| l["message"] == "request")
            .unwrap_or_else(|| panic!("no access line: {text}"));
        assert_eq!(access["request_id"], request_id, "{text}");
        assert_eq!(access["status"], 500, "{text}");
        assert_eq!(
            access["error"],
            format!("Reading things: {sql_error}"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_answer_without_an_internal_cause_has_no_error_on_its_access_line() {
        let (logs, _guard) = Captured::start();
        let app = Router::new().route(
            "/missing",
            get(|| async { Err::<(), _>(ApiError::not_found()) }),
        );
        assert_eq!(get_through_the_log(app, "/missing").await.status(), 404);
        let (text, lines) = logs.lines();
        let access = lines
            .iter()
            .find(|l| l["message"] == "request")
            .unwrap_or_else(|| panic!("no access line: {text}"));
        assert_eq!(access["status"], 404, "{text}");
        assert!(access.get("error").is_none(), "{text}");
    }
}
