//! Authorization in one place: who (an [`Actor`]) may do what ([`Action`]) to which
//! [`Object`], following Coder's built-in roles.
//!
//! Grants apply at three levels, as in Coder's RBAC: site roles everywhere; organization roles
//! (with `organization-member` implied by membership) to objects of that organization; and the
//! member's own objects (the object's owner is the actor).

use std::collections::HashMap;

use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    User,
    ApiKey,
    Organization,
    OrganizationMember,
    Group,
    File,
    AssignRole,
    AssignOrgRole,
    Template,
    ProvisionerJobs,
    ProvisionerDaemon,
    Workspace,
}

/// Coder's RBAC actions (`coderd/rbac/policy`), those this server has objects for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Create,
    /// For workspaces: changing settings (schedule, TTL, dormancy, automatic updates, name).
    Update,
    /// Changing one's own profile or password; implied by `Update`.
    UpdatePersonal,
    /// Reading a user's personal details (their roles); implied by `Update`.
    ReadPersonal,
    Delete,
    /// Workspaces: start builds.
    Start,
    /// Workspaces: stop builds.
    Stop,
    /// Workspaces: SSH and port forwarding through the agent.
    Ssh,
    /// Workspaces: apps through the browser.
    ApplicationConnect,
    /// Workspaces: change who else may use the workspace (its ACL).
    Share,
}

/// Something to authorize against.
#[derive(Debug, Clone, Copy)]
pub struct Object {
    pub resource: Resource,
    pub org: Option<Uuid>,
    pub owner: Option<Uuid>,
}

impl Object {
    pub fn site(resource: Resource) -> Object {
        Object {
            resource,
            org: None,
            owner: None,
        }
    }

    pub fn in_org(resource: Resource, org: Uuid) -> Object {
        Object {
            resource,
            org: Some(org),
            owner: None,
        }
    }

    pub fn owned_by(resource: Resource, owner: Uuid) -> Object {
        Object {
            resource,
            org: None,
            owner: Some(owner),
        }
    }

    pub fn user(id: Uuid) -> Object {
        Object::owned_by(Resource::User, id)
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Uuid,
    pub username: String,
    pub key_id: String,
    pub site_roles: Vec<String>,
    /// Organization id → the org roles held there (membership itself implies organization-member).
    pub memberships: HashMap<Uuid, Vec<String>>,
    /// Groups joined explicitly (the Everyone groups follow from `memberships`).
    pub groups: Vec<Uuid>,
}

use Action::*;
use Resource::*;

const CRUD: &[Action] = &[Read, Create, Update, UpdatePersonal, Delete];
const READ: &[Action] = &[Read];
/// Every action there is (a wildcard grant).
const ALL: &[Action] = &[
    Read,
    Create,
    Update,
    UpdatePersonal,
    ReadPersonal,
    Delete,
    Start,
    Stop,
    Ssh,
    ApplicationConnect,
    Share,
];
/// A workspace's every action: its owner's, and a site owner's.
const WORKSPACE_ALL: &[Action] = &[
    Read,
    Create,
    Update,
    Delete,
    Start,
    Stop,
    Ssh,
    ApplicationConnect,
    Share,
];
/// Organization admins manage workspaces but do not get into them (no SSH or apps).
const WORKSPACE_NO_EXEC: &[Action] = &[Read, Create, Update, Delete, Start, Stop, Share];
/// Workspace ACL role `use`: read, start, stop, SSH and apps; nothing else.
const WORKSPACE_USE: &[Action] = &[Read, Start, Stop, Ssh, ApplicationConnect];
/// Workspace ACL role `admin`: everything but deleting (nobody deletes what they cannot
/// recreate), so also settings and sharing.
const WORKSPACE_ADMIN: &[Action] = &[Read, Update, Start, Stop, Ssh, ApplicationConnect, Share];

/// (resource or every resource, actions)
type Grant = (Option<Resource>, &'static [Action]);

fn site_grants(role: &str) -> &'static [Grant] {
    match role {
        "owner" => &[(None, ALL)],
        "template-admin" => &[
            (Some(Template), CRUD),
            (Some(Workspace), READ),
            (Some(ProvisionerDaemon), READ),
            (Some(File), &[Read, Create]),
            (Some(User), READ),
            (Some(Group), READ),
            (Some(Organization), READ),
            (Some(OrganizationMember), READ),
            (Some(AssignRole), READ),
        ],
        "user-admin" => &[
            (Some(User), CRUD),
            (Some(AssignRole), CRUD),
            (Some(AssignOrgRole), CRUD),
            (Some(OrganizationMember), CRUD),
            (Some(Group), CRUD),
            (Some(Organization), READ),
        ],
        "auditor" => &[
            (Some(Template), READ),
            (Some(User), READ),
            (Some(Group), READ),
            (Some(Organization), READ),
            (Some(OrganizationMember), READ),
            (Some(AssignRole), READ),
        ],
        // Everyone is a member.
        "member" => &[(Some(AssignRole), READ), (Some(ProvisionerDaemon), READ)],
        _ => &[],
    }
}

fn org_grants(role: &str) -> &'static [Grant] {
    match role {
        "organization-member" => &[
            (Some(Organization), READ),
            (Some(OrganizationMember), READ),
            (Some(Group), READ),
            (Some(AssignOrgRole), READ),
        ],
        "organization-admin" => &[
            (Some(Template), CRUD),
            (Some(Workspace), WORKSPACE_NO_EXEC),
            (Some(ProvisionerJobs), READ),
            (Some(Organization), &[Read, Update]),
            (Some(OrganizationMember), CRUD),
            (Some(Group), CRUD),
            (Some(AssignOrgRole), CRUD),
        ],
        "organization-user-admin" => &[
            (Some(Organization), READ),
            (Some(OrganizationMember), CRUD),
            (Some(Group), CRUD),
            (Some(AssignOrgRole), CRUD),
        ],
        "organization-template-admin" => &[
            (Some(Template), CRUD),
            (Some(Workspace), READ),
            (Some(ProvisionerJobs), &[Read, Create, Update]),
            (Some(ProvisionerDaemon), READ),
            (Some(Organization), READ),
            (Some(OrganizationMember), READ),
            (Some(Group), READ),
        ],
        "organization-auditor" => &[
            (Some(Template), READ),
            (Some(Organization), READ),
            (Some(OrganizationMember), READ),
            (Some(Group), READ),
        ],
        _ => &[],
    }
}

