//! Realtime: workspace watchers (SSE and WebSocket), log following, recovery after the
//! database restarts, no leaks, and several real processes acting as one deployment.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use codersdk::{ProvisionerJobLog, Workspace};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::harness::echo::create_template;
use crate::harness::replica::{free_port, Replica};
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{checked_client, create_owner, schema, ws_request, TestServer};

/// A server-sent-events reader over a streaming HTTP response.
pub(crate) struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    pub(crate) async fn open(base: &str, token: &str, workspace: Uuid) -> Sse {
        let resp = reqwest::Client::new()
            .get(format!("{base}/api/v2/workspaces/{workspace}/watch"))
            .header("Coder-Session-Token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        assert_eq!(resp.headers()["x-accel-buffering"], "no");
        assert_eq!(resp.headers()["cache-control"], "no-cache");
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// A watch already opened (through a proxy, which consumes `X-Accel-Buffering`).
    pub(crate) fn from_response(resp: reqwest::Response) -> Sse {
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event: (type, data if any).
    pub(crate) async fn next(&mut self, within: Duration) -> Option<(String, Option<Value>)> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let mut kind = String::new();
                let mut data = None;
                for line in frame.lines() {
                    if let Some(k) = line.strip_prefix("event: ") {
                        kind = k.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(d).expect("data lines are JSON"));
                    }
                }
                return Some((kind, data));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(std::str::from_utf8(&bytes).unwrap()),
                _ => return None,
            }
        }
    }

    /// Reads events until a workspace whose latest build has `status` arrives.
    pub(crate) async fn until_status(&mut self, status: &str) -> Workspace {
        // Generous: several server processes share two cores with the rest of the suite.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (kind, data) = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no {status} event"));
            if kind == "data" {
                let v = data.unwrap();
                check_workspace(&v);
                let w: Workspace = serde_json::from_value(v).unwrap();
                if w.latest_build.status == status {
                    return w;
                }
            }
        }
    }
}

fn check_workspace(v: &Value) {
    let schema = json!({"$ref": "#/definitions/codersdk.Workspace"});
    let problems = schema::spec().check_value(&schema, v);
    assert!(
        problems.is_empty(),
        "watch event does not match codersdk.Workspace: {problems:?}"
    );
}

pub(crate) fn echo(logs: usize, duration_ms: u64) -> Value {
    let lines: Vec<Value> = (0..logs)
        .map(|i| json!({"output": format!("line {i}")}))
        .collect();
    json!({
        "start": {"logs": lines, "duration_ms": duration_ms,
                  "resources": [{"name": "vm", "type": "echo_vm"}]},
        "stop": {"logs": [{"output": "stopping"}]}
    })
}

async fn metric(base: &str, name: &str) -> i64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn sse_watch_follows_create_start_stop() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(&owner, first.organization_id, "watched", &echo(3, 300)).await;
    let w = owner.create_workspace(t.id, "dev").await;
    let mut sse = Sse::open(&srv.url, owner.token().unwrap(), w.id).await;
    let (kind, data) = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (kind.as_str(), data),
        ("ping", None),
        "an initial ping without data"
    );
    let (kind, data) = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(kind, "data");
    let first_state: Workspace = serde_json::from_value(data.unwrap()).unwrap();
    assert_eq!(first_state.id, w.id);
    sse.until_status("running").await;
    owner.stop(w.id).await;
    let stopped = sse.until_status("stopped").await;
    assert_eq!(stopped.latest_build.build_number, 2);
    // Template changes reach watchers too.
    let (status, _) = crate::harness::raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/templates/{}", t.id),
        Some(r#"{"display_name":"Watched!"}"#),
    )
    .await;
    assert_eq!(status, 200);
    loop {
        let (kind, data) = sse
            .next(Duration::from_secs(10))
            .await
            .expect("a data event after the template changed");
        if kind == "data" && data.as_ref().unwrap()["template_display_name"] == "Watched!" {
            break;
        }
    }
}

