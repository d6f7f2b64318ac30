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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Create,
    Update,
    /// Changing one's own profile or password; implied by `Update`.
    UpdatePersonal,
    Delete,
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

/// (resource or every resource, actions)
type Grant = (Option<Resource>, &'static [Action]);

fn site_grants(role: &str) -> &'static [Grant] {
    match role {
        "owner" => &[(None, CRUD)],
        "template-admin" => &[
            (Some(Template), CRUD),
            (Some(Workspace), READ),
            (Some(ProvisionerJobs), READ),
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
            (Some(Workspace), CRUD),
            (Some(ProvisionerJobs), READ),
            (Some(Organization), &[Read, Update]),
            (Some(OrganizationMember), CRUD),
            (Some(Group), CRUD),
            (Some(AssignOrgRole), CRUD),
        ],
        "organization-user-admin" => &[
            (Some(OrganizationMember), CRUD),
            (Some(Group), CRUD),
            (Some(AssignOrgRole), CRUD),
        ],
        "organization-template-admin" | "organization-auditor" => {
            &[(Some(Group), READ), (Some(OrganizationMember), READ)]
        }
        _ => &[],
    }
}

/// What a member may do to objects they own.
const OWNER_GRANTS: &[Grant] = &[
    (Some(User), &[Read, UpdatePersonal]),
    (Some(ApiKey), CRUD),
    (Some(File), &[Read, Create]),
    (Some(Workspace), CRUD),
];

fn grants(list: &[Grant], action: Action, resource: Resource) -> bool {
    list.iter().any(|(r, actions)| {
        r.is_none_or(|r| r == resource)
            && (actions.contains(&action)
                || (action == UpdatePersonal && actions.contains(&Update)))
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

    /// The template role ACLs give this actor: `admin`, `use`, or `None`.
    pub fn template_acl_role(
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
        match self.template_acl_role(org, user_acl, group_acl) {
            Some("admin") => action != Create,
            Some(_) => action == Read,
            None => false,
        }
    }

    /// Whether the actor may do `action` to a workspace: through roles (owners act on their
    /// own), or the workspace's ACL (`use` reads and starts/stops it, `admin` also deletes).
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
        if !self.is_member_of(org) {
            return false;
        }
        let roles = user_acl
            .get(&self.user_id)
            .into_iter()
            .chain(self.groups.iter().filter_map(|g| group_acl.get(g)));
        let mut best = None;
        for r in roles {
            match r.as_str() {
                "admin" => best = Some("admin"),
                "use" if best.is_none() => best = Some("use"),
                _ => {}
            }
        }
        match best {
            Some("admin") => action != Create,
            Some(_) => matches!(action, Read | Update),
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
    /// Coder's action names, mapped onto this server's actions.
    pub fn from_name(name: &str) -> Option<Action> {
        Some(match name {
            "read" | "use" | "view_insights" | "read_personal" => Read,
            "create" | "assign" => Create,
            "update" | "start" | "stop" | "ssh" | "application_connect" | "share" => Update,
            "update_personal" => UpdatePersonal,
            "delete" | "unassign" => Delete,
            _ => return None,
        })
    }
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
                .filter(|a| **a != UpdatePersonal)
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
        Delete => "delete",
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
