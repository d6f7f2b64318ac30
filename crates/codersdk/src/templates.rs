//! Templates, template versions, provisioner jobs and daemons, and the resources jobs produce.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Group, ReducedUser};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MinimalUser {
    pub id: Uuid,
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub avatar_url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ProvisionerJobInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub template_version_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub workspace_build_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ProvisionerJobMetadata {
    pub template_version_name: String,
    pub template_id: Uuid,
    pub template_name: String,
    pub template_display_name: String,
    pub template_icon: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub workspace_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workspace_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProvisionerJob {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub canceled_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error_code: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub worker_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub worker_name: String,
    pub file_id: Uuid,
    pub tags: BTreeMap<String, String>,
    pub queue_position: i64,
    pub queue_size: i64,
    pub organization_id: Uuid,
    pub initiator_id: Uuid,
    pub input: ProvisionerJobInput,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_workers: Vec<Uuid>,
    pub metadata: ProvisionerJobMetadata,
    pub logs_overflowed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProvisionerJobLog {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub log_source: String,
    pub log_level: String,
    pub stage: String,
    pub output: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProvisionerDaemonJob {
    pub id: Uuid,
    pub status: String,
    pub template_name: String,
    pub template_icon: String,
    pub template_display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProvisionerDaemon {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub key_id: Uuid,
    pub key_name: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub name: String,
    pub version: String,
    pub api_version: String,
    pub provisioners: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub status: String,
    pub current_job: Option<ProvisionerDaemonJob>,
    pub previous_job: Option<ProvisionerDaemonJob>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MatchedProvisioners {
    pub count: i64,
    pub available: i64,
    pub most_recently_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateVersion {
    pub id: Uuid,
    pub template_id: Option<Uuid>,
    pub organization_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub name: String,
    pub message: String,
    pub job: ProvisionerJob,
    pub readme: String,
    pub created_by: MinimalUser,
    pub archived: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub matched_provisioners: MatchedProvisioners,
    pub has_external_agent: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct VariableValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct WorkspaceBuildParameter {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CreateTemplateVersionRequest {
    pub name: String,
    pub message: String,
    pub template_id: Option<Uuid>,
    pub storage_method: String,
    pub file_id: Option<Uuid>,
    pub example_id: String,
    pub provisioner: String,
    pub tags: BTreeMap<String, String>,
    pub user_variable_values: Vec<VariableValue>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct PatchTemplateVersionRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CreateTemplateVersionDryRunRequest {
    pub workspace_name: String,
    pub rich_parameter_values: Vec<WorkspaceBuildParameter>,
    pub user_variable_values: Vec<VariableValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateVersionParameterOption {
    pub name: String,
    pub description: String,
    pub value: String,
    pub icon: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateVersionParameter {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    pub description: String,
    pub description_plaintext: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub form_type: String,
    pub mutable: bool,
    pub default_value: String,
    pub icon: String,
    pub options: Vec<TemplateVersionParameterOption>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub validation_error: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub validation_regex: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub validation_min: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub validation_max: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub validation_monotonic: Option<String>,
    pub required: bool,
    pub ephemeral: bool,
}

/// A template version's preset. Coder's Go struct has no JSON tags: the keys are the field
/// names (`ID`, `Name`, …; its specification says `id`, `name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Preset {
    #[serde(rename = "ID")]
    pub id: Uuid,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Parameters")]
    pub parameters: Vec<PresetParameter>,
    #[serde(rename = "Default")]
    pub default: bool,
    /// Prebuilt workspaces are not made here: always `null`.
    #[serde(rename = "DesiredPrebuildInstances")]
    pub desired_prebuild_instances: Option<i32>,
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Icon")]
    pub icon: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct PresetParameter {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Value")]
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateVersionVariable {
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    pub default_value: String,
    pub required: bool,
    pub sensitive: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceResourceMetadata {
    pub key: String,
    pub value: String,
    pub sensitive: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceAgentHealth {
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Healthcheck {
    pub url: String,
    pub interval: i32,
    pub threshold: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceApp {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    pub external: bool,
    pub slug: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub icon: String,
    pub subdomain: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subdomain_name: String,
    pub sharing_level: String,
    pub healthcheck: Healthcheck,
    pub health: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    pub hidden: bool,
    pub open_in: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tooltip: String,
    /// Agents never report app statuses to this server: always empty.
    #[schema(max_items = 0)]
    pub statuses: Vec<serde_json::Value>,
}

/// `GET /workspaceagents/me/gitsshkey`: the workspace owner's key pair, for its agent
/// (`agentsdk.GitSSHKey`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentGitSshKey {
    pub public_key: String,
    pub private_key: String,
}

/// One line of an agent's startup logs (`GET /workspaceagents/{id}/logs`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceAgentLog {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub output: String,
    pub level: String,
    pub source_id: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceAgent {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub first_connected_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub last_connected_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub disconnected_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub ready_at: Option<DateTime<Utc>>,
    pub status: String,
    pub lifecycle_state: String,
    pub name: String,
    pub resource_id: Uuid,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance_id: String,
    pub architecture: String,
    pub environment_variables: BTreeMap<String, String>,
    pub operating_system: String,
    pub logs_length: i64,
    pub logs_overflowed: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub directory: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expanded_directory: String,
    pub version: String,
    pub api_version: String,
    pub apps: Vec<WorkspaceApp>,
    /// No DERP regions: always empty.
    #[schema(schema_with = crate::always_empty_map)]
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latency: BTreeMap<String, serde_json::Value>,
    pub connection_timeout_seconds: i32,
    pub troubleshooting_url: String,
    pub subsystems: Vec<String>,
    pub health: WorkspaceAgentHealth,
    pub display_apps: Vec<String>,
    /// Always empty (agents do not connect to this server yet).
    #[schema(max_items = 0)]
    pub log_sources: Vec<serde_json::Value>,
    /// Always empty (agents do not connect to this server yet).
    #[schema(max_items = 0)]
    pub scripts: Vec<serde_json::Value>,
    pub startup_script_behavior: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceResource {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub job_id: Uuid,
    pub workspace_transition: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub hide: bool,
    pub icon: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<WorkspaceAgent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<WorkspaceResourceMetadata>,
    pub daily_cost: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct TemplateAutostopRequirement {
    pub days_of_week: Vec<String>,
    pub weeks: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct TemplateAutostartRequirement {
    pub days_of_week: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
/// Coder's Go struct has no JSON tags: the keys are the field names, `P50` and `P95` (its
/// specification says `p50`, which Go's decoder also accepts).
pub struct TransitionStats {
    #[serde(rename = "P50", alias = "p50")]
    pub p50: Option<i64>,
    #[serde(rename = "P95", alias = "p95")]
    pub p95: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Template {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub organization_id: Uuid,
    pub organization_name: String,
    pub organization_display_name: String,
    pub organization_icon: String,
    pub name: String,
    pub display_name: String,
    pub provisioner: String,
    pub active_version_id: Uuid,
    pub active_user_count: i64,
    pub build_time_stats: BTreeMap<String, TransitionStats>,
    pub description: String,
    pub deprecated: bool,
    pub deprecation_message: String,
    pub icon: String,
    pub default_ttl_ms: i64,
    pub activity_bump_ms: i64,
    pub autostop_requirement: TemplateAutostopRequirement,
    pub autostart_requirement: TemplateAutostartRequirement,
    pub created_by_id: Uuid,
    pub created_by_name: String,
    pub allow_user_autostart: bool,
    pub allow_user_autostop: bool,
    pub allow_user_cancel_workspace_jobs: bool,
    pub failure_ttl_ms: i64,
    pub time_til_dormant_ms: i64,
    pub time_til_dormant_autodelete_ms: i64,
    pub require_active_version: bool,
    pub max_port_share_level: String,
    pub cors_behavior: String,
    pub use_classic_parameter_flow: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CreateTemplateRequest {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub template_version_id: Option<Uuid>,
    pub default_ttl_ms: Option<i64>,
    pub activity_bump_ms: Option<i64>,
    pub autostop_requirement: Option<TemplateAutostopRequirement>,
    pub autostart_requirement: Option<TemplateAutostartRequirement>,
    pub allow_user_cancel_workspace_jobs: Option<bool>,
    pub allow_user_autostart: Option<bool>,
    pub allow_user_autostop: Option<bool>,
    pub failure_ttl_ms: Option<i64>,
    pub dormant_ttl_ms: Option<i64>,
    pub delete_ttl_ms: Option<i64>,
    pub disable_everyone_group_access: bool,
    pub require_active_version: bool,
    pub max_port_share_level: Option<String>,
    pub cors_behavior: Option<String>,
    pub template_use_classic_parameter_flow: Option<bool>,
}

/// Fields left out (or null) keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateTemplateMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_ttl_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_bump_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autostop_requirement: Option<TemplateAutostopRequirement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autostart_requirement: Option<TemplateAutostartRequirement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_user_autostart: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_user_autostop: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_user_cancel_workspace_jobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_ttl_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_til_dormant_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_til_dormant_autodelete_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_active_version: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecation_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_everyone_group_access: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_port_share_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_behavior: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_classic_parameter_flow: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateActiveTemplateVersion {
    pub id: Uuid,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ArchiveTemplateVersionsRequest {
    pub all: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArchiveTemplateVersionsResponse {
    pub template_id: Uuid,
    pub archived_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateExample {
    #[schema(format = Uuid)]
    pub id: String,
    pub url: String,
    pub name: String,
    pub description: String,
    pub icon: String,
    pub tags: Vec<String>,
    pub markdown: String,
}

/// Role per user id / group id; an empty role removes the entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateTemplateAcl {
    pub user_perms: HashMap<String, String>,
    pub group_perms: HashMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateUser {
    #[serde(flatten)]
    pub user: crate::User,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateGroup {
    #[serde(flatten)]
    pub group: Group,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateAcl {
    pub users: Vec<TemplateUser>,
    pub group: Vec<TemplateGroup>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AclAvailable {
    pub users: Vec<ReducedUser>,
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DauEntry {
    pub date: String,
    pub amount: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DausResponse {
    pub entries: Vec<DauEntry>,
    pub tz_hour_offset: i64,
}

// ---------------------------------------------------------------------------------------------
// Dynamic parameters: a template version's parameter form, evaluated for given inputs.

/// One evaluation request (`POST .../dynamic-parameters/evaluate`, or a WebSocket message).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct DynamicParametersRequest {
    /// Echoed in the response so a client can match answers to requests.
    pub id: i64,
    pub inputs: BTreeMap<String, String>,
    /// The workspace owner the form is for (the caller when absent).
    pub owner_id: Option<uuid::Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DynamicParametersResponse {
    pub id: i64,
    pub diagnostics: Vec<FriendlyDiagnostic>,
    pub parameters: Vec<PreviewParameter>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FriendlyDiagnostic {
    /// `error` or `warning`.
    pub severity: String,
    pub summary: String,
    pub detail: String,
    pub extra: DiagnosticExtra,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiagnosticExtra {
    pub code: String,
}

/// A string that may be unset (`valid: false`), as HCL values are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NullHclString {
    pub value: String,
    pub valid: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreviewParameter {
    pub name: String,
    pub display_name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub form_type: String,
    pub styling: PreviewParameterStyling,
    pub mutable: bool,
    pub default_value: NullHclString,
    pub icon: String,
    pub options: Vec<PreviewParameterOption>,
    pub validations: Vec<PreviewParameterValidation>,
    pub required: bool,
    pub order: i64,
    pub ephemeral: bool,
    pub value: NullHclString,
    pub diagnostics: Vec<FriendlyDiagnostic>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreviewParameterStyling {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub placeholder: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mask_input: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreviewParameterOption {
    pub name: String,
    pub description: String,
    pub value: NullHclString,
    pub icon: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreviewParameterValidation {
    pub validation_error: String,
    pub validation_regex: Option<String>,
    pub validation_min: Option<i64>,
    pub validation_max: Option<i64>,
    pub validation_monotonic: Option<String>,
}
