//! What real Coder clients (the CLI, VS Code, JetBrains, terraform-provider-coderd, the
//! dashboard) were seen to need beyond the reference: each behaviour here is upstream's.
//!
//! Longer than 800 lines on purpose: one test per client behaviour, each independent.

use codersdk::{Client, Template, UpdateTemplateMeta};
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::echo::create_template;
use crate::harness::{raw_json, TestServer};

async fn get<T: serde::de::DeserializeOwned>(client: &Client, path: &str) -> T {
    client
        .request::<(), T>(Method::GET, path, None)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

async fn template_names(client: &Client, q: &str) -> Vec<String> {
    let path = format!("/api/v2/templates?q={}", urlencoding(q));
    let list: Vec<Template> = get(client, &path).await;
    list.into_iter().map(|t| t.name).collect()
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn template_search_follows_upstreams_grammar() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (member, _) = srv.member(&owner, "amy").await;
    for name in ["docker", "docker-gpu", "kube"] {
        create_template(&owner, org, name, &json!({})).await;
    }
    let (old, _) = create_template(&owner, org, "legacy", &json!({})).await;
    let meta = UpdateTemplateMeta {
        display_name: Some("Old Docker".into()),
        deprecation_message: Some("use docker".into()),
        ..Default::default()
    };
    let _: Template = owner
        .request(
            Method::PATCH,
            &format!("/api/v2/templates/{}", old.id),
            Some(&meta),
        )
        .await
        .unwrap();

    // `coder create -t docker` asks for exact_name: only that template, never docker-gpu.
    assert_eq!(
        template_names(&owner, "exact_name:docker").await,
        ["docker"]
    );
    assert_eq!(
        template_names(&owner, "exact_name:DOCKER").await,
        ["docker"]
    );
    assert_eq!(
        template_names(&owner, "name:dock").await,
        ["docker", "docker-gpu"]
    );
    // Deprecated templates are left out unless asked for.
    assert_eq!(
        template_names(&owner, "").await,
        ["docker", "docker-gpu", "kube"]
    );
    assert_eq!(template_names(&owner, "deprecated:true").await, ["legacy"]);
    // A bare word matches the display name, or the name where there is none.
    assert_eq!(
        template_names(&owner, "docker deprecated:false").await,
        ["docker", "docker-gpu"]
    );
    assert_eq!(
        template_names(&owner, "\"old doc\" deprecated:t").await,
        ["legacy"]
    );
    assert_eq!(
        template_names(&owner, "author:me exact_name:kube").await,
        ["kube"]
    );
    assert!(template_names(&member, "author:me").await.is_empty());
    assert!(template_names(&owner, "has-ai-task:true").await.is_empty());
    assert_eq!(template_names(&owner, "has-ai-task:false").await.len(), 3);
    assert_eq!(
        template_names(&owner, &format!("ids:{},{}", old.id, uuid::Uuid::nil())).await,
        Vec::<String>::new(),
        "ids: keeps the default deprecated:false"
    );
    assert_eq!(
        template_names(&owner, "organization:coder exact_name:kube").await,
        ["kube"]
    );
    // The organization's list reads the same query.
    let list: Vec<Template> = get(
        &owner,
        &format!("/api/v2/organizations/{org}/templates?q=exact_name%3Akube"),
    )
    .await;
    assert_eq!(list.len(), 1);
    // Members see only what they may read, searched the same way.
    assert_eq!(template_names(&member, "name:kube").await, ["kube"]);

    for (q, field) in [
        ("colour:red", "colour"),
        ("deprecated:maybe", "deprecated"),
        ("a b", "display_name"),
        ("organization:nowhere", "organization"),
        ("ids:nope", "ids"),
    ] {
        let (status, body): (u16, Value) = raw_json(
            &owner,
            "GET",
            &format!("/api/v2/templates?q={}", urlencoding(q)),
            None,
        )
        .await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["message"], "Invalid template search query.", "{q}");
        assert_eq!(body["validations"][0]["field"], field, "{q}: {body}");
    }
}

