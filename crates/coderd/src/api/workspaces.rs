//! Workspaces: creation (with the first build), search, settings (name, schedule, TTL,
//! automatic updates, dormancy, favorites), deadline extension, usage and sharing.
//!
//! Longer than 800 lines on purpose: one resource's 18 endpoints, each short, and their route
//! declarations (about 150 lines); rendering, loading and building are in `views`, `resolve`
//! and `domain` already.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use coderd_db::schedule::{self, Weekly};
use coderd_db::StoreResultExt;
use coderd_db::{
    GroupFilter, NewWorkspace, TemplateRow, WorkspaceFilter, WorkspaceRow, WorkspaceVisibility,
};
use codersdk::{
    CreateWorkspaceRequest, PostWorkspaceUsageRequest, PutExtendWorkspaceRequest,
    ResolveAutostartResponse, UpdateWorkspaceAcl, UpdateWorkspaceAutomaticUpdatesRequest,
    UpdateWorkspaceAutostartRequest, UpdateWorkspaceDormancy, UpdateWorkspaceRequest,
    UpdateWorkspaceTtlRequest, Workspace, WorkspaceAcl, WorkspaceBuildTimings, WorkspaceGroup,
    WorkspaceUser, WorkspacesResponse,
};
use uuid::Uuid;

use super::resolve;
use super::resolve::{
    check_workspace, workspace_for, Deleted, OrgParam, OwnerParam, UserParam, WorkspaceParam,
};
use super::routes::{Param, Routes};
use crate::authz::{Action, Actor, Object, Resource};
use crate::domain::parameters;
use crate::http::error::{ApiError, ApiResult, ConflictExt};
use crate::http::json::{created, message, ok, to_go_json, Body, Encoded, Json};
use crate::http::params::{parse_time, parse_uuid, Pagination, QueryParams};
use crate::search;
use crate::state::AppState;
use crate::views::convert::NS_PER_MS;
use crate::views::jobs::rematch;
use crate::views::loaded::Loaded;
use crate::views::workspaces::{render_one, render_with};

const MINUTE_MS: i64 = 60_000;
const MAX_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

pub fn routes(r: &mut Routes) {
    r.post("/users/{user}/workspaces", create_for_user)
        .op(
            "Workspaces",
            "create-user-workspace",
            "Create user workspace",
        )
        .body::<codersdk::CreateWorkspaceRequest>()
        .ok::<codersdk::Workspace>(201);
    r.post(
        "/organizations/{organization}/members/{user}/workspaces",
        create_in_org,
    )
    .op(
        "Workspaces",
        "create-user-workspace-by-organization",
        "Create user workspace by organization",
    )
    .body::<codersdk::CreateWorkspaceRequest>()
    .ok::<codersdk::Workspace>(201);
    r.get("/workspaces", list)
        .op("Workspaces", "list-workspaces", "List workspaces")
        .query("q", Param::Str, "Search query in the format `key:value`. Available keys are: owner, template, name, status, has-agent, dormant, last_used_after, last_used_before, has-ai-task, has_external_agent.")
        .query("limit", Param::Int, "Page limit")
        .query("offset", Param::Int, "Page offset")
        .ok::<codersdk::WorkspacesResponse>(200);
    r.get("/workspaces/{workspace}", get_one)
        .op(
            "Workspaces",
            "get-workspace-metadata-by-id",
            "Get workspace metadata by ID",
        )
        .query(
            "include_deleted",
            Param::Bool,
            "Return data instead of HTTP 404 if the workspace is deleted",
        )
        .ok::<codersdk::Workspace>(200);
    r.patch("/workspaces/{workspace}", rename)
        .op(
            "Workspaces",
            "update-workspace-metadata-by-id",
            "Update workspace metadata by ID",
        )
        .body::<codersdk::UpdateWorkspaceRequest>()
        .empty(204);
    r.get("/users/{user}/workspace/{workspacename}", by_owner_and_name)
        .op(
            "Workspaces",
            "get-workspace-metadata-by-user-and-workspace-name",
            "Get workspace metadata by user and workspace name",
        )
        .query(
            "include_deleted",
            Param::Bool,
            "Return data instead of HTTP 404 if the workspace is deleted",
        )
        .ok::<codersdk::Workspace>(200);
    r.put("/workspaces/{workspace}/autostart", set_autostart)
        .op(
            "Workspaces",
            "update-workspace-autostart-schedule-by-id",
            "Update workspace autostart schedule by ID",
        )
        .body::<codersdk::UpdateWorkspaceAutostartRequest>()
        .empty(204);
    r.put("/workspaces/{workspace}/ttl", set_ttl)
        .op(
            "Workspaces",
            "update-workspace-ttl-by-id",
            "Update workspace TTL by ID",
        )
        .body::<codersdk::UpdateWorkspaceTtlRequest>()
        .empty(204);
    r.put("/workspaces/{workspace}/autoupdates", set_autoupdates)
        .op(
            "Workspaces",
            "update-workspace-automatic-updates-by-id",
            "Update workspace automatic updates by ID",
        )
        .body::<codersdk::UpdateWorkspaceAutomaticUpdatesRequest>()
        .empty(204);
    r.put("/workspaces/{workspace}/dormant", set_dormant)
        .op(
            "Workspaces",
            "update-workspace-dormancy-status-by-id",
            "Update workspace dormancy status by id.",
        )
        .body::<codersdk::UpdateWorkspaceDormancy>()
        .ok::<codersdk::Workspace>(200)
        // The workspace already is (or is not) dormant.
        .empty(304);
    r.put("/workspaces/{workspace}/extend", extend)
        .op(
            "Workspaces",
            "extend-workspace-deadline-by-id",
            "Extend workspace deadline by ID",
        )
        .body::<codersdk::PutExtendWorkspaceRequest>()
        .ok::<codersdk::Response>(200);
    r.put("/workspaces/{workspace}/favorite", favorite)
        .op(
            "Workspaces",
            "favorite-workspace-by-id",
            "Favorite workspace by ID.",
        )
        .empty(204);
    r.delete("/workspaces/{workspace}/favorite", unfavorite)
        .op(
            "Workspaces",
            "unfavorite-workspace-by-id",
            "Unfavorite workspace by ID.",
        )
        .empty(204);
    r.post("/workspaces/{workspace}/usage", usage)
        .op(
            "Workspaces",
            "post-workspace-usage-by-id",
            "Post Workspace Usage by ID",
        )
        .body::<codersdk::PostWorkspaceUsageRequest>()
        .empty(204);
    r.get(
        "/workspaces/{workspace}/resolve-autostart",
        resolve_autostart,
    )
    .op(
        "Workspaces",
        "resolve-workspace-autostart-by-id",
        "Resolve workspace autostart by id.",
    )
    .ok::<codersdk::ResolveAutostartResponse>(200);
    r.get("/workspaces/{workspace}/timings", timings)
        .op(
            "Workspaces",
            "get-workspace-timings-by-id",
            "Get workspace timings by ID",
        )
        .ok::<codersdk::WorkspaceBuildTimings>(200);
    r.get("/workspaces/{workspace}/acl", acl)
        .op("Workspaces", "get-workspace-acls", "Get workspace ACLs")
        .ok::<codersdk::WorkspaceAcl>(200);
    r.patch("/workspaces/{workspace}/acl", update_acl)
        .op("Workspaces", "update-workspace-acl", "Update workspace ACL")
        .body::<codersdk::UpdateWorkspaceAcl>()
        .empty(204);
    r.delete("/workspaces/{workspace}/acl", delete_acl)
        .op(
            "Workspaces",
            "completely-clears-the-workspaces-user-and-group-acls",
            "Completely clears the workspace's user and group ACLs.",
        )
        .empty(204);
}

