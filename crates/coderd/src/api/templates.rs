//! Templates: creation from an imported version, listing (visibility pushed into SQL),
//! settings, versions, active version, ACLs, DAUs and examples.
//!
//! Longer than 800 lines on purpose: one resource's handlers and their route declarations
//! (about 140 lines of them), each short.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coderd_db::schedule::DAYS_OF_WEEK;
use coderd_db::StoreResultExt;
use coderd_db::{CreateTemplateError, GroupFilter, TemplateFields, TemplateRow, TemplateSearch};
use codersdk::{
    AclAvailable, ArchiveTemplateVersionsRequest, CreateTemplateRequest, DausResponse, Template,
    TemplateAcl, TemplateAutostartRequirement, TemplateAutostopRequirement, TemplateExample,
    TemplateGroup, TemplateUser, TemplateVersion, TransitionStats, UpdateActiveTemplateVersion,
    UpdateTemplateAcl, UpdateTemplateMeta,
};
use uuid::Uuid;

use super::resolve::OrgParam;
use super::resolve::{visibility, TemplateByNameParam, TemplateParam};
use super::routes::{Param, Routes};
use super::{examples, resolve};
use crate::authz::{Action, Actor, Object, Resource};
use crate::http::error::{ApiError, ApiResult, ConflictExt};
use crate::http::json::{created, message, ok, Body, BodyWithRaw, Json};
use crate::http::params::{Pagination, QueryParams};
use crate::search::{self, SearchValues};
use crate::state::AppState;
use crate::views::convert;
use crate::views::convert::NS_PER_MS;

/// Tells watchers of the template's workspaces that the template changed.
async fn publish_template(state: &AppState, id: Uuid) {
    if let Err(e) = state.pubsub.publish(&format!("template:{id}"), "").await {
        tracing::warn!(error = %e, "announcing a template change");
    }
}

