//! What an attacker tries: escalating through workspace sharing, cross-site requests with the
//! session cookie (CSRF), cross-site WebSockets, archive bombs, and tokens broader than asked.
//! Each expectation is upstream Coder's (coderd/rbac, httpmw/csrf.go, coderd/files.go).

use std::time::{Duration, Instant};

use codersdk::{Client, Workspace};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::echo::create_template;
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{raw_json, ws_request, TestServer};

// -- workspace sharing ------------------------------------------------------------------------

/// What a request should get.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    /// 2xx.
    Ok,
    /// Allowed: anything but 401, 403 and 404 (the request may still be refused for its
    /// content, e.g. a build while another runs).
    Allowed,
    /// 403: may read the workspace, not do this.
    Denied,
    /// 404: may not see the workspace at all.
    Hidden,
}

fn satisfies(want: Want, status: u16) -> bool {
    match want {
        Want::Ok => (200..300).contains(&status),
        Want::Allowed => !matches!(status, 401 | 403 | 404),
        Want::Denied => status == 403,
        Want::Hidden => status == 404,
    }
}

/// The sharing roles under test: who the actor is to the workspace.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    /// The workspace's owner.
    Owner,
    /// A user given `use` in the workspace's user ACL.
    Use,
    /// A user given `admin` in the workspace's user ACL.
    Admin,
    /// A member of a group given `use`.
    GroupUse,
    /// A member whose only grant is `use` for the organization's Everyone group.
    Everyone,
    /// A member of the organization given nothing.
    Stranger,
}

const ROLES: [Role; 6] = [
    Role::Owner,
    Role::Use,
    Role::Admin,
    Role::GroupUse,
    Role::Everyone,
    Role::Stranger,
];

/// One workspace endpoint: method, path after `/api/v2/workspaces/{id}`, body, and what each
/// role gets. Upstream's actions: `use` = read, start, stop, SSH, apps; `admin` = all of that
/// plus settings and sharing, never delete; favorites are the owner's own.
struct Case {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    /// Owner, use, admin, group use, Everyone, stranger.
    want: [Want; 6],
}

fn sharing_cases() -> Vec<Case> {
    use Want::*;
    let read = [Ok, Ok, Ok, Ok, Ok, Hidden];
    let settings = [Ok, Denied, Ok, Denied, Denied, Hidden];
    let transition = [Allowed, Allowed, Allowed, Allowed, Allowed, Hidden];
    let owner_only = [Ok, Denied, Denied, Denied, Denied, Hidden];
    let case = |method, path, body: Option<Value>, want| Case {
        method,
        path,
        body,
        want,
    };
    vec![
        case("GET", "", None, read),
        case("GET", "/builds", None, read),
        case("GET", "/acl", None, read),
        case("GET", "/resolve-autostart", None, read),
        case("GET", "/timings", None, read),
        case("PATCH", "", Some(json!({"name": ""})), settings),
        case("PUT", "/autostart", Some(json!({"schedule": ""})), settings),
        case("PUT", "/ttl", Some(json!({"ttl_ms": null})), settings),
        case(
            "PUT",
            "/autoupdates",
            Some(json!({"automatic_updates": "never"})),
            settings,
        ),
        // Not dormant already: 304 to those who may change it.
        case(
            "PUT",
            "/dormant",
            Some(json!({"dormant": false})),
            [Allowed, Denied, Allowed, Denied, Denied, Hidden],
        ),
        case("POST", "/usage", Some(json!({})), settings),
        case(
            "PUT",
            "/extend",
            Some(json!({"deadline": "2099-01-01T00:00:00Z"})),
            [Allowed, Denied, Allowed, Denied, Denied, Hidden],
        ),
        case("PUT", "/favorite", None, owner_only),
        case("DELETE", "/favorite", None, owner_only),
        case(
            "PATCH",
            "/acl",
            Some(json!({"user_roles": {}, "group_roles": {}})),
            settings,
        ),
        case(
            "POST",
            "/builds",
            Some(json!({"transition": "stop"})),
            transition,
        ),
        case(
            "POST",
            "/builds",
            Some(json!({"transition": "start"})),
            transition,
        ),
        case(
            "POST",
            "/builds",
            Some(json!({"transition": "delete"})),
            [Allowed, Denied, Denied, Denied, Denied, Hidden],
        ),
    ]
}

