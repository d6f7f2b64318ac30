//! Template versions: creation (which queues an import job), reading, renaming, archiving,
//! canceling, their logs, resources, parameters and variables, and dry runs.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use coderd_db::{mutate_tags, NewJob, NewVersion, StoreError, StoreResultExt, VersionRow};
use codersdk::{
    CreateTemplateVersionDryRunRequest, CreateTemplateVersionRequest, PatchTemplateVersionRequest,
    ProvisionerJob, TemplateVersion, TemplateVersionParameter, TemplateVersionVariable,
    WorkspaceResource,
};
use uuid::Uuid;

use super::resolve::OrgParam;
use super::resolve::{DryRunParam, TemplateByNameParam, VersionParam};
use super::routes::Routes;
use super::{examples, resolve};
use crate::authz::{Action, Actor, Object, Resource};
use crate::http::error::{ApiError, ApiResult, ConflictExt};
use crate::http::json::{created, message, ok, Body, Json};
use crate::state::AppState;
use crate::views::jobs::{self, matched_provisioners};
use crate::views::template_versions::{parameter, render_one};

pub fn routes(r: &mut Routes) {
    r.post("/organizations/{organization}/templateversions", create)
        .op(
            "Templates",
            "create-template-version-by-organization",
            "Create template version by organization",
        )
        .body::<codersdk::CreateTemplateVersionRequest>()
        .ok::<codersdk::TemplateVersion>(201);
    r.get(
        "/organizations/{organization}/templates/{templatename}/versions/{templateversionname}",
        by_org_template_and_name,
    )
    .op(
        "Templates",
        "get-template-version-by-organization-template-and-name",
        "Get template version by organization, template, and name",
    )
    .ok::<codersdk::TemplateVersion>(200);
    r.get("/organizations/{organization}/templates/{templatename}/versions/{templateversionname}/previous", previous)
        .op("Templates", "get-previous-template-version-by-organization-template-and-name", "Get previous template version by organization, template, and name")
        .ok::<codersdk::TemplateVersion>(200);
    r.get("/templateversions/{templateversion}", get_one)
        .op(
            "Templates",
            "get-template-version-by-id",
            "Get template version by ID",
        )
        .ok::<codersdk::TemplateVersion>(200);
    r.patch("/templateversions/{templateversion}", update)
        .op(
            "Templates",
            "patch-template-version-by-id",
            "Patch template version by ID",
        )
        .body::<codersdk::PatchTemplateVersionRequest>()
        .ok::<codersdk::TemplateVersion>(200);
    r.patch("/templateversions/{templateversion}/cancel", cancel)
        .op(
            "Templates",
            "cancel-template-version-by-id",
            "Cancel template version by ID",
        )
        .ok::<codersdk::Response>(200);
    r.post("/templateversions/{templateversion}/archive", archive)
        .op(
            "Templates",
            "archive-template-version",
            "Archive template version",
        )
        .ok::<codersdk::Response>(200);
    r.post("/templateversions/{templateversion}/unarchive", unarchive)
        .op(
            "Templates",
            "unarchive-template-version",
            "Unarchive template version",
        )
        .ok::<codersdk::Response>(200);
    r.get("/templateversions/{templateversion}/logs", logs)
        .op(
            "Templates",
            "get-logs-by-template-version",
            "Get logs by template version",
        )
        .job_logs();
    r.get("/templateversions/{templateversion}/resources", resources)
        .op(
            "Templates",
            "get-resources-by-template-version",
            "Get resources by template version",
        )
        .list::<codersdk::WorkspaceResource>(200);
    r.get(
        "/templateversions/{templateversion}/rich-parameters",
        rich_parameters,
    )
    .op(
        "Templates",
        "get-rich-parameters-by-template-version",
        "Get rich parameters by template version",
    )
    .list::<codersdk::TemplateVersionParameter>(200);
    r.get("/templateversions/{templateversion}/variables", variables)
        .op(
            "Templates",
            "get-template-variables-by-template-version",
            "Get template variables by template version",
        )
        .list::<codersdk::TemplateVersionVariable>(200);
    r.get(
        "/templateversions/{templateversion}/external-auth",
        external_auth,
    )
    .op(
        "Templates",
        "get-external-auth-by-template-version",
        "Get external auth by template version",
    )
    .json(200, serde_json::json!({"type": "array", "maxItems": 0}));
    r.get("/templateversions/{templateversion}/presets", presets)
        .op(
            "Templates",
            "get-template-version-presets",
            "Get template version presets",
        )
        .list::<codersdk::Preset>(200);
    r.get(
        "/templateversions/{templateversion}/parameters",
        removed_list,
    )
    .op(
        "Templates",
        "removed-get-parameters-by-template-version",
        "Removed: Get parameters by template version",
    )
    .empty(200);
    r.get("/templateversions/{templateversion}/schema", removed_list)
        .op(
            "Templates",
            "removed-get-schema-by-template-version",
            "Removed: Get schema by template version",
        )
        .empty(200);
    r.post(
        "/templateversions/{templateversion}/dry-run",
        create_dry_run,
    )
    .op(
        "Templates",
        "create-template-version-dry-run",
        "Create template version dry-run",
    )
    .body::<codersdk::CreateTemplateVersionDryRunRequest>()
    .ok::<codersdk::ProvisionerJob>(201);
    r.get(
        "/templateversions/{templateversion}/dry-run/{jobID}",
        dry_run,
    )
    .op(
        "Templates",
        "get-template-version-dry-run-by-job-id",
        "Get template version dry-run by job ID",
    )
    .ok::<codersdk::ProvisionerJob>(200);
    r.patch(
        "/templateversions/{templateversion}/dry-run/{jobID}/cancel",
        cancel_dry_run,
    )
    .op(
        "Templates",
        "cancel-template-version-dry-run-by-job-id",
        "Cancel template version dry-run by job ID",
    )
    .ok::<codersdk::Response>(200);
    r.get(
        "/templateversions/{templateversion}/dry-run/{jobID}/logs",
        dry_run_logs,
    )
    .op(
        "Templates",
        "get-template-version-dry-run-logs-by-job-id",
        "Get template version dry-run logs by job ID",
    )
    .job_logs();
    r.get(
        "/templateversions/{templateversion}/dry-run/{jobID}/resources",
        dry_run_resources,
    )
    .op(
        "Templates",
        "get-template-version-dry-run-resources-by-job-id",
        "Get template version dry-run resources by job ID",
    )
    .list::<codersdk::WorkspaceResource>(200);
    r.get(
        "/templateversions/{templateversion}/dry-run/{jobID}/matched-provisioners",
        dry_run_matched_provisioners,
    )
    .op(
        "Templates",
        "get-template-version-dry-run-matched-provisioners",
        "Get template version dry-run matched provisioners",
    )
    .ok::<codersdk::MatchedProvisioners>(200);
}