pub fn routes(r: &mut Routes) {
    r.get("/organizations/{organization}/templates", list_in_org)
        .op(
            "Templates",
            "get-templates-by-organization",
            "Get templates by organization",
        )
        .query(
            "q",
            Param::Str,
            "Search query (exact_name:, name:, deprecated:, author:, ...)",
        )
        .list::<codersdk::Template>(200);
    r.post("/organizations/{organization}/templates", create)
        .op(
            "Templates",
            "create-template-by-organization",
            "Create template by organization",
        )
        .body::<codersdk::CreateTemplateRequest>()
        .ok::<codersdk::Template>(201);
    r.get(
        "/organizations/{organization}/templates/examples",
        org_examples,
    )
    .op(
        "Templates",
        "get-template-examples-by-organization",
        "Get template examples by organization",
    )
    .list::<codersdk::TemplateExample>(200);
    r.get(
        "/organizations/{organization}/templates/{templatename}",
        by_name,
    )
    .op(
        "Templates",
        "get-templates-by-organization-and-template-name",
        "Get templates by organization and template name",
    )
    .ok::<codersdk::Template>(200);
    r.get("/templates", list)
        .op("Templates", "get-all-templates", "Get all templates")
        .query(
            "q",
            Param::Str,
            "Search query (exact_name:, name:, deprecated:, author:, ...)",
        )
        .list::<codersdk::Template>(200);
    r.get("/templates/examples", list_examples)
        .op(
            "Templates",
            "get-template-examples",
            "Get template examples",
        )
        .list::<codersdk::TemplateExample>(200);
    r.get("/templates/{template}", get_one)
        .op(
            "Templates",
            "get-template-settings-by-id",
            "Get template settings by ID",
        )
        .ok::<codersdk::Template>(200);
    r.patch("/templates/{template}", update)
        .op(
            "Templates",
            "update-template-settings-by-id",
            "Update template settings by ID",
        )
        .body::<codersdk::UpdateTemplateMeta>()
        .ok::<codersdk::Template>(200)
        // The request changes nothing.
        .empty(304);
    r.delete("/templates/{template}", delete)
        .op(
            "Templates",
            "delete-template-by-id",
            "Delete template by ID",
        )
        .ok::<codersdk::Response>(200);
    r.get("/templates/{template}/acl", acl)
        .op("Enterprise", "get-template-acls", "Get template ACLs")
        .ok::<codersdk::TemplateAcl>(200);
    r.patch("/templates/{template}/acl", update_acl)
        .op("Enterprise", "update-template-acl", "Update template ACL")
        .body::<codersdk::UpdateTemplateAcl>()
        .ok::<codersdk::Response>(200);
    r.get("/templates/{template}/acl/available", acl_available)
        .op(
            "Enterprise",
            "get-template-available-acl-usersgroups",
            "Get template available acl users/groups",
        )
        .ok::<codersdk::AclAvailable>(200);
    r.get("/templates/{template}/daus", daus)
        .op(
            "Templates",
            "get-template-daus-by-id",
            "Get template DAUs by ID",
        )
        .ok::<codersdk::DausResponse>(200);
    r.get("/templates/{template}/versions", versions)
        .op(
            "Templates",
            "list-template-versions-by-template-id",
            "List template versions by template ID",
        )
        .query("after_id", Param::Uuid, "After ID")
        .query(
            "include_archived",
            Param::Bool,
            "Include archived versions in the list",
        )
        .query("limit", Param::Int, "Page limit")
        .query("offset", Param::Int, "Page offset")
        .list::<codersdk::TemplateVersion>(200);
    r.patch("/templates/{template}/versions", set_active_version)
        .op(
            "Templates",
            "update-active-template-version-by-template-id",
            "Update active template version by template ID",
        )
        .body::<codersdk::UpdateActiveTemplateVersion>()
        .ok::<codersdk::Response>(200);
    r.post("/templates/{template}/versions/archive", archive_versions)
        .op(
            "Templates",
            "archive-template-unused-versions-by-template-id",
            "Archive template unused versions by template id",
        )
        .body::<codersdk::ArchiveTemplateVersionsRequest>()
        .ok::<codersdk::Response>(200);
    r.get(
        "/templates/{template}/versions/{templateversionname}",
        version_by_name,
    )
    .op(
        "Templates",
        "get-template-version-by-template-id-and-name",
        "Get template version by template ID and name",
    )
    .ok::<codersdk::TemplateVersion>(200);
}

fn render_with(t: TemplateRow, stats: Option<&coderd_db::TemplateStats>) -> Template {
    let build_time_stats = coderd_db::Transition::ALL
        .iter()
        .map(|tr| {
            let (p50, p95) = stats
                .and_then(|s| s.build_ms.get(tr))
                .copied()
                .unwrap_or((None, None));
            (tr.to_string(), TransitionStats { p50, p95 })
        })
        .collect();
    Template {
        id: t.id,
        created_at: t.created_at,
        updated_at: t.updated_at,
        organization_id: t.organization_id,
        organization_name: t.organization_name,
        organization_display_name: t.organization_display_name,
        organization_icon: t.organization_icon,
        name: t.name,
        display_name: t.display_name,
        provisioner: t.provisioner,
        active_version_id: t.active_version_id,
        active_user_count: stats.map_or(0, |s| s.active_users),
        build_time_stats,
        description: t.description,
        deprecated: !t.deprecated.is_empty(),
        deprecation_message: t.deprecated,
        icon: t.icon,
        default_ttl_ms: t.default_ttl / NS_PER_MS,
        activity_bump_ms: t.activity_bump / NS_PER_MS,
        autostop_requirement: TemplateAutostopRequirement {
            days_of_week: t.autostop_requirement_days_of_week,
            weeks: t.autostop_requirement_weeks,
        },
        autostart_requirement: TemplateAutostartRequirement {
            days_of_week: t.autostart_allowed_days,
        },
        created_by_id: t.created_by,
        created_by_name: t.created_by_username,
        allow_user_autostart: t.allow_user_autostart,
        allow_user_autostop: t.allow_user_autostop,
        allow_user_cancel_workspace_jobs: t.allow_user_cancel_workspace_jobs,
        failure_ttl_ms: t.failure_ttl / NS_PER_MS,
        time_til_dormant_ms: t.time_til_dormant / NS_PER_MS,
        time_til_dormant_autodelete_ms: t.time_til_dormant_autodelete / NS_PER_MS,
        require_active_version: t.require_active_version,
        max_port_share_level: t.max_port_sharing_level,
        cors_behavior: t.cors_behavior,
        use_classic_parameter_flow: t.use_classic_parameter_flow,
    }
}

