//! The provisioner daemon loop: acquire a job (woken by `provisioner_job_posted`, with a slow
//! backup poll), run it with heartbeats and batched logs, and complete it with everything it
//! produced in one transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coderd_db::pubsub::Pubsub;
use coderd_db::schedule;
use coderd_db::{
    BuildContext, BuildProduct, Completion, ImportProduct, JobRow, NewDaemon, NewLog, Produced,
    Store,
};
use serde::Deserialize;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{
    Failure, JobContext, JobKind, JobRequest, Log, Outcome, ParameterValue, Provisioner,
    Transition, VariableValue, WorkspaceFacts,
};

/// Channel on which new jobs are announced.
pub const JOB_POSTED: &str = "provisioner_job_posted";

/// The channel on which a job's new logs (and its end) are announced.
pub fn logs_channel(job: Uuid) -> String {
    format!("provisioner-log-logs:{job}")
}

#[derive(Clone)]
pub struct DaemonConfig {
    /// Daemons to run in this process.
    pub count: u32,
    /// Name prefix; daemons are `<prefix>-<n>`.
    pub name: String,
    pub provisioners: Vec<Arc<dyn Provisioner>>,
    /// How often an idle daemon looks for work without being woken.
    pub poll_interval: Duration,
    /// How often a running job's liveness (and cancellation) is checked.
    pub heartbeat_interval: Duration,
    pub version: String,
    /// How long shutdown waits for running jobs before failing them.
    pub shutdown_grace: Duration,
    /// The deployment's URL, handed to builds (Coder's agents dial it).
    pub access_url: String,
}

/// Running daemons.
pub struct Daemons {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Starts `cfg.count` daemons sharing one wake-up subscription.
pub fn start(store: Store, pubsub: Pubsub, cfg: DaemonConfig) -> Daemons {
    let (stop, stop_rx) = watch::channel(false);
    let wake = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    {
        let wake = wake.clone();
        let mut sub = pubsub.subscribe(JOB_POSTED);
        let mut stop_rx = stop_rx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    ev = sub.recv() => match ev {
                        Some(_) => wake.notify_waiters(),
                        None => return,
                    },
                    _ = stop_rx.changed() => return,
                }
            }
        });
    }
    for n in 0..cfg.count {
        let d = Daemon {
            id: Uuid::new_v4(),
            name: format!("{}-{n}", cfg.name),
            store: store.clone(),
            pubsub: pubsub.clone(),
            cfg: cfg.clone(),
            wake: wake.clone(),
            stop: stop_rx.clone(),
        };
        tasks.spawn(d.run());
    }
    Daemons { stop, tasks }
}

impl Daemons {
    /// Stops acquiring; waits for running jobs (bounded by the grace period) and deregisters.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

struct Daemon {
    id: Uuid,
    name: String,
    store: Store,
    pubsub: Pubsub,
    cfg: DaemonConfig,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
}

fn untagged() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("scope".to_string(), "organization".to_string()),
        ("owner".to_string(), String::new()),
    ])
}

