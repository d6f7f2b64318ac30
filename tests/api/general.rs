use reqwest::Method;

use crate::harness::{raw_json, TestServer};

#[tokio::test]
async fn root_buildinfo_and_healthz() {
    let srv = TestServer::start().await;
    let (status, body) = raw_json(&srv.client, "GET", "/api/v2", None).await;
    assert_eq!(status, 200);
    assert!(body["message"].is_string());

    let info = srv.client.build_info().await.unwrap();
    assert_semver_at_api_level(&info.version);
    assert_eq!(info.dashboard_url, srv.url);
    assert!(uuid::Uuid::parse_str(&info.deployment_id).is_ok());

    let raw = srv
        .client
        .send(Method::GET, "/healthz", None, &[])
        .await
        .unwrap();
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, b"OK");
    assert_eq!(
        raw.headers.get("x-coder-build-version").unwrap(),
        info.version.as_str(),
        "every response carries the version /buildinfo reports"
    );
    assert_eq!(
        raw.headers.get("x-content-type-options").unwrap(),
        "nosniff"
    );
}

#[tokio::test]
async fn json_error_shapes() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;

    let (status, body) = raw_json(&owner, "GET", "/api/v2/no/such/route", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("Route not found."))
    );

    let (status, body) = raw_json(&owner, "DELETE", "/api/v2/buildinfo", None).await;
    assert_eq!(status, 405);
    assert!(body["message"].is_string(), "405 has a JSON body: {body}");

    let (status, body) = raw_json(&owner, "POST", "/api/v2/organizations", Some("{not json")).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Request body must be valid JSON.");
    assert!(!body["detail"].as_str().unwrap().is_empty());

    let (status, body) = raw_json(
        &owner,
        "POST",
        "/api/v2/organizations",
        Some(r#"{"name": 42}"#),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Request body must be valid JSON.");
    assert!(
        body["detail"].as_str().unwrap().contains("invalid type"),
        "{body}"
    );

    let (status, body) = raw_json(&owner, "GET", "/api/v2/groups/not-a-uuid", None).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Invalid UUID \"not-a-uuid\".");

    let (status, body) = raw_json(&owner, "GET", "/api/v2/users?limit=-4", None).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Query parameters have invalid values.");
    assert_eq!(body["validations"][0]["field"], "limit");

    // Go decodes null as the zero value; so do we.
    let (status, body) = raw_json(
        &owner,
        "POST",
        "/api/v2/organizations",
        Some(r#"{"name":"nulls","description":null,"icon":null}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["description"], "");
}

#[tokio::test]
async fn oversized_json_body_is_refused_and_nothing_is_written() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let big = format!(
        r#"{{"name":"big","description":"{}"}}"#,
        "x".repeat(2 << 20)
    );
    let (status, body) = raw_json(&owner, "POST", "/api/v2/organizations", Some(&big)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["message"], "Request body is too large.");
    let orgs = owner.organizations().await.unwrap();
    assert!(orgs.iter().all(|o| o.name != "big"));
}

/// Found by the fuzzer (tests/api/fuzz.rs): a NUL character reached PostgreSQL, which cannot
/// store one in text, and the answer was a 500; so did a path that is not UTF-8, as a
/// text/plain 400. Each input here is one it sent.
#[tokio::test]
async fn text_the_database_cannot_store_is_a_bad_request() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;

    for path in [
        "/api/v2/groups?organization=%00%C3%96&has_member=%F1%A7%9C%B4",
        "/api/v2/workspaces?q=%00&limit=9999999",
    ] {
        let (status, body) = raw_json(&owner, "GET", path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["message"], "Query parameters have invalid values.");
        assert!(body["validations"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("NUL"));
    }
    let (status, body) = raw_json(
        &srv.client,
        "GET",
        "/api/v2/users/me?coder_session_token=aaaaaaaaa%00-bbbbbbbbbbbbbbbbbbbbbb",
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["validations"][0]["field"], "coder_session_token");

    for path in ["/api/v2/users/%00", "/api/v2/users/me/workspace/a%00b"] {
        let (status, body) = raw_json(&owner, "GET", path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["message"], "Invalid URL path.");
    }
    let raw = owner
        .send(Method::GET, "/api/v2/workspaces/%FF%FE", None, &[])
        .await
        .unwrap();
    assert_eq!(raw.status, 400);
    let body: serde_json::Value = serde_json::from_slice(&raw.body).expect("a JSON body");
    assert_eq!(body["message"], "Invalid URL path.");

    let (status, body) = raw_json(
        &srv.client,
        "POST",
        "/api/v2/users/login",
        Some(r#"{"email":"a\u0000b@example.com","password":"x"}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "Validation failed.");
    assert_eq!(body["validations"][0]["field"], "email");
    let (status, body) = raw_json(
        &owner,
        "POST",
        "/api/v2/organizations",
        Some(r#"{"name":"ok","description":"x\u0000"}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["validations"][0]["field"], "description");

    // Other control characters are text like any other.
    let (status, body) = raw_json(
        &owner,
        "POST",
        "/api/v2/organizations",
        Some(r#"{"name":"ok","description":"x\u0001"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn graceful_shutdown_stops_listening() {
    let srv = TestServer::start().await;
    let addr = srv.url.trim_start_matches("http://").to_string();
    srv.client.build_info().await.unwrap();
    srv.stop().await;
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "nothing listens after shutdown"
    );
}

#[tokio::test]
async fn replicas_starting_together_migrate_once() {
    // An empty database, as a new deployment has: both replicas race to migrate it.
    let db_url = crate::harness::empty_database().await;
    let start = || {
        let opts = crate::harness::test_options(&db_url);
        async move { coderd::server::start(opts, Default::default()).await }
    };
    let (a, b) = tokio::join!(start(), start());
    let (a, b) = (a.expect("replica a"), b.expect("replica b"));
    for r in [&a, &b] {
        let c = crate::harness::checked_client(&format!("http://{}", r.local_addr()));
        let (status, _) = raw_json(&c, "GET", "/api/v2/users/first", None).await;
        assert_eq!(status, 404);
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn deployment_facts_for_clients() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let (status, body) = raw_json(&owner, "GET", "/api/v2/entitlements", None).await;
    assert_eq!((status, body["has_license"].as_bool()), (200, Some(false)));
    let (status, body) = raw_json(&owner, "GET", "/api/v2/experiments", None).await;
    assert_eq!((status, body), (200, serde_json::json!([])));
    let (status, body) = raw_json(&srv.client, "GET", "/api/v2/updatecheck", None).await;
    assert_eq!((status, body["current"].as_bool()), (200, Some(true)));
    let (status, body) = raw_json(&owner, "GET", "/api/v2/appearance", None).await;
    assert_eq!(
        (status, body["service_banner"]["enabled"].as_bool()),
        (200, Some(false))
    );
    let (status, body) = raw_json(
        &owner,
        "POST",
        "/api/v2/users/validate-password",
        Some(r#"{"password":"password"}"#),
    )
    .await;
    assert_eq!((status, body["valid"].as_bool()), (200, Some(false)));
    assert!(!body["details"].as_str().unwrap().is_empty());
    let (status, body) = raw_json(
        &owner,
        "POST",
        "/api/v2/users/validate-password",
        Some(r#"{"password":"SomeSecurePassword!"}"#),
    )
    .await;
    assert_eq!((status, body["valid"].as_bool()), (200, Some(true)));
    let (status, _) = raw_json(&owner, "GET", "/api/v2/", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn authcheck_answers_per_role() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (member, me) = srv.member(&owner, "ann").await;
    let body = serde_json::json!({"checks": {
        "readAllUsers": {"object": {"resource_type": "user"}, "action": "read"},
        "createTemplates": {"object": {"resource_type": "template", "organization_id": first.organization_id}, "action": "create"},
        "ownWorkspace": {"object": {"resource_type": "workspace", "owner_id": me.id, "organization_id": first.organization_id}, "action": "create"},
        "anyOrgWorkspace": {"object": {"resource_type": "workspace", "owner_id": me.id, "any_org": true}, "action": "create"},
        "unknownThing": {"object": {"resource_type": "licence"}, "action": "read"},
    }});
    let (status, as_member) = raw_json(
        &member,
        "POST",
        "/api/v2/authcheck",
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        as_member,
        serde_json::json!({
            "readAllUsers": false, "createTemplates": false, "ownWorkspace": true, "anyOrgWorkspace": true, "unknownThing": false,
        })
    );
    let (_, as_owner) =
        raw_json(&owner, "POST", "/api/v2/authcheck", Some(&body.to_string())).await;
    assert_eq!(
        (
            as_owner["readAllUsers"].as_bool(),
            as_owner["createTemplates"].as_bool()
        ),
        (Some(true), Some(true))
    );
}

/// The CLI compares `semver.MajorMinor` of its own and the server's version (Go's semver: a
/// leading `v`, build metadata ignored), so the server must report upstream's v2 API level
/// as a valid semver string, with our own version only as build metadata.
fn assert_semver_at_api_level(version: &str) {
    let (core, build) = version
        .strip_prefix('v')
        .and_then(|v| v.split_once('+'))
        .unwrap_or_else(|| panic!("{version:?} is not v<semver>+<build>"));
    let parts: Vec<u64> = core
        .split('.')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("{version:?}: bad core"))
        })
        .collect();
    assert_eq!(parts.len(), 3, "{version:?}: major.minor.patch");
    assert_eq!(parts[0], 2, "{version:?}: upstream's API is v2");
    assert!(
        parts[1] >= 30,
        "{version:?}: the API level of the CLI tested"
    );
    assert!(
        build
            .split('.')
            .all(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')),
        "{version:?}: build metadata identifiers"
    );
    assert_eq!(build, format!("coderd-rs.{}", env!("CARGO_PKG_VERSION")));
}