/// What a member may do to objects they own.
const OWNER_GRANTS: &[Grant] = &[
    (Some(User), &[Read, ReadPersonal, UpdatePersonal]),
    (Some(ApiKey), CRUD),
    (Some(File), &[Read, Create]),
    (Some(Workspace), WORKSPACE_ALL),
];

fn grants(list: &[Grant], action: Action, resource: Resource) -> bool {
    list.iter().any(|(r, actions)| {
        r.is_none_or(|r| r == resource)
            && (actions.contains(&action)
                || (matches!(action, UpdatePersonal | ReadPersonal) && actions.contains(&Update)))
    })
}

impl Actor {
    pub fn is_owner(&self) -> bool {
        self.site_roles.iter().any(|r| r == "owner")
    }

    pub fn is_member_of(&self, org: Uuid) -> bool {
        self.memberships.contains_key(&org)
    }

    pub fn can(&self, action: Action, obj: Object) -> bool {
        let site = self.site_roles.iter().map(String::as_str).chain(["member"]);
        for role in site {
            if grants(site_grants(role), action, obj.resource) {
                return true;
            }
        }
        if let Some(org) = obj.org {
            if let Some(roles) = self.memberships.get(&org) {
                let org_roles = roles
                    .iter()
                    .map(String::as_str)
                    .chain(["organization-member"]);
                for role in org_roles {
                    if grants(org_grants(role), action, obj.resource) {
                        return true;
                    }
                }
            }
        }
        obj.owner == Some(self.user_id)
            && obj.org.is_none_or(|o| self.is_member_of(o))
            && grants(OWNER_GRANTS, action, obj.resource)
    }

