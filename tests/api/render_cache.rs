//! Rendered workspaces and builds kept in memory (crate::render_cache in coderd): served again
//! only while nothing they show has changed, whichever replica changed it, and never across
//! the moment the clock changes an agent's status.

use std::time::{Duration, Instant};

use codersdk::{Client, Workspace, WorkspaceBuild};
use serde_json::json;
use uuid::Uuid;

use crate::harness::echo::create_template;
use crate::harness::replica::{free_port, metric_at, Replica};
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{checked_client, create_owner, raw_json};

/// Renderings served from memory and rendered from the database so far, on `r`.
async fn lookups(r: &Replica) -> (i64, i64) {
    let hits = r
        .metric(r#"coderd_render_cache_lookups{outcome="hit"}"#)
        .await;
    let misses = r
        .metric(r#"coderd_render_cache_lookups{outcome="miss"}"#)
        .await;
    assert!(hits >= 0 && misses >= 0, "no render lookups in /metrics");
    (hits, misses)
}

/// What one read through `r` was: `true` if it came from memory.
async fn was_hit<T>(r: &Replica, read: impl std::future::Future<Output = T>) -> (T, bool) {
    let before = lookups(r).await;
    let value = read.await;
    let after = lookups(r).await;
    assert_eq!(
        (after.0 - before.0) + (after.1 - before.1),
        1,
        "one lookup per read (nothing else reads workspaces here)"
    );
    (value, after.0 > before.0)
}

async fn call(client: &Client, method: &str, path: &str, body: serde_json::Value) {
    let (status, resp) = raw_json(client, method, path, Some(&body.to_string())).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {resp}"
    );
}

#[tokio::test]
async fn what_one_replica_changes_the_other_serves_at_once() {
    let db_url = crate::harness::fresh_database().await;
    let mut a = Replica::spawn(&db_url, free_port(), &[("CODER_PROVISIONER_DAEMONS", "1")]);
    let mut b = Replica::spawn(&db_url, free_port(), &[("CODER_PROVISIONER_DAEMONS", "0")]);
    a.wait_healthy().await;
    b.wait_healthy().await;
    let (on_a, first) = create_owner(&checked_client(&a.url)).await;
    let token = on_a.token().unwrap().to_string();
    let on_b = checked_client(&b.url).with_token(&token);
    let org = first.organization_id;
    let (t, _) = create_template(&on_a, org, "cached", &json!({})).await;
    let w = on_a.create_workspace(t.id, "dev").await;
    let w = on_a.wait_for_status(w.id, "running").await;
    let build = w.latest_build.id;
    let read = |id: Uuid| on_b.workspace(id);

    // Rendered once, then served from memory, identical.
    let (first_read, _) = was_hit(&b, read(w.id)).await;
    let (again, hit) = was_hit(&b, read(w.id)).await;
    assert!(hit, "an unchanged workspace is served from memory");
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&first_read).unwrap()
    );
    let (_, _) = was_hit(&b, on_b.build(build)).await;
    let (_, hit) = was_hit(&b, on_b.build(build)).await;
    assert!(hit, "an unchanged build is served from memory");

    // Each change made through A shows on B's very next read.
    call(
        &on_a,
        "PATCH",
        &format!("/api/v2/templates/{}", t.id),
        json!({"display_name": "Cached Template", "icon": "/icon/cached.svg"}),
    )
    .await;
    let (seen, hit) = was_hit(&b, read(w.id)).await;
    assert!(!hit, "a template change is a miss");
    assert_eq!(
        (
            seen.template_display_name.as_str(),
            seen.template_icon.as_str()
        ),
        ("Cached Template", "/icon/cached.svg")
    );

    call(
        &on_a,
        "PUT",
        &format!("/api/v2/workspaces/{}/ttl", w.id),
        json!({"ttl_ms": 7_200_000}),
    )
    .await;
    assert_eq!(read(w.id).await.ttl_ms, Some(7_200_000));

    call(
        &on_a,
        "PUT",
        "/api/v2/users/me/profile",
        json!({"username": "renamed"}),
    )
    .await;
    assert_eq!(read(w.id).await.owner_name, "renamed");
    let b_of_build: WorkspaceBuild = on_b.build(build).await;
    assert_eq!(
        (
            b_of_build.workspace_owner_name.as_str(),
            b_of_build.initiator_name.as_str()
        ),
        ("renamed", "renamed")
    );

    // Whose favorite it is depends on who asks, not on what was cached.
    call(
        &on_a,
        "PUT",
        &format!("/api/v2/workspaces/{}/favorite", w.id),
        json!({}),
    )
    .await;
    let member = on_a
        .create_user(&codersdk::CreateUserRequest {
            email: "second@example.com".into(),
            username: "second".into(),
            password: "SomeSecurePassword!".into(),
            ..Default::default()
        })
        .await
        .expect("a second user");
    call(
        &on_a,
        "PUT",
        &format!("/api/v2/users/{}/roles", member.id),
        json!({"roles": ["owner"]}),
    )
    .await;
    let second = {
        let anon = checked_client(&b.url);
        let token = anon
            .login_with_password("second@example.com", "SomeSecurePassword!")
            .await
            .expect("the second owner logs in")
            .session_token;
        anon.with_token(token)
    };
    let (mine, _) = was_hit(&b, read(w.id)).await;
    assert!(mine.favorite, "the owner's favorite, read by the owner");
    let (theirs, hit): (Workspace, bool) = was_hit(&b, second.workspace(w.id)).await;
    assert!(hit, "the owner's read left it in memory");
    assert!(!theirs.favorite, "not the second owner's favorite");
    // Who may read it is decided on every read, cached or not.
    let (status, _) = raw_json(
        &checked_client(&b.url).with_token("bad-token"),
        "GET",
        &format!("/api/v2/workspaces/{}", w.id),
        None,
    )
    .await;
    assert_eq!(status, 401);

    // A new build: the workspace shows it at once, and its end too.
    let stop = on_a.stop(w.id).await;
    let seen = read(w.id).await;
    assert_eq!(seen.latest_build.id, stop.id);
    let stopped = on_a.wait_for_status(w.id, "stopped").await;
    assert_eq!(stopped.latest_build.id, stop.id);
    assert_eq!(read(w.id).await.latest_build.status, "stopped");
    // The old build shows its workspace's new state as well, then is served from memory.
    let old = on_b.build(build).await;
    let (old_again, hit) = was_hit(&b, on_b.build(build)).await;
    assert!(hit);
    assert_eq!(
        serde_json::to_value(&old_again).unwrap(),
        serde_json::to_value(&old).unwrap()
    );

    a.stop().await;
    b.stop().await;
}