impl Daemon {
    async fn run(mut self) {
        let types: Vec<String> = self
            .cfg
            .provisioners
            .iter()
            .map(|p| p.name().to_string())
            .collect();
        let tags = untagged();
        loop {
            let registered = self
                .store
                .register_daemon(NewDaemon {
                    id: self.id,
                    name: &self.name,
                    provisioners: &types,
                    tags: &tags,
                    version: &self.cfg.version,
                })
                .await;
            match registered {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(daemon = %self.name, error = %e, "registering provisioner daemon");
                    if self.sleep(self.cfg.poll_interval).await {
                        return;
                    }
                }
            }
        }
        let mut last_seen = Instant::now();
        while !*self.stop.borrow() {
            // Register interest before looking, so a job posted in between still wakes us.
            let wake = self.wake.clone();
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.store.acquire_job(self.id, &types, &tags).await {
                Ok(Some(job)) => {
                    self.run_job(job).await;
                    last_seen = Instant::now();
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(daemon = %self.name, error = %e, "acquiring a job"),
            }
            if last_seen.elapsed() > Duration::from_secs(10) {
                let _ = self.store.daemon_seen(self.id).await;
                last_seen = Instant::now();
            }
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(self.cfg.poll_interval) => {}
                _ = stop.changed() => {}
            }
        }
        if let Err(e) = self.store.delete_daemon(self.id).await {
            tracing::warn!(daemon = %self.name, error = %e, "deregistering provisioner daemon");
        }
    }

    /// Sleeps; `true` if asked to stop meanwhile.
    async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => *self.stop.borrow(),
            _ = self.stop.changed() => true,
        }
    }

    async fn run_job(&mut self, job: JobRow) {
        let span =
            tracing::info_span!("job", id = %job.id, kind = %job.job_type, daemon = %self.name);
        let _enter = span.enter();
        tracing::info!("running provisioner job");
        let (outcome, build) = self.execute(&job).await;
        let build_product = match (&outcome, &build) {
            (Ok(Outcome::Build(result)), Some(ctx)) => Some(finish_build(ctx, result)),
            _ => None,
        };
        let how = match &outcome {
            Ok(Outcome::Import(r)) => {
                let version = job_input(&job).template_version_id.unwrap_or_default();
                Completion::Succeeded(Produced {
                    resources: vec![("start", &r.start_resources), ("stop", &r.stop_resources)],
                    timings: &[],
                    import: Some(ImportProduct {
                        template_version_id: version,
                        readme: &r.readme,
                        variables: &r.variables,
                        parameters: &r.parameters,
                    }),
                    build: None,
                })
            }
            Ok(Outcome::DryRun { resources }) => Completion::Succeeded(Produced {
                resources: vec![("start", resources)],
                ..Default::default()
            }),
            Ok(Outcome::Build(b)) => Completion::Succeeded(Produced {
                resources: vec![(
                    build
                        .as_ref()
                        .map(|c| c.transition.as_str())
                        .unwrap_or("start"),
                    &b.resources,
                )],
                timings: &b.timings,
                import: None,
                build: build_product,
            }),
            // A build's new state is stored even when it did not succeed: Terraform may have
            // changed real infrastructure before it stopped.
            Err(Failure::Canceled { state }) => Completion::Canceled {
                state: state.as_deref(),
            },
            Err(Failure::Failed {
                error,
                error_code,
                state,
            }) => Completion::Failed {
                error,
                error_code: error_code.as_deref(),
                state: state.as_deref(),
            },
        };
        match self.store.complete_job(job.id, Some(self.id), how).await {
            Ok(true) => tracing::info!(succeeded = outcome.is_ok(), "provisioner job finished"),
            Ok(false) => tracing::info!("provisioner job had already ended; result discarded"),
            Err(e) => tracing::error!(error = %e, "completing provisioner job"),
        }
        let _ = self
            .pubsub
            .publish(&logs_channel(job.id), r#"{"end_of_logs":true}"#)
            .await;
        if let Some(ctx) = &build {
            let payload =
                serde_json::json!({"kind": "state_change", "workspace_id": ctx.workspace_id});
            let _ = self
                .pubsub
                .publish(
                    &format!("workspace_owner:{}", ctx.owner_id),
                    &payload.to_string(),
                )
                .await;
        }
    }

    /// Runs the job's provisioner with heartbeats and log shipping until it ends; for builds,
    /// also answers the build's context.
    async fn execute(&mut self, job: &JobRow) -> (Result<Outcome, Failure>, Option<BuildContext>) {
        let mut build = None;
        let result = self.execute_inner(job, &mut build).await;
        (result, build)
    }

    async fn execute_inner(
        &mut self,
        job: &JobRow,
        build: &mut Option<BuildContext>,
    ) -> Result<Outcome, Failure> {
        let provisioner = self
            .cfg
            .provisioners
            .iter()
            .find(|p| p.name() == job.provisioner)
            .cloned()
            .ok_or_else(|| {
                Failure::failed(format!(
                    "provisioner {:?} is not available",
                    job.provisioner
                ))
            })?;
        let archive = self
            .store
            .file(job.file_id)
            .await
            .map_err(|e| Failure::failed(format!("reading the template archive: {e}")))?
            .data;
        let input = job_input(job);
        let kind = match job.job_type.as_str() {
            "template_version_import" => JobKind::Import {
                user_variable_values: input.user_variable_values,
            },
            "template_version_dry_run" => JobKind::DryRun {
                parameters: input.rich_parameter_values,
                variables: dry_run_variables(
                    &self.store,
                    input.template_version_id,
                    input.user_variable_values,
                )
                .await?,
                workspace: WorkspaceFacts {
                    access_url: self.cfg.access_url.clone(),
                    workspace_name: input.workspace_name,
                    ..Default::default()
                },
            },
            "workspace_build" => {
                let id = input
                    .workspace_build_id
                    .ok_or_else(|| Failure::failed("the job names no workspace build"))?;
                let ctx =
                    self.store.build_context(id).await.map_err(|e| {
                        Failure::failed(format!("reading the workspace build: {e}"))
                    })?;
                let variables = self
                    .store
                    .version_variables(ctx.template_version_id)
                    .await
                    .map_err(|e| Failure::failed(format!("reading template variables: {e}")))?
                    .into_iter()
                    .map(|v| VariableValue {
                        name: v.name,
                        value: v.value,
                    })
                    .collect();
                let transition = match ctx.transition.as_str() {
                    "stop" => Transition::Stop,
                    "delete" => Transition::Delete,
                    _ => Transition::Start,
                };
                let kind = JobKind::Build {
                    transition,
                    parameters: ctx
                        .parameters
                        .iter()
                        .map(|(name, value)| ParameterValue {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                    variables,
                    state: ctx.state.clone(),
                    workspace: WorkspaceFacts {
                        access_url: self.cfg.access_url.clone(),
                        workspace_id: ctx.workspace_id,
                        workspace_name: ctx.workspace_name.clone(),
                        owner_id: ctx.owner_id,
                        owner_name: ctx.owner_name.clone(),
                        owner_email: ctx.owner_email.clone(),
                        template_id: ctx.template_id,
                        template_name: ctx.template_name.clone(),
                        template_version: ctx.template_version.clone(),
                    },
                };
                *build = Some(ctx);
                kind
            }
            other => return Err(Failure::failed(format!("unknown job type {other:?}"))),
        };
        let (log_tx, log_rx) = mpsc::unbounded_channel();
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let req = JobRequest {
            job_id: job.id,
            kind,
            archive,
        };
        let ctx = JobContext {
            logs: log_tx,
            canceled: cancel_rx,
        };
        let shipper = tokio::spawn(ship_logs(
            self.store.clone(),
            self.pubsub.clone(),
            job.id,
            log_rx,
        ));
        let run = provisioner.run(req, ctx);
        tokio::pin!(run);
        let mut heartbeat = tokio::time::interval(self.cfg.heartbeat_interval);
        let mut stop = self.stop.clone();
        let mut stopping_since: Option<Instant> = None;
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                _ = heartbeat.tick() => {
                    match self.store.heartbeat_job(job.id).await {
                        Ok(true) => { let _ = cancel_tx.send(true); }
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "job heartbeat"),
                    }
                    if stopping_since.is_some_and(|t| t.elapsed() > self.cfg.shutdown_grace) {
                        let _ = cancel_tx.send(true);
                        break Err(Failure::failed("The provisioner daemon shut down while this job was running."));
                    }
                }
                _ = stop.changed(), if stopping_since.is_none() => stopping_since = Some(Instant::now()),
            }
        };
        // The provisioner's log sender went with its future; the shipper flushes what is left.
        let _ = shipper.await;
        result
    }
}

