//! Creating workspace builds (Coder's "wsbuilder"): which version, whether it may build, the
//! parameters it gets, and queueing its job, with Coder's checks in Coder's order.

use std::collections::HashMap;

use axum::http::StatusCode;
use coderd_db::pubsub;
use coderd_db::StoreResultExt;
use coderd_db::{
    model::Parameter, mutate_tags, BuildInsertError, BuildRow, CreatedWorkspace, JobRow, JobStatus,
    NewBuild, NewJob, NewWorkspace, StoreError, TemplateRow, Transition, VersionRow, WorkspaceRow,
};
use coderd_provisioner::daemon::JOB_POSTED;
use codersdk::WorkspaceBuildParameter;
use uuid::Uuid;

use super::parameters;
use crate::http::error::{ApiError, ApiResult, ConflictExt};
use crate::state::AppState;

/// A version ready to build from: its import succeeded.
pub struct Buildable {
    pub version: VersionRow,
    pub import: JobRow,
    /// The version's rich parameters, read with it.
    pub parameters: Vec<Parameter>,
}

/// Checks that `version` belongs to `template` and imported successfully (406 while importing).
pub async fn buildable(
    state: &AppState,
    template: &TemplateRow,
    version_id: Uuid,
) -> ApiResult<Buildable> {
    let (version, import, parameters) = state
        .store
        .version_to_build(version_id)
        .await
        .optional()?
        .ok_or_else(|| ApiError::bad_request("template version does not exist"))?;
    if version.template_id != Some(template.id) {
        return Err(ApiError::bad_request(
            "template version doesn't match template",
        ));
    }
    match import.status {
        JobStatus::Succeeded => Ok(Buildable {
            version,
            import,
            parameters,
        }),
        s @ (JobStatus::Pending | JobStatus::Running) => Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!("The provided template version is {s}. Wait for it to complete importing!"),
        )),
        _ => Err(ApiError::bad_request(format!(
            "The provided template version {:?} has failed to import: {:?}. You cannot build workspaces with it!",
            version.name,
            import.error.clone().unwrap_or_else(|| "canceled".into())
        ))),
    }
}

/// The job that runs build `build_id` from `b`, tagged as its import was (for the owner).
fn build_job<'a>(
    b: &'a Buildable,
    org: Uuid,
    initiator: Uuid,
    build_id: Uuid,
    tags: &'a std::collections::BTreeMap<String, String>,
) -> NewJob<'a> {
    NewJob {
        id: Uuid::new_v4(),
        organization_id: org,
        initiator_id: initiator,
        provisioner: &b.import.provisioner,
        job_type: "workspace_build",
        input: serde_json::json!({"workspace_build_id": build_id}),
        file_id: b.import.file_id,
        tags,
    }
}

/// Resolves and validates the build's parameters against the version's (`b`). A preset's
/// values come first, over what was asked for, as upstream's builder applies them.
async fn resolve_parameters(
    state: &AppState,
    b: &Buildable,
    previous_build: Option<Uuid>,
    requested: &[WorkspaceBuildParameter],
    preset: Option<Uuid>,
) -> ApiResult<Vec<(String, String)>> {
    let mut requested = requested.to_vec();
    if let Some(id) = preset {
        let presets = state.store.version_presets(b.version.id).await?;
        let Some(preset) = presets.into_iter().find(|p| p.id == id) else {
            return Err(ApiError::bad_request(format!(
                "Template version preset {id} does not belong to this template version."
            )));
        };
        let named: Vec<&str> = preset
            .preset
            .parameters
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        requested.retain(|r| !named.contains(&r.name.as_str()));
        requested.extend(
            preset
                .preset
                .parameters
                .iter()
                .map(|p| WorkspaceBuildParameter {
                    name: p.name.clone(),
                    value: p.value.clone(),
                }),
        );
    }
    let requested = requested.as_slice();
    let previous: HashMap<String, String> = match previous_build {
        Some(id) => state
            .store
            .build_parameters(&[id])
            .await?
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .collect(),
        None => HashMap::new(),
    };
    parameters::resolve(
        &b.parameters,
        &previous,
        requested,
        previous_build.is_none(),
    )
}

