//! The `terraform` provisioner (see docs/terraform-provisioner.md): runs the `terraform` binary
//! (or OpenTofu's `tofu`) on a template in a per-job working directory.
//!
//! * Import: the template's `variable` and `data "coder_parameter"` blocks are read statically
//!   (no Terraform needed), then `init` and a `plan` each for start and stop name the
//!   resources a workspace would have.
//! * Dry run: `init` and a start `plan`.
//! * Build: the previous state is written to `terraform.tfstate`, then `init`, `plan` (with
//!   `-destroy` for the delete transition) and `apply` of that plan; the new state and the
//!   resources in it (`terraform show -json`) are the result.
//!
//! `plan` and `apply` run with `-json`: their messages become job logs with Terraform's levels,
//! their error diagnostics become the job's error, and their hook events per-resource timings.
//! A cancel interrupts Terraform (SIGINT), which stops gracefully and writes its state; after
//! a grace period it and whatever it started are killed. A failed or canceled apply still
//! hands back the state Terraform wrote, as upstream does, so that the next build sees the
//! resources it created.
//!
//! Longer than 800 lines on purpose: about 960 lines of one provisioner's job steps (init,
//! plan, apply, state, output reading), which share the working directory and process
//! handling, plus unit tests; reading configuration is `terraform/config.rs`.

mod bootstrap;
mod config;
mod events;
mod resources;

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use self::events::Timings;
use crate::{
    BoxFuture, BuildResult, Failure, ImportResult, JobContext, JobKind, JobRequest, Outcome,
    ParameterValue, Provisioner, Timing, Transition, VariableValue, WorkspaceFacts,
};

/// How long Terraform gets to stop after an interrupt before it is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(10);

/// How long output still gets read after Terraform exited: something it started may hold its
/// pipes open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Lines of plain error output kept for a failure message.
const ERROR_LINES: usize = 60;

// Log stages, as upstream's provisioner daemon names them.
const SETUP_STAGE: &str = "Setting up";
const PARSE_STAGE: &str = "Parsing template parameters";
const DETECT_START_STAGE: &str = "Detecting persistent resources";
const DETECT_STOP_STAGE: &str = "Detecting ephemeral resources";
const PLAN_STAGE: &str = "Planning infrastructure";

const PLAN_FILE: &str = "terraform.tfplan";
const STATE_FILE: &str = "terraform.tfstate";

/// The terraform provisioner.
pub struct Terraform {
    binary: PathBuf,
}

impl Terraform {
    /// A provisioner running `binary`, an absolute path since jobs run in their own
    /// directories (see [`find_binary`] to look one up).
    pub fn new(binary: impl Into<PathBuf>) -> Terraform {
        Terraform {
            binary: binary.into(),
        }
    }

    /// The provisioner for the binary [`find_binary`] finds, if any.
    pub fn find(configured: Option<&Path>) -> Option<Terraform> {
        find_binary(configured).map(Terraform::new)
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }
}

/// Finds the Terraform binary: `configured` when given (a path, or a name looked up on
/// `PATH`), else `terraform` on `PATH`, else OpenTofu's `tofu`. The answer is absolute, since
/// jobs run in their own directories.
pub fn find_binary(configured: Option<&Path>) -> Option<PathBuf> {
    let found = match configured.filter(|p| !p.as_os_str().is_empty()) {
        Some(path) if path.components().count() > 1 => {
            is_executable(path).then(|| path.to_path_buf())
        }
        Some(name) => search_path(name),
        None => search_path(Path::new("terraform")).or_else(|| search_path(Path::new("tofu"))),
    }?;
    std::path::absolute(&found).ok()
}

fn search_path(name: &Path) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Provisioner for Terraform {
    fn name(&self) -> &'static str {
        "terraform"
    }

    fn run<'a>(
        &'a self,
        req: JobRequest,
        ctx: JobContext,
    ) -> BoxFuture<'a, Result<Outcome, Failure>> {
        Box::pin(async move {
            if ctx.is_canceled() {
                return Err(Failure::canceled());
            }
            // Removed when dropped: on every way out, including the daemon dropping this job.
            let dir = WorkDir::create(req.job_id).map_err(|e| {
                Failure::failed(format!("creating the job's working directory: {e}"))
            })?;
            let skipped = {
                let archive = req.archive;
                let into = dir.template.clone();
                tokio::task::spawn_blocking(move || unpack(&archive, &into))
                    .await
                    .map_err(|e| Failure::failed(format!("unpacking the template: {e}")))??
            };
            for entry in skipped {
                ctx.log(
                    "warn",
                    SETUP_STAGE,
                    format!(
                        "Skipped {entry} in the template archive: links and special files are \
                         not unpacked"
                    ),
                );
            }
            let job = Job {
                tf: self,
                ctx: &ctx,
                env: base_env(&dir),
                dir: &dir,
            };
            match req.kind {
                JobKind::Import {
                    user_variable_values,
                } => job.import(&user_variable_values).await,
                JobKind::DryRun {
                    parameters,
                    variables,
                    workspace,
                } => job.dry_run(&parameters, &variables, &workspace).await,
                JobKind::Build {
                    transition,
                    parameters,
                    variables,
                    state,
                    workspace,
                } => {
                    job.build(transition, &parameters, &variables, &state, &workspace)
                        .await
                }
            }
        })
    }
}

