//! Rows loaded once per request and shared by the renderers: rendering a page of workspaces
//! walks workspaces → builds → jobs → versions → templates, and each kind is fetched once, only
//! for the ids not already loaded.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use coderd_db::{
    BuildRow, CreatedWorkspace, DaemonRow, JobRow, OrganizationRow, RenderRows, ResourceRow,
    StoreError, TemplateRow, UserRow, VersionRow, WorkspaceRow,
};
use uuid::Uuid;

use crate::http::error::ApiResult;
use crate::state::AppState;

#[derive(Default)]
pub struct Loaded {
    pub users: HashMap<Uuid, UserRow>,
    pub workspaces: HashMap<Uuid, WorkspaceRow>,
    pub builds: HashMap<Uuid, BuildRow>,
    pub versions: HashMap<Uuid, VersionRow>,
    pub templates: HashMap<Uuid, TemplateRow>,
    pub organizations: HashMap<Uuid, OrganizationRow>,
    /// Latest builds, by workspace.
    pub latest: HashMap<Uuid, BuildRow>,
    pub jobs: HashMap<Uuid, JobRow>,
    /// Resources by job, for the jobs in `resources_of` (a job may have none).
    pub resources: HashMap<Uuid, Vec<ResourceRow>>,
    pub resources_of: HashSet<Uuid>,
    /// Daemons as `list_daemons` has them, for the organizations in `daemons_of`.
    pub daemons: Vec<DaemonRow>,
    pub daemons_of: HashSet<Uuid>,
    /// Pending jobs' queue positions and sizes, where known already.
    pub queue: HashMap<Uuid, (i64, i64)>,
}

fn by_id<T>(rows: Vec<T>, key: fn(&T) -> Uuid) -> HashMap<Uuid, T> {
    rows.into_iter().map(|r| (key(&r), r)).collect()
}

/// Fetches the rows of `ids` missing from `map` (one query, none if nothing is missing).
async fn fill<T, Fut>(
    map: &mut HashMap<Uuid, T>,
    ids: impl IntoIterator<Item = Uuid>,
    key: fn(&T) -> Uuid,
    fetch: impl FnOnce(Vec<Uuid>) -> Fut,
) -> ApiResult<()>
where
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let mut missing: Vec<Uuid> = ids.into_iter().filter(|id| !map.contains_key(id)).collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        for row in fetch(missing).await? {
            map.insert(key(&row), row);
        }
    }
    Ok(())
}

impl Loaded {
    /// Everything rendering these workspaces (with their latest builds) and builds needs, read
    /// in one statement ([`coderd_db::RenderRows`]).
    pub async fn prefetch(
        state: &AppState,
        workspace_ids: &[Uuid],
        build_ids: &[Uuid],
    ) -> ApiResult<Loaded> {
        if workspace_ids.is_empty() && build_ids.is_empty() {
            return Ok(Loaded::default());
        }
        let rows = state.store.render_rows(workspace_ids, build_ids).await?;
        Ok(Loaded::from_rows(rows))
    }

    pub fn from_rows(rows: RenderRows) -> Loaded {
        let mut loaded = Loaded {
            resources_of: rows.jobs.iter().map(|j| j.id).collect(),
            daemons_of: rows.jobs.iter().map(|j| j.organization_id).collect(),
            users: by_id(rows.users, |r: &UserRow| r.id),
            workspaces: by_id(rows.workspaces, |r: &WorkspaceRow| r.id),
            versions: by_id(rows.versions, |r: &VersionRow| r.id),
            templates: by_id(rows.templates, |r: &TemplateRow| r.id),
            organizations: by_id(rows.organizations, |r: &OrganizationRow| r.id),
            jobs: by_id(rows.jobs, |r: &JobRow| r.id),
            daemons: rows.daemons,
            ..Default::default()
        };
        for r in rows.resources {
            loaded.resources.entry(r.job_id).or_default().push(r);
        }
        for b in rows.latest_builds {
            loaded.builds.insert(b.id, b.clone());
            loaded.latest.insert(b.workspace_id, b);
        }
        for b in rows.builds {
            loaded.builds.insert(b.id, b);
        }
        loaded
    }

    /// The rows a workspace just created renders from, as its request read and inserted them:
    /// its owner, template and version, its first build and the build's job (which has no
    /// resources yet).
    pub fn of_created(
        owner: UserRow,
        template: TemplateRow,
        version: VersionRow,
        created: CreatedWorkspace,
    ) -> (WorkspaceRow, Loaded) {
        let CreatedWorkspace {
            workspace,
            build,
            job,
            queue_size,
            daemons,
        } = created;
        let mut loaded = Loaded {
            resources_of: HashSet::from([job.id]),
            daemons_of: HashSet::from([job.organization_id]),
            daemons,
            queue: HashMap::from([(job.id, (queue_size, queue_size))]),
            ..Default::default()
        };
        loaded.users.insert(owner.id, owner);
        loaded.templates.insert(template.id, template);
        loaded.versions.insert(version.id, version);
        loaded.jobs.insert(job.id, job);
        loaded.builds.insert(build.id, build.clone());
        loaded.latest.insert(build.workspace_id, build);
        (workspace, loaded)
    }

    /// Each loaded job's provisioner, by job (the rendered job does not show it; the render
    /// cache needs it to match daemons again).
    pub fn provisioners(&self) -> HashMap<Uuid, String> {
        self.jobs
            .values()
            .map(|j| (j.id, j.provisioner.clone()))
            .collect()
    }

    /// The daemons that could serve organization `org`, if they were loaded.
    pub fn daemons_for(&self, org: Uuid) -> Option<Vec<DaemonRow>> {
        self.daemons_of.contains(&org).then(|| {
            self.daemons
                .iter()
                .filter(|d| d.organization_id.is_none_or(|o| o == org))
                .cloned()
                .collect()
        })
    }

    pub async fn organizations(
        &mut self,
        state: &AppState,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> ApiResult<()> {
        fill(
            &mut self.organizations,
            ids,
            |r| r.id,
            |m| async move { state.store.organizations_by_ids(&m).await },
        )
        .await
    }

    pub async fn users(
        &mut self,
        state: &AppState,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> ApiResult<()> {
        fill(
            &mut self.users,
            ids,
            |r| r.id,
            |m| async move { state.store.users_by_ids(&m).await },
        )
        .await
    }

    pub async fn workspaces(
        &mut self,
        state: &AppState,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> ApiResult<()> {
        fill(
            &mut self.workspaces,
            ids,
            |r| r.id,
            |m| async move { state.store.workspaces_by_ids(&m).await },
        )
        .await
    }

    pub async fn builds(
        &mut self,
        state: &AppState,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> ApiResult<()> {
        fill(
            &mut self.builds,
            ids,
            |r| r.id,
            |m| async move { state.store.builds_by_ids(&m).await },
        )
        .await
    }

    pub async fn versions(
        &mut self,
        state: &AppState,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> ApiResult<()> {
        fill(
            &mut self.versions,
            ids,
            |r| r.id,
            |m| async move { state.store.versions_by_ids(&m).await },
        )
        .await
    }

    pub async fn templates(
        &mut self,
        state: &AppState,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> ApiResult<()> {
        fill(
            &mut self.templates,
            ids,
            |r| r.id,
            |m| async move { state.store.templates_by_ids(&m).await },
        )
        .await
    }
}
