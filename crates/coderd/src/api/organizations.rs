//! Organizations and their members.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use coderd_db::{MemberWithUserRow, NewOrganization, StoreError, StoreResultExt};
use codersdk::{
    AssignableRoles, CreateOrganizationRequest, Organization, OrganizationMember,
    OrganizationMemberWithUserData, UpdateOrganizationRequest, UpdateRoles,
};

use super::resolve;
use super::resolve::OrgParam;
use super::routes::Routes;
use crate::authz::{Action, Actor, Object, Resource, ORG_ROLES};
use crate::http::error::{ApiError, ApiResult, ConflictExt};
use crate::http::json::{created, message, ok, Body, Json};
use crate::state::AppState;
use crate::views::convert;

pub fn routes(r: &mut Routes) {
    r.get("/organizations", list)
        .op("Organizations", "get-organizations", "Get organizations")
        .list::<codersdk::Organization>(200);
    r.post("/organizations", create)
        .op(
            "Organizations",
            "create-organization",
            "Create organization",
        )
        .body::<codersdk::CreateOrganizationRequest>()
        .ok::<codersdk::Organization>(201);
    r.get("/organizations/{organization}", get_one)
        .op(
            "Organizations",
            "get-organization-by-id",
            "Get organization by ID",
        )
        .ok::<codersdk::Organization>(200);
    r.patch("/organizations/{organization}", update)
        .op(
            "Organizations",
            "update-organization",
            "Update organization",
        )
        .body::<codersdk::UpdateOrganizationRequest>()
        .ok::<codersdk::Organization>(200);
    r.delete("/organizations/{organization}", delete)
        .op(
            "Organizations",
            "delete-organization",
            "Delete organization",
        )
        .ok::<codersdk::Response>(200);
    r.get("/organizations/{organization}/members", members)
        .op(
            "Members",
            "list-organization-members",
            "List organization members",
        )
        .list::<codersdk::OrganizationMemberWithUserData>(200);
    r.get(
        "/organizations/{organization}/members/roles",
        assignable_member_roles,
    )
    .op(
        "Members",
        "get-member-roles-by-organization",
        "Get member roles by organization",
    )
    .list::<codersdk::AssignableRoles>(200);
    r.get("/organizations/{organization}/members/{user}", member)
        .op(
            "Members",
            "get-organization-member",
            "Get organization member",
        )
        .ok::<codersdk::OrganizationMemberWithUserData>(200);
    r.post("/organizations/{organization}/members/{user}", add_member)
        .op(
            "Members",
            "add-organization-member",
            "Add organization member",
        )
        .ok::<codersdk::OrganizationMember>(200);
    r.delete(
        "/organizations/{organization}/members/{user}",
        remove_member,
    )
    .op(
        "Members",
        "remove-organization-member",
        "Remove organization member",
    )
    .empty(204);
    r.put(
        "/organizations/{organization}/members/{user}/roles",
        update_member_roles,
    )
    .op(
        "Members",
        "assign-role-to-organization-member",
        "Assign role to organization member",
    )
    .body::<codersdk::UpdateRoles>()
    .ok::<codersdk::OrganizationMember>(200);
}

async fn list(State(state): State<AppState>, actor: Actor) -> ApiResult<Json<Vec<Organization>>> {
    let all = actor.can(Action::Read, Object::site(Resource::Organization));
    let rows = state
        .store
        .list_organizations((!all).then_some(actor.user_id))
        .await?;
    Ok(ok(rows.into_iter().map(convert::organization).collect()))
}

async fn create(
    State(state): State<AppState>,
    actor: Actor,
    Body(req): Body<CreateOrganizationRequest>,
) -> ApiResult<Json<Organization>> {
    if !actor.can(Action::Create, Object::site(Resource::Organization)) {
        return Err(ApiError::forbidden());
    }
    if !resolve::valid_name(&req.name) {
        let tag = if req.name.is_empty() {
            "required"
        } else {
            "organization_name"
        };
        return Err(ApiError::validation_tag("name", tag, &req.name));
    }
    let display = if req.display_name.is_empty() {
        &req.name
    } else {
        &req.display_name
    };
    let org = state
        .store
        .insert_organization(NewOrganization {
            name: &req.name,
            display_name: display,
            description: &req.description,
            icon: &req.icon,
            creator: actor.user_id,
        })
        .await
        .on_conflict(
            "name",
            format!("Organization already exists with the name {:?}.", req.name),
        )?;
    Ok(created(convert::organization(org)))
}

