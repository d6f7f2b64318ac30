//! Workspace builds: rendering (a fixed number of queries for any number of builds), creating,
//! reading, canceling, logs, parameters, state, resources and timings.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use coderd_db::StoreResultExt;
use codersdk::{
    CreateWorkspaceBuildRequest, UpdateWorkspaceBuildStateRequest, WorkspaceBuild,
    WorkspaceBuildParameter, WorkspaceBuildTimings, WorkspaceResource,
};

use super::resolve::{
    check_workspace, workspace_for, BuildParam, Deleted, OwnerParam, WorkspaceParam,
};
use super::routes::{Param, Routes};
use crate::authz::{Action, Actor};
use crate::domain::builds::BuildSpec;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::{created, ok, Body, Encoded, Json};
use crate::http::params::{parse_time, parse_uuid, Pagination, QueryErrors, QueryParams};
use crate::state::AppState;
use crate::views::builds::{build_timings, render, render_one, render_with};
use crate::views::jobs;
use crate::views::loaded::Loaded;

pub fn routes(r: &mut Routes) {
    r.get("/workspaces/{workspace}/builds", list)
        .op(
            "Builds",
            "get-workspace-builds-by-workspace-id",
            "Get workspace builds by workspace ID",
        )
        .query("after_id", Param::Uuid, "After ID")
        .query("limit", Param::Int, "Page limit")
        .query("offset", Param::Int, "Page offset")
        .query("since", Param::DateTime, "Since timestamp")
        .list::<codersdk::WorkspaceBuild>(200);
    r.post("/workspaces/{workspace}/builds", create)
        .op("Builds", "create-workspace-build", "Create workspace build")
        .body::<codersdk::CreateWorkspaceBuildRequest>()
        .ok::<codersdk::WorkspaceBuild>(201);
    r.get("/workspacebuilds/{workspacebuild}", get_one)
        .op("Builds", "get-workspace-build", "Get workspace build")
        .ok::<codersdk::WorkspaceBuild>(200);
    r.get(
        "/users/{user}/workspace/{workspacename}/builds/{buildnumber}",
        by_number,
    )
    .op(
        "Builds",
        "get-workspace-build-by-user-workspace-name-and-build-number",
        "Get workspace build by user, workspace name, and build number",
    )
    .ok::<codersdk::WorkspaceBuild>(200);
    r.patch("/workspacebuilds/{workspacebuild}/cancel", cancel)
        .op("Builds", "cancel-workspace-build", "Cancel workspace build")
        .query("expect_status", Param::Str, "Expected status of the job. If expect_status is supplied, the request will be rejected with 412 Precondition Failed if the job doesn't match the state when performing the cancellation.")
        .ok::<codersdk::Response>(200);
    r.get("/workspacebuilds/{workspacebuild}/logs", logs)
        .op(
            "Builds",
            "get-workspace-build-logs",
            "Get workspace build logs",
        )
        .job_logs();
    r.get("/workspacebuilds/{workspacebuild}/parameters", parameters)
        .op(
            "Builds",
            "get-build-parameters-for-workspace-build",
            "Get build parameters for workspace build",
        )
        .list::<codersdk::WorkspaceBuildParameter>(200);
    r.get("/workspacebuilds/{workspacebuild}/state", get_state)
        .op(
            "Builds",
            "get-provisioner-state-for-workspace-build",
            "Get provisioner state for workspace build",
        )
        // The provisioner's raw state, labelled JSON as Coder labels it (docs/decisions.md).
        .json(200, serde_json::json!({}));
    r.put("/workspacebuilds/{workspacebuild}/state", put_state)
        .op(
            "Builds",
            "update-workspace-build-state",
            "Update workspace build state",
        )
        .body::<codersdk::UpdateWorkspaceBuildStateRequest>()
        .empty(204);
    r.get("/workspacebuilds/{workspacebuild}/timings", timings)
        .op(
            "Builds",
            "get-workspace-build-timings-by-id",
            "Get workspace build timings by ID",
        )
        .ok::<codersdk::WorkspaceBuildTimings>(200);
    r.get("/workspacebuilds/{workspacebuild}/resources", resources)
        .op(
            "Builds",
            "removed-get-workspace-resources-for-workspace-build",
            "Removed: Get workspace resources for workspace build",
        )
        .list::<codersdk::WorkspaceResource>(200);
}