/// A job's private directory: the unpacked template (Terraform's working directory), a home
/// and an empty CLI configuration for when the server's are missing.
struct WorkDir {
    root: PathBuf,
    template: PathBuf,
    home: PathBuf,
    cli_config: PathBuf,
}

impl WorkDir {
    fn create(job: Uuid) -> io::Result<WorkDir> {
        let suffix = Uuid::new_v4().simple().to_string();
        let root = std::env::temp_dir().join(format!("coderd-terraform-{job}-{}", &suffix[..8]));
        // Private: the state in it may hold secrets.
        std::fs::DirBuilder::new().mode(0o700).create(&root)?;
        let dir = WorkDir {
            template: root.join("template"),
            home: root.join("home"),
            cli_config: root.join("terraformrc"),
            root,
        };
        std::fs::create_dir(&dir.template)?;
        std::fs::create_dir(&dir.home)?;
        std::fs::write(&dir.cli_config, "")?;
        Ok(dir)
    }

    fn state_file(&self) -> PathBuf {
        self.template.join(STATE_FILE)
    }

    /// The root module's `*.tf` files, by name; hidden ones are skipped, as Terraform skips
    /// them.
    fn root_tf_files(&self) -> Result<Vec<(String, String)>, Failure> {
        let unreadable = |e: io::Error| Failure::failed(format!("reading the template: {e}"));
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.template).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".tf")
                || name.starts_with('.')
                || !entry.file_type().map_err(unreadable)?.is_file()
            {
                continue;
            }
            let bytes = std::fs::read(entry.path()).map_err(unreadable)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| Failure::failed(format!("{name} is not UTF-8 text")))?;
            files.push((name, text));
        }
        files.sort();
        Ok(files)
    }

    fn readme(&self) -> String {
        std::fs::read(self.template.join("README.md"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let root = std::mem::take(&mut self.root);
        let remove = move || {
            if let Err(e) = std::fs::remove_dir_all(&root) {
                let dir = root.display();
                tracing::warn!(%dir, error = %e, "removing a terraform job directory");
            }
        };
        // Dropped on an async thread when the job ends: a tree of providers takes a while to
        // remove, so that happens on a blocking thread.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// Unpacks the template archive into `into`. Entries that would land outside it fail the job;
/// links and special files are skipped (and named in the answer), since a link is the other
/// way out of the directory.
fn unpack(archive: &[u8], into: &Path) -> Result<Vec<String>, Failure> {
    let bad = |e: io::Error| Failure::failed(format!("unpacking the template archive: {e}"));
    let mut skipped = Vec::new();
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let Some(relative) = contained(&raw) else {
            return Err(Failure::failed(format!(
                "template archive entry {:?} points outside the template directory",
                raw.display().to_string()
            )));
        };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let dest = into.join(&relative);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&dest).map_err(bad)?;
        } else if kind.is_file() || kind.is_contiguous() {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(bad)?;
            }
            let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
            let mut file = std::fs::OpenOptions::new()
                // A later entry for the same path wins, as with tar itself.
                .write(true)
                .create(true)
                .truncate(true)
                .mode(if executable { 0o700 } else { 0o600 })
                .open(&dest)
                .map_err(|e| Failure::failed(format!("unpacking {}: {e}", relative.display())))?;
            io::copy(&mut entry, &mut file).map_err(bad)?;
        } else if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            // Metadata for other entries; the tar reader applies it.
        } else {
            skipped.push(relative.display().to_string());
        }
    }
    Ok(skipped)
}