async fn get_one(OrgParam { org, .. }: OrgParam) -> ApiResult<Json<Organization>> {
    Ok(ok(convert::organization(org)))
}

async fn update(
    State(state): State<AppState>,
    organization: OrgParam,
    Body(req): Body<UpdateOrganizationRequest>,
) -> ApiResult<Json<Organization>> {
    let org = organization.allow(Resource::Organization, Action::Update)?;
    let name = req
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| org.name.clone());
    if name != org.name {
        if org.is_default {
            return Err(ApiError::bad_request(
                "Default organization name cannot be changed.",
            ));
        }
        if !resolve::valid_name(&name) {
            return Err(ApiError::validation_tag("name", "organization_name", &name));
        }
    }
    let display = req
        .display_name
        .filter(|d| !d.is_empty())
        .unwrap_or(org.display_name);
    let description = req.description.unwrap_or(org.description);
    let icon = req.icon.unwrap_or(org.icon);
    let updated = state
        .store
        .update_organization(org.id, &name, &display, &description, &icon)
        .await
        .on_conflict(
            "name",
            format!("Organization already exists with the name {name:?}."),
        )?;
    Ok(ok(convert::organization(updated)))
}

async fn delete(State(state): State<AppState>, organization: OrgParam) -> ApiResult<Response> {
    let org = organization.allow(Resource::Organization, Action::Delete)?;
    if org.is_default {
        return Err(ApiError::bad_request(
            "Default organization cannot be deleted.",
        ));
    }
    state.store.delete_organization(org.id).await?;
    // Every member's access changed.
    state.actors.clear();
    Ok(message(StatusCode::OK, "Organization deleted."))
}

async fn members(
    State(state): State<AppState>,
    organization: OrgParam,
) -> ApiResult<Json<Vec<OrganizationMemberWithUserData>>> {
    let org = organization.allow(Resource::OrganizationMember, Action::Read)?;
    let rows = state.store.list_members(org.id).await?;
    Ok(ok(rows
        .into_iter()
        .map(|r| member_with_user(org.id, r))
        .collect()))
}

fn member_with_user(org: uuid::Uuid, r: MemberWithUserRow) -> OrganizationMemberWithUserData {
    OrganizationMemberWithUserData {
        user_id: r.user.id,
        organization_id: org,
        created_at: r.membership.created_at,
        updated_at: r.membership.updated_at,
        roles: convert::org_roles(&r.membership),
        global_roles: convert::site_roles(&r.user.rbac_roles),
        username: r.user.username,
        name: r.user.name,
        avatar_url: r.user.avatar_url,
        email: r.user.email,
    }
}

/// `GET /organizations/{organization}/members/{user}`: one member, as the list shows them.
async fn member(
    State(state): State<AppState>,
    actor: Actor,
    organization: OrgParam,
    // The user is resolved once the action on the members is allowed (403 before 400).
    Path((_, user)): Path<(String, String)>,
) -> ApiResult<Json<OrganizationMemberWithUserData>> {
    let org = organization.allow(Resource::OrganizationMember, Action::Read)?;
    let user = resolve::user(&state, Some(&actor), &user).await?;
    let membership = state.store.membership(org.id, user.id).await?;
    Ok(ok(member_with_user(
        org.id,
        MemberWithUserRow { membership, user },
    )))
}