/// Renders templates with their statistics (from [`crate::template_stats::StatsCache`], or two queries for any
/// number of templates).
pub async fn render_all(state: &AppState, rows: Vec<TemplateRow>) -> ApiResult<Vec<Template>> {
    let ids: Vec<Uuid> = rows.iter().map(|t| t.id).collect();
    let stats = state.template_stats.get(&state.store, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|t| {
            let s = stats.get(&t.id);
            render_with(t, s)
        })
        .collect())
}

pub async fn render(state: &AppState, t: TemplateRow) -> ApiResult<Template> {
    Ok(render_all(state, vec![t]).await?.remove(0))
}

/// Validates the settings shared by create and update; collects every problem.
fn validate(f: &TemplateFields, message: &str) -> ApiResult<()> {
    let mut err = ApiError::bad_request(message);
    if !resolve::valid_name(&f.name) {
        let tag = if f.name.is_empty() {
            "required"
        } else {
            "template_name"
        };
        err = err.with_validation("name", crate::http::error::tag_detail(tag, &f.name));
    }
    if f.display_name.chars().count() > 64 {
        err = err.with_validation("display_name", "Must be at most 64 characters.");
    }
    if f.description.chars().count() > 128 {
        err = err.with_validation("description", "Must be at most 128 characters.");
    }
    for (field, v) in [
        ("default_ttl_ms", f.default_ttl),
        ("activity_bump_ms", f.activity_bump),
        ("failure_ttl_ms", f.failure_ttl),
        ("time_til_dormant_ms", f.time_til_dormant),
        (
            "time_til_dormant_autodelete_ms",
            f.time_til_dormant_autodelete,
        ),
    ] {
        if v < 0 {
            err = err.with_validation(field, "Must be a positive integer.");
        } else if field != "default_ttl_ms"
            && field != "activity_bump_ms"
            && v > 0
            && v < 60_000 * NS_PER_MS
        {
            err = err.with_validation(field, "Value must be at least one minute.");
        }
    }
    if f.autostop_requirement_days_of_week
        .iter()
        .any(|d| !DAYS_OF_WEEK.contains(&d.as_str()))
    {
        err = err.with_validation(
            "autostop_requirement.days_of_week",
            "Must be days of the week, e.g. \"monday\".",
        );
    }
    if !(1..=16).contains(&f.autostop_requirement_weeks) {
        err = err.with_validation("autostop_requirement.weeks", "Must be between 1 and 16.");
    }
    if f.autostart_allowed_days
        .iter()
        .any(|d| !DAYS_OF_WEEK.contains(&d.as_str()))
    {
        err = err.with_validation(
            "autostart_requirement.days_of_week",
            "Must be days of the week, e.g. \"monday\".",
        );
    }
    if !matches!(
        f.max_port_sharing_level.as_str(),
        "owner" | "authenticated" | "organization" | "public"
    ) {
        err = err.with_validation(
            "max_port_share_level",
            "Must be owner, authenticated, organization or public.",
        );
    }
    if !matches!(f.cors_behavior.as_str(), "simple" | "passthru") {
        err = err.with_validation("cors_behavior", "Must be simple or passthru.");
    }
    if err.body.validations.is_empty() {
        Ok(())
    } else {
        Err(err)
    }
}

