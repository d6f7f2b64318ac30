//! Groups of users within an organization. Every organization has an "Everyone" group (its id
//! is the organization's) whose members are exactly the organization's members.

use axum::extract::{RawQuery, State};
use coderd_db::{GroupFilter, GroupRow, NewGroup, StoreResultExt, UpdateGroup};
use codersdk::{CreateGroupRequest, Group, PatchGroupRequest};
use uuid::Uuid;

use super::resolve;
use super::resolve::{GroupByNameParam, GroupParam, OrgParam};
use super::routes::{Param, Routes};
use crate::authz::{Action, Actor, Object, Resource};
use crate::http::error::{ApiError, ApiResult, ConflictExt};
use crate::http::json::{created, ok, Body, Json};
use crate::http::params::{QueryErrors, QueryParams};
use crate::state::AppState;
use crate::views::groups::with_members;

const EVERYONE: &str = "Everyone";

pub fn routes(r: &mut Routes) {
    r.get("/organizations/{organization}/groups", list_in_org)
        .op(
            "Enterprise",
            "get-groups-by-organization",
            "Get groups by organization",
        )
        .list::<codersdk::Group>(200);
    r.post("/organizations/{organization}/groups", create)
        .op(
            "Enterprise",
            "create-group-for-organization",
            "Create group for organization",
        )
        .body::<codersdk::CreateGroupRequest>()
        .ok::<codersdk::Group>(201);
    r.get("/organizations/{organization}/groups/{groupName}", by_name)
        .op(
            "Enterprise",
            "get-group-by-organization-and-group-name",
            "Get group by organization and group name",
        )
        .ok::<codersdk::Group>(200);
    r.get("/groups", list)
        .op("Enterprise", "get-groups", "Get groups")
        .query("organization", Param::Str, "Organization ID or name")
        .query("has_member", Param::Str, "User ID or name")
        .query("group_ids", Param::Str, "Comma separated list of group IDs")
        .list::<codersdk::Group>(200);
    r.get("/groups/{group}", get_one)
        .op("Enterprise", "get-group-by-id", "Get group by ID")
        .ok::<codersdk::Group>(200);
    r.patch("/groups/{group}", patch)
        .op("Enterprise", "update-group-by-name", "Update group by name")
        .body::<codersdk::PatchGroupRequest>()
        .ok::<codersdk::Group>(200);
    r.delete("/groups/{group}", delete)
        .op("Enterprise", "delete-group-by-name", "Delete group by name")
        .ok::<codersdk::Group>(200);
}

async fn one(state: &AppState, g: GroupRow) -> ApiResult<Group> {
    Ok(with_members(state, vec![g]).await?.remove(0))
}

fn check_name(name: &str) -> ApiResult<()> {
    if name == EVERYONE {
        return Err(ApiError::bad_request("Invalid group name.")
            .with_detail(format!("{EVERYONE:?} is a reserved group name.")));
    }
    if !resolve::valid_name(name) {
        let tag = if name.is_empty() {
            "required"
        } else {
            "group_name"
        };
        return Err(ApiError::validation_tag("name", tag, name));
    }
    Ok(())
}

fn check_quota(quota: i64) -> ApiResult<i32> {
    i32::try_from(quota)
        .ok()
        .filter(|q| *q >= 0)
        .ok_or_else(|| ApiError::validation_tag("quota_allowance", "min", &quota.to_string()))
}

async fn list_in_org(
    State(state): State<AppState>,
    organization: OrgParam,
) -> ApiResult<Json<Vec<Group>>> {
    let org = organization.allow(Resource::Group, Action::Read)?;
    let groups = state
        .store
        .list_groups(&GroupFilter {
            organization_id: Some(org.id),
            ..Default::default()
        })
        .await?;
    Ok(ok(with_members(&state, groups).await?))
}

async fn create(
    State(state): State<AppState>,
    organization: OrgParam,
    Body(req): Body<CreateGroupRequest>,
) -> ApiResult<Json<Group>> {
    let org = organization.allow(Resource::Group, Action::Create)?;
    check_name(&req.name)?;
    let quota = check_quota(req.quota_allowance)?;
    let g = state
        .store
        .insert_group(NewGroup {
            organization_id: org.id,
            name: &req.name,
            display_name: &req.display_name,
            avatar_url: &req.avatar_url,
            quota_allowance: quota,
        })
        .await
        .on_conflict(
            "name",
            format!("A group named {:?} already exists.", req.name),
        )?;
    Ok(created(one(&state, g).await?))
}

async fn by_name(
    State(state): State<AppState>,
    GroupByNameParam(g): GroupByNameParam,
) -> ApiResult<Json<Group>> {
    Ok(ok(one(&state, g).await?))
}