async fn call(c: &Client, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(Value::to_string);
    raw_json(c, method, path, body.as_deref()).await
}

/// Waits until no build of the workspace is pending or running, so the next one may start.
async fn settle(owner: &Client, id: Uuid) {
    let started = Instant::now();
    loop {
        let w: Workspace = owner
            .get_json(&format!("/api/v2/workspaces/{id}?include_deleted=true"))
            .await
            .unwrap();
        if w.latest_build.job.completed_at.is_some() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "build never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sharing_roles_allow_exactly_what_upstream_allows() {
    let srv = TestServer::start().await;
    let (site_owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (t, _) = create_template(&site_owner, org, "shared", &json!({})).await;
    let (alice, _) = srv.member(&site_owner, "alice").await;
    let (use_c, use_u) = srv.member(&site_owner, "user-use").await;
    let (admin_c, admin_u) = srv.member(&site_owner, "user-admin").await;
    let (group_c, group_u) = srv.member(&site_owner, "group-use").await;
    let (every_c, _) = srv.member(&site_owner, "everyone").await;
    let (stranger_c, _) = srv.member(&site_owner, "stranger").await;
    let group: Value = site_owner
        .request(
            Method::POST,
            &format!("/api/v2/organizations/{org}/groups"),
            Some(&json!({"name": "sharers"})),
        )
        .await
        .unwrap();
    let (status, body) = call(
        &site_owner,
        "PATCH",
        &format!("/api/v2/groups/{}", group["id"].as_str().unwrap()),
        Some(&json!({"add_users": [group_u.id.to_string()]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Two workspaces of alice's: one shared with users and a group, one with Everyone.
    let shared = alice.running_workspace(t.id, "shared").await;
    let everyone = alice.running_workspace(t.id, "everyone").await;
    let acl = json!({"user_roles": {use_u.id.to_string(): "use", admin_u.id.to_string(): "admin"},
                     "group_roles": {group["id"].as_str().unwrap(): "use"}});
    let (status, body) = call(
        &alice,
        "PATCH",
        &format!("/api/v2/workspaces/{}/acl", shared.id),
        Some(&acl),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = call(
        &alice,
        "PATCH",
        &format!("/api/v2/workspaces/{}/acl", everyone.id),
        Some(&json!({"group_roles": {org.to_string(): "use"}})),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    let client = |r: Role| match r {
        Role::Owner => &alice,
        Role::Use => &use_c,
        Role::Admin => &admin_c,
        Role::GroupUse => &group_c,
        Role::Everyone => &every_c,
        Role::Stranger => &stranger_c,
    };
    let mut problems = Vec::new();
    for case in sharing_cases() {
        // Denials first, so that nothing allowed (a delete) changes what later actors see;
        // the owner goes last.
        let mut order: Vec<(usize, Role)> = ROLES.iter().copied().enumerate().collect();
        order.sort_by_key(|(i, r)| (case.want[*i] != Want::Denied, *r == Role::Owner));
        for (i, role) in order {
            let ws = if role == Role::Everyone {
                everyone.id
            } else {
                shared.id
            };
            settle(&alice, ws).await;
            let path = format!("/api/v2/workspaces/{ws}{}", case.path);
            let (status, body) = call(client(role), case.method, &path, case.body.as_ref()).await;
            if !satisfies(case.want[i], status) {
                problems.push(format!(
                    "{role:?} {} {} {}: want {:?}, got {status} {body}",
                    case.method,
                    case.path,
                    case.body.as_ref().map(Value::to_string).unwrap_or_default(),
                    case.want[i]
                ));
            }
        }
    }
    // The stranger may not see the Everyone workspace's neighbour, and the Everyone member may
    // not see the user-shared one: each grant reaches exactly its workspace.
    let (status, _) = call(
        &every_c,
        "GET",
        &format!("/api/v2/workspaces/{}", shared.id),
        None,
    )
    .await;
    if status != 404 {
        problems.push(format!(
            "the Everyone member reads the other workspace: {status}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A `use` grantee can neither raise their own role nor clear the ACL; an `admin` grantee
/// shares but cannot delete; only the owner deletes.
#[tokio::test]
async fn sharing_does_not_escalate() {
    let srv = TestServer::start().await;
    let (site_owner, first) = srv.owner().await;
    let (t, _) = create_template(&site_owner, first.organization_id, "t", &json!({})).await;
    let (alice, _) = srv.member(&site_owner, "alice").await;
    let (bob, bob_u) = srv.member(&site_owner, "bob").await;
    let (carol, carol_u) = srv.member(&site_owner, "carol").await;
    let w = alice.running_workspace(t.id, "dev").await;
    let acl_path = format!("/api/v2/workspaces/{}/acl", w.id);
    let grant = |id: Uuid, role: &str| json!({"user_roles": {id.to_string(): role}});

    let (status, _) = call(&alice, "PATCH", &acl_path, Some(&grant(bob_u.id, "use"))).await;
    assert_eq!(status, 204);
    let (status, body) = call(&bob, "PATCH", &acl_path, Some(&grant(bob_u.id, "admin"))).await;
    assert_eq!(status, 403, "a `use` grantee made themselves admin: {body}");
    let (status, body) = call(&bob, "DELETE", &acl_path, None).await;
    assert_eq!(status, 403, "a `use` grantee cleared the ACL: {body}");
    let (status, body) = call(
        &bob,
        "PUT",
        &format!("/api/v2/workspaces/{}/ttl", w.id),
        Some(&json!({"ttl_ms": 3_600_000})),
    )
    .await;
    assert_eq!(status, 403, "a `use` grantee changed the TTL: {body}");
    assert_eq!(alice.workspace(w.id).await.ttl_ms, None);

    // Stop and start are what `use` is for.
    let (status, body) = bob.post_build(w.id, "stop").await;
    assert_eq!(status, 201, "{body}");
    alice.wait_for_status(w.id, "stopped").await;
    let (status, body) = bob.post_build(w.id, "start").await;
    assert_eq!(status, 201, "{body}");
    alice.wait_for_status(w.id, "running").await;

    let (status, _) = call(&alice, "PATCH", &acl_path, Some(&grant(bob_u.id, "admin"))).await;
    assert_eq!(status, 204);
    let (status, body) = call(&bob, "PATCH", &acl_path, Some(&grant(carol_u.id, "use"))).await;
    assert_eq!(status, 204, "an admin grantee shares: {body}");
    let (status, body) = call(&carol, "GET", &format!("/api/v2/workspaces/{}", w.id), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = bob.post_build(w.id, "delete").await;
    assert_eq!(
        status, 403,
        "an admin grantee deleted the workspace: {body}"
    );
    assert_eq!(
        body["message"], "You do not have permission to delete this workspace.",
        "{body}"
    );
    let (status, body) = alice.post_build(w.id, "delete").await;
    assert_eq!(status, 201, "the owner deletes: {body}");
}

// -- CSRF --------------------------------------------------------------------------------------

const CSRF_FAILED: &str = "Something is wrong with your CSRF token. Please refresh the page. \
                           If this error persists, try clearing your cookies.";

/// Sends a request with the session only in a cookie (as a browser does on a cross-site form
/// post), plus `extra` headers; returns status and body text.
async fn with_cookie(
    srv: &TestServer,
    token: &str,
    method: Method,
    path_and_query: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path_and_query}", srv.url))
        .header("Cookie", format!("coder_session_token={token}"))
        .header("Content-Type", "text/plain")
        .body(body.to_string());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn cookie_sessions_need_proof_of_same_origin() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let token = owner.token().unwrap().to_string();
    let mint = r#"{"token_name": "stolen"}"#;
    let tokens = "/api/v2/users/me/keys/tokens";

    // A cross-site form post carries only the cookie: refused, nothing minted.
    let (status, body) = with_cookie(&srv, &token, Method::POST, tokens, &[], mint).await;
    assert_eq!((status, body.trim()), (400, CSRF_FAILED));
    let (status, body) = with_cookie(
        &srv,
        &token,
        Method::PUT,
        "/api/v2/users/me/gitsshkey",
        &[],
        "",
    )
    .await;
    assert_eq!((status, body.trim()), (400, CSRF_FAILED));
    let (_, listed) = raw_json(&owner, "GET", tokens, None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

    // Reads need no proof.
    let (status, body) = with_cookie(&srv, &token, Method::GET, "/api/v2/users/me", &[], "").await;
    assert_eq!(status, 200, "{body}");

    // The header equal to the cookie, or the query parameter equal to it, is proof.
    let (status, body) = with_cookie(
        &srv,
        &token,
        Method::POST,
        tokens,
        &[("Coder-Session-Token", &token)],
        r#"{"token_name": "header"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = with_cookie(
        &srv,
        &token,
        Method::POST,
        &format!("{tokens}?coder_session_token={token}"),
        &[],
        r#"{"token_name": "query"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // A different header token is called out.
    let (status, body) = with_cookie(
        &srv,
        &token,
        Method::POST,
        tokens,
        &[("Coder-Session-Token", "aaaaaaaaaa-bbbbbbbbbbbbbbbbbbbbbb")],
        mint,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.starts_with("CSRF error encountered."), "{body}");

    // A valid CSRF token (masked, as pages send it) is proof; a wrong one is not.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let real = [42u8; 32];
    let pad = [7u8; 32];
    let masked: Vec<u8> = pad
        .iter()
        .copied()
        .chain(real.iter().zip(pad.iter()).map(|(r, p)| r ^ p))
        .collect();
    let cookies = format!(
        "coder_session_token={token}; csrf_token={}",
        b64.encode(real)
    );
    for (sent, want) in [(b64.encode(&masked), 201), (b64.encode([1u8; 32]), 400)] {
        let resp = reqwest::Client::new()
            .post(format!("{}{tokens}", srv.url))
            .header("Cookie", &cookies)
            .header("X-CSRF-TOKEN", sent)
            .body(format!(r#"{{"token_name": "csrf-{want}"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want);
    }

    // Exempt: creating the first user (here: already created, so 409, not a CSRF error).
    let (status, body) = with_cookie(
        &srv,
        &token,
        Method::POST,
        "/api/v2/users/first",
        &[],
        r#"{"email": "x@example.com", "username": "x", "password": "SomeSecurePassword!"}"#,
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // Without the cookie there is nothing to forge.
    let (status, body) = raw_json(&owner, "POST", tokens, Some(r#"{"token_name": "plain"}"#)).await;
    assert_eq!(status, 201, "{body}");
}

// -- cross-site WebSockets ---------------------------------------------------------------------

async fn ws_status(srv: &TestServer, path: &str, token: &str, origin: Option<&str>) -> u16 {
    let mut req = ws_request(&srv.url, path, token);
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, resp)) => {
            let _ = ws.close(None).await;
            resp.status().as_u16()
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("connecting to {path}: {e}"),
    }
}

#[tokio::test]
async fn websockets_refuse_other_sites() {
    let srv =
        TestServer::start_with(|o| o.access_url = Some("https://coder.example.com".into())).await;
    let (owner, first) = srv.owner().await;
    let token = owner.token().unwrap().to_string();
    let (t, v) = create_template(&owner, first.organization_id, "t", &json!({})).await;
    let w = owner.running_workspace(t.id, "dev").await;
    let own_origin = srv.url.clone();
    let paths = [
        format!("/api/v2/workspaces/{}/watch-ws", w.id),
        format!("/api/v2/workspacebuilds/{}/logs?follow", w.latest_build.id),
        format!("/api/v2/templateversions/{}/dynamic-parameters", v.id),
    ];
    for path in &paths {
        assert_eq!(
            ws_status(&srv, path, &token, Some("https://evil.example.net")).await,
            403,
            "{path} from another site"
        );
        assert_eq!(
            ws_status(&srv, path, &token, Some("null")).await,
            403,
            "{path} from an opaque origin"
        );
        assert_eq!(
            ws_status(&srv, path, &token, None).await,
            101,
            "{path} with no Origin"
        );
        assert_eq!(
            ws_status(&srv, path, &token, Some(&own_origin)).await,
            101,
            "{path} from the server's own host"
        );
        assert_eq!(
            ws_status(&srv, path, &token, Some("https://coder.example.com")).await,
            101,
            "{path} from the access URL"
        );
    }
}

// -- archive bombs -----------------------------------------------------------------------------

/// A zip of `entries` files of `each` zero bytes, deflated (about 1000:1). The first entry is
/// compressed once and copied raw, so building a 1 GiB bomb costs one MiB of deflating.
fn zip_bomb(entries: usize, each: usize) -> Vec<u8> {
    use std::io::{Cursor, Write};
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut one = zip::ZipWriter::new(Cursor::new(Vec::new()));
    one.start_file("zeros-0", opts).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = each;
    while left > 0 {
        let n = left.min(chunk.len());
        one.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    let one = one.finish().unwrap().into_inner();
    let mut src = zip::ZipArchive::new(Cursor::new(one)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..entries {
        let file = src.by_index_raw(0).unwrap();
        out.raw_copy_file_rename(file, format!("zeros-{i}"))
            .unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// A tar that is all headers: more entries than any template needs.
fn tar_of_many(entries: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("f{i}"), std::io::empty())
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// A GNU sparse file: a few bytes on the wire, any size once unpacked.
fn sparse_tar() -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path("sparse").unwrap();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn kib(status_line: &str) -> u64 {
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// (current RSS, peak RSS) of a process, in KiB.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(kib)
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test]
async fn archive_bombs_are_refused_fast_in_bounded_memory() {
    // A process of its own, so that its memory is the server's alone.
    let db_url = crate::harness::fresh_database().await;
    use crate::harness::replica::{free_port, Replica};
    let mut srv = Replica::spawn(&db_url, free_port(), &[("CODER_PROVISIONER_DAEMONS", "0")]);
    srv.wait_healthy().await;
    let url = srv.url.clone();
    let anon = crate::harness::checked_client(&url);
    let (owner, _) = crate::harness::create_owner(&anon).await;
    let (idle, _) = rss(srv.child.id());

    let bombs: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "200 MiB in one zip entry",
            "application/zip",
            zip_bomb(1, 200 << 20),
        ),
        (
            "1 GiB in 1024 zip entries",
            "application/zip",
            zip_bomb(1024, 1 << 20),
        ),
        (
            "20,000 tar entries",
            "application/x-tar",
            tar_of_many(20_000),
        ),
        ("a sparse tar entry", "application/x-tar", sparse_tar()),
    ];
    for (what, ct, data) in bombs {
        let size = data.len();
        let sent = Instant::now();
        let raw = owner
            .send(Method::POST, "/api/v2/files", Some((ct, data)), &[])
            .await
            .unwrap();
        let took = sent.elapsed();
        let body = String::from_utf8_lossy(&raw.body).into_owned();
        assert_eq!(raw.status.as_u16(), 400, "{what} ({size} bytes): {body}");
        eprintln!("{what}: {size} bytes uploaded, 400 after {took:?}: {body}");
    }
    let (_, peak) = rss(srv.child.id());
    drop(srv);
    eprintln!("coderd RSS: idle {idle} KiB, peak {peak} KiB");
    assert!(
        peak.saturating_sub(idle) < 150 * 1024,
        "the bombs cost {} MiB above idle",
        (peak - idle) / 1024
    );

    // Honest archives near the limit still go through (and a zip is stored as tar).
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let ok = zip_bomb(90, 1 << 20);
    let raw = owner
        .send(
            Method::POST,
            "/api/v2/files",
            Some(("application/zip", ok)),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        raw.status.as_u16(),
        201,
        "{}",
        String::from_utf8_lossy(&raw.body)
    );
}

// -- token scopes ------------------------------------------------------------------------------

#[tokio::test]
async fn tokens_are_never_broader_than_asked() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let path = "/api/v2/users/me/keys/tokens";
    for body in [
        json!({"token_name": "narrow", "scopes": ["user:read_personal"]}),
        json!({"token_name": "narrow2", "scope": "application_connect"}),
        json!({"token_name": "mixed", "scopes": ["all", "workspace:read"]}),
    ] {
        let (status, resp) = call(&owner, "POST", path, Some(&body)).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_eq!(resp["message"], "Failed to create API key.", "{resp}");
    }
    let (status, resp) = call(
        &owner,
        "POST",
        path,
        Some(&json!({"token_name": "typed", "scopes": 0})),
    )
    .await;
    assert_eq!(status, 400, "a wrongly typed field: {resp}");
    let (_, listed) = raw_json(&owner, "GET", path, None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

    for (name, body) in [
        ("all", json!({"token_name": "all", "scopes": ["all"]})),
        (
            "coder-all",
            json!({"token_name": "coder-all", "scopes": ["coder:all"]}),
        ),
        ("legacy", json!({"token_name": "legacy", "scope": "all"})),
    ] {
        let (status, resp) = call(&owner, "POST", path, Some(&body)).await;
        assert_eq!(status, 201, "{name}: {resp}");
    }
}
