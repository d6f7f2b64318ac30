//! Workspace builds as the API shows them.

use std::collections::HashMap;

use coderd_db::schedule::is_zero;
use coderd_db::{BuildRow, JobRow};
use codersdk::{ProvisionerTiming, WorkspaceBuild, WorkspaceBuildTimings, WorkspaceResource};
use uuid::Uuid;

use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::jobs;
use crate::views::jobs::{matched_provisioners, JobViews};
use crate::views::loaded::Loaded;

/// Renders builds with their jobs, resources, versions and people.
pub async fn render(state: &AppState, builds: Vec<BuildRow>) -> ApiResult<Vec<WorkspaceBuild>> {
    render_with(state, builds, &mut Loaded::default()).await
}

/// Like `render`, reusing (and adding to) rows the caller already loaded.
pub async fn render_with(
    state: &AppState,
    mut builds: Vec<BuildRow>,
    loaded: &mut Loaded,
) -> ApiResult<Vec<WorkspaceBuild>> {
    let job_ids: Vec<Uuid> = builds.iter().map(|b| b.job_id).collect();
    // Jobs read in the same statement as their builds agree with them; others are read now.
    let jobs = if job_ids.iter().all(|id| loaded.jobs.contains_key(id)) {
        job_ids
            .iter()
            .filter_map(|id| loaded.jobs.get(id))
            .map(|j| (j.id, j.clone()))
            .collect()
    } else {
        jobs::jobs_of(state, &mut builds, |ids| async move {
            state.store.builds_by_ids(&ids).await
        })
        .await?
    };
    for b in &builds {
        loaded.builds.insert(b.id, b.clone());
    }
    loaded
        .workspaces(state, builds.iter().map(|b| b.workspace_id))
        .await?;
    let owners: Vec<Uuid> = builds
        .iter()
        .filter_map(|b| loaded.workspaces.get(&b.workspace_id))
        .map(|w| w.owner_id)
        .collect();
    loaded
        .users(state, builds.iter().map(|b| b.initiator_id).chain(owners))
        .await?;
    loaded
        .versions(state, builds.iter().map(|b| b.template_version_id))
        .await?;
    let refs: Vec<&JobRow> = jobs.values().collect();
    let views = JobViews::load_with(state, &refs, loaded).await?;
    let (workspaces, users, versions) = (&loaded.workspaces, &loaded.users, &loaded.versions);
    let mut resources: HashMap<Uuid, Vec<WorkspaceResource>> = HashMap::new();
    let rows = if job_ids.iter().all(|id| loaded.resources_of.contains(id)) {
        job_ids
            .iter()
            .flat_map(|id| loaded.resources.remove(id).unwrap_or_default())
            .collect()
    } else {
        state.store.resources_for_jobs(&job_ids).await?
    };
    for r in rows {
        resources
            .entry(r.job_id)
            .or_default()
            .push(jobs::resource(r));
    }
    builds
        .into_iter()
        .map(|b| {
            let missing = |what: &str| {
                ApiError::internal(
                    "Rendering a workspace build",
                    format!("its {what} is missing"),
                )
            };
            let w = workspaces
                .get(&b.workspace_id)
                .ok_or_else(|| missing("workspace"))?;
            let j = jobs.get(&b.job_id).ok_or_else(|| missing("job"))?;
            let owner = users.get(&w.owner_id);
            let zero_is_null = |t: chrono::DateTime<chrono::Utc>| (!is_zero(t)).then_some(t);
            Ok(WorkspaceBuild {
                id: b.id,
                created_at: b.created_at,
                updated_at: b.updated_at,
                workspace_id: w.id,
                workspace_name: w.name.clone(),
                workspace_owner_id: w.owner_id,
                workspace_owner_name: owner.map(|u| u.username.clone()).unwrap_or_default(),
                workspace_owner_avatar_url: owner.map(|u| u.avatar_url.clone()).unwrap_or_default(),
                template_version_id: b.template_version_id,
                template_version_name: versions
                    .get(&b.template_version_id)
                    .map(|v| v.name.clone())
                    .unwrap_or_default(),
                build_number: b.build_number,
                status: coderd_db::BuildStatus::of(j.status, b.transition).to_string(),
                transition: b.transition.to_string(),
                initiator_id: b.initiator_id,
                initiator_name: users
                    .get(&b.initiator_id)
                    .map(|u| u.username.clone())
                    .unwrap_or_default(),
                matched_provisioners: matched_provisioners(
                    views.daemons(j.organization_id),
                    &j.provisioner,
                    &j.tags.0,
                ),
                job: views.render(j),
                reason: b.reason,
                resources: resources.remove(&b.job_id).unwrap_or_default(),
                deadline: zero_is_null(b.deadline),
                max_deadline: zero_is_null(b.max_deadline),
                daily_cost: b.daily_cost,
                template_version_preset_id: b.template_version_preset_id,
                has_ai_task: false,
                has_external_agent: false,
            })
        })
        .collect()
}

pub async fn render_one(state: &AppState, b: BuildRow) -> ApiResult<WorkspaceBuild> {
    Ok(render(state, vec![b]).await?.remove(0))
}

/// Provisioner timings of a build (agents report none until agents are supported).
pub async fn build_timings(state: &AppState, b: &BuildRow) -> ApiResult<WorkspaceBuildTimings> {
    let timings = state.store.job_timings(&[b.job_id]).await?;
    Ok(WorkspaceBuildTimings {
        provisioner_timings: timings
            .into_iter()
            .map(|(job_id, t)| ProvisionerTiming {
                job_id,
                started_at: t.started_at,
                ended_at: t.ended_at,
                stage: t.stage,
                source: t.source,
                action: t.action,
                resource: t.resource,
            })
            .collect(),
        agent_script_timings: Vec::new(),
        agent_connection_timings: Vec::new(),
    })
}
