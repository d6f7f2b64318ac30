//! Workspace agents over HTTP: the agent's own connection (`/workspaceagents/me/rpc`, agent
//! token auth), and what users read about agents (`/workspaceagents/{id}`, its logs).
//!
//! Longer than 800 lines on purpose: both sides of the agent's HTTP surface share the agent
//! lookups and the version check; about 120 lines are route declarations.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use coderd_db::AgentIdentity;
use coderd_db::StoreResultExt;
use codersdk::{WorkspaceAgent, WorkspaceAgentLog};
use uuid::Uuid;

use super::resolve::AgentParam;
use super::routes::{Param, Routes};
use crate::agentapi::AgentApi;
use crate::authz::{Action, Actor};
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::{ok, Json};
use crate::http::params::QueryParams;
use crate::http::ws_io::Upgrade;
use crate::http::ws_io::WsIo;
use crate::state::AppState;

/// The agent API's version this server implements (`coder.agent.v2`, minor 7 as the agents
/// of Coder v2.30 ask for).
pub const API_MAJOR: u32 = 2;
pub const API_MINOR: u32 = 7;
/// How often the replica holding an agent's connection refreshes `last_connected_at`.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// Largest WebSocket message an agent may send (upstream's read limit, 4 MiB).
const MAX_MESSAGE: usize = 4 << 20;
/// The WebSocket's read and write buffer per agent.
const AGENT_BUFFER: usize = 8 << 10;

pub fn routes(r: &mut Routes) {
    r.get("/workspaceagents/me/rpc", rpc)
        .op(
            "Agents",
            "workspace-agent-rpc-api",
            "Workspace agent RPC API",
        )
        .query("version", Param::Str, "Agent API version (major.minor)")
        .empty(101);
    r.get("/workspaceagents/me/gitsshkey", me_gitsshkey)
        .op(
            "Agents",
            "get-workspace-agent-git-ssh-key",
            "Get workspace agent Git SSH key",
        )
        .ok::<codersdk::AgentGitSshKey>(200);
    r.get("/workspaceagents/me/reinit", me_reinit)
        .op(
            "Agents",
            "get-workspace-agent-reinitialization",
            "Get workspace agent reinitialization",
        )
        .content(
            200,
            "text/event-stream",
            serde_json::json!({"type": "string"}),
        );
    r.get("/workspaceagents/me/external-auth", me_external_auth)
        .op(
            "Agents",
            "get-workspace-agent-external-auth",
            "Get workspace agent external auth",
        )
        .ok::<codersdk::Response>(404);
    r.patch("/workspaceagents/me/app-status", me_app_status)
        .op(
            "Agents",
            "patch-workspace-agent-app-status",
            "Patch workspace agent app status",
        )
        .ok::<codersdk::Response>(200);
    r.get("/workspaceagents/connection", connection_generic)
        .op("Agents", "get-connection-info-for-workspace-agent-generic", "Get connection info for workspace agent generic")
    .content(
        200,
        "application/json",
        serde_json::json!({"type": "object", "description": "workspacesdk.AgentConnectionInfo"}),
    );
    r.get("/workspaceagents/{workspaceagent}", agent)
        .op(
            "Agents",
            "get-workspace-agent-by-id",
            "Get workspace agent by ID",
        )
        .ok::<codersdk::WorkspaceAgent>(200);
    r.get("/workspaceagents/{workspaceagent}/connection", connection)
        .op("Agents", "get-connection-info-for-workspace-agent", "Get connection info for workspace agent")
    .content(
        200,
        "application/json",
        serde_json::json!({"type": "object", "description": "workspacesdk.AgentConnectionInfo: the DERP map (tailscale's JSON), derp_force_websockets, disable_direct_connections, hostname_suffix"}),
    );
    r.get("/workspaceagents/{workspaceagent}/coordinate", coordinate)
        .op(
            "Agents",
            "coordinate-workspace-agent",
            "Coordinate workspace agent",
        )
        .query("version", Param::Str, "Tailnet API version (2.0 to 2.7)")
        .empty(101);
    r.get(
        "/workspaceagents/{workspaceagent}/listening-ports",
        listening_ports,
    )
    .op(
        "Agents",
        "get-listening-ports-for-workspace-agent",
        "Get listening ports for workspace agent (not supported: 501)",
    )
    .ok::<codersdk::Response>(501);
    r.get("/derp-map", derp_map_updates)
        .op("Agents", "get-derp-map-updates", "Get DERP map updates")
        .empty(101);
    r.get("/workspaceagents/{workspaceagent}/logs", logs)
        .op(
            "Agents",
            "get-logs-by-workspace-agent",
            "Get logs by workspace agent",
        )
        .query("after", Param::Int, "After log id")
        .query(
            "follow",
            Param::Bool,
            "Follow log stream (a WebSocket of log batches)",
        )
        .list::<codersdk::WorkspaceAgentLog>(200);
    r.get(
        "/workspaceagents/{workspaceagent}/watch-metadata",
        watch_metadata,
    )
    .op(
        "Agents",
        "watch-for-workspace-agent-metadata-updates",
        "Watch for workspace agent metadata updates",
    )
    .content(
        200,
        "text/event-stream",
        serde_json::json!({"type": "string"}),
    );
    r.get(
        "/workspaceagents/{workspaceagent}/watch-metadata-ws",
        watch_metadata_ws,
    )
    .op(
        "Agents",
        "watch-for-workspace-agent-metadata-updates-via-websockets",
        "Watch for workspace agent metadata updates via WebSockets",
    )
    .empty(101);
}

