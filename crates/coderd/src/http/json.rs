//! JSON in and out the way Coder's Go server does it: bodies decoded leniently (unknown fields
//! ignored, `null` = zero value, any content type), answers encoded with HTML escaping and a
//! trailing newline.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub use super::encode::{json_response, to_go_json};
use super::error::ApiError;

/// Largest JSON body accepted (file uploads have their own limit).
pub const MAX_JSON_BODY: usize = 1 << 20;

/// A JSON answer with a status.
pub struct Json<T>(pub StatusCode, pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        json_response(self.0, &self.1)
    }
}

/// An answer of `T` already encoded as [`to_go_json`] encodes it (trailing newline included),
/// or still a value: handlers that assemble answers from kept bytes return this.
pub enum Encoded<T> {
    Bytes(Vec<u8>),
    Value(T),
}

impl<T: Serialize> IntoResponse for Encoded<T> {
    fn into_response(self) -> Response {
        match self {
            Encoded::Value(v) => json_response(StatusCode::OK, &v),
            Encoded::Bytes(bytes) => {
                let mut resp = (StatusCode::OK, bytes).into_response();
                resp.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json; charset=utf-8"),
                );
                resp
            }
        }
    }
}

pub fn ok<T: Serialize>(value: T) -> Json<T> {
    Json(StatusCode::OK, value)
}

pub fn created<T: Serialize>(value: T) -> Json<T> {
    Json(StatusCode::CREATED, value)
}

/// Answers `codersdk.Response` with just a message.
pub fn message(status: StatusCode, msg: &str) -> Response {
    json_response(
        status,
        &codersdk::Response {
            message: msg.into(),
            ..Default::default()
        },
    )
}

/// A request body decoded like Go's `encoding/json`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Serialize> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        decode(&bytes).map(Body)
    }
}

/// A decoded body with the bytes it came from, for what decoding loses (a map member that is
/// `null` is an entry with the zero value in Go; decoding here drops it).
pub struct BodyWithRaw<T>(pub T, pub Bytes);

impl<S: Send + Sync, T: DeserializeOwned + Serialize> FromRequest<S> for BodyWithRaw<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        decode(&bytes).map(|t| BodyWithRaw(t, bytes))
    }
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large.")
                .with_detail(format!("The limit is {MAX_JSON_BODY} bytes."))
        } else {
            ApiError::bad_request("Failed to read the request body.").with_detail(rej.body_text())
        }
    })
}

pub fn decode<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, ApiError> {
    let invalid = |e: serde_json::Error| {
        ApiError::bad_request("Request body must be valid JSON.").with_detail(e.to_string())
    };
    let mut value: Value = serde_json::from_slice(bytes).map_err(invalid)?;
    // Every request body is an object. serde would also fill a struct from a list, by
    // position (`[null, null]` was an empty template update); Go's decoder refuses it.
    if let Some(kind) = not_an_object(&value) {
        return Err(ApiError::bad_request("Request body must be valid JSON.")
            .with_detail(format!("The body must be a JSON object, not {kind}.")));
    }
    strip_nulls(&mut value);
    let decoded: T = serde_json::from_value(value).map_err(invalid)?;
    // A NUL can only arrive escaped (`\u0000`; raw control characters are not JSON), so most
    // bodies skip the walk. Only what the request type reads is looked at: members it ignores
    // may hold anything, as Go's decoder ignores them.
    if bytes.windows(6).any(|w| w == b"\\u0000") {
        let read = serde_json::to_value(&decoded).unwrap_or(Value::Null);
        if let Some(field) = nul_holder(&read, "") {
            return Err(ApiError::bad_request("Validation failed.").with_validation(
                field,
                "Must not contain a NUL character (\\u0000): it cannot be stored.",
            ));
        }
    }
    Ok(decoded)
}

fn not_an_object(v: &Value) -> Option<&'static str> {
    match v {
        Value::Object(_) => None,
        Value::Array(_) => Some("a list"),
        Value::String(_) => Some("a string"),
        Value::Number(_) => Some("a number"),
        Value::Bool(_) => Some("a boolean"),
        Value::Null => Some("null"),
    }
}

/// The dotted path of the first member whose name or string value holds a NUL character,
/// which PostgreSQL's `text` and `jsonb` cannot store (`""` for the document itself).
fn nul_holder(v: &Value, at: &str) -> Option<String> {
    let join = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match v {
        Value::String(s) if s.contains('\0') => Some(at.to_string()),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "")))
            } else {
                nul_holder(v, &join(k))
            }
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_holder(v, &join(&i.to_string()))),
        _ => None,
    }
}

/// Go leaves a field at its zero value when the JSON says `null`; dropping null members lets
/// `#[serde(default)]` do the same.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html_like_go() {
        let out = to_go_json(&serde_json::json!({"a": "<b>&"}));
        assert_eq!(out, b"{\"a\":\"\\u003cb\\u003e\\u0026\"}\n");
    }

    #[derive(serde::Deserialize, serde::Serialize, Default, Debug)]
    #[serde(default)]
    struct Req {
        name: String,
        n: i64,
    }

    #[test]
    fn null_means_zero_value() {
        let r: Req = decode(br#"{"name": null, "n": 3, "extra": 1}"#).unwrap();
        assert_eq!((r.name.as_str(), r.n), ("", 3));
    }

    #[test]
    fn nul_characters_are_refused_with_their_field() {
        let err = decode::<Value>(br#"{"a": {"b": ["x", "y\u0000"]}}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.body.message, "Validation failed.");
        assert_eq!(err.body.validations[0].field, "a.b.1");
        let err = decode::<Value>(br#"{"k\u0000": 1}"#).unwrap_err();
        assert_eq!(err.body.validations[0].field, "k");
        assert!(decode::<Value>(br#"{"a": "\u0001"}"#).is_ok());
    }

    #[test]
    fn nul_characters_in_ignored_members_are_ignored() {
        // Go's decoder ignores members the type has no field for, whatever they hold.
        let r: Req = decode(br#"{"name": "x", "junk": "a\u0000", "k\u0000": 1}"#).unwrap();
        assert_eq!(r.name, "x");
        let err = decode::<Req>(br#"{"name": "a\u0000"}"#).unwrap_err();
        assert_eq!(err.body.validations[0].field, "name");
    }

    #[test]
    fn only_an_object_is_a_body() {
        for body in [
            &b"[null, null]"[..],
            b"[]",
            b"null",
            b"\"x\"",
            b"3",
            b"true",
        ] {
            let err = decode::<Req>(body).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert_eq!(err.body.message, "Request body must be valid JSON.");
        }
    }

    #[test]
    fn wrong_type_is_a_bad_request() {
        let err = decode::<Req>(br#"{"name": 5}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.body.message, "Request body must be valid JSON.");
        assert!(
            err.body.detail.contains("invalid type"),
            "{}",
            err.body.detail
        );
    }
}