async fn create(
    State(state): State<AppState>,
    actor: Actor,
    organization: OrgParam,
    Body(req): Body<CreateTemplateRequest>,
) -> ApiResult<Response> {
    let org = organization.allow(Resource::Template, Action::Create)?;
    let Some(version_id) = req.template_version_id.filter(|id| !id.is_nil()) else {
        return Err(ApiError::validation_tag(
            "template_version_id",
            "required",
            "",
        ));
    };
    let stop = req.autostop_requirement.unwrap_or_default();
    let fields = TemplateFields {
        name: req.name.clone(),
        display_name: req.display_name,
        description: req.description,
        icon: req.icon,
        default_ttl: req.default_ttl_ms.unwrap_or(0).saturating_mul(NS_PER_MS),
        activity_bump: req
            .activity_bump_ms
            .unwrap_or(3_600_000)
            .saturating_mul(NS_PER_MS),
        failure_ttl: req.failure_ttl_ms.unwrap_or(0).saturating_mul(NS_PER_MS),
        time_til_dormant: req.dormant_ttl_ms.unwrap_or(0).saturating_mul(NS_PER_MS),
        time_til_dormant_autodelete: req.delete_ttl_ms.unwrap_or(0).saturating_mul(NS_PER_MS),
        autostop_requirement_days_of_week: stop.days_of_week,
        autostop_requirement_weeks: if stop.weeks == 0 { 1 } else { stop.weeks },
        autostart_allowed_days: req
            .autostart_requirement
            .map(|a| a.days_of_week)
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| DAYS_OF_WEEK.iter().map(|d| d.to_string()).collect()),
        allow_user_autostart: req.allow_user_autostart.unwrap_or(true),
        allow_user_autostop: req.allow_user_autostop.unwrap_or(true),
        allow_user_cancel_workspace_jobs: req.allow_user_cancel_workspace_jobs.unwrap_or(false),
        require_active_version: req.require_active_version,
        deprecated: String::new(),
        max_port_sharing_level: req.max_port_share_level.unwrap_or_else(|| "owner".into()),
        cors_behavior: req.cors_behavior.unwrap_or_else(|| "simple".into()),
        use_classic_parameter_flow: req.template_use_classic_parameter_flow.unwrap_or(false),
    };
    validate(&fields, "Invalid create template request.")?;
    let t = state
        .store
        .insert_template(
            org.id,
            version_id,
            actor.user_id,
            &fields,
            !req.disable_everyone_group_access,
        )
        .await
        .map_err(|e| match e {
            CreateTemplateError::VersionNotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "Template version {:?} does not exist.",
                    version_id.to_string()
                ),
            )
            .with_validation("template_version_id", "Template version not found."),
            CreateTemplateError::VersionInTemplate => ApiError::bad_request(format!(
                "Template version {version_id} is already part of a template"
            ))
            .with_validation(
                "template_version_id",
                "Template version is already part of a template.",
            ),
            CreateTemplateError::VersionArchived => {
                ApiError::bad_request(format!("Template version {version_id} is archived."))
                    .with_validation("template_version_id", "Template version is archived.")
            }
            CreateTemplateError::Store(e) => ApiError::from(e).on_conflict(
                "name",
                format!("Template with name {:?} already exists.", req.name),
            ),
        })?;
    Ok(created(render(&state, t).await?).into_response())
}