#[tokio::test]
async fn trailing_slashes_are_served_like_the_path_without() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (t, _) = create_template(&owner, org, "docker", &json!({})).await;
    for path in [
        format!("/api/v2/templates/{}/versions", t.id),
        "/api/v2/users".to_string(),
        format!("/api/v2/organizations/{org}/members"),
        "/api/v2/users/me".to_string(),
        "/api/v2/templates?q=exact_name%3Adocker".to_string(),
        "/api/v2".to_string(),
    ] {
        let (plain_status, plain) = raw_json(&owner, "GET", &path, None).await;
        let slashed = match path.split_once('?') {
            Some((p, q)) => format!("{p}/?{q}"),
            None => format!("{path}/"),
        };
        let (status, body) = raw_json(&owner, "GET", &slashed, None).await;
        assert_eq!((plain_status, status), (200, 200), "{slashed}: {body}");
        assert_eq!(plain, body, "{slashed}");
    }
    let (status, body) = raw_json(
        &owner,
        "GET",
        "/api/v2/templates?q=exact_name%3Adocker",
        None,
    )
    .await;
    assert_eq!((status, body.as_array().map(Vec::len)), (200, Some(1)));
    // Writes too: creating a user through `/users/`.
    let (status, body) = raw_json(
        &owner,
        "POST",
        "/api/v2/users/",
        Some(&format!(
            r#"{{"email":"sam@example.com","username":"sam","password":"{}","organization_ids":["{org}"]}}"#,
            crate::harness::MEMBER_PASSWORD
        )),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Unknown routes stay unknown.
    let (status, body) = raw_json(&owner, "GET", "/api/v2/no-such-thing/", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("Route not found."))
    );
}

#[tokio::test]
async fn entitlements_name_what_this_server_implements() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let (status, body) = raw_json(&owner, "GET", "/api/v2/entitlements", None).await;
    assert_eq!(status, 200, "{body}");
    let features = body["features"].as_object().unwrap();
    // terraform-provider-coderd checks these before managing groups, template ACLs,
    // require_active_version and scheduling fields; the dashboard before showing their UI.
    for name in [
        "template_rbac",
        "access_control",
        "advanced_template_scheduling",
        "user_role_management",
        "multiple_organizations",
    ] {
        assert_eq!(
            features[name],
            json!({"entitlement": "entitled", "enabled": true}),
            "{name}"
        );
    }
    // What this server does not do stays unlicensed (PUT /appearance answers 403, there is
    // no audit log, no custom roles, no external provisioners).
    for name in [
        "appearance",
        "audit_log",
        "custom_roles",
        "external_provisioner_daemons",
        "user_limit",
        "high_availability",
    ] {
        assert_eq!(
            features[name],
            json!({"entitlement": "not_entitled", "enabled": false}),
            "{name}"
        );
    }
    assert_eq!(features.len(), 26, "every upstream feature is listed");
    assert_eq!(body["has_license"], false);
    assert_eq!(body["warnings"], json!([]));
}

