//! Provisioners turn a template archive into infrastructure (or, for `echo`, replay what the
//! archive declares), and the daemon loop feeds them jobs from the queue in PostgreSQL.
//!
//! A [`Provisioner`] knows nothing of the database or HTTP: it gets a [`JobRequest`] and a
//! [`JobContext`] (a log sink and a cancellation signal) and answers an [`Outcome`] or a
//! [`Failure`]. The daemon stores what it produced.

pub mod daemon;
pub mod echo;
pub mod terraform;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A provisioner implementation (`echo`, `terraform`).
pub trait Provisioner: Send + Sync {
    /// The provisioner type jobs name: `echo` or `terraform`.
    fn name(&self) -> &'static str;

    /// Runs one job. Logs go to `ctx.logs` as they happen; when `ctx.canceled` turns true the
    /// provisioner stops as soon as it safely can and answers [`Failure::Canceled`] (with the
    /// state it was left with, for a build that had begun changing things).
    fn run<'a>(
        &'a self,
        req: JobRequest,
        ctx: JobContext,
    ) -> BoxFuture<'a, Result<Outcome, Failure>>;
}

/// What to do, with the template archive (a tar) it applies to.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub job_id: Uuid,
    pub kind: JobKind,
    pub archive: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum JobKind {
    /// Import a template version: read its variables, parameters, readme, and the resources a
    /// start (and stop) would create.
    Import {
        user_variable_values: Vec<VariableValue>,
    },
    /// Plan a start without applying it.
    DryRun {
        parameters: Vec<ParameterValue>,
        variables: Vec<VariableValue>,
        workspace: WorkspaceFacts,
    },
    /// Build a workspace.
    Build {
        transition: Transition,
        parameters: Vec<ParameterValue>,
        variables: Vec<VariableValue>,
        /// The previous build's state (empty for the first build).
        state: Vec<u8>,
        workspace: WorkspaceFacts,
    },
}

/// What a build does: the store's enum, so a build row's transition needs no translation.
pub use coderd_db::Transition;

/// Facts about the workspace being built, as Coder's Terraform provider receives them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkspaceFacts {
    pub access_url: String,
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub owner_id: Uuid,
    pub owner_name: String,
    pub owner_email: String,
    pub template_id: Uuid,
    pub template_name: String,
    pub template_version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariableValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterValue {
    pub name: String,
    pub value: String,
}

/// A log line as a provisioner writes it. `level` is trace, debug, info, warn or error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub level: String,
    pub stage: String,
    pub output: String,
}

/// What a running job may use.
pub struct JobContext {
    pub logs: mpsc::UnboundedSender<Log>,
    /// Becomes `true` when the job is canceled.
    pub canceled: watch::Receiver<bool>,
}

impl JobContext {
    pub fn log(&self, level: &str, stage: &str, output: impl Into<String>) {
        let _ = self.logs.send(Log {
            level: level.into(),
            stage: stage.into(),
            output: output.into(),
        });
    }

    pub fn is_canceled(&self) -> bool {
        *self.canceled.borrow()
    }

    /// Resolves when the job is canceled (never, if it is not).
    pub async fn wait_canceled(&self) {
        let mut rx = self.canceled.clone();
        if rx.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A successful job's product.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Import(ImportResult),
    DryRun { resources: Vec<Resource> },
    Build(BuildResult),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportResult {
    pub readme: String,
    pub variables: Vec<Variable>,
    pub parameters: Vec<Parameter>,
    pub presets: Vec<Preset>,
    pub start_resources: Vec<Resource>,
    pub stop_resources: Vec<Resource>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildResult {
    pub resources: Vec<Resource>,
    /// New provisioner state; `None` keeps the previous build's.
    pub state: Option<Vec<u8>>,
    pub timings: Vec<Timing>,
}

/// Why a job did not succeed.
///
/// A build may have changed real infrastructure before it failed or was canceled (Terraform
/// creates resources one by one), so either way the provisioner hands back the state it was
/// left with, if any: it is stored as the build's, so that the next build (a delete, say) sees
/// what exists. `None` keeps the previous build's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("canceled")]
    Canceled { state: Option<Vec<u8>> },
    #[error("{error}")]
    Failed {
        error: String,
        /// `REQUIRED_TEMPLATE_VARIABLES` when required variables lack values.
        error_code: Option<String>,
        state: Option<Vec<u8>>,
    },
    /// An import found required variables without values (`REQUIRED_TEMPLATE_VARIABLES`).
    /// The variables it found are still the version's, as upstream records them, so that a
    /// client can tell which ones need values and ask for them.
    #[error("required template variables need values: {}", missing.join(", "))]
    MissingVariables {
        /// Every variable of the template, with the value given or its default.
        variables: Vec<Variable>,
        missing: Vec<String>,
    },
}

impl Failure {
    pub fn failed(error: impl Into<String>) -> Failure {
        Failure::Failed {
            error: error.into(),
            error_code: None,
            state: None,
        }
    }

    /// Canceled, with no new state.
    pub fn canceled() -> Failure {
        Failure::Canceled { state: None }
    }

    /// The same failure, handing back `state` as the build's new state.
    pub fn with_state(mut self, new: Vec<u8>) -> Failure {
        match &mut self {
            Failure::Canceled { state } | Failure::Failed { state, .. } => *state = Some(new),
            // Imports have no state.
            Failure::MissingVariables { .. } => {}
        }
        self
    }

    /// The new state this failure hands back, if any.
    pub fn state(&self) -> Option<&[u8]> {
        match self {
            Failure::Canceled { state } | Failure::Failed { state, .. } => state.as_deref(),
            Failure::MissingVariables { .. } => None,
        }
    }
}

pub const REQUIRED_TEMPLATE_VARIABLES: &str = "REQUIRED_TEMPLATE_VARIABLES";

/// An import's variables with the values given for them (else their defaults); fails with
/// [`Failure::MissingVariables`] when a required one has none.
pub fn resolve_variables(
    variables: Vec<Variable>,
    given: &[VariableValue],
) -> Result<Vec<Variable>, Failure> {
    let value = |name: &str| given.iter().find(|v| v.name == name).map(|v| &v.value);
    let missing: Vec<String> = variables
        .iter()
        .filter(|v| v.required && value(&v.name).is_none())
        .map(|v| v.name.clone())
        .collect();
    let variables: Vec<Variable> = variables
        .into_iter()
        .map(|v| Variable {
            value: value(&v.name)
                .cloned()
                .unwrap_or_else(|| v.default_value.clone()),
            ..v
        })
        .collect();
    if missing.is_empty() {
        Ok(variables)
    } else {
        Err(Failure::MissingVariables { variables, missing })
    }
}

pub use coderd_db::model::{
    Agent, AgentMetadata, AgentScript, App, AppHealthcheck, Parameter, ParameterOption, Preset,
    PresetParameter, Resource, ResourceMetadata, Timing, Variable,
};
