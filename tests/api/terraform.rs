//! The terraform provisioner end to end, with the real `terraform` binary: imports, builds
//! carrying state, failures, cancellation, timings, and the built-in example.
//!
//! Without a `terraform` on PATH each test prints a loud SKIPPED line and passes. Templates that
//! use the coder provider (`coder_parameter`, `coder_agent`, ...) also need it installable
//! offline: `TF_CLI_CONFIG_FILE` naming the filesystem mirror `tests/peers/build.sh` writes
//! (`.ci/run` sets it); without one those tests print their own SKIPPED line.
//!
//! Longer than 800 lines on purpose: 10 independent end-to-end tests of one provisioner, with
//! the templates they import written inline.

use std::io::Write;
use std::time::{Duration, Instant};

use codersdk::{
    Client, CreateTemplateVersionRequest, CreateWorkspaceRequest, ProvisionerJobLog, Template,
    TemplateExample, TemplateVersion, TemplateVersionParameter, TemplateVersionVariable,
    VariableValue, Workspace, WorkspaceBuildTimings, WorkspaceResource,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::echo::{self, wait_import};
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{raw_json, TestServer};

/// Builds take init + plan + apply; the machine may be busy with other tests.
const BUILD_TIMEOUT: Duration = Duration::from_secs(90);

/// Whether terraform is here; if not, says so loudly (the test then returns).
fn have_terraform() -> bool {
    if coderd_provisioner::terraform::find_binary(None).is_some() {
        return true;
    }
    // Straight to stderr: the test harness would swallow `eprintln!` of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: terraform not found on PATH; the terraform provisioner test did not run"
    );
    false
}

/// Whether `terraform init` can install the coder provider here (from the mirror the server's
/// CLI configuration names); if not, says so loudly (the test then returns).
fn have_coder_provider() -> bool {
    if !have_terraform() {
        return false;
    }
    let mirror = std::env::var_os("TF_CLI_CONFIG_FILE")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|config| config.contains("registry.terraform.io/coder/coder"));
    if !mirror {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: no coder provider mirror (TF_CLI_CONFIG_FILE from tests/peers/build.sh); \
             the terraform test with coder_* blocks did not run"
        );
    }
    mirror
}

async fn server() -> TestServer {
    TestServer::start_with(|o| {
        o.provisioner_types = vec!["echo".into(), "terraform".into()];
    })
    .await
}

