//! Users and password authentication: first user, login/logout, the user directory, roles,
//! status, profile and password.
//!
//! Longer than 800 lines on purpose: one resource's handlers and their route declarations
//! (about 130 lines of them), each short.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use coderd_db::StoreResultExt;
use coderd_db::{NewUser, StoreError, UserFilter};
use codersdk::{
    AssignableRoles, AuthMethod, AuthMethods, CreateFirstUserRequest, CreateFirstUserResponse,
    CreateUserRequest, GetUsersResponse, LoginWithPasswordRequest, LoginWithPasswordResponse,
    Organization, UpdateRoles, UpdateUserPasswordRequest, UpdateUserProfileRequest, User,
};
use uuid::Uuid;

use super::resolve;
use super::resolve::UserParam;
use super::routes::{Limit, Param, Routes};
use super::sessions::{issue_key, password_login, session_cookie};
use crate::auth::{hash_password, validate_password, verify_password};
use crate::authz::{site_role_permissions, Action, Actor, Object, Resource, SITE_ROLES};
use crate::http::error::{tag_detail, ApiError, ApiResult, ConflictExt};
use crate::http::json::{created, message, ok, Body, Json};
use crate::http::params::{parse_time, Pagination, QueryParams};
use crate::search;
use crate::state::AppState;
use crate::views::convert;

pub fn routes(r: &mut Routes) {
    r.get("/users/first", first_user_exists)
        .op(
            "Users",
            "check-initial-user-created",
            "Check initial user created",
        )
        .public()
        .ok::<codersdk::Response>(200);
    r.post("/users/first", create_first_user)
        .op("Users", "create-initial-user", "Create initial user")
        .public()
        .body::<codersdk::CreateFirstUserRequest>()
        .ok::<codersdk::CreateFirstUserResponse>(201);
    r.post("/users/login", login)
        .limit(Limit::Login)
        .op("Authorization", "log-in-user", "Log in user")
        .public()
        .body::<codersdk::LoginWithPasswordRequest>()
        .ok::<codersdk::LoginWithPasswordResponse>(201);
    r.post("/users/logout", logout)
        .op("Users", "log-out-user", "Log out user")
        .ok::<codersdk::Response>(200);
    r.get("/users/authmethods", auth_methods)
        .op(
            "Users",
            "get-authentication-methods",
            "Get authentication methods",
        )
        .public()
        .ok::<codersdk::AuthMethods>(200);
    r.get("/users", list_users)
        .op("Users", "get-users", "Get users")
        .query("q", Param::Str, "Search query")
        .query("after_id", Param::Uuid, "After ID")
        .query("limit", Param::Int, "Page limit")
        .query("offset", Param::Int, "Page offset")
        .ok::<codersdk::GetUsersResponse>(200);
    r.post("/users", create_user)
        .op("Users", "create-new-user", "Create new user")
        .body::<codersdk::CreateUserRequest>()
        .ok::<codersdk::User>(201);
    r.get("/users/roles", assignable_roles)
        .op("Members", "get-site-member-roles", "Get site member roles")
        .list::<codersdk::AssignableRoles>(200);
    r.get("/users/{user}", get_user)
        .op("Users", "get-user-by-name", "Get user by name")
        .ok::<codersdk::User>(200);
    r.delete("/users/{user}", delete_user)
        .op("Users", "delete-user", "Delete user")
        .empty(200);
    r.put("/users/{user}/status/suspend", suspend_user)
        .op("Users", "suspend-user-account", "Suspend user account")
        .ok::<codersdk::User>(200);
    r.put("/users/{user}/status/activate", activate_user)
        .op("Users", "activate-user-account", "Activate user account")
        .ok::<codersdk::User>(200);
    r.get("/users/{user}/roles", user_roles)
        .op("Users", "get-user-roles", "Get user roles")
        .ok::<codersdk::UserRoles>(200);
    r.put("/users/{user}/roles", update_roles)
        .op("Users", "assign-role-to-user", "Assign role to user")
        .body::<codersdk::UpdateRoles>()
        .ok::<codersdk::User>(200);
    r.put("/users/{user}/password", update_password)
        .limit(Limit::Login)
        .op("Users", "update-user-password", "Update user password")
        .body::<codersdk::UpdateUserPasswordRequest>()
        .empty(204);
    r.put("/users/{user}/profile", update_profile)
        .op("Users", "update-user-profile", "Update user profile")
        .body::<codersdk::UpdateUserProfileRequest>()
        .ok::<codersdk::User>(200);
    r.get("/users/{user}/quiet-hours", quiet_hours)
        .op(
            "Enterprise",
            "get-user-quiet-hours-schedule",
            "Get user quiet hours schedule",
        )
        .ok::<codersdk::UserQuietHoursScheduleResponse>(200);
    r.put("/users/{user}/quiet-hours", set_quiet_hours)
        .op(
            "Enterprise",
            "update-user-quiet-hours-schedule",
            "Update user quiet hours schedule",
        )
        .body::<codersdk::UpdateUserQuietHoursScheduleRequest>()
        .ok::<codersdk::UserQuietHoursScheduleResponse>(200);
    r.get("/users/{user}/organizations", user_organizations)
        .op(
            "Users",
            "get-organizations-by-user",
            "Get organizations by user",
        )
        .list::<codersdk::Organization>(200);
    r.get("/users/{user}/login-type", login_type)
        .op("Users", "get-user-login-type", "Get user login type")
        .ok::<codersdk::UserLoginType>(200);
    r.get("/users/{user}/autofill-parameters", autofill_parameters)
        .op(
            "Users",
            "get-autofill-build-parameters-for-user",
            "Get autofill build parameters for user",
        )
        .query("template_id", Param::Uuid, "Template ID")
        .list::<codersdk::UserParameter>(200);
    r.get("/users/{user}/appearance", appearance)
        .op(
            "Users",
            "get-user-appearance-settings",
            "Get user appearance settings",
        )
        .ok::<codersdk::UserAppearanceSettings>(200);
    r.put("/users/{user}/appearance", set_appearance)
        .op(
            "Users",
            "update-user-appearance-settings",
            "Update user appearance settings",
        )
        .body::<codersdk::UpdateUserAppearanceSettingsRequest>()
        .ok::<codersdk::UserAppearanceSettings>(200);
    r.get(
        "/users/{user}/organizations/{organizationname}",
        user_organization,
    )
    .op(
        "Users",
        "get-organization-by-user-and-organization-name",
        "Get organization by user and organization name",
    )
    .ok::<codersdk::Organization>(200);
}

