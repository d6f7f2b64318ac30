//! `GET /api/v2` and `GET /api/v2/buildinfo`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use codersdk::BuildInfoResponse;

use crate::http::json::{message, ok, Json};
use crate::middleware::VERSION;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/buildinfo", get(build_info))
}

async fn root() -> Response {
    message(StatusCode::OK, "👋")
}

async fn build_info(State(state): State<AppState>) -> Json<BuildInfoResponse> {
    ok(BuildInfoResponse {
        external_url: format!("https://github.com/coder/coder/releases/tag/v{VERSION}"),
        version: format!("v{VERSION}"),
        dashboard_url: state.config.access_url.clone(),
        telemetry: false,
        workspace_proxy: false,
        agent_api_version: "2.0".into(),
        provisioner_api_version: "1.0".into(),
        upgrade_message: String::new(),
        deployment_id: state.deployment_id.clone(),
        webpush_public_key: String::new(),
    })
}