/// The agent a request's token belongs to (cookie, header or query, as for users).
async fn agent_from_request(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ApiResult<AgentIdentity> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
    let Some(token) = crate::auth::token_from_request(headers, query) else {
        return Err(unauthorized(&format!(
            "Cookie {:?} must be provided.",
            codersdk::SESSION_TOKEN_COOKIE
        )));
    };
    let Ok(token) = Uuid::parse_str(&token) else {
        return Err(unauthorized("Workspace agent token invalid."));
    };
    state
        .store
        .agent_by_token(token)
        .await
        .optional()?
        .filter(|a| a.is_latest)
        .ok_or_else(|| unauthorized("Workspace agent not authorized."))
}

/// Upstream's version rule: the same major and a minor no newer than ours.
fn check_version(v: &str) -> Result<(), String> {
    let (major, minor) = v
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .ok_or_else(|| format!("invalid version string: {v}"))?;
    if major > API_MAJOR {
        return Err(format!(
            "server is at version {API_MAJOR}.{API_MINOR}, behind requested major version {v}"
        ));
    }
    if major < API_MAJOR {
        return Err(format!("version {v} is no longer supported"));
    }
    if minor > API_MINOR {
        return Err(format!(
            "server is at version {API_MAJOR}.{API_MINOR}, behind requested minor version {v}"
        ));
    }
    Ok(())
}

/// `GET /workspaceagents/me/rpc`: the agent's WebSocket, carrying yamux, carrying DRPC.
async fn rpc(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    ws: Upgrade,
) -> ApiResult<Response> {
    let q = QueryParams::parse(raw.as_deref());
    let version = q
        .get("version")
        .filter(|v| !v.is_empty())
        .unwrap_or("2.0")
        .to_string();
    if let Err(detail) = check_version(&version) {
        return Err(ApiError::bad_request("Unknown or unsupported API version")
            .with_validation("version", detail));
    }
    let agent = agent_from_request(&state, &headers, raw.as_deref()).await?;
    let ws = ws.map_err(|e| {
        ApiError::bad_request("Failed to accept websocket.").with_detail(e.body_text())
    })?;
    // Small buffers: an idle agent's connection should cost little (the default 128 KiB read
    // buffer alone would double what a connected agent costs; benches/README.md).
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .read_buffer_size(AGENT_BUFFER)
        .write_buffer_size(AGENT_BUFFER)
        .on_upgrade(move |socket| serve_agent(state, agent, version, socket))
        .into_response())
}