fn duplicate_version(name: &str) -> String {
    format!("A template version with name {name:?} already exists for this template.")
}

async fn create(
    State(state): State<AppState>,
    actor: Actor,
    organization: OrgParam,
    Body(req): Body<CreateTemplateVersionRequest>,
) -> ApiResult<Json<TemplateVersion>> {
    let org = organization.allow(Resource::Template, Action::Create)?;
    let mut invalid = ApiError::bad_request("Validation failed.");
    if req.storage_method != "file" {
        let tag = if req.storage_method.is_empty() {
            "required"
        } else {
            "oneof"
        };
        invalid = invalid.with_validation(
            "storage_method",
            crate::http::error::tag_detail(tag, &req.storage_method),
        );
    }
    if !matches!(req.provisioner.as_str(), "echo" | "terraform") {
        let tag = if req.provisioner.is_empty() {
            "required"
        } else {
            "oneof"
        };
        invalid = invalid.with_validation(
            "provisioner",
            crate::http::error::tag_detail(tag, &req.provisioner),
        );
    }
    if !invalid.body.validations.is_empty() {
        return Err(invalid);
    }
    if let Some(template_id) = req.template_id.filter(|id| !id.is_nil()) {
        let t = state
            .store
            .template(template_id)
            .await
            .optional()?
            .filter(|t| t.organization_id == org.id)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Template does not exist."))?;
        if !actor.can_template(Action::Update, org.id, &t.user_acl.0, &t.group_acl.0) {
            return Err(ApiError::forbidden());
        }
    }
    let file_id = match (
        req.file_id.filter(|id| !id.is_nil()),
        req.example_id.as_str(),
    ) {
        (Some(_), e) if !e.is_empty() => {
            return Err(ApiError::bad_request(
                "You cannot specify both an example_id and a file_id.",
            ))
        }
        (None, "") => {
            return Err(ApiError::bad_request(
                "You must specify either an example_id or a file_id.",
            ))
        }
        (Some(file_id), _) => {
            let file = state
                .store
                .file(file_id)
                .await
                .optional()?
                .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "File not found."))?;
            if !actor.can(
                Action::Read,
                Object::owned_by(Resource::File, file.created_by),
            ) {
                return Err(ApiError::new(StatusCode::NOT_FOUND, "File not found."));
            }
            file.id
        }
        (None, example) => {
            let ex = examples::find(example)
                .ok_or_else(|| ApiError::bad_request("Example not found."))?;
            let data = examples::archive(ex);
            let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
            state
                .store
                .insert_file(&hash, actor.user_id, "application/x-tar", &data)
                .await?
                .0
        }
    };
    let generated = req.name.is_empty();
    let mut name = if generated {
        resolve::random_name()
    } else {
        req.name.clone()
    };
    if !resolve::valid_version_name(&name) {
        return Err(ApiError::validation_tag(
            "name",
            "template_version_name",
            &name,
        ));
    }
    let tags = mutate_tags(actor.user_id, &[&req.tags]);
    let version_id = Uuid::new_v4();
    let job_id = Uuid::new_v4();
    let input = serde_json::json!({
        "template_version_id": version_id,
        "user_variable_values": req.user_variable_values,
    });
    // A generated name that a version of the template already has is drawn again: the names
    // are few enough to meet.
    let mut attempts = 0;
    let v = loop {
        let inserted = state
            .store
            .insert_version(
                NewVersion {
                    id: version_id,
                    template_id: req.template_id.filter(|id| !id.is_nil()),
                    organization_id: org.id,
                    name: &name,
                    message: &req.message,
                    created_by: actor.user_id,
                },
                NewJob {
                    id: job_id,
                    organization_id: org.id,
                    initiator_id: actor.user_id,
                    provisioner: &req.provisioner,
                    job_type: "template_version_import",
                    input: input.clone(),
                    file_id,
                    tags: &tags,
                },
            )
            .await;
        match inserted {
            Err(StoreError::Conflict(_)) if generated && attempts < 10 => {
                attempts += 1;
                name = resolve::random_name();
            }
            other => break other.on_conflict("name", duplicate_version(&name))?,
        }
    };
    let job = state.store.job(job_id).await?;
    crate::domain::jobs::announce(&state, &job).await;
    Ok(created(render_one(&state, v).await?))
}