async fn list_in_org(
    State(state): State<AppState>,
    actor: Actor,
    OrgParam { org, .. }: OrgParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Template>>> {
    let mut search = search_filter(&state, &actor, raw.as_deref()).await?;
    search.organization_id = Some(org.id);
    let rows = state
        .store
        .list_templates(&search, &visibility(&actor))
        .await?;
    Ok(ok(render_all(&state, rows).await?))
}

async fn list(
    State(state): State<AppState>,
    actor: Actor,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Template>>> {
    let search = search_filter(&state, &actor, raw.as_deref()).await?;
    let rows = state
        .store
        .list_templates(&search, &visibility(&actor))
        .await?;
    Ok(ok(render_all(&state, rows).await?))
}

/// Coder's template search (`?q=`): `exact_name:`, `name:` (substring), `display_name:` and
/// bare words (substring of the display name, else the name), `exact_display_name:`, `ids:`,
/// `organization:` (id or name), `author:` (username or `me`), `author_id:`, `deprecated:`,
/// `deleted:`, `has-ai-task:` and `has_external_agent:`. Deprecated templates are left out
/// unless `deprecated:` is given.
async fn search_filter(
    state: &AppState,
    actor: &Actor,
    raw: Option<&str>,
) -> ApiResult<TemplateSearch> {
    let invalid = "Invalid template search query.";
    let q = QueryParams::parse(raw)
        .get("q")
        .unwrap_or("")
        .to_lowercase();
    let mut v = SearchValues::new(search::parse(&q, invalid)?, "display_name", invalid);
    let mut f = TemplateSearch {
        deleted: v.boolean("deleted").unwrap_or(false),
        exact_name: v.string("exact_name").filter(|s| !s.is_empty()),
        exact_display_name: v.string("exact_display_name").filter(|s| !s.is_empty()),
        fuzzy_name: v.string("name").filter(|s| !s.is_empty()),
        fuzzy_display_name: v.string("display_name").filter(|s| !s.is_empty()),
        ids: v.uuids("ids"),
        deprecated: Some(v.boolean("deprecated").unwrap_or(false)),
        author_id: v.uuid("author_id"),
        ..TemplateSearch::default()
    };
    // No version here declares an AI task or an external agent.
    for key in ["has-ai-task", "has_external_agent"] {
        if v.boolean(key) == Some(true) {
            f.match_none = true;
        }
    }
    match v.string("author").filter(|s| !s.is_empty()) {
        Some(me) if me == "me" => f.author_id = Some(actor.user_id),
        other => f.author_username = other,
    }
    if let Some(org) = v.string("organization").filter(|s| !s.is_empty()) {
        let found = match Uuid::parse_str(&org) {
            Ok(id) => Some(id),
            Err(_) => state
                .store
                .organization_by_name(&org)
                .await
                .optional()?
                .map(|o| o.id),
        };
        match found {
            Some(id) => f.organization_id = Some(id),
            None => v.invalid(
                "organization",
                format!(
                    "Query param \"organization\" has invalid value: organization {org:?} \
                     either does not exist, or you are unauthorized to view it"
                ),
            ),
        }
    }
    v.finish()?;
    Ok(f)
}

async fn by_name(
    State(state): State<AppState>,
    TemplateByNameParam(t): TemplateByNameParam,
) -> ApiResult<Json<Template>> {
    Ok(ok(render(&state, t).await?))
}

async fn get_one(
    State(state): State<AppState>,
    template: TemplateParam,
) -> ApiResult<Json<Template>> {
    let t = template.allow(Action::Read)?;
    Ok(ok(render(&state, t).await?))
}

fn fields_of(t: &TemplateRow) -> TemplateFields {
    TemplateFields {
        name: t.name.clone(),
        display_name: t.display_name.clone(),
        description: t.description.clone(),
        icon: t.icon.clone(),
        default_ttl: t.default_ttl,
        activity_bump: t.activity_bump,
        failure_ttl: t.failure_ttl,
        time_til_dormant: t.time_til_dormant,
        time_til_dormant_autodelete: t.time_til_dormant_autodelete,
        autostop_requirement_days_of_week: t.autostop_requirement_days_of_week.clone(),
        autostop_requirement_weeks: t.autostop_requirement_weeks,
        autostart_allowed_days: t.autostart_allowed_days.clone(),
        allow_user_autostart: t.allow_user_autostart,
        allow_user_autostop: t.allow_user_autostop,
        allow_user_cancel_workspace_jobs: t.allow_user_cancel_workspace_jobs,
        require_active_version: t.require_active_version,
        deprecated: t.deprecated.clone(),
        max_port_sharing_level: t.max_port_sharing_level.clone(),
        cors_behavior: t.cors_behavior.clone(),
        use_classic_parameter_flow: t.use_classic_parameter_flow,
    }
}

/// Applies a patch: fields left out keep their value. Answers 304 when nothing changes.
async fn update(
    State(state): State<AppState>,
    template: TemplateParam,
    Body(req): Body<UpdateTemplateMeta>,
) -> ApiResult<Response> {
    let t = template.allow(Action::Update)?;
    let before = fields_of(&t);
    let mut f = before.clone();
    let ms = |v: Option<i64>, old: i64| v.map_or(old, |ms| ms.saturating_mul(NS_PER_MS));
    if let Some(n) = req.name.filter(|n| !n.is_empty()) {
        f.name = n;
    }
    f.display_name = req.display_name.unwrap_or(f.display_name);
    f.description = req.description.unwrap_or(f.description);
    f.icon = req.icon.unwrap_or(f.icon);
    f.default_ttl = ms(req.default_ttl_ms, f.default_ttl);
    f.activity_bump = ms(req.activity_bump_ms, f.activity_bump);
    f.failure_ttl = ms(req.failure_ttl_ms, f.failure_ttl);
    f.time_til_dormant = ms(req.time_til_dormant_ms, f.time_til_dormant);
    f.time_til_dormant_autodelete = ms(
        req.time_til_dormant_autodelete_ms,
        f.time_til_dormant_autodelete,
    );
    if let Some(stop) = req.autostop_requirement {
        f.autostop_requirement_days_of_week = stop.days_of_week;
        f.autostop_requirement_weeks = if stop.weeks == 0 { 1 } else { stop.weeks };
    }
    if let Some(start) = req.autostart_requirement {
        f.autostart_allowed_days = start.days_of_week;
    }
    f.allow_user_autostart = req.allow_user_autostart.unwrap_or(f.allow_user_autostart);
    f.allow_user_autostop = req.allow_user_autostop.unwrap_or(f.allow_user_autostop);
    f.allow_user_cancel_workspace_jobs = req
        .allow_user_cancel_workspace_jobs
        .unwrap_or(f.allow_user_cancel_workspace_jobs);
    f.require_active_version = req
        .require_active_version
        .unwrap_or(f.require_active_version);
    f.deprecated = req.deprecation_message.unwrap_or(f.deprecated);
    f.max_port_sharing_level = req.max_port_share_level.unwrap_or(f.max_port_sharing_level);
    f.cors_behavior = req.cors_behavior.unwrap_or(f.cors_behavior);
    f.use_classic_parameter_flow = req
        .use_classic_parameter_flow
        .unwrap_or(f.use_classic_parameter_flow);
    let drop_everyone = req.disable_everyone_group_access == Some(true)
        && t.group_acl.0.contains_key(&t.organization_id);
    if format!("{before:?}") == format!("{f:?}") && !drop_everyone {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    validate(&f, "Invalid request to update template metadata!")?;
    let groups = drop_everyone.then(|| {
        let mut g = t.group_acl.0.clone();
        g.remove(&t.organization_id);
        g
    });
    let updated = state
        .store
        .update_template(t.id, &f, groups.as_ref())
        .await
        .on_conflict(
            "name",
            format!("Template with name {:?} already exists.", f.name),
        )?;
    publish_template(&state, t.id).await;
    Ok(ok(render(&state, updated).await?).into_response())
}

async fn delete(State(state): State<AppState>, template: TemplateParam) -> ApiResult<Response> {
    let t = template.allow(Action::Delete)?;
    if state.store.template_has_workspaces(t.id).await? {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "All workspaces must be deleted before a template can be removed.",
        ));
    }
    state.store.delete_template(t.id).await?;
    publish_template(&state, t.id).await;
    Ok(message(StatusCode::OK, "Template has been deleted!"))
}

async fn versions(
    State(state): State<AppState>,
    template: TemplateParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<TemplateVersion>>> {
    let t = template.allow(Action::Read)?;
    let q = QueryParams::parse(raw.as_deref());
    let page = Pagination::parse(&q)?;
    if let Some(after) = page.after_id {
        let found = state.store.version(after).await.optional()?;
        if found.filter(|v| v.template_id == Some(t.id)).is_none() {
            return Err(ApiError::bad_request(format!(
                "Record at \"after_id\" ({after}) does not exist."
            )));
        }
    }
    let include_archived = q.get("include_archived") == Some("true");
    let rows = state
        .store
        .list_versions(
            t.id,
            include_archived,
            page.after_id,
            page.limit,
            page.offset,
        )
        .await?;
    Ok(ok(
        crate::views::template_versions::render(&state, rows).await?
    ))
}

async fn version_by_name(
    State(state): State<AppState>,
    template: TemplateParam,
    // The version's name is looked up here; the typed parameter covers only the template.
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<Json<TemplateVersion>> {
    let t = template.allow(Action::Read)?;
    let v = state.store.version_by_name(t.id, &name).await?;
    Ok(ok(
        crate::views::template_versions::render_one(&state, v).await?
    ))
}

async fn set_active_version(
    State(state): State<AppState>,
    template: TemplateParam,
    Body(req): Body<UpdateActiveTemplateVersion>,
) -> ApiResult<Response> {
    let t = template.allow(Action::Update)?;
    let v = state
        .store
        .version(req.id)
        .await
        .optional()?
        .ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "Template version not found.")
                .with_validation("id", "Template version not found.")
        })?;
    if v.template_id != Some(t.id) {
        return Err(ApiError::bad_request(
            "The provided template version doesn't belong to the specified template.",
        ));
    }
    if v.archived {
        return Err(ApiError::bad_request(
            "The provided template version is archived.",
        ));
    }
    let job = state.store.job(v.job_id).await?;
    match job.status {
        coderd_db::JobStatus::Succeeded => {}
        coderd_db::JobStatus::Pending | coderd_db::JobStatus::Running => {
            return Err(ApiError::bad_request(
                "The provided template version is being imported!",
            ))
        }
        _ => {
            return Err(ApiError::bad_request(
                "The provided template version has failed to import!",
            ))
        }
    }
    state.store.set_active_version(t.id, v.id).await?;
    publish_template(&state, t.id).await;
    Ok(message(
        StatusCode::OK,
        "Updated the active template version!",
    ))
}