    /// The role a template's or workspace's ACLs give this actor: `admin`, `use`, or `None`.
    /// Entries for the actor, for groups they joined, and for the organization's Everyone
    /// group (keyed by the organization's id) count; only members of `org` hold one.
    pub fn acl_role(
        &self,
        org: Uuid,
        user_acl: &HashMap<Uuid, String>,
        group_acl: &HashMap<Uuid, String>,
    ) -> Option<&'static str> {
        if !self.is_member_of(org) {
            return None;
        }
        let roles = user_acl
            .get(&self.user_id)
            .into_iter()
            .chain(self.groups.iter().filter_map(|g| group_acl.get(g)))
            .chain(group_acl.get(&org));
        let mut best = None;
        for r in roles {
            match r.as_str() {
                "admin" => return Some("admin"),
                "use" => best = Some("use"),
                _ => {}
            }
        }
        best
    }

    /// Whether the actor may do `action` to a template, through roles or the template's ACL
    /// (`use` reads it, `admin` also updates and deletes it).
    pub fn can_template(
        &self,
        action: Action,
        org: Uuid,
        user_acl: &HashMap<Uuid, String>,
        group_acl: &HashMap<Uuid, String>,
    ) -> bool {
        if self.can(action, Object::in_org(Template, org)) {
            return true;
        }
        match self.acl_role(org, user_acl, group_acl) {
            Some("admin") => action != Create,
            Some(_) => action == Read,
            None => false,
        }
    }

    /// The groups whose ACL entries apply to this actor: those joined explicitly, and the
    /// Everyone group (its id is the organization's) of every organization they belong to.
    pub fn acl_groups(&self) -> Vec<Uuid> {
        let mut groups = self.groups.clone();
        groups.extend(self.memberships.keys().copied());
        groups
    }

    /// Whether the actor may do `action` to a workspace: through roles (owners act on their
    /// own), or the workspace's ACL (`use`: read, start, stop, SSH, apps; `admin`: also
    /// settings and sharing, never delete).
    pub fn can_workspace(
        &self,
        action: Action,
        org: Uuid,
        owner: Uuid,
        user_acl: &HashMap<Uuid, String>,
        group_acl: &HashMap<Uuid, String>,
    ) -> bool {
        let obj = Object {
            resource: Workspace,
            org: Some(org),
            owner: Some(owner),
        };
        if self.can(action, obj) {
            return true;
        }
        match self.acl_role(org, user_acl, group_acl) {
            Some("admin") => WORKSPACE_ADMIN.contains(&action),
            Some(_) => WORKSPACE_USE.contains(&action),
            None => false,
        }
    }

    /// Whether this actor may grant or take away `role` (in `org` for organization roles).
    pub fn can_assign(&self, role: &str, org: Option<Uuid>) -> bool {
        if self.is_owner() {
            return true;
        }
        match org {
            None => self.site_roles.iter().any(|r| r == "user-admin") && role == "member",
            Some(org) => {
                let held = self.memberships.get(&org).map(Vec::as_slice).unwrap_or(&[]);
                held.iter().any(|r| r == "organization-admin")
                    || ((held.iter().any(|r| r == "organization-user-admin")
                        || self.site_roles.iter().any(|r| r == "user-admin"))
                        && role == "organization-member")
            }
        }
    }
}

impl Resource {
    /// The resource of Coder's RBAC vocabulary (`workspace`, `template`, …), if this server has it.
    pub fn from_name(name: &str) -> Option<Resource> {
        Some(match name {
            "user" => User,
            "api_key" => ApiKey,
            "organization" => Organization,
            "organization_member" => OrganizationMember,
            "group" | "group_member" => Group,
            "file" => File,
            "assign_role" => AssignRole,
            "assign_org_role" => AssignOrgRole,
            "template" => Template,
            "provisioner_jobs" => ProvisionerJobs,
            "provisioner_daemon" => ProvisionerDaemon,
            "workspace" => Workspace,
            _ => return None,
        })
    }
}

impl Action {
    /// Coder's name of this action.
    pub fn name(self) -> &'static str {
        action_name(self)
    }

    /// Coder's action names, mapped onto this server's actions.
    pub fn from_name(name: &str) -> Option<Action> {
        Some(match name {
            "read" | "use" | "view_insights" => Read,
            "read_personal" => ReadPersonal,
            "create" | "assign" => Create,
            "update" => Update,
            "update_personal" => UpdatePersonal,
            "delete" | "unassign" => Delete,
            "start" => Start,
            "stop" => Stop,
            "ssh" => Ssh,
            "application_connect" => ApplicationConnect,
            "share" => Share,
            _ => return None,
        })
    }
}

/// For `POST /authcheck`: site-wide grants on kinds of object this server has none of
/// (deployment config, audit logs, licenses, …), as upstream's built-in roles give them. An
/// owner may do anything; an auditor reads the deployment's records.
pub fn unmodelled_site_grant(actor: &Actor, resource: &str, action: &str) -> bool {
    if actor.is_owner() {
        return true;
    }
    let auditor = actor.site_roles.iter().any(|r| r == "auditor");
    auditor
        && action == "read"
        && matches!(
            resource,
            "audit_log" | "connection_log" | "deployment_config" | "deployment_stats"
        )
}

/// Built-in site roles a user can hold explicitly (`member` is implied).
pub const SITE_ROLES: &[(&str, &str)] = &[
    ("owner", "Owner"),
    ("template-admin", "Template Admin"),
    ("user-admin", "User Admin"),
    ("auditor", "Auditor"),
];

