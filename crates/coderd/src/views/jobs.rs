//! Provisioner jobs as the API shows them (with queue position, matching daemons and
//! metadata), their logs, and the resources they produced. Building any number of jobs costs a
//! fixed number of queries.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use coderd_db::{AgentRow, DaemonRow, JobRow, LogRow, ResourceRow};
use codersdk::{
    Healthcheck, MatchedProvisioners, ProvisionerJob, ProvisionerJobInput, ProvisionerJobLog,
    ProvisionerJobMetadata, WorkspaceAgent, WorkspaceAgentHealth, WorkspaceApp, WorkspaceResource,
    WorkspaceResourceMetadata,
};
use uuid::Uuid;

use crate::http::error::ApiResult;
use crate::state::AppState;
use crate::views::loaded::Loaded;

/// Coder's tag matching: an untagged job needs an untagged daemon; otherwise the daemon's tags
/// must contain the job's.
pub fn tags_match(daemon: &BTreeMap<String, String>, job: &BTreeMap<String, String>) -> bool {
    let untagged = job.len() == 2
        && job.get("scope").map(String::as_str) == Some("organization")
        && job.get("owner").map(String::as_str) == Some("");
    if untagged {
        return daemon == job;
    }
    job.iter().all(|(k, v)| daemon.get(k) == Some(v))
}

fn daemon_matches(d: &DaemonRow, provisioner: &str, tags: &BTreeMap<String, String>) -> bool {
    d.provisioners.iter().any(|p| p == provisioner) && tags_match(&d.tags.0, tags)
}

fn is_available(d: &DaemonRow, now: DateTime<Utc>) -> bool {
    coderd_db::DaemonStatus::of(d.last_seen_at, false, now) != coderd_db::DaemonStatus::Offline
}

/// Daemons that could run a job with this provisioner and these tags.
pub fn matched_provisioners(
    daemons: &[DaemonRow],
    provisioner: &str,
    tags: &BTreeMap<String, String>,
) -> MatchedProvisioners {
    matched_among(daemons.iter(), provisioner, tags)
}

fn matched_among<'a>(
    daemons: impl Iterator<Item = &'a DaemonRow>,
    provisioner: &str,
    tags: &BTreeMap<String, String>,
) -> MatchedProvisioners {
    let now = Utc::now();
    let matching: Vec<&DaemonRow> = daemons
        .filter(|d| daemon_matches(d, provisioner, tags))
        .collect();
    MatchedProvisioners {
        count: matching.len() as i64,
        available: matching.iter().filter(|d| is_available(d, now)).count() as i64,
        most_recently_seen: matching.iter().map(|d| d.last_seen_at).max(),
    }
}

/// Matches a build rendered earlier (crate::render_cache) against the daemons of now: which
/// could run its job, which are online, which was seen last.
pub fn rematch(
    b: &codersdk::WorkspaceBuild,
    provisioner: &str,
    daemons: &[DaemonRow],
) -> MatchedProvisioners {
    let org = b.job.organization_id;
    matched_among(
        daemons
            .iter()
            .filter(|d| d.organization_id.is_none_or(|o| o == org)),
        provisioner,
        &b.job.tags,
    )
}

/// Everything needed to render jobs, loaded in a fixed number of queries.
pub struct JobViews {
    positions: HashMap<Uuid, (i64, i64)>,
    daemons: HashMap<Uuid, Vec<DaemonRow>>,
    metadata: HashMap<Uuid, ProvisionerJobMetadata>,
}

impl JobViews {
    pub async fn load(state: &AppState, jobs: &[&JobRow]) -> ApiResult<JobViews> {
        Self::load_with(state, jobs, &mut Loaded::default()).await
    }