/// Field-level checks of a new user's email and username.
fn validate_identity(email: &str, username: &str) -> ApiResult<()> {
    let mut err = ApiError::bad_request("Validation failed.");
    if email.is_empty() {
        err = err.with_validation("email", tag_detail("required", email));
    } else if !resolve::valid_email(email) {
        err = err.with_validation("email", tag_detail("email", email));
    }
    if username.is_empty() {
        err = err.with_validation("username", tag_detail("required", username));
    } else if !resolve::valid_name(username) || username.eq_ignore_ascii_case("me") {
        err = err.with_validation("username", tag_detail("username", username));
    }
    if err.body.validations.is_empty() {
        Ok(())
    } else {
        Err(err)
    }
}

/// The answer to a new user whose email or username is taken.
fn duplicate_user(e: StoreError) -> ApiError {
    ApiError::from(e)
        .on_constraint("users_email_lower_idx", "email", "User already exists.")
        .on_conflict("username", "User already exists.")
}

async fn first_user_exists(State(state): State<AppState>) -> ApiResult<Response> {
    if state.store.user_count().await? == 0 {
        return Ok(message(
            StatusCode::NOT_FOUND,
            "The initial user has not been created!",
        ));
    }
    Ok(message(
        StatusCode::OK,
        "The initial user has already been created!",
    ))
}

