//! Answers encoded the way Coder's Go server encodes them: HTML escaping and a trailing
//! newline.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Serializes `value` as Go's `json.Encoder` would, escaping `<`, `>` and `&`.
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, HtmlEscaping);
    if let Err(e) = value.serialize(&mut ser) {
        tracing::error!(error = %e, "serializing a response");
        out.clear();
        out.extend_from_slice(br#"{"message":"An internal server error occurred."}"#);
    }
    out.push(b'\n');
    out
}

pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    let mut resp = (status, to_go_json(value)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

struct HtmlEscaping;

impl serde_json::ser::Formatter for HtmlEscaping {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, b) in fragment.bytes().enumerate() {
            let esc: &[u8] = match b {
                b'<' => b"\\u003c",
                b'>' => b"\\u003e",
                b'&' => b"\\u0026",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(esc)?;
            start = i + 1;
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}
