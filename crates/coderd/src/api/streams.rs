//! Streams: `GET /workspaces/{id}/watch` (server-sent events), `/watch-ws` (a one-way
//! WebSocket), and following a job's logs over a WebSocket (`…/logs?follow`).
//!
//! Watchers subscribe before reading, and re-read the database on every notification (and
//! whenever the pubsub says messages may have been lost), so they never show stale state.
//! A client that goes away ends its task and drops its subscriptions at once.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::ws::{close_code, Message};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use coderd_db::pubsub::Event;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::resolve::WorkspaceParam;
use super::routes::Routes;
use crate::authz::{Action, Actor};
use crate::http::error::{ApiResult, DATABASE_UNAVAILABLE_MESSAGE};
use crate::http::json::to_go_json;
use crate::http::ws_io::{close, going_away, text, upgrade_or_400, HEARTBEAT};
use crate::state::AppState;
use crate::views::workspaces::render_one;
use crate::watch::{Feed, Snapshot};

pub fn routes(r: &mut Routes) {
    r.get("/workspaces/{workspace}/watch", watch_sse)
        .op(
            "Workspaces",
            "watch-workspace-by-id",
            "Watch workspace by ID",
        )
        .content(
            200,
            "text/event-stream",
            serde_json::json!({"type": "string"}),
        );
    r.get("/workspaces/{workspace}/watch-ws", watch_ws)
        .op(
            "Workspaces",
            "watch-workspace-by-id-via-websockets",
            "Watch workspace by ID via WebSockets",
        )
        .empty(101);
}

/// `codersdk.ServerSentEvent`.
#[derive(Serialize)]
struct ServerSentEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: Option<serde_json::Value>,
}

/// What a workspace watcher emits; the transport frames it.
enum WatchEvent {
    Ping,
    Data(serde_json::Value),
    Error(serde_json::Value),
}

async fn render_snapshot(state: &AppState, workspace: Uuid, owner: Uuid) -> Snapshot {
    let error = |message: &str| {
        let body = codersdk::Response {
            message: message.into(),
            ..Default::default()
        };
        Snapshot::Error(serde_json::to_value(body).unwrap_or_default())
    };
    let w = match state.store.workspace(workspace).await {
        Ok(w) => w,
        Err(e) if e.is_unavailable() => {
            tracing::warn!(error = %e, %workspace, "watch: reading the workspace");
            return error(DATABASE_UNAVAILABLE_MESSAGE);
        }
        Err(e) => {
            tracing::warn!(error = %e, %workspace, "watch: reading the workspace");
            return error("Internal error fetching workspace.");
        }
    };
    match render_one(state, owner, w).await {
        Ok(ws) => {
            let as_owner = serde_json::to_value(&ws).unwrap_or_default();
            let mut as_other = as_owner.clone();
            as_other["favorite"] = serde_json::Value::Bool(false);
            Snapshot::Data {
                owner,
                as_owner,
                as_other,
            }
        }
        Err(e) => Snapshot::Error(serde_json::to_value(&e.body).unwrap_or_default()),
    }
}

/// Renders the workspace now and after every notification that concerns it (its owner's
/// channel naming it, its template's channel, or "may have missed messages"), until no
/// watcher is left.
async fn run_feed(state: AppState, feed: Arc<Feed>, workspace: Uuid, owner: Uuid, template: Uuid) {
    let mut by_owner = state
        .pubsub
        .subscribe(&coderd_db::pubsub::workspace_owner_channel(owner));
    let mut by_template = state.pubsub.subscribe(&format!("template:{template}"));
    let ours = |ev: &Event| match ev {
        Event::Dropped => true,
        Event::Message(payload) => serde_json::from_str::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| {
                v.get("workspace_id")
                    .and_then(|w| w.as_str())
                    .map(|w| w == workspace.to_string())
            })
            .unwrap_or(true),
    };
    loop {
        let snapshot = render_snapshot(&state, workspace, owner).await;
        feed.send_replace(Some(Arc::new(snapshot)));
        loop {
            tokio::select! {
                ev = by_owner.recv() => match ev {
                    Some(ev) if ours(&ev) => break,
                    Some(_) => continue,
                    None => return,
                },
                ev = by_template.recv() => match ev {
                    Some(_) => break,
                    None => return,
                },
                _ = feed.closed() => {
                    if state.watch_hub.leave_if_unwatched(workspace, &feed) {
                        return;
                    }
                }
            }
        }
    }
}