async fn create_first_user(
    State(state): State<AppState>,
    Body(req): Body<CreateFirstUserRequest>,
) -> ApiResult<Json<CreateFirstUserResponse>> {
    validate_identity(&req.email, &req.username)?;
    if req.password.is_empty() {
        return Err(ApiError::validation_tag("password", "required", ""));
    }
    if state.store.user_count().await? > 0 {
        return Err(ApiError::conflict(
            "The initial user has already been created.",
        ));
    }
    if let Err(e) = validate_password(&req.password) {
        return Err(
            ApiError::bad_request("Password not strong enough!").with_validation("password", e)
        );
    }
    let org = state.store.default_organization().await?;
    let hashed = hash_password(req.password).await?;
    let roles = vec!["owner".to_string()];
    let user = state
        .store
        .insert_first_user(NewUser {
            id: Uuid::new_v4(),
            email: &req.email,
            username: &req.username,
            name: &req.name,
            hashed_password: &hashed,
            login_type: "password",
            status: "active",
            rbac_roles: &roles,
            organization_ids: &[org.id],
        })
        .await
        .map_err(duplicate_user)?
        .ok_or_else(|| ApiError::conflict("The initial user has already been created."))?;
    Ok(created(CreateFirstUserResponse {
        user_id: user.id,
        organization_id: org.id,
    }))
}

async fn login(
    State(state): State<AppState>,
    client: crate::proxy::ClientIp,
    Body(req): Body<LoginWithPasswordRequest>,
) -> ApiResult<Response> {
    let user = password_login(&state, &req.email, &req.password).await?;
    let token = issue_key(
        &state,
        user.id,
        "password",
        state.config.session_duration,
        "",
        client,
    )
    .await?;
    let mut resp = created(LoginWithPasswordResponse {
        session_token: token.clone(),
    })
    .into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, &token, false));
    Ok(resp)
}

async fn logout(State(state): State<AppState>, actor: Actor) -> ApiResult<Response> {
    state
        .store
        .delete_session_keys(actor.user_id, &actor.key_id)
        .await?;
    // This process forgets at once; the others when the trigger's message reaches them.
    state.actors.forget_user(actor.user_id);
    let mut resp = message(StatusCode::OK, "Logged out!");
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", true));
    Ok(resp)
}

async fn auth_methods(State(state): State<AppState>) -> Json<AuthMethods> {
    ok(AuthMethods {
        password: AuthMethod {
            enabled: !state.config.disable_password_auth,
        },
        ..Default::default()
    })
}