    /// Like `load`, reusing (and adding to) rows the caller already loaded.
    pub async fn load_with(
        state: &AppState,
        jobs: &[&JobRow],
        loaded: &mut Loaded,
    ) -> ApiResult<JobViews> {
        // Only a pending job has a place in the queue (and a job never becomes pending again).
        let pending: Vec<Uuid> = jobs
            .iter()
            .filter(|j| j.status == coderd_db::JobStatus::Pending)
            .filter(|j| !loaded.queue.contains_key(&j.id))
            .map(|j| j.id)
            .collect();
        let mut positions = state.store.queue_positions(&pending).await?;
        positions.extend(loaded.queue.iter().map(|(id, q)| (*id, *q)));
        let mut daemons = HashMap::new();
        let mut orgs: Vec<Uuid> = jobs.iter().map(|j| j.organization_id).collect();
        orgs.sort();
        orgs.dedup();
        for org in orgs {
            let list = match loaded.daemons_for(org) {
                Some(list) => list,
                None => state.store.list_daemons(org).await?,
            };
            daemons.insert(org, list);
        }
        let build_ids: Vec<Uuid> = jobs
            .iter()
            .filter_map(|j| input_uuid(j, "workspace_build_id"))
            .collect();
        loaded.builds(state, build_ids.iter().copied()).await?;
        let of_jobs: Vec<&coderd_db::BuildRow> = build_ids
            .iter()
            .filter_map(|id| loaded.builds.get(id))
            .collect();
        let ws_ids: Vec<Uuid> = of_jobs.iter().map(|b| b.workspace_id).collect();
        let mut version_ids: Vec<Uuid> = jobs
            .iter()
            .filter_map(|j| input_uuid(j, "template_version_id"))
            .collect();
        version_ids.extend(of_jobs.iter().map(|b| b.template_version_id));
        loaded.workspaces(state, ws_ids).await?;
        loaded.versions(state, version_ids.iter().copied()).await?;
        let template_ids: Vec<Uuid> = version_ids
            .iter()
            .filter_map(|v| loaded.versions.get(v).and_then(|v| v.template_id))
            .collect();
        loaded.templates(state, template_ids).await?;
        let (builds, workspaces, versions, templates) = (
            &loaded.builds,
            &loaded.workspaces,
            &loaded.versions,
            &loaded.templates,
        );
        let mut metadata = HashMap::new();
        for j in jobs {
            let mut m = ProvisionerJobMetadata::default();
            let build = input_uuid(j, "workspace_build_id").and_then(|id| builds.get(&id));
            if let Some(w) = build.and_then(|b| workspaces.get(&b.workspace_id)) {
                m.workspace_id = Some(w.id);
                m.workspace_name = w.name.clone();
            }
            let version =
                input_uuid(j, "template_version_id").or(build.map(|b| b.template_version_id));
            if let Some(v) = version.and_then(|id| versions.get(&id)) {
                m.template_version_name = v.name.clone();
                if let Some(t) = v.template_id.and_then(|t| templates.get(&t)) {
                    m.template_id = t.id;
                    m.template_name = t.name.clone();
                    m.template_display_name = t.display_name.clone();
                    m.template_icon = t.icon.clone();
                }
            }
            metadata.insert(j.id, m);
        }
        Ok(JobViews {
            positions,
            daemons,
            metadata,
        })
    }