/// `path` as a relative path that stays inside the directory it is joined to; `None` when it
/// is absolute or climbs out with `..`.
fn contained(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

type Env = Vec<(OsString, OsString)>;

fn set(env: &mut Env, key: impl Into<OsString>, value: impl Into<OsString>) {
    let key = key.into();
    env.retain(|(k, _)| *k != key);
    env.push((key, value.into()));
}

/// The environment every Terraform command gets: the server's, without its own `CODER_*`
/// settings (as upstream, so the server's secrets never reach a template), non-interactive,
/// and with a CLI configuration and home that exist.
fn base_env(dir: &WorkDir) -> Env {
    base_env_from(std::env::vars_os(), dir)
}

fn base_env_from(inherited: impl Iterator<Item = (OsString, OsString)>, dir: &WorkDir) -> Env {
    let mut env: Env = inherited
        .filter(|(k, _)| !k.to_string_lossy().starts_with("CODER_"))
        .collect();
    let lookup = |env: &Env, key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| PathBuf::from(v))
    };
    // A CLI configuration that is named but missing only earns a warning in every log; the
    // server's real one (mirrors, credentials) is kept.
    let config = lookup(&env, "TF_CLI_CONFIG_FILE")
        .filter(|p| p.is_file())
        .unwrap_or_else(|| dir.cli_config.clone());
    let home = lookup(&env, "HOME")
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| dir.home.clone());
    set(&mut env, "TF_CLI_CONFIG_FILE", config);
    set(&mut env, "HOME", home);
    set(&mut env, "TF_IN_AUTOMATION", "1");
    set(&mut env, "TF_INPUT", "0");
    // No version check calls home: jobs must work offline.
    set(&mut env, "CHECKPOINT_DISABLE", "1");
    env
}

/// The environment variable through which the coder provider reads a parameter's value, as
/// upstream names it: hashed, since names may hold characters variables cannot.
pub fn parameter_env_var(name: &str) -> String {
    format!(
        "CODER_PARAMETER_{}",
        hex::encode(Sha256::digest(name.as_bytes()))
    )
}

