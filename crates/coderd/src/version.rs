//! The version this server reports to clients (`/buildinfo`, `X-Coder-Build-Version`).
//!
//! Coder's clients compare the server's version with their own: the CLI warns on every
//! command unless both have the same `vMAJOR.MINOR` (or either is a `v0.0.0` dev build),
//! JetBrains compares major, minor and patch, and VS Code needs valid semver. So the server
//! reports the upstream release whose `/api/v2` it implements, with its own version as
//! semver build metadata, which every comparison ignores (docs/decisions.md, "Versions").

use axum::http::HeaderValue;
use axum::response::Response;

/// The upstream Coder release whose API this server implements (the CLI the tests run).
pub const API_LEVEL: &str = "2.30.0";

/// What clients are told: `v<API level>+coderd-rs.<our version>`, e.g. `v2.30.0+coderd-rs.0.1.0`.
pub const BUILD_VERSION: &str = concat!("v2.30.0+coderd-rs.", env!("CARGO_PKG_VERSION"));

/// Puts the build version on a response, replacing any other.
pub async fn stamp(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        codersdk::BUILD_VERSION_HEADER,
        HeaderValue::from_static(BUILD_VERSION),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_version_starts_with_the_api_level() {
        assert!(BUILD_VERSION.starts_with(&format!("v{API_LEVEL}+")));
        assert!(BUILD_VERSION.ends_with(env!("CARGO_PKG_VERSION")));
    }
}