async fn list_users(
    State(state): State<AppState>,
    actor: Actor,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<GetUsersResponse>> {
    let q = QueryParams::parse(raw.as_deref());
    let page = Pagination::parse(&q)?;
    let mut filter = UserFilter {
        after_id: page.after_id,
        limit: page.limit,
        offset: page.offset,
        ..Default::default()
    };
    let invalid = "Invalid user search query.";
    let mut bad = ApiError::bad_request(invalid);
    for term in search::parse(q.get("q").unwrap_or(""), invalid)? {
        let v = term.value;
        match term.key.as_deref() {
            None | Some("search") => filter.search = v,
            Some("status") => match v.as_str() {
                "active" | "dormant" | "suspended" => filter.status.push(v),
                _ => {
                    bad = bad.with_validation("status", format!("{v:?} is not a valid user status"))
                }
            },
            Some("role") => filter.role.push(v),
            Some("login_type") => filter.login_type.push(v),
            Some(
                k @ ("created_before" | "created_after" | "last_seen_before" | "last_seen_after"),
            ) => {
                let Some(t) = parse_time(&v) else {
                    bad = bad.with_validation(
                        k,
                        format!("Query param {k:?} must be a valid RFC 3339 time"),
                    );
                    continue;
                };
                match k {
                    "created_before" => filter.created_before = Some(t),
                    "created_after" => filter.created_after = Some(t),
                    "last_seen_before" => filter.last_seen_before = Some(t),
                    _ => filter.last_seen_after = Some(t),
                }
            }
            Some(k) => {
                bad =
                    bad.with_validation(k, format!("Query param {k:?} is not a valid query param"))
            }
        }
    }
    if !bad.body.validations.is_empty() {
        return Err(bad);
    }
    if !actor.can(Action::Read, Object::site(Resource::User)) {
        filter.only_user = Some(actor.user_id);
    }
    let (users, count) = state.store.list_users(&filter).await?;
    Ok(ok(GetUsersResponse {
        users: users.into_iter().map(convert::user).collect(),
        count,
    }))
}

async fn create_user(
    State(state): State<AppState>,
    actor: Actor,
    Body(req): Body<CreateUserRequest>,
) -> ApiResult<Json<User>> {
    if !actor.can(Action::Create, Object::site(Resource::User)) {
        return Err(ApiError::forbidden());
    }
    validate_identity(&req.email, &req.username)?;
    let login_type = if req.login_type.is_empty() {
        "password"
    } else {
        req.login_type.as_str()
    };
    if !matches!(login_type, "password" | "none") {
        return Err(
            ApiError::bad_request(format!("Unsupported login type {login_type:?}."))
                .with_validation(
                    "login_type",
                    "Only \"password\" and \"none\" are supported.",
                ),
        );
    }
    // codersdk.User's status is active or suspended on the wire, so users start active.
    let status = req
        .user_status
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("active");
    if status == "dormant" {
        return Err(
            ApiError::bad_request("Creating dormant users is not supported.")
                .with_validation("user_status", "Users are created \"active\"."),
        );
    }
    if status != "active" {
        return Err(ApiError::validation_tag("user_status", "oneof", status));
    }
    let hashed = if login_type == "password" {
        if req.password.is_empty() {
            return Err(
                ApiError::bad_request("Password is required for the password login type.")
                    .with_validation("password", tag_detail("required", "")),
            );
        }
        if let Err(e) = validate_password(&req.password) {
            return Err(
                ApiError::bad_request("Password not strong enough!").with_validation("password", e)
            );
        }
        hash_password(req.password).await?
    } else {
        if !req.password.is_empty() {
            return Err(ApiError::bad_request(
                "Password cannot be set for the \"none\" login type.",
            ));
        }
        String::new()
    };
    let mut orgs = req.organization_ids;
    if orgs.is_empty() {
        orgs.push(state.store.default_organization().await?.id);
    }
    for org in &orgs {
        if state
            .store
            .organization_by_id(*org)
            .await
            .optional()?
            .is_none()
        {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Organization does not exist with the provided id {org:?}."),
            ));
        }
    }
    orgs.sort();
    orgs.dedup();
    let user = state
        .store
        .insert_user(NewUser {
            id: Uuid::new_v4(),
            email: &req.email,
            username: &req.username,
            name: &req.name,
            hashed_password: &hashed,
            login_type,
            status,
            rbac_roles: &[],
            organization_ids: &orgs,
        })
        .await
        .map_err(duplicate_user)?;
    Ok(created(convert::user(user)))
}

async fn assignable_roles(actor: Actor) -> ApiResult<Json<Vec<AssignableRoles>>> {
    Ok(ok(SITE_ROLES
        .iter()
        .map(|(name, display)| AssignableRoles {
            name: name.to_string(),
            display_name: display.to_string(),
            organization_id: String::new(),
            site_permissions: site_role_permissions(name),
            organization_permissions: Vec::new(),
            organization_member_permissions: Vec::new(),
            user_permissions: Vec::new(),
            assignable: actor.can_assign(name, None),
            built_in: true,
        })
        .collect()))
}

async fn get_user(UserParam(u): UserParam) -> ApiResult<Json<User>> {
    Ok(ok(convert::user(u)))
}

