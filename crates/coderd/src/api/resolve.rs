//! The objects a URL names, loaded and authorized once, as upstream's `httpmw` parameter
//! middleware does: typed extractors for `{user}`, `{organization}`, `{workspace}`,
//! `{workspaceagent}`, `{workspacebuild}`, `{template}`, `{templatename}`,
//! `{templateversion}` and its dry runs, `{group}`, `{groupName}`, `{fileID}` and an
//! organization's provisioner `{job}`; loader functions for ids that come from elsewhere (a
//! row, a body, a query); and the name rules.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use coderd_db::{
    BuildRow, FileRow, GroupRow, JobRow, OrganizationRow, StoreResultExt, TemplateRow,
    TemplateVisibility, UserRow, VersionRow, WorkspaceRow,
};
use uuid::Uuid;

use crate::authz::{Action, Actor, Object, Resource};
use crate::http::error::{ApiError, ApiResult};
use crate::http::params::parse_uuid;
use crate::state::AppState;
use crate::views::jobs::input_uuid;

/// `{user}`: `me`, a UUID, or a username (case-insensitive). Unknown users answer 400, as
/// Coder's does; existence is not hidden, handlers authorize afterwards.
pub async fn user(state: &AppState, actor: Option<&Actor>, raw: &str) -> ApiResult<UserRow> {
    let found = if raw == "me" {
        let Some(actor) = actor else {
            return Err(ApiError::bad_request(
                "Cannot use \"me\" without a valid session.",
            ));
        };
        state.store.user_by_id(actor.user_id).await
    } else if let Ok(id) = Uuid::parse_str(raw) {
        state.store.user_by_id(id).await
    } else {
        state.store.user_by_username_or_email(raw).await
    };
    found.optional()?.ok_or_else(|| no_such_user(raw))
}

/// `{user}` that the actor must be allowed to read. One they may not read answers as one that
/// does not exist (upstream's 400), so that the answer tells nothing about who exists.
pub async fn readable_user(state: &AppState, actor: &Actor, raw: &str) -> ApiResult<UserRow> {
    let u = user(state, Some(actor), raw).await?;
    if !actor.can(Action::Read, Object::user(u.id)) {
        return Err(no_such_user(raw));
    }
    Ok(u)
}

/// The `{user}` ([`UserParam`]: readable already), if the caller may take `action` on it: 403
/// otherwise.
pub fn allow_user(actor: &Actor, u: UserRow, action: Action) -> ApiResult<UserRow> {
    if !actor.can(action, Object::user(u.id)) {
        return Err(ApiError::forbidden());
    }
    Ok(u)
}

pub fn no_such_user(raw: &str) -> ApiError {
    ApiError::bad_request("\"user\" must be an existing uuid or username.")
        .with_detail(format!("queried user={raw:?}"))
}

/// `{organization}`: a UUID or a name, readable by the actor (404 otherwise).
pub async fn organization(
    state: &AppState,
    actor: &Actor,
    raw: &str,
) -> ApiResult<OrganizationRow> {
    let org = match Uuid::parse_str(raw) {
        Ok(id) => state.store.organization_by_id(id).await,
        Err(_) => state.store.organization_by_name(raw).await,
    }?;
    if !actor.can(Action::Read, Object::in_org(Resource::Organization, org.id)) {
        return Err(ApiError::not_found());
    }
    Ok(org)
}

/// Coder's name rule (usernames, organization and group names): letters and digits in groups
/// joined by single hyphens, at most 32 characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A plausible email address: something@domain.tld without spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace())
        && !domain.contains('@')
}

/// A readable random name, like Coder's `adjective_scientist` (tokens, template versions).
pub fn random_name() -> String {
    const ADJ: &[&str] = &[
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "proud", "quiet", "swift", "witty",
    ];
    const NAME: &[&str] = &[
        "babbage", "curie", "dijkstra", "euler", "fermat", "gauss", "hopper", "kepler", "lovelace",
        "noether", "pascal", "ritchie", "turing", "wozniak",
    ];
    use rand::Rng;
    let mut rng = rand::thread_rng();
    format!(
        "{}_{}{}",
        ADJ[rng.gen_range(0..ADJ.len())],
        NAME[rng.gen_range(0..NAME.len())],
        rng.gen_range(0..100)
    )
}