/// A workspace TTL from the API (`ttl_ms`), as Coder validates it. `None`/0 = none.
fn validate_ttl(ttl_ms: Option<i64>) -> ApiResult<Option<i64>> {
    let Some(ms) = ttl_ms.filter(|ms| *ms != 0) else {
        return Ok(None);
    };
    let ms = ms - ms % MINUTE_MS;
    let problem = if ms < MINUTE_MS {
        "time until shutdown must be at least one minute"
    } else if ms > MAX_TTL_MS {
        "time until shutdown must be less than 30 days"
    } else {
        return Ok(Some(ms * NS_PER_MS));
    };
    Err(ApiError::bad_request("Invalid Workspace Time to Shutdown.")
        .with_validation("ttl_ms", problem))
}

fn parse_schedule(raw: &str, message: &str) -> ApiResult<Weekly> {
    Weekly::parse(raw).map_err(|e| ApiError::bad_request(message).with_validation("schedule", e))
}

async fn create_for_user(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(owner): UserParam,
    Body(req): Body<CreateWorkspaceRequest>,
) -> ApiResult<Json<Workspace>> {
    create(state, actor, owner, None, req).await
}

/// Under `/organizations/{organization}/members/{user}` seeing the organization is enough to
/// name its members (`/users/{user}/…` needs the user readable).
async fn create_in_org(
    State(state): State<AppState>,
    actor: Actor,
    OrgParam { org, .. }: OrgParam,
    OwnerParam(owner): OwnerParam,
    Body(req): Body<CreateWorkspaceRequest>,
) -> ApiResult<Json<Workspace>> {
    create(state, actor, owner, Some(org.id), req).await
}

