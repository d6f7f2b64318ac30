//! The `echo` provisioner (see docs/echo-provisioner.md): it runs no infrastructure and replays
//! what the template archive's `echo.json` declares, so templates, builds, logs and cancellation
//! can be exercised end to end without Terraform.

use std::io::Read;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::{
    BoxFuture, BuildResult, Failure, ImportResult, JobContext, JobKind, JobRequest, Outcome,
    Parameter, ParameterValue, Preset, Provisioner, Resource, Timing, Transition, Variable,
    VariableValue,
};

const IMPORT_STAGE: &str = "Parsing template parameters";
const PLAN_STAGE: &str = "Planning infrastructure";

pub struct Echo;

impl Provisioner for Echo {
    fn name(&self) -> &'static str {
        "echo"
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
            let file = read_echo_json(&req.archive)?;
            match req.kind {
                JobKind::Import {
                    user_variable_values,
                } => import(file, &user_variable_values, &ctx).await,
                JobKind::DryRun { parameters, .. } => {
                    let mut start = file.start;
                    start.substitute_parameters(&parameters);
                    start.replay.run(PLAN_STAGE, &ctx).await?;
                    Ok(Outcome::DryRun {
                        resources: start.resources,
                    })
                }
                JobKind::Build {
                    transition,
                    parameters,
                    ..
                } => {
                    let mut section = match transition {
                        Transition::Start => file.start,
                        Transition::Stop => file.stop,
                        Transition::Delete => file.delete,
                    };
                    section.substitute_parameters(&parameters);
                    build(section, transition, &ctx).await
                }
            }
        })
    }
}

/// `echo.json`. Every key is optional, and a missing section behaves like an empty one: no
/// logs, no resources, success.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EchoFile {
    parse: ParseSection,
    start: Section,
    stop: Section,
    delete: Section,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ParseSection {
    #[serde(flatten)]
    replay: Replay,
    readme: String,
    variables: Vec<Variable>,
    parameters: Vec<Parameter>,
    presets: Vec<Preset>,
}

/// A transition's section (`start` also drives dry runs).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Section {
    #[serde(flatten)]
    replay: Replay,
    resources: Vec<Resource>,
    /// `None` keeps the previous build's state.
    state: Option<String>,
}

/// What every section shares: the logs the job writes, how long it takes, and how it ends.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Replay {
    logs: Vec<LogLine>,
    error: String,
    duration_ms: u64,
    block: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LogLine {
    level: String,
    output: String,
    stage: String,
}

fn read_echo_json(archive: &[u8]) -> Result<EchoFile, Failure> {
    let unreadable = |e: std::io::Error| Failure::failed(format!("read template archive: {e}"));
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        // Archives made with `tar -C dir .` name their files `./echo.json`.
        let at_root = matches!(&*entry.path_bytes(), b"echo.json" | b"./echo.json");
        if !at_root || !entry.header().entry_type().is_file() {
            continue;
        }
        let mut json = Vec::new();
        entry.read_to_end(&mut json).map_err(unreadable)?;
        return serde_json::from_slice(&json)
            .map_err(|e| Failure::failed(format!("invalid echo.json: {e}")));
    }
    Err(Failure::failed(
        "echo.json not found in the template archive",
    ))
}

async fn import(
    file: EchoFile,
    user_variable_values: &[VariableValue],
    ctx: &JobContext,
) -> Result<Outcome, Failure> {
    let parse = file.parse;
    parse.replay.run(IMPORT_STAGE, ctx).await?;

    let variables = crate::resolve_variables(parse.variables, user_variable_values)?;
    Ok(Outcome::Import(ImportResult {
        readme: parse.readme,
        variables,
        parameters: parse.parameters,
        presets: parse.presets,
        start_resources: file.start.resources,
        stop_resources: file.stop.resources,
    }))
}

async fn build(
    section: Section,
    transition: Transition,
    ctx: &JobContext,
) -> Result<Outcome, Failure> {
    // There is nothing to plan, so the plan step is just the logs; the apply step is the wait.
    let plan_started = Utc::now();
    section.replay.write_logs(PLAN_STAGE, ctx);
    let apply_started = Utc::now();
    section.replay.wait(ctx).await?;
    let apply_ended = Utc::now();
    section.replay.check_error()?;

    let action = match transition {
        Transition::Start => "create",
        Transition::Stop | Transition::Delete => transition.as_str(),
    };
    Ok(Outcome::Build(BuildResult {
        resources: section.resources,
        state: section.state.map(String::into_bytes),
        timings: vec![
            timing("plan", action, plan_started, apply_started),
            timing("apply", action, apply_started, apply_ended),
        ],
    }))
}

