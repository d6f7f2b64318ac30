//! Layers every response passes through: the request log and the standard headers.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::auth::LoggedUser;

/// The server's version, as sent in `X-Coder-Build-Version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One log line per request (method, path, status, latency, request id, user), plus the
/// headers Coder puts on every response.
pub async fn log_and_headers(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = Uuid::new_v4();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let mut resp = next.run(req).await;
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
    tracing::info!(
        target: "coderd::http",
        %method,
        path,
        route = route.as_deref().unwrap_or(""),
        status,
        latency_ms = format!("{latency_ms:.2}"),
        request_id = %request_id,
        user_id = user.as_deref().unwrap_or(""),
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