/// What a successful build writes back: state, deadline (start builds only), cost, and
/// whether the workspace is now deleted.
fn finish_build<'a>(ctx: &BuildContext, result: &'a crate::BuildResult) -> BuildProduct<'a> {
    let zero = schedule::zero_time();
    let now = chrono::Utc::now();
    let (deadline, max_deadline) = if ctx.transition == "start" {
        let quiet = schedule::parse_quiet_hours(&ctx.owner_quiet_hours)
            .or_else(|_| schedule::parse_quiet_hours(schedule::DEFAULT_QUIET_HOURS))
            .ok();
        let max = quiet.map_or(zero, |q| {
            schedule::autostop_requirement_deadline(
                now,
                &ctx.autostop_requirement_days_of_week,
                ctx.autostop_requirement_weeks,
                &q,
            )
        });
        let ttl_ns = if ctx.template_allow_user_autostop {
            ctx.ttl.unwrap_or(0)
        } else {
            ctx.template_default_ttl
        };
        let autostart = ctx
            .autostart_schedule
            .as_deref()
            .and_then(|s| schedule::Weekly::parse(s).ok());
        (
            schedule::start_deadline(
                now,
                chrono::Duration::nanoseconds(ttl_ns),
                autostart.as_ref(),
                max,
            ),
            max,
        )
    } else {
        (zero, zero)
    };
    BuildProduct {
        build_id: ctx.build_id,
        workspace_id: ctx.workspace_id,
        state: result.state.as_deref(),
        deadline,
        max_deadline,
        daily_cost: result.resources.iter().map(|r| r.daily_cost).sum(),
        delete_workspace: ctx.transition == "delete",
    }
}