async fn serve_agent(
    state: AppState,
    agent: AgentIdentity,
    version: String,
    socket: axum::extract::ws::WebSocket,
) {
    let _ws = state.metrics.websocket("/api/v2/workspaceagents/me/rpc");
    let id = agent.agent_id;
    let replica = state.replica_id;
    if let Err(e) = state.store.agent_connected(id, replica, &version).await {
        tracing::warn!(agent_id = %id, error = %e, "recording an agent's connection");
        return;
    }
    crate::domain::builds::publish_workspace(&state, agent.owner_id, agent.workspace_id).await;
    tracing::info!(agent_id = %id, workspace_id = %agent.workspace_id, %version, "agent connected");
    let heartbeat = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = state.store.agent_heartbeat(id, replica).await {
                    tracing::warn!(agent_id = %id, error = %e, "refreshing an agent's connection");
                }
            }
        })
    };
    let (owner, workspace) = (agent.owner_id, agent.workspace_id);
    let api = Arc::new(AgentApi::new(state.clone(), agent));
    let ended = coderd_wire::mux::serve_session(WsIo::new(socket), api).await;
    heartbeat.abort();
    if let Err(e) = ended {
        tracing::info!(agent_id = %id, error = %e, "agent connection ended");
    }
    if let Err(e) = state.store.agent_disconnected(id, replica).await {
        tracing::warn!(agent_id = %id, error = %e, "recording an agent's disconnection");
    }
    crate::domain::builds::publish_workspace(&state, owner, workspace).await;
    tracing::info!(agent_id = %id, "agent disconnected");
}

/// What a client needs to join an agent's tailnet (upstream's `AgentConnectionInfo`).
fn connection_info(state: &AppState) -> serde_json::Value {
    serde_json::json!({
        "derp_map": state.net.derp_map,
        "derp_force_websockets": state.net.force_websockets,
        "disable_direct_connections": state.net.block_direct,
        "hostname_suffix": crate::config::HOSTNAME_SUFFIX,
    })
}

/// `GET /workspaceagents/{id}/connection`: for anyone who may read the agent's workspace.
async fn connection(
    State(state): State<AppState>,
    agent: AgentParam,
) -> ApiResult<Json<serde_json::Value>> {
    agent.workspace.allow_deleted(Action::Read)?;
    Ok(ok(connection_info(&state)))
}

/// `GET /workspaceagents/connection`: the same, for any signed-in user.
async fn connection_generic(
    State(state): State<AppState>,
    _actor: Actor,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(ok(connection_info(&state)))
}

/// `GET /workspaceagents/{id}/coordinate`: a client's tailnet coordination with one agent
/// (WebSocket, yamux, DRPC `coder.tailnet.v2.Tailnet`). Only someone who may SSH into the
/// workspace gets in; anyone else is told the agent does not exist, as upstream does.
async fn coordinate(
    State(state): State<AppState>,
    agent: AgentParam,
    RawQuery(raw): RawQuery,
    ws: Upgrade,
) -> ApiResult<Response> {
    let AgentParam {
        agent_id: agent,
        workspace,
    } = agent;
    match workspace.allow(Action::Ssh) {
        Ok(_) => {}
        Err(e) if e.status == StatusCode::FORBIDDEN => return Err(ApiError::not_found()),
        Err(e) => return Err(e),
    }
    let q = QueryParams::parse(raw.as_deref());
    let version = q
        .get("version")
        .filter(|v| !v.is_empty())
        .unwrap_or("1.0")
        .to_string();
    if let Err(detail) = check_version(&version) {
        return Err(ApiError::bad_request("Unknown or unsupported API version")
            .with_validation("version", detail));
    }
    // No resume tokens are handed out (an empty one means "start afresh"), so any token a
    // client brings is unknown: upstream's answer makes it retry without.
    if q.get("resume_token").is_some_and(|t| !t.is_empty()) {
        return Err(
            ApiError::new(StatusCode::UNAUTHORIZED, "Invalid resume token.")
                .with_validation("resume_token", "Invalid or expired resume token."),
        );
    }
    let ws = ws.map_err(|e| {
        ApiError::bad_request("Failed to accept websocket.").with_detail(e.body_text())
    })?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .read_buffer_size(AGENT_BUFFER)
        .write_buffer_size(AGENT_BUFFER)
        .on_upgrade(move |socket| async move {
            let _ws = state
                .metrics
                .websocket("/api/v2/workspaceagents/{workspaceagent}/coordinate");
            let api = Arc::new(crate::agentapi::ClientTailnet {
                state: state.clone(),
                agent,
            });
            if let Err(e) = coderd_wire::mux::serve_session(WsIo::new(socket), api).await {
                tracing::debug!(agent_id = %agent, error = %e, "a client's coordination ended");
            }
        })
        .into_response())
}

