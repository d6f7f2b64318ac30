//! The provisioner daemon loop: acquire a job (woken by `provisioner_job_posted`, with a slow
//! backup poll), run it with heartbeats and batched logs, and complete it with everything it
//! produced in one transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coderd_db::pubsub::{self, Pubsub};
use coderd_db::schedule;
use coderd_db::{
    Acquired, BuildContext, BuildProduct, Completion, ImportProduct, JobRow, NewDaemon, NewLog,
    Produced, Store, StoreError,
};
use serde::Deserialize;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    Failure, JobContext, JobKind, JobRequest, Log, Outcome, ParameterValue, Provisioner,
    Transition, VariableValue, WorkspaceFacts, REQUIRED_TEMPLATE_VARIABLES,
};

/// The error of a job still running when its daemon shut down and the grace ran out.
pub const SHUTDOWN_ERROR: &str = "The provisioner daemon shut down while this job was running.";

/// How long a provisioner told to cancel at shutdown gets to stop before it is dropped.
const CANCEL_WAIT: Duration = Duration::from_secs(2);
/// How long a stopping daemon keeps trying to store a result past its grace.
const STORE_WAIT_AT_SHUTDOWN: Duration = Duration::from_secs(3);
/// How long a daemon keeps a finished job's result while the database is unavailable.
const KEEP_RESULT_FOR: Duration = Duration::from_secs(30 * 60);
/// Most log lines kept in memory while the database cannot take them.
const MAX_PENDING_LOGS: usize = 50_000;

/// The message on a job's logs channel saying no more lines will come.
pub const END_OF_LOGS: &str = r#"{"end_of_logs":true}"#;

/// Channel on which new jobs are announced.
pub const JOB_POSTED: &str = "provisioner_job_posted";

/// The channel on which a job's new logs (and its end) are announced.
pub fn logs_channel(job: Uuid) -> String {
    format!("provisioner-log-logs:{job}")
}

/// Told when this process's daemons start and finish jobs (the server's metrics).
pub trait JobObserver: Send + Sync {
    fn started(&self, provisioner: &str);
    /// `status` is `success`, `canceled` or `failed`.
    fn finished(&self, provisioner: &str, status: &str, took: Duration);
    /// A job's result is in the database (what it changed can be read now).
    fn stored(&self) {}
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
    pub observer: Option<Arc<dyn JobObserver>>,
}

/// Running daemons.
pub struct Daemons {
    /// When shutdown began (`None` while running).
    stop: watch::Sender<Option<Instant>>,
    tasks: JoinSet<()>,
}

/// Starts `cfg.count` daemons sharing one wake-up subscription.
pub fn start(store: Store, pubsub: Pubsub, cfg: DaemonConfig) -> Daemons {
    let (stop, stop_rx) = watch::channel(None);
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
                        // One job, one daemon: waking every idle daemon cost each of the
                        // others an acquisition that found nothing. A daemon that ends a
                        // job looks again without being woken; a wake-up given to a daemon
                        // that no longer waits goes to the next one (or is kept for it).
                        Some(_) => wake.notify_one(),
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
            last_archive: None,
        };
        tasks.spawn(d.run());
    }
    Daemons { stop, tasks }
}

impl Daemons {
    /// Stops acquiring at once; running jobs get the grace period from now.
    pub fn stop_acquiring(&self) {
        self.stop.send_if_modified(|since| {
            if since.is_some() {
                return false;
            }
            *since = Some(Instant::now());
            true
        });
    }

    /// Stops acquiring; waits for running jobs (bounded by the grace period, after which they
    /// are canceled and failed with [`SHUTDOWN_ERROR`]) and deregisters.
    pub async fn shutdown(mut self) {
        self.stop_acquiring();
        while self.tasks.join_next().await.is_some() {}
    }
}