fn timing(stage: &str, action: &str, started_at: DateTime<Utc>, ended_at: DateTime<Utc>) -> Timing {
    Timing {
        stage: stage.into(),
        source: "echo".into(),
        action: action.into(),
        resource: "echo".into(),
        started_at,
        ended_at,
    }
}

impl Replay {
    async fn run(&self, default_stage: &str, ctx: &JobContext) -> Result<(), Failure> {
        self.write_logs(default_stage, ctx);
        self.wait(ctx).await?;
        self.check_error()
    }

    fn write_logs(&self, default_stage: &str, ctx: &JobContext) {
        for line in &self.logs {
            let level = if line.level.is_empty() {
                "info"
            } else {
                &line.level
            };
            let stage = if line.stage.is_empty() {
                default_stage
            } else {
                &line.stage
            };
            ctx.log(level, stage, line.output.as_str());
        }
    }

    /// Takes `duration_ms`, then (with `block`) waits for cancellation, so tests can observe a
    /// job while it runs and cancel it.
    async fn wait(&self, ctx: &JobContext) -> Result<(), Failure> {
        if self.duration_ms == 0 && !self.block {
            // No timer to wait for (one would still take a tick of the timer wheel).
            return if ctx.is_canceled() {
                Err(Failure::canceled())
            } else {
                Ok(())
            };
        }
        tokio::select! {
            // A job canceled just as its duration ran out must still end canceled.
            biased;
            () = ctx.wait_canceled() => return Err(Failure::canceled()),
            () = tokio::time::sleep(Duration::from_millis(self.duration_ms)) => {}
        }
        if self.block {
            ctx.wait_canceled().await;
            return Err(Failure::canceled());
        }
        Ok(())
    }

    fn check_error(&self) -> Result<(), Failure> {
        if self.error.is_empty() {
            Ok(())
        } else {
            Err(Failure::failed(self.error.as_str()))
        }
    }
}

impl Section {
    /// Lets an archive show which parameter values a build got.
    fn substitute_parameters(&mut self, parameters: &[ParameterValue]) {
        for line in &mut self.replay.logs {
            line.output = substitute(&line.output, parameters);
        }
        for metadata in self.resources.iter_mut().flat_map(|r| &mut r.metadata) {
            metadata.value = substitute(&metadata.value, parameters);
        }
    }
}