#[tokio::test]
async fn websocket_watch_frames_and_close_codes() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(&owner, first.organization_id, "watched", &echo(1, 0)).await;
    let w = owner.create_workspace(t.id, "dev").await;
    let token = owner.token().unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(
        &srv.url,
        &format!("/api/v2/workspaces/{}/watch-ws", w.id),
        token,
    ))
    .await
    .unwrap();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        match socket.next().await.unwrap().unwrap() {
            Message::Text(t) => frames.push(serde_json::from_str::<Value>(&t).unwrap()),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(frames[0], json!({"type": "ping", "data": null}));
    assert_eq!(frames[1]["type"], "data");
    check_workspace(&frames[1]["data"]);
    for f in &frames {
        let problems = schema::spec().check_value(
            &json!({"$ref": "#/definitions/codersdk.ServerSentEvent"}),
            f,
        );
        assert!(problems.is_empty(), "{problems:?}");
    }
    // A one-way socket: a client message ends it with 1002.
    socket.send(Message::Text("hello".into())).await.unwrap();
    let code = loop {
        match socket.next().await {
            Some(Ok(Message::Close(Some(frame)))) => break frame.code,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, CloseCode::Protocol);
    // Watching needs a WebSocket upgrade.
    let (status, body) = crate::harness::raw_json(
        &owner,
        "GET",
        &format!("/api/v2/workspaces/{}/watch-ws", w.id),
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Failed to accept websocket."))
    );
}

/// Collects every log frame until the server closes; returns them and the close code.
pub(crate) async fn follow(
    base: &str,
    path: &str,
    token: &str,
) -> (Vec<ProvisionerJobLog>, CloseCode) {
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(base, path, token))
        .await
        .unwrap();
    let mut logs = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("follow hung")
        {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                let problems = schema::spec().check_value(
                    &json!({"$ref": "#/definitions/codersdk.ProvisionerJobLog"}),
                    &v,
                );
                assert!(problems.is_empty(), "{problems:?}");
                logs.push(serde_json::from_value(v).unwrap());
            }
            Some(Ok(Message::Close(frame))) => {
                return (logs, frame.map(|f| f.code).unwrap_or(CloseCode::Status))
            }
            Some(Ok(_)) => {}
            other => panic!("follow ended without a close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn follow_finished_jobs_and_after() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, v) = create_template(&owner, first.organization_id, "logs", &echo(5, 0)).await;
    let token = owner.token().unwrap();
    // A finished import: everything at once, then 1000.
    let (logs, code) = follow(
        &srv.url,
        &format!("/api/v2/templateversions/{}/logs?follow", v.id),
        token,
    )
    .await;
    assert_eq!(code, CloseCode::Normal);
    let plain = owner.template_version_logs(v.id, 0).await.unwrap();
    assert_eq!(
        logs.iter().map(|l| l.id).collect::<Vec<_>>(),
        plain.iter().map(|l| l.id).collect::<Vec<_>>()
    );
    let w = owner.create_workspace(t.id, "dev").await;
    let started = Instant::now();
    let (logs, code) = follow(
        &srv.url,
        &format!("/api/v2/workspacebuilds/{}/logs?follow", w.latest_build.id),
        token,
    )
    .await;
    assert_eq!(code, CloseCode::Normal);
    assert_eq!(
        logs.iter().map(|l| l.output.as_str()).collect::<Vec<_>>(),
        ["line 0", "line 1", "line 2", "line 3", "line 4"]
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let after = logs[1].id;
    let (rest, _) = follow(
        &srv.url,
        &format!(
            "/api/v2/workspacebuilds/{}/logs?follow&after={after}",
            w.latest_build.id
        ),
        token,
    )
    .await;
    assert_eq!(
        rest.iter().map(|l| l.output.as_str()).collect::<Vec<_>>(),
        ["line 2", "line 3", "line 4"]
    );
}

#[tokio::test]
async fn follow_live_logs_written_by_another_server_without_gaps() {
    // A serves the API with no daemons; B (same database) runs the jobs.
    let srv = TestServer::start_with(|o| o.provisioner_daemons = 0).await;
    let (owner, first) = srv.owner().await;
    let runner = coderd::server::start(
        crate::harness::test_options(&srv.db_url),
        Default::default(),
    )
    .await
    .unwrap();
    let via_b = checked_client(&format!("http://{}", runner.local_addr()))
        .with_token(owner.token().unwrap());
    let (t, _) = create_template(&via_b, first.organization_id, "chatty", &echo(300, 300)).await;
    runner.shutdown().await;
    let w = owner.create_workspace(t.id, "dev").await;
    assert_eq!(w.latest_build.status, "pending");
    let path = format!("/api/v2/workspacebuilds/{}/logs?follow", w.latest_build.id);
    let token = owner.token().unwrap().to_string();
    let url = srv.url.clone();
    let follower = tokio::spawn(async move { follow(&url, &path, &token).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runner = coderd::server::start(
        crate::harness::test_options(&srv.db_url),
        Default::default(),
    )
    .await
    .unwrap();
    let (logs, code) = follower.await.unwrap();
    assert_eq!(code, CloseCode::Normal);
    assert_eq!(logs.len(), 300, "every line, once");
    let ids: HashSet<i64> = logs.iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), 300);
    assert!(logs.windows(2).all(|p| p[0].id < p[1].id), "in order");
    assert_eq!(logs[299].output, "line 299");
    runner.shutdown().await;
}

#[tokio::test]
async fn watchers_recover_when_the_database_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("coderd-restart-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let opts = coderd_db::builtin::BuiltinOptions {
        unsafe_no_fsync: true,
    };
    let mut pg = coderd_db::builtin::BuiltinPostgres::start(&dir.join("pg"), &opts)
        .await
        .unwrap();
    let running = coderd::server::start(crate::harness::test_options(pg.url()), Default::default())
        .await
        .unwrap();
    let url = format!("http://{}", running.local_addr());
    let (owner, _) = create_owner(&checked_client(&url)).await;
    let token = owner.token().unwrap().to_string();
    let org = owner.organization("coder").await.unwrap().id;
    let (t, _) = create_template(&owner, org, "restart", &echo(1, 0)).await;
    let w = owner.create_workspace(t.id, "dev").await;
    let mut sse = Sse::open(&url, &token, w.id).await;
    sse.until_status("running").await;

    pg.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg = coderd_db::builtin::BuiltinPostgres::start(&dir.join("pg"), &opts)
        .await
        .unwrap();
    // The watcher is told it may have missed something and sends fresh state.
    let (kind, _) = loop {
        let ev = sse
            .next(Duration::from_secs(30))
            .await
            .expect("the watcher went quiet after the restart");
        if ev.0 == "data" {
            break ev;
        }
    };
    assert_eq!(kind, "data");
    // And live notifications work again.
    let mut attempts = 0;
    loop {
        match owner
            .try_create_build(w.id, &json!({"transition": "stop"}))
            .await
        {
            Ok(_) => break,
            Err(e) if attempts < 20 => {
                attempts += 1;
                tracing::debug!("retrying after restart: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("the server did not recover: {e}"),
        }
    }
    sse.until_status("stopped").await;
    drop(sse);
    running.shutdown().await;
    pg.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn disconnects_free_everything() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(&owner, first.organization_id, "leaky", &echo(1, 0)).await;
    let w = owner.create_workspace(t.id, "dev").await;
    let token = owner.token().unwrap();
    let baseline = metric(&srv.url, "coderd_pubsub_subscribers").await;
    for _ in 0..20 {
        let mut sse = Sse::open(&srv.url, token, w.id).await;
        sse.next(Duration::from_secs(5)).await.unwrap();
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(
            &srv.url,
            &format!("/api/v2/workspaces/{}/watch-ws", w.id),
            token,
        ))
        .await
        .unwrap();
        socket.next().await.unwrap().unwrap();
        drop(sse);
        drop(socket);
    }
    let started = Instant::now();
    loop {
        let open = metric(&srv.url, "coderd_open_streams").await;
        let subs = metric(&srv.url, "coderd_pubsub_subscribers").await;
        if open == 0 && subs == baseline {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "leaked: {open} streams, {subs} subscriptions (baseline {baseline})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A build queued while no daemon runs is watched as pending; when a daemon (in another
/// process) picks it up, the watcher sees it start without waiting for it to finish (the job
/// blocks, so only the daemon's acquisition can tell the watcher).
#[tokio::test]
async fn a_watcher_sees_a_queued_build_start_when_a_daemon_takes_it() {
    let db_url = crate::harness::fresh_database().await;
    let mut a = spawn_replica(&db_url, "0");
    let mut importer = spawn_replica(&db_url, "1");
    a.wait_healthy().await;
    importer.wait_healthy().await;
    let (owner, _) = create_owner(&checked_client(&a.url)).await;
    let token = owner.token().unwrap().to_string();
    let org = owner.organization("coder").await.unwrap().id;
    let (t, _) = create_template(&owner, org, "queued", &json!({"start": {"block": true}})).await;
    // No daemon from here on: the build stays pending.
    drop(importer);
    let w = owner.create_workspace(t.id, "dev").await;
    let mut sse = Sse::open(&a.url, &token, w.id).await;
    let pending = sse.until_status("pending").await;
    assert_eq!(pending.latest_build.job.status, "pending");
    let mut runner = spawn_replica(&db_url, "1");
    runner.wait_healthy().await;
    let starting = sse.until_status("starting").await;
    assert_eq!(starting.latest_build.job.status, "running");
    drop(runner);
    drop(a);
}

/// What a build's life tells other processes, as they hear it on the database: the new job
/// and the workspace's change at creation, the change again when a daemon takes the job, and
/// at its end the logs' end and the change, each message in the one format every sender uses
/// (some are written by the statements that make the change, in SQL).
#[tokio::test]
async fn a_build_is_announced_when_queued_taken_and_ended_in_one_format() {
    use sqlx::postgres::PgListener;
    let db_url = crate::harness::fresh_database().await;
    let mut srv = spawn_replica(&db_url, "1");
    srv.wait_healthy().await;
    let (owner, _) = create_owner(&checked_client(&srv.url)).await;
    let me = owner.user("me").await.unwrap().id;
    let org = owner.organization("coder").await.unwrap().id;
    let (t, _) = create_template(&owner, org, "told", &echo(3, 0)).await;
    let mut listener = PgListener::connect(&db_url).await.unwrap();
    listener.listen("coderd_pubsub").await.unwrap();
    let w = owner.create_workspace(t.id, "dev").await;
    owner
        .wait_for_status_within(w.id, "running", Duration::from_secs(30))
        .await;
    let owner_channel = format!("workspace_owner:{me}");
    let logs_channel = format!("provisioner-log-logs:{}", w.latest_build.job.id);
    let changed = format!(r#"{{"kind":"state_change","workspace_id":"{}"}}"#, w.id);
    let mut heard = Vec::new();
    let mut end_of_logs = 0;
    let mut posted = Vec::new();
    // Everything is sent by now; what is not heard within a second was not sent.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), listener.recv()).await {
        let (channel, payload) = n
            .payload()
            .split_once('\n')
            .expect("channel, newline, payload");
        if channel == owner_channel {
            heard.push(payload.to_string());
        } else if channel == logs_channel && payload == r#"{"end_of_logs":true}"# {
            end_of_logs += 1;
        } else if channel == "provisioner_job_posted" {
            posted.push(serde_json::from_str::<Value>(payload).expect("a JSON payload"));
        }
    }
    assert_eq!(heard, vec![changed; 3], "creation, acquisition, completion");
    assert_eq!(end_of_logs, 1);
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0]["organization_id"], json!(org));
    assert_eq!(posted[0]["type"], "echo");
    assert_eq!(posted[0]["tags"], json!(w.latest_build.job.tags));
    drop(srv);
}

/// A replica with `daemons` provisioner daemons whose hung jobs are reaped within seconds.
fn spawn_replica(db_url: &str, daemons: &str) -> Replica {
    Replica::spawn(
        db_url,
        free_port(),
        &[
            ("CODER_PROVISIONER_DAEMONS", daemons),
            ("CODER_JOB_HANG_DETECTOR_INTERVAL", "500ms"),
            ("CODER_JOB_REAPER_HUNG_AFTER", "3s"),
        ],
    )
}

#[tokio::test]
async fn several_processes_are_one_deployment() {
    let db_url = crate::harness::fresh_database().await;
    let mut a_b = [spawn_replica(&db_url, "0"), spawn_replica(&db_url, "0")];
    let mut c = spawn_replica(&db_url, "2");
    for r in a_b.iter_mut().chain([&mut c]) {
        r.wait_healthy().await;
    }
    let urls: Vec<String> = a_b.iter().chain([&c]).map(|r| r.url.clone()).collect();
    let (a, _) = create_owner(&checked_client(&urls[0])).await;
    let token = a.token().unwrap().to_string();
    let b = checked_client(&urls[1]).with_token(&token);
    let org = a.organization("coder").await.unwrap().id;
    let (t, _) = create_template(&b, org, "spread", &echo(20, 200)).await;

    // Queued on B, run by C's daemons, watched and followed on A.
    let w = b.create_workspace(t.id, "dev").await;
    let mut sse = Sse::open(&urls[0], &token, w.id).await;
    let path = format!("/api/v2/workspacebuilds/{}/logs?follow", w.latest_build.id);
    let (logs, code) = follow(&urls[0], &path, &token).await;
    assert_eq!((logs.len(), code), (20, CloseCode::Normal));
    let running = sse.until_status("running").await;
    assert!(running
        .latest_build
        .job
        .worker_name
        .starts_with(&hostname_prefix()));

    // A build blocks on C; C dies; the reaper elsewhere ends the story and A's watcher sees it.
    let (status, _) = crate::harness::raw_json(
        &b,
        "PATCH",
        &format!("/api/v2/templates/{}", t.id),
        Some(r#"{"description":"x"}"#),
    )
    .await;
    assert_eq!(status, 200);
    let blocking = crate::harness::echo::create_version(
        &b,
        org,
        &json!({"stop": {"block": true}}),
        Some(t.id),
    )
    .await;
    crate::harness::echo::wait_import(&a, blocking.id).await;
    let b2 = b
        .try_create_build(
            w.id,
            &json!({"transition": "stop", "template_version_id": blocking.id}),
        )
        .await
        .unwrap();
    sse.until_status("stopping").await;
    drop(c);
    let failed = sse.until_status("failed").await;
    assert_eq!(failed.latest_build.id, b2.id);
    assert!(
        failed.latest_build.job.error.contains("hung"),
        "{}",
        failed.latest_build.job.error
    );
    drop(a_b);
}

fn hostname_prefix() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "coderd".into())
}

#[tokio::test]
async fn watchers_of_one_workspace_share_one_feed_with_their_own_view() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(&owner, first.organization_id, "shared", &echo(1, 0)).await;
    let (member, _) = srv.member(&owner, "fran").await;
    let w = member.create_workspace(t.id, "dev").await;
    let (status, _) = crate::harness::raw_json(
        &member,
        "PUT",
        &format!("/api/v2/workspaces/{}/favorite", w.id),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let baseline = metric(&srv.url, "coderd_pubsub_subscribers").await;
    let mut theirs = Sse::open(&srv.url, member.token().unwrap(), w.id).await;
    let mut watchers = Vec::new();
    for _ in 0..5 {
        watchers.push(Sse::open(&srv.url, owner.token().unwrap(), w.id).await);
    }
    let as_owner = theirs.until_status("running").await;
    assert!(
        as_owner.favorite,
        "the workspace's owner sees their favorite"
    );
    for sse in &mut watchers {
        let seen = sse.until_status("running").await;
        assert!(!seen.favorite, "others never see someone else's favorite");
    }
    // Six watchers, one feed: its owner and template subscriptions only.
    assert_eq!(
        metric(&srv.url, "coderd_pubsub_subscribers").await,
        baseline + 2
    );
    assert_eq!(metric(&srv.url, "coderd_open_streams").await, 6);
}