/// Coder's template version name rule: words of letters and digits joined by single `_`,
/// `.` or `-`, at most 64 characters.
pub fn valid_version_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .split(['_', '.', '-'])
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The `{workspace}` of the path, loaded with its template and readable by the caller: 404
/// otherwise, so that nobody learns it exists. The handler then asks for the action it needs
/// ([`WorkspaceParam::allow`]), which answers 410 for a deleted workspace and 403 for an action
/// the caller may not take, as upstream's workspace parameter middleware does.
pub struct WorkspaceParam {
    pub workspace: WorkspaceRow,
    pub template: TemplateRow,
    actor: Actor,
}

impl FromRequestParts<AppState> for WorkspaceParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let params = path_params(parts, state).await?;
        let raw = params.get("workspace").map(String::as_str).unwrap_or("");
        WorkspaceParam::load(state, actor, parse_uuid(raw)?).await
    }
}

impl WorkspaceParam {
    /// Workspace `id` and its template, readable by `actor` (404 otherwise).
    async fn load(state: &AppState, actor: Actor, id: Uuid) -> ApiResult<Self> {
        let workspace = state.store.workspace(id).await?;
        if !may(&actor, &workspace, Action::Read) {
            return Err(ApiError::not_found());
        }
        let template = state
            .store
            .templates_by_ids(&[workspace.template_id])
            .await?
            .pop()
            .ok_or_else(|| ApiError::internal("Reading a workspace", "its template is missing"))?;
        Ok(WorkspaceParam {
            workspace,
            template,
            actor,
        })
    }

    /// The workspace and its template, if the caller may take `action` on it and it is not
    /// deleted.
    pub fn allow(self, action: Action) -> ApiResult<(WorkspaceRow, TemplateRow)> {
        check_workspace(&self.actor, &self.workspace, action, Deleted::Gone)?;
        Ok((self.workspace, self.template))
    }

    /// As [`WorkspaceParam::allow`], deleted workspaces included.
    pub fn allow_deleted(self, action: Action) -> ApiResult<(WorkspaceRow, TemplateRow)> {
        check_workspace(&self.actor, &self.workspace, action, Deleted::Included)?;
        Ok((self.workspace, self.template))
    }
}

/// The `{workspaceagent}` of the path (400 for an id that is no UUID, 404 for no such agent)
/// and its workspace, readable by the caller (404 otherwise), as upstream's
/// `workspaceagentparam.go` and the workspace's authorization decide; the handler then asks
/// for the action it needs on the workspace ([`AgentParam::workspace`]).
pub struct AgentParam {
    pub agent_id: Uuid,
    pub workspace: WorkspaceParam,
}

impl FromRequestParts<AppState> for AgentParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let params = path_params(parts, state).await?;
        let raw = params
            .get("workspaceagent")
            .map(String::as_str)
            .unwrap_or("");
        let agent_id = parse_uuid(raw)?;
        let workspace_id = state.store.workspace_of_agent(agent_id).await?;
        Ok(AgentParam {
            agent_id,
            workspace: WorkspaceParam::load(state, actor, workspace_id).await?,
        })
    }
}

/// What a deleted workspace answers: 410 (`Gone`), or what a live one would (`Included`, as
/// `?include_deleted=true` asks and as a build, an agent or a watch of it always does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Gone,
    Included,
}

impl Deleted {
    /// `Included` when `include` (a parsed `?include_deleted=`), `Gone` otherwise.
    pub fn included_if(include: bool) -> Deleted {
        if include {
            Deleted::Included
        } else {
            Deleted::Gone
        }
    }
}

/// Workspace `id` (one that a row, not the path, names: the path's is a [`WorkspaceParam`])
/// and its template, checked for `action`: 404 unreadable, 403 read-only, 410 deleted (unless
/// `Deleted::Included`).
pub async fn workspace_for(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
    action: Action,
    deleted: Deleted,
) -> ApiResult<(WorkspaceRow, TemplateRow)> {
    let w = state.store.workspace(id).await?;
    check_workspace(actor, &w, action, deleted)?;
    let t = state
        .store
        .templates_by_ids(&[w.template_id])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("Reading a workspace", "its template is missing"))?;
    Ok((w, t))
}

/// Whether `actor` may do `action` to workspace `w`: 404 unreadable, 403 read-only, 410
/// deleted (unless `Deleted::Included`).
pub fn check_workspace(
    actor: &Actor,
    w: &WorkspaceRow,
    action: Action,
    deleted: Deleted,
) -> ApiResult<()> {
    if !may(actor, w, Action::Read) {
        return Err(ApiError::not_found());
    }
    if w.deleted && deleted == Deleted::Gone {
        return Err(ApiError::new(
            StatusCode::GONE,
            format!(
                "Workspace {:?} was deleted, you can view this workspace by specifying '?include_deleted=true' and trying again.",
                w.id.to_string()
            ),
        ));
    }
    if !may(actor, w, action) {
        return Err(ApiError::forbidden());
    }
    Ok(())
}