async fn get_one(
    State(state): State<AppState>,
    version: VersionParam,
) -> ApiResult<Json<TemplateVersion>> {
    let (v, _) = version.allow(Action::Read)?;
    Ok(ok(render_one(&state, v).await?))
}

async fn update(
    State(state): State<AppState>,
    version: VersionParam,
    Body(req): Body<PatchTemplateVersionRequest>,
) -> ApiResult<Json<TemplateVersion>> {
    let (v, _) = version.allow(Action::Update)?;
    let name = req
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| v.name.clone());
    if name != v.name && !resolve::valid_version_name(&name) {
        return Err(ApiError::validation_tag(
            "name",
            "template_version_name",
            &name,
        ));
    }
    let message = req.message.unwrap_or_else(|| v.message.clone());
    let updated = state
        .store
        .update_version(v.id, &name, &message)
        .await
        .on_conflict("name", duplicate_version(&name))?;
    Ok(ok(render_one(&state, updated).await?))
}

async fn cancel(
    State(state): State<AppState>,
    version: VersionParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let (v, _) = version.allow(Action::Update)?;
    super::job_endpoints::cancel(&state, v.job_id, raw.as_deref()).await
}

async fn set_archived(
    state: AppState,
    version: VersionParam,
    archived: bool,
) -> ApiResult<Response> {
    let (v, t) = version.allow(Action::Update)?;
    if archived {
        if t.as_ref().is_some_and(|t| t.active_version_id == v.id) {
            return Err(ApiError::bad_request(
                "The active template version cannot be archived.",
            ));
        }
        let job = state.store.job(v.job_id).await?;
        if job.completed_at.is_none() {
            return Err(ApiError::bad_request(
                "A template version cannot be archived while its import is running.",
            ));
        }
    }
    if v.archived == archived {
        let state_word = if archived { "archived" } else { "not archived" };
        return Err(ApiError::bad_request(format!(
            "Template version is already {state_word}."
        )));
    }
    state.store.set_version_archived(v.id, archived).await?;
    let msg = if archived {
        "Template version has been archived."
    } else {
        "Template version has been unarchived."
    };
    Ok(message(StatusCode::OK, msg))
}

