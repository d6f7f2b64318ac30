//! What a connected agent's calls do: the `coder.agent.v2.Agent` service and the agent's side
//! of `coder.tailnet.v2.Tailnet`, on the DRPC session of `/api/v2/workspaceagents/me/rpc`.
//!
//! Every method the upstream agent calls answers: an agent tears its whole connection down
//! when any of its routines fails. What the agent reports lands in the store and is announced
//! to the workspace's watchers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use coderd_db::{AgentIdentity, LogsOutcome, NewAgentLog, ScriptTiming};
use coderd_wire::drpc::{Call, CallFuture, Handler, RpcError};
use coderd_wire::proto::{agent as pb, tailnet as tn};
use uuid::Uuid;

use crate::state::AppState;
use crate::tailnet::PeerAuth;

/// Most bytes of startup logs one agent may send, as upstream (1 MiB).
pub const LOGS_LIMIT: i32 = 1 << 20;
/// How often agents report stats.
const STATS_INTERVAL: Duration = Duration::from_secs(30);

/// The lifecycle states, by their protobuf numbers.
const LIFECYCLE: [&str; 10] = [
    "",
    "created",
    "starting",
    "start_timeout",
    "start_error",
    "ready",
    "shutting_down",
    "shutdown_timeout",
    "shutdown_error",
    "off",
];

const LOG_LEVELS: [&str; 6] = ["info", "trace", "debug", "info", "warn", "error"];

/// The services of one agent connection.
pub struct AgentApi {
    pub state: AppState,
    pub agent: AgentIdentity,
}

impl AgentApi {
    pub fn new(state: AppState, agent: AgentIdentity) -> Self {
        AgentApi { state, agent }
    }

    async fn announce(&self) {
        crate::domain::builds::publish_workspace(
            &self.state,
            self.agent.owner_id,
            self.agent.workspace_id,
        )
        .await;
    }