/// Whether `actor` may do `action` to the workspace `w` (roles and the workspace's ACL).
pub fn may(actor: &Actor, w: &WorkspaceRow, action: Action) -> bool {
    actor.can_workspace(
        action,
        w.organization_id,
        w.owner_id,
        &w.user_acl.0,
        &w.group_acl.0,
    )
}

/// Whether `actor` may do `action` to a version: through its template, or (before it joins a
/// template) as a template author of its organization or its creator.
pub fn version_allowed(
    actor: &Actor,
    action: Action,
    v: &VersionRow,
    t: Option<&TemplateRow>,
) -> bool {
    match t {
        Some(t) => actor.can_template(action, t.organization_id, &t.user_acl.0, &t.group_acl.0),
        None => {
            let authors = actor.can(
                Action::Create,
                Object::in_org(Resource::Template, v.organization_id),
            );
            authors || (action == Action::Read && v.created_by == actor.user_id)
        }
    }
}

/// The `{templateversion}` of the path, checked for `action`: 404 unreadable, 403 read-only.
async fn version_for(
    state: &AppState,
    actor: &Actor,
    raw: &str,
    action: Action,
) -> ApiResult<(VersionRow, Option<TemplateRow>)> {
    let v = state.store.version(parse_uuid(raw)?).await?;
    let t = match v.template_id {
        Some(id) => Some(state.store.template(id).await?),
        None => None,
    };
    if !version_allowed(actor, Action::Read, &v, t.as_ref()) {
        return Err(ApiError::not_found());
    }
    if !version_allowed(actor, action, &v, t.as_ref()) {
        return Err(ApiError::forbidden());
    }
    Ok((v, t))
}

/// The `{templateversion}` of the path with its template, loaded and readable by the caller
/// (404 otherwise); the handler then asks for the action it needs
/// ([`VersionParam::allow`]: 403 without it).
pub struct VersionParam {
    pub version: VersionRow,
    pub template: Option<TemplateRow>,
    actor: Actor,
}

impl FromRequestParts<AppState> for VersionParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let params = path_params(parts, state).await?;
        let raw = params
            .get("templateversion")
            .map(String::as_str)
            .unwrap_or("");
        let (version, template) = version_for(state, &actor, raw, Action::Read).await?;
        Ok(VersionParam {
            version,
            template,
            actor,
        })
    }
}

impl VersionParam {
    /// The version and its template, if the caller may take `action` on it.
    pub fn allow(self, action: Action) -> ApiResult<(VersionRow, Option<TemplateRow>)> {
        if !version_allowed(&self.actor, action, &self.version, self.template.as_ref()) {
            return Err(ApiError::forbidden());
        }
        Ok((self.version, self.template))
    }
}

/// The dry-run job `{jobID}` of the path's `{templateversion}` (readable, as
/// [`VersionParam`] decides), as upstream's handler decides: a job id that is no UUID answers
/// 400, a job that does not exist 404; one that is not a dry run of this version, or whose
/// initiator's workspaces (in the version's organization) the caller may not read, 403.
pub struct DryRunParam(pub JobRow);

impl FromRequestParts<AppState> for DryRunParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let (v, _) = VersionParam::from_request_parts(parts, state)
            .await?
            .allow(Action::Read)?;
        let params = path_params(parts, state).await?;
        let raw = params.get("jobID").map(String::as_str).unwrap_or("");
        let job_id = Uuid::parse_str(raw)
            .map_err(|_| ApiError::bad_request(format!("Job ID {raw:?} must be a valid UUID.")))?;
        let job = state.store.job(job_id).await.optional()?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Provisioner job {:?} not found.", job_id.to_string()),
            )
        })?;
        let initiators_workspaces = Object {
            resource: Resource::Workspace,
            org: Some(v.organization_id),
            owner: Some(job.initiator_id),
        };
        let allowed = job.job_type == "template_version_dry_run"
            && actor.can(Action::Read, initiators_workspaces)
            && input_uuid(&job, "template_version_id") == Some(v.id);
        if !allowed {
            return Err(ApiError::forbidden());
        }
        Ok(DryRunParam(job))
    }
}

/// The `{group}` of the path, readable by the caller: 400 for an id that is no UUID, 404 for a
/// group that does not exist or that they may not read (upstream's `groupparam.go`); the
/// handler then asks for the action it needs ([`GroupParam::allow`]: 403 without it).
pub struct GroupParam {
    pub group: GroupRow,
    actor: Actor,
}