async fn archive_versions(
    State(state): State<AppState>,
    template: TemplateParam,
    Body(req): Body<ArchiveTemplateVersionsRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let t = template.allow(Action::Update)?;
    let archived = state.store.archive_unused_versions(t.id, req.all).await?;
    // Coder answers {template_id, archived_ids}; the reference documents a Response: both.
    Ok(ok(serde_json::json!({
        "message": format!("Archived {} template versions.", archived.len()),
        "template_id": t.id,
        "archived_ids": archived,
    })))
}

// -- access control ------------------------------------------------------------------------

async fn acl(
    State(state): State<AppState>,
    template: TemplateParam,
) -> ApiResult<Json<TemplateAcl>> {
    // As upstream: who holds which role on a template is for those who may change it.
    let t = template.allow(Action::Update)?;
    let user_ids: Vec<Uuid> = t.user_acl.0.keys().copied().collect();
    let users = state.store.users_by_ids(&user_ids).await?;
    let group_ids: Vec<Uuid> = t.group_acl.0.keys().copied().collect();
    let groups = state
        .store
        .list_groups(&GroupFilter {
            ids: group_ids.clone(),
            ..Default::default()
        })
        .await?;
    let groups: Vec<_> = if group_ids.is_empty() {
        Vec::new()
    } else {
        groups
    };
    let rendered = crate::views::groups::with_members(&state, groups).await?;
    Ok(ok(TemplateAcl {
        users: users
            .into_iter()
            .map(|u| TemplateUser {
                role: t.user_acl.0.get(&u.id).cloned().unwrap_or_default(),
                user: convert::user(u),
            })
            .collect(),
        group: rendered
            .into_iter()
            .map(|g| TemplateGroup {
                role: t.group_acl.0.get(&g.id).cloned().unwrap_or_default(),
                group: g,
            })
            .collect(),
    }))
}