async fn create(
    state: AppState,
    actor: Actor,
    owner: coderd_db::UserRow,
    org: Option<Uuid>,
    req: CreateWorkspaceRequest,
) -> ApiResult<Json<Workspace>> {
    let (template, version_id) = match (
        req.template_id.filter(|i| !i.is_nil()),
        req.template_version_id.filter(|i| !i.is_nil()),
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "You cannot specify both a template_id and a template_version_id.",
            ))
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "You must specify either a template_id or a template_version_id.",
            ))
        }
        (Some(id), None) => {
            let t = state.store.template(id).await.optional()?.ok_or_else(|| {
                ApiError::bad_request(format!("Template {:?} doesn't exist.", id.to_string()))
                    .with_validation("template_id", "template not found")
            })?;
            let v = t.active_version_id;
            (t, v)
        }
        (None, Some(vid)) => {
            let template_id = state
                .store
                .version(vid)
                .await
                .optional()?
                .and_then(|v| v.template_id);
            let Some(template_id) = template_id else {
                return Err(ApiError::bad_request(format!(
                    "Template version {:?} doesn't exist.",
                    vid.to_string()
                ))
                .with_validation("template_version_id", "template version not found"));
            };
            match state.store.template(template_id).await.optional()? {
                Some(t) => (t, vid),
                None => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "Template has been deleted!",
                    ))
                }
            }
        }
    };
    if org.is_some_and(|o| o != template.organization_id) {
        return Err(ApiError::bad_request(
            "The template does not belong to this organization.",
        ));
    }
    // A template the caller may not read does not exist for them, as upstream answers (its
    // name is not revealed).
    if !actor.can_template(
        Action::Read,
        template.organization_id,
        &template.user_acl.0,
        &template.group_acl.0,
    ) {
        return Err(match req.template_id.filter(|i| !i.is_nil()) {
            Some(id) => {
                ApiError::bad_request(format!("Template {:?} doesn't exist.", id.to_string()))
                    .with_validation("template_id", "template not found")
            }
            None => ApiError::bad_request(format!(
                "Template version {:?} doesn't exist.",
                version_id.to_string()
            ))
            .with_validation("template_version_id", "template version not found"),
        });
    }
    let obj = Object {
        resource: Resource::Workspace,
        org: Some(template.organization_id),
        owner: Some(owner.id),
    };
    if !actor.can(Action::Create, obj) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Unauthorized to create workspace.",
        ));
    }
    if !owner.organization_ids.contains(&template.organization_id) {
        return Err(ApiError::bad_request(
            "The workspace owner must be a member of the template's organization.",
        ));
    }
    if !template.deprecated.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Template {:?} has been deprecated, and cannot be used to create a new workspace.",
            template.name
        )));
    }
    if !resolve::valid_name(&req.name) {
        let tag = if req.name.is_empty() {
            "required"
        } else {
            "workspace_name"
        };
        return Err(ApiError::validation_tag("name", tag, &req.name));
    }
    if state
        .store
        .workspace_by_owner_and_name(owner.id, &req.name, false)
        .await
        .optional()?
        .is_some()
    {
        return Err(ApiError::duplicate(
            format!("Workspace {:?} already exists.", req.name),
            "name",
        ));
    }
    let schedule = match req.autostart_schedule.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) if template.allow_user_autostart => {
            Some(parse_schedule(raw, "Invalid Autostart Schedule.")?)
        }
        _ => None,
    };
    let ttl = match validate_ttl(req.ttl_ms)? {
        Some(ttl) => Some(ttl),
        None => Some(template.default_ttl).filter(|t| *t > 0),
    };
    let automatic_updates = match req.automatic_updates.as_str() {
        "" | "never" => "never",
        "always" => "always",
        other => {
            return Err(ApiError::validation_tag(
                "automatic_updates",
                "oneof",
                other,
            ))
        }
    };
    let buildable = crate::domain::builds::buildable(&state, &template, version_id).await?;
    let schedule_text = schedule.as_ref().map(ToString::to_string);
    let made = crate::domain::builds::create_workspace(
        &state,
        NewWorkspace {
            id: Uuid::new_v4(),
            owner_id: owner.id,
            organization_id: template.organization_id,
            template_id: template.id,
            name: &req.name,
            autostart_schedule: schedule_text.as_deref(),
            ttl,
            automatic_updates,
            next_start_at: schedule.as_ref().and_then(|s| s.next(Utc::now())),
        },
        &buildable,
        actor.user_id,
        &req.rich_parameter_values,
        req.template_version_preset_id.filter(|p| !p.is_nil()),
    )
    .await?;
    // Rendered from the rows this request read and the insert answered (the queue and the
    // daemons included): nothing more is read.
    let (w, loaded) = Loaded::of_created(owner, template, buildable.version, made);
    let mut rendered = render_with(&state, actor.user_id, vec![w], loaded).await?;
    Ok(created(rendered.remove(0)))
}