async fn create(
    State(state): State<AppState>,
    actor: Actor,
    workspace: WorkspaceParam,
    Body(req): Body<CreateWorkspaceBuildRequest>,
) -> ApiResult<Json<WorkspaceBuild>> {
    // The workspace first: who may not read it learns nothing from the body's validation.
    let (w, t) = workspace.allow(Action::Read)?;
    if req.orphan && req.transition != coderd_db::Transition::Delete.as_str() {
        return Err(ApiError::bad_request(
            "Orphan is only permitted when deleting a workspace.",
        ));
    }
    if req.orphan && !req.state.is_empty() {
        return Err(ApiError::bad_request(
            "ProvisionerState cannot be set alongside Orphan since state intent is unclear.",
        ));
    }
    let Ok(transition) = req.transition.parse::<coderd_db::Transition>() else {
        let tag = if req.transition.is_empty() {
            "required"
        } else {
            "oneof"
        };
        return Err(ApiError::validation_tag("transition", tag, &req.transition));
    };
    if !req.log_level.is_empty() && req.log_level != "debug" {
        return Err(ApiError::validation_tag(
            "log_level",
            "oneof",
            &req.log_level,
        ));
    }
    // Upstream's action per transition; a dormant workspace is woken by a settings change,
    // so starting one needs `update`.
    let action = match transition {
        coderd_db::Transition::Delete => Action::Delete,
        coderd_db::Transition::Stop => Action::Stop,
        _ if w.dormant_at.is_some() => Action::Update,
        _ => Action::Start,
    };
    if !super::resolve::may(&actor, &w, action) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "You do not have permission to {} this workspace.",
                action.name()
            ),
        ));
    }
    let custom_state = req.orphan || !req.state.is_empty();
    if custom_state
        && !actor.can_template(
            Action::Update,
            t.organization_id,
            &t.user_acl.0,
            &t.group_acl.0,
        )
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Only template managers may provide custom state",
        ));
    }
    if !req.log_level.is_empty() {
        if !actor.is_owner() {
            return Err(ApiError::bad_request(
                "Workspace builds with a custom log level are restricted to administrators only.",
            ));
        }
        return Err(ApiError::bad_request(
            "Terraform debug mode is disabled in the deployment configuration.",
        ));
    }
    let build = crate::domain::builds::create_build(
        &state,
        &w,
        &t,
        BuildSpec {
            transition,
            version_id: req.template_version_id.filter(|v| !v.is_nil()),
            initiator: actor.user_id,
            reason: "initiator",
            state: if custom_state { Some(req.state) } else { None },
            parameters: &req.rich_parameter_values,
            preset: req.template_version_preset_id.filter(|p| !p.is_nil()),
        },
    )
    .await?;
    Ok(created(render_one(&state, build).await?))
}

async fn list(
    State(state): State<AppState>,
    workspace: WorkspaceParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<WorkspaceBuild>>> {
    let (w, _) = workspace.allow_deleted(Action::Read)?;
    let q = QueryParams::parse(raw.as_deref());
    let page = Pagination::parse(&q)?;
    let mut errs = QueryErrors::default();
    let since = match q.get("since").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => parse_time(v).or_else(|| {
            errs.add("since", "Must be an RFC 3339 time.");
            None
        }),
    };
    errs.finish()?;
    if let Some(after) = page.after_id {
        let found = state.store.build(after).await.optional()?;
        if found.filter(|b| b.workspace_id == w.id).is_none() {
            return Err(ApiError::bad_request(format!(
                "Record at \"after_id\" ({after}) does not exist."
            )));
        }
    }
    let rows = state
        .store
        .list_builds(w.id, page.after_id, since, page.limit, page.offset)
        .await?;
    Ok(ok(render(&state, rows).await?))
}

async fn get_one(
    State(state): State<AppState>,
    actor: Actor,
    // Not a `BuildParam`: the prefetch below reads the build with all the answer shows in one
    // statement.
    Path(id): Path<String>,
) -> ApiResult<Encoded<WorkspaceBuild>> {
    // Everything the answer shows, read at once; whether it may be shown is decided before
    // anything of it is.
    let build_id = parse_uuid(&id)?;
    // Rendered before and unchanged since: served from memory (crate::render_cache).
    let stamps = state.store.render_stamps(&[], &[build_id]).await?;
    if let Some(hit) = state.render_cache.build(&stamps, build_id) {
        check_workspace(&actor, hit.row(), Action::Read, Deleted::Included)?;
        let matched = crate::views::jobs::rematch(hit.build(), hit.provisioner(), &stamps.daemons);
        return Ok(Encoded::Bytes(hit.json_line(matched)));
    }
    let mut loaded = Loaded::prefetch(&state, &[], &[build_id]).await?;
    let found = loaded.builds.get(&build_id).cloned().and_then(|b| {
        let w = loaded.workspaces.get(&b.workspace_id)?;
        loaded
            .templates
            .contains_key(&w.template_id)
            .then(|| (b, w.clone()))
    });
    let Some((b, w)) = found else {
        // Not there: the one-row reads say so as they always have.
        let b = state.store.build(build_id).await?;
        workspace_for(
            &state,
            &actor,
            b.workspace_id,
            Action::Read,
            Deleted::Included,
        )
        .await?;
        return Err(ApiError::not_found());
    };
    check_workspace(&actor, &w, Action::Read, Deleted::Included)?;
    let provisioners = loaded.provisioners();
    let view = render_with(&state, vec![b], &mut loaded).await?.remove(0);
    if let Some(p) = provisioners.get(&view.job.id) {
        state.render_cache.put_build(&stamps, &w, p, &view);
    }
    Ok(Encoded::Value(view))
}

