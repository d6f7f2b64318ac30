//! Swagger UI at `/swagger`, with its assets built into the binary.
//! (Placeholder: the UI lands in a following commit.)

use axum::Router;

use crate::state::AppState;

/// Routes for the Swagger UI page and its assets.
pub fn routes() -> Router<AppState> {
    Router::new()
}