/// Parses Coder's workspace search (`?q=`) into a filter.
fn search_filter(state_actor: &Actor, q: &str) -> ApiResult<(WorkspaceFilter, SearchLookups)> {
    let invalid = "Invalid workspace search query.";
    let mut f = WorkspaceFilter::default();
    let mut lookups = SearchLookups::default();
    let mut bad = ApiError::bad_request(invalid);
    let boolean = |k: &str, v: &str, bad: &mut ApiError| match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => {
            *bad = std::mem::replace(bad, ApiError::bad_request(invalid))
                .with_validation(k, format!("Query param {k:?} must be a valid boolean"));
            None
        }
    };
    for term in search::parse(q, invalid)? {
        let v = term.value;
        match term.key.as_deref() {
            None => match v.split('/').collect::<Vec<_>>().as_slice() {
                [name] => f.name = Some(name.to_string()),
                [owner, name] => {
                    f.owner_username = Some(owner.to_string());
                    f.name = Some(name.to_string());
                }
                _ => {
                    bad = bad
                        .with_validation("q", format!("Query element {v:?} can only contain 1 '/'"))
                }
            },
            Some("owner") if v == "me" => f.owner_id = Some(state_actor.user_id),
            Some("owner") => f.owner_username = Some(v),
            Some("template") => f.template_names.push(v),
            Some("name") => f.name = Some(v),
            Some("id") => {
                for id in v.split(',') {
                    match Uuid::parse_str(id) {
                        Ok(id) => f.ids.push(id),
                        Err(_) => {
                            bad = bad.with_validation("id", format!("{id:?} is not a valid uuid"))
                        }
                    }
                }
            }
            Some("status") => match v.parse::<coderd_db::BuildStatus>() {
                Ok(s) => f.statuses.push(s),
                Err(_) => {
                    bad = bad
                        .with_validation("status", format!("{v:?} is not a valid workspace status"))
                }
            },
            Some("has-agent") => match v.parse::<coderd_db::AgentStatus>() {
                Ok(s) => f.has_agent = Some(s),
                Err(_) => {
                    bad = bad
                        .with_validation("has-agent", format!("{v:?} is not a valid agent status"))
                }
            },
            Some(k @ "dormant") => f.dormant = boolean(k, &v, &mut bad),
            Some(k @ "outdated") => f.outdated = boolean(k, &v, &mut bad),
            Some(k @ ("last_used_before" | "last_used_after")) => match parse_time(&v) {
                Some(t) if k == "last_used_before" => f.last_used_before = Some(t),
                Some(t) => f.last_used_after = Some(t),
                None => {
                    bad = bad.with_validation(
                        k,
                        format!("Query param {k:?} must be a valid RFC 3339 time"),
                    )
                }
            },
            Some("organization") => lookups.organization = Some(v),
            Some("shared_with_user") => lookups.shared_with_user = Some(v),
            Some("shared_with_group") => lookups.shared_with_group = Some(v),
            Some(k @ "shared") => f.shared = boolean(k, &v, &mut bad),
            // No build here has an AI task or an external agent.
            Some(k @ ("has-ai-task" | "has_external_agent")) => {
                if boolean(k, &v, &mut bad) == Some(true) {
                    f.match_none = true;
                }
            }
            Some("param") => {
                let (name, value) = match v.split_once('=') {
                    Some((n, val)) => (n.to_string(), Some(val.to_string())),
                    None => (v.clone(), None),
                };
                f.params.push((name, value));
            }
            Some(k) => {
                bad =
                    bad.with_validation(k, format!("Query param {k:?} is not a valid query param"))
            }
        }
    }
    if bad.body.validations.is_empty() {
        Ok((f, lookups))
    } else {
        Err(bad)
    }
}

/// Search terms that name something to look up: an organization, a user or a group.
#[derive(Default)]
struct SearchLookups {
    organization: Option<String>,
    shared_with_user: Option<String>,
    shared_with_group: Option<String>,
}

impl SearchLookups {
    /// Fills the filter's ids, or answers Coder's 400 for a name that finds nothing.
    async fn apply(
        self,
        state: &AppState,
        actor: &Actor,
        f: &mut WorkspaceFilter,
    ) -> ApiResult<()> {
        let invalid = || ApiError::bad_request("Invalid workspace search query.");
        if let Some(org) = self.organization {
            f.organization_id = Some(match resolve::organization(state, actor, &org).await {
                Ok(o) => o.id,
                Err(_) => {
                    return Err(invalid().with_validation(
                        "organization",
                        format!("Organization {org:?} not found"),
                    ))
                }
            });
        }
        if let Some(user) = self.shared_with_user {
            let found = match Uuid::parse_str(&user) {
                Ok(id) => Some(id),
                Err(_) => state
                    .store
                    .user_by_username_or_email(&user)
                    .await
                    .optional()?
                    .map(|u| u.id),
            };
            match found {
                Some(id) => f.shared_with_user = Some(id),
                None => {
                    return Err(invalid().with_validation(
                        "shared_with_user",
                        format!(
                            "Query param \"shared_with_user\" has invalid value: user {user:?} \
                             either does not exist, or you are unauthorized to view them"
                        ),
                    ))
                }
            }
        }
        if let Some(group) = self.shared_with_group {
            let found = match Uuid::parse_str(&group) {
                Ok(id) => Some(id),
                Err(_) => {
                    let (org, name) = match group.split_once('/') {
                        Some((org, name)) => (
                            state.store.organization_by_name(org).await.optional()?,
                            name,
                        ),
                        None => (
                            Some(state.store.default_organization().await?),
                            group.as_str(),
                        ),
                    };
                    match org {
                        Some(org) => state
                            .store
                            .group_by_name(org.id, name)
                            .await
                            .optional()?
                            .map(|g| g.id),
                        None => None,
                    }
                }
            };
            match found {
                Some(id) => f.shared_with_group = Some(id),
                None => {
                    return Err(invalid().with_validation(
                        "shared_with_group",
                        format!(
                            "Query param \"shared_with_group\" has invalid value: group {group:?} \
                             either does not exist, or you are unauthorized to view it"
                        ),
                    ))
                }
            }
        }
        Ok(())
    }
}