/// `GET /workspaceagents/me/gitsshkey`: the workspace owner's Git SSH key pair, which the
/// agent hands to `git` inside the workspace.
async fn me_gitsshkey(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<codersdk::AgentGitSshKey>> {
    let agent = agent_from_request(&state, &headers, raw.as_deref()).await?;
    let (private_key, public_key) = match state.store.git_ssh_key_pair(agent.owner_id).await? {
        Some(pair) => pair,
        None => {
            let (private, public) = crate::domain::git_ssh_keys::generate()?;
            state
                .store
                .ensure_git_ssh_key(agent.owner_id, &private, &public)
                .await?;
            state
                .store
                .git_ssh_key_pair(agent.owner_id)
                .await?
                .ok_or_else(|| ApiError::internal("Reading a Git SSH key", "it vanished"))?
        }
    };
    Ok(ok(codersdk::AgentGitSshKey {
        public_key,
        private_key,
    }))
}

/// `GET /workspaceagents/me/reinit`: the stream on which upstream tells a prebuilt workspace's
/// agent to re-initialise. This server has no prebuilds, so the stream stays idle (a comment
/// every 15 s keeps proxies from closing it) until the server shuts down.
async fn me_reinit(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    agent_from_request(&state, &headers, raw.as_deref()).await?;
    let mut shutdown = state.shutdown.subscribe();
    let body = async_stream_body(async move |tx| {
        // Upstream's ping event: its agents' event reader takes no SSE comment lines.
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if tx.send(Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"event: ping\n\n"))).await.is_err() {
                        return;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    });
    Ok(event_stream(body))
}

/// A server-sent event stream: its body, with the headers that keep proxies from buffering it.
fn event_stream(body: axum::body::Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    h.insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    resp
}

/// A response body fed by a task through a channel.
fn async_stream_body<F>(
    producer: impl FnOnce(tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>) -> F,
) -> axum::body::Body
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(producer(tx));
    axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// `GET /workspaceagents/me/external-auth`: no external auth providers are configured here.
async fn me_external_auth(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    agent_from_request(&state, &headers, raw.as_deref()).await?;
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "No matching external auth provider found in Coder.",
    )
    .with_detail("This deployment has no external auth providers configured."))
}

/// `PATCH /workspaceagents/me/app-status`: app statuses (for AI tasks) are accepted and not
/// kept; this server shows none.
async fn me_app_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    crate::http::json::Body(_status): crate::http::json::Body<serde_json::Value>,
) -> ApiResult<Json<codersdk::Response>> {
    agent_from_request(&state, &headers, raw.as_deref()).await?;
    Ok(ok(codersdk::Response {
        message: "OK".into(),
        ..Default::default()
    }))
}

/// The agent `{workspaceagent}`, for those who may read its workspace.
async fn readable_agent(state: &AppState, agent: AgentParam) -> ApiResult<WorkspaceAgent> {
    agent.workspace.allow_deleted(Action::Read)?;
    crate::views::jobs::agents_by_ids(state, &[agent.agent_id])
        .await?
        .pop()
        .ok_or_else(ApiError::not_found)
}

async fn agent(
    State(state): State<AppState>,
    agent: AgentParam,
) -> ApiResult<Json<WorkspaceAgent>> {
    Ok(ok(readable_agent(&state, agent).await?))
}

/// `GET /workspaceagents/{id}/logs?after=<id>`: the agent's startup logs as JSON, or with
/// `follow` a WebSocket that sends each new batch as a JSON array (upstream's form) until the
/// client leaves or the server shuts down.
async fn logs(
    State(state): State<AppState>,
    agent: AgentParam,
    RawQuery(raw): RawQuery,
    ws: Upgrade,
) -> ApiResult<Response> {
    let agent = readable_agent(&state, agent).await?;
    let q = QueryParams::parse(raw.as_deref());
    let after = match q.get("after").filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => s.parse::<i64>().map_err(|_| {
            ApiError::bad_request("Query parameter has invalid value.")
                .with_validation("after", format!("{s:?} is not a log id"))
        })?,
    };
    if q.get("follow").is_some() {
        let ws = ws.map_err(|e| {
            ApiError::bad_request("Failed to accept websocket.").with_detail(e.body_text())
        })?;
        return Ok(ws
            .on_upgrade(move |socket| follow_logs(state, agent.id, after, socket))
            .into_response());
    }
    let rows = agent_logs(&state, agent.id, after).await?;
    Ok(ok(rows).into_response())
}