/// The workspace facts the coder provider reads (`data.coder_workspace`,
/// `data.coder_workspace_owner`), named as upstream's provisioner sets them.
fn coder_env(facts: &WorkspaceFacts, transition: Transition) -> Vec<(&'static str, String)> {
    let id = |u: Uuid| {
        if u.is_nil() {
            String::new()
        } else {
            u.to_string()
        }
    };
    vec![
        ("CODER_AGENT_URL", facts.access_url.clone()),
        // Upstream's transition enum says "destroy" for our "delete".
        (
            "CODER_WORKSPACE_TRANSITION",
            match transition {
                Transition::Delete => "destroy".into(),
                t => t.as_str().into(),
            },
        ),
        ("CODER_WORKSPACE_NAME", facts.workspace_name.clone()),
        ("CODER_WORKSPACE_ID", id(facts.workspace_id)),
        ("CODER_WORKSPACE_OWNER", facts.owner_name.clone()),
        ("CODER_WORKSPACE_OWNER_EMAIL", facts.owner_email.clone()),
        ("CODER_WORKSPACE_OWNER_ID", id(facts.owner_id)),
        ("CODER_WORKSPACE_TEMPLATE_ID", id(facts.template_id)),
        ("CODER_WORKSPACE_TEMPLATE_NAME", facts.template_name.clone()),
        (
            "CODER_WORKSPACE_TEMPLATE_VERSION",
            facts.template_version.clone(),
        ),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// One job's run.
struct Job<'a> {
    tf: &'a Terraform,
    ctx: &'a JobContext,
    dir: &'a WorkDir,
    env: Env,
}

impl Job<'_> {
    fn log(&self, level: &str, stage: &str, text: &str) {
        // PostgreSQL text cannot hold NUL.
        self.ctx.log(level, stage, text.replace('\0', ""));
    }

    async fn import(&self, user_values: &[VariableValue]) -> Result<Outcome, Failure> {
        let files = self.dir.root_tf_files()?;
        let parsed = match config::parse(&files) {
            Ok(parsed) => parsed,
            Err(e) => {
                // Terraform describes its own syntax best: `init` loads the configuration and
                // fails with its diagnostics. Only if it accepts what we cannot read is ours
                // the message.
                self.init().await?;
                return Err(Failure::failed(format!("reading the template: {e}")));
            }
        };
        let variables = crate::resolve_variables(
            config::variables(&parsed).map_err(Failure::failed)?,
            user_values,
        )?;
        let (parameters, mut warnings) =
            config::parameters(&parsed, &variables).map_err(Failure::failed)?;
        let (presets, preset_warnings) =
            config::presets(&parsed, &variables).map_err(Failure::failed)?;
        warnings.extend(preset_warnings);
        for warning in warnings {
            self.log("warn", PARSE_STAGE, &warning);
        }
        self.log(
            "info",
            PARSE_STAGE,
            &format!(
                "Found {} variable(s) and {} parameter(s)",
                variables.len(),
                parameters.len()
            ),
        );

        self.init().await?;
        let values: Vec<VariableValue> = variables
            .iter()
            .map(|v| VariableValue {
                name: v.name.clone(),
                value: v.value.clone(),
            })
            .collect();
        let facts = WorkspaceFacts::default();
        let mut unused = Timings::new("plan");
        let env = self.env_for(&facts, Transition::Start, &[], &values);
        self.plan(DETECT_START_STAGE, &env, false, &mut unused)
            .await?;
        let start_resources = resources::from_plan(&self.show(Some(PLAN_FILE), true).await?);
        let env = self.env_for(&facts, Transition::Stop, &[], &values);
        self.plan(DETECT_STOP_STAGE, &env, false, &mut unused)
            .await?;
        let stop_resources = resources::from_plan(&self.show(Some(PLAN_FILE), true).await?);

        Ok(Outcome::Import(ImportResult {
            readme: self.dir.readme(),
            variables,
            parameters,
            presets,
            start_resources,
            stop_resources,
        }))
    }

    async fn dry_run(
        &self,
        parameters: &[ParameterValue],
        variables: &[VariableValue],
        workspace: &WorkspaceFacts,
    ) -> Result<Outcome, Failure> {
        self.init().await?;
        let env = self.env_for(workspace, Transition::Start, parameters, variables);
        self.plan(PLAN_STAGE, &env, false, &mut Timings::new("plan"))
            .await?;
        let resources = resources::from_plan(&self.show(Some(PLAN_FILE), true).await?);
        Ok(Outcome::DryRun { resources })
    }

    async fn build(
        &self,
        transition: Transition,
        parameters: &[ParameterValue],
        variables: &[VariableValue],
        state: &[u8],
        workspace: &WorkspaceFacts,
    ) -> Result<Outcome, Failure> {
        let apply_stage = match transition {
            Transition::Start => "Starting workspace",
            Transition::Stop => "Stopping workspace",
            Transition::Delete => "Destroying workspace",
        };
        // As upstream: with nothing built there is nothing to destroy, and a template that no
        // longer plans (bad parameters, say) must not make the workspace undeletable.
        if transition == Transition::Delete && state.is_empty() {
            self.log(
                "info",
                apply_stage,
                "The terraform state does not exist, there is nothing to do",
            );
            return Ok(Outcome::Build(BuildResult::default()));
        }
        let state_file = self.dir.state_file();
        let written = if state.is_empty() {
            // A state file shipped in the archive is not this workspace's.
            std::fs::remove_file(&state_file).or_else(|e| match e.kind() {
                io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
        } else {
            write_private(&state_file, state)
        };
        written.map_err(|e| Failure::failed(format!("writing the previous state: {e}")))?;

        let mut timings: Vec<Timing> = Vec::new();
        let started = Utc::now();
        self.init().await?;
        timings.push(events::stage_timing("init", started, Utc::now()));

        let env = self.env_for(workspace, transition, parameters, variables);
        let started = Utc::now();
        let mut plan_timings = Timings::new("plan");
        self.plan(
            PLAN_STAGE,
            &env,
            transition == Transition::Delete,
            &mut plan_timings,
        )
        .await?;
        timings.push(events::stage_timing("plan", started, Utc::now()));
        timings.extend(plan_timings.finish());

        let started = Utc::now();
        let mut apply_timings = Timings::new("apply");
        // From here on Terraform may change the world: however the build ends, the state it
        // leaves is the build's.
        if let Err(failure) = self.apply(apply_stage, &env, &mut apply_timings).await {
            return Err(self.with_written_state(failure, apply_stage, state));
        }
        timings.push(events::stage_timing("apply", started, Utc::now()));
        timings.extend(apply_timings.finish());

        // The apply is done: from here a cancel must not throw its state away.
        let resources = match self.show(None, false).await {
            Ok(shown) => resources::from_state(&shown),
            Err(failure) => return Err(self.with_written_state(failure, apply_stage, state)),
        };
        let new_state = std::fs::read(&state_file)
            .map_err(|e| Failure::failed(format!("reading the new state: {e}")))?;
        Ok(Outcome::Build(BuildResult {
            resources,
            state: Some(new_state),
            timings,
        }))
    }

    /// `failure`, handing back the state Terraform left behind when it stopped: resources it
    /// created (or destroyed) before the failure or cancel are real, and the next build must
    /// see them. Without a readable, well-formed state file the previous state stays.
    fn with_written_state(&self, failure: Failure, stage: &str, previous: &[u8]) -> Failure {
        let now = match std::fs::read(self.dir.state_file()) {
            Ok(now) => now,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return failure,
            Err(e) => {
                self.log(
                    "warn",
                    stage,
                    &format!(
                        "Could not read the state Terraform left; keeping the previous one: {e}"
                    ),
                );
                return failure;
            }
        };
        if now == previous {
            return failure;
        }
        // Terraform killed mid-write could leave a torn file: storing it would lose track of
        // everything. The previous state at least names what existed before.
        if serde_json::from_slice::<serde::de::IgnoredAny>(&now).is_err() {
            self.log(
                "warn",
                stage,
                &format!(
                    "Terraform left an unreadable state ({} bytes) when it stopped; keeping the \
                     previous one, so resources it created may need to be removed by hand",
                    now.len()
                ),
            );
            tracing::warn!(
                bytes = now.len(),
                "terraform state of an unsuccessful build is not valid JSON; not stored"
            );
            return failure;
        }
        self.log(
            "info",
            stage,
            "Terraform changed the state before it stopped; storing it as this build's state",
        );
        failure.with_state(now)
    }

    fn env_for(
        &self,
        facts: &WorkspaceFacts,
        transition: Transition,
        parameters: &[ParameterValue],
        variables: &[VariableValue],
    ) -> Env {
        let mut env = self.env.clone();
        for (key, value) in coder_env(facts, transition) {
            set(&mut env, key, value);
        }
        for (key, value) in bootstrap::agent_script_env() {
            set(&mut env, key, value);
        }
        for p in parameters {
            set(&mut env, parameter_env_var(&p.name), &p.value);
        }
        for v in variables {
            set(&mut env, format!("TF_VAR_{}", v.name), &v.value);
        }
        env
    }

    /// `terraform init`, in plain text: `-json` needs Terraform 1.9.
    async fn init(&self) -> Result<(), Failure> {
        let mut errors: Vec<String> = Vec::new();
        let status = self
            .exec(
                SETUP_STAGE,
                &["init", "-input=false", "-no-color"],
                &self.env,
                true,
                &mut |stream, line| match stream {
                    Stream::Stdout if !line.trim().is_empty() => {
                        self.log("info", SETUP_STAGE, line.trim_end())
                    }
                    Stream::Stdout => {}
                    Stream::Stderr => {
                        self.log("error", SETUP_STAGE, line);
                        keep_tail(&mut errors, line);
                    }
                },
            )
            .await?;
        if status.success() {
            return Ok(());
        }
        let message = events::text_error(&errors);
        Err(Failure::failed(if message.is_empty() {
            format!("terraform init failed ({status})")
        } else {
            message
        }))
    }

    async fn plan(
        &self,
        stage: &str,
        env: &Env,
        destroy: bool,
        timings: &mut Timings,
    ) -> Result<(), Failure> {
        let out = format!("-out={PLAN_FILE}");
        let mut args = vec![
            "plan",
            "-input=false",
            "-no-color",
            "-json",
            "-refresh=true",
            &out,
        ];
        if destroy {
            args.push("-destroy");
        }
        self.run_json("plan", stage, &args, env, timings).await
    }

    async fn apply(&self, stage: &str, env: &Env, timings: &mut Timings) -> Result<(), Failure> {
        let args = [
            "apply",
            "-input=false",
            "-no-color",
            "-json",
            "-auto-approve",
            PLAN_FILE,
        ];
        self.run_json("apply", stage, &args, env, timings).await
    }

    /// Runs a `-json` command: messages become logs, error diagnostics the failure.
    async fn run_json(
        &self,
        command: &str,
        stage: &str,
        args: &[&str],
        env: &Env,
        timings: &mut Timings,
    ) -> Result<(), Failure> {
        let mut errors: Vec<String> = Vec::new();
        let mut plain: Vec<String> = Vec::new();
        let status = self
            .exec(stage, args, env, true, &mut |stream, line| {
                let message = match stream {
                    Stream::Stdout => events::parse(line),
                    Stream::Stderr => None,
                };
                match message {
                    Some(m) => {
                        for (level, text) in m.logs() {
                            self.log(level, stage, &text);
                        }
                        if let Some(error) = m.error() {
                            errors.push(error);
                        }
                        timings.observe(&m);
                    }
                    None if line.trim().is_empty() => {}
                    None => {
                        let level = if stream == Stream::Stderr {
                            "error"
                        } else {
                            "info"
                        };
                        self.log(level, stage, line);
                        keep_tail(&mut plain, line);
                    }
                }
            })
            .await?;
        if status.success() {
            return Ok(());
        }
        let message = if errors.is_empty() {
            events::text_error(&plain)
        } else {
            errors.join("\n")
        };
        Err(Failure::failed(if message.is_empty() {
            format!("terraform {command} failed ({status})")
        } else {
            message
        }))
    }

    /// `terraform show -json` of a plan file, or of the state.
    async fn show(
        &self,
        plan_file: Option<&str>,
        interruptible: bool,
    ) -> Result<serde_json::Value, Failure> {
        let mut args = vec!["show", "-json", "-no-color"];
        args.extend(plan_file);
        let mut out = String::new();
        let mut errors: Vec<String> = Vec::new();
        let status = self
            .exec(
                SETUP_STAGE,
                &args,
                &self.env,
                interruptible,
                &mut |stream, line| match stream {
                    Stream::Stdout => {
                        out.push_str(line);
                        out.push('\n');
                    }
                    Stream::Stderr => keep_tail(&mut errors, line),
                },
            )
            .await?;
        if !status.success() {
            let message = events::text_error(&errors);
            return Err(Failure::failed(format!(
                "terraform show failed ({status}): {message}"
            )));
        }
        serde_json::from_str(&out)
            .map_err(|e| Failure::failed(format!("reading terraform show's output: {e}")))
    }

    /// Runs Terraform with `args` in the template directory, handing each output line to
    /// `on_line` as it comes. A cancel (when `interruptible`) interrupts it, kills it and its
    /// process group after the grace period, and answers [`Failure::Canceled`] once it is
    /// gone.
    async fn exec(
        &self,
        stage: &str,
        args: &[&str],
        env: &Env,
        interruptible: bool,
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> Result<ExitStatus, Failure> {
        if interruptible && self.ctx.is_canceled() {
            return Err(Failure::canceled());
        }
        let binary = &self.tf.binary;
        let mut command = tokio::process::Command::new(binary);
        command
            .args(args)
            .current_dir(&self.dir.template)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_os_str(), v.as_os_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a kill reaches what it started (local-exec
            // commands) too, and a terminal's ^C to the server does not reach it directly.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            Failure::failed(format!(
                "running {} {}: {e}",
                binary.display(),
                args.first().copied().unwrap_or_default()
            ))
        })?;
        let pid = child.id();
        let mut group = KillGroupOnDrop(pid);
        let (tx, mut lines) = mpsc::unbounded_channel();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(read_lines(Stream::Stdout, stdout, tx.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(read_lines(Stream::Stderr, stderr, tx.clone()));
        }
        drop(tx);

        let mut interrupted_at: Option<Instant> = None;
        let mut killed = false;
        let status = loop {
            let kill_at = interrupted_at.map(|at| at + INTERRUPT_GRACE);
            tokio::select! {
                Some((stream, line)) = lines.recv() => on_line(stream, &line),
                status = child.wait() => break status,
                () = self.ctx.wait_canceled(), if interruptible && interrupted_at.is_none() => {
                    self.log(
                        "warn",
                        stage,
                        "Canceled: interrupting Terraform so that it stops safely",
                    );
                    signal(pid, libc::SIGINT, false);
                    interrupted_at = Some(Instant::now());
                }
                () = tokio::time::sleep_until(kill_at.unwrap_or_else(Instant::now)),
                    if kill_at.is_some() && !killed =>
                {
                    let message = format!(
                        "Terraform did not stop within {}s of the interrupt; killing it",
                        INTERRUPT_GRACE.as_secs()
                    );
                    self.log("warn", stage, &message);
                    signal(pid, libc::SIGKILL, true);
                    killed = true;
                }
            }
        };
        // Terraform has exited: on success, what it started in the background stays.
        group.0 = None;
        let status = status.map_err(|e| Failure::failed(format!("waiting for terraform: {e}")))?;
        let drain_until = Instant::now() + DRAIN_GRACE;
        while let Ok(Some((stream, line))) =
            tokio::time::timeout_at(drain_until, lines.recv()).await
        {
            on_line(stream, &line);
        }
        if interrupted_at.is_some() {
            // The job is over: what Terraform started and left behind goes too.
            signal(pid, libc::SIGKILL, true);
            return Err(Failure::canceled());
        }
        Ok(status)
    }
}

/// Kills a running Terraform's whole process group when dropped: when the daemon drops a job
/// (at shutdown) nothing Terraform started may outlive it unnoticed. Cleared once Terraform
/// has exited.
struct KillGroupOnDrop(Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        signal(self.0, libc::SIGKILL, true);
    }
}