/// `coder list --shared-with-me` asks for `shared_with_user:<my id>`.
#[tokio::test]
async fn workspace_search_finds_what_is_shared() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (amy, amy_user) = srv.member(&owner, "amy").await;
    let (t, _) = create_template(&owner, org, "docker", &json!({})).await;
    let mut ids = Vec::new();
    for name in ["mine", "lent", "grouped"] {
        let (status, body) = raw_json(
            &owner,
            "POST",
            "/api/v2/users/me/workspaces",
            Some(&json!({"name": name, "template_id": t.id}).to_string()),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/workspaces/{}/acl", ids[1]),
        Some(&json!({"user_roles": {amy_user.id.to_string(): "use"}}).to_string()),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let group: Value = owner
        .request(
            Method::POST,
            &format!("/api/v2/organizations/{org}/groups"),
            Some(&json!({"name": "devs"})),
        )
        .await
        .unwrap();
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/workspaces/{}/acl", ids[2]),
        Some(&json!({"group_roles": {group["id"].as_str().unwrap(): "use"}}).to_string()),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    let names = |client: Client, q: String| async move {
        let path = format!("/api/v2/workspaces?q={}", urlencoding(&q));
        let body: Value = get(&client, &path).await;
        let mut names: Vec<String> = body["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(amy.clone(), format!("shared_with_user:{}", amy_user.id)).await,
        ["lent"]
    );
    assert_eq!(
        names(owner.clone(), "shared_with_user:amy".into()).await,
        ["lent"]
    );
    assert_eq!(
        names(owner.clone(), "shared:true".into()).await,
        ["grouped", "lent"]
    );
    assert_eq!(names(owner.clone(), "shared:false".into()).await, ["mine"]);
    assert_eq!(
        names(owner.clone(), "shared_with_group:devs".into()).await,
        ["grouped"]
    );
    assert_eq!(
        names(owner.clone(), "shared_with_group:coder/devs".into()).await,
        ["grouped"]
    );
    assert!(names(owner.clone(), "has-ai-task:true".into())
        .await
        .is_empty());
    assert_eq!(
        names(owner.clone(), "has-ai-task:false".into()).await.len(),
        3
    );
    for (q, field) in [
        ("shared_with_user:nobody", "shared_with_user"),
        ("shared_with_group:nothing", "shared_with_group"),
        ("shared:perhaps", "shared"),
    ] {
        let (status, body) = raw_json(
            &owner,
            "GET",
            &format!("/api/v2/workspaces?q={}", urlencoding(q)),
            None,
        )
        .await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["validations"][0]["field"], field, "{q}: {body}");
    }
}

#[tokio::test]
async fn routes_clients_call_beyond_the_reference() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (amy, amy_user) = srv.member(&owner, "amy").await;

    // One member, shaped like the members list's entries (upstream's swagger has no GET here).
    let body: Value = get(&owner, &format!("/api/v2/organizations/{org}/members/amy")).await;
    let problems = crate::harness::schema::spec().check_value(
        &json!({"$ref": "#/definitions/codersdk.OrganizationMemberWithUserData"}),
        &body,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(body["user_id"], amy_user.id.to_string());
    assert_eq!(body["organization_id"], org.to_string());
    let (status, _) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/organizations/{org}/members/nobody"),
        None,
    )
    .await;
    assert_eq!(
        status, 400,
        "no such user: as the other member routes answer"
    );
    let list: Value = get(&amy, &format!("/api/v2/organizations/{org}/members/me")).await;
    assert_eq!(list["username"], "amy");

    // The organization's assignable roles: owners may assign all, members none.
    let roles: Value = get(
        &owner,
        &format!("/api/v2/organizations/{org}/members/roles"),
    )
    .await;
    let names: Vec<&str> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"organization-admin"), "{names:?}");
    assert!(
        !names.contains(&"organization-member"),
        "implied, not assignable"
    );
    assert!(roles
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["assignable"] == true && r["organization_id"] == org.to_string()));
    let (status, body) = raw_json(
        &amy,
        "GET",
        &format!("/api/v2/organizations/{org}/members/roles"),
        None,
    )
    .await;
    if status == 200 {
        assert!(body
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["assignable"] == false));
    } else {
        assert_eq!(status, 404, "{body}");
    }

    let ssh: Value = get(&amy, "/api/v2/deployment/ssh").await;
    assert_eq!(ssh["hostname_prefix"], "coder.");
    assert_eq!(ssh["hostname_suffix"], "coder");

    let regions: Value = get(&amy, "/api/v2/regions").await;
    let info = owner.build_info().await.unwrap();
    assert_eq!(regions["regions"][0]["name"], "primary");
    assert_eq!(regions["regions"][0]["id"], info.deployment_id);
    assert_eq!(regions["regions"][0]["path_app_url"], info.dashboard_url);

    let safe: Value = get(&amy, "/api/v2/experiments/available").await;
    assert_eq!(safe, json!({"safe": []}));

    let lt: Value = get(&amy, "/api/v2/users/me/login-type").await;
    assert_eq!(lt, json!({"login_type": "password"}));
    let (status, _) = raw_json(&amy, "GET", "/api/v2/users/owner/login-type", None).await;
    assert_eq!(
        status, 400,
        "members do not see other users: they answer as users that do not exist"
    );

    // Appearance: stored per user; unknown fonts refused.
    let a: Value = get(&amy, "/api/v2/users/me/appearance").await;
    assert_eq!(a, json!({"theme_preference": "", "terminal_font": ""}));
    let (status, body) = raw_json(
        &amy,
        "PUT",
        "/api/v2/users/me/appearance",
        Some(r#"{"theme_preference":"dark","terminal_font":"fira-code"}"#),
    )
    .await;
    assert_eq!(
        (status, body.clone()),
        (
            200,
            json!({"theme_preference": "dark", "terminal_font": "fira-code"})
        )
    );
    let a: Value = get(&amy, "/api/v2/users/me/appearance").await;
    assert_eq!(a["terminal_font"], "fira-code");
    let me: Value = get(&amy, "/api/v2/users/me").await;
    assert_eq!(me["theme_preference"], "dark");
    let (status, body) = raw_json(
        &amy,
        "PUT",
        "/api/v2/users/me/appearance",
        Some(r#"{"theme_preference":"dark","terminal_font":"comic-sans"}"#),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Unsupported font family."))
    );
    let (status, _) = raw_json(
        &amy,
        "PUT",
        "/api/v2/users/owner/appearance",
        Some(r#"{"theme_preference":"dark","terminal_font":""}"#),
    )
    .await;
    assert_eq!(
        status, 400,
        "another user answers as one that does not exist"
    );

    // Autofill: the values last given to the template's parameters.
    let echo = json!({"parse": {"parameters": [
        {"name": "cpu", "type": "number", "mutable": true, "default_value": "2", "options": []},
        {"name": "token", "type": "string", "mutable": true, "default_value": "", "ephemeral": true, "options": []}
    ]}});
    let (t, _) = create_template(&owner, org, "docker", &echo).await;
    let (status, body) = raw_json(
        &amy,
        "POST",
        "/api/v2/users/me/workspaces",
        Some(
            &json!({"name": "dev", "template_id": t.id, "rich_parameter_values": [
            {"name": "cpu", "value": "4"}, {"name": "token", "value": "secret"}]})
            .to_string(),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let params: Value = get(
        &amy,
        &format!("/api/v2/users/me/autofill-parameters?template_id={}", t.id),
    )
    .await;
    assert_eq!(
        params,
        json!([{"name": "cpu", "value": "4"}]),
        "ephemeral values are not kept"
    );
    for query in [
        "",
        "?template_id=nope",
        &format!("?template_id={}&x=1", t.id),
    ] {
        let (status, body) = raw_json(
            &amy,
            "GET",
            &format!("/api/v2/users/me/autofill-parameters{query}"),
            None,
        )
        .await;
        assert_eq!(
            (status, body["message"].as_str()),
            (400, Some("Invalid query parameters.")),
            "{query}"
        );
    }
    let none: Value = get(
        &owner,
        &format!("/api/v2/users/me/autofill-parameters?template_id={}", t.id),
    )
    .await;
    assert_eq!(none, json!([]));
}

#[tokio::test]
async fn cli_auth_page_hands_out_a_session_token() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{}/cli-auth", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let text = page.text().await.unwrap();
    assert!(
        text.contains("<form method=\"post\" action=\"/cli-auth\">"),
        "{text}"
    );

    let bad = http
        .post(format!("{}/cli-auth", srv.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=owner%40example.com&password=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("Incorrect email or password."));

    let signed_in = http
        .post(format!("{}/cli-auth", srv.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "email=owner%40example.com&password={}",
            urlencoding(crate::harness::OWNER_PASSWORD)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("coder_session_token="), "{cookie}");
    let token = token_in(&signed_in.text().await.unwrap());
    let me = crate::harness::checked_client(&srv.url).with_token(&token);
    assert_eq!(
        me.request::<(), Value>(Method::GET, "/api/v2/users/me", None)
            .await
            .unwrap()["username"],
        "owner"
    );

    // Signed in already (the cookie): a fresh token each time.
    let session = cookie.split(';').next().unwrap().to_string();
    let again = http
        .get(format!("{}/cli-auth", srv.url))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let second = token_in(&again.text().await.unwrap());
    assert_ne!(second, token);
    let me = crate::harness::checked_client(&srv.url).with_token(&second);
    assert!(me
        .request::<(), Value>(Method::GET, "/api/v2/users/me", None)
        .await
        .is_ok());
    // A stale cookie gets the form, not an error.
    let stale = http
        .get(format!("{}/cli-auth", srv.url))
        .header(
            "cookie",
            "coder_session_token=abcdefghij-0123456789abcdefghijkl",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert!(stale.text().await.unwrap().contains("<form"));
    drop(owner);
}

fn token_in(page: &str) -> String {
    let start = page.find("<pre id=\"token\">").expect("a token") + "<pre id=\"token\">".len();
    let end = page[start..].find("</pre>").unwrap() + start;
    page[start..end].to_string()
}

/// Details of upstream's wire format its own specification (through schemathesis) found us
/// differing on.
#[tokio::test]
async fn wire_details_as_upstream_sends_them() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (amy, amy_user) = srv.member(&owner, "amy").await;
    let (t, _) = create_template(&owner, org, "docker", &json!({})).await;

    // Build-time statistics: Go field names, no JSON tags.
    let raw: Value = get(&owner, &format!("/api/v2/templates/{}", t.id)).await;
    let start = raw["build_time_stats"]["start"].as_object().unwrap();
    assert!(
        start.contains_key("P50") && start.contains_key("P95"),
        "{start:?}"
    );
    assert!(!start.contains_key("p50"));

    // A version outside any template: the zero UUID, not null.
    let v = crate::harness::echo::create_version(&owner, org, &json!({}), None).await;
    let raw: Value = get(&owner, &format!("/api/v2/templateversions/{}", v.id)).await;
    assert_eq!(raw["template_id"], "00000000-0000-0000-0000-000000000000");

    // A build's state is labelled JSON.
    let (status, ws) = raw_json(
        &owner,
        "POST",
        "/api/v2/users/me/workspaces",
        Some(&json!({"name": "dev", "template_id": t.id}).to_string()),
    )
    .await;
    assert_eq!(status, 201, "{ws}");
    let build = ws["latest_build"]["id"].as_str().unwrap();
    let state = owner
        .send(
            Method::GET,
            &format!("/api/v2/workspacebuilds/{build}/state"),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(state.status, 200);
    assert_eq!(state.headers["content-type"], "application/json");

    // Query values upstream refuses.
    let ws_id = ws["id"].as_str().unwrap();
    let (status, body) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/workspaces/{ws_id}?include_deleted=null"),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "Invalid boolean value \"null\" for \"include_deleted\" query param."
    );
    let (status, _) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/workspaces/{ws_id}?include_deleted=1"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    for query in ["colour=red", "organization=coder&organization=coder"] {
        let (status, body) =
            raw_json(&owner, "GET", &format!("/api/v2/groups?{query}"), None).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["message"], "Query parameters have invalid values.");
    }
    let (status, _) = raw_json(&owner, "GET", "/api/v2/groups?organization=coder", None).await;
    assert_eq!(status, 200);
    // Go reads the first of repeated values: `after=x&after=1` is not an integer.
    let (status, body) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/workspacebuilds/{build}/logs?after=x&after=1"),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // ACL patches: a null role is Go's empty role, so its key must still be a UUID.
    let acl = format!("/api/v2/templates/{}/acl", t.id);
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &acl,
        Some(r#"{"user_perms":{"not-a-uuid":null}}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["validations"][0]["field"], "user_perms");
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &acl,
        Some(&json!({"user_perms": {amy_user.id.to_string(): "use"}}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &acl,
        Some(&format!(r#"{{"user_perms":{{"{}":null}}}}"#, amy_user.id)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let listed: Value = get(&owner, &acl).await;
    assert_eq!(listed["users"], json!([]), "null removed amy: {listed}");
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/workspaces/{ws_id}/acl"),
        Some(r#"{"group_roles":{"nope":null}}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // validate-password needs a password.
    for body in ["{}", r#"{"password":""}"#] {
        let (status, resp) =
            raw_json(&amy, "POST", "/api/v2/users/validate-password", Some(body)).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_eq!(resp["validations"][0]["field"], "password");
    }
    // A NUL in a member the request type ignores is ignored, as Go ignores it; in a member
    // it reads, refused (the database cannot store it).
    let (status, resp) = raw_json(
        &amy,
        "POST",
        "/api/v2/users/validate-password",
        Some(r#"{"password":"SomeSecurePassword!","note":"a\u0000b"}"#),
    )
    .await;
    assert_eq!(
        (status, resp["valid"].as_bool()),
        (200, Some(true)),
        "{resp}"
    );
    let (status, resp) = raw_json(
        &amy,
        "POST",
        "/api/v2/users/validate-password",
        Some(r#"{"password":"a\u0000b"}"#),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["validations"][0]["field"], "password");
}

/// `GET /deployment/config` (the dashboard's deployment settings, `coder support bundle`):
/// this server's settings under upstream's keys, the database URL never, for owners and
/// auditors only.
#[tokio::test]
async fn deployment_config_reports_the_settings_without_secrets() {
    let srv = TestServer::start_with(|o| {
        o.session_duration = std::time::Duration::from_secs(36 * 3600);
        o.proxy_trusted_headers = vec!["X-Forwarded-For".into()];
        o.allow_workspace_renames = true;
    })
    .await;
    let (owner, _) = srv.owner().await;
    let (status, body) = raw_json(&owner, "GET", "/api/v2/deployment/config", None).await;
    assert_eq!(status, 200, "{body}");
    let config = &body["config"];
    assert_eq!(config["access_url"], srv.url.as_str());
    assert_eq!(
        config["session_lifetime"]["default_duration"],
        36 * 3600 * 1_000_000_000u64
    );
    assert_eq!(config["proxy_trusted_headers"], json!(["X-Forwarded-For"]));
    assert_eq!(config["allow_workspace_renames"], true);
    assert_eq!(config["provisioner"]["daemon_types"], json!(["echo"]));
    assert_eq!(config["rate_limit"]["disable_all"], true);
    // Go's omitempty: a false setting of the top level is left out, sections stay.
    assert_eq!(config.get("disable_password_auth"), None);
    assert!(config["oidc"].is_object(), "{config}");
    assert_eq!(config.get("pg_connection_url"), None);
    let text = body.to_string();
    assert!(
        !text.contains(&srv.db_url),
        "the database URL (with its password) is a secret"
    );

    let options = body["options"].as_array().unwrap();
    let option = |env: &str| {
        options
            .iter()
            .find(|o| o["env"] == env)
            .unwrap_or_else(|| panic!("no option {env} in {options:?}"))
    };
    let http = option("CODER_HTTP_ADDRESS");
    assert_eq!(http["name"], "HTTP Address");
    assert_eq!(http["flag"], "http-address");
    assert_eq!(http["default"], "127.0.0.1:3000");
    assert_eq!(http["value"], "127.0.0.1:0");
    assert_eq!(http["group"]["name"], "HTTP");
    assert_eq!(http["group"]["parent"]["name"], "Networking");
    let session = option("CODER_SESSION_DURATION");
    assert_eq!(session["value"], 36 * 3600 * 1_000_000_000u64);
    assert_eq!(session["annotations"]["format_duration"], "true");
    let pg = option("CODER_PG_CONNECTION_URL");
    assert_eq!(pg.get("value"), None, "{pg}");
    assert_eq!(pg["annotations"]["secret"], "true");
    assert_eq!(option("CODER_PROVISIONER_POLL_INTERVAL")["hidden"], true);

    // Upstream's action: read on deployment_config, which owners and auditors have.
    let (member, user) = srv.member(&owner, "amy").await;
    let (status, _) = raw_json(&member, "GET", "/api/v2/deployment/config", None).await;
    assert_eq!(status, 403);
    let (status, body) = raw_json(
        &owner,
        "PUT",
        &format!("/api/v2/users/{}/roles", user.id),
        Some(r#"{"roles": ["auditor"]}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = raw_json(&member, "GET", "/api/v2/deployment/config", None).await;
    assert_eq!(status, 200, "{body}");
    srv.stop().await;
}