/// Watches one workspace for one viewer: an initial ping, the current state, then the state
/// again after every change. Ends when `tx` is closed.
async fn watch_workspace(
    state: AppState,
    viewer: Uuid,
    workspace: Uuid,
    owner: Uuid,
    template: Uuid,
    tx: mpsc::Sender<WatchEvent>,
) {
    let _guard = state.streams.open();
    let mut feed = state.watch_hub.subscribe(workspace, |feed| {
        tokio::spawn(run_feed(state.clone(), feed, workspace, owner, template));
    });
    if tx.send(WatchEvent::Ping).await.is_err() {
        return;
    }
    loop {
        let current = feed.borrow_and_update().clone();
        if let Some(snapshot) = current {
            let event = match snapshot.as_ref() {
                Snapshot::Data {
                    owner,
                    as_owner,
                    as_other,
                } => WatchEvent::Data(if viewer == *owner {
                    as_owner.clone()
                } else {
                    as_other.clone()
                }),
                Snapshot::Error(body) => WatchEvent::Error(body.clone()),
            };
            if tx.send(event).await.is_err() {
                return;
            }
        }
        tokio::select! {
            changed = feed.changed() => if changed.is_err() { return },
            _ = tx.closed() => return,
        }
    }
}

async fn start_watch(
    state: &AppState,
    actor: &Actor,
    workspace: WorkspaceParam,
) -> ApiResult<mpsc::Receiver<WatchEvent>> {
    let (w, _) = workspace.allow_deleted(Action::Read)?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(watch_workspace(
        state.clone(),
        actor.user_id,
        w.id,
        w.owner_id,
        w.template_id,
        tx,
    ));
    Ok(rx)
}

fn sse_frame(kind: &str, data: Option<&serde_json::Value>) -> Bytes {
    let mut out = format!("event: {kind}\n").into_bytes();
    if let Some(d) = data {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&to_go_json(d));
    }
    out.push(b'\n');
    Bytes::from(out)
}

async fn watch_sse(
    State(state): State<AppState>,
    actor: Actor,
    workspace: WorkspaceParam,
) -> ApiResult<Response> {
    let mut events = start_watch(&state, &actor, workspace).await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            let frame = tokio::select! {
                ev = events.recv() => match ev {
                    Some(WatchEvent::Ping) => sse_frame("ping", None),
                    Some(WatchEvent::Data(d)) => sse_frame("data", Some(&d)),
                    Some(WatchEvent::Error(e)) => sse_frame("error", Some(&e)),
                    None => return,
                },
                _ = heartbeat.tick() => sse_frame("ping", None),
                _ = tx.closed() => return,
                // Ending the body cleanly tells the client to reconnect (to another replica).
                () = state.shutting_down() => return,
            };
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

use crate::http::ws_io::Upgrade;

async fn watch_ws(
    State(state): State<AppState>,
    actor: Actor,
    workspace: WorkspaceParam,
    ws: Upgrade,
) -> ApiResult<Response> {
    // The workspace is authorized before the upgrade is looked at: 404 to whoever may not
    // read it, WebSocket or not.
    let mut events = start_watch(&state, &actor, workspace).await?;
    let ws = upgrade_or_400(ws)?;
    Ok(ws.on_upgrade(move |socket| async move {
        let _ws = state
            .metrics
            .websocket("/api/v2/workspaces/{workspace}/watch-ws");
        let (mut sink, mut stream) = socket.split();
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            let msg = tokio::select! {
                ev = events.recv() => match ev {
                    Some(WatchEvent::Ping) => text(&ServerSentEvent { kind: "ping", data: None }),
                    Some(WatchEvent::Data(d)) => text(&ServerSentEvent { kind: "data", data: Some(d) }),
                    Some(WatchEvent::Error(e)) => text(&ServerSentEvent { kind: "error", data: Some(e) }),
                    None => { let _ = sink.send(close(close_code::NORMAL, "Connection closed")).await; return; }
                },
                _ = heartbeat.tick() => Message::Ping(Bytes::new()),
                () = state.shutting_down() => {
                    let _ = sink.send(going_away()).await;
                    return;
                }
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Pong(_))) | Some(Ok(Message::Ping(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Ok(_)) => {
                        let _ = sink.send(close(close_code::PROTOCOL, "Clients cannot send messages for one-way WebSockets")).await;
                        return;
                    }
                    Some(Err(_)) => {
                        let _ = sink.send(close(close_code::ERROR, "Unable to process invalid message from client")).await;
                        return;
                    }
                },
            };
            if sink.send(msg).await.is_err() {
                return;
            }
        }
    }))
}