/// `GET /users/{user}/roles`: the user, for those who may read their personal details (the
/// user, user admins, owners); 404 to others.
async fn user_roles(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
) -> ApiResult<Json<codersdk::UserRoles>> {
    if !actor.can(Action::ReadPersonal, Object::user(u.id)) {
        return Err(ApiError::not_found());
    }
    // Upstream answers codersdk.UserRoles here (the reference documents a User).
    let mut organization_roles = std::collections::BTreeMap::new();
    for org in &u.organization_ids {
        let m = state.store.membership(*org, u.id).await?;
        organization_roles.insert(*org, m.roles);
    }
    Ok(ok(codersdk::UserRoles {
        roles: u.rbac_roles,
        organization_roles,
    }))
}

async fn delete_user(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
) -> ApiResult<Response> {
    let u = resolve::allow_user(&actor, u, Action::Delete)?;
    if u.id == actor.user_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "You cannot delete yourself!",
        ));
    }
    if state.store.user_has_workspaces(u.id).await? {
        return Err(ApiError::new(
            StatusCode::EXPECTATION_FAILED,
            "You cannot remove a user that has workspaces. Delete their workspaces and try again!",
        ));
    }
    state.store.delete_user(u.id).await?;
    // Access ends in this process before the answer; in the others when the trigger's
    // message reaches them (crate::actors).
    state.actors.forget_user(u.id);
    Ok(message(StatusCode::OK, "User has been deleted!"))
}

async fn set_status(
    state: AppState,
    actor: Actor,
    u: coderd_db::UserRow,
    status: &str,
) -> ApiResult<Json<User>> {
    let u = resolve::allow_user(&actor, u, Action::Update)?;
    if status == "suspended" && u.id == actor.user_id {
        return Err(ApiError::bad_request("You cannot suspend yourself."));
    }
    if status == "suspended" && u.rbac_roles.iter().any(|r| r == "owner") && !actor.is_owner() {
        return Err(ApiError::bad_request(
            "You cannot suspend an owner unless you are an owner.",
        ));
    }
    let updated = state.store.update_user_status(u.id, status).await?;
    state.actors.forget_user(u.id);
    Ok(ok(convert::user(updated)))
}

async fn suspend_user(
    State(s): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
) -> ApiResult<Json<User>> {
    set_status(s, actor, u, "suspended").await
}

async fn activate_user(
    State(s): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
) -> ApiResult<Json<User>> {
    set_status(s, actor, u, "active").await
}

async fn update_roles(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
    Body(req): Body<UpdateRoles>,
) -> ApiResult<Json<User>> {
    if u.id == actor.user_id {
        return Err(ApiError::bad_request("You cannot change your own roles."));
    }
    // As upstream, where the implied `member` role always counts as assigned: only those who
    // may assign site roles at all may call this, even to change nothing.
    if !actor.can(Action::Create, Object::site(Resource::AssignRole)) {
        return Err(ApiError::forbidden());
    }
    let mut wanted: Vec<String> = Vec::new();
    for role in req.roles {
        if role == "member" {
            continue;
        }
        if !SITE_ROLES.iter().any(|(n, _)| *n == role) {
            return Err(ApiError::bad_request(format!("Invalid role {role:?}."))
                .with_detail(format!("{role:?} is not a built-in site role")));
        }
        if !wanted.contains(&role) {
            wanted.push(role);
        }
    }
    let changed = wanted
        .iter()
        .filter(|r| !u.rbac_roles.contains(r))
        .chain(u.rbac_roles.iter().filter(|r| !wanted.contains(r)));
    for role in changed {
        if !actor.can_assign(role, None) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Not authorized to assign role {role:?}."),
            ));
        }
    }
    let updated = state.store.update_user_roles(u.id, &wanted).await?;
    state.actors.forget_user(u.id);
    Ok(ok(convert::user(updated)))
}

