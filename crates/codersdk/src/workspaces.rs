//! Workspaces and workspace builds.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::{
    Group, MatchedProvisioners, ProvisionerJob, WorkspaceBuildParameter, WorkspaceResource,
};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceBuild {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub workspace_owner_id: Uuid,
    pub workspace_owner_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workspace_owner_avatar_url: String,
    pub template_version_id: Uuid,
    pub template_version_name: String,
    pub build_number: i32,
    pub transition: String,
    pub initiator_id: Uuid,
    pub initiator_name: String,
    pub job: ProvisionerJob,
    pub reason: String,
    pub resources: Vec<WorkspaceResource>,
    pub deadline: Option<DateTime<Utc>>,
    pub max_deadline: Option<DateTime<Utc>>,
    pub status: String,
    pub daily_cost: i32,
    pub matched_provisioners: MatchedProvisioners,
    pub template_version_preset_id: Option<Uuid>,
    pub has_ai_task: bool,
    pub has_external_agent: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceHealth {
    pub healthy: bool,
    pub failing_agents: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SharedWorkspaceActor {
    pub id: Uuid,
    pub actor_type: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub avatar_url: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Workspace {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub owner_id: Uuid,
    pub owner_name: String,
    pub owner_avatar_url: String,
    pub organization_id: Uuid,
    pub organization_name: String,
    pub template_id: Uuid,
    pub template_name: String,
    pub template_display_name: String,
    pub template_icon: String,
    pub template_allow_user_cancel_workspace_jobs: bool,
    pub template_active_version_id: Uuid,
    pub template_require_active_version: bool,
    pub template_use_classic_parameter_flow: bool,
    pub latest_build: WorkspaceBuild,
    /// Agents never report app statuses to this server: always null.
    #[schema(schema_with = crate::always_null)]
    pub latest_app_status: Option<serde_json::Value>,
    pub outdated: bool,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub autostart_schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub ttl_ms: Option<i64>,
    pub last_used_at: DateTime<Utc>,
    pub deleting_at: Option<DateTime<Utc>>,
    pub dormant_at: Option<DateTime<Utc>>,
    pub health: WorkspaceHealth,
    pub automatic_updates: String,
    pub allow_renames: bool,
    pub favorite: bool,
    pub next_start_at: Option<DateTime<Utc>>,
    pub is_prebuild: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<SharedWorkspaceActor>,
    pub task_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspacesResponse {
    pub workspaces: Vec<Workspace>,
    pub count: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CreateWorkspaceRequest {
    pub template_id: Option<Uuid>,
    pub template_version_id: Option<Uuid>,
    pub name: String,
    pub autostart_schedule: Option<String>,
    pub ttl_ms: Option<i64>,
    pub rich_parameter_values: Vec<WorkspaceBuildParameter>,
    pub automatic_updates: String,
    pub template_version_preset_id: Option<Uuid>,
}

/// Go encodes `[]byte` as base64; the reference documents a list of integers. Both decode.
fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        B64(String),
        List(Vec<u8>),
    }
    match Raw::deserialize(d)? {
        Raw::List(v) => Ok(v),
        Raw::B64(s) => crate::base64::decode(&s).map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CreateWorkspaceBuildRequest {
    pub template_version_id: Option<Uuid>,
    pub transition: String,
    pub dry_run: bool,
    #[serde(
        deserialize_with = "bytes",
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "crate::base64::serialize"
    )]
    #[schema(value_type = String, format = Byte, default = "")]
    pub state: Vec<u8>,
    pub orphan: bool,
    pub rich_parameter_values: Vec<WorkspaceBuildParameter>,
    pub log_level: String,
    pub reason: String,
    pub template_version_preset_id: Option<Uuid>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateWorkspaceBuildStateRequest {
    #[serde(
        deserialize_with = "bytes",
        serialize_with = "crate::base64::serialize"
    )]
    #[schema(value_type = String, format = Byte, default = "")]
    pub state: Vec<u8>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateWorkspaceRequest {
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateWorkspaceAutostartRequest {
    pub schedule: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateWorkspaceTtlRequest {
    pub ttl_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateWorkspaceAutomaticUpdatesRequest {
    pub automatic_updates: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateWorkspaceDormancy {
    pub dormant: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct PutExtendWorkspaceRequest {
    pub deadline: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct PostWorkspaceUsageRequest {
    pub agent_id: Option<Uuid>,
    pub app_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResolveAutostartResponse {
    pub parameter_mismatch: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProvisionerTiming {
    pub job_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub stage: String,
    pub source: String,
    pub action: String,
    pub resource: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceBuildTimings {
    pub provisioner_timings: Vec<ProvisionerTiming>,
    /// Always empty (agents do not connect to this server yet).
    #[schema(max_items = 0)]
    pub agent_script_timings: Vec<serde_json::Value>,
    /// Always empty (agents do not connect to this server yet).
    #[schema(max_items = 0)]
    pub agent_connection_timings: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceUser {
    pub id: Uuid,
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub avatar_url: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceGroup {
    #[serde(flatten)]
    pub group: Group,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceAcl {
    pub users: Vec<WorkspaceUser>,
    pub group: Vec<WorkspaceGroup>,
}

/// Role per user id / group id; an empty role removes the entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateWorkspaceAcl {
    pub user_roles: HashMap<String, String>,
    pub group_roles: HashMap<String, String>,
}