/// Keeps the last [`ERROR_LINES`] lines.
fn keep_tail(lines: &mut Vec<String>, line: &str) {
    if lines.len() == ERROR_LINES {
        lines.remove(0);
    }
    lines.push(line.to_string());
}

fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(data)
}

/// Sends `sig` to Terraform, or to its whole process group.
fn signal(pid: Option<u32>, sig: libc::c_int, group: bool) {
    let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    let target = if group { -pid } else { pid };
    // SAFETY: kill(2) has no memory-safety preconditions. `pid` is our child, which has not
    // been reaped when we interrupt it; its group outlives it while any member lives.
    unsafe {
        libc::kill(target, sig);
    }
}

async fn read_lines(
    stream: Stream,
    pipe: impl AsyncRead + Unpin,
    tx: mpsc::UnboundedSender<(Stream, String)>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']).to_string();
                if tx.send((stream, line)).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tokio::sync::watch;

    use super::*;
    use crate::Log;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            // Set by hand: `append_data` refuses the hostile paths these tests need.
            let name = &mut h.as_gnu_mut().unwrap().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(if path.ends_with('/') {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn scratch() -> WorkDir {
        WorkDir::create(Uuid::new_v4()).unwrap()
    }

    #[test]
    fn unpack_writes_files_and_directories() {
        let dir = scratch();
        let archive = tar_of(&[
            ("./main.tf", b"# main"),
            ("modules/", b""),
            ("modules/a/b.tf", b"# b"),
        ]);
        assert_eq!(
            unpack(&archive, &dir.template).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            std::fs::read(dir.template.join("main.tf")).unwrap(),
            b"# main"
        );
        assert_eq!(
            std::fs::read(dir.template.join("modules/a/b.tf")).unwrap(),
            b"# b"
        );
    }

    #[test]
    fn unpack_rejects_paths_outside_the_directory() {
        for path in ["../evil.tf", "a/../../evil.tf", "/etc/evil.tf"] {
            let dir = scratch();
            let err = unpack(&tar_of(&[(path, b"x")]), &dir.template).unwrap_err();
            let Failure::Failed { error, .. } = err else {
                panic!("{err:?}")
            };
            assert!(
                error.contains("points outside the template directory"),
                "{error}"
            );
        }
    }

    #[test]
    fn unpack_skips_links() {
        let dir = scratch();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "escape", "/etc").unwrap();
        let skipped = unpack(&b.into_inner().unwrap(), &dir.template).unwrap();
        assert_eq!(skipped, ["escape"]);
        assert!(!dir.template.join("escape").exists());
    }

    #[test]
    fn work_dir_is_private_and_removed_on_drop() {
        let dir = scratch();
        let root = dir.root.clone();
        let mode = std::fs::metadata(&root).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(dir.cli_config.is_file() && dir.home.is_dir());
        drop(dir);
        assert!(!root.exists());
    }

    #[tokio::test]
    async fn work_dir_dropped_on_a_runtime_is_removed_off_its_threads() {
        let dir = scratch();
        let root = dir.root.clone();
        drop(dir);
        let started = std::time::Instant::now();
        while root.exists() {
            assert!(started.elapsed() < Duration::from_secs(10), "never removed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn environment_drops_server_settings_and_fills_gaps() {
        let dir = scratch();
        let inherited = [
            ("PATH", "/usr/bin"),
            ("CODER_PG_CONNECTION_URL", "postgres://secret"),
            ("TF_CLI_CONFIG_FILE", "/nonexistent/.terraformrc"),
            ("HOME", "/nonexistent-home"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = base_env_from(inherited.into_iter(), &dir);
        let get = |key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("PATH").as_deref(), Some("/usr/bin"));
        assert_eq!(get("CODER_PG_CONNECTION_URL"), None);
        assert_eq!(
            get("TF_CLI_CONFIG_FILE").map(PathBuf::from),
            Some(dir.cli_config.clone())
        );
        assert_eq!(get("HOME").map(PathBuf::from), Some(dir.home.clone()));
        assert_eq!(get("CHECKPOINT_DISABLE").as_deref(), Some("1"));
        assert_eq!(get("TF_IN_AUTOMATION").as_deref(), Some("1"));
    }

    #[test]
    fn workspace_facts_and_parameters_as_upstream_names_them() {
        // hex(sha256("cpu")), as the coder provider computes it.
        assert_eq!(
            parameter_env_var("cpu"),
            "CODER_PARAMETER_68ab84f7c6d0f5781585eb1b5289499fb29081b918f71ebddb5f72021c9ef9c5"
        );
        let facts = WorkspaceFacts {
            access_url: "http://coder.example".into(),
            workspace_name: "dev".into(),
            owner_name: "alice".into(),
            ..Default::default()
        };
        let env = coder_env(&facts, Transition::Delete);
        let get = |key: &str| env.iter().find(|(k, _)| *k == key).unwrap().1.as_str();
        assert_eq!(get("CODER_WORKSPACE_TRANSITION"), "destroy");
        assert_eq!(get("CODER_AGENT_URL"), "http://coder.example");
        assert_eq!(get("CODER_WORKSPACE_OWNER"), "alice");
        assert_eq!(get("CODER_WORKSPACE_ID"), "", "a nil id is left empty");
    }

    #[test]
    fn find_binary_checks_paths() {
        assert_eq!(find_binary(Some(Path::new("/nonexistent/terraform"))), None);
        assert_eq!(
            find_binary(Some(Path::new("/bin/sh"))),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            find_binary(Some(Path::new("sh"))).map(|p| p.is_absolute()),
            Some(true)
        );
    }

    async fn run(
        tf: &Terraform,
        kind: JobKind,
        archive: Vec<u8>,
    ) -> (Result<Outcome, Failure>, Vec<Log>) {
        let (_cancel, canceled) = watch::channel(false);
        let (logs, mut received) = mpsc::unbounded_channel();
        let req = JobRequest {
            job_id: Uuid::new_v4(),
            kind,
            archive,
        };
        let result = tf.run(req, JobContext { logs, canceled }).await;
        let mut written = Vec::new();
        while let Ok(log) = received.try_recv() {
            written.push(log);
        }
        (result, written)
    }

    fn import() -> JobKind {
        JobKind::Import {
            user_variable_values: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_missing_binary_fails_the_job() {
        let tf = Terraform::new("/nonexistent/terraform");
        let (result, _) = run(&tf, import(), tar_of(&[("main.tf", b"")])).await;
        let Err(Failure::Failed { error, .. }) = result else {
            panic!("{result:?}")
        };
        assert!(
            error.starts_with("running /nonexistent/terraform init: "),
            "{error}"
        );
    }

    #[tokio::test]
    async fn required_variables_fail_before_terraform_runs() {
        // The binary does not exist: the check must come first.
        let tf = Terraform::new("/nonexistent/terraform");
        let archive = tar_of(&[(
            "main.tf",
            br#"variable "a" {}
variable "b" { type = string }
variable "c" { default = 1 }"#,
        )]);
        let (result, _) = run(&tf, import(), archive).await;
        let Err(Failure::MissingVariables { variables, missing }) = result else {
            panic!("expected missing variables, got {result:?}");
        };
        assert_eq!(missing, ["a", "b"]);
        assert_eq!(variables.len(), 3);
    }

    /// The real binary, when there is one (the API tests cover it in depth).
    #[tokio::test]
    async fn real_terraform_build_round_trip() {
        let Some(tf) = Terraform::find(None) else {
            // Straight to stderr: the harness would swallow `eprintln!` of a passing test.
            let _ = writeln!(io::stderr(), "SKIPPED: terraform not found on PATH");
            return;
        };
        let archive = tar_of(&[(
            "main.tf",
            br#"variable "word" { default = "x" }
resource "terraform_data" "thing" {
  input = var.word
}"#,
        )]);
        let build = |transition, state: Vec<u8>| JobKind::Build {
            transition,
            parameters: Vec::new(),
            variables: vec![VariableValue {
                name: "word".into(),
                value: "hello".into(),
            }],
            state,
            workspace: WorkspaceFacts::default(),
        };
        let (result, logs) = run(&tf, build(Transition::Start, Vec::new()), archive.clone()).await;
        let Ok(Outcome::Build(started)) = result else {
            panic!("{result:?}\n{logs:#?}")
        };
        assert_eq!(started.resources[0].name, "thing");
        let state = started.state.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&state).unwrap();
        assert_eq!(
            json["resources"][0]["instances"][0]["attributes"]["input"]["value"],
            "hello"
        );
        assert!(started
            .timings
            .iter()
            .any(|t| t.stage == "apply" && t.resource == "terraform_data.thing"));
        assert!(logs.iter().any(|l| l.stage == "Starting workspace"
            && l.output.contains("terraform_data.thing: Creation complete")));

        let (result, _) = run(&tf, build(Transition::Delete, state), archive).await;
        let Ok(Outcome::Build(deleted)) = result else {
            panic!("{result:?}")
        };
        assert!(deleted.resources.is_empty());
        let json: serde_json::Value = serde_json::from_slice(&deleted.state.unwrap()).unwrap();
        assert_eq!(json["resources"], serde_json::json!([]));
    }

    /// A failing apply still hands back the state with what it created (real binary only).
    #[tokio::test]
    async fn real_terraform_failed_apply_hands_back_its_state() {
        let Some(tf) = Terraform::find(None) else {
            let _ = writeln!(io::stderr(), "SKIPPED: terraform not found on PATH");
            return;
        };
        let archive = tar_of(&[(
            "main.tf",
            br#"resource "terraform_data" "made" {}
resource "terraform_data" "broken" {
  depends_on = [terraform_data.made]
  provisioner "local-exec" {
    command = "exit 1"
  }
}"#,
        )]);
        let kind = JobKind::Build {
            transition: Transition::Start,
            parameters: Vec::new(),
            variables: Vec::new(),
            state: Vec::new(),
            workspace: WorkspaceFacts::default(),
        };
        let (result, logs) = run(&tf, kind, archive).await;
        let Err(failure @ Failure::Failed { .. }) = result else {
            panic!("{result:?}\n{logs:#?}")
        };
        let state = failure.state().expect("the state Terraform wrote");
        let json: serde_json::Value = serde_json::from_slice(state).unwrap();
        let names: Vec<&str> = json["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"made"), "{json}");
    }
}
