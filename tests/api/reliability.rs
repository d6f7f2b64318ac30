//! Shutdowns, database outages and crashes, on real `coderd` processes and a real PostgreSQL:
//! SIGTERM fails a running build within its grace and exits, stops acquiring at once and ends
//! every stream cleanly; a database outage fails no build that finished; log lines carry only
//! their own job; a pool of one works; dead daemons expire; and replicas killed at random
//! through a few hundred builds lose none and run none twice.
//!
//! Longer than 800 lines on purpose: 8 independent fault tests, each with the process handling
//! it needs written out.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codersdk::{Client, ProvisionerDaemon, Workspace};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::harness::echo::{create_template, create_version, wait_import};
use crate::harness::replica::{free_port, Replica};
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{checked_client, create_owner, fresh_database, ws_request, TestServer};

/// The daemon's shutdown grace (`server.rs`), and the most the issue allows past it.
const GRACE: Duration = Duration::from_secs(10);
const EXIT_SLACK: Duration = Duration::from_secs(5);
const SHUTDOWN_ERROR: &str = "The provisioner daemon shut down while this job was running.";

/// A build's job status and error, read through `c`.
async fn build_job(c: &Client, build: Uuid) -> (String, String) {
    let b = c.build(build).await;
    (b.job.status, b.job.error)
}

/// Server-sent events over a streaming response, with how the body ended.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

enum SseNext {
    Event(String, Option<Value>),
    /// The body ended cleanly.
    End,
    /// The connection broke mid-body.
    Broken(String),
    Quiet,
}

impl Sse {
    async fn open(base: &str, token: &str, workspace: Uuid) -> Sse {
        let resp = reqwest::Client::new()
            .get(format!("{base}/api/v2/workspaces/{workspace}/watch"))
            .header("Coder-Session-Token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        Sse {
            resp,
            buf: String::new(),
        }
    }

    async fn next(&mut self, within: Duration) -> SseNext {
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
                return SseNext::Event(kind, data);
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return SseNext::Quiet;
            };
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(Ok(None)) => return SseNext::End,
                Ok(Err(e)) => return SseNext::Broken(format!("{e:?}")),
                Err(_) => return SseNext::Quiet,
            }
        }
    }
}

/// Reads WebSocket frames until a close frame (its code) or `within` passes (`None`).
async fn close_code<S>(socket: &mut S, within: Duration) -> Result<CloseCode, String>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => return Err("no close frame in time".into()),
            Ok(Some(Ok(Message::Close(Some(frame))))) => return Ok(frame.code),
            Ok(Some(Ok(Message::Close(None)))) => return Ok(CloseCode::Status),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => return Err(format!("ended without a close frame: {other:?}")),
        }
    }
}