/// Replaces each `{{param.NAME}}` with that parameter's value, in one pass so a value that
/// itself looks like a placeholder is kept verbatim. Unknown names are left as they are.
fn substitute(text: &str, parameters: &[ParameterValue]) -> String {
    const OPEN: &str = "{{param.";
    const CLOSE: &str = "}}";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let after_open = &rest[start + OPEN.len()..];
        let Some(name_len) = after_open.find(CLOSE) else {
            break;
        };
        let name = &after_open[..name_len];
        let end = start + OPEN.len() + name_len + CLOSE.len();
        out.push_str(&rest[..start]);
        match parameters.iter().find(|p| p.name == name) {
            Some(parameter) => out.push_str(&parameter.value),
            None => out.push_str(&rest[start..end]),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;
    use tokio::sync::{mpsc, watch};
    use uuid::Uuid;

    use super::*;
    use crate::{Log, ResourceMetadata, WorkspaceFacts};

    fn tar_with(path: &str, contents: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        // Written by hand because `Builder::append_data` would strip a leading `./`.
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, contents).unwrap();
        builder.into_inner().unwrap()
    }

    fn archive(echo_json: serde_json::Value) -> Vec<u8> {
        tar_with("echo.json", echo_json.to_string().as_bytes())
    }

    fn import_kind(values: &[(&str, &str)]) -> JobKind {
        JobKind::Import {
            user_variable_values: values
                .iter()
                .map(|(name, value)| VariableValue {
                    name: (*name).into(),
                    value: (*value).into(),
                })
                .collect(),
        }
    }

    fn build_kind(transition: Transition, parameters: &[(&str, &str)]) -> JobKind {
        JobKind::Build {
            transition,
            parameters: parameters
                .iter()
                .map(|(name, value)| ParameterValue {
                    name: (*name).into(),
                    value: (*value).into(),
                })
                .collect(),
            variables: Vec::new(),
            state: Vec::new(),
            workspace: WorkspaceFacts::default(),
        }
    }

    fn request(kind: JobKind, archive: Vec<u8>) -> JobRequest {
        JobRequest {
            job_id: Uuid::new_v4(),
            kind,
            archive,
        }
    }

    /// Runs a job with a cancel switch; the logs it wrote come back once it has ended.
    async fn run_with(
        req: JobRequest,
        canceled: watch::Receiver<bool>,
    ) -> (Result<Outcome, Failure>, Vec<Log>) {
        let (logs, mut received) = mpsc::unbounded_channel();
        let result = Echo.run(req, JobContext { logs, canceled }).await;
        let mut written = Vec::new();
        while let Ok(log) = received.try_recv() {
            written.push(log);
        }
        (result, written)
    }

    async fn run(kind: JobKind, archive: Vec<u8>) -> (Result<Outcome, Failure>, Vec<Log>) {
        let (_cancel, canceled) = watch::channel(false);
        run_with(request(kind, archive), canceled).await
    }

    fn log(level: &str, stage: &str, output: &str) -> Log {
        Log {
            level: level.into(),
            stage: stage.into(),
            output: output.into(),
        }
    }

    fn expect_build(result: Result<Outcome, Failure>) -> BuildResult {
        match result {
            Ok(Outcome::Build(build)) => build,
            other => panic!("expected a build result, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn import_reads_the_parse_section() {
        let archive = archive(json!({
            "parse": {
                "readme": "# Hello",
                "variables": [
                    {"name": "region", "type": "string", "default_value": "eu"},
                    {"name": "token", "type": "string", "sensitive": true, "default_value": "t0"}
                ],
                "parameters": [{
                    "name": "cpu", "display_name": "CPU cores", "type": "number",
                    "default_value": "2", "mutable": true, "validation_min": 1,
                    "options": [{"name": "Two", "value": "2"}]
                }],
                "logs": [
                    {"output": "parsing template"},
                    {"level": "warn", "stage": "Custom", "output": "careful"}
                ]
            },
            "start": {"resources": [{
                "name": "dev", "type": "docker_container", "daily_cost": 3,
                "metadata": [{"key": "image", "value": "ubuntu", "sensitive": false}],
                "agents": [{
                    "name": "main", "operating_system": "linux", "architecture": "amd64",
                    "connection_timeout_seconds": 120,
                    "apps": [{"slug": "code", "url": "http://localhost:8080"}]
                }]
            }]},
            "stop": {"resources": [{"name": "home", "type": "docker_volume"}]}
        }));

        let (result, logs) = run(import_kind(&[("region", "us")]), archive).await;

        let Ok(Outcome::Import(import)) = result else {
            panic!("expected an import result, got {result:?}");
        };
        assert_eq!(import.readme, "# Hello");
        let values: Vec<(&str, &str, bool)> = import
            .variables
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_str(), v.sensitive))
            .collect();
        assert_eq!(values, [("region", "us", false), ("token", "t0", true)]);
        assert_eq!(import.variables[0].default_value, "eu");
        assert_eq!(import.variables[0].kind, "string");

        let cpu = &import.parameters[0];
        assert_eq!(
            (
                cpu.name.as_str(),
                cpu.kind.as_str(),
                cpu.default_value.as_str()
            ),
            ("cpu", "number", "2")
        );
        assert!(cpu.mutable);
        assert_eq!(cpu.validation_min, Some(1));
        assert_eq!(cpu.validation_max, None);
        assert_eq!(cpu.options[0].value, "2");

        let dev = &import.start_resources[0];
        assert_eq!(
            (dev.name.as_str(), dev.kind.as_str()),
            ("dev", "docker_container")
        );
        assert_eq!(dev.daily_cost, 3);
        assert_eq!(dev.metadata[0].value, "ubuntu");
        assert_eq!(dev.agents[0].connection_timeout_seconds, 120);
        assert_eq!(dev.agents[0].apps[0].slug, "code");
        assert_eq!(import.stop_resources[0].name, "home");

        assert_eq!(
            logs,
            [
                log("info", IMPORT_STAGE, "parsing template"),
                log("warn", "Custom", "careful"),
            ]
        );
    }

    #[tokio::test]
    async fn import_accepts_a_dot_slash_path() {
        let archive = tar_with("./echo.json", br##"{"parse": {"readme": "# Dot"}}"##);
        let (result, _) = run(import_kind(&[]), archive).await;
        let Ok(Outcome::Import(import)) = result else {
            panic!("expected an import result, got {result:?}");
        };
        assert_eq!(import.readme, "# Dot");
    }

    #[tokio::test]
    async fn missing_echo_json_fails() {
        let archive = tar_with("main.tf", b"");
        let (result, _) = run(import_kind(&[]), archive).await;
        assert_eq!(
            result,
            Err(Failure::failed(
                "echo.json not found in the template archive"
            ))
        );
    }

    #[tokio::test]
    async fn invalid_json_fails() {
        let archive = tar_with("echo.json", b"{\"parse\": ");
        let (result, _) = run(import_kind(&[]), archive).await;
        let Err(Failure::Failed {
            error, error_code, ..
        }) = result
        else {
            panic!("expected a failure, got {result:?}");
        };
        assert!(error.starts_with("invalid echo.json: "), "{error}");
        assert_eq!(error_code, None);
    }

    #[tokio::test]
    async fn parse_error_fails_after_its_logs() {
        let archive = archive(json!({
            "parse": {"logs": [{"output": "about to fail"}], "error": "bad template"}
        }));
        let (result, logs) = run(import_kind(&[]), archive).await;
        assert_eq!(result, Err(Failure::failed("bad template")));
        assert_eq!(logs, [log("info", IMPORT_STAGE, "about to fail")]);
    }

    #[tokio::test]
    async fn required_variables_need_values() {
        let archive = archive(json!({"parse": {"variables": [
            {"name": "a", "required": true},
            {"name": "b", "required": true},
            {"name": "c", "required": false}
        ]}}));
        let (result, _) = run(import_kind(&[("c", "given")]), archive).await;
        let Err(failure @ Failure::MissingVariables { .. }) = result else {
            panic!("expected missing variables, got {result:?}");
        };
        assert_eq!(
            failure.to_string(),
            "required template variables need values: a, b"
        );
        // The variables are still reported, with the values given.
        let Failure::MissingVariables { variables, missing } = failure else {
            unreachable!()
        };
        assert_eq!(missing, ["a", "b"]);
        let names: Vec<(&str, &str)> = variables
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(names, [("a", ""), ("b", ""), ("c", "given")]);
    }

    #[tokio::test]
    async fn required_variable_given_succeeds() {
        let archive = archive(json!({"parse": {"variables": [{"name": "a", "required": true}]}}));
        let (result, _) = run(import_kind(&[("a", "given")]), archive).await;
        let Ok(Outcome::Import(import)) = result else {
            panic!("expected an import result, got {result:?}");
        };
        assert_eq!(import.variables[0].value, "given");
    }

    #[tokio::test]
    async fn build_start_substitutes_parameters_and_keeps_state() {
        let archive = archive(json!({"start": {
            "logs": [
                {"output": "cpu={{param.cpu}} region={{param.region}}"},
                {"level": "debug", "stage": "Applying", "output": "done"}
            ],
            "resources": [{"name": "dev", "type": "vm", "metadata": [
                {"key": "cpu", "value": "{{param.cpu}} cores"},
                {"key": "secret", "value": "s3cret", "sensitive": true}
            ]}],
            "state": "opaque-state"
        }}));

        let (result, logs) = run(build_kind(Transition::Start, &[("cpu", "4")]), archive).await;

        let build = expect_build(result);
        assert_eq!(build.state, Some(b"opaque-state".to_vec()));
        assert_eq!(
            build.resources[0].metadata,
            [
                ResourceMetadata {
                    key: "cpu".into(),
                    value: "4 cores".into(),
                    sensitive: false,
                },
                ResourceMetadata {
                    key: "secret".into(),
                    value: "s3cret".into(),
                    sensitive: true,
                },
            ]
        );
        assert_eq!(
            logs,
            [
                log("info", PLAN_STAGE, "cpu=4 region={{param.region}}"),
                log("debug", "Applying", "done"),
            ]
        );
        let stages: Vec<(&str, &str, &str, &str)> = build
            .timings
            .iter()
            .map(|t| {
                (
                    t.stage.as_str(),
                    t.source.as_str(),
                    t.action.as_str(),
                    t.resource.as_str(),
                )
            })
            .collect();
        assert_eq!(
            stages,
            [
                ("plan", "echo", "create", "echo"),
                ("apply", "echo", "create", "echo")
            ]
        );
    }

    #[tokio::test]
    async fn missing_transition_section_is_an_empty_success() {
        let archive = archive(json!({"start": {"logs": [{"output": "starting"}], "state": "s"}}));
        let (result, logs) = run(build_kind(Transition::Stop, &[]), archive).await;
        let build = expect_build(result);
        assert!(build.resources.is_empty());
        assert_eq!(build.state, None);
        assert!(build.timings.iter().all(|t| t.action == "stop"));
        assert!(logs.is_empty());
    }

    #[tokio::test]
    async fn dry_run_plans_the_start_section() {
        let archive = archive(json!({"start": {
            "logs": [{"output": "plan {{param.size}}"}],
            "resources": [{"name": "dev", "metadata": [{"key": "size", "value": "{{param.size}}"}]}],
            "state": "ignored"
        }}));
        let kind = JobKind::DryRun {
            parameters: vec![ParameterValue {
                name: "size".into(),
                value: "large".into(),
            }],
            variables: Vec::new(),
            workspace: WorkspaceFacts::default(),
        };
        let (result, logs) = run(kind, archive).await;
        let Ok(Outcome::DryRun { resources }) = result else {
            panic!("expected a dry-run result, got {result:?}");
        };
        assert_eq!(resources[0].metadata[0].value, "large");
        assert_eq!(logs, [log("info", PLAN_STAGE, "plan large")]);
    }

    #[tokio::test]
    async fn duration_delays_the_apply_step() {
        let archive = archive(json!({"start": {"duration_ms": 100}}));
        let started = Instant::now();
        let (result, _) = run(build_kind(Transition::Start, &[]), archive).await;
        assert!(started.elapsed() >= Duration::from_millis(100));
        let build = expect_build(result);
        let apply = &build.timings[1];
        assert!(apply.ended_at - apply.started_at >= chrono::Duration::milliseconds(100));
        assert!(build.timings[0].ended_at <= apply.started_at);
    }

    #[tokio::test]
    async fn block_waits_until_canceled() {
        let archive = archive(json!({"start": {"block": true, "logs": [{"output": "waiting"}]}}));
        let (cancel, canceled) = watch::channel(false);
        let canceler = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cancel.send(true).unwrap();
            cancel
        });
        let req = request(build_kind(Transition::Start, &[]), archive);
        let (result, logs) = run_with(req, canceled).await;
        canceler.await.unwrap();
        assert_eq!(result, Err(Failure::canceled()));
        assert_eq!(logs, [log("info", PLAN_STAGE, "waiting")]);
    }

    #[tokio::test]
    async fn cancel_interrupts_the_duration() {
        let archive = archive(json!({"parse": {"duration_ms": 60_000}}));
        let (cancel, canceled) = watch::channel(false);
        let canceler = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cancel.send(true).unwrap();
            cancel
        });
        let (result, _) = run_with(request(import_kind(&[]), archive), canceled).await;
        canceler.await.unwrap();
        assert_eq!(result, Err(Failure::canceled()));
    }

    #[tokio::test]
    async fn already_canceled_job_does_nothing() {
        let archive = archive(json!({"start": {"logs": [{"output": "never"}]}}));
        let (_cancel, canceled) = watch::channel(true);
        let req = request(build_kind(Transition::Start, &[]), archive);
        let (result, logs) = run_with(req, canceled).await;
        assert_eq!(result, Err(Failure::canceled()));
        assert!(logs.is_empty());
    }

    #[tokio::test]
    async fn start_error_fails_the_build() {
        let archive = archive(json!({"start": {"error": "quota exceeded", "state": "s"}}));
        let (result, _) = run(build_kind(Transition::Start, &[]), archive).await;
        assert_eq!(result, Err(Failure::failed("quota exceeded")));
    }

    #[test]
    fn substitute_handles_unknown_and_unterminated_placeholders() {
        let parameters = [ParameterValue {
            name: "a".into(),
            value: "{{param.b}}".into(),
        }];
        assert_eq!(
            substitute("{{param.a}}-{{param.b}}-{{param.a", &parameters),
            "{{param.b}}-{{param.b}}-{{param.a"
        );
    }
}