fn tar(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, text) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, text.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// Uploads the files as a terraform template version and waits for its import.
async fn import(
    c: &Client,
    org: Uuid,
    files: &[(&str, &str)],
    variables: &[(&str, &str)],
) -> TemplateVersion {
    let (_, file) = c
        .upload("application/x-tar", tar(files))
        .await
        .expect("uploading");
    let req = CreateTemplateVersionRequest {
        storage_method: "file".into(),
        provisioner: "terraform".into(),
        file_id: Some(file.hash),
        user_variable_values: variables
            .iter()
            .map(|(name, value)| VariableValue {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect(),
        ..Default::default()
    };
    let v = c
        .create_template_version(org, &req)
        .await
        .expect("creating a version");
    wait_import(c, v.id).await
}

async fn template_from(c: &Client, org: Uuid, name: &str, version: &TemplateVersion) -> Template {
    assert_eq!(version.job.status, "succeeded", "{:?}", version.job);
    echo::template_from(c, org, name, version.id).await
}

async fn state(c: &Client, build: Uuid) -> Value {
    let raw = c
        .send(
            reqwest::Method::GET,
            &format!("/api/v2/workspacebuilds/{build}/state"),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 200);
    serde_json::from_slice(&raw.body).expect("the state is Terraform's JSON state")
}

async fn logs(c: &Client, build: Uuid) -> Vec<ProvisionerJobLog> {
    c.get_json(&format!("/api/v2/workspacebuilds/{build}/logs"))
        .await
        .unwrap()
}

fn has_log(logs: &[ProvisionerJobLog], stage: &str, text: &str) -> bool {
    logs.iter()
        .any(|l| l.stage == stage && l.output.contains(text))
}

/// The state's instances as (address, id).
fn state_ids(state: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in state["resources"].as_array().into_iter().flatten() {
        for i in r["instances"].as_array().into_iter().flatten() {
            out.push((
                format!(
                    "{}.{}",
                    r["type"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ),
                i["attributes"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
    }
    out
}

const VARIABLES_TF: &str = r#"
variable "region" {
  type        = string
  description = "Where it runs"
  default     = "eu"
}

variable "machines" {
  type    = number
  default = 2
}

variable "token" {
  type      = string
  sensitive = true
}

variable "tags" {
  type    = list(string)
  default = ["a", "b"]
}

resource "terraform_data" "home" {
  input = var.region
}

resource "terraform_data" "machine" {
  count = var.machines
  input = "${var.region}-${count.index}"
}
"#;

#[tokio::test]
async fn import_reads_variables_readme_and_resources() {
    if !have_terraform() {
        return;
    }
    let srv = server().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let files = [("main.tf", VARIABLES_TF), ("README.md", "# Machines\n")];

    // A required variable without a value fails the import before Terraform runs.
    let v = import(&owner, org, &files, &[]).await;
    assert_eq!(v.job.status, "failed");
    assert_eq!(
        v.job.error_code.as_deref(),
        Some("REQUIRED_TEMPLATE_VARIABLES")
    );
    assert!(v.job.error.contains("token"), "{}", v.job.error);

    let v = import(
        &owner,
        org,
        &files,
        &[("token", "s3cret"), ("machines", "3")],
    )
    .await;
    assert_eq!(v.job.status, "succeeded", "{:?}", v.job);
    assert_eq!(v.readme, "# Machines\n");

    let vars: Vec<TemplateVersionVariable> = owner
        .get_json(&format!("/api/v2/templateversions/{}/variables", v.id))
        .await
        .unwrap();
    let got: Vec<(&str, &str, &str, &str, bool, bool)> = vars
        .iter()
        .map(|v| {
            (
                v.name.as_str(),
                v.kind.as_str(),
                v.value.as_str(),
                v.default_value.as_str(),
                v.required,
                v.sensitive,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("region", "string", "eu", "eu", false, false),
            ("machines", "number", "3", "2", false, false),
            ("token", "string", "*redacted*", "*redacted*", true, true),
            (
                "tags",
                "string",
                r#"["a","b"]"#,
                r#"["a","b"]"#,
                false,
                false
            ),
        ]
    );
    assert_eq!(vars[0].description, "Where it runs");

    let params: Vec<TemplateVersionParameter> = owner
        .get_json(&format!(
            "/api/v2/templateversions/{}/rich-parameters",
            v.id
        ))
        .await
        .unwrap();
    assert!(params.is_empty());

    // The plan saw the variables' values: three machines and a home, for start and for stop.
    let resources: Vec<WorkspaceResource> = owner
        .get_json(&format!("/api/v2/templateversions/{}/resources", v.id))
        .await
        .unwrap();
    for transition in ["start", "stop"] {
        let mut names: Vec<&str> = resources
            .iter()
            .filter(|r| r.workspace_transition == transition)
            .map(|r| r.name.as_str())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["home", "machine", "machine", "machine"],
            "{transition}"
        );
        assert!(resources.iter().all(|r| r.kind == "terraform_data"));
    }
    let logs: Vec<ProvisionerJobLog> = owner
        .get_json(&format!("/api/v2/templateversions/{}/logs", v.id))
        .await
        .unwrap();
    assert!(
        has_log(
            &logs,
            "Detecting persistent resources",
            "terraform_data.home: Plan to create"
        ),
        "{logs:#?}"
    );
    assert!(has_log(
        &logs,
        "Setting up",
        "Terraform has been successfully initialized"
    ));
}

#[tokio::test]
async fn coder_parameters_are_read_statically() {
    if !have_coder_provider() {
        return;
    }
    let srv = server().await;
    let (owner, first) = srv.owner().await;
    let main = r#"
terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}

variable "default_size" { default = "large" }

data "coder_parameter" "size" {
  name         = "size"
  display_name = "Size"
  description  = "How big"
  default      = var.default_size
  mutable      = true
  option {
    name  = "Small"
    value = "small"
  }
  option {
    name  = "Large"
    value = "large"
  }
}

data "coder_parameter" "cpus" {
  name    = "cpus"
  type    = "number"
  default = 4
  validation {
    min = 1
    max = 16
  }
}
"#;
    let v = import(&owner, first.organization_id, &[("main.tf", main)], &[]).await;
    let logs: Vec<ProvisionerJobLog> = owner
        .get_json(&format!("/api/v2/templateversions/{}/logs", v.id))
        .await
        .unwrap();
    assert!(
        has_log(
            &logs,
            "Parsing template parameters",
            "Found 1 variable(s) and 2 parameter(s)"
        ),
        "the blocks were read before Terraform ran: {logs:#?}"
    );
    assert_eq!(v.job.status, "succeeded", "{:?}", v.job);
    let params: Vec<TemplateVersionParameter> = owner
        .get_json(&format!(
            "/api/v2/templateversions/{}/rich-parameters",
            v.id
        ))
        .await
        .unwrap();
    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["size", "cpus"]);
    assert_eq!(params[0].default_value, "large");
    assert_eq!(params[0].options.len(), 2);
    assert_eq!(params[1].default_value, "4");
    assert!(!params[1].required);
    assert_eq!(
        (params[1].validation_min, params[1].validation_max),
        (Some(1), Some(16))
    );
}

/// A template as upstream's examples are shaped: parameters, an agent, and a machine that
/// exists only while the workspace runs and carries the agent's token.
const AGENT_TF: &str = r#"
terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}

data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}

data "coder_parameter" "size" {
  name         = "size"
  display_name = "Size"
  description  = "How big"
  default      = "small"
  mutable      = true
  option {
    name  = "Small"
    value = "small"
  }
  option {
    name  = "Large"
    value = "large"
  }
}

data "coder_parameter" "cpus" {
  name    = "cpus"
  type    = "number"
  default = 2
  validation {
    min = 1
    max = 16
  }
}

# Required: no default. (With a validation block the provider would refuse the import's missing
# value, as it does upstream.)
data "coder_parameter" "project" {
  name = "project"
}

resource "coder_agent" "dev" {
  os                 = "linux"
  arch               = "amd64"
  dir                = "/home/coder"
  connection_timeout = 300
  display_apps {
    vscode_insiders = true
    ssh_helper      = false
  }
}

resource "coder_app" "code" {
  agent_id     = coder_agent.dev.id
  slug         = "code"
  display_name = "Code"
  url          = "http://localhost:8080"
  share        = "authenticated"
}

resource "coder_metadata" "machine" {
  count       = data.coder_workspace.me.start_count
  resource_id = terraform_data.machine[0].id
  daily_cost  = 7
  item {
    key   = "size"
    value = data.coder_parameter.size.value
  }
  item {
    key   = "init_script"
    value = coder_agent.dev.init_script
  }
}

resource "terraform_data" "machine" {
  count = data.coder_workspace.me.start_count
  input = {
    token = coder_agent.dev.token
    size  = data.coder_parameter.size.value
  }
  provisioner "local-exec" {
    command = "echo \"machine ${data.coder_parameter.size.value} with ${data.coder_parameter.cpus.value} cpus for ${data.coder_parameter.project.value} of ${data.coder_workspace_owner.me.name} in ${data.coder_workspace.me.name}\""
  }
}
"#;

/// The agent resources of a list of resources, as (resource type.name, agent).
fn agents(resources: &[WorkspaceResource]) -> Vec<(String, &codersdk::WorkspaceAgent)> {
    resources
        .iter()
        .flat_map(|r| {
            r.agents
                .iter()
                .map(move |a| (format!("{}.{}", r.kind, r.name), a))
        })
        .collect()
}

#[tokio::test]
async fn coder_parameters_and_agent_import_build_and_delete() {
    if !have_coder_provider() {
        return;
    }
    let srv = server().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let v = import(&owner, org, &[("main.tf", AGENT_TF)], &[]).await;
    assert_eq!(v.job.status, "succeeded", "{:?}", v.job);

    // The parameters, with their options and validation, from the coder_parameter blocks.
    let params: Vec<TemplateVersionParameter> = owner
        .get_json(&format!(
            "/api/v2/templateversions/{}/rich-parameters",
            v.id
        ))
        .await
        .unwrap();
    let names: Vec<(&str, &str, bool)> = params
        .iter()
        .map(|p| (p.name.as_str(), p.kind.as_str(), p.required))
        .collect();
    assert_eq!(
        names,
        [
            ("size", "string", false),
            ("cpus", "number", false),
            ("project", "string", true)
        ]
    );
    let size = &params[0];
    assert_eq!(
        (size.display_name.as_str(), size.description.as_str()),
        ("Size", "How big")
    );
    assert_eq!(size.default_value, "small");
    assert!(size.mutable);
    let options: Vec<(&str, &str)> = size
        .options
        .iter()
        .map(|o| (o.name.as_str(), o.value.as_str()))
        .collect();
    assert_eq!(options, [("Small", "small"), ("Large", "large")]);
    assert_eq!(params[1].default_value, "2");
    assert_eq!(
        (params[1].validation_min, params[1].validation_max),
        (Some(1), Some(16))
    );

    // The version's resources: a start has the machine, with the agent on it; a stop has no
    // machine, so the agent has nowhere to live.
    let resources: Vec<WorkspaceResource> = owner
        .get_json(&format!("/api/v2/templateversions/{}/resources", v.id))
        .await
        .unwrap();
    let found = agents(&resources);
    assert_eq!(found.len(), 1, "{resources:#?}");
    let (on, agent) = &found[0];
    assert_eq!(on, "terraform_data.machine", "{resources:#?}");
    assert_eq!(agent.name, "dev");
    assert_eq!(
        (
            agent.operating_system.as_str(),
            agent.architecture.as_str(),
            agent.directory.as_str()
        ),
        ("linux", "amd64", "/home/coder")
    );
    assert_eq!(agent.connection_timeout_seconds, 300);
    assert_eq!(
        agent.display_apps,
        [
            "vscode",
            "vscode_insiders",
            "port_forwarding_helper",
            "web_terminal"
        ]
    );
    // In a plan the ids are unknown: the app and the metadata are linked by references.
    let slugs: Vec<&str> = agent.apps.iter().map(|a| a.slug.as_str()).collect();
    assert_eq!(slugs, ["code"]);
    let machine = resources
        .iter()
        .find(|r| r.kind == "terraform_data")
        .unwrap();
    assert_eq!(machine.workspace_transition, "start");
    assert_eq!(machine.daily_cost, 7);

    // A workspace: the parameters reach the provider, the agent lands on the machine.
    let t = template_from(&owner, org, "agent", &v).await;
    let req = CreateWorkspaceRequest {
        template_id: Some(t.id),
        name: "dev".into(),
        rich_parameter_values: vec![
            codersdk::WorkspaceBuildParameter {
                name: "size".into(),
                value: "large".into(),
            },
            codersdk::WorkspaceBuildParameter {
                name: "cpus".into(),
                value: "4".into(),
            },
            codersdk::WorkspaceBuildParameter {
                name: "project".into(),
                value: "demo".into(),
            },
        ],
        ..Default::default()
    };
    let w: Workspace = owner
        .request(
            reqwest::Method::POST,
            "/api/v2/users/me/workspaces",
            Some(&req),
        )
        .await
        .expect("creating a workspace");
    let w = owner.wait_for_build(w.id, BUILD_TIMEOUT).await;
    let b = &w.latest_build;
    assert_eq!(b.status, "running", "{:?}", b.job);
    let start_logs = logs(&owner, b.id).await;
    assert!(
        has_log(
            &start_logs,
            "Starting workspace",
            "machine large with 4 cpus for demo of owner in dev"
        ),
        "the provider read the parameters and workspace facts: {start_logs:#?}"
    );
    let found = agents(&b.resources);
    assert_eq!(found.len(), 1, "{:#?}", b.resources);
    let (on, agent) = &found[0];
    assert_eq!(on, "terraform_data.machine");
    assert_eq!(agent.name, "dev");
    assert_eq!(agent.operating_system, "linux");
    assert_eq!(
        agent.display_apps,
        [
            "vscode",
            "vscode_insiders",
            "port_forwarding_helper",
            "web_terminal"
        ]
    );
    // Nothing runs the agent here: it is waiting for its first connection, as upstream says.
    assert_eq!(
        (agent.status.as_str(), agent.lifecycle_state.as_str()),
        ("connecting", "created")
    );
    // The app and the metadata found their agent and resource through the provider's ids.
    let apps: Vec<(&str, &str, &str, &str)> = agent
        .apps
        .iter()
        .map(|a| {
            (
                a.slug.as_str(),
                a.display_name.as_str(),
                a.url.as_str(),
                a.sharing_level.as_str(),
            )
        })
        .collect();
    assert_eq!(
        apps,
        [("code", "Code", "http://localhost:8080", "authenticated")]
    );
    let machine = b
        .resources
        .iter()
        .find(|r| r.kind == "terraform_data")
        .unwrap();
    assert_eq!(machine.daily_cost, 7);
    let metadata: Vec<(&str, &str)> = machine
        .metadata
        .iter()
        .map(|m| (m.key.as_str(), m.value.as_str()))
        .collect();
    assert_eq!(metadata[0], ("size", "large"));
    // The agent's init script is ours: it fetches this server's agent binary for the agent's
    // platform and runs it with token auth.
    let (key, init) = metadata[1];
    assert_eq!(key, "init_script");
    assert!(
        init.contains(&format!("url=\"{}/bin/coder-linux-amd64\"", srv.url)),
        "{init}"
    );
    assert!(init.contains("CODER_AGENT_AUTH=\"token\""), "{init}");
    assert!(init.contains("exec ./coder agent"), "{init}");
    assert!(
        b.resources.iter().all(|r| !r.kind.starts_with("coder_")),
        "the provider's helper types are not resources: {:#?}",
        b.resources
    );
    let started = state(&owner, b.id).await;
    let addresses: Vec<String> = state_ids(&started).into_iter().map(|(a, _)| a).collect();
    assert!(
        addresses.contains(&"coder_agent.dev".to_string())
            && addresses.contains(&"terraform_data.machine".to_string()),
        "{addresses:?}"
    );
    // The agent will authenticate with the token the provider made and the template handed to
    // the machine, as upstream's agents do: that is the token the server keeps for it.
    let token = started["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["type"] == "coder_agent")
        .and_then(|r| r["instances"][0]["attributes"]["token"].as_str())
        .unwrap_or_else(|| panic!("no agent token in the state: {started}"))
        .to_string();
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&srv.db_url)
        .await
        .unwrap();
    let (kept,): (Uuid,) = sqlx::query_as("SELECT auth_token FROM workspace_agents WHERE id = $1")
        .bind(agent.id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(kept.to_string(), token);

    // Stop: the machine goes, and with it the agent.
    owner.stop(w.id).await;
    let w = owner.wait_for_build(w.id, BUILD_TIMEOUT).await;
    assert_eq!(w.latest_build.status, "stopped", "{:?}", w.latest_build.job);
    assert!(
        agents(&w.latest_build.resources).is_empty(),
        "{:#?}",
        w.latest_build.resources
    );
    let stopped = state(&owner, w.latest_build.id).await;
    let addresses: Vec<String> = state_ids(&stopped).into_iter().map(|(a, _)| a).collect();
    assert!(
        !addresses.contains(&"terraform_data.machine".to_string()),
        "{addresses:?}"
    );

    // Delete: nothing left.
    owner.delete(w.id).await;
    let w = owner.wait_for_build(w.id, BUILD_TIMEOUT).await;
    assert_eq!(w.latest_build.status, "deleted", "{:?}", w.latest_build.job);
    let deleted = state(&owner, w.latest_build.id).await;
    assert_eq!(deleted["resources"], json!([]));
}

/// Imports plan with no parameter values, as upstream's do: the provider then refuses a
/// parameter whose validation an empty value fails, and the import fails with its words.
#[tokio::test]
async fn a_required_parameter_with_validation_fails_the_import_as_upstream() {
    if !have_coder_provider() {
        return;
    }
    let srv = server().await;
    let (owner, first) = srv.owner().await;
    let main = r#"
terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}

data "coder_parameter" "cpus" {
  name = "cpus"
  type = "number"
  validation {
    min = 1
    max = 16
  }
}
"#;
    let v = import(&owner, first.organization_id, &[("main.tf", main)], &[]).await;
    assert_eq!(v.job.status, "failed", "{:?}", v.job);
    assert!(
        v.job.error.contains("is not a number") && v.job.error.contains("main.tf"),
        "the provider's diagnostic, with its place: {}",
        v.job.error
    );
}

const LIFECYCLE_TF: &str = r#"
variable "greeting" {
  type    = string
  default = "hi"
}

# Built once and kept: its id shows whether later builds saw the earlier state.
resource "terraform_data" "home" {
  input = var.greeting
  provisioner "local-exec" {
    when    = destroy
    command = "echo \"goodbye from $CODER_WORKSPACE_NAME\""
  }
}

# Replaced by every build, so its provisioner reports each build's facts.
resource "terraform_data" "session" {
  triggers_replace = timestamp()
  provisioner "local-exec" {
    command = "echo \"$GREETING: $CODER_WORKSPACE_TRANSITION $CODER_WORKSPACE_NAME for $CODER_WORKSPACE_OWNER\""
    environment = {
      GREETING = var.greeting
    }
  }
}

output "home" {
  value = terraform_data.home.id
}
"#;

#[tokio::test]
async fn start_stop_delete_carry_state() {
    if !have_terraform() {
        return;
    }
    let srv = server().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let v = import(
        &owner,
        org,
        &[("main.tf", LIFECYCLE_TF)],
        &[("greeting", "hello")],
    )
    .await;
    let t = template_from(&owner, org, "lifecycle", &v).await;

    // Start: the resources exist, in the build and in the stored state.
    let w = owner.create_workspace(t.id, "dev").await;
    let w = owner.wait_for_build(w.id, BUILD_TIMEOUT).await;
    let b = &w.latest_build;
    assert_eq!(b.status, "running", "{:?}", b.job);
    let mut names: Vec<(&str, &str)> = b
        .resources
        .iter()
        .map(|r| (r.kind.as_str(), r.name.as_str()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [("terraform_data", "home"), ("terraform_data", "session")]
    );
    let started = state(&owner, b.id).await;
    assert!(started["terraform_version"].is_string(), "{started}");
    let ids = state_ids(&started);
    let home = ids
        .iter()
        .find(|(a, _)| a == "terraform_data.home")
        .unwrap()
        .1
        .clone();
    assert!(!home.is_empty());
    assert_eq!(started["outputs"]["home"]["value"], home.as_str());

    let start_logs = logs(&owner, b.id).await;
    assert!(
        has_log(
            &start_logs,
            "Starting workspace",
            "hello: start dev for owner"
        ),
        "the build saw its variables and workspace facts: {start_logs:#?}"
    );
    assert!(has_log(
        &start_logs,
        "Planning infrastructure",
        "Plan to create"
    ));
    assert!(start_logs
        .iter()
        .any(|l| l.log_level == "info" && l.stage == "Setting up"));

    // Timings: per resource and stage, from Terraform's own events.
    let timings: WorkspaceBuildTimings = owner
        .get_json(&format!("/api/v2/workspacebuilds/{}/timings", b.id))
        .await
        .unwrap();
    let apply = timings
        .provisioner_timings
        .iter()
        .find(|t| t.stage == "apply" && t.resource == "terraform_data.home")
        .unwrap_or_else(|| panic!("no apply timing for home: {timings:#?}"));
    assert_eq!(
        (apply.source.as_str(), apply.action.as_str()),
        ("terraform", "create")
    );
    assert!(apply.ended_at >= apply.started_at);
    for stage in ["init", "plan", "apply"] {
        assert!(
            timings.provisioner_timings.iter().any(|t| t.stage == stage),
            "no {stage} timing: {timings:#?}"
        );
    }

    // Stop: the previous state was handed in, so `home` is the same resource.
    owner.stop(w.id).await;
    let w = owner.wait_for_build(w.id, BUILD_TIMEOUT).await;
    assert_eq!(w.latest_build.status, "stopped", "{:?}", w.latest_build.job);
    let stopped = state(&owner, w.latest_build.id).await;
    let ids = state_ids(&stopped);
    assert!(
        ids.contains(&("terraform_data.home".into(), home.clone())),
        "{ids:?}"
    );
    let stop_logs = logs(&owner, w.latest_build.id).await;
    assert!(
        has_log(
            &stop_logs,
            "Stopping workspace",
            "hello: stop dev for owner"
        ),
        "{stop_logs:#?}"
    );

    // Delete: destroyed, destroy-time provisioners ran, nothing left in the state.
    owner.delete(w.id).await;
    let w = owner.wait_for_build(w.id, BUILD_TIMEOUT).await;
    assert_eq!(w.latest_build.status, "deleted", "{:?}", w.latest_build.job);
    assert!(has_log(
        &logs(&owner, w.latest_build.id).await,
        "Destroying workspace",
        "goodbye from dev"
    ));
    let deleted = state(&owner, w.latest_build.id).await;
    assert_eq!(deleted["resources"], json!([]));
}

#[tokio::test]
async fn failing_local_exec_fails_the_build_with_terraforms_message() {
    if !have_terraform() {
        return;
    }
    let srv = server().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let main = r#"
resource "terraform_data" "broken" {
  provisioner "local-exec" {
    command = "echo 'about to fail' >&2; exit 3"
  }
}
"#;
    let v = import(&owner, org, &[("main.tf", main)], &[]).await;
    let t = template_from(&owner, org, "broken", &v).await;
    let w = owner.create_workspace(t.id, "dev").await;
    let w = owner.wait_for_build(w.id, BUILD_TIMEOUT).await;
    let b = &w.latest_build;
    assert_eq!(b.status, "failed");
    assert!(
        b.job.error.contains("local-exec provisioner error")
            && b.job.error.contains("exit status 3"),
        "{}",
        b.job.error
    );
    let logs = logs(&owner, b.id).await;
    assert!(
        logs.iter().any(|l| l.log_level == "error"
            && l.stage == "Starting workspace"
            && l.output.contains("local-exec provisioner error")),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn a_failed_build_stores_the_state_terraform_wrote() {
    if !have_terraform() {
        return;
    }
    let srv = server().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    // `made` is created, then `broken`'s provisioner fails the apply.
    let main = r#"
resource "terraform_data" "made" {
  provisioner "local-exec" {
    when    = destroy
    command = "echo 'destroying made'"
  }
}

resource "terraform_data" "broken" {
  depends_on = [terraform_data.made]
  provisioner "local-exec" {
    command = "exit 1"
  }
}
"#;
    let v = import(&owner, org, &[("main.tf", main)], &[]).await;
    let t = template_from(&owner, org, "half-built", &v).await;
    let w = owner.create_workspace(t.id, "dev").await;
    let w = owner.wait_for_build(w.id, BUILD_TIMEOUT).await;
    let b = &w.latest_build;
    assert_eq!(b.status, "failed", "{:?}", b.job);
    assert!(
        b.job.error.contains("local-exec provisioner error"),
        "{}",
        b.job.error
    );

    // The failed build's state names what Terraform created before it failed.
    let failed = state(&owner, b.id).await;
    let ids = state_ids(&failed);
    let made = ids
        .iter()
        .find(|(a, _)| a == "terraform_data.made")
        .unwrap_or_else(|| panic!("the created resource is in the state: {failed}"));
    assert!(!made.1.is_empty(), "{failed}");

    // So a delete sees it, and destroys it.
    owner.delete(w.id).await;
    let w = owner.wait_for_build(w.id, BUILD_TIMEOUT).await;
    assert_eq!(w.latest_build.status, "deleted", "{:?}", w.latest_build.job);
    let delete_logs = logs(&owner, w.latest_build.id).await;
    assert!(
        has_log(&delete_logs, "Destroying workspace", "destroying made"),
        "the delete destroyed what the failed build created: {delete_logs:#?}"
    );
    let deleted = state(&owner, w.latest_build.id).await;
    assert_eq!(deleted["resources"], json!([]));
}

#[tokio::test]
async fn syntax_errors_fail_the_import_with_terraforms_message() {
    if !have_terraform() {
        return;
    }
    let srv = server().await;
    let (owner, first) = srv.owner().await;
    let main = "resource \"terraform_data\" \"x\" {\n  input = \n}\n";
    let v = import(&owner, first.organization_id, &[("main.tf", main)], &[]).await;
    assert_eq!(v.job.status, "failed");
    assert!(
        v.job.error.contains("Invalid expression") && v.job.error.contains("main.tf line 2"),
        "{}",
        v.job.error
    );
}

/// Whether a process with exactly this command line runs.
fn process_running(cmdline: &[&str]) -> bool {
    let want: Vec<u8> = cmdline
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want))
}

#[tokio::test]
async fn cancel_interrupts_a_long_local_exec() {
    if !have_terraform() {
        return;
    }
    let srv = server().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    // An unusual duration, to recognize this test's sleep among the machine's processes.
    let main = r#"
resource "terraform_data" "quick" {}

resource "terraform_data" "slow" {
  depends_on = [terraform_data.quick]
  provisioner "local-exec" {
    command = "sleep 30.0417"
  }
}
"#;
    let v = import(&owner, org, &[("main.tf", main)], &[]).await;
    let t = template_from(&owner, org, "slow", &v).await;
    let w = owner.create_workspace(t.id, "dev").await;
    let build_id = w.latest_build.id;

    // Wait until the long command runs.
    let started = Instant::now();
    while !has_log(
        &logs(&owner, build_id).await,
        "Starting workspace",
        "sleep 30.0417",
    ) {
        assert!(
            started.elapsed() < BUILD_TIMEOUT,
            "the local-exec never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/workspacebuilds/{build_id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let canceled_at = Instant::now();
    let w = owner.wait_for_build(w.id, BUILD_TIMEOUT).await;
    assert_eq!(
        w.latest_build.status, "canceled",
        "{:?}",
        w.latest_build.job
    );
    assert!(
        canceled_at.elapsed() < Duration::from_secs(10),
        "canceling took {:?}",
        canceled_at.elapsed()
    );
    let logs = logs(&owner, build_id).await;
    assert!(
        has_log(&logs, "Starting workspace", "Interrupt received"),
        "Terraform was interrupted, not killed: {logs:#?}"
    );
    assert!(
        !process_running(&["sleep", "30.0417"]),
        "the canceled job's command is gone"
    );
    // What Terraform created before the cancel is in the canceled build's state.
    let canceled = state(&owner, build_id).await;
    assert!(
        state_ids(&canceled)
            .iter()
            .any(|(a, _)| a == "terraform_data.quick"),
        "{canceled}"
    );
}

#[tokio::test]
async fn local_terraform_example_imports_and_builds() {
    if !have_terraform() {
        return;
    }
    let srv = server().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let examples: Vec<TemplateExample> =
        owner.get_json("/api/v2/templates/examples").await.unwrap();
    let example = examples
        .iter()
        .find(|e| e.name == "Local Terraform")
        .expect("the Local Terraform example");
    let v = owner
        .create_template_version(
            org,
            &CreateTemplateVersionRequest {
                storage_method: "file".into(),
                provisioner: "terraform".into(),
                example_id: example.id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v = wait_import(&owner, v.id).await;
    assert_eq!(v.job.status, "succeeded", "{:?}", v.job);
    assert!(v.readme.starts_with("# Local Terraform"), "{}", v.readme);
    let vars: Vec<TemplateVersionVariable> = owner
        .get_json(&format!("/api/v2/templateversions/{}/variables", v.id))
        .await
        .unwrap();
    let names: Vec<(&str, &str)> = vars
        .iter()
        .map(|v| (v.name.as_str(), v.kind.as_str()))
        .collect();
    assert_eq!(names, [("greeting", "string"), ("delay_seconds", "number")]);

    let t = template_from(&owner, org, "local", &v).await;
    let w = owner.create_workspace(t.id, "example").await;
    let w = owner.wait_for_build(w.id, BUILD_TIMEOUT).await;
    assert_eq!(w.latest_build.status, "running", "{:?}", w.latest_build.job);
    assert_eq!(w.latest_build.resources[0].name, "workspace");
    assert!(has_log(
        &logs(&owner, w.latest_build.id).await,
        "Starting workspace",
        "Hello from coderd-rs: workspace example of owner was created"
    ));

    owner.delete(w.id).await;
    let w = owner.wait_for_build(w.id, BUILD_TIMEOUT).await;
    assert_eq!(w.latest_build.status, "deleted", "{:?}", w.latest_build.job);
    assert!(has_log(
        &logs(&owner, w.latest_build.id).await,
        "Destroying workspace",
        "Goodbye from workspace example"
    ));
}
