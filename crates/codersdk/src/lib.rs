//! Coder's `/api/v2` wire types, field for field as Coder's JSON, and a typed client.
//!
//! Response types always serialize every field (null where Coder sends null, `[]` for empty
//! lists). Request types accept missing fields and `null` as the zero value, as Go's decoder does.

pub mod base64;
mod client;
mod templates;
mod types;
mod workspaces;

pub use client::{Client, ClientError};
pub use templates::*;
pub use types::*;
pub use workspaces::*;

/// Header that carries a session token.
pub const SESSION_TOKEN_HEADER: &str = "Coder-Session-Token";
/// Cookie (and query parameter) that carries a session token.
pub const SESSION_TOKEN_COOKIE: &str = "coder_session_token";
/// Header added to every response with the server's version.
pub const BUILD_VERSION_HEADER: &str = "X-Coder-Build-Version";
/// Header an owner may send to skip the API rate limit.
pub const BYPASS_RATELIMIT_HEADER: &str = "X-Coder-Bypass-Ratelimit";

/// OpenAPI schema of a field this server always sends as `null`.
fn always_null() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Null)
        .build()
}

/// OpenAPI schema of a map this server always sends empty.
fn always_empty_map() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .max_properties(Some(0))
        .build()
}