async fn archive(State(s): State<AppState>, version: VersionParam) -> ApiResult<Response> {
    set_archived(s, version, true).await
}

async fn unarchive(State(s): State<AppState>, version: VersionParam) -> ApiResult<Response> {
    set_archived(s, version, false).await
}

async fn logs(
    State(state): State<AppState>,
    version: VersionParam,
    RawQuery(raw): RawQuery,
    ws: crate::http::ws_io::Upgrade,
) -> ApiResult<Response> {
    let (v, _) = version.allow(Action::Read)?;
    super::job_endpoints::logs(&state, v.job_id, raw.as_deref(), ws).await
}

async fn resources(
    State(state): State<AppState>,
    version: VersionParam,
) -> ApiResult<Json<Vec<WorkspaceResource>>> {
    let (v, _) = version.allow(Action::Read)?;
    Ok(ok(jobs::resources(&state, v.job_id).await?))
}

/// Parameters and variables exist once the import has ended.
async fn completed_version(state: &AppState, version: VersionParam) -> ApiResult<VersionRow> {
    let (v, _) = version.allow(Action::Read)?;
    let job = state.store.job(v.job_id).await?;
    if job.completed_at.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Job hasn't completed!",
        ));
    }
    Ok(v)
}

async fn rich_parameters(
    State(state): State<AppState>,
    version: VersionParam,
) -> ApiResult<Json<Vec<TemplateVersionParameter>>> {
    let v = completed_version(&state, version).await?;
    Ok(ok(state
        .store
        .version_parameters(v.id)
        .await?
        .into_iter()
        .map(parameter)
        .collect()))
}

const REDACTED: &str = "*redacted*";

async fn variables(
    State(state): State<AppState>,
    version: VersionParam,
) -> ApiResult<Json<Vec<TemplateVersionVariable>>> {
    let v = completed_version(&state, version).await?;
    Ok(ok(state
        .store
        .version_variables(v.id)
        .await?
        .into_iter()
        .map(|v| TemplateVersionVariable {
            value: if v.sensitive {
                REDACTED.into()
            } else {
                v.value
            },
            default_value: if v.sensitive {
                REDACTED.into()
            } else {
                v.default_value
            },
            name: v.name,
            description: v.description,
            kind: v.kind,
            required: v.required,
            sensitive: v.sensitive,
        })
        .collect()))
}

/// No external auth providers are configured on this server, so no version requires one.
async fn external_auth(
    State(state): State<AppState>,
    version: VersionParam,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    completed_version(&state, version).await?;
    Ok(ok(Vec::new()))
}

/// The version's presets (`coder create --preset`), as its import found them.
async fn presets(
    State(state): State<AppState>,
    version: VersionParam,
) -> ApiResult<Json<Vec<codersdk::Preset>>> {
    let (v, _) = version.allow(Action::Read)?;
    Ok(ok(state
        .store
        .version_presets(v.id)
        .await?
        .into_iter()
        .map(|p| codersdk::Preset {
            id: p.id,
            name: p.preset.name,
            parameters: p
                .preset
                .parameters
                .into_iter()
                .map(|x| codersdk::PresetParameter {
                    name: x.name,
                    value: x.value,
                })
                .collect(),
            default: p.preset.default,
            desired_prebuild_instances: None,
            description: p.preset.description,
            icon: p.preset.icon,
        })
        .collect()))
}

