//! The authorization matrix: every operation of the API reference, called by every kind of
//! actor, must get the status upstream's roles imply.
//!
//! One table says what each operation needs ([`RULES`]: an object and an action on it, in
//! upstream's terms), and one model says what each kind of actor may do to each object
//! ([`may`], written from upstream's `coderd/rbac/roles.go`). The expected status of every
//! (operation, actor) pair is computed from the two: 401 without a valid session, 404 when the
//! actor may not see the object, 403 when they see it but may not act, otherwise anything but
//! those. An operation of the reference without a rule fails the test, and so does a rule for
//! an operation the reference does not have.
//!
//! Longer than 800 lines on purpose: one test, and a third of the file is its table of rules,
//! one row per operation of the reference, which reads best in one place.

use std::collections::BTreeSet;
use std::time::Duration;

use codersdk::Client;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::echo::create_template;
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{raw_json, schema, TestServer, MEMBER_PASSWORD};

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Actor {
    Owner,
    UserAdmin,
    TemplateAdmin,
    Auditor,
    /// A member of the default organization (not the one whose objects are addressed).
    Member,
    /// A member of another organization only.
    OtherOrg,
    Suspended,
    Deleted,
    Expired,
    Anonymous,
}

use Actor::*;

const ACTORS: [Actor; 10] = [
    Owner,
    UserAdmin,
    TemplateAdmin,
    Auditor,
    Member,
    OtherOrg,
    Suspended,
    Deleted,
    Expired,
    Anonymous,
];

/// The objects operations address. The paths' parameters name fixtures of the default
/// organization: the user `alice` (a member) with her workspace, build and token; the template
/// `matrix` (the Everyone group may use it) with its version, import job and a dry run the
/// owner started; the group `team`; a file the owner uploaded.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Obj {
    /// The site's users as a whole (`POST /users`).
    Users,
    /// The user alice.
    Alice,
    /// Alice's API keys.
    AliceKeys,
    /// The default organization.
    Org,
    /// Organizations as a whole (`POST /organizations`).
    Orgs,
    /// The default organization's members.
    Members,
    /// The default organization's groups (and the group `team`).
    Groups,
    /// The template `matrix`, its versions and their jobs.
    Template,
    /// Templates in the organization as a whole: creating one, the examples.
    OrgTemplates,
    /// Alice's workspace and its builds.
    Workspace,
    /// The raw state of alice's build: for template managers.
    BuildState,
    /// The file the owner uploaded.
    File,
    /// The organization's provisioner jobs.
    Jobs,
    /// The owner's dry run of the template's version.
    DryRun,
    /// Creating a workspace for alice (`/users/{user}/workspaces`).
    AliceWorkspaces,
    /// Creating a workspace for alice as a member of the organization.
    MemberWorkspaces,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Read,
    /// Alice's personal details (her roles).
    ReadPersonal,
    Create,
    Update,
    Delete,
    /// Assigning roles (site roles on alice; organization roles on members).
    Assign,
    /// Favorites are the workspace owner's alone (alice is not among the actors).
    Favorite,
}

/// What an operation needs.
#[derive(Clone, Copy, Debug)]
enum Rule {
    /// Anyone, signed in or not, with a valid token or not.
    Public,
    /// Any valid session.
    Session,
    /// See the object (else 404), then do the action to it (else 403).
    On(Obj, Act),
    /// Do the action to the object, or it does not exist for you (404, never 403).
    Hidden(Obj, Act),
    /// A licensed feature upstream: 403 to every session.
    Unlicensed,
}

use Act::*;
use Obj::*;
use Rule::*;