#[tokio::test]
async fn sigterm_fails_the_running_build_stops_acquiring_and_ends_streams() {
    let db_url = fresh_database().await;
    let mut runner = Replica::spawn(&db_url, free_port(), &[("CODER_PROVISIONER_DAEMONS", "2")]);
    let mut reader = Replica::spawn(&db_url, free_port(), &[("CODER_PROVISIONER_DAEMONS", "0")]);
    runner.wait_healthy().await;
    reader.wait_healthy().await;
    let (owner, first) = create_owner(&checked_client(&runner.url)).await;
    let token = owner.token().unwrap().to_string();
    let org = first.organization_id;
    let read = checked_client(&reader.url).with_token(&token);
    let (t, _) = create_template(
        &owner,
        org,
        "long",
        &json!({"start": {"duration_ms": 40000, "logs": [{"output": "working"}]}}),
    )
    .await;
    let w = owner.create_workspace(t.id, "dev").await;
    let build = w.latest_build.id;
    read.wait_for_job_status(build, "running", Duration::from_secs(30))
        .await;

    let mut sse = Sse::open(&runner.url, &token, w.id).await;
    let (mut watch_ws, _) = tokio_tungstenite::connect_async(ws_request(
        &runner.url,
        &format!("/api/v2/workspaces/{}/watch-ws", w.id),
        &token,
    ))
    .await
    .unwrap();
    let (mut follow_ws, _) = tokio_tungstenite::connect_async(ws_request(
        &runner.url,
        &format!("/api/v2/workspacebuilds/{build}/logs?follow"),
        &token,
    ))
    .await
    .unwrap();
    // Every stream is live before the signal.
    assert!(matches!(
        sse.next(Duration::from_secs(10)).await,
        SseNext::Event(..)
    ));
    assert!(matches!(watch_ws.next().await, Some(Ok(Message::Text(_)))));

    let signaled = Instant::now();
    runner.signal("-TERM");
    // A job queued once shutdown began is left for other replicas: the runner's idle daemon
    // must not take it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = create_version(&read, org, &json!({}), None).await;

    // Streams end cleanly and promptly, long before the grace is over.
    let sse_end = loop {
        match sse.next(Duration::from_secs(5)).await {
            SseNext::Event(..) => continue,
            other => break other,
        }
    };
    match sse_end {
        SseNext::End => {}
        SseNext::Broken(e) => panic!("the SSE stream was cut instead of ended: {e}"),
        SseNext::Quiet => panic!("the SSE stream stayed open after SIGTERM"),
        SseNext::Event(..) => unreachable!(),
    }
    assert_eq!(
        close_code(&mut watch_ws, Duration::from_secs(5)).await,
        Ok(CloseCode::Away),
        "watch-ws at shutdown"
    );
    assert_eq!(
        close_code(&mut follow_ws, Duration::from_secs(5)).await,
        Ok(CloseCode::Away),
        "following logs at shutdown"
    );

    let status = runner.wait_exit(GRACE + EXIT_SLACK).await;
    let took = signaled.elapsed();
    assert!(
        status.is_some(),
        "still running {took:?} after SIGTERM; log:\n{}",
        runner.log_text()
    );
    assert!(status.unwrap().success(), "{:?}", status);
    // The build ends failed with the shutdown message, never left running.
    let (s, error) = build_job(&read, build).await;
    assert_eq!((s.as_str(), error.as_str()), ("failed", SHUTDOWN_ERROR));
    let v = read.template_version(queued.id).await.unwrap();
    assert_eq!(
        (v.job.status.as_str(), v.job.worker_name.as_str()),
        ("pending", ""),
        "a job was acquired after SIGTERM: {:?}",
        v.job
    );
}

#[tokio::test]
async fn a_second_sigterm_exits_without_waiting_for_the_grace() {
    let db_url = fresh_database().await;
    let mut srv = Replica::spawn(&db_url, free_port(), &[("CODER_PROVISIONER_DAEMONS", "1")]);
    srv.wait_healthy().await;
    let (owner, first) = create_owner(&checked_client(&srv.url)).await;
    let (t, _) = create_template(
        &owner,
        first.organization_id,
        "long",
        &json!({"start": {"duration_ms": 40000}}),
    )
    .await;
    let w = owner.create_workspace(t.id, "dev").await;
    owner
        .wait_for_job_status(w.latest_build.id, "running", Duration::from_secs(30))
        .await;
    srv.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "the first signal gives the running job its grace"
    );
    srv.signal("-TERM");
    // Well before the grace would have run out.
    let status = srv.wait_exit(GRACE / 2).await;
    assert!(
        status.is_some(),
        "a second SIGTERM did not end the process; log:\n{}",
        srv.log_text()
    );
    assert!(!status.unwrap().success(), "{status:?}");
}

#[tokio::test]
async fn log_lines_of_concurrent_jobs_carry_only_their_own_job() {
    let db_url = fresh_database().await;
    let mut srv = Replica::spawn(
        &db_url,
        free_port(),
        &[
            ("CODER_PROVISIONER_DAEMONS", "2"),
            ("CODER_LOG_FORMAT", "json"),
        ],
    );
    srv.wait_healthy().await;
    let (owner, first) = create_owner(&checked_client(&srv.url)).await;
    let (t, _) = create_template(
        &owner,
        first.organization_id,
        "slow",
        &json!({"start": {"duration_ms": 3000}}),
    )
    .await;
    let a = owner.create_workspace(t.id, "a").await;
    let b = owner.create_workspace(t.id, "b").await;
    // Requests while both jobs run: their lines must not carry either job.
    let started = Instant::now();
    loop {
        let (sa, sb) = tokio::join!(
            build_job(&owner, a.latest_build.id),
            build_job(&owner, b.latest_build.id)
        );
        let _ = tokio::join!(
            owner.user("me"),
            owner.user("me"),
            owner.get_json::<Value>("/api/v2/workspaces"),
        );
        if sa.0 == "succeeded" && sb.0 == "succeeded" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "builds did not finish: {sa:?} {sb:?}"
        );
    }
    srv.signal("-TERM");
    srv.wait_exit(GRACE + EXIT_SLACK).await.expect("exit");

    let jobs: HashSet<String> = [a.latest_build.job.id, b.latest_build.job.id]
        .iter()
        .map(Uuid::to_string)
        .collect();
    let text = srv.log_text();
    let mut requests = 0;
    let mut seen_jobs = HashSet::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let tagged: Vec<String> = v["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["name"] == "job")
            .filter_map(|s| s["id"].as_str().map(str::to_string))
            .collect();
        assert!(tagged.len() <= 1, "a line carries several jobs: {line}");
        if v["target"] == "coderd::http" {
            requests += 1;
            assert!(tagged.is_empty(), "a request line carries a job: {line}");
        }
        if v["message"] == "running provisioner job" || v["message"] == "provisioner job finished" {
            assert_eq!(tagged.len(), 1, "a job's own line without its job: {line}");
            seen_jobs.insert(tagged[0].clone());
        }
    }
    assert!(requests > 20, "too few request lines to tell: {requests}");
    assert!(
        jobs.is_subset(&seen_jobs),
        "both builds' lines carry their job: {seen_jobs:?}"
    );
}

