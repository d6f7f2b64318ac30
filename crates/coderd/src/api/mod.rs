//! The `/api/v2` router: one module per resource, each with its `routes()`.

mod acl;
mod agents;
mod apikeys;
mod builds;
mod cliauth;
mod derp;
mod dynparams;
mod examples;
mod files;
mod general;
mod gitsshkey;
mod groups;
mod job_endpoints;
pub mod metrics;
pub mod openapi;
mod organizations;
mod provisioners;
mod resolve;
pub mod routes;
mod sessions;
mod streams;
pub mod templates;
mod templateversions;
mod users;
mod workspaces;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::http::json::{message, MAX_JSON_BODY};
use crate::state::AppState;

/// Every route of `/api/v2`, each declared once in its module with its OpenAPI operation.
pub fn all_routes() -> routes::Routes {
    let mut r = routes::Routes::default();
    general::routes(&mut r);
    users::routes(&mut r);
    gitsshkey::routes(&mut r);
    apikeys::routes(&mut r);
    organizations::routes(&mut r);
    groups::routes(&mut r);
    files::routes(&mut r);
    templates::routes(&mut r);
    templateversions::routes(&mut r);
    dynparams::routes(&mut r);
    provisioners::routes(&mut r);
    workspaces::routes(&mut r);
    builds::routes(&mut r);
    streams::routes(&mut r);
    agents::routes(&mut r);
    r.get("/openapi.json", serve_openapi)
        .op("General", "get-openapi-document", "This OpenAPI document")
        .public()
        .json(200, serde_json::json!({"type": "object"}));
    r
}

/// The OpenAPI document of [`all_routes`], as checked in under `openapi/`.
pub fn openapi_json() -> String {
    let routes = all_routes();
    openapi::document_json(routes.operations())
}

/// `GET /api/v2/openapi.json`.
async fn serve_openapi() -> Response {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = JSON.get_or_init(openapi_json).clone();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The whole HTTP application: `/healthz` and `/api/v2`.
pub fn router(state: AppState) -> Router {
    let api = all_routes()
        .into_router(&state)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(
            state.clone(),
            crate::middleware::api_limit,
        ))
        .layer(from_fn_with_state(state.clone(), crate::auth::authenticate))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn(
            crate::middleware::refuse_unstorable_url,
        ));
    let app = Router::new()
        .route("/healthz", get(|| async { "OK" }))
        .route("/metrics", get(metrics::serve))
        .route("/api/v2/", get(general::root))
        .nest("/api/v2", api)
        .merge(cliauth::routes(&state))
        .merge(crate::swagger::routes())
        .merge(crate::binaries::routes())
        .route("/derp", get(derp::serve))
        .route("/derp/latency-check", get(derp::latency_check))
        .fallback(route_not_found)
        .layer(axum::middleware::from_fn(crate::csrf::csrf))
        .layer(from_fn_with_state(
            state.clone(),
            crate::csrf::websocket_origin,
        ))
        .layer(axum::middleware::from_fn(
            crate::middleware::log_and_headers,
        ))
        .layer(axum::middleware::map_response(crate::version::stamp))
        // Outside the routes' own layers, inside routing: it sees the route pattern.
        .layer(from_fn_with_state(state.clone(), metrics::track_requests))
        .with_state(state);
    // Routing sees the path without its trailing slash (see `without_trailing_slash`).
    Router::new().fallback_service(tower::ServiceExt::map_request(app, without_trailing_slash))
}

/// Upstream's router answers `/api/v2/x/` as `/api/v2/x` (its routes are mounted
/// sub-routers), and clients rely on it: the Go SDK and the terraform provider ask for
/// `/organizations/{org}/members/`, others `/users/`.
fn without_trailing_slash(mut req: axum::extract::Request) -> axum::extract::Request {
    let path = req.uri().path();
    if !path.starts_with("/api/v2/") || !path.ends_with('/') {
        return req;
    }
    let trimmed = path.trim_end_matches('/');
    let rewritten = match req.uri().query() {
        Some(q) => format!("{trimmed}?{q}"),
        None => trimmed.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = rewritten.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

async fn route_not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Route not found.")
}

async fn method_not_allowed() -> Response {
    message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
}