impl FromRequestParts<AppState> for GroupParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let params = path_params(parts, state).await?;
        let raw = params.get("group").map(String::as_str).unwrap_or("");
        let group = state.store.group(parse_uuid(raw)?).await?;
        let param = GroupParam { group, actor };
        if !param.may(Action::Read) {
            return Err(ApiError::not_found());
        }
        Ok(param)
    }
}

impl GroupParam {
    fn may(&self, action: Action) -> bool {
        self.actor.can(
            action,
            Object::in_org(Resource::Group, self.group.organization_id),
        )
    }

    /// The group, if the caller may take `action` on it.
    pub fn allow(self, action: Action) -> ApiResult<GroupRow> {
        if !self.may(action) {
            return Err(ApiError::forbidden());
        }
        Ok(self.group)
    }
}

/// The `{groupName}` of the path's `{organization}`: 404 for an organization the caller may
/// not read, 403 when they may not read its groups, 404 for no such group.
pub struct GroupByNameParam(pub GroupRow);

impl FromRequestParts<AppState> for GroupByNameParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let org = OrgParam::from_request_parts(parts, state)
            .await?
            .allow(Resource::Group, Action::Read)?;
        let params = path_params(parts, state).await?;
        let name = params.get("groupName").map(String::as_str).unwrap_or("");
        Ok(GroupByNameParam(
            state.store.group_by_name(org.id, name).await?,
        ))
    }
}

/// The `{fileID}` of the path, readable by the caller: 400 for an id that is no UUID, 404 for
/// a file that does not exist or that they may not read.
pub struct FileParam(pub FileRow);

impl FromRequestParts<AppState> for FileParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let params = path_params(parts, state).await?;
        let raw = params.get("fileID").map(String::as_str).unwrap_or("");
        let file = state.store.file(parse_uuid(raw)?).await?;
        if !actor.can(
            Action::Read,
            Object::owned_by(Resource::File, file.created_by),
        ) {
            return Err(ApiError::not_found());
        }
        Ok(FileParam(file))
    }
}

/// The `{workspacebuild}` of the path with its workspace and template, the workspace readable
/// by the caller (404 otherwise); the handler then asks for the action it needs on the
/// workspace ([`BuildParam::allow`]: 403 without it; deleted workspaces' builds stay readable).
pub struct BuildParam {
    pub build: BuildRow,
    workspace: WorkspaceParam,
}

impl FromRequestParts<AppState> for BuildParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let params = path_params(parts, state).await?;
        let raw = params
            .get("workspacebuild")
            .map(String::as_str)
            .unwrap_or("");
        let build = state.store.build(parse_uuid(raw)?).await?;
        let (workspace, template) = workspace_for(
            state,
            &actor,
            build.workspace_id,
            Action::Read,
            Deleted::Included,
        )
        .await?;
        Ok(BuildParam {
            build,
            workspace: WorkspaceParam {
                workspace,
                template,
                actor,
            },
        })
    }
}

impl BuildParam {
    /// The build, its workspace and template, if the caller may take `action` on the
    /// workspace.
    pub fn allow(self, action: Action) -> ApiResult<(BuildRow, WorkspaceRow, TemplateRow)> {
        let (w, t) = self.workspace.allow_deleted(action)?;
        Ok((self.build, w, t))
    }
}

/// The `{user}` of the path, readable by the caller ([`readable_user`]: one they may not read
/// answers as one that does not exist), loaded before the handler runs.
pub struct UserParam(pub UserRow);

impl FromRequestParts<AppState> for UserParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let params = path_params(parts, state).await?;
        let raw = params.get("user").map(String::as_str).unwrap_or("");
        Ok(UserParam(readable_user(state, &actor, raw).await?))
    }
}

/// The `{user}` of the path as the owner of the workspace the path names next: any user (400
/// for none, as [`user`]); whether the caller learns anything is decided by the workspace.
pub struct OwnerParam(pub UserRow);

impl FromRequestParts<AppState> for OwnerParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let params = path_params(parts, state).await?;
        let raw = params.get("user").map(String::as_str).unwrap_or("");
        Ok(OwnerParam(user(state, Some(&actor), raw).await?))
    }
}

/// The `{organization}` of the path (id or name), readable by the caller (404 otherwise); the
/// handler then asks for the action it needs on a resource inside it
/// ([`OrgParam::allow`]: 403 without it).
pub struct OrgParam {
    pub org: OrganizationRow,
    actor: Actor,
}

