//! The server's own OpenAPI 3.1 document, generated from the wire types and the route table.
//! The checked-in copy lives in `openapi/openapi.json`; a test fails when they differ.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, ServerBuilder};

/// Name of the security scheme every authenticated operation requires.
pub const SECURITY_SCHEME: &str = "CoderSessionToken";

/// Builds the document.
pub fn document() -> OpenApi {
    let components = ComponentsBuilder::new()
        .security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                codersdk::SESSION_TOKEN_HEADER,
            ))),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("coderd-rs API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Coder's /api/v2, as served by coderd-rs. Authenticate with a session \
                     token in the Coder-Session-Token header.",
                ))
                .build(),
        )
        .servers(Some(vec![ServerBuilder::new().url("/api/v2").build()]))
        .components(Some(components))
        .build()
}

/// The document as pretty JSON, as checked in under `openapi/`.
pub fn document_json() -> String {
    let mut s = document()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    s.push('\n');
    s
}

/// `GET /api/v2/openapi.json`.
pub async fn serve() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(document_json).clone();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