    async fn dispatch(&self, mut call: Call) -> Result<(), RpcError> {
        let method = call.method.clone();
        let (service, name) = method
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("", ""));
        match (service, name) {
            (pb::SERVICE, "GetManifest") => {
                let _: pb::GetManifestRequest = call.recv_msg().await?;
                call.send_msg(&self.manifest().await?).await
            }
            (pb::SERVICE, "GetServiceBanner") => {
                let _: pb::GetServiceBannerRequest = call.recv_msg().await?;
                call.send_msg(&pb::ServiceBanner::default()).await
            }
            (pb::SERVICE, "GetAnnouncementBanners") => {
                let _: pb::GetAnnouncementBannersRequest = call.recv_msg().await?;
                call.send_msg(&pb::GetAnnouncementBannersResponse::default())
                    .await
            }
            (pb::SERVICE, "UpdateStats") => {
                let _: pb::UpdateStatsRequest = call.recv_msg().await?;
                call.send_msg(&pb::UpdateStatsResponse {
                    report_interval: Some(duration(STATS_INTERVAL)),
                })
                .await
            }
            (pb::SERVICE, "UpdateLifecycle") => {
                let req: pb::UpdateLifecycleRequest = call.recv_msg().await?;
                let l = req.lifecycle.unwrap_or_default();
                let state = usize::try_from(l.state)
                    .ok()
                    .and_then(|i| LIFECYCLE.get(i))
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| RpcError(format!("unknown lifecycle state {}", l.state)))?;
                let at = l.changed_at.as_ref().map(time).unwrap_or_else(Utc::now);
                self.state
                    .store
                    .agent_lifecycle(self.agent.agent_id, state, at)
                    .await?;
                self.announce().await;
                call.send_msg(&l).await
            }
            (pb::SERVICE, "UpdateStartup") => {
                let req: pb::UpdateStartupRequest = call.recv_msg().await?;
                let s = req.startup.unwrap_or_default();
                let subsystems: Vec<String> = s
                    .subsystems
                    .iter()
                    .filter_map(|n| match n {
                        1 => Some("envbox".to_string()),
                        2 => Some("envbuilder".to_string()),
                        3 => Some("exectrace".to_string()),
                        _ => None,
                    })
                    .collect();
                self.state
                    .store
                    .agent_startup(
                        self.agent.agent_id,
                        &s.version,
                        &s.expanded_directory,
                        &subsystems,
                    )
                    .await?;
                self.announce().await;
                call.send_msg(&s).await
            }
            (pb::SERVICE, "BatchUpdateMetadata") => {
                let req: pb::BatchUpdateMetadataRequest = call.recv_msg().await?;
                let results: Vec<(String, String, String, DateTime<Utc>)> = req
                    .metadata
                    .into_iter()
                    .map(|m| {
                        let r = m.result.unwrap_or_default();
                        let at = r.collected_at.as_ref().map(time).unwrap_or_else(Utc::now);
                        (m.key, r.value, r.error, at)
                    })
                    .collect();
                self.state
                    .store
                    .update_agent_metadata(self.agent.agent_id, &results)
                    .await?;
                self.announce_metadata().await;
                call.send_msg(&pb::BatchUpdateMetadataResponse::default())
                    .await
            }
            (pb::SERVICE, "BatchCreateLogs") => {
                let req: pb::BatchCreateLogsRequest = call.recv_msg().await?;
                let source = uuid_of(&req.log_source_id)?;
                let logs: Vec<NewAgentLog> = req
                    .logs
                    .iter()
                    .map(|l| NewAgentLog {
                        created_at: l.created_at.as_ref().map(time).unwrap_or_else(Utc::now),
                        output: &l.output,
                        level: usize::try_from(l.level)
                            .ok()
                            .and_then(|i| LOG_LEVELS.get(i))
                            .copied()
                            .unwrap_or("info"),
                    })
                    .collect();
                let outcome = if logs.is_empty() {
                    LogsOutcome::Stored
                } else {
                    self.state
                        .store
                        .insert_agent_logs(self.agent.agent_id, source, &logs, LOGS_LIMIT)
                        .await?
                };
                if outcome == LogsOutcome::Stored && !logs.is_empty() {
                    self.announce_logs().await;
                }
                call.send_msg(&pb::BatchCreateLogsResponse {
                    log_limit_exceeded: outcome == LogsOutcome::LimitExceeded,
                })
                .await
            }
            (pb::SERVICE, "BatchUpdateAppHealths") => {
                let req: pb::BatchUpdateAppHealthRequest = call.recv_msg().await?;
                let mut updates = Vec::new();
                for u in &req.updates {
                    let health = match u.health {
                        1 => "disabled",
                        2 => "initializing",
                        3 => "healthy",
                        4 => "unhealthy",
                        n => return Err(RpcError(format!("unknown app health {n}"))),
                    };
                    updates.push((uuid_of(&u.id)?, health));
                }
                self.state
                    .store
                    .update_app_health(self.agent.agent_id, &updates)
                    .await?;
                if !updates.is_empty() {
                    self.announce().await;
                }
                call.send_msg(&pb::BatchUpdateAppHealthResponse::default())
                    .await
            }
            (pb::SERVICE, "ScriptCompleted") => {
                let req: pb::ScriptCompletedRequest = call.recv_msg().await?;
                if let Some(t) = req.timing {
                    let stage = ["start", "stop", "cron"]
                        .get(usize::try_from(t.stage).unwrap_or(9))
                        .copied()
                        .unwrap_or("start");
                    let status = ["ok", "exit_failure", "timed_out", "pipes_left_open"]
                        .get(usize::try_from(t.status).unwrap_or(9))
                        .copied()
                        .unwrap_or("ok");
                    let now = Utc::now();
                    self.state
                        .store
                        .insert_script_timing(
                            self.agent.agent_id,
                            &ScriptTiming {
                                script: uuid_of(&t.script_id)?,
                                started_at: t.start.as_ref().map(time).unwrap_or(now),
                                ended_at: t.end.as_ref().map(time).unwrap_or(now),
                                exit_code: t.exit_code,
                                stage,
                                status,
                            },
                        )
                        .await?;
                }
                call.send_msg(&pb::ScriptCompletedResponse::default()).await
            }
            (pb::SERVICE, "GetResourcesMonitoringConfiguration") => {
                let _: pb::GetResourcesMonitoringConfigurationRequest = call.recv_msg().await?;
                call.send_msg(&pb::GetResourcesMonitoringConfigurationResponse {
                    config: Some(pb::MonitoringConfig {
                        num_datapoints: 20,
                        collection_interval_seconds: 10,
                    }),
                    memory: None,
                    volumes: Vec::new(),
                })
                .await
            }
            (pb::SERVICE, "PushResourcesMonitoringUsage")
            | (pb::SERVICE, "ReportConnection")
            | (pb::SERVICE, "ReportBoundaryLogs") => {
                let _: pb::Empty = call.recv_msg().await?;
                call.send_msg(&pb::Empty::default()).await
            }
            (pb::SERVICE, "ListSubAgents") => {
                let _: pb::Empty = call.recv_msg().await?;
                call.send_msg(&pb::ListSubAgentsResponse::default()).await
            }
            (pb::SERVICE, "CreateSubAgent") | (pb::SERVICE, "DeleteSubAgent") => Err(RpcError(
                "sub-agents (dev containers) are not supported by this server".into(),
            )),
            (tn::SERVICE, "Coordinate") => {
                coordinate(&self.state, &mut call, self.agent.agent_id, PeerAuth::Agent).await
            }
            (tn::SERVICE, _) => tailnet_call(&self.state, call, name).await,
            _ => Err(RpcError(format!("unknown rpc {method:?}"))),
        }
    }

    async fn announce_logs(&self) {
        let channel = format!("workspace-agent-logs:{}", self.agent.agent_id);
        if let Err(e) = self.state.pubsub.publish(&channel, "{}").await {
            tracing::warn!(error = %e, "announcing agent logs");
        }
    }

    async fn announce_metadata(&self) {
        let channel = format!("workspace-agent-metadata:{}", self.agent.agent_id);
        if let Err(e) = self.state.pubsub.publish(&channel, "{}").await {
            tracing::warn!(error = %e, "announcing agent metadata");
        }
        self.announce().await;
    }

    async fn manifest(&self) -> Result<pb::Manifest, RpcError> {
        let a = &self.agent;
        let store = &self.state.store;
        let scripts = store.agent_scripts(&[a.agent_id]).await?;
        let metadata = store.agent_metadata(&[a.agent_id]).await?;
        let apps = store.agent_apps(&[a.agent_id]).await?;
        let secs = |s: i64| Some(duration(Duration::from_secs(s.max(0) as u64)));
        Ok(pb::Manifest {
            agent_id: a.agent_id.as_bytes().to_vec(),
            agent_name: a.agent_name.clone(),
            owner_username: a.owner_username.clone(),
            workspace_id: a.workspace_id.as_bytes().to_vec(),
            workspace_name: a.workspace_name.clone(),
            directory: a.directory.clone(),
            environment_variables: HashMap::new(),
            derp_map: Some(self.state.net.derp_map.to_proto()),
            scripts: scripts
                .into_iter()
                .map(|s| pb::WorkspaceAgentScript {
                    log_source_id: s.log_source_id.as_bytes().to_vec(),
                    log_path: s.log_path,
                    script: s.script,
                    cron: s.cron,
                    run_on_start: s.run_on_start,
                    run_on_stop: s.run_on_stop,
                    start_blocks_login: s.start_blocks_login,
                    timeout: secs(i64::from(s.timeout_seconds)),
                    display_name: s.display_name,
                    id: s.id.as_bytes().to_vec(),
                })
                .collect(),
            apps: apps
                .into_iter()
                .map(|app| pb::WorkspaceApp {
                    id: app.id.as_bytes().to_vec(),
                    url: app.url,
                    external: app.external,
                    slug: app.slug,
                    display_name: app.display_name,
                    command: app.command,
                    icon: app.icon,
                    subdomain: app.subdomain,
                    sharing_level: match app.sharing_level.as_str() {
                        "authenticated" => 2,
                        "public" => 3,
                        "organization" => 4,
                        _ => 1,
                    },
                    hidden: app.hidden,
                    healthcheck: Some(pb::AppHealthcheck {
                        url: app.healthcheck_url,
                        interval: Some(duration(Duration::from_secs(
                            app.healthcheck_interval.max(0) as u64,
                        ))),
                        threshold: app.healthcheck_threshold,
                    }),
                    health: match app.health.as_str() {
                        "initializing" => 2,
                        "healthy" => 3,
                        "unhealthy" => 4,
                        _ => 1,
                    },
                    ..Default::default()
                })
                .collect(),
            // Upstream's agents read these durations' nanoseconds as the number of seconds
            // (its server converts a count of seconds to a duration unscaled), so that is
            // what they get.
            metadata: metadata
                .into_iter()
                .map(|m| pb::MetadataDescription {
                    display_name: m.display_name,
                    key: m.key,
                    script: m.script,
                    interval: Some(seconds_as_nanos(m.interval_seconds)),
                    timeout: Some(seconds_as_nanos(m.timeout_seconds)),
                })
                .collect(),
            // The agent's half of CODER_BLOCK_DIRECT and CODER_DERP_FORCE_WEBSOCKETS.
            disable_direct_connections: self.state.net.block_direct,
            derp_force_websockets: self.state.net.force_websockets,
            ..Default::default()
        })
    }
}