impl FromRequestParts<AppState> for OrgParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let params = path_params(parts, state).await?;
        let raw = params.get("organization").map(String::as_str).unwrap_or("");
        let org = organization(state, &actor, raw).await?;
        Ok(OrgParam { org, actor })
    }
}

impl OrgParam {
    /// The organization, if the caller may take `action` on `resource` inside it.
    pub fn allow(self, resource: Resource, action: Action) -> ApiResult<OrganizationRow> {
        if !self
            .actor
            .can(action, Object::in_org(resource, self.org.id))
        {
            return Err(ApiError::forbidden());
        }
        Ok(self.org)
    }

    /// The organization, if the caller may read `resource` inside it: 404 otherwise, as for
    /// what they may not see at all.
    pub fn visible(self, resource: Resource) -> ApiResult<OrganizationRow> {
        if !self
            .actor
            .can(Action::Read, Object::in_org(resource, self.org.id))
        {
            return Err(ApiError::not_found());
        }
        Ok(self.org)
    }
}

/// The provisioner job `{job}` of the path's `{organization}`, for those who may read the
/// organization's jobs (404 otherwise, as for an organization they may not read): 400 for an
/// id that is no UUID, 404 for no such job in this organization.
pub struct OrgJobParam(pub JobRow);

impl FromRequestParts<AppState> for OrgJobParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let org = OrgParam::from_request_parts(parts, state)
            .await?
            .visible(Resource::ProvisionerJobs)?;
        let params = path_params(parts, state).await?;
        let raw = params.get("job").map(String::as_str).unwrap_or("");
        let job = state.store.job(parse_uuid(raw)?).await?;
        if job.organization_id != org.id {
            return Err(ApiError::not_found());
        }
        Ok(OrgJobParam(job))
    }
}

/// The path's parameters by name, decoded.
async fn path_params(parts: &mut Parts, state: &AppState) -> ApiResult<HashMap<String, String>> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::bad_request("Invalid path.").with_detail(e.body_text()))?;
    Ok(params)
}

/// The `{template}` of the path, loaded and readable by the caller (404 otherwise); the
/// handler then asks for the action it needs ([`TemplateParam::allow`]: 403 without it).
pub struct TemplateParam {
    pub template: TemplateRow,
    actor: Actor,
}

impl FromRequestParts<AppState> for TemplateParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let params = path_params(parts, state).await?;
        let raw = params.get("template").map(String::as_str).unwrap_or("");
        let template = state.store.template(parse_uuid(raw)?).await?;
        check(&actor, &template, Action::Read)?;
        Ok(TemplateParam { template, actor })
    }
}

impl TemplateParam {
    /// The template, if the caller may take `action` on it.
    pub fn allow(self, action: Action) -> ApiResult<TemplateRow> {
        check(&self.actor, &self.template, action)?;
        Ok(self.template)
    }
}

pub fn check(actor: &Actor, t: &TemplateRow, action: Action) -> ApiResult<()> {
    if !actor.can_template(
        Action::Read,
        t.organization_id,
        &t.user_acl.0,
        &t.group_acl.0,
    ) {
        return Err(ApiError::not_found());
    }
    if !actor.can_template(action, t.organization_id, &t.user_acl.0, &t.group_acl.0) {
        return Err(ApiError::forbidden());
    }
    Ok(())
}

/// The `{templatename}` of the path's `{organization}` (both readable by the caller: 404
/// otherwise), as upstream's handlers look a template up by name.
pub struct TemplateByNameParam(pub TemplateRow);

impl FromRequestParts<AppState> for TemplateByNameParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let org = OrgParam::from_request_parts(parts, state).await?.org;
        let params = path_params(parts, state).await?;
        let name = params.get("templatename").map(String::as_str).unwrap_or("");
        let t = state.store.template_by_name(org.id, name).await?;
        check(&actor, &t, Action::Read)?;
        Ok(TemplateByNameParam(t))
    }
}

pub fn visibility(actor: &Actor) -> TemplateVisibility {
    let mut groups = actor.groups.clone();
    groups.extend(actor.memberships.keys().copied());
    TemplateVisibility {
        all: actor.can(Action::Read, Object::site(Resource::Template)),
        orgs: actor
            .memberships
            .keys()
            .copied()
            .filter(|o| actor.can(Action::Read, Object::in_org(Resource::Template, *o)))
            .collect(),
        user_id: actor.user_id,
        groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "alice", "a-b-c", "A1", &"x".repeat(32)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "a_b", "a b", &"x".repeat(33), "me!"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(valid_email("a@b.co"));
        assert!(!valid_email("a@b"));
        assert!(!valid_email("ab.co"));
        assert!(!valid_email("a b@c.de"));
    }
}