async fn update_password(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
    Body(req): Body<UpdateUserPasswordRequest>,
) -> ApiResult<StatusCode> {
    let u = resolve::allow_user(&actor, u, Action::UpdatePersonal)?;
    if u.login_type != "password" {
        return Err(ApiError::bad_request(
            "Users without password login type cannot change their password.",
        ));
    }
    if req.password.is_empty() {
        return Err(ApiError::validation_tag("password", "required", ""));
    }
    if let Err(e) = validate_password(&req.password) {
        return Err(ApiError::bad_request("Invalid password.").with_validation("password", e));
    }
    let own = u.id == actor.user_id;
    if own {
        let current = Some(u.hashed_password.clone()).filter(|h| !h.is_empty());
        if req.old_password.is_empty() || !verify_password(req.old_password, current).await {
            return Err(ApiError::bad_request("Old password is incorrect.")
                .with_validation("old_password", "Old password is incorrect."));
        }
    } else if !actor.can(Action::Update, Object::user(u.id)) {
        return Err(ApiError::forbidden());
    }
    let hashed = hash_password(req.password).await?;
    let keep = own.then_some(actor.key_id.as_str());
    state
        .store
        .update_user_password(u.id, &hashed, keep)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update_profile(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
    Body(req): Body<UpdateUserProfileRequest>,
) -> ApiResult<Json<User>> {
    let u = resolve::allow_user(&actor, u, Action::UpdatePersonal)?;
    if req.username.is_empty() {
        return Err(ApiError::validation_tag("username", "required", ""));
    }
    if !resolve::valid_name(&req.username) || req.username.eq_ignore_ascii_case("me") {
        return Err(ApiError::validation_tag(
            "username",
            "username",
            &req.username,
        ));
    }
    if req.name.chars().count() > 128 {
        return Err(ApiError::validation_tag(
            "name",
            "user_real_name",
            &req.name,
        ));
    }
    let updated = state
        .store
        .update_user_profile(u.id, &req.username, req.name.trim())
        .await
        .on_conflict("username", "A user with this username already exists.")?;
    // The cached caller carries the username.
    state.actors.forget_user(u.id);
    Ok(ok(convert::user(updated)))
}

async fn user_organizations(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
) -> ApiResult<Json<Vec<Organization>>> {
    let orgs = state.store.list_organizations(Some(u.id)).await?;
    Ok(ok(orgs
        .into_iter()
        .filter(|o| actor.can(Action::Read, Object::in_org(Resource::Organization, o.id)))
        .map(convert::organization)
        .collect()))
}

async fn user_organization(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
    // By name only (an `{organization}` may be an id too), so looked up here.
    Path((_, org_name)): Path<(String, String)>,
) -> ApiResult<Json<Organization>> {
    let org = state.store.organization_by_name(&org_name).await?;
    if !actor.can(Action::Read, Object::in_org(Resource::Organization, org.id)) {
        return Err(ApiError::not_found());
    }
    match state.store.membership(org.id, u.id).await {
        Ok(_) => Ok(ok(convert::organization(org))),
        Err(e) => Err(e.into()),
    }
}

/// `codersdk.UserQuietHoursScheduleResponse` for a user's stored (or the default) schedule.
fn quiet_hours_response(raw: &str) -> ApiResult<codersdk::UserQuietHoursScheduleResponse> {
    let user_set = !raw.is_empty();
    let raw = if user_set {
        raw
    } else {
        coderd_db::schedule::DEFAULT_QUIET_HOURS
    };
    let s = coderd_db::schedule::parse_quiet_hours(raw)
        .map_err(|e| ApiError::internal("Reading quiet hours", e))?;
    // A daily schedule always has a next occurrence.
    let next = s
        .next(Utc::now())
        .ok_or_else(|| ApiError::internal("Reading quiet hours", "schedule never fires"))?;
    Ok(codersdk::UserQuietHoursScheduleResponse {
        raw_schedule: s.to_string(),
        user_set,
        user_can_set: true,
        time: s.time_of_day(),
        timezone: s.time_zone().name().to_string(),
        next,
    })
}

async fn quiet_hours(
    State(state): State<AppState>,
    UserParam(u): UserParam,
) -> ApiResult<Json<codersdk::UserQuietHoursScheduleResponse>> {
    Ok(ok(quiet_hours_response(
        &state.store.quiet_hours(u.id).await?,
    )?))
}

async fn set_quiet_hours(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
    Body(req): Body<codersdk::UpdateUserQuietHoursScheduleRequest>,
) -> ApiResult<Json<codersdk::UserQuietHoursScheduleResponse>> {
    let u = resolve::allow_user(&actor, u, Action::UpdatePersonal)?;
    let stored = if req.schedule.is_empty() {
        String::new()
    } else {
        coderd_db::schedule::parse_quiet_hours(&req.schedule)
            .map_err(|e| {
                ApiError::bad_request("Invalid quiet hours schedule.")
                    .with_validation("schedule", e)
            })?
            .to_string()
    };
    state.store.set_quiet_hours(u.id, &stored).await?;
    Ok(ok(quiet_hours_response(&stored)?))
}

/// `GET /users/{user}/login-type`: how the user signs in.
async fn login_type(UserParam(u): UserParam) -> ApiResult<Json<codersdk::UserLoginType>> {
    Ok(ok(codersdk::UserLoginType {
        login_type: u.login_type,
    }))
}

/// `GET /users/{user}/autofill-parameters?template_id=`: the values the user last gave the
/// template's parameters, to prefill a new workspace's form.
async fn autofill_parameters(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<codersdk::UserParameter>>> {
    let q = QueryParams::parse(raw.as_deref());
    let mut errs = crate::http::params::QueryErrors::default();
    let template = match q.get("template_id").filter(|v| !v.is_empty()) {
        None => {
            errs.add(
                "template_id",
                "Query param \"template_id\" is required and cannot be empty",
            );
            None
        }
        Some(v) => match Uuid::parse_str(v) {
            Ok(id) => Some(id),
            Err(_) => {
                errs.add(
                    "template_id",
                    "Query param \"template_id\" must be a valid uuid",
                );
                None
            }
        },
    };
    for (k, _) in &q.0 {
        if k != "template_id" {
            errs.add(k, format!("{k:?} is not a valid query param"));
        }
    }
    errs.finish().map_err(|mut e| {
        e.body.message = "Invalid query parameters.".into();
        e
    })?;
    let Some(template) = template else {
        return Err(ApiError::bad_request("Invalid query parameters."));
    };
    // Only whoever may read the user's workspaces learns what they typed into them.
    if !actor.can(Action::Read, Object::owned_by(Resource::Workspace, u.id)) {
        return Err(ApiError::not_found());
    }
    let values = state.store.autofill_parameters(u.id, template).await?;
    Ok(ok(values
        .into_iter()
        .map(|(name, value)| codersdk::UserParameter { name, value })
        .collect()))
}

/// The terminal fonts the web terminal knows (`""` is its default).
const TERMINAL_FONTS: [&str; 5] = [
    "",
    "ibm-plex-mono",
    "fira-code",
    "source-code-pro",
    "jetbrains-mono",
];

async fn appearance(
    State(state): State<AppState>,
    UserParam(u): UserParam,
) -> ApiResult<Json<codersdk::UserAppearanceSettings>> {
    let (theme_preference, terminal_font) = state.store.appearance(u.id).await?;
    Ok(ok(codersdk::UserAppearanceSettings {
        theme_preference,
        terminal_font,
    }))
}

async fn set_appearance(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
    Body(req): Body<codersdk::UpdateUserAppearanceSettingsRequest>,
) -> ApiResult<Json<codersdk::UserAppearanceSettings>> {
    let u = resolve::allow_user(&actor, u, Action::UpdatePersonal)?;
    if !TERMINAL_FONTS.contains(&req.terminal_font.as_str()) {
        return Err(ApiError::bad_request("Unsupported font family."));
    }
    state
        .store
        .set_appearance(u.id, &req.theme_preference, &req.terminal_font)
        .await?;
    Ok(ok(codersdk::UserAppearanceSettings {
        theme_preference: req.theme_preference,
        terminal_font: req.terminal_font,
    }))
}
