//! Swagger UI at `/swagger`, on the server's own document (`/api/v2/openapi.json`). Its files
//! (`assets/swagger-ui/`, see the README there) are built into the binary: the page works with
//! no network beyond this server. `CODER_SWAGGER_ENABLE=false` turns it off (404).

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::http::json::message;
use crate::state::AppState;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: OnceLock<HeaderValue>,
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/swagger-ui/", $name)),
            etag: OnceLock::new(),
        }
    };
}

/// The page comes first; the rest is what it loads.
static ASSETS: [Asset; 7] = [
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("swagger-initializer.js", "text/javascript; charset=utf-8"),
    asset!("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    asset!(
        "swagger-ui-bundle.js.LICENSE.txt",
        "text/plain; charset=utf-8"
    ),
    asset!("swagger-ui.css", "text/css; charset=utf-8"),
    asset!("favicon-16x16.png", "image/png"),
    asset!("favicon-32x32.png", "image/png"),
];

/// Routes for the page (`/swagger`, `/swagger/`, `/swagger/index.html`) and its files. Any
/// other path under `/swagger/` falls through to the app's JSON 404.
pub fn routes() -> Router<AppState> {
    let page = &ASSETS[0];
    let mut router = Router::new()
        .route("/swagger", get(move |s, h| serve(s, h, page)))
        .route("/swagger/", get(move |s, h| serve(s, h, page)));
    for asset in &ASSETS {
        router = router.route(
            &format!("/swagger/{}", asset.name),
            get(move |s, h| serve(s, h, asset)),
        );
    }
    router
}

/// Answers with the file, or 304 when the client's copy is current. Browsers revalidate every
/// time (`no-cache`): a new binary may carry new files under the same names, and the check
/// costs a 304 without a body.
async fn serve(
    State(state): State<AppState>,
    headers: HeaderMap,
    asset: &'static Asset,
) -> Response {
    if !state.config.swagger_enable {
        return message(StatusCode::NOT_FOUND, "Route not found.");
    }
    let etag = asset.etag.get_or_init(|| {
        let hash = hex::encode(&Sha256::digest(asset.body)[..16]);
        HeaderValue::from_str(&format!("\"{hash}\"")).expect("a hex ETag is a valid header")
    });
    let cache = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    if headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|v| matches_etag(v, etag))
    {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.body,
    )
        .into_response()
}

/// Whether an `If-None-Match` value (`*`, or a list of possibly weak tags) names `etag`.
fn matches_etag(if_none_match: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(list) = if_none_match.to_str() else {
        return false;
    };
    list.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == etag.as_bytes()
    })
}
