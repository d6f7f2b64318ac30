//! Messages of `coder.agent.v2` (service `Agent`), written here as plain prost structs: field
//! numbers are the wire's; fields this server neither reads nor fills are left out (protobuf
//! skips unknown fields). Enums travel as `i32`; their values are noted where they are used.

use std::collections::HashMap;

use prost_types::{Duration, Timestamp};

use super::tailnet::DerpMap;

pub const SERVICE: &str = "coder.agent.v2.Agent";

#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkspaceApp {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub url: String,
    #[prost(bool, tag = "3")]
    pub external: bool,
    #[prost(string, tag = "4")]
    pub slug: String,
    #[prost(string, tag = "5")]
    pub display_name: String,
    #[prost(string, tag = "6")]
    pub command: String,
    #[prost(string, tag = "7")]
    pub icon: String,
    #[prost(bool, tag = "8")]
    pub subdomain: bool,
    #[prost(string, tag = "9")]
    pub subdomain_name: String,
    /// 1 owner, 2 authenticated, 3 public, 4 organization.
    #[prost(int32, tag = "10")]
    pub sharing_level: i32,
    #[prost(message, optional, tag = "11")]
    pub healthcheck: Option<AppHealthcheck>,
    /// 1 disabled, 2 initializing, 3 healthy, 4 unhealthy.
    #[prost(int32, tag = "12")]
    pub health: i32,
    #[prost(bool, tag = "13")]
    pub hidden: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AppHealthcheck {
    #[prost(string, tag = "1")]
    pub url: String,
    #[prost(message, optional, tag = "2")]
    pub interval: Option<Duration>,
    #[prost(int32, tag = "3")]
    pub threshold: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkspaceAgentScript {
    #[prost(bytes = "vec", tag = "1")]
    pub log_source_id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub log_path: String,
    #[prost(string, tag = "3")]
    pub script: String,
    #[prost(string, tag = "4")]
    pub cron: String,
    #[prost(bool, tag = "5")]
    pub run_on_start: bool,
    #[prost(bool, tag = "6")]
    pub run_on_stop: bool,
    #[prost(bool, tag = "7")]
    pub start_blocks_login: bool,
    #[prost(message, optional, tag = "8")]
    pub timeout: Option<Duration>,
    #[prost(string, tag = "9")]
    pub display_name: String,
    #[prost(bytes = "vec", tag = "10")]
    pub id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetadataResult {
    #[prost(message, optional, tag = "1")]
    pub collected_at: Option<Timestamp>,
    #[prost(int64, tag = "2")]
    pub age: i64,
    #[prost(string, tag = "3")]
    pub value: String,
    #[prost(string, tag = "4")]
    pub error: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetadataDescription {
    #[prost(string, tag = "1")]
    pub display_name: String,
    #[prost(string, tag = "2")]
    pub key: String,
    #[prost(string, tag = "3")]
    pub script: String,
    #[prost(message, optional, tag = "4")]
    pub interval: Option<Duration>,
    #[prost(message, optional, tag = "5")]
    pub timeout: Option<Duration>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Manifest {
    #[prost(bytes = "vec", tag = "1")]
    pub agent_id: Vec<u8>,
    #[prost(uint32, tag = "2")]
    pub git_auth_configs: u32,
    #[prost(map = "string, string", tag = "3")]
    pub environment_variables: HashMap<String, String>,
    #[prost(string, tag = "4")]
    pub directory: String,
    #[prost(string, tag = "5")]
    pub vs_code_port_proxy_uri: String,
    #[prost(string, tag = "6")]
    pub motd_path: String,
    #[prost(bool, tag = "7")]
    pub disable_direct_connections: bool,
    #[prost(bool, tag = "8")]
    pub derp_force_websockets: bool,
    #[prost(message, optional, tag = "9")]
    pub derp_map: Option<DerpMap>,
    #[prost(message, repeated, tag = "10")]
    pub scripts: Vec<WorkspaceAgentScript>,
    #[prost(message, repeated, tag = "11")]
    pub apps: Vec<WorkspaceApp>,
    #[prost(message, repeated, tag = "12")]
    pub metadata: Vec<MetadataDescription>,
    #[prost(string, tag = "13")]
    pub owner_username: String,
    #[prost(bytes = "vec", tag = "14")]
    pub workspace_id: Vec<u8>,
    #[prost(string, tag = "15")]
    pub agent_name: String,
    #[prost(string, tag = "16")]
    pub workspace_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetManifestRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceBanner {
    #[prost(bool, tag = "1")]
    pub enabled: bool,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(string, tag = "3")]
    pub background_color: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetServiceBannerRequest {}

/// Stats are accepted; only the connection count and sessions are read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Stats {
    #[prost(int64, tag = "2")]
    pub connection_count: i64,
    #[prost(int64, tag = "5")]
    pub rx_bytes: i64,
    #[prost(int64, tag = "7")]
    pub tx_bytes: i64,
    #[prost(int64, tag = "8")]
    pub session_count_vscode: i64,
    #[prost(int64, tag = "9")]
    pub session_count_jetbrains: i64,
    #[prost(int64, tag = "10")]
    pub session_count_reconnecting_pty: i64,
    #[prost(int64, tag = "11")]
    pub session_count_ssh: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateStatsRequest {
    #[prost(message, optional, tag = "1")]
    pub stats: Option<Stats>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateStatsResponse {
    #[prost(message, optional, tag = "1")]
    pub report_interval: Option<Duration>,
}

/// Lifecycle states: 1 created, 2 starting, 3 start timeout, 4 start error, 5 ready,
/// 6 shutting down, 7 shutdown timeout, 8 shutdown error, 9 off.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Lifecycle {
    #[prost(int32, tag = "1")]
    pub state: i32,
    #[prost(message, optional, tag = "2")]
    pub changed_at: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateLifecycleRequest {
    #[prost(message, optional, tag = "1")]
    pub lifecycle: Option<Lifecycle>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AppHealthUpdate {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// 1 disabled, 2 initializing, 3 healthy, 4 unhealthy.
    #[prost(int32, tag = "2")]
    pub health: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchUpdateAppHealthRequest {
    #[prost(message, repeated, tag = "1")]
    pub updates: Vec<AppHealthUpdate>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchUpdateAppHealthResponse {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Startup {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub expanded_directory: String,
    /// 1 envbox, 2 envbuilder, 3 exectrace.
    #[prost(int32, repeated, tag = "3")]
    pub subsystems: Vec<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateStartupRequest {
    #[prost(message, optional, tag = "1")]
    pub startup: Option<Startup>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub result: Option<MetadataResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchUpdateMetadataRequest {
    #[prost(message, repeated, tag = "2")]
    pub metadata: Vec<Metadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchUpdateMetadataResponse {}

/// Log levels: 1 trace, 2 debug, 3 info, 4 warn, 5 error.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Log {
    #[prost(message, optional, tag = "1")]
    pub created_at: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub output: String,
    #[prost(int32, tag = "3")]
    pub level: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchCreateLogsRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub log_source_id: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub logs: Vec<Log>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchCreateLogsResponse {
    #[prost(bool, tag = "1")]
    pub log_limit_exceeded: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetAnnouncementBannersRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetAnnouncementBannersResponse {
    #[prost(message, repeated, tag = "1")]
    pub announcement_banners: Vec<ServiceBanner>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScriptCompletedRequest {
    #[prost(message, optional, tag = "1")]
    pub timing: Option<Timing>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScriptCompletedResponse {}

/// Stage: 0 start, 1 stop, 2 cron. Status: 0 ok, 1 exit failure, 2 timed out, 3 pipes left
/// open.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timing {
    #[prost(bytes = "vec", tag = "1")]
    pub script_id: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    pub start: Option<Timestamp>,
    #[prost(message, optional, tag = "3")]
    pub end: Option<Timestamp>,
    #[prost(int32, tag = "4")]
    pub exit_code: i32,
    #[prost(int32, tag = "5")]
    pub stage: i32,
    #[prost(int32, tag = "6")]
    pub status: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetResourcesMonitoringConfigurationRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetResourcesMonitoringConfigurationResponse {
    #[prost(message, optional, tag = "1")]
    pub config: Option<MonitoringConfig>,
    #[prost(message, optional, tag = "2")]
    pub memory: Option<MonitoringMemory>,
    #[prost(message, repeated, tag = "3")]
    pub volumes: Vec<MonitoringVolume>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MonitoringConfig {
    #[prost(int32, tag = "1")]
    pub num_datapoints: i32,
    #[prost(int32, tag = "2")]
    pub collection_interval_seconds: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MonitoringMemory {
    #[prost(bool, tag = "1")]
    pub enabled: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MonitoringVolume {
    #[prost(bool, tag = "1")]
    pub enabled: bool,
    #[prost(string, tag = "2")]
    pub path: String,
}

/// Usage reports, connection reports and boundary logs are accepted and dropped; their answers
/// are empty.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubAgent {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListSubAgentsResponse {
    #[prost(message, repeated, tag = "1")]
    pub agents: Vec<SubAgent>,
}
