//! `GET /derp` and `/derp/latency-check`: the relay of [`crate::derp`] over HTTP.

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET /derp`: a DERP connection, by `Upgrade: DERP` or by a WebSocket speaking the `derp`
/// subprotocol. Clients need no session token here, as upstream: the relay only forwards
/// packets sealed end to end, and coordination (which is authorized) decides who learns whose
/// key.
pub async fn serve(State(state): State<AppState>, req: Request) -> Response {
    let Some(relay) = state.net.relay.clone() else {
        return (StatusCode::NOT_FOUND, "this server runs no DERP relay").into_response();
    };
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let wants_ws_derp = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.split(',').any(|p| p.trim() == "derp"));
    if upgrade == "websocket" && wants_ws_derp {
        let (mut parts, _) = req.into_parts();
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(ws) => ws,
            Err(e) => return e.into_response(),
        };
        let metrics = state.metrics.clone();
        return ws
            .protocols(["derp"])
            .read_buffer_size(8 << 10)
            .write_buffer_size(8 << 10)
            .max_message_size(coderd_wire::derp::MAX_PACKET + 1024)
            .on_upgrade(move |socket| async move {
                let _ws = metrics.websocket("/derp");
                if let Err(e) = relay.accept(crate::http::ws_io::WsIo::new(socket)).await {
                    tracing::debug!(error = %e, "a DERP WebSocket connection ended");
                }
            });
    }
    if upgrade != "derp" {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "DERP requires connection upgrade",
        )
            .into_response();
    }
    let mut req = req;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let key = hex::encode(relay.public_key());
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                use tokio_util::compat::TokioAsyncReadCompatExt;
                let io = hyper_util::rt::TokioIo::new(upgraded).compat();
                if let Err(e) = relay.accept(io).await {
                    tracing::debug!(error = %e, "a DERP connection ended");
                }
            }
            Err(e) => tracing::debug!(error = %e, "a DERP upgrade failed"),
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("DERP"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        "Derp-Version",
        HeaderValue::from(coderd_wire::derp::PROTOCOL_VERSION),
    );
    if let Ok(v) = HeaderValue::from_str(&key) {
        h.insert("Derp-Public-Key", v);
    }
    resp
}

/// `GET /derp/latency-check`: clients time it to pick their home region when UDP is blocked.
pub async fn latency_check() -> StatusCode {
    StatusCode::OK
}