async fn list(
    State(state): State<AppState>,
    actor: Actor,
    RawQuery(raw): RawQuery,
) -> ApiResult<Encoded<WorkspacesResponse>> {
    let q = QueryParams::parse(raw.as_deref());
    let page = Pagination::parse(&q)?;
    let (mut f, lookups) = search_filter(&actor, q.get("q").unwrap_or(""))?;
    lookups.apply(&state, &actor, &mut f).await?;
    f.limit = page.limit;
    f.offset = page.offset;
    f.requester = actor.user_id;
    if !actor.can(Action::Read, Object::site(Resource::Workspace)) {
        f.visible = Some(WorkspaceVisibility {
            viewer: actor.user_id,
            orgs: actor
                .memberships
                .keys()
                .copied()
                .filter(|o| actor.can(Action::Read, Object::in_org(Resource::Workspace, *o)))
                .collect(),
            groups: actor.acl_groups(),
        });
    }
    let (rows, count) = state.store.list_workspaces(&f).await?;
    let ids: Vec<Uuid> = rows.iter().map(|w| w.id).collect();
    // The page's workspaces rendered before and unchanged since come from memory
    // (crate::render_cache); the others are read in one statement and kept.
    let stamps = if ids.is_empty() {
        coderd_db::RenderStamps::default()
    } else {
        state.store.render_stamps(&ids, &[]).await?
    };
    // Each workspace's JSON, in the page's order: a hit's is copied from memory with what is set
    // per request in its place; the others are rendered (one statement) and kept.
    let mut parts: HashMap<Uuid, Vec<u8>> = HashMap::new();
    let mut missing = Vec::new();
    for w in rows {
        // The page's rows decide who may see what: a hit only lends its rendering.
        match state.render_cache.workspace(&stamps, w.id, actor.user_id) {
            Some(hit) => {
                let matched = rematch(hit.build(), hit.provisioner(), &stamps.daemons);
                let mut json = Vec::with_capacity(4096);
                hit.write_json(&mut json, matched);
                parts.insert(w.id, json);
            }
            None => missing.push(w),
        }
    }
    if !missing.is_empty() {
        let miss_ids: Vec<Uuid> = missing.iter().map(|w| w.id).collect();
        let loaded = Loaded::prefetch(&state, &miss_ids, &[]).await?;
        let provisioners = loaded.provisioners();
        let by_id: HashMap<Uuid, WorkspaceRow> =
            missing.iter().map(|w| (w.id, w.clone())).collect();
        for view in render_with(&state, actor.user_id, missing, loaded).await? {
            if let (Some(row), Some(p)) = (
                by_id.get(&view.id),
                provisioners.get(&view.latest_build.job.id),
            ) {
                state.render_cache.put_workspace(&stamps, row, p, &view);
            }
            let mut json = to_go_json(&view);
            json.pop();
            parts.insert(view.id, json);
        }
    }
    // `WorkspacesResponse` as `to_go_json` writes it, from its parts.
    let mut out = Vec::with_capacity(parts.values().map(|p| p.len() + 1).sum::<usize>() + 64);
    out.extend_from_slice(b"{\"workspaces\":[");
    let mut first = true;
    for part in ids.iter().filter_map(|id| parts.remove(id)) {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(&part);
    }
    out.extend_from_slice(format!("],\"count\":{count}}}\n").as_bytes());
    Ok(Encoded::Bytes(out))
}

/// `?include_deleted=` as Go's `strconv.ParseBool` reads it; anything else is Coder's 400
/// (whose validation names `field`).
fn include_deleted(raw: Option<&str>, field: &str) -> ApiResult<bool> {
    match QueryParams::parse(raw).get("include_deleted") {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid boolean value {other:?} for \"include_deleted\" query param."
        ))
        .with_validation(field, "Must be a valid boolean")),
    }
}