/// Built-in organization roles a member can hold (`organization-member` is implied).
pub const ORG_ROLES: &[(&str, &str)] = &[
    ("organization-admin", "Organization Admin"),
    ("organization-auditor", "Organization Auditor"),
    ("organization-user-admin", "Organization User Admin"),
    ("organization-template-admin", "Organization Template Admin"),
];

pub fn site_role_display_name(name: &str) -> &'static str {
    SITE_ROLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .unwrap_or("")
}

pub fn org_role_display_name(name: &str) -> &'static str {
    ORG_ROLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .unwrap_or("")
}

/// The permissions a role grants, in Coder's vocabulary, for `GET /users/roles`.
pub fn site_role_permissions(role: &str) -> Vec<codersdk::Permission> {
    site_grants(role)
        .iter()
        .flat_map(|(r, actions)| {
            actions
                .iter()
                .filter(|a| !matches!(**a, UpdatePersonal | ReadPersonal))
                .map(move |a| codersdk::Permission {
                    negate: false,
                    resource_type: r.map_or("*", resource_name).to_string(),
                    action: action_name(*a).to_string(),
                })
        })
        .collect()
}

fn resource_name(r: Resource) -> &'static str {
    match r {
        User => "user",
        ApiKey => "api_key",
        Organization => "organization",
        OrganizationMember => "organization_member",
        Group => "group",
        File => "file",
        AssignRole => "assign_role",
        AssignOrgRole => "assign_org_role",
        Template => "template",
        ProvisionerJobs => "provisioner_jobs",
        ProvisionerDaemon => "provisioner_daemon",
        Workspace => "workspace",
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Read => "read",
        Create => "create",
        Update => "update",
        UpdatePersonal => "update_personal",
        ReadPersonal => "read_personal",
        Delete => "delete",
        Start => "start",
        Stop => "stop",
        Ssh => "ssh",
        ApplicationConnect => "application_connect",
        Share => "share",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(site: &[&str], orgs: &[(Uuid, &[&str])]) -> Actor {
        Actor {
            user_id: Uuid::new_v4(),
            username: "u".into(),
            key_id: "k".into(),
            site_roles: site.iter().map(|s| s.to_string()).collect(),
            memberships: orgs
                .iter()
                .map(|(o, r)| (*o, r.iter().map(|s| s.to_string()).collect()))
                .collect(),
            groups: Vec::new(),
        }
    }

    #[test]
    fn member_sees_own_user_only() {
        let a = actor(&[], &[]);
        assert!(a.can(Read, Object::user(a.user_id)));
        assert!(a.can(UpdatePersonal, Object::user(a.user_id)));
        assert!(!a.can(Update, Object::user(a.user_id)));
        assert!(!a.can(Read, Object::user(Uuid::new_v4())));
    }

    #[test]
    fn org_roles_apply_only_in_their_org() {
        let (o1, o2) = (Uuid::new_v4(), Uuid::new_v4());
        let a = actor(&[], &[(o1, &["organization-admin"]), (o2, &[])]);
        assert!(a.can(Create, Object::in_org(Group, o1)));
        assert!(!a.can(Create, Object::in_org(Group, o2)));
        assert!(a.can(Read, Object::in_org(Group, o2)));
        assert!(!a.can(Read, Object::in_org(Group, Uuid::new_v4())));
        assert!(!a.can(Delete, Object::in_org(Organization, o1)));
    }

    #[test]
    fn owner_can_everything_and_assign_anything() {
        let a = actor(&["owner"], &[]);
        assert!(a.can(Delete, Object::in_org(Organization, Uuid::new_v4())));
        assert!(a.can_assign("template-admin", None));
        let ua = actor(&["user-admin"], &[]);
        assert!(!ua.can_assign("owner", None));
        assert!(ua.can(Update, Object::user(Uuid::new_v4())));
    }
}

#[cfg(test)]
mod template_acl_tests {
    use super::*;

    #[test]
    fn everyone_group_grants_use_to_members_only() {
        let org = Uuid::new_v4();
        let member = Actor {
            user_id: Uuid::new_v4(),
            username: "m".into(),
            key_id: "k".into(),
            site_roles: vec![],
            memberships: HashMap::from([(org, vec![])]),
            groups: vec![],
        };
        let groups = HashMap::from([(org, "use".to_string())]);
        let none = HashMap::new();
        assert!(member.can_template(Read, org, &none, &groups));
        assert!(!member.can_template(Update, org, &none, &groups));
        assert!(!member.can_template(Read, org, &none, &none));
        let users = HashMap::from([(member.user_id, "admin".to_string())]);
        assert!(member.can_template(Update, org, &users, &none));
        assert!(!member.can_template(Read, Uuid::new_v4(), &users, &groups));
    }
}
