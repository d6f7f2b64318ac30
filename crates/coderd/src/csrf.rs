//! Cross-site request protection for cookie sessions: upstream's CSRF rule for `/api` requests
//! that change things, and an `Origin` check for WebSocket upgrades (a browser attaches the
//! session cookie to both, whichever site asked for them).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;
use crate::http::params::QueryParams;
use crate::state::AppState;

/// The cookie holding the CSRF token a browser page echoes in `X-CSRF-TOKEN`.
pub const CSRF_COOKIE: &str = "csrf_token";
const CSRF_HEADER: &str = "x-csrf-token";
const TOKEN_LEN: usize = 32;

const CSRF_FAILED: &str = "Something is wrong with your CSRF token. Please refresh the page. \
                           If this error persists, try clearing your cookies.";

/// Paths that never need a CSRF token (upstream's exemptions): the first user's creation,
/// agents, workspace proxies, DERP, SCIM and provisioner daemons authenticate otherwise.
fn exempt_path(path: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "/api/v2/users/first",
        "/api/v2/csp/reports",
        "/api/v2/workspaceagents/",
        "/api/v2/workspaceproxies/me/",
        "/api/v2/scim/",
        "/derp",
    ];
    if PREFIXES.iter().any(|p| path.starts_with(p)) {
        return true;
    }
    // /api/v2/organizations/{org}/provisionerdaemons/…
    path.strip_prefix("/api/v2/organizations/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(org, rest)| !org.is_empty() && rest.starts_with("provisionerdaemons"))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|part| part.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether `sent` (from `X-CSRF-TOKEN`) matches the token in the `csrf_token` cookie, in the
/// encoding the dashboard's CSRF library uses: the cookie holds the base64 of 32 random bytes;
/// the header holds those bytes, or (as pages usually send it) 32 bytes of one-time pad
/// followed by the token XOR the pad.
pub fn csrf_token_valid(cookie_value: &str, sent: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Ok(real) = b64.decode(cookie_value) else {
        return false;
    };
    let Ok(sent) = b64.decode(sent) else {
        return false;
    };
    if real.len() != TOKEN_LEN {
        return false;
    }
    let unmasked: Vec<u8> = match sent.len() {
        TOKEN_LEN => sent,
        n if n == 2 * TOKEN_LEN => {
            let (pad, masked) = sent.split_at(TOKEN_LEN);
            pad.iter().zip(masked).map(|(p, m)| p ^ m).collect()
        }
        _ => return false,
    };
    bool::from(unmasked.as_slice().ct_eq(&real))
}

/// Upstream's CSRF rule: a non-GET `/api` request that carries the session cookie must also
/// show it cannot have come from another site: the `Coder-Session-Token` header (or the
/// `coder_session_token` query parameter) equal to the cookie, a bearer token, a provisioner
/// key, or a valid `X-CSRF-TOKEN`. Otherwise 400.
pub async fn csrf(req: Request, next: Next) -> Response {
    match csrf_failure(&req) {
        None => next.run(req).await,
        Some(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

fn csrf_failure(req: &Request) -> Option<String> {
    let path = req.uri().path();
    if matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || !path.starts_with("/api")
        || exempt_path(path)
    {
        return None;
    }
    let headers = req.headers();
    let session = cookie(headers, codersdk::SESSION_TOKEN_COOKIE)?;
    let header_token = header_str(headers, codersdk::SESSION_TOKEN_HEADER);
    if header_token == Some(session.as_str()) {
        return None;
    }
    let query = QueryParams::parse(req.uri().query());
    if query.get(codersdk::SESSION_TOKEN_COOKIE) == Some(session.as_str()) {
        return None;
    }
    if headers.contains_key("coder-provisioner-daemon-psk")
        || headers.contains_key("coder-provisioner-daemon-key")
    {
        return None;
    }
    if header_str(headers, header::AUTHORIZATION.as_str())
        .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "))
    {
        return None;
    }
    if let (Some(sent), Some(real)) = (
        header_str(headers, CSRF_HEADER).filter(|s| !s.is_empty()),
        cookie(headers, CSRF_COOKIE),
    ) {
        if csrf_token_valid(&real, sent) {
            return None;
        }
    }
    if header_token.is_some_and(|t| !t.is_empty()) {
        // Cookie and header disagree: say so, as upstream does.
        return Some(format!(
            "CSRF error encountered. Authentication via {:?} cookie and {:?} header detected, \
             but the values do not match. To resolve this issue ensure the values used in both \
             match, or only use one of the authentication methods. You can also try clearing \
             your cookies if this error persists.",
            codersdk::SESSION_TOKEN_COOKIE,
            codersdk::SESSION_TOKEN_HEADER
        ));
    }
    Some(CSRF_FAILED.to_string())
}

/// The `host[:port]` of an origin or URL (`scheme://host[:port][/…]`), lower-cased.
fn authority(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Refuses (403) a WebSocket upgrade whose `Origin` is another site: it must be absent (not a
/// browser), the request's own `Host`, or the access URL's host. Browsers send the session
/// cookie on a cross-site WebSocket, and nothing else (no CORS) stops the page reading it.
pub async fn websocket_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // The relay takes no credentials (a cookie gains nothing there) and browsers reach it from
    // the dashboard's origin or any other, as upstream accepts any origin for it.
    if req.uri().path() == "/derp" {
        return next.run(req).await;
    }
    let headers = req.headers();
    let upgrade = header_str(headers, header::UPGRADE.as_str())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(origin) = header_str(headers, header::ORIGIN.as_str()).filter(|_| upgrade) else {
        return next.run(req).await;
    };
    let host = header_str(headers, header::HOST.as_str())
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            req.uri()
                .authority()
                .map(|a| a.as_str().to_ascii_lowercase())
        });
    let allowed = match authority(origin) {
        Some(o) => {
            host.as_deref() == Some(o.as_str()) || authority(&state.config.access_url) == Some(o)
        }
        None => false,
    };
    if allowed {
        return next.run(req).await;
    }
    ApiError::new(StatusCode::FORBIDDEN, "Failed to accept websocket.")
        .with_detail(format!(
            "request Origin {origin:?} is not authorized for Host {:?}",
            host.unwrap_or_default()
        ))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exemptions() {
        assert!(exempt_path("/api/v2/users/first"));
        assert!(exempt_path("/api/v2/workspaceagents/me/rpc"));
        assert!(exempt_path(
            "/api/v2/organizations/abc/provisionerdaemons/serve"
        ));
        assert!(!exempt_path("/api/v2/organizations/abc/members/me"));
        assert!(!exempt_path("/api/v2/users/me/keys/tokens"));
    }

    #[test]
    fn masked_and_plain_tokens() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let real = [7u8; 32];
        let pad = [0x5au8; 32];
        let masked: Vec<u8> = pad
            .iter()
            .copied()
            .chain(real.iter().zip(pad.iter()).map(|(r, p)| r ^ p))
            .collect();
        let cookie = b64.encode(real);
        assert!(csrf_token_valid(&cookie, &b64.encode(real)));
        assert!(csrf_token_valid(&cookie, &b64.encode(&masked)));
        assert!(!csrf_token_valid(&cookie, &b64.encode([8u8; 32])));
        assert!(!csrf_token_valid(&cookie, "not base64!"));
        assert!(!csrf_token_valid("short", &b64.encode(real)));
    }

    #[test]
    fn origin_authority() {
        assert_eq!(
            authority("https://Coder.Example.com:8443/x").as_deref(),
            Some("coder.example.com:8443")
        );
        assert_eq!(authority("null"), None);
    }
}