/// The raw answer to a GET on `r`, and whether any rendering in it came from memory.
async fn raw_get(r: &Replica, client: &Client, path: &str) -> (Vec<u8>, bool) {
    let before = lookups(r).await;
    let raw = client
        .send(reqwest::Method::GET, path, None, &[])
        .await
        .expect("request");
    assert_eq!(raw.status.as_u16(), 200, "GET {path}");
    let after = lookups(r).await;
    (raw.body, after.0 > before.0)
}

/// What serde writes for `body` read as a `T`: the answer as a fresh rendering gives it.
fn reencoded<T: serde::de::DeserializeOwned + serde::Serialize>(body: &[u8]) -> String {
    let value: T = serde_json::from_slice(body).expect("the answer parses");
    serde_json::to_string(&value).unwrap() + "\n"
}

/// Kept answers are served as bytes kept with them (the asker's `favorite` and the matched
/// provisioners spliced in): byte for byte what a fresh rendering of the same state writes.
#[tokio::test]
async fn kept_answers_are_byte_for_byte_a_fresh_rendering() {
    let db_url = crate::harness::fresh_database().await;
    let mut r = Replica::spawn(&db_url, free_port(), &[("CODER_PROVISIONER_DAEMONS", "1")]);
    r.wait_healthy().await;
    let (owner, first) = create_owner(&checked_client(&r.url)).await;
    let (t, _) = create_template(&owner, first.organization_id, "bytes", &json!({})).await;
    let w = owner.create_workspace(t.id, "dev").await;
    let w = owner.wait_for_status(w.id, "running").await;
    let one = format!("/api/v2/workspaces/{}", w.id);
    let page = "/api/v2/workspaces";
    let build = format!("/api/v2/workspacebuilds/{}", w.latest_build.id);

    let mut renames = 0;
    for favorite in [false, true] {
        if favorite {
            call(&owner, "PUT", &format!("{one}/favorite"), json!({})).await;
        }
        for (path, kind) in [
            (one.as_str(), "one"),
            (page, "page"),
            (build.as_str(), "build"),
        ] {
            // A change both a workspace and its builds show, so that the next read renders
            // afresh and the one after it is served from what that kept.
            renames += 1;
            let username = format!("owner-{renames}");
            let profile = json!({ "username": username });
            call(&owner, "PUT", "/api/v2/users/me/profile", profile).await;
            let (fresh, fresh_hit) = raw_get(&r, &owner, path).await;
            assert!(
                !fresh_hit,
                "{kind}: the first read after a change renders afresh"
            );
            let (kept, kept_hit) = raw_get(&r, &owner, path).await;
            assert!(kept_hit, "{kind}: the second read is served from memory");
            assert_eq!(
                String::from_utf8_lossy(&kept),
                String::from_utf8_lossy(&fresh),
                "{kind}: kept bytes differ from a fresh rendering (favorite {favorite})"
            );
            let expected = match kind {
                "one" => reencoded::<Workspace>(&kept),
                "page" => reencoded::<codersdk::WorkspacesResponse>(&kept),
                _ => reencoded::<WorkspaceBuild>(&kept),
            };
            assert_eq!(String::from_utf8_lossy(&kept), expected, "{kind}");
            let text = String::from_utf8_lossy(&kept);
            let shown = format!(r#"owner_name":"{username}""#);
            assert!(text.contains(&shown), "{kind}: {text}");
            if kind != "build" {
                let flag = format!(r#""favorite":{favorite}"#);
                assert!(text.contains(&flag), "{kind}: not {flag}");
            }
        }
    }
    r.stop().await;
}

#[tokio::test]
async fn an_agent_times_out_in_memory_as_in_the_database() {
    let db_url = crate::harness::fresh_database().await;
    let mut r = Replica::spawn(&db_url, free_port(), &[("CODER_PROVISIONER_DAEMONS", "1")]);
    r.wait_healthy().await;
    let (owner, first) = create_owner(&checked_client(&r.url)).await;
    let echo = json!({"start": {"resources": [{"name": "dev", "type": "echo_machine",
        "agents": [{"name": "main", "operating_system": "linux", "architecture": "amd64",
                    "connection_timeout_seconds": 3}]}]}});
    let (t, _) = create_template(&owner, first.organization_id, "timeout", &echo).await;
    let w = owner.create_workspace(t.id, "dev").await;
    let w = owner.wait_for_status(w.id, "running").await;
    let status = |w: &Workspace| w.latest_build.resources[0].agents[0].status.clone();

    let seen = owner.workspace(w.id).await;
    let agent_created = seen.latest_build.resources[0].agents[0].created_at;
    if status(&seen) == "connecting" {
        let (again, hit) = was_hit(&r, owner.workspace(w.id)).await;
        // Still inside the timeout: the same answer, from memory.
        if status(&again) == "connecting" {
            assert!(hit, "an unchanged, connecting agent is served from memory");
        }
    }
    // Nothing is written when the timeout passes; the next read must see it anyway.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = owner.workspace(w.id).await;
        if status(&seen) == "timeout" {
            let waited = chrono::Utc::now() - agent_created;
            assert!(waited.num_seconds() >= 3, "timed out after {waited}");
            assert!(!seen.health.healthy);
            break;
        }
        assert_eq!(status(&seen), "connecting");
        assert!(
            Instant::now() < deadline,
            "the agent never timed out in the answer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    r.stop().await;
}

/// A page's total kept in memory (coderd-db's `list_workspaces`) is reused only while no
/// workspace it could count changed: creations, renames, dormancy and deletions made through
/// one replica show in the other's very next total.
#[tokio::test]
async fn page_totals_follow_what_another_replica_changes() {
    let db_url = crate::harness::fresh_database().await;
    let mut a = Replica::spawn(
        &db_url,
        free_port(),
        &[
            ("CODER_PROVISIONER_DAEMONS", "1"),
            ("CODER_ALLOW_WORKSPACE_RENAMES", "true"),
        ],
    );
    let mut b = Replica::spawn(&db_url, free_port(), &[("CODER_PROVISIONER_DAEMONS", "0")]);
    a.wait_healthy().await;
    b.wait_healthy().await;
    let (on_a, first) = create_owner(&checked_client(&a.url)).await;
    let on_b = checked_client(&b.url).with_token(on_a.token().unwrap());
    let (t, _) = create_template(&on_a, first.organization_id, "counted", &json!({})).await;
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        let w = on_a.create_workspace(t.id, name).await;
        ids.push(on_a.wait_for_status(w.id, "running").await.id);
    }

    let lookups = |r: &Replica| {
        let url = r.url.clone();
        async move {
            let name =
                |outcome| format!("coderd_workspace_count_cache_lookups{{outcome=\"{outcome}\"}}");
            let (hits, misses) = (
                metric_at(&url, &name("hit")).await,
                metric_at(&url, &name("miss")).await,
            );
            assert!(hits >= 0 && misses >= 0, "no count lookups in /metrics");
            (hits, misses)
        }
    };
    // The total of `q` on B, and whether it came from memory (`None`: not a keepable one).
    let total = |q: &'static str| {
        let (on_b, b) = (on_b.clone(), &b);
        async move {
            let before = lookups(b).await;
            let (status, page) = raw_json(
                &on_b,
                "GET",
                &format!("/api/v2/workspaces?limit=2&q={q}"),
                None,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            let after = lookups(b).await;
            let hit = match (after.0 - before.0, after.1 - before.1) {
                (1, 0) => Some(true),
                (0, 1) => Some(false),
                (0, 0) => None,
                other => panic!("one page, {other:?} lookups"),
            };
            (page["count"].as_i64().unwrap(), hit)
        }
    };

    assert_eq!(total("").await, (3, Some(false)), "counted once");
    assert_eq!(total("").await, (3, Some(true)), "then kept");
    assert_eq!(total("name:one").await, (1, Some(false)));
    assert_eq!(total("name:one").await, (1, Some(true)));
    assert_eq!(total("dormant:true").await.0, 0);
    // Filters on the latest build are counted every time.
    assert_eq!(total("status:running").await, (3, None));

    let w = on_a.create_workspace(t.id, "four").await;
    on_a.wait_for_status(w.id, "running").await;
    assert_eq!(total("").await, (4, Some(false)), "a creation on A");
    assert_eq!(total("").await, (4, Some(true)));

    call(
        &on_a,
        "PATCH",
        &format!("/api/v2/workspaces/{}", ids[0]),
        json!({"name": "uno"}),
    )
    .await;
    assert_eq!(total("name:one").await.0, 0, "a rename on A");
    assert_eq!(total("name:uno").await.0, 1);

    call(
        &on_a,
        "PUT",
        &format!("/api/v2/workspaces/{}/dormant", ids[1]),
        json!({"dormant": true}),
    )
    .await;
    assert_eq!(
        total("dormant:true").await,
        (1, Some(false)),
        "dormant on A"
    );

    on_a.delete(ids[2]).await;
    on_a.wait_for_status(ids[2], "deleted").await;
    assert_eq!(total("").await, (3, Some(false)), "a deletion on A");
    assert_eq!(total("").await, (3, Some(true)));
}