/// A client's side of `coder.tailnet.v2.Tailnet`, for coordinating with one agent.
pub struct ClientTailnet {
    pub state: AppState,
    /// The agent the client was authorized to reach (SSH on its workspace).
    pub agent: Uuid,
}

impl Handler for ClientTailnet {
    fn call(self: Arc<Self>, mut call: Call) -> CallFuture {
        Box::pin(async move {
            let method = call.method.clone();
            match method.trim_start_matches('/').split_once('/') {
                Some((tn::SERVICE, "Coordinate")) => {
                    let auth = PeerAuth::Client {
                        agents: [self.agent].into(),
                    };
                    coordinate(&self.state, &mut call, Uuid::new_v4(), auth).await
                }
                Some((tn::SERVICE, name)) => tailnet_call(&self.state, call, name).await,
                _ => Err(RpcError(format!("unknown rpc {method:?}"))),
            }
        })
    }
}

/// The `Tailnet` methods agents and clients share, but `Coordinate`.
async fn tailnet_call(state: &AppState, mut call: Call, name: &str) -> Result<(), RpcError> {
    match name {
        "StreamDERPMaps" => {
            let _: tn::StreamDerpMapsRequest = call.recv_msg().await?;
            call.send_msg(&state.net.derp_map.to_proto()).await?;
            // The map does not change while the server runs; the stream stays open until the
            // peer ends it or the server stops.
            state.shutting_down().await;
            Ok(())
        }
        "PostTelemetry" => {
            let _: tn::TelemetryRequest = call.recv_msg().await?;
            call.send_msg(&tn::TelemetryResponse::default()).await
        }
        "RefreshResumeToken" => {
            let _: tn::RefreshResumeTokenRequest = call.recv_msg().await?;
            // Resuming coordination is not offered: an empty token means "start afresh".
            call.send_msg(&tn::RefreshResumeTokenResponse {
                token: String::new(),
                refresh_in: Some(duration(Duration::from_secs(3600))),
                expires_at: None,
            })
            .await
        }
        _ => Err(RpcError(format!(
            "{name} is not offered by this server's tailnet service"
        ))),
    }
}