async fn by_number(
    State(state): State<AppState>,
    actor: Actor,
    OwnerParam(owner): OwnerParam,
    // The workspace's name is looked up once the build number is read (its 400 first).
    Path((_, name, number)): Path<(String, String, String)>,
) -> ApiResult<Json<WorkspaceBuild>> {
    let number: i32 = number.parse().map_err(|_| {
        ApiError::bad_request(format!("Build number {number:?} must be an integer."))
    })?;
    let w = state
        .store
        .workspace_by_owner_and_name(owner.id, &name, true)
        .await?;
    workspace_for(&state, &actor, w.id, Action::Read, Deleted::Included).await?;
    let b = state.store.build_by_number(w.id, number).await?;
    Ok(ok(render_one(&state, b).await?))
}

async fn cancel(
    State(state): State<AppState>,
    actor: Actor,
    build: BuildParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let (b, w, t) = build.allow(Action::Update)?;
    if !(t.allow_user_cancel_workspace_jobs || actor.is_owner()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "User is not allowed to cancel workspace builds. Owner role is required.",
        ));
    }
    let resp = super::job_endpoints::cancel(&state, b.job_id, raw.as_deref()).await?;
    crate::domain::builds::publish_workspace(&state, w.owner_id, w.id).await;
    Ok(resp)
}

async fn logs(
    State(state): State<AppState>,
    build: BuildParam,
    RawQuery(raw): RawQuery,
    ws: crate::http::ws_io::Upgrade,
) -> ApiResult<Response> {
    let (b, _, _) = build.allow(Action::Read)?;
    super::job_endpoints::logs(&state, b.job_id, raw.as_deref(), ws).await
}

async fn parameters(
    State(state): State<AppState>,
    build: BuildParam,
) -> ApiResult<Json<Vec<WorkspaceBuildParameter>>> {
    let (b, _, _) = build.allow(Action::Read)?;
    let params = state
        .store
        .build_parameters(&[b.id])
        .await?
        .remove(&b.id)
        .unwrap_or_default();
    Ok(ok(params
        .into_iter()
        .map(|(name, value)| WorkspaceBuildParameter { name, value })
        .collect()))
}

/// The raw provisioner state: for those who may update the template, else it does not exist.
async fn get_state(
    State(state): State<AppState>,
    actor: Actor,
    build: BuildParam,
) -> ApiResult<Response> {
    let (b, _, t) = build.allow(Action::Read)?;
    if !actor.can_template(
        Action::Update,
        t.organization_id,
        &t.user_acl.0,
        &t.group_acl.0,
    ) {
        return Err(ApiError::not_found());
    }
    let bytes = state.store.build_state(b.id).await?;
    let mut resp = (StatusCode::OK, bytes).into_response();
    // The provisioner's bytes as they are, labelled JSON as upstream labels them (Terraform's
    // state is JSON; another provisioner's need not be).
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

async fn put_state(
    State(state): State<AppState>,
    actor: Actor,
    build: BuildParam,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let (b, _, t) = build.allow(Action::Read)?;
    if !actor.can_template(
        Action::Update,
        t.organization_id,
        &t.user_acl.0,
        &t.group_acl.0,
    ) {
        return Err(ApiError::not_found());
    }
    let req: UpdateWorkspaceBuildStateRequest = crate::http::json::decode(&body)?;
    state.store.set_build_state(b.id, &req.state).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resources(
    State(state): State<AppState>,
    build: BuildParam,
) -> ApiResult<Json<Vec<WorkspaceResource>>> {
    let (b, _, _) = build.allow(Action::Read)?;
    Ok(ok(jobs::resources(&state, b.job_id).await?))
}

async fn timings(
    State(state): State<AppState>,
    build: BuildParam,
) -> ApiResult<Json<WorkspaceBuildTimings>> {
    let (b, _, _) = build.allow(Action::Read)?;
    Ok(ok(build_timings(&state, &b).await?))
}