#[tokio::test]
async fn a_pool_of_one_connection_serves_requests_streams_and_builds() {
    let srv = TestServer::start_with(|o| o.pg_conn_max_open = 1).await;
    let (owner, first) = srv.owner().await;
    let token = owner.token().unwrap().to_string();
    let (t, _) = create_template(
        &owner,
        first.organization_id,
        "one",
        &json!({"start": {"logs": [{"output": "hello"}], "duration_ms": 500}}),
    )
    .await;
    let w = owner.create_workspace(t.id, "dev").await;
    let mut sse = Sse::open(&srv.url, &token, w.id).await;
    let (mut follow_ws, _) = tokio_tungstenite::connect_async(ws_request(
        &srv.url,
        &format!("/api/v2/workspacebuilds/{}/logs?follow", w.latest_build.id),
        &token,
    ))
    .await
    .unwrap();
    assert_eq!(
        close_code(&mut follow_ws, Duration::from_secs(30)).await,
        Ok(CloseCode::Normal)
    );
    let started = Instant::now();
    loop {
        match sse.next(Duration::from_secs(30)).await {
            SseNext::Event(kind, Some(data)) if kind == "data" => {
                if data["latest_build"]["status"] == "running" {
                    break;
                }
            }
            SseNext::Event(..) => {}
            _ => panic!("the watcher ended or went quiet"),
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    let stop = owner.stop(w.id).await;
    owner
        .wait_for_job_status(stop.id, "succeeded", Duration::from_secs(30))
        .await;
    drop(sse);
    srv.stop().await;
}

/// A PostgreSQL cluster of the test's own, so stopping it disturbs no other test.
async fn own_cluster() -> (coderd_db::builtin::BuiltinPostgres, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("coderd-outage-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pg = start_cluster(&dir).await;
    (pg, dir)
}

async fn start_cluster(dir: &Path) -> coderd_db::builtin::BuiltinPostgres {
    coderd_db::builtin::BuiltinPostgres::start(
        &dir.join("pg"),
        &coderd_db::builtin::BuiltinOptions {
            unsafe_no_fsync: true,
        },
    )
    .await
    .expect("starting the test's own PostgreSQL")
}

#[tokio::test]
async fn a_75_second_database_outage_fails_no_finished_build() {
    const OUTAGE: Duration = Duration::from_secs(75);
    let (mut pg, dir) = own_cluster().await;
    let mut srv = Replica::spawn(pg.url(), free_port(), &[("CODER_PROVISIONER_DAEMONS", "3")]);
    srv.wait_healthy().await;
    let (owner, first) = create_owner(&checked_client(&srv.url)).await;
    let token = owner.token().unwrap().to_string();
    let (t, _) = create_template(
        &owner,
        first.organization_id,
        "outage",
        &json!({"start": {"duration_ms": 8000, "logs": [{"output": "building"}]}}),
    )
    .await;
    let mut builds = Vec::new();
    for i in 0..3 {
        builds.push(
            owner
                .create_workspace_with(t.id, &format!("w{i}"), json!({}))
                .await,
        );
    }
    for w in &builds {
        owner
            .wait_for_job_status(w.latest_build.id, "running", Duration::from_secs(30))
            .await;
    }
    let mut sse = Sse::open(&srv.url, &token, builds[0].id).await;
    let (mut follow_ws, _) = tokio_tungstenite::connect_async(ws_request(
        &srv.url,
        &format!(
            "/api/v2/workspacebuilds/{}/logs?follow",
            builds[1].latest_build.id
        ),
        &token,
    ))
    .await
    .unwrap();
    // They finish during the outage, not before it.
    for w in &builds {
        let (status, _) = build_job(&owner, w.latest_build.id).await;
        assert_eq!(status, "running");
    }

    pg.stop().await;
    let down = Instant::now();
    // Requests fail fast with 503 and Retry-After, saying why.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v2/users/me", srv.url))
        .header("Coder-Session-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "The database is unavailable.", "{body}");
    // The watcher says so too.
    let error = loop {
        match sse.next(Duration::from_secs(30)).await {
            SseNext::Event(kind, data) if kind == "error" => break data.unwrap(),
            SseNext::Event(..) => continue,
            _ => panic!("no error event during the outage"),
        }
    };
    assert_eq!(error["message"], "The database is unavailable.", "{error}");
    // A log follower is told to try again later, and why (not the SQL error).
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(30), follow_ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.expect("a close frame"),
            Ok(Some(Ok(_))) => continue,
            other => panic!("the log follower was not closed: {other:?}"),
        }
    };
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (CloseCode::Again, "The database is unavailable.")
    );

    // The builds finish while the database is away; it comes back after the outage.
    tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    pg = start_cluster(&dir).await;
    for w in &builds {
        owner
            .wait_for_job_status(w.latest_build.id, "succeeded", Duration::from_secs(60))
            .await;
        let logs: Vec<Value> = owner
            .get_json(&format!(
                "/api/v2/workspacebuilds/{}/logs",
                w.latest_build.id
            ))
            .await
            .unwrap();
        assert!(
            logs.iter().any(|l| l["output"] == "building"),
            "logs: {logs:?}"
        );
    }
    // And the watcher ends on the true state.
    let started = Instant::now();
    loop {
        match sse.next(Duration::from_secs(30)).await {
            SseNext::Event(kind, Some(data))
                if kind == "data" && data["latest_build"]["status"] == "running" =>
            {
                break
            }
            SseNext::Event(..) => {}
            _ => panic!("the watcher never showed the finished build"),
        }
        assert!(started.elapsed() < Duration::from_secs(60));
    }
    drop(sse);
    drop(srv);
    pg.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn daemons_not_seen_for_a_week_are_deleted_and_stale_ones_are_offline() {
    let db_url = fresh_database().await;
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&db_url)
        .await
        .unwrap();
    let (old, stale) = (Uuid::new_v4(), Uuid::new_v4());
    for (id, name, age) in [(old, "gone", "8 days"), (stale, "stale", "2 days")] {
        sqlx::query(&format!(
            "INSERT INTO provisioner_daemons (id, created_at, name, provisioners, tags, last_seen_at, version, api_version) \
             VALUES ($1, now() - interval '{age}', $2, '{{echo}}', '{{}}', now() - interval '{age}', 'v', '1.0')"
        ))
        .bind(id)
        .bind(name)
        .execute(&mut db)
        .await
        .unwrap();
    }
    let mut opts = crate::harness::test_options(&db_url);
    opts.job_reaper_interval = Duration::from_millis(200);
    let running = coderd::server::start(opts, Default::default())
        .await
        .unwrap();
    let url = format!("http://{}", running.local_addr());
    let (owner, first) = create_owner(&checked_client(&url)).await;
    let started = Instant::now();
    let daemons = loop {
        let daemons: Vec<ProvisionerDaemon> = owner
            .get_json(&format!(
                "/api/v2/organizations/{}/provisionerdaemons",
                first.organization_id
            ))
            .await
            .unwrap();
        if !daemons.iter().any(|d| d.id == old) {
            break daemons;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a daemon last seen 8 days ago is still listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let by_name: HashMap<_, _> = daemons
        .iter()
        .map(|d| (d.name.as_str(), d.status.as_str()))
        .collect();
    assert_eq!(by_name.get("stale"), Some(&"offline"), "{by_name:?}");
    assert_eq!(
        daemons.iter().filter(|d| d.status == "idle").count(),
        3,
        "{by_name:?}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_daemon_busy_with_a_long_job_is_not_listed_offline() {
    let srv = TestServer::start_with(|o| o.provisioner_daemons = 1).await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(
        &owner,
        first.organization_id,
        "blocking",
        &json!({"start": {"block": true}}),
    )
    .await;
    let w = owner.create_workspace(t.id, "dev").await;
    owner
        .wait_for_job_status(w.latest_build.id, "running", Duration::from_secs(30))
        .await;
    // As if the job had been running for five minutes: only its heartbeats show the daemon alive.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&srv.db_url)
        .await
        .unwrap();
    sqlx::query("UPDATE provisioner_daemons SET last_seen_at = now() - interval '5 minutes'")
        .execute(&mut db)
        .await
        .unwrap();
    let path = format!(
        "/api/v2/organizations/{}/provisionerdaemons",
        first.organization_id
    );
    let started = Instant::now();
    loop {
        let daemons: Vec<ProvisionerDaemon> = owner.get_json(&path).await.unwrap();
        let statuses: Vec<&str> = daemons.iter().map(|d| d.status.as_str()).collect();
        if statuses == ["busy"] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the busy daemon is listed as {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    srv.stop().await;
}

/// What each watcher last saw: workspace id → (latest build id, its status).
type Seen = Arc<Mutex<HashMap<Uuid, (String, String)>>>;

/// Watches `workspace` on `base` until the task is dropped, recording every state it sees.
fn watch_into(
    base: String,
    token: String,
    workspace: Uuid,
    seen: Seen,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sse = Sse::open(&base, &token, workspace).await;
        loop {
            match sse.next(Duration::from_secs(60)).await {
                SseNext::Event(kind, Some(data)) if kind == "data" => {
                    let b = &data["latest_build"];
                    seen.lock().unwrap().insert(
                        workspace,
                        (
                            b["id"].as_str().unwrap().to_string(),
                            b["status"].as_str().unwrap().to_string(),
                        ),
                    );
                }
                SseNext::Event(..) => {}
                _ => return,
            }
        }
    })
}

#[tokio::test]
async fn replicas_killed_at_random_lose_no_build_and_run_none_twice() {
    const WORKSPACES: usize = 15;
    const BUILDS_EACH: usize = 20;
    const BOUND: Duration = Duration::from_secs(150);
    let db_url = fresh_database().await;
    let env = [
        ("CODER_PROVISIONER_DAEMONS", "2"),
        ("CODER_JOB_HANG_DETECTOR_INTERVAL", "500ms"),
        ("CODER_JOB_REAPER_HUNG_AFTER", "5s"),
    ];
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    // Replica 0 is never killed: the watchers live there.
    let replicas: Arc<Mutex<Vec<Replica>>> = Arc::new(Mutex::new(
        ports
            .iter()
            .map(|p| Replica::spawn(&db_url, *p, &env))
            .collect(),
    ));
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    for u in &urls {
        let started = Instant::now();
        while reqwest::get(format!("{u}/healthz"))
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "replica did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (owner, first) = create_owner(&checked_client(&urls[0])).await;
    let token = owner.token().unwrap().to_string();
    let echo = json!({
        "start": {"duration_ms": 300, "logs": [{"output": "ran"}]},
        "stop": {"duration_ms": 300, "logs": [{"output": "ran"}]}
    });
    let v = create_version(&owner, first.organization_id, &echo, None).await;
    let v = wait_import(&owner, v.id).await;
    assert_eq!(v.job.status, "succeeded");
    let t = owner
        .create_template(
            first.organization_id,
            &codersdk::CreateTemplateRequest {
                name: "chaos".into(),
                template_version_id: Some(v.id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut workspaces = Vec::new();
    for i in 0..WORKSPACES {
        workspaces.push(
            owner
                .create_workspace_with(t.id, &format!("c{i}"), json!({}))
                .await,
        );
    }
    let seen: Seen = Default::default();
    let watchers: Vec<_> = workspaces
        .iter()
        .map(|w| watch_into(urls[0].clone(), token.clone(), w.id, seen.clone()))
        .collect();

    // The killer: every 2-4.5 s, SIGKILL replica 1 or 2 and start it again on its port.
    let stop_killing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kills = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killer = {
        let (replicas, stop, kills, db_url) = (
            replicas.clone(),
            stop_killing.clone(),
            kills.clone(),
            db_url.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(2000 + (n * 1237) % 2500)).await;
                let i = 1 + (n % 2) as usize;
                n += 1;
                let port = {
                    let mut r = replicas.lock().unwrap();
                    let _ = r[i].child.kill();
                    let _ = r[i].child.wait();
                    r[i].port
                };
                kills.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let fresh = Replica::spawn(&db_url, port, &env);
                replicas.lock().unwrap()[i] = fresh;
            }
        })
    };

    // Each workspace alternates stop/start builds, one at a time, through any live replica.
    let started = Instant::now();
    let mut drivers = Vec::new();
    for (wi, w) in workspaces.iter().enumerate() {
        let (urls, token, id, first_build) = (urls.clone(), token.clone(), w.id, w.latest_build.id);
        drivers.push(tokio::spawn(async move {
            let mut builds = vec![first_build];
            let mut k = wi;
            let client = |k: usize| Client::new(&urls[k % urls.len()]).with_token(&token);
            for n in 0..BUILDS_EACH {
                // Wait for the previous build to end (any replica will do).
                loop {
                    k += 1;
                    let b: Result<Value, _> = client(k)
                        .get_json(&format!(
                            "/api/v2/workspacebuilds/{}",
                            builds[builds.len() - 1]
                        ))
                        .await;
                    if let Ok(b) = b {
                        if matches!(
                            b["job"]["status"].as_str(),
                            Some("succeeded" | "failed" | "canceled")
                        ) {
                            break;
                        }
                    }
                    if started.elapsed() > BOUND {
                        return builds;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if n + 1 == BUILDS_EACH {
                    break;
                }
                let transition = if n % 2 == 0 { "stop" } else { "start" };
                loop {
                    k += 1;
                    let r = client(k)
                        .try_create_build(id, &json!({"transition": transition}))
                        .await;
                    match r {
                        Ok(b) => {
                            builds.push(b.id);
                            break;
                        }
                        // A replica died under the request; did the build get queued anyway?
                        Err(_) => {
                            let w: Result<Workspace, _> = client(0)
                                .get_json(&format!("/api/v2/workspaces/{id}"))
                                .await;
                            if let Ok(w) = w {
                                if !builds.contains(&w.latest_build.id) {
                                    builds.push(w.latest_build.id);
                                    break;
                                }
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    if started.elapsed() > BOUND {
                        return builds;
                    }
                }
            }
            builds
        }));
    }
    let mut all_builds = Vec::new();
    for d in drivers {
        all_builds.extend(d.await.unwrap());
    }
    stop_killing.store(true, std::sync::atomic::Ordering::SeqCst);
    killer.await.unwrap();
    assert!(
        started.elapsed() <= BOUND,
        "the builds did not finish within {BOUND:?}"
    );

    // 0 lost: every build ended, succeeded or failed by the reaper (its replica died).
    let reader = Client::new(&urls[0]).with_token(&token);
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for b in &all_builds {
        let (status, error) = build_job(&reader, *b).await;
        match status.as_str() {
            "succeeded" => {}
            "failed" => assert!(
                error.contains("detected as hung"),
                "build {b} failed otherwise: {error}"
            ),
            other => panic!("build {b} was lost: {other} {error}"),
        }
        *outcomes.entry(status).or_default() += 1;
    }
    // 0 run twice: no job wrote its echo log more than once.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&db_url)
        .await
        .unwrap();
    let twice: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT job_id, count(*) FROM provisioner_job_logs WHERE output = 'ran' \
         GROUP BY job_id HAVING count(*) > 1",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(twice.is_empty(), "jobs ran twice: {twice:?}");
    // Every watcher ends on the true state.
    let deadline = Instant::now() + Duration::from_secs(15);
    for w in &workspaces {
        let truth: Workspace = reader
            .get_json(&format!("/api/v2/workspaces/{}", w.id))
            .await
            .unwrap();
        let want = (
            truth.latest_build.id.to_string(),
            truth.latest_build.status.clone(),
        );
        loop {
            let got = seen.lock().unwrap().get(&w.id).cloned();
            if got.as_ref() == Some(&want) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "watcher of {} ended on {got:?}, truth {want:?}",
                w.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for w in watchers {
        w.abort();
    }
    let kills = kills.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "chaos: {} builds, {kills} kills, outcomes {outcomes:?}, in {:?}",
        all_builds.len(),
        started.elapsed()
    );
    assert!(kills >= 3, "too few kills to mean anything: {kills}");
    assert!(all_builds.len() >= WORKSPACES * BUILDS_EACH);
}