/// `GET /organizations/{organization}/members/roles`: the organization's built-in roles
/// (`organization-member` is implied), each saying whether the caller may assign it.
async fn assignable_member_roles(
    actor: Actor,
    OrgParam { org, .. }: OrgParam,
) -> ApiResult<Json<Vec<AssignableRoles>>> {
    if !actor.can(
        Action::Read,
        Object::in_org(Resource::AssignOrgRole, org.id),
    ) {
        return Err(ApiError::not_found());
    }
    Ok(ok(ORG_ROLES
        .iter()
        .map(|(name, display)| AssignableRoles {
            name: name.to_string(),
            display_name: display.to_string(),
            organization_id: org.id.to_string(),
            site_permissions: Vec::new(),
            organization_permissions: Vec::new(),
            organization_member_permissions: Vec::new(),
            user_permissions: Vec::new(),
            assignable: actor.can_assign(name, Some(org.id)),
            built_in: true,
        })
        .collect()))
}

async fn add_member(
    State(state): State<AppState>,
    actor: Actor,
    organization: OrgParam,
    // The user is resolved once the action on the members is allowed (403 before 400).
    Path((_, user)): Path<(String, String)>,
) -> ApiResult<Json<OrganizationMember>> {
    let org = organization.allow(Resource::OrganizationMember, Action::Create)?;
    let u = resolve::user(&state, Some(&actor), &user).await?;
    let m = state
        .store
        .insert_member(org.id, u.id)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                ApiError::conflict("User is already an organization member.")
            }
            e => e.into(),
        })?;
    // Access changes in this process before the answer; in the others when the trigger's
    // message reaches them (crate::actors).
    state.actors.forget_user(u.id);
    Ok(ok(convert::member(u.id, &m)))
}

fn not_a_member() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "User is not a member of this organization.",
    )
}

async fn remove_member(
    State(state): State<AppState>,
    actor: Actor,
    organization: OrgParam,
    // The user is resolved once the action on the members is allowed (403 before 400).
    Path((_, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org = organization.allow(Resource::OrganizationMember, Action::Delete)?;
    let u = resolve::user(&state, Some(&actor), &user).await?;
    state
        .store
        .delete_member(org.id, u.id)
        .await
        .optional()?
        .ok_or_else(not_a_member)?;
    state.actors.forget_user(u.id);
    Ok(StatusCode::NO_CONTENT)
}

async fn update_member_roles(
    State(state): State<AppState>,
    actor: Actor,
    organization: OrgParam,
    // The user is resolved once the action on the members is allowed (403 before 400).
    Path((_, user)): Path<(String, String)>,
    Body(req): Body<UpdateRoles>,
) -> ApiResult<Json<OrganizationMember>> {
    let org = organization.allow(Resource::OrganizationMember, Action::Read)?;
    let u = resolve::user(&state, Some(&actor), &user).await?;
    if u.id == actor.user_id {
        return Err(ApiError::bad_request(
            "You cannot change your own organization roles.",
        ));
    }
    let current = state
        .store
        .membership(org.id, u.id)
        .await
        .optional()?
        .ok_or_else(not_a_member)?;
    // As upstream, where the implied `organization-member` role always counts as assigned:
    // only those who may assign roles in this organization may call this, even to change
    // nothing.
    if !actor.can(
        Action::Create,
        Object::in_org(Resource::AssignOrgRole, org.id),
    ) {
        return Err(ApiError::forbidden());
    }
    let mut wanted: Vec<String> = Vec::new();
    for role in req.roles {
        if role == "organization-member" {
            continue;
        }
        if !ORG_ROLES.iter().any(|(n, _)| *n == role) {
            return Err(ApiError::bad_request(format!("Invalid role {role:?}."))
                .with_detail(format!("{role:?} is not a built-in organization role")));
        }
        if !wanted.contains(&role) {
            wanted.push(role);
        }
    }
    let changed = wanted
        .iter()
        .filter(|r| !current.roles.contains(r))
        .chain(current.roles.iter().filter(|r| !wanted.contains(r)));
    for role in changed {
        if !actor.can_assign(role, Some(org.id)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Not authorized to assign role {role:?}."),
            ));
        }
    }
    let m = state
        .store
        .update_member_roles(org.id, u.id, &wanted)
        .await?;
    state.actors.forget_user(u.id);
    Ok(ok(convert::member(u.id, &m)))
}