/// One `Coordinate` stream: the peer's requests go to the coordinator, and what the
/// coordinator has for the peer goes back, until either side ends it. A stream that ends
/// without the peer saying goodbye counts as the peer lost.
async fn coordinate(
    state: &AppState,
    call: &mut Call,
    id: Uuid,
    auth: PeerAuth,
) -> Result<(), RpcError> {
    let coordinator = state.net.coordinator.clone();
    let mut member = coordinator.join(id, auth);
    let mut lost = true;
    let result = loop {
        tokio::select! {
            data = call.recv() => {
                let Some(data) = data else { break Ok(()) };
                let req = match <tn::CoordinateRequest as prost::Message>::decode(data.as_slice()) {
                    Ok(r) => r,
                    Err(e) => break Err(RpcError(format!("decoding a coordinate request: {e}"))),
                };
                let goodbye = req.disconnect.is_some();
                if let Err(e) = coordinator.handle(&member, req) {
                    let _ = call
                        .send_msg(&tn::CoordinateResponse { peer_updates: Vec::new(), error: e.clone() })
                        .await;
                    break Err(RpcError(e));
                }
                if goodbye {
                    lost = false;
                    break Ok(());
                }
            }
            resp = member.updates.recv() => {
                // None: the coordinator dropped this peer (too slow, or replaced).
                let Some(resp) = resp else { break Ok(()) };
                let replaced = !resp.error.is_empty() && resp.peer_updates.is_empty()
                    && resp.error.starts_with("overwritten");
                if call.send_msg(&resp).await.is_err() {
                    break Ok(());
                }
                if replaced {
                    break Ok(());
                }
            }
            _ = state.shutting_down() => break Ok(()),
        }
    };
    coordinator.leave(&member, lost);
    result
}

impl Handler for AgentApi {
    fn call(self: Arc<Self>, call: Call) -> CallFuture {
        Box::pin(async move { self.dispatch(call).await })
    }
}

fn uuid_of(bytes: &[u8]) -> Result<Uuid, RpcError> {
    Uuid::from_slice(bytes).map_err(|_| RpcError(format!("{} bytes is not a UUID", bytes.len())))
}

fn time(t: &prost_types::Timestamp) -> DateTime<Utc> {
    Utc.timestamp_opt(t.seconds, t.nanos.clamp(0, 999_999_999) as u32)
        .single()
        .unwrap_or_else(Utc::now)
}

/// A count of seconds, carried the way upstream's wire carries metadata intervals: as that
/// many nanoseconds.
fn seconds_as_nanos(n: i64) -> prost_types::Duration {
    let n = n.max(0);
    prost_types::Duration {
        seconds: n / 1_000_000_000,
        nanos: (n % 1_000_000_000) as i32,
    }
}

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}