async fn agent_logs(
    state: &AppState,
    agent: Uuid,
    after: i64,
) -> ApiResult<Vec<WorkspaceAgentLog>> {
    Ok(state
        .store
        .agent_logs_after(agent, after, 10_000)
        .await?
        .into_iter()
        .map(|l| WorkspaceAgentLog {
            id: l.id,
            created_at: l.created_at,
            output: l.output,
            level: l.level,
            source_id: l.log_source_id,
        })
        .collect())
}

async fn follow_logs(
    state: AppState,
    agent: Uuid,
    mut after: i64,
    socket: axum::extract::ws::WebSocket,
) {
    use axum::extract::ws::Message;
    use futures_util::{SinkExt, StreamExt};
    let _guard = state.streams.open();
    let _ws = state.metrics.websocket("logs?follow");
    // Subscribe before reading: nothing stored after this point is missed.
    let mut sub = state
        .pubsub
        .subscribe(&format!("workspace-agent-logs:{agent}"));
    let mut shutdown = state.shutdown.subscribe();
    let (mut sink, mut stream) = socket.split();
    let mut recheck = tokio::time::interval(Duration::from_secs(5));
    loop {
        match agent_logs(&state, agent, after).await {
            Ok(batch) if !batch.is_empty() => {
                after = batch.last().map_or(after, |l| l.id);
                let text = serde_json::to_string(&batch).unwrap_or_else(|_| "[]".into());
                if sink.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(agent_id = %agent, error = ?e.body, "following agent logs");
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
        }
        tokio::select! {
            ev = sub.recv() => if ev.is_none() { return },
            _ = recheck.tick() => {}
            _ = shutdown.changed() => {
                let _ = sink
                    .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: axum::extract::ws::close_code::AWAY,
                        reason: "The server is shutting down.".into(),
                    })))
                    .await;
                return;
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The agent's metadata in upstream's shape (`codersdk.WorkspaceAgentMetadata`).
async fn metadata_json(state: &AppState, agent: Uuid) -> ApiResult<serde_json::Value> {
    let now = chrono::Utc::now();
    let items: Vec<serde_json::Value> = state
        .store
        .agent_metadata(&[agent])
        .await?
        .into_iter()
        .map(|m| {
            serde_json::json!({
                "result": {
                    "collected_at": m.collected_at,
                    "age": (now - m.collected_at).num_seconds().max(0),
                    "value": m.value,
                    "error": m.error,
                },
                "description": {
                    "display_name": m.display_name,
                    "key": m.key,
                    "script": m.script,
                    "interval": m.interval_seconds,
                    "timeout": m.timeout_seconds,
                },
            })
        })
        .collect();
    Ok(serde_json::Value::Array(items))
}

/// The events of a metadata watch, as (kind, data): a `data` event with all of the agent's
/// metadata at once, again whenever the agent reports new values (at most once a second, as
/// upstream), `ping`s in between; until the receiver goes away or the server shuts down.
fn metadata_events(
    state: AppState,
    agent: Uuid,
    first: serde_json::Value,
) -> tokio::sync::mpsc::Receiver<(&'static str, Option<serde_json::Value>)> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut sub = state
        .pubsub
        .subscribe(&format!("workspace-agent-metadata:{agent}"));
    let mut shutdown = state.shutdown.subscribe();
    tokio::spawn(async move {
        let _guard = state.streams.open();
        if tx.send(("data", Some(first))).await.is_err() {
            return;
        }
        let mut ping = tokio::time::interval(Duration::from_secs(15));
        ping.tick().await;
        loop {
            let event = tokio::select! {
                ev = sub.recv() => match ev {
                    None => return,
                    Some(_) => {
                        // Coalesce a burst of reports into one event a second.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        while sub.try_recv().is_some() {}
                        match metadata_json(&state, agent).await {
                            Ok(m) => ("data", Some(m)),
                            Err(e) => ("error", serde_json::to_value(e.body).ok()),
                        }
                    }
                },
                _ = ping.tick() => ("ping", None),
                _ = tx.closed() => return,
                _ = shutdown.changed() => return,
            };
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// `GET /workspaceagents/{id}/watch-metadata`: the metadata watch as server-sent events.
async fn watch_metadata(State(state): State<AppState>, agent: AgentParam) -> ApiResult<Response> {
    let agent = readable_agent(&state, agent).await?;
    let first = metadata_json(&state, agent.id).await?;
    let mut events = metadata_events(state, agent.id, first);
    let body = async_stream_body(async move |tx| {
        while let Some((kind, data)) = events.recv().await {
            let data = data.map(|d| d.to_string()).unwrap_or_default();
            let frame = axum::body::Bytes::from(format!("event: {kind}\ndata: {data}\n\n"));
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    });
    Ok(event_stream(body))
}

/// `GET /workspaceagents/{id}/watch-metadata-ws`: the metadata watch over a WebSocket, each
/// event a `codersdk.ServerSentEvent` (`{"type", "data"}`) text message.
async fn watch_metadata_ws(
    State(state): State<AppState>,
    agent: AgentParam,
    ws: Upgrade,
) -> ApiResult<Response> {
    let agent = readable_agent(&state, agent).await?;
    let ws = ws.map_err(|e| {
        ApiError::bad_request("Failed to accept websocket.").with_detail(e.body_text())
    })?;
    let first = metadata_json(&state, agent.id).await?;
    Ok(ws
        .on_upgrade(move |socket| async move {
            use axum::extract::ws::Message;
            use futures_util::{SinkExt, StreamExt};
            let mut events = metadata_events(state, agent.id, first);
            let (mut sink, mut stream) = socket.split();
            loop {
                tokio::select! {
                    ev = events.recv() => {
                        let Some((kind, data)) = ev else {
                            let _ = sink.send(Message::Close(None)).await;
                            return;
                        };
                        let text = serde_json::json!({"type": kind, "data": data}).to_string();
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            return;
                        }
                    }
                    incoming = stream.next() => match incoming {
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                        Some(Ok(_)) => {}
                    },
                }
            }
        })
        .into_response())
}

/// `GET /derp-map`: the DERP map as a WebSocket of JSON messages (binary, as upstream), sent
/// now and whenever it changes (it does not, while the server runs), pinged every 15 s.
async fn derp_map_updates(
    State(state): State<AppState>,
    _actor: Actor,
    ws: Upgrade,
) -> ApiResult<Response> {
    let ws = ws.map_err(|e| {
        ApiError::bad_request("Failed to accept websocket.").with_detail(e.body_text())
    })?;
    Ok(ws
        .on_upgrade(move |socket| async move {
            use axum::extract::ws::Message;
            use futures_util::{SinkExt, StreamExt};
            let (mut sink, mut stream) = socket.split();
            let map = serde_json::to_vec(&state.net.derp_map).expect("the DERP map serializes");
            if sink.send(Message::Binary(map.into())).await.is_err() {
                return;
            }
            let mut ping = tokio::time::interval(Duration::from_secs(15));
            ping.tick().await;
            loop {
                tokio::select! {
                    _ = ping.tick() => {
                        if sink.send(Message::Ping(Default::default())).await.is_err() {
                            return;
                        }
                    }
                    incoming = stream.next() => match incoming {
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                        Some(Ok(_)) => {}
                    },
                    _ = state.shutting_down() => {
                        let _ = sink.send(Message::Close(None)).await;
                        return;
                    }
                }
            }
        })
        .into_response())
}

/// `GET /workspaceagents/{id}/listening-ports`: upstream asks the agent over the tailnet,
/// which this server does not join (docs/decisions.md, Tailnet). A disconnected agent gets
/// upstream's 400; a connected one a clear 501 pointing at `coder port-forward`.
async fn listening_ports(State(state): State<AppState>, agent: AgentParam) -> ApiResult<Response> {
    let agent = readable_agent(&state, agent).await?;
    if agent.status != "connected" {
        return Err(ApiError::bad_request(format!(
            "Agent state is {:?}, it must be in the \"connected\" state.",
            agent.status
        )));
    }
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "Listing a workspace's listening ports is not supported by this server.",
    )
    .with_detail(
        "The server would have to join the workspace's tailnet to ask the agent. \
         Forward ports with `coder port-forward` instead.",
    ))
}

#[cfg(test)]
mod tests {
    use super::check_version;

    #[test]
    fn versions_as_upstream() {
        assert!(check_version("2.0").is_ok());
        assert!(check_version("2.7").is_ok());
        assert_eq!(
            check_version("2.8").unwrap_err(),
            "server is at version 2.7, behind requested minor version 2.8"
        );
        assert_eq!(
            check_version("3.0").unwrap_err(),
            "server is at version 2.7, behind requested major version 3.0"
        );
        assert_eq!(
            check_version("1.0").unwrap_err(),
            "version 1.0 is no longer supported"
        );
        assert!(check_version("two").is_err());
    }
}