/// Every operation of the reference and what it needs, per upstream.
const RULES: &[(&str, &str, Rule)] = &[
    ("GET", "/", Public),
    ("GET", "/buildinfo", Public),
    ("GET", "/updatecheck", Public),
    ("GET", "/users/first", Public),
    ("POST", "/users/first", Public),
    ("POST", "/users/login", Public),
    ("GET", "/users/authmethods", Public),
    ("GET", "/appearance", Session),
    ("PUT", "/appearance", Unlicensed),
    ("POST", "/authcheck", Session),
    ("GET", "/entitlements", Session),
    ("GET", "/experiments", Session),
    ("POST", "/users/validate-password", Session),
    ("GET", "/users/roles", Session),
    ("POST", "/users/logout", Session),
    // Users.
    ("GET", "/users", Session),
    ("POST", "/users", On(Users, Create)),
    ("GET", "/users/{user}", Hidden(Alice, Read)),
    ("DELETE", "/users/{user}", On(Alice, Delete)),
    ("GET", "/users/{user}/roles", Hidden(Alice, ReadPersonal)),
    ("PUT", "/users/{user}/roles", On(Alice, Assign)),
    ("PUT", "/users/{user}/password", On(Alice, Update)),
    ("PUT", "/users/{user}/status/activate", On(Alice, Update)),
    ("PUT", "/users/{user}/status/suspend", On(Alice, Update)),
    // Upstream answers 500 to those who read alice but not her personal data; 403 here.
    ("GET", "/users/{user}/gitsshkey", On(Alice, ReadPersonal)),
    ("PUT", "/users/{user}/gitsshkey", On(Alice, Update)),
    ("GET", "/users/{user}/organizations", Hidden(Alice, Read)),
    (
        "GET",
        "/users/{user}/organizations/{organizationname}",
        Hidden(Alice, Read),
    ),
    ("POST", "/users/{user}/keys", Hidden(AliceKeys, Create)),
    ("GET", "/users/{user}/keys/tokens", Hidden(AliceKeys, Read)),
    ("POST", "/users/{user}/keys/tokens", Hidden(AliceKeys, Create)),
    (
        "GET",
        "/users/{user}/keys/tokens/{keyname}",
        Hidden(AliceKeys, Read),
    ),
    ("GET", "/users/{user}/keys/{keyid}", Hidden(AliceKeys, Read)),
    ("DELETE", "/users/{user}/keys/{keyid}", Hidden(AliceKeys, Delete)),
    (
        "GET",
        "/users/{user}/workspace/{workspacename}",
        Hidden(Workspace, Read),
    ),
    (
        "GET",
        "/users/{user}/workspace/{workspacename}/builds/{buildnumber}",
        Hidden(Workspace, Read),
    ),
    ("POST", "/users/{user}/workspaces", On(AliceWorkspaces, Create)),
    // Organizations, members, groups.
    ("GET", "/organizations", Session),
    ("POST", "/organizations", On(Orgs, Create)),
    ("GET", "/organizations/{organization}", Hidden(Org, Read)),
    ("PATCH", "/organizations/{organization}", On(Org, Update)),
    ("DELETE", "/organizations/{organization}", On(Org, Delete)),
    ("GET", "/organizations/{organization}/members", Hidden(Members, Read)),
    (
        "POST",
        "/organizations/{organization}/members/{user}",
        On(Members, Create),
    ),
    (
        "DELETE",
        "/organizations/{organization}/members/{user}",
        On(Members, Delete),
    ),
    (
        "PUT",
        "/organizations/{organization}/members/{user}/roles",
        On(Members, Assign),
    ),
    (
        "POST",
        "/organizations/{organization}/members/{user}/workspaces",
        On(MemberWorkspaces, Create),
    ),
    ("GET", "/groups", Session),
    ("GET", "/groups/{group}", Hidden(Groups, Read)),
    ("PATCH", "/groups/{group}", On(Groups, Update)),
    ("DELETE", "/groups/{group}", On(Groups, Delete)),
    ("GET", "/organizations/{organization}/groups", Hidden(Groups, Read)),
    ("POST", "/organizations/{organization}/groups", On(Groups, Create)),
    (
        "GET",
        "/organizations/{organization}/groups/{groupName}",
        Hidden(Groups, Read),
    ),
    // Provisioners.
    (
        "GET",
        "/organizations/{organization}/provisionerdaemons",
        Hidden(Org, Read),
    ),
    (
        "GET",
        "/organizations/{organization}/provisionerjobs",
        Hidden(Jobs, Read),
    ),
    (
        "GET",
        "/organizations/{organization}/provisionerjobs/{job}",
        Hidden(Jobs, Read),
    ),
    // Files.
    ("POST", "/files", Session),
    ("GET", "/files/{fileID}", Hidden(File, Read)),
    // Templates.
    ("GET", "/templates", Session),
    ("GET", "/templates/examples", Hidden(OrgTemplates, Read)),
    (
        "GET",
        "/organizations/{organization}/templates/examples",
        Hidden(OrgTemplates, Read),
    ),
    ("GET", "/organizations/{organization}/templates", Hidden(Org, Read)),
    (
        "POST",
        "/organizations/{organization}/templates",
        On(OrgTemplates, Create),
    ),
    (
        "POST",
        "/organizations/{organization}/templateversions",
        On(OrgTemplates, Create),
    ),
    (
        "GET",
        "/organizations/{organization}/templates/{templatename}",
        Hidden(Template, Read),
    ),
    (
        "GET",
        "/organizations/{organization}/templates/{templatename}/versions/{templateversionname}",
        Hidden(Template, Read),
    ),
    (
        "GET",
        "/organizations/{organization}/templates/{templatename}/versions/{templateversionname}/previous",
        Hidden(Template, Read),
    ),
    ("GET", "/templates/{template}", Hidden(Template, Read)),
    ("PATCH", "/templates/{template}", On(Template, Update)),
    ("DELETE", "/templates/{template}", On(Template, Delete)),
    // Upstream refuses (with a 500) to those who may not change the template; 403 here.
    ("GET", "/templates/{template}/acl", On(Template, Update)),
    ("PATCH", "/templates/{template}/acl", On(Template, Update)),
    ("GET", "/templates/{template}/acl/available", On(Template, Update)),
    ("GET", "/templates/{template}/daus", Hidden(Template, Read)),
    ("GET", "/templates/{template}/versions", Hidden(Template, Read)),
    ("PATCH", "/templates/{template}/versions", On(Template, Update)),
    (
        "POST",
        "/templates/{template}/versions/archive",
        On(Template, Update),
    ),
    (
        "GET",
        "/templates/{template}/versions/{templateversionname}",
        Hidden(Template, Read),
    ),
    ("GET", "/templateversions/{templateversion}", Hidden(Template, Read)),
    (
        "PATCH",
        "/templateversions/{templateversion}",
        On(Template, Update),
    ),
    (
        "POST",
        "/templateversions/{templateversion}/archive",
        On(Template, Update),
    ),
    (
        "POST",
        "/templateversions/{templateversion}/unarchive",
        On(Template, Update),
    ),
    (
        "PATCH",
        "/templateversions/{templateversion}/cancel",
        On(Template, Update),
    ),
    (
        "POST",
        "/templateversions/{templateversion}/dry-run",
        Hidden(Template, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/dry-run/{jobID}",
        On(DryRun, Read),
    ),
    (
        "PATCH",
        "/templateversions/{templateversion}/dry-run/{jobID}/cancel",
        On(DryRun, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/dry-run/{jobID}/logs",
        On(DryRun, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/dry-run/{jobID}/matched-provisioners",
        On(DryRun, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/dry-run/{jobID}/resources",
        On(DryRun, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/dynamic-parameters",
        Hidden(Template, Read),
    ),
    (
        "POST",
        "/templateversions/{templateversion}/dynamic-parameters/evaluate",
        Hidden(Template, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/external-auth",
        Hidden(Template, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/logs",
        Hidden(Template, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/parameters",
        Hidden(Template, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/presets",
        Hidden(Template, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/resources",
        Hidden(Template, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/rich-parameters",
        Hidden(Template, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/schema",
        Hidden(Template, Read),
    ),
    (
        "GET",
        "/templateversions/{templateversion}/variables",
        Hidden(Template, Read),
    ),
    // Workspaces and builds.
    ("GET", "/workspaces", Session),
    ("GET", "/workspaces/{workspace}", Hidden(Workspace, Read)),
    ("PATCH", "/workspaces/{workspace}", On(Workspace, Update)),
    ("GET", "/workspaces/{workspace}/acl", Hidden(Workspace, Read)),
    ("PATCH", "/workspaces/{workspace}/acl", On(Workspace, Update)),
    ("DELETE", "/workspaces/{workspace}/acl", On(Workspace, Update)),
    ("PUT", "/workspaces/{workspace}/autostart", On(Workspace, Update)),
    ("PUT", "/workspaces/{workspace}/autoupdates", On(Workspace, Update)),
    ("PUT", "/workspaces/{workspace}/ttl", On(Workspace, Update)),
    ("PUT", "/workspaces/{workspace}/dormant", On(Workspace, Update)),
    ("PUT", "/workspaces/{workspace}/extend", On(Workspace, Update)),
    ("POST", "/workspaces/{workspace}/usage", On(Workspace, Update)),
    ("PUT", "/workspaces/{workspace}/favorite", On(Workspace, Favorite)),
    ("DELETE", "/workspaces/{workspace}/favorite", On(Workspace, Favorite)),
    ("GET", "/workspaces/{workspace}/builds", Hidden(Workspace, Read)),
    ("POST", "/workspaces/{workspace}/builds", On(Workspace, Update)),
    (
        "GET",
        "/workspaces/{workspace}/resolve-autostart",
        Hidden(Workspace, Read),
    ),
    ("GET", "/workspaces/{workspace}/timings", Hidden(Workspace, Read)),
    ("GET", "/workspaces/{workspace}/watch", Hidden(Workspace, Read)),
    ("GET", "/workspaces/{workspace}/watch-ws", Hidden(Workspace, Read)),
    ("GET", "/workspacebuilds/{workspacebuild}", Hidden(Workspace, Read)),
    (
        "PATCH",
        "/workspacebuilds/{workspacebuild}/cancel",
        On(Workspace, Update),
    ),
    (
        "GET",
        "/workspacebuilds/{workspacebuild}/logs",
        Hidden(Workspace, Read),
    ),
    (
        "GET",
        "/workspacebuilds/{workspacebuild}/parameters",
        Hidden(Workspace, Read),
    ),
    (
        "GET",
        "/workspacebuilds/{workspacebuild}/resources",
        Hidden(Workspace, Read),
    ),
    (
        "GET",
        "/workspacebuilds/{workspacebuild}/timings",
        Hidden(Workspace, Read),
    ),
    (
        "GET",
        "/workspacebuilds/{workspacebuild}/state",
        Hidden(BuildState, Read),
    ),
    (
        "PUT",
        "/workspacebuilds/{workspacebuild}/state",
        Hidden(BuildState, Update),
    ),
];

/// Members of the default organization (every role actor is one; the other organization's
/// member and the bad-token actors are not).
fn in_default_org(a: Actor) -> bool {
    matches!(a, Owner | UserAdmin | TemplateAdmin | Auditor | Member)
}

/// Upstream's built-in roles, for the objects above: whether `a` may do `act` to `o`.
fn may(a: Actor, o: Obj, act: Act) -> bool {
    let member = in_default_org(a);
    match (o, act) {
        (_, Favorite) => false,
        _ if a == Owner => true,
        // Every member reads the site's users list (themselves) and may create organizations
        // only as owner.
        (Users, Read) => true,
        (Users, _) => a == UserAdmin,
        (Alice, Read) => matches!(a, UserAdmin | TemplateAdmin | Auditor),
        (Alice, _) => a == UserAdmin,
        // API keys and SSH keys are their owner's alone.
        (AliceKeys, _) => false,
        (Org, Read) => member,
        (Org, _) => false,
        (Orgs, Read) => true,
        (Orgs, _) => false,
        (Members | Groups, Read) => member,
        (Members | Groups, _) => a == UserAdmin,
        // The Everyone group may use the template: every member reads it.
        (Template, Read) => member,
        (Template, _) => a == TemplateAdmin,
        (OrgTemplates, Read) => matches!(a, TemplateAdmin | Auditor),
        (OrgTemplates, _) => a == TemplateAdmin,
        // Alice's workspace: site template-admins read every workspace.
        (Workspace, Read) => a == TemplateAdmin,
        (Workspace, _) => false,
        (BuildState, _) => a == TemplateAdmin,
        (File, _) => a == TemplateAdmin,
        (Jobs, _) => false,
        // A dry run is seen by whoever sees the version, and read by whoever reads the
        // initiator's (the owner's) workspaces.
        (DryRun, Read) => a == TemplateAdmin,
        (DryRun, _) => false,
        (AliceWorkspaces | MemberWorkspaces, _) => false,
    }
}

/// Whether `a` sees `o` at all (else it does not exist for them).
fn sees(a: Actor, o: Obj) -> bool {
    match o {
        DryRun => may(a, Template, Read),
        AliceKeys => may(a, Alice, Read) && may(a, AliceKeys, Read),
        Users | Orgs => true,
        BuildState => may(a, Workspace, Read),
        AliceWorkspaces => may(a, Alice, Read),
        MemberWorkspaces | OrgTemplates => may(a, Members, Read),
        _ => may(a, o, Read),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Status(u16),
    /// Anything but 401, 403 and a "not found or no access" 404.
    Allowed,
}

/// The answer to a `/users/{user}/…` path whose user the caller may not read: the same as for
/// a user who does not exist (upstream's user parameter), so that nobody learns who exists.
/// Workspaces by owner and name are the exception: whoever a workspace is shared with finds it
/// by its owner's name (`coder ssh alice/dev`), so there the workspace decides (404).
const NO_SUCH_USER: u16 = 400;

fn user_param_decides(path: &str) -> bool {
    path.starts_with("/users/{user}") && !path.starts_with("/users/{user}/workspace/")
}

fn expect(rule: Rule, path: &str, a: Actor) -> Expect {
    let valid = !matches!(a, Suspended | Deleted | Expired | Anonymous);
    match rule {
        Public => Expect::Allowed,
        _ if !valid => Expect::Status(401),
        Session => Expect::Allowed,
        Unlicensed => Expect::Status(403),
        _ if user_param_decides(path) && !may(a, Alice, Read) => Expect::Status(NO_SUCH_USER),
        On(o, _) if !sees(a, o) => Expect::Status(404),
        On(o, act) if !may(a, o, act) => Expect::Status(403),
        Hidden(o, act) if !(sees(a, o) && may(a, o, act)) => Expect::Status(404),
        On(..) | Hidden(..) => Expect::Allowed,
    }
}

/// The ids the paths need.
struct Fixtures {
    values: Vec<(&'static str, String)>,
}

impl Fixtures {
    /// `text` with every `{name}` replaced by the fixture's value.
    fn fill(&self, text: &str) -> String {
        let mut p = text.to_string();
        for (k, v) in &self.values {
            p = p.replace(&format!("{{{k}}}"), v);
        }
        p
    }
}

/// A request body that is well-formed but asks for nothing harmful: writes mostly fail
/// validation for those allowed, which is what the matrix wants (no 401/403/404).
fn body_for(method: &str, path: &str) -> Option<String> {
    if method == "GET" || method == "DELETE" {
        return None;
    }
    let body = match path {
        "/users/{user}/roles" => json!({"roles": []}),
        "/organizations/{organization}/members/{user}/roles" => json!({"roles": []}),
        "/workspaces/{workspace}/builds" => json!({"transition": "stop"}),
        "/workspaces/{workspace}/dormant" => json!({"dormant": false}),
        "/users/{user}/workspaces" | "/organizations/{organization}/members/{user}/workspaces" => {
            json!({"name": "by-matrix", "template_id": "{template}"})
        }
        _ => json!({}),
    };
    Some(body.to_string())
}

async fn user_with_token(owner: &Client, srv: &TestServer, name: &str) -> (Client, Value) {
    let (c, u) = srv.member(owner, name).await;
    (c, serde_json::to_value(u).unwrap())
}

#[tokio::test]
async fn every_operation_answers_every_actor_as_upstream_roles_imply() {
    // The table covers the reference exactly.
    let ops: BTreeSet<(String, String)> = schema::spec().subset_operations().into_iter().collect();
    let ruled: BTreeSet<(String, String)> = RULES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let unruled: Vec<_> = ops.difference(&ruled).collect();
    let stale: Vec<_> = ruled.difference(&ops).collect();
    assert!(
        unruled.is_empty() && stale.is_empty(),
        "operations without a rule: {unruled:?}; rules for operations not in the reference: {stale:?}"
    );

    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let set_roles = |user: String, roles: Value| {
        let owner = owner.clone();
        async move {
            let (status, body) = raw_json(
                &owner,
                "PUT",
                &format!("/api/v2/users/{user}/roles"),
                Some(&json!({ "roles": roles }).to_string()),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    let (alice, alice_u) = user_with_token(&owner, &srv, "alice").await;
    let (ua, _) = user_with_token(&owner, &srv, "uadmin").await;
    set_roles("uadmin".into(), json!(["user-admin"])).await;
    let (ta, _) = user_with_token(&owner, &srv, "tadmin").await;
    set_roles("tadmin".into(), json!(["template-admin"])).await;
    let (aud, _) = user_with_token(&owner, &srv, "auditor").await;
    set_roles("auditor".into(), json!(["auditor"])).await;
    let (bob, _) = user_with_token(&owner, &srv, "bob").await;
    let other: Value = owner
        .request(
            Method::POST,
            "/api/v2/organizations",
            Some(&json!({"name": "elsewhere"})),
        )
        .await
        .unwrap();
    owner
        .create_user(&codersdk::CreateUserRequest {
            email: "carol@example.com".into(),
            username: "carol".into(),
            password: MEMBER_PASSWORD.into(),
            organization_ids: vec![serde_json::from_value(other["id"].clone()).unwrap()],
            ..Default::default()
        })
        .await
        .unwrap();
    let carol = srv.client.with_token(
        srv.client
            .login_with_password("carol@example.com", MEMBER_PASSWORD)
            .await
            .unwrap()
            .session_token,
    );
    let (suspended, _) = user_with_token(&owner, &srv, "suspended").await;
    let (status, _) = raw_json(
        &owner,
        "PUT",
        "/api/v2/users/suspended/status/suspend",
        Some("{}"),
    )
    .await;
    assert_eq!(status, 200);
    let (deleted, _) = user_with_token(&owner, &srv, "deleted").await;
    let (status, _) = raw_json(&owner, "DELETE", "/api/v2/users/deleted", None).await;
    assert_eq!(status, 200);
    let (expiring, _) = user_with_token(&owner, &srv, "expiring").await;
    let short: Value = expiring
        .request(
            Method::POST,
            "/api/v2/users/me/keys/tokens",
            Some(&json!({"token_name": "short", "lifetime": 1_000_000_000u64})),
        )
        .await
        .unwrap();
    let expired = srv.client.with_token(short["key"].as_str().unwrap());
    let anonymous = srv.client.without_token();

    // Alice's objects, the template and its jobs.
    let (t, v) = create_template(&owner, org, "matrix", &json!({})).await;
    let w = alice.running_workspace(t.id, "dev").await;
    let key: Value = alice
        .request(
            Method::POST,
            "/api/v2/users/me/keys/tokens",
            Some(&json!({"token_name": "alices"})),
        )
        .await
        .unwrap();
    let key_id = key["key"]
        .as_str()
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .to_string();
    let group: Value = owner
        .request(
            Method::POST,
            &format!("/api/v2/organizations/{org}/groups"),
            Some(&json!({"name": "team"})),
        )
        .await
        .unwrap();
    let (_, file) = owner
        .upload(
            "application/x-tar",
            crate::harness::echo::echo_tar(&json!({})),
        )
        .await
        .unwrap();
    let dry: Value = owner
        .request(
            Method::POST,
            &format!("/api/v2/templateversions/{}/dry-run", v.id),
            Some(&json!({})),
        )
        .await
        .unwrap();
    let fixtures = Fixtures {
        values: vec![
            ("user", alice_u["id"].as_str().unwrap().to_string()),
            ("organizationname", "coder".into()),
            ("organization", org.to_string()),
            ("workspacename", w.name.clone()),
            ("buildnumber", w.latest_build.build_number.to_string()),
            ("workspacebuild", w.latest_build.id.to_string()),
            ("workspace", w.id.to_string()),
            ("templateversionname", v.name.clone()),
            ("templateversion", v.id.to_string()),
            ("templatename", t.name.clone()),
            ("template", t.id.to_string()),
            ("groupName", "team".into()),
            ("group", group["id"].as_str().unwrap().to_string()),
            ("fileID", file.hash.to_string()),
            ("jobID", dry["id"].as_str().unwrap().to_string()),
            ("job", v.job.id.to_string()),
            ("keyname", "alices".into()),
            ("keyid", key_id),
        ],
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let client = |a: Actor| -> &Client {
        match a {
            Owner => &owner,
            UserAdmin => &ua,
            TemplateAdmin => &ta,
            Auditor => &aud,
            Member => &bob,
            OtherOrg => &carol,
            Suspended => &suspended,
            Deleted => &deleted,
            Expired => &expired,
            Anonymous => &anonymous,
        }
    };

    // Reads first, then writes, then deletes (which take fixtures away), and logging out
    // last of all; within an operation, denials before anything allowed.
    let mut rules: Vec<&(&str, &str, Rule)> = RULES.iter().collect();
    rules.sort_by_key(|(m, p, _)| {
        let order = match *m {
            "GET" => 0,
            "DELETE" => 2,
            _ => 1,
        };
        (*p == "/users/logout", order)
    });
    let mut problems = Vec::new();
    let mut checked = 0;
    for (method, path, rule) in rules {
        let mut actors: Vec<(Actor, Expect)> = ACTORS
            .iter()
            .map(|a| (*a, expect(*rule, path, *a)))
            .collect();
        let mut deleted = false;
        actors.sort_by_key(|(a, e)| (*e == Expect::Allowed, *a == Owner));
        for (actor, want) in actors {
            let url = format!("/api/v2{}", fixtures.fill(path));
            // An event stream never ends by itself: its status is what is checked.
            let (status, body) = if path.ends_with("/watch") {
                stream_status(client(actor), &url).await
            } else {
                let b = body_for(method, path).map(|b| fixtures.fill(&b));
                raw_json(client(actor), method, &url, b.as_deref()).await
            };
            checked += 1;
            let hidden_404 = status == 404
                && body["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("Resource not found"));
            // Once one actor deleted the object, the next allowed one finds it gone.
            let gone = deleted && matches!(status, 400 | 404 | 410);
            let ok = match want {
                Expect::Status(s) => status == s,
                Expect::Allowed => !matches!(status, 401 | 403) && (!hidden_404 || gone),
            };
            if *method == "DELETE" && (200..300).contains(&status) {
                deleted = true;
            }
            if !ok {
                problems.push(format!(
                    "{actor:?} {method} {path}: want {want:?}, got {status} {}",
                    body.to_string().chars().take(160).collect::<String>()
                ));
            }
        }
    }
    println!(
        "authorization matrix: {checked} cases, {} wrong",
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "{}\n{} of {checked} cases wrong",
        problems.join("\n"),
        problems.len()
    );
}

/// The status of a streaming GET (SSE or a plain GET of a WebSocket route), without waiting
/// for the stream to end.
async fn stream_status(c: &Client, url: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("{}{url}", c.base_url()));
    if let Some(t) = c.token() {
        req = req.header("Coder-Session-Token", t);
    }
    let resp = tokio::time::timeout(Duration::from_secs(10), req.send())
        .await
        .expect("the stream answered")
        .expect("request");
    let status = resp.status().as_u16();
    if status == 200 {
        return (status, Value::Null);
    }
    let body = tokio::time::timeout(Duration::from_secs(5), resp.bytes())
        .await
        .ok()
        .and_then(|b| b.ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}
