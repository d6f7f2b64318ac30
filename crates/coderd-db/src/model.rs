//! What provisioners produce and the store persists: variables, parameters, resources with
//! their agents and apps, and step timings. Shared by the provisioner crate and the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A template variable (Terraform `variable`), with the value the import resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Variable {
    pub name: String,
    pub description: String,
    /// `string`, `number` or `bool`.
    #[serde(rename = "type")]
    pub kind: String,
    pub default_value: String,
    pub value: String,
    pub required: bool,
    pub sensitive: bool,
}

/// A preset (`coder_workspace_preset`): a named set of parameter values to create a workspace
/// with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preset {
    pub name: String,
    pub description: String,
    pub icon: String,
    /// The one the CLI and dashboard pick when none is named.
    pub default: bool,
    pub parameters: Vec<PresetParameter>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PresetParameter {
    pub name: String,
    pub value: String,
}

/// A stored preset of a template version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPreset {
    pub id: Uuid,
    pub preset: Preset,
}

/// A rich parameter (`coder_parameter`), field for field as `codersdk.TemplateVersionParameter`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Parameter {
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// `string`, `number`, `bool` or `list(string)`.
    #[serde(rename = "type")]
    pub kind: String,
    pub form_type: String,
    pub mutable: bool,
    pub default_value: String,
    pub icon: String,
    pub options: Vec<ParameterOption>,
    pub validation_regex: String,
    pub validation_min: Option<i32>,
    pub validation_max: Option<i32>,
    pub validation_error: String,
    /// `increasing`, `decreasing` or empty.
    pub validation_monotonic: String,
    pub required: bool,
    pub ephemeral: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ParameterOption {
    pub name: String,
    pub description: String,
    pub value: String,
    pub icon: String,
}

/// A resource a build creates (or would create).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resource {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub hide: bool,
    pub icon: String,
    pub daily_cost: i32,
    pub metadata: Vec<ResourceMetadata>,
    pub agents: Vec<Agent>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceMetadata {
    pub key: String,
    pub value: String,
    pub sensitive: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Agent {
    pub name: String,
    pub operating_system: String,
    pub architecture: String,
    pub directory: String,
    /// Seconds before a never-connected agent counts as timed out (Coder's default: 120).
    pub connection_timeout_seconds: i32,
    pub troubleshooting_url: String,
    /// The token the agent authenticates with, when the template chose it (the coder
    /// provider's `coder_agent.token`, which the template hands to the machine); else the
    /// server makes one up.
    pub auth_token: Option<Uuid>,
    /// The built-in apps it offers, in Coder's order (`DISPLAY_APPS`); `None`: the coder
    /// provider's defaults (`DEFAULT_DISPLAY_APPS`).
    pub display_apps: Option<Vec<String>>,
    pub apps: Vec<App>,
    /// Scripts the agent runs (a startup script, `coder_script`s), each logging to a source
    /// of its own.
    pub scripts: Vec<AgentScript>,
    /// Values the agent collects and reports (`coder_agent`'s `metadata` blocks).
    pub metadata: Vec<AgentMetadata>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentScript {
    pub display_name: String,
    pub icon: String,
    pub script: String,
    pub cron: String,
    pub log_path: String,
    pub run_on_start: bool,
    pub run_on_stop: bool,
    pub start_blocks_login: bool,
    pub timeout_seconds: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentMetadata {
    pub key: String,
    pub display_name: String,
    pub script: String,
    pub interval_seconds: i64,
    pub timeout_seconds: i64,
}

/// Coder's display apps, in the order it lists them.
pub const DISPLAY_APPS: [&str; 5] = [
    "vscode",
    "vscode_insiders",
    "ssh_helper",
    "port_forwarding_helper",
    "web_terminal",
];

/// What an agent offers when its template says nothing: every display app but VS Code Insiders
/// (the coder provider's defaults).
pub const DEFAULT_DISPLAY_APPS: [&str; 4] = [
    "vscode",
    "ssh_helper",
    "port_forwarding_helper",
    "web_terminal",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct App {
    pub slug: String,
    pub display_name: String,
    pub url: String,
    pub command: String,
    pub icon: String,
    pub subdomain: bool,
    /// owner, authenticated, organization or public.
    pub sharing_level: String,
    pub external: bool,
    pub hidden: bool,
    /// `slim-window` or `tab`.
    pub open_in: String,
    /// What the agent polls to report the app's health; no URL, no checks.
    pub healthcheck: AppHealthcheck,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppHealthcheck {
    pub url: String,
    /// Seconds between checks.
    pub interval: i32,
    /// Failures in a row before the app is unhealthy.
    pub threshold: i32,
}

/// How long one step of one resource took (for the timings endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// init, plan, graph or apply.
    pub stage: String,
    pub source: String,
    pub action: String,
    pub resource: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}