async fn update_acl(
    State(state): State<AppState>,
    template: TemplateParam,
    BodyWithRaw(mut req, raw): BodyWithRaw<UpdateTemplateAcl>,
) -> ApiResult<Response> {
    super::acl::null_roles(&raw, "user_perms", &mut req.user_perms);
    super::acl::null_roles(&raw, "group_perms", &mut req.group_perms);
    let t = template.allow(Action::Update)?;
    let (users, groups) = super::acl::patched(
        &state,
        t.organization_id,
        (&t.user_acl.0, &t.group_acl.0),
        (&req.user_perms, &req.group_perms),
        ("user_perms", "group_perms"),
        "Invalid request to update template ACL.",
    )
    .await?;
    state.store.set_template_acl(t.id, &users, &groups).await?;
    publish_template(&state, t.id).await;
    Ok(message(
        StatusCode::OK,
        "Successfully updated template ACL list.",
    ))
}

async fn acl_available(
    State(state): State<AppState>,
    template: TemplateParam,
) -> ApiResult<Json<AclAvailable>> {
    let t = template.allow(Action::Update)?;
    let members = state.store.list_members(t.organization_id).await?;
    let groups = state
        .store
        .list_groups(&GroupFilter {
            organization_id: Some(t.organization_id),
            ..Default::default()
        })
        .await?;
    Ok(ok(AclAvailable {
        users: members
            .iter()
            .map(|m| convert::reduced_user(&m.user))
            .collect(),
        groups: crate::views::groups::with_members(&state, groups).await?,
    }))
}