async fn get_one(
    State(state): State<AppState>,
    actor: Actor,
    // Not a `WorkspaceParam`: the prefetch below reads the workspace with all the answer shows
    // in one statement, and a bad `?include_deleted=` is refused before anything is read.
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Encoded<Workspace>> {
    let deleted = Deleted::included_if(include_deleted(raw.as_deref(), "deleted")?);
    // Everything the answer shows, read at once; whether it may be shown is decided before
    // anything of it is.
    let id = parse_uuid(&id)?;
    // Rendered before and unchanged since: served from memory (crate::render_cache).
    let stamps = state.store.render_stamps(&[id], &[]).await?;
    if let Some(hit) = state.render_cache.workspace(&stamps, id, actor.user_id) {
        check_workspace(&actor, hit.row(), Action::Read, deleted)?;
        let matched = rematch(hit.build(), hit.provisioner(), &stamps.daemons);
        return Ok(Encoded::Bytes(hit.json_line(matched)));
    }
    let loaded = Loaded::prefetch(&state, &[id], &[]).await?;
    let Some(w) = loaded.workspaces.get(&id).cloned() else {
        // Not there: the one-row read says so as it always has.
        workspace_for(&state, &actor, id, Action::Read, deleted).await?;
        return Err(ApiError::not_found());
    };
    check_workspace(&actor, &w, Action::Read, deleted)?;
    if !loaded.templates.contains_key(&w.template_id) {
        return Err(ApiError::internal(
            "Reading a workspace",
            "its template is missing",
        ));
    }
    let provisioners = loaded.provisioners();
    let mut rendered = render_with(&state, actor.user_id, vec![w.clone()], loaded).await?;
    let view = rendered.remove(0);
    if let Some(p) = provisioners.get(&view.latest_build.job.id) {
        state.render_cache.put_workspace(&stamps, &w, p, &view);
    }
    Ok(Encoded::Value(view))
}

async fn by_owner_and_name(
    State(state): State<AppState>,
    actor: Actor,
    OwnerParam(owner): OwnerParam,
    // The name is looked up once `?include_deleted=` is read (its 400 first).
    Path((_, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Workspace>> {
    let deleted = include_deleted(raw.as_deref(), "include_deleted")?;
    let w = state
        .store
        .workspace_by_owner_and_name(owner.id, &name, deleted)
        .await?;
    let deleted = Deleted::included_if(deleted);
    let (w, _) = workspace_for(&state, &actor, w.id, Action::Read, deleted).await?;
    Ok(ok(render_one(&state, actor.user_id, w).await?))
}

async fn rename(
    State(state): State<AppState>,
    workspace: WorkspaceParam,
    Body(req): Body<UpdateWorkspaceRequest>,
) -> ApiResult<StatusCode> {
    let (w, _) = workspace.allow(Action::Update)?;
    if req.name.is_empty() || req.name == w.name {
        return Ok(StatusCode::NO_CONTENT);
    }
    if !state.config.allow_workspace_renames {
        return Err(ApiError::bad_request("Workspace renames are not allowed."));
    }
    if !resolve::valid_name(&req.name) {
        return Err(ApiError::validation_tag(
            "name",
            "workspace_name",
            &req.name,
        ));
    }
    state
        .store
        .rename_workspace(w.id, &req.name)
        .await
        .on_conflict("name", format!("Workspace {:?} already exists.", req.name))?;
    crate::domain::builds::publish_workspace(&state, w.owner_id, w.id).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_autostart(
    State(state): State<AppState>,
    workspace: WorkspaceParam,
    Body(req): Body<UpdateWorkspaceAutostartRequest>,
) -> ApiResult<StatusCode> {
    let (w, t) = workspace.allow(Action::Update)?;
    let schedule = match req.schedule.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(_) if !t.allow_user_autostart => {
            let msg = "Autostart is not allowed for workspaces using this template.";
            return Err(ApiError::bad_request(msg).with_validation("schedule", msg));
        }
        Some(raw) => Some(parse_schedule(raw, "Invalid autostart schedule.")?),
    };
    let next = schedule
        .as_ref()
        .filter(|_| w.dormant_at.is_none())
        .and_then(|s| s.next(Utc::now()));
    state
        .store
        .set_autostart(w.id, schedule.map(|s| s.to_string()).as_deref(), next)
        .await?;
    crate::domain::builds::publish_workspace(&state, w.owner_id, w.id).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_ttl(
    State(state): State<AppState>,
    workspace: WorkspaceParam,
    Body(req): Body<UpdateWorkspaceTtlRequest>,
) -> ApiResult<StatusCode> {
    let (w, t) = workspace.allow(Action::Update)?;
    let refused = |detail: &str| {
        ApiError::bad_request("Error updating workspace time until shutdown.")
            .with_validation("ttl_ms", detail)
    };
    if !t.allow_user_autostop {
        return Err(refused(
            "Custom autostop TTL is not allowed for workspaces using this template.",
        ));
    }
    let ttl = validate_ttl(req.ttl_ms).map_err(|e| refused(&e.body.validations[0].detail))?;
    state.store.set_ttl(w.id, ttl).await?;
    if ttl.is_none() {
        // No TTL, no autostop: a running workspace keeps running.
        if let Some(b) = state.store.latest_builds(&[w.id]).await?.pop() {
            if b.transition == coderd_db::Transition::Start {
                state
                    .store
                    .set_build_deadline(b.id, schedule::zero_time())
                    .await?;
            }
        }
    }
    state.store.set_ttl(w.id, ttl).await?;
    crate::domain::builds::publish_workspace(&state, w.owner_id, w.id).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_autoupdates(
    State(state): State<AppState>,
    workspace: WorkspaceParam,
    Body(req): Body<UpdateWorkspaceAutomaticUpdatesRequest>,
) -> ApiResult<StatusCode> {
    let (w, _) = workspace.allow(Action::Update)?;
    if !matches!(req.automatic_updates.as_str(), "always" | "never") {
        return Err(ApiError::bad_request("Invalid request")
            .with_validation("automatic_updates", "must be always or never"));
    }
    state
        .store
        .set_automatic_updates(w.id, &req.automatic_updates)
        .await?;
    crate::domain::builds::publish_workspace(&state, w.owner_id, w.id).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_dormant(
    State(state): State<AppState>,
    actor: Actor,
    workspace: WorkspaceParam,
    Body(req): Body<UpdateWorkspaceDormancy>,
) -> ApiResult<Response> {
    let (w, t) = workspace.allow(Action::Update)?;
    if w.dormant_at.is_some() == req.dormant {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let deleting_at = (req.dormant && t.time_til_dormant_autodelete > 0).then(|| {
        w.dormant_at.unwrap_or_else(Utc::now)
            + chrono::Duration::nanoseconds(t.time_til_dormant_autodelete)
    });
    state
        .store
        .set_dormant(w.id, req.dormant, deleting_at)
        .await?;
    if !req.dormant {
        // Back from dormancy: the schedule applies again.
        let next = w
            .autostart_schedule
            .as_deref()
            .and_then(|s| Weekly::parse(s).ok())
            .and_then(|s| s.next(Utc::now()));
        state
            .store
            .set_autostart(w.id, w.autostart_schedule.as_deref(), next)
            .await?;
    }
    crate::domain::builds::publish_workspace(&state, w.owner_id, w.id).await;
    let w = state.store.workspace(w.id).await?;
    Ok(ok(render_one(&state, actor.user_id, w).await?).into_response())
}

async fn extend(
    State(state): State<AppState>,
    workspace: WorkspaceParam,
    Body(req): Body<PutExtendWorkspaceRequest>,
) -> ApiResult<Response> {
    let (w, _) = workspace.allow(Action::Update)?;
    let Some(deadline) = req.deadline else {
        return Err(ApiError::validation_tag("deadline", "required", ""));
    };
    let build = state
        .store
        .latest_builds(&[w.id])
        .await?
        .pop()
        .ok_or_else(|| ApiError::conflict("Workspace has no builds."))?;
    let job = state.store.job(build.job_id).await?;
    if build.transition != coderd_db::Transition::Start
        || job.status != coderd_db::JobStatus::Succeeded
    {
        let status = if job.status == coderd_db::JobStatus::Succeeded {
            build.transition.as_str()
        } else {
            job.status.as_str()
        };
        return Err(ApiError::conflict(format!(
            "Workspace must be started, current status: {status}"
        )));
    }
    if schedule::is_zero(build.deadline) {
        return Err(ApiError::conflict("Workspace shutdown is manual."));
    }
    if deadline < Utc::now() + chrono::Duration::minutes(29) {
        return Err(ApiError::bad_request(
            "Cannot extend workspace: new deadline must be at least 30 minutes in the future",
        ));
    }
    if !schedule::is_zero(build.max_deadline) && deadline > build.max_deadline {
        return Err(ApiError::bad_request(
            "Cannot extend workspace: new deadline is greater than template allows",
        ));
    }
    state.store.set_build_deadline(build.id, deadline).await?;
    crate::domain::builds::publish_workspace(&state, w.owner_id, w.id).await;
    Ok(message(
        StatusCode::OK,
        &format!(
            "Deadline updated to {}.",
            deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    ))
}

async fn set_favorite(
    state: AppState,
    actor: Actor,
    workspace: WorkspaceParam,
    favorite: bool,
) -> ApiResult<StatusCode> {
    let (w, _) = workspace.allow(Action::Read)?;
    if w.owner_id != actor.user_id {
        let msg = if favorite {
            "You can only favorite workspaces that you own."
        } else {
            "You can only un-favorite workspaces that you own."
        };
        return Err(ApiError::new(StatusCode::FORBIDDEN, msg));
    }
    state.store.set_favorite(w.id, favorite).await?;
    crate::domain::builds::publish_workspace(&state, w.owner_id, w.id).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn favorite(
    State(s): State<AppState>,
    actor: Actor,
    workspace: WorkspaceParam,
) -> ApiResult<StatusCode> {
    set_favorite(s, actor, workspace, true).await
}

async fn unfavorite(
    State(s): State<AppState>,
    actor: Actor,
    workspace: WorkspaceParam,
) -> ApiResult<StatusCode> {
    set_favorite(s, actor, workspace, false).await
}

/// Coder's activity-bump interval: the template's bump, but when the next autostart comes
/// sooner, up to that autostart plus the TTL.
fn bump_interval(t: &TemplateRow, w: &WorkspaceRow, now: DateTime<Utc>) -> i64 {
    let bump = t.activity_bump;
    let next = w
        .autostart_schedule
        .as_deref()
        .and_then(|s| Weekly::parse(s).ok())
        .and_then(|s| s.next(now));
    match next {
        Some(next) if next < now + chrono::Duration::nanoseconds(bump) => {
            let ttl = if t.allow_user_autostop {
                w.ttl.unwrap_or(0)
            } else {
                t.default_ttl
            };
            (next - now).num_nanoseconds().unwrap_or(bump) + ttl
        }
        _ => bump,
    }
}

async fn usage(
    State(state): State<AppState>,
    workspace: WorkspaceParam,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let (w, t) = workspace.allow(Action::Update)?;
    // The body is optional.
    let req: PostWorkspaceUsageRequest = if body.is_empty() {
        Default::default()
    } else {
        crate::http::json::decode(&body)?
    };
    if !req.app_name.is_empty()
        && !matches!(
            req.app_name.as_str(),
            "vscode" | "jetbrains" | "reconnecting-pty" | "ssh"
        )
    {
        return Err(ApiError::validation_tag("app_name", "oneof", &req.app_name));
    }
    state
        .store
        .record_usage(w.id, bump_interval(&t, &w, Utc::now()))
        .await?;
    crate::domain::builds::publish_workspace(&state, w.owner_id, w.id).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn resolve_autostart(
    State(state): State<AppState>,
    workspace: WorkspaceParam,
) -> ApiResult<Json<ResolveAutostartResponse>> {
    let (w, t) = workspace.allow(Action::Read)?;
    let latest = state.store.latest_builds(&[w.id]).await?.pop();
    let uses_active = t.require_active_version || w.automatic_updates == "always";
    let mismatch = match latest {
        Some(b) if uses_active && b.template_version_id != t.active_version_id => {
            let params = state.store.version_parameters(t.active_version_id).await?;
            let previous: HashMap<String, String> = state
                .store
                .build_parameters(&[b.id])
                .await?
                .remove(&b.id)
                .unwrap_or_default()
                .into_iter()
                .collect();
            parameters::resolve(&params, &previous, &[], false).is_err()
        }
        _ => false,
    };
    Ok(ok(ResolveAutostartResponse {
        parameter_mismatch: mismatch,
    }))
}

async fn timings(
    State(state): State<AppState>,
    workspace: WorkspaceParam,
) -> ApiResult<Json<WorkspaceBuildTimings>> {
    let (w, _) = workspace.allow(Action::Read)?;
    let b = state
        .store
        .latest_builds(&[w.id])
        .await?
        .pop()
        .ok_or_else(|| {
            ApiError::internal("Reading workspace timings", "the workspace has no builds")
        })?;
    Ok(ok(crate::views::builds::build_timings(&state, &b).await?))
}

// -- sharing -------------------------------------------------------------------------------

async fn acl(
    State(state): State<AppState>,
    workspace: WorkspaceParam,
) -> ApiResult<Json<WorkspaceAcl>> {
    let (w, _) = workspace.allow(Action::Read)?;
    let user_ids: Vec<Uuid> = w.user_acl.0.keys().copied().collect();
    let users = state.store.users_by_ids(&user_ids).await?;
    let group_ids: Vec<Uuid> = w.group_acl.0.keys().copied().collect();
    let group_rows = if group_ids.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .list_groups(&GroupFilter {
                ids: group_ids,
                ..Default::default()
            })
            .await?
    };
    Ok(ok(WorkspaceAcl {
        users: users
            .into_iter()
            .map(|u| WorkspaceUser {
                role: w.user_acl.0.get(&u.id).cloned().unwrap_or_default(),
                id: u.id,
                username: u.username,
                name: u.name,
                avatar_url: u.avatar_url,
            })
            .collect(),
        group: crate::views::groups::with_members(&state, group_rows)
            .await?
            .into_iter()
            .map(|g| WorkspaceGroup {
                role: w.group_acl.0.get(&g.id).cloned().unwrap_or_default(),
                group: g,
            })
            .collect(),
    }))
}

async fn update_acl(
    State(state): State<AppState>,
    workspace: WorkspaceParam,
    crate::http::json::BodyWithRaw(mut req, raw): crate::http::json::BodyWithRaw<
        UpdateWorkspaceAcl,
    >,
) -> ApiResult<StatusCode> {
    super::acl::null_roles(&raw, "user_roles", &mut req.user_roles);
    super::acl::null_roles(&raw, "group_roles", &mut req.group_roles);
    let (w, _) = workspace.allow(Action::Share)?;
    if req.user_roles.keys().any(|k| *k == w.owner_id.to_string()) {
        return Err(ApiError::bad_request(
            "The workspace owner cannot be added to its ACL.",
        ));
    }
    let (users, groups) = super::acl::patched(
        &state,
        w.organization_id,
        (&w.user_acl.0, &w.group_acl.0),
        (&req.user_roles, &req.group_roles),
        ("user_roles", "group_roles"),
        "Invalid request to update workspace ACL.",
    )
    .await?;
    state.store.set_workspace_acl(w.id, &users, &groups).await?;
    crate::domain::builds::publish_workspace(&state, w.owner_id, w.id).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_acl(
    State(state): State<AppState>,
    workspace: WorkspaceParam,
) -> ApiResult<StatusCode> {
    let (w, _) = workspace.allow(Action::Share)?;
    state
        .store
        .set_workspace_acl(w.id, &HashMap::new(), &HashMap::new())
        .await?;
    crate::domain::builds::publish_workspace(&state, w.owner_id, w.id).await;
    Ok(StatusCode::NO_CONTENT)
}