    pub fn daemons(&self, org: Uuid) -> &[DaemonRow] {
        self.daemons.get(&org).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn render(&self, j: &JobRow) -> ProvisionerJob {
        let (queue_position, queue_size) = self.positions.get(&j.id).copied().unwrap_or((0, 0));
        let now = Utc::now();
        let available_workers = if j.status == coderd_db::JobStatus::Pending {
            self.daemons(j.organization_id)
                .iter()
                .filter(|d| daemon_matches(d, &j.provisioner, &j.tags.0) && is_available(d, now))
                .map(|d| d.id)
                .collect()
        } else {
            Vec::new()
        };
        ProvisionerJob {
            id: j.id,
            created_at: j.created_at,
            started_at: j.started_at,
            completed_at: j.completed_at,
            canceled_at: j.canceled_at,
            error: j.error.clone().unwrap_or_default(),
            error_code: j.error_code.clone().filter(|c| !c.is_empty()),
            status: j.status.to_string(),
            worker_id: j.worker_id,
            worker_name: j.worker_name.clone().unwrap_or_default(),
            file_id: j.file_id,
            tags: j.tags.0.clone(),
            queue_position,
            queue_size,
            organization_id: j.organization_id,
            initiator_id: j.initiator_id,
            input: ProvisionerJobInput {
                template_version_id: input_uuid(j, "template_version_id"),
                workspace_build_id: input_uuid(j, "workspace_build_id"),
                error: String::new(),
            },
            kind: j.job_type.clone(),
            available_workers,
            metadata: self.metadata.get(&j.id).cloned().unwrap_or_default(),
            logs_overflowed: j.logs_overflowed,
        }
    }
}

pub fn input_uuid(j: &JobRow, key: &str) -> Option<Uuid> {
    j.input
        .0
        .get(key)
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// One job, rendered.
pub async fn render_job(state: &AppState, j: &JobRow) -> ApiResult<ProvisionerJob> {
    Ok(JobViews::load(state, &[j]).await?.render(j))
}

pub fn log(l: LogRow) -> ProvisionerJobLog {
    ProvisionerJobLog {
        id: l.id,
        created_at: l.created_at,
        log_source: l.source,
        log_level: l.level.to_string(),
        stage: l.stage,
        output: l.output,
    }
}

/// A row that a job completes (a build, a template version): rendered beside its job, which is
/// read by a later statement.
pub trait Completed {
    fn id(&self) -> Uuid;
    fn job_id(&self) -> Uuid;
    /// Whether the job had completed when the row was read.
    fn job_done(&self) -> bool;
}

impl Completed for coderd_db::BuildRow {
    fn id(&self) -> Uuid {
        self.id
    }
    fn job_id(&self) -> Uuid {
        self.job_id
    }
    fn job_done(&self) -> bool {
        self.job_done
    }
}

impl Completed for coderd_db::VersionRow {
    fn id(&self) -> Uuid {
        self.id
    }
    fn job_id(&self) -> Uuid {
        self.job_id
    }
    fn job_done(&self) -> bool {
        self.job_done
    }
}

/// The jobs of `rows`, by id. The statements of one request see different moments: a job that
/// completed after its row was read would show as finished beside a row without what its
/// completion wrote (a build's deadline, a version's readme). Such rows (rarely any) are read
/// again with `reread`.
pub async fn jobs_of<R, F, Fut>(
    state: &AppState,
    rows: &mut [R],
    reread: F,
) -> ApiResult<HashMap<Uuid, JobRow>>
where
    R: Completed,
    F: FnOnce(Vec<Uuid>) -> Fut,
    Fut: std::future::Future<Output = coderd_db::Result<Vec<R>>>,
{
    let job_ids: Vec<Uuid> = rows.iter().map(Completed::job_id).collect();
    let jobs: HashMap<Uuid, JobRow> = state
        .store
        .jobs_by_ids(&job_ids)
        .await?
        .into_iter()
        .map(|j| (j.id, j))
        .collect();
    let stale: Vec<Uuid> = rows
        .iter()
        .filter(|r| {
            !r.job_done()
                && jobs
                    .get(&r.job_id())
                    .is_some_and(|j| j.completed_at.is_some())
        })
        .map(Completed::id)
        .collect();
    if !stale.is_empty() {
        let mut fresh: HashMap<Uuid, R> = reread(stale)
            .await?
            .into_iter()
            .map(|r| (r.id(), r))
            .collect();
        for r in rows.iter_mut() {
            if let Some(f) = fresh.remove(&r.id()) {
                *r = f;
            }
        }
    }
    Ok(jobs)
}

/// Agents by id, rendered.
pub async fn agents_by_ids(state: &AppState, ids: &[Uuid]) -> ApiResult<Vec<WorkspaceAgent>> {
    Ok(state
        .store
        .agents_by_ids(ids)
        .await?
        .iter()
        .map(agent)
        .collect())
}

pub fn agent(a: &AgentRow) -> WorkspaceAgent {
    WorkspaceAgent {
        id: a.id,
        parent_id: None,
        created_at: a.created_at,
        updated_at: a.updated_at,
        first_connected_at: a.first_connected_at,
        last_connected_at: a.last_connected_at,
        disconnected_at: a.disconnected_at,
        started_at: a.started_at,
        ready_at: a.ready_at,
        status: a.status.to_string(),
        lifecycle_state: a.lifecycle_state.clone(),
        name: a.name.clone(),
        resource_id: a.resource_id,
        instance_id: String::new(),
        architecture: a.architecture.clone(),
        environment_variables: BTreeMap::new(),
        operating_system: a.operating_system.clone(),
        logs_length: i64::from(a.logs_length),
        logs_overflowed: a.logs_overflowed,
        directory: a.directory.clone(),
        expanded_directory: a.expanded_directory.clone(),
        version: a.version.clone(),
        api_version: a.api_version.clone(),
        apps: a
            .apps
            .iter()
            .map(|app| WorkspaceApp {
                id: app.id,
                url: app.url.clone(),
                external: app.external,
                slug: app.slug.clone(),
                display_name: app.display_name.clone(),
                command: app.command.clone(),
                icon: app.icon.clone(),
                subdomain: app.subdomain,
                subdomain_name: String::new(),
                sharing_level: app.sharing_level.clone(),
                healthcheck: Healthcheck {
                    url: app.healthcheck_url.clone(),
                    interval: app.healthcheck_interval,
                    threshold: app.healthcheck_threshold,
                },
                health: app.health.clone(),
                group: String::new(),
                hidden: app.hidden,
                open_in: app.open_in.clone(),
                tooltip: String::new(),
                statuses: Vec::new(),
            })
            .collect(),
        latency: BTreeMap::new(),
        connection_timeout_seconds: a.connection_timeout_seconds,
        troubleshooting_url: a.troubleshooting_url.clone(),
        subsystems: a.subsystems.clone(),
        health: WorkspaceAgentHealth {
            healthy: a.status == coderd_db::AgentStatus::Connected,
            reason: a.status.reason().into(),
        },
        display_apps: a.display_apps.clone(),
        log_sources: Vec::new(),
        scripts: Vec::new(),
        startup_script_behavior: "non-blocking".into(),
    }
}

pub fn resource(r: ResourceRow) -> WorkspaceResource {
    WorkspaceResource {
        id: r.id,
        created_at: r.created_at,
        job_id: r.job_id,
        workspace_transition: r.transition.to_string(),
        kind: r.resource.kind,
        name: r.resource.name,
        hide: r.resource.hide,
        icon: r.resource.icon,
        agents: r.agents.iter().map(agent).collect(),
        metadata: r
            .resource
            .metadata
            .into_iter()
            .map(|m| WorkspaceResourceMetadata {
                value: if m.sensitive { String::new() } else { m.value },
                key: m.key,
                sensitive: m.sensitive,
            })
            .collect(),
        daily_cost: r.resource.daily_cost,
    }
}

pub async fn resources(state: &AppState, job: Uuid) -> ApiResult<Vec<WorkspaceResource>> {
    Ok(state
        .store
        .resources_for_jobs(&[job])
        .await?
        .into_iter()
        .map(resource)
        .collect())
}