/// Distinct users per day who used the template's workspaces in the last 30 days.
async fn daus(
    State(state): State<AppState>,
    template: TemplateParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<DausResponse>> {
    let t = template.allow(Action::Read)?;
    let q = QueryParams::parse(raw.as_deref());
    let offset = match q.get("tz_offset").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|o| (-12..=14).contains(o))
            .ok_or_else(|| {
                ApiError::bad_request("Query parameters have invalid values.")
                    .with_validation("tz_offset", "Must be an hour offset between -12 and 14.")
            })?,
    };
    let entries = state
        .store
        .template_daus(t.id, offset)
        .await?
        .into_iter()
        .map(|(day, amount)| codersdk::DauEntry {
            date: day.format("%Y-%m-%d").to_string(),
            amount,
        })
        .collect();
    Ok(ok(DausResponse {
        entries,
        tz_hour_offset: offset,
    }))
}

/// The examples, for the default organization: only to those who may read its templates.
async fn list_examples(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Vec<TemplateExample>>> {
    let org = state.store.default_organization().await?;
    examples_in(&actor, org.id)
}

async fn org_examples(
    actor: Actor,
    OrgParam { org, .. }: OrgParam,
) -> ApiResult<Json<Vec<TemplateExample>>> {
    examples_in(&actor, org.id)
}

/// As upstream: the examples answer 404 to whoever may not read templates in `org` as a whole
/// (a member who sees some templates through their ACLs does not).
fn examples_in(actor: &Actor, org: Uuid) -> ApiResult<Json<Vec<TemplateExample>>> {
    if !actor.can(Action::Read, Object::in_org(Resource::Template, org)) {
        return Err(ApiError::not_found());
    }
    Ok(ok(examples::list()))
}