#[derive(Clone)]
struct Daemon {
    id: Uuid,
    name: String,
    store: Store,
    pubsub: Pubsub,
    cfg: DaemonConfig,
    wake: Arc<Notify>,
    stop: watch::Receiver<Option<Instant>>,
    /// The template archive read last (files never change once stored): consecutive jobs
    /// of one version read it once.
    last_archive: Option<(Uuid, Arc<Vec<u8>>)>,
}

/// A job that ran, with what its completion needs.
struct Ran {
    job: JobRow,
    outcome: Result<Outcome, Failure>,
    build: Option<BuildContext>,
    unsent_logs: Vec<Log>,
}

/// Archives larger than this are read again for each job rather than kept.
const KEEP_ARCHIVE_UP_TO: usize = 16 << 20;

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
        // The previous job's completion, still storing its result while the next job runs.
        let mut storing: Option<tokio::task::JoinHandle<()>> = None;
        while self.stop.borrow().is_none() {
            // Register interest before looking, so a job posted in between still wakes us.
            let wake = self.wake.clone();
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.store.acquire_job(self.id, &types, &tags).await {
                // Shutdown began while the claim was on its way: give the job back.
                Ok(Some(Acquired { job, .. })) if self.stop.borrow().is_some() => {
                    tracing::info!(daemon = %self.name, job = %job.id, "stopping; releasing a job just claimed");
                    if let Err(e) = self.store.release_job(job.id, self.id).await {
                        tracing::warn!(daemon = %self.name, job = %job.id, error = %e, "releasing a job");
                    }
                }
                Ok(Some(Acquired { job, build })) => {
                    let span = tracing::info_span!("job", id = %job.id, kind = %job.job_type, daemon = %self.name);
                    let ran = self.run_job(job, build).instrument(span.clone()).await;
                    // One result stored at a time, in the order the jobs ran.
                    finish_storing(storing.take()).await;
                    storing = Some(tokio::spawn(self.clone().complete(ran).instrument(span)));
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
                // Also when shutdown began before this receiver was cloned.
                _ = stop.wait_for(Option::is_some) => {}
            }
        }
        finish_storing(storing.take()).await;
        if let Err(e) = self.store.delete_daemon(self.id).await {
            tracing::warn!(daemon = %self.name, error = %e, "deregistering provisioner daemon");
        }
    }

    /// Sleeps; `true` if asked to stop meanwhile.
    async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stop.borrow().is_some(),
            _ = self.stop.changed() => true,
        }
    }

    /// Runs one job (in the caller's span, which is never entered across an await, so nothing
    /// else running on this thread meanwhile is tagged with the job); its result is stored
    /// by [`Daemon::complete`], which the daemon runs while it takes its next job. `build` is
    /// its build's context when the claim read it.
    async fn run_job(&mut self, job: JobRow, build: Option<BuildContext>) -> Ran {
        tracing::info!("running provisioner job");
        let started = Instant::now();
        if let Some(o) = &self.cfg.observer {
            o.started(&job.provisioner);
        }
        let (outcome, build, unsent_logs) = self.execute(&job, build).await;
        if let Some(o) = &self.cfg.observer {
            let status = match &outcome {
                Ok(_) => "success",
                Err(Failure::Canceled { .. }) => "canceled",
                Err(Failure::Failed { .. } | Failure::MissingVariables { .. }) => "failed",
            };
            o.finished(&job.provisioner, status, started.elapsed());
        }
        Ran {
            job,
            outcome,
            build,
            unsent_logs,
        }
    }

    /// Stores a job's logs and result and ends it.
    async fn complete(self, ran: Ran) {
        let Ran {
            job,
            outcome,
            build,
            unsent_logs,
        } = ran;
        let build_product = match (&outcome, &build) {
            (Ok(Outcome::Build(result)), Some(ctx)) => Some(finish_build(ctx, result)),
            _ => None,
        };
        let version = job_input(&job).template_version_id.unwrap_or_default();
        let failure_message = outcome.as_ref().err().map(Failure::to_string);
        let how = match &outcome {
            Ok(Outcome::Import(r)) => Completion::Succeeded(Produced {
                resources: vec![
                    (Transition::Start, &r.start_resources),
                    (Transition::Stop, &r.stop_resources),
                ],
                timings: &[],
                import: Some(ImportProduct {
                    template_version_id: version,
                    readme: &r.readme,
                    variables: &r.variables,
                    parameters: &r.parameters,
                    presets: &r.presets,
                }),
                build: None,
            }),
            Ok(Outcome::DryRun { resources }) => Completion::Succeeded(Produced {
                resources: vec![(Transition::Start, resources)],
                ..Default::default()
            }),
            Ok(Outcome::Build(b)) => Completion::Succeeded(Produced {
                resources: vec![(
                    build.as_ref().map_or(Transition::Start, |c| c.transition),
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
                import: None,
            },
            // Upstream records the variables before it checks them, so the version lists
            // them even though its import failed: clients ask for the missing ones.
            Err(Failure::MissingVariables { variables, .. }) => Completion::Failed {
                error: failure_message.as_deref().unwrap_or_default(),
                error_code: Some(REQUIRED_TEMPLATE_VARIABLES),
                state: None,
                import: Some(ImportProduct {
                    template_version_id: version,
                    readme: "",
                    variables,
                    parameters: &[],
                    presets: &[],
                }),
            },
        };
        // Logs before the end: followers read a job's status before its logs.
        if !unsent_logs.is_empty() {
            let flushed = self
                .persist("writing job logs", || {
                    flush(&self.store, &self.pubsub, job.id, &unsent_logs)
                })
                .await;
            if let Err(e) = flushed {
                tracing::error!(error = %e, lines = unsent_logs.len(), "job logs lost");
            }
        }
        // The end of the logs, and for a build its workspace's change, are published with the
        // completion (heard when it commits); otherwise on their own below.
        let logs = logs_channel(job.id);
        let mut announce = vec![(logs.as_str(), END_OF_LOGS)];
        let workspace_announcement = build.as_ref().map(|ctx| {
            (
                pubsub::workspace_owner_channel(ctx.owner_id),
                pubsub::workspace_changed(ctx.workspace_id),
            )
        });
        if let Some((channel, payload)) = &workspace_announcement {
            announce.push((channel, payload));
        }
        let completed = self
            .persist("completing provisioner job", || {
                self.store
                    .complete_job(job.id, Some(self.id), how.clone(), &announce)
            })
            .await;
        let announced = matches!(completed, Ok(true));
        match completed {
            Ok(true) => tracing::info!(succeeded = outcome.is_ok(), "provisioner job finished"),
            Ok(false) => tracing::info!("provisioner job had already ended; result discarded"),
            Err(e) if !e.is_unavailable() => {
                // The result itself cannot be stored: say so on the job rather than leave it
                // running until the reaper calls it hung.
                tracing::error!(error = %e, "completing provisioner job");
                let message = format!("Storing the job's result failed: {e}");
                let failed = self
                    .persist("failing provisioner job", || {
                        self.store.complete_job(
                            job.id,
                            Some(self.id),
                            Completion::Failed {
                                error: &message,
                                error_code: None,
                                state: None,
                                import: None,
                            },
                            &[],
                        )
                    })
                    .await;
                if let Err(e) = failed {
                    tracing::error!(error = %e, "failing provisioner job");
                }
            }
            Err(e) => tracing::error!(error = %e, "completing provisioner job; result lost"),
        }
        if let Some(o) = &self.cfg.observer {
            o.stored();
        }
        if !announced {
            let _ = self.pubsub.publish(&logs, END_OF_LOGS).await;
            if let Some(ctx) = &build {
                self.publish_state_change(ctx.owner_id, ctx.workspace_id)
                    .await;
            }
        }
    }

    /// Tells the workspace's watchers (in every replica) that it changed.
    async fn publish_state_change(&self, owner: Uuid, workspace: Uuid) {
        let _ = self
            .pubsub
            .publish(
                &pubsub::workspace_owner_channel(owner),
                &pubsub::workspace_changed(workspace),
            )
            .await;
    }

    /// Retries `op` while the database is unavailable, with backoff (250 ms doubling up to
    /// 5 s), until it succeeds or fails otherwise; gives up after [`KEEP_RESULT_FOR`], or once
    /// the daemon has been stopping for its grace plus [`STORE_WAIT_AT_SHUTDOWN`].
    async fn persist<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(250);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_unavailable() => return Err(e),
                Err(e) => e,
            };
            let stopping_too_long = self.stop.borrow().is_some_and(|since| {
                since.elapsed() > self.cfg.shutdown_grace + STORE_WAIT_AT_SHUTDOWN
            });
            if stopping_too_long || started.elapsed() > KEEP_RESULT_FOR {
                return Err(err);
            }
            tracing::warn!(attempt, error = %err, retry_in = ?backoff, "{what}: the database is unavailable; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Runs the job's provisioner with heartbeats and log shipping until it ends; for builds,
    /// also answers the build's context; and the log lines the database did not take yet.
    async fn execute(
        &mut self,
        job: &JobRow,
        claimed: Option<BuildContext>,
    ) -> (Result<Outcome, Failure>, Option<BuildContext>, Vec<Log>) {
        let mut build = None;
        let mut unsent = Vec::new();
        let result = self
            .execute_inner(job, claimed, &mut build, &mut unsent)
            .await;
        (result, build, unsent)
    }

    async fn execute_inner(
        &mut self,
        job: &JobRow,
        claimed: Option<BuildContext>,
        build: &mut Option<BuildContext>,
        unsent_logs: &mut Vec<Log>,
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
        let archive = match &self.last_archive {
            Some((id, data)) if *id == job.file_id => data.as_ref().clone(),
            _ => {
                let data = self
                    .store
                    .file(job.file_id)
                    .await
                    .map_err(|e| Failure::failed(format!("reading the template archive: {e}")))?
                    .data;
                self.last_archive = (data.len() <= KEEP_ARCHIVE_UP_TO)
                    .then(|| (job.file_id, Arc::new(data.clone())));
                data
            }
        };
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
                let ctx = match claimed.filter(|c| c.build_id == id) {
                    Some(ctx) => ctx,
                    None => self.store.build_context(id).await.map_err(|e| {
                        Failure::failed(format!("reading the workspace build: {e}"))
                    })?,
                };
                let variables = ctx
                    .variables
                    .iter()
                    .map(|(name, value)| VariableValue {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect();
                let kind = JobKind::Build {
                    transition: ctx.transition,
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
                // (Its workspace was announced as changed when the job was acquired.)
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
        let shipper = tokio::spawn(
            ship_logs(self.store.clone(), self.pubsub.clone(), job.id, log_rx).in_current_span(),
        );
        // Boxed so it can be dropped (with the log sender it owns) before the shipper is awaited.
        let mut run = Box::pin(provisioner.run(req, ctx));
        // The first beat one interval in: acquiring the job has just marked it alive.
        let mut heartbeat = tokio::time::interval_at(
            tokio::time::Instant::now() + self.cfg.heartbeat_interval,
            self.cfg.heartbeat_interval,
        );
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = self.stop.clone();
        let grace = self.cfg.shutdown_grace;
        let grace_over = |since: Option<Instant>| async move {
            match since {
                Some(t) => tokio::time::sleep_until((t + grace).into()).await,
                None => std::future::pending().await,
            }
        };
        let result = loop {
            let stopping_since = *stop.borrow_and_update();
            tokio::select! {
                r = &mut run => break r,
                _ = heartbeat.tick() => {
                    // Bounded, so an unreachable database never stalls the job or the grace.
                    let beat = tokio::time::timeout(
                        self.cfg.heartbeat_interval * 3,
                        self.store.heartbeat_job(job.id),
                    );
                    match beat.await {
                        Ok(Ok(true)) => { let _ = cancel_tx.send(true); }
                        Ok(Ok(false)) => {}
                        // The job stays ours: it is stored once the database is back.
                        Ok(Err(e)) => tracing::warn!(error = %e, "job heartbeat"),
                        Err(_) => tracing::warn!("job heartbeat timed out"),
                    }
                }
                () = grace_over(stopping_since) => {
                    tracing::warn!(grace = ?grace, "shutting down: canceling the running job");
                    let _ = cancel_tx.send(true);
                    let _ = tokio::time::timeout(CANCEL_WAIT, &mut run).await;
                    break Err(Failure::failed(SHUTDOWN_ERROR));
                }
                _ = stop.changed() => {}
            }
        };
        drop(run);
        // The log sender went with the provisioner: the shipper flushes what is left and ends.
        if let Ok(left) = shipper.await {
            *unsent_logs = left;
        }
        result
    }
}

/// What a successful build writes back: state, deadline (start builds only), cost, and
/// whether the workspace is now deleted.
fn finish_build<'a>(ctx: &BuildContext, result: &'a crate::BuildResult) -> BuildProduct<'a> {
    let zero = schedule::zero_time();
    let now = chrono::Utc::now();
    let (deadline, max_deadline) = if ctx.transition == Transition::Start {
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
        delete_workspace: ctx.transition == Transition::Delete,
    }
}

/// Waits for a job's completion to be stored (its errors are logged by the task itself).
async fn finish_storing(storing: Option<tokio::task::JoinHandle<()>>) {
    if let Some(task) = storing {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "storing a provisioner job's result");
        }
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

/// Writes logs in batches (every 250 ms, or at 100 lines) and announces each batch. A batch
/// the database did not take is kept (up to [`MAX_PENDING_LOGS`] lines) and tried again; once
/// the provisioner is done, answers the lines still unsent.
async fn ship_logs(
    store: Store,
    pubsub: Pubsub,
    job: Uuid,
    mut rx: mpsc::UnboundedReceiver<Log>,
) -> Vec<Log> {
    let mut batch: Vec<Log> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let try_flush = |batch: &mut Vec<Log>| {
        let store = store.clone();
        let pubsub = pubsub.clone();
        let lines = std::mem::take(batch);
        async move {
            match flush(&store, &pubsub, job, &lines).await {
                Ok(()) => Vec::new(),
                Err(e) => {
                    tracing::warn!(error = %e, lines = lines.len(), "writing job logs; keeping them to retry");
                    let mut lines = lines;
                    if lines.len() > MAX_PENDING_LOGS {
                        let over = lines.len() - MAX_PENDING_LOGS;
                        tracing::error!(
                            lines = over,
                            "too many job logs unsent; dropping the oldest"
                        );
                        lines.drain(..over);
                    }
                    lines
                }
            }
        }
    };
    // Lines since the last attempt: a kept batch is not retried on every new line.
    let mut fresh = 0;
    loop {
        tokio::select! {
            l = rx.recv() => match l {
                Some(l) => {
                    batch.push(l);
                    fresh += 1;
                    if fresh >= 100 {
                        fresh = 0;
                        batch = try_flush(&mut batch).await;
                    }
                }
                None => return try_flush(&mut batch).await,
            },
            _ = tick.tick() => {
                fresh = 0;
                batch = try_flush(&mut batch).await;
            }
        }
    }
}

async fn flush(store: &Store, pubsub: &Pubsub, job: Uuid, batch: &[Log]) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let lines: Vec<NewLog> = batch
        .iter()
        .map(|l| NewLog {
            level: &l.level,
            stage: &l.stage,
            output: &l.output,
        })
        .collect();
    let ids = store.insert_logs(job, "provisioner", &lines).await?;
    if let Some(first) = ids.first() {
        let payload = format!(r#"{{"created_after":{}}}"#, first - 1);
        let _ = pubsub.publish(&logs_channel(job), &payload).await;
    }
    Ok(())
}