async fn removed_list(version: VersionParam) -> ApiResult<Json<Vec<serde_json::Value>>> {
    version.allow(Action::Read)?;
    Ok(ok(Vec::new()))
}

async fn by_org_template_and_name(
    State(state): State<AppState>,
    TemplateByNameParam(t): TemplateByNameParam,
    // The version's name is looked up here; the typed parameter covers the template.
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Json<TemplateVersion>> {
    let v = state.store.version_by_name(t.id, &name).await?;
    Ok(ok(render_one(&state, v).await?))
}

async fn previous(
    State(state): State<AppState>,
    TemplateByNameParam(t): TemplateByNameParam,
    // The version's name is looked up here, with this endpoint's own 404 messages.
    Path((_, _, name)): Path<(String, String, String)>,
) -> ApiResult<Json<TemplateVersion>> {
    let not_found = |message: String| ApiError::new(StatusCode::NOT_FOUND, message);
    let v = state
        .store
        .version_by_name(t.id, &name)
        .await
        .optional()?
        .ok_or_else(|| not_found(format!("No template version found by name {name:?}.")))?;
    let prev = state
        .store
        .previous_version(t.id, &v)
        .await
        .optional()?
        .ok_or_else(|| not_found(format!("No previous template version found for {name:?}.")))?;
    Ok(ok(render_one(&state, prev).await?))
}

// -- dry runs ------------------------------------------------------------------------------

async fn create_dry_run(
    State(state): State<AppState>,
    actor: Actor,
    version: VersionParam,
    Body(req): Body<CreateTemplateVersionDryRunRequest>,
) -> ApiResult<Json<ProvisionerJob>> {
    let (v, _) = version.allow(Action::Read)?;
    let import = state.store.job(v.job_id).await?;
    if import.status != coderd_db::JobStatus::Succeeded {
        return Err(ApiError::bad_request(
            "Template version import job hasn't completed!",
        ));
    }
    let job_id = Uuid::new_v4();
    let input = serde_json::json!({
        "template_version_id": v.id,
        "workspace_name": req.workspace_name,
        "rich_parameter_values": req.rich_parameter_values,
        "user_variable_values": req.user_variable_values,
    });
    state
        .store
        .insert_standalone_job(NewJob {
            id: job_id,
            organization_id: v.organization_id,
            initiator_id: actor.user_id,
            provisioner: &import.provisioner,
            job_type: "template_version_dry_run",
            input,
            file_id: import.file_id,
            tags: &import.tags.0,
        })
        .await?;
    let job = state.store.job(job_id).await?;
    crate::domain::jobs::announce(&state, &job).await;
    Ok(created(jobs::render_job(&state, &job).await?))
}

async fn dry_run(
    State(state): State<AppState>,
    DryRunParam(job): DryRunParam,
) -> ApiResult<Json<ProvisionerJob>> {
    Ok(ok(jobs::render_job(&state, &job).await?))
}

async fn cancel_dry_run(
    State(state): State<AppState>,
    DryRunParam(job): DryRunParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    super::job_endpoints::cancel(&state, job.id, raw.as_deref()).await
}

async fn dry_run_logs(
    State(state): State<AppState>,
    DryRunParam(job): DryRunParam,
    RawQuery(raw): RawQuery,
    ws: crate::http::ws_io::Upgrade,
) -> ApiResult<Response> {
    super::job_endpoints::logs(&state, job.id, raw.as_deref(), ws).await
}

async fn dry_run_resources(
    State(state): State<AppState>,
    DryRunParam(job): DryRunParam,
) -> ApiResult<Json<Vec<WorkspaceResource>>> {
    Ok(ok(jobs::resources(&state, job.id).await?))
}

async fn dry_run_matched_provisioners(
    State(state): State<AppState>,
    DryRunParam(job): DryRunParam,
) -> ApiResult<Json<codersdk::MatchedProvisioners>> {
    let daemons = state.store.list_daemons(job.organization_id).await?;
    Ok(ok(matched_provisioners(
        &daemons,
        &job.provisioner,
        &job.tags.0,
    )))
}