/// A dry run gets the version's imported variable values, overridden by those it was given.
async fn dry_run_variables(
    store: &Store,
    version: Option<Uuid>,
    given: Vec<VariableValue>,
) -> Result<Vec<VariableValue>, Failure> {
    let Some(version) = version else {
        return Ok(given);
    };
    let stored = store
        .version_variables(version)
        .await
        .map_err(|e| Failure::failed(format!("reading template variables: {e}")))?;
    let mut out: Vec<VariableValue> = stored
        .into_iter()
        .filter(|v| !given.iter().any(|g| g.name == v.name))
        .map(|v| VariableValue {
            name: v.name,
            value: v.value,
        })
        .collect();
    out.extend(given);
    Ok(out)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JobInput {
    workspace_build_id: Option<Uuid>,
    template_version_id: Option<Uuid>,
    user_variable_values: Vec<VariableValue>,
    rich_parameter_values: Vec<ParameterValue>,
    workspace_name: String,
}

fn job_input(job: &JobRow) -> JobInput {
    serde_json::from_value(job.input.0.clone()).unwrap_or_default()
}

/// Writes logs in batches (every 250 ms, or at 100 lines) and announces each batch; flushes
/// the rest when the provisioner is done.
async fn ship_logs(store: Store, pubsub: Pubsub, job: Uuid, mut rx: mpsc::UnboundedReceiver<Log>) {
    let mut batch: Vec<Log> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            l = rx.recv() => match l {
                Some(l) => {
                    batch.push(l);
                    if batch.len() >= 100 {
                        flush(&store, &pubsub, job, &mut batch).await;
                    }
                }
                None => {
                    flush(&store, &pubsub, job, &mut batch).await;
                    return;
                }
            },
            _ = tick.tick() => flush(&store, &pubsub, job, &mut batch).await,
        }
    }
}

async fn flush(store: &Store, pubsub: &Pubsub, job: Uuid, batch: &mut Vec<Log>) {
    if batch.is_empty() {
        return;
    }
    let lines: Vec<NewLog> = batch
        .iter()
        .map(|l| NewLog {
            level: &l.level,
            stage: &l.stage,
            output: &l.output,
        })
        .collect();
    match store.insert_logs(job, "provisioner", &lines).await {
        Ok(ids) => {
            if let Some(first) = ids.first() {
                let payload = format!(r#"{{"created_after":{}}}"#, first - 1);
                let _ = pubsub.publish(&logs_channel(job), &payload).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "writing job logs"),
    }
    batch.clear();
}