async fn list(
    State(state): State<AppState>,
    actor: Actor,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Group>>> {
    let q = QueryParams::parse(raw.as_deref());
    let mut filter = GroupFilter::default();
    let mut errs = QueryErrors::default();
    // As Coder's query parser: known parameters only, single ones once.
    let mut keys: Vec<&str> = q.0.iter().map(|(k, _)| k.as_str()).collect();
    keys.dedup();
    for k in keys {
        let n = q.0.iter().filter(|(other, _)| other == k).count();
        match k {
            "group_ids" => {}
            "organization" | "has_member" if n > 1 => errs.add(
                k,
                format!(
                    "Query param {k:?} provided more than once, found {n} times. \
                     Only provide 1 instance of this query param."
                ),
            ),
            "organization" | "has_member" => {}
            _ => errs.add(k, format!("{k:?} is not a valid query param")),
        }
    }
    errs.finish()?;
    let mut errs = QueryErrors::default();
    if let Some(org) = q.get("organization").filter(|v| !v.is_empty()) {
        filter.organization_id = Some(resolve::organization(&state, &actor, org).await?.id);
    }
    if let Some(user) = q.get("has_member").filter(|v| !v.is_empty()) {
        filter.has_member = Some(resolve::user(&state, Some(&actor), user).await?.id);
    }
    if let Some(ids) = q.get("group_ids").filter(|v| !v.is_empty()) {
        for id in ids.split(',') {
            match Uuid::parse_str(id.trim()) {
                Ok(id) => filter.ids.push(id),
                Err(_) => errs.add("group_ids", format!("{id:?} is not a valid uuid")),
            }
        }
    }
    errs.finish()?;
    if !actor.can(Action::Read, Object::site(Resource::Group)) {
        filter.visible_orgs = Some(actor.memberships.keys().copied().collect());
    }
    let groups = state.store.list_groups(&filter).await?;
    Ok(ok(with_members(&state, groups).await?))
}

async fn get_one(State(state): State<AppState>, group: GroupParam) -> ApiResult<Json<Group>> {
    let g = group.allow(Action::Read)?;
    Ok(ok(one(&state, g).await?))
}

/// Parses user ids of a patch, each of which must be a member of `org`.
async fn member_ids(
    state: &AppState,
    org: Uuid,
    field: &str,
    raw: &[String],
) -> ApiResult<Vec<Uuid>> {
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let id = Uuid::parse_str(r).map_err(|e| {
            ApiError::bad_request(format!("Invalid UUID {r:?}.")).with_detail(e.to_string())
        })?;
        if field == "add_users" && state.store.membership(org, id).await.optional()?.is_none() {
            return Err(ApiError::bad_request(format!(
                "User {r:?} must be a member of the group's organization."
            )));
        }
        out.push(id);
    }
    Ok(out)
}

async fn patch(
    State(state): State<AppState>,
    group: GroupParam,
    Body(req): Body<PatchGroupRequest>,
) -> ApiResult<Json<Group>> {
    let g = group.allow(Action::Update)?;
    if g.is_everyone() {
        if !req.add_users.is_empty() || !req.remove_users.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Cannot add or remove users from the {EVERYONE:?} group."
            )));
        }
        if req
            .name
            .as_deref()
            .is_some_and(|n| !n.is_empty() && n != EVERYONE)
        {
            return Err(ApiError::bad_request(format!(
                "Cannot rename the {EVERYONE:?} group."
            )));
        }
    }
    let name = req
        .name
        .filter(|n| !n.is_empty() && *n != g.name)
        .unwrap_or_else(|| g.name.clone());
    if name != g.name {
        check_name(&name)?;
    }
    let quota = match req.quota_allowance {
        Some(q) => check_quota(q)?,
        None => g.quota_allowance,
    };
    let add = member_ids(&state, g.organization_id, "add_users", &req.add_users).await?;
    let remove = member_ids(&state, g.organization_id, "remove_users", &req.remove_users).await?;
    let updated = state
        .store
        .update_group(
            g.id,
            UpdateGroup {
                name: &name,
                display_name: req.display_name.as_deref().unwrap_or(&g.display_name),
                avatar_url: req.avatar_url.as_deref().unwrap_or(&g.avatar_url),
                quota_allowance: quota,
                add_users: &add,
                remove_users: &remove,
            },
        )
        .await
        .on_conflict("name", format!("A group named {name:?} already exists."))?;
    // Access changes in this process before the answer (crate::actors).
    for user in add.iter().chain(&remove) {
        state.actors.forget_user(*user);
    }
    Ok(ok(one(&state, updated).await?))
}

async fn delete(State(state): State<AppState>, group: GroupParam) -> ApiResult<Json<Group>> {
    let g = group.allow(Action::Delete)?;
    if g.is_everyone() {
        return Err(ApiError::bad_request(format!(
            "The {EVERYONE:?} group cannot be deleted."
        )));
    }
    let body = one(&state, g).await?;
    state.store.delete_group(body.id).await?;
    // Every member's access changed.
    state.actors.clear();
    Ok(ok(body))
}