/// Creates a workspace and queues its first (start) build; daemons and the owner's watchers
/// hear of it when it commits.
pub async fn create_workspace(
    state: &AppState,
    w: NewWorkspace<'_>,
    b: &Buildable,
    initiator: Uuid,
    requested: &[WorkspaceBuildParameter],
    preset: Option<Uuid>,
) -> ApiResult<CreatedWorkspace> {
    let params = resolve_parameters(state, b, None, requested, preset).await?;
    let tags = mutate_tags(w.owner_id, &[&b.import.tags.0]);
    let build_id = Uuid::new_v4();
    let job = build_job(b, w.organization_id, initiator, build_id, &tags);
    let name = w.name.to_string();
    let queued = announcements(
        w.organization_id,
        &b.import.provisioner,
        &tags,
        w.owner_id,
        w.id,
    );
    let announce = queued.each_ref().map(|(c, p)| (c.as_str(), p.as_str()));
    let created = state
        .store
        .insert_workspace(
            w,
            NewBuild {
                id: build_id,
                template_version_id: b.version.id,
                transition: Transition::Start,
                initiator_id: initiator,
                reason: "initiator",
                state: None,
                parameters: &params,
                preset_id: preset,
            },
            job,
            &announce,
        )
        .await
        .on_conflict("name", format!("Workspace {name:?} already exists."))?;
    Ok(created)
}

/// What a new build of an existing workspace asks for.
pub struct BuildSpec<'a> {
    pub transition: Transition,
    pub version_id: Option<Uuid>,
    pub initiator: Uuid,
    pub reason: &'a str,
    /// Replace the provisioner state (`Some(vec![])` for an orphan delete).
    pub state: Option<Vec<u8>>,
    pub parameters: &'a [WorkspaceBuildParameter],
    /// The preset whose values the build takes.
    pub preset: Option<Uuid>,
}

/// Queues the next build of `ws` after Coder's checks; 409 when one is already active.
/// Daemons and the owner's watchers hear of it when it commits.
pub async fn create_build(
    state: &AppState,
    ws: &WorkspaceRow,
    template: &TemplateRow,
    spec: BuildSpec<'_>,
) -> ApiResult<BuildRow> {
    let latest = state
        .store
        .latest_builds(&[ws.id])
        .await?
        .into_iter()
        .next();
    let use_active = spec.transition == Transition::Start
        && (template.require_active_version || ws.automatic_updates == "always");
    let version_id = match (spec.version_id, &latest) {
        (Some(v), _) => v,
        (None, _) if use_active => template.active_version_id,
        (None, Some(l)) => l.template_version_id,
        (None, None) => template.active_version_id,
    };
    if spec.transition == Transition::Start && ws.dormant_at.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Cannot start a dormant workspace.",
        ));
    }
    let b = buildable(state, template, version_id).await?;
    if let Some(l) = &latest {
        let job = state.store.job(l.job_id).await?;
        if job.status.is_active() {
            return Err(ApiError::conflict("A workspace build is already active."));
        }
    }
    let params = resolve_parameters(
        state,
        &b,
        latest.as_ref().map(|l| l.id),
        spec.parameters,
        spec.preset,
    )
    .await?;
    let tags = mutate_tags(ws.owner_id, &[&b.import.tags.0]);
    let build_id = Uuid::new_v4();
    let job = build_job(&b, ws.organization_id, spec.initiator, build_id, &tags);
    let org = ws.organization_id;
    let queued = announcements(org, &b.import.provisioner, &tags, ws.owner_id, ws.id);
    let announce = queued.each_ref().map(|(c, p)| (c.as_str(), p.as_str()));
    let build = state
        .store
        .insert_build(
            ws.id,
            NewBuild {
                id: build_id,
                template_version_id: b.version.id,
                transition: spec.transition,
                initiator_id: spec.initiator,
                reason: spec.reason,
                state: spec.state.as_deref(),
                parameters: &params,
                preset_id: spec.preset,
            },
            job,
            &announce,
        )
        .await
        .map_err(|e| match e {
            BuildInsertError::Active | BuildInsertError::Store(StoreError::Conflict(_)) => {
                ApiError::conflict("A workspace build is already active.")
            }
            BuildInsertError::Store(e) => e.into(),
        })?;
    Ok(build)
}

/// What a queued build announces (channel, payload) when it commits: its job, so that daemons
/// that could run it wake, and its workspace's change, so that the owner's watchers re-read.
fn announcements(
    org: Uuid,
    provisioner: &str,
    tags: &std::collections::BTreeMap<String, String>,
    owner: Uuid,
    workspace: Uuid,
) -> [(String, String); 2] {
    [
        (
            JOB_POSTED.to_string(),
            crate::domain::jobs::posted(org, provisioner, tags),
        ),
        (
            pubsub::workspace_owner_channel(owner),
            pubsub::workspace_changed(workspace),
        ),
    ]
}

/// Announces a change of a workspace on its owner's channel (watchers re-read).
pub async fn publish_workspace(state: &AppState, owner: Uuid, workspace: Uuid) {
    if let Err(e) = state
        .pubsub
        .publish(
            &pubsub::workspace_owner_channel(owner),
            &pubsub::workspace_changed(workspace),
        )
        .await
    {
        tracing::warn!(error = %e, "announcing a workspace change");
    }
}
