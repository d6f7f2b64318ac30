//! Streams at scale: many idle `GET /api/v2/workspaces/{id}/watch` (server-sent events)
//! watchers — the server's memory per watcher, and how long a build's end takes to reach every
//! one of them — and the end-to-end throughput of following a build's logs over a WebSocket.
//!
//! Run with `cargo bench -p coderd --bench streams`. It starts a throwaway built-in PostgreSQL
//! (fsync off) and the real `coderd` binary on it as a child process (so that its memory can be
//! read from /proc without the client's), with one provisioner daemon. The watchers are raw
//! HTTP/1.1 connections from this process (a hand-written request, a small chunked-encoding
//! and SSE parser); the log follower is a tokio-tungstenite WebSocket. Everything connects to
//! 127.0.0.1 only and every wait is bounded. See benches/README.md for results.
//!
//! Longer than 800 lines on purpose: three benchmarks of one subsystem and the table each prints.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use codersdk::Client;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

mod common;
#[path = "common/proc.rs"]
mod proc;
use common::echo::create_template;
use common::workspace::WorkspaceApi;
use proc::{raise_fd_limit, start_coderd, Replica};

/// Watchers open at each measurement, cumulative; the last is the target.
const STAGES: [usize; 4] = [1_000, 2_500, 5_000, 10_000];
/// Watchers connecting (between connect and their first `data` event) at once.
const CONNECTING: usize = 200;
/// How long one stage may take to open its watchers.
const STAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// After the largest stage, builds are watched again by this many watchers.
const LATENCY_AT: [usize; 2] = [1_000, 100];
/// How long every watcher may take to see a build's result.
const ROUND_TIMEOUT: Duration = Duration::from_secs(120);
/// Log lines of the log-following build, and how many such builds are followed.
const LOG_LINES: usize = 20_000;
const LOG_RUNS: usize = 3;
/// How long a build may take to reach a status.
const BUILD_WAIT: Duration = Duration::from_secs(120);
/// How long the blocking build keeps the only provisioner daemon busy.
const BLOCKER_MS: u64 = 1_500;

/// The watched workspace: a container with an agent and an app, as a realistic payload.
fn watched_template() -> Value {
    json!({
        "start": {
            "resources": [{
                "name": "dev", "type": "docker_container",
                "metadata": [{"key": "image", "value": "codercom/enterprise-base:ubuntu"}],
                "agents": [{
                    "name": "main", "operating_system": "linux", "architecture": "amd64",
                    "directory": "/home/coder",
                    "apps": [{"slug": "code-server", "display_name": "code-server",
                              "url": "http://localhost:13337", "sharing_level": "owner"}]
                }]
            }]
        },
        "stop": {}
    })
}

fn log_template() -> Value {
    let logs: Vec<Value> = (0..LOG_LINES)
        .map(|i| json!({"output": format!("line {i:05}: the quick brown fox jumps over the lazy dog")}))
        .collect();
    json!({
        "start": {"logs": logs, "resources": [{"name": "vm", "type": "echo_vm"}]},
        "stop": {}
    })
}

fn blocker_template() -> Value {
    json!({
        "start": {"duration_ms": BLOCKER_MS},
        "stop": {"duration_ms": BLOCKER_MS}
    })
}

// -- SSE watchers ---------------------------------------------------------------------------

#[derive(Default)]
struct Progress {
    /// Watchers that received their first `data` event.
    first: AtomicUsize,
    failed: AtomicUsize,
    /// Watchers that failed after their first `data` event.
    lost: AtomicUsize,
    /// `data` events after each watcher's first.
    updates: AtomicUsize,
    first_error: Mutex<Option<String>>,
    /// `seen[k]`: when each watcher saw its k-th change between "running" and "stopped".
    seen: Mutex<Vec<Vec<SystemTime>>>,
}

impl Progress {
    fn fail(&self, e: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(e);
    }

    fn saw(&self, k: usize, at: SystemTime) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        while seen.len() <= k {
            seen.push(Vec::new());
        }
        seen[k].push(at);
    }

    fn seen(&self, k: usize) -> Vec<SystemTime> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(k).cloned().unwrap_or_default()
    }

    fn error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Moves complete chunks of a chunked body from `raw` to `body`. Err at the last chunk.
fn dechunk(raw: &mut Vec<u8>, body: &mut Vec<u8>) -> Result<(), String> {
    loop {
        let Some(line_end) = find(raw, b"\r\n") else {
            return Ok(());
        };
        let line = std::str::from_utf8(&raw[..line_end]).map_err(|e| e.to_string())?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(hex, 16).map_err(|e| format!("chunk size {line:?}: {e}"))?;
        if size == 0 {
            return Err("the server ended the stream".into());
        }
        let start = line_end + 2;
        if raw.len() < start + size + 2 {
            return Ok(());
        }
        body.extend_from_slice(&raw[start..start + size]);
        raw.drain(..start + size + 2);
    }
}

/// One idle watcher: a raw HTTP/1.1 request, then SSE frames until told to quit. It reports
/// its first `data` event, and every change of the workspace between running and stopped.
async fn watcher(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    progress: Arc<Progress>,
    mut permit: Option<OwnedSemaphorePermit>,
    mut quit: watch::Receiver<bool>,
) {
    let mut had_first = false;
    let result: Result<(), String> = async {
        let mut stream = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(&request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut raw: Vec<u8> = Vec::with_capacity(4096);
        let mut body: Vec<u8> = Vec::new();
        let mut chunked = None;
        let mut settled: Option<String> = None;
        let mut changes = 0;
        loop {
            raw.reserve(4096);
            let n = tokio::select! {
                r = stream.read_buf(&mut raw) => r.map_err(|e| format!("read: {e}"))?,
                _ = quit.wait_for(|q| *q) => return Ok(()),
            };
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            if chunked.is_none() {
                let Some(end) = find(&raw, b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                if !head.starts_with("http/1.1 200") {
                    return Err(format!(
                        "answered {}",
                        head.lines().next().unwrap_or_default()
                    ));
                }
                chunked = Some(head.contains("transfer-encoding: chunked"));
                raw.drain(..end + 4);
            }
            if chunked == Some(true) {
                dechunk(&mut raw, &mut body)?;
            } else {
                body.append(&mut raw);
            }
            while let Some(end) = find(&body, b"\n\n") {
                let frame = String::from_utf8_lossy(&body[..end]).into_owned();
                body.drain(..end + 2);
                let mut kind = "";
                let mut data = None;
                for line in frame.lines() {
                    if let Some(k) = line.strip_prefix("event: ") {
                        kind = k;
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = Some(d);
                    }
                }
                match kind {
                    "ping" => {}
                    "data" => {
                        let v: Value = serde_json::from_str(data.unwrap_or("null"))
                            .map_err(|e| format!("data is not JSON: {e}"))?;
                        let status = v["latest_build"]["status"].as_str().unwrap_or("");
                        match &settled {
                            None => {
                                settled = Some(status.to_string());
                                had_first = true;
                                progress.first.fetch_add(1, Ordering::SeqCst);
                                permit.take();
                            }
                            Some(s) => {
                                progress.updates.fetch_add(1, Ordering::SeqCst);
                                if matches!(status, "running" | "stopped") && s != status {
                                    progress.saw(changes, SystemTime::now());
                                    changes += 1;
                                    settled = Some(status.to_string());
                                }
                            }
                        }
                    }
                    other => return Err(format!("event {other:?}: {}", data.unwrap_or(""))),
                }
            }
            // Keep idle buffers small: a watcher holds at most one partial frame.
            if raw.capacity() > 65536 && raw.len() < 4096 {
                raw.shrink_to(8192);
            }
            if body.capacity() > 65536 && body.len() < 4096 {
                body.shrink_to(8192);
            }
        }
    }
    .await;
    if let Err(e) = result {
        if had_first {
            progress.lost.fetch_add(1, Ordering::SeqCst);
        }
        progress.fail(e);
    }
}

/// A set of open watchers of one workspace.
struct Pool {
    request: Arc<Vec<u8>>,
    addr: SocketAddr,
    handles: Vec<tokio::task::JoinHandle<()>>,
    quit: watch::Sender<bool>,
    progress: Arc<Progress>,
    gate: Arc<Semaphore>,
    /// Workspace changes every watcher has seen so far.
    changes: usize,
}

impl Pool {
    fn new(srv: &Replica, token: &str, ws: Uuid) -> Pool {
        let request = format!(
            "GET /api/v2/workspaces/{ws}/watch HTTP/1.1\r\nHost: {}\r\n\
             Coder-Session-Token: {token}\r\nAccept: text/event-stream\r\n\r\n",
            srv.addr()
        );
        Pool {
            request: Arc::new(request.into_bytes()),
            addr: srv.addr(),
            handles: Vec::new(),
            quit: watch::channel(false).0,
            progress: Arc::new(Progress::default()),
            gate: Arc::new(Semaphore::new(CONNECTING)),
            changes: 0,
        }
    }

    fn ok(&self) -> usize {
        self.progress.first.load(Ordering::SeqCst)
    }

    fn failed(&self) -> usize {
        self.progress.failed.load(Ordering::SeqCst)
    }

    /// Opens watchers until there are `target`, and waits (at most `STAGE_TIMEOUT`) until each
    /// got its first `data` event or failed. Returns the seconds that took.
    async fn grow(&mut self, target: usize) -> f64 {
        let started = Instant::now();
        while self.handles.len() < target {
            let left = STAGE_TIMEOUT.saturating_sub(started.elapsed());
            let Ok(permit) = tokio::time::timeout(left, self.gate.clone().acquire_owned()).await
            else {
                break;
            };
            self.handles.push(tokio::spawn(watcher(
                self.addr,
                self.request.clone(),
                self.progress.clone(),
                Some(permit.expect("semaphore")),
                self.quit.subscribe(),
            )));
        }
        while self.ok() + self.failed() < self.handles.len() && started.elapsed() < STAGE_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started.elapsed().as_secs_f64()
    }

    async fn close(self) {
        let _ = self.quit.send(true);
        for h in self.handles {
            let _ = tokio::time::timeout(Duration::from_secs(30), h).await;
        }
    }
}

struct Stage {
    watchers: usize,
    ok: usize,
    failed: usize,
    open_secs: f64,
    rss_kib: u64,
    open_streams: i64,
}

/// One build seen by every watcher.
struct Round {
    watchers: usize,
    transition: &'static str,
    /// Build queued → its job's completed_at, ms.
    build_ms: f64,
    /// completed_at → each watcher's event showing the new state, ms, sorted.
    latencies: Vec<f64>,
    /// Data events per watcher during the round.
    updates: f64,
}

/// Stops and starts the workspace once each, measuring when each watcher of `pool` sees it.
async fn rounds(pool: &mut Pool, owner: &Client, ws: Uuid, db: &mut PgConnection) -> Vec<Round> {
    let mut out = Vec::new();
    for (transition, status) in [("stop", "stopped"), ("start", "running")] {
        let watching = pool.ok() - pool.progress.lost.load(Ordering::SeqCst);
        let updates = pool.progress.updates.load(Ordering::SeqCst);
        let queued = Instant::now();
        let build_id = owner.create_build(ws, transition).await.id;
        let k = pool.changes;
        while pool.progress.seen(k).len() < watching && queued.elapsed() < ROUND_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = pool.progress.seen(k);
        let (created, completed): (DateTime<Utc>, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT j.created_at, j.completed_at FROM workspace_builds b \
             JOIN provisioner_jobs j ON j.id = b.job_id WHERE b.id = $1",
        )
        .bind(build_id)
        .fetch_one(&mut *db)
        .await
        .expect("reading the build's job");
        let completed = completed.expect("the build completed");
        let mut latencies: Vec<f64> = seen
            .iter()
            .map(|at| ms(completed, DateTime::<Utc>::from(*at)))
            .collect();
        latencies.sort_by(f64::total_cmp);
        eprintln!(
            "{watching} watchers, {transition}: {} saw it {status} within {:.1} s",
            seen.len(),
            queued.elapsed().as_secs_f64()
        );
        let complete = seen.len() >= watching;
        out.push(Round {
            watchers: watching,
            transition,
            build_ms: ms(created, completed),
            latencies,
            updates: (pool.progress.updates.load(Ordering::SeqCst) - updates) as f64
                / watching.max(1) as f64,
        });
        // Every watcher is told of a settled state before the next build.
        tokio::time::sleep(Duration::from_millis(500)).await;
        pool.changes += 1;
        if !complete {
            break;
        }
    }
    out
}

struct WatchReport {
    baseline_kib: u64,
    stages: Vec<Stage>,
    failure: Option<String>,
    rounds: Vec<Round>,
    after_close_kib: u64,
    peak_kib: u64,
    open_after_close: i64,
}

async fn wait_closed(srv: &Replica) -> i64 {
    let started = Instant::now();
    let mut open = srv.metric("coderd_open_streams").await;
    while open != 0 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = srv.metric("coderd_open_streams").await;
    }
    open
}

async fn watchers(
    srv: &Replica,
    owner: &Client,
    token: &str,
    ws: Uuid,
    db: &mut PgConnection,
) -> WatchReport {
    // Warm-up: a few watchers opened and closed, so that the baseline has every code path.
    let mut warm = Pool::new(srv, token, ws);
    warm.grow(50).await;
    assert_eq!(
        warm.ok(),
        50,
        "warm-up watchers failed: {:?}",
        warm.progress.error()
    );
    warm.close().await;
    wait_closed(srv).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline_kib = srv.rss_kib();
    eprintln!("server RSS before watchers: {baseline_kib} KiB");

    // Memory: idle watchers, opened in stages.
    let mut pool = Pool::new(srv, token, ws);
    let mut stages = Vec::new();
    let mut failure = None;
    for &target in &STAGES {
        let open_secs = pool.grow(target).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stage = Stage {
            watchers: target,
            ok: pool.ok(),
            failed: pool.failed(),
            open_secs,
            rss_kib: srv.rss_kib(),
            open_streams: srv.metric("coderd_open_streams").await,
        };
        eprintln!(
            "{} watchers: {} got their first event, {} failed, in {:.1} s; server RSS {} KiB, \
             coderd_open_streams {}",
            target, stage.ok, stage.failed, stage.open_secs, stage.rss_kib, stage.open_streams
        );
        let complete = stage.ok == target && stage.failed == 0;
        stages.push(stage);
        if !complete {
            failure = Some(pool.progress.error().unwrap_or_else(|| {
                format!("not every watcher got its first event within {STAGE_TIMEOUT:?}")
            }));
            break;
        }
    }

    // Latency: builds seen by all of them, then by fewer.
    let mut all_rounds = rounds(&mut pool, owner, ws, db).await;
    pool.close().await;
    let open_after_close = wait_closed(srv).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_close_kib = srv.rss_kib();
    for n in LATENCY_AT {
        let mut pool = Pool::new(srv, token, ws);
        pool.grow(n).await;
        all_rounds.extend(rounds(&mut pool, owner, ws, db).await);
        pool.close().await;
        wait_closed(srv).await;
    }
    WatchReport {
        baseline_kib,
        stages,
        failure,
        rounds: all_rounds,
        after_close_kib,
        peak_kib: srv.status_kib("VmHWM:"),
        open_after_close,
    }
}

fn ms(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

// -- log following --------------------------------------------------------------------------

struct LogRun {
    messages: usize,
    lines: usize,
    /// Whether the WebSocket was open before the job started.
    connected_first: bool,
    /// Job started_at → close frame received.
    total_secs: f64,
    /// Job started_at → completed_at (writing every log to the database).
    producer_secs: f64,
    /// Job completed_at → close frame received.
    tail_ms: f64,
    /// Job started_at → first log received.
    first_ms: f64,
    /// Following the finished build again: connect → close frame (every log read back).
    replay_secs: f64,
}

type LogSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn open_logs(srv: &Replica, token: &str, build_id: Uuid) -> LogSocket {
    let mut req = format!(
        "ws://{}/api/v2/workspacebuilds/{build_id}/logs?follow=true",
        srv.addr()
    )
    .into_client_request()
    .expect("ws request");
    req.headers_mut()
        .insert("Coder-Session-Token", token.parse().expect("header"));
    let (socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("connecting the log WebSocket timed out")
    .expect("connecting the log WebSocket");
    socket
}

/// Reads logs until the close frame: (messages, when the first arrived), checking that every
/// line arrived, in order.
async fn read_logs(socket: &mut LogSocket) -> (usize, SystemTime) {
    let mut messages = 0;
    let mut lines = 0;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, socket.next())
            .await
            .expect("the log stream did not end within 120 s");
        match msg {
            Some(Ok(Message::Text(t))) => {
                first.get_or_insert_with(SystemTime::now);
                messages += 1;
                let v: Value = serde_json::from_str(t.as_str()).expect("a log is JSON");
                if let Some(o) = v["output"].as_str() {
                    if o.starts_with("line ") {
                        assert!(
                            o.starts_with(&format!("line {lines:05}:")),
                            "line {lines} arrived as {o:?}"
                        );
                        lines += 1;
                    }
                }
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("log WebSocket: {e}"),
        }
    }
    assert_eq!(lines, LOG_LINES, "every log line arrived");
    (messages, first.expect("a first log"))
}

async fn follow_logs(
    srv: &Replica,
    owner: &Client,
    token: &str,
    logs_ws: Uuid,
    blocker_ws: Uuid,
    blocker_transition: &str,
    db: &mut PgConnection,
) -> LogRun {
    // Occupy the only daemon, so that the followed build waits in the queue.
    let blocker = owner.create_build(blocker_ws, blocker_transition).await;
    owner
        .wait_for_job_status(blocker.id, "running", BUILD_WAIT)
        .await;
    let build_id = owner.create_build(logs_ws, "start").await.id;
    let mut socket = open_logs(srv, token, build_id).await;
    let (job, started): (Uuid, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT j.id, j.started_at FROM workspace_builds b JOIN provisioner_jobs j ON j.id = b.job_id \
         WHERE b.id = $1",
    )
    .bind(build_id)
    .fetch_one(&mut *db)
    .await
    .expect("reading the job");
    let connected_first = started.is_none();
    let (messages, first) = read_logs(&mut socket).await;
    let closed: DateTime<Utc> = SystemTime::now().into();
    let (started, completed): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT started_at, completed_at FROM provisioner_jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&mut *db)
            .await
            .expect("reading the job");
    let started = started.expect("the job started");
    let completed = completed.expect("the job completed");
    // The same logs again, now all read from the database at once.
    let replay = Instant::now();
    let mut socket = open_logs(srv, token, build_id).await;
    read_logs(&mut socket).await;
    let replay_secs = replay.elapsed().as_secs_f64();
    owner.stop(logs_ws).await;
    owner
        .wait_for_status_within(logs_ws, "stopped", BUILD_WAIT)
        .await;
    LogRun {
        messages,
        lines: LOG_LINES,
        connected_first,
        total_secs: ms(started, closed) / 1000.0,
        producer_secs: ms(started, completed) / 1000.0,
        tail_ms: ms(completed, closed),
        first_ms: ms(started, first.into()),
        replay_secs,
    }
}

// -- report ---------------------------------------------------------------------------------

fn pct(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1]
}

fn print_report(
    version: &str,
    limits: (libc::rlim_t, libc::rlim_t),
    w: &WatchReport,
    logs: &[LogRun],
) {
    println!("{version}");
    println!("open files limit: {} (hard {})", limits.0, limits.1);
    println!();
    println!("Idle SSE watchers of one workspace (GET /api/v2/workspaces/{{id}}/watch)");
    println!(
        "{:>9}  {:>6}  {:>6}  {:>7}  {:>11}  {:>11}  {:>12}  {:>12}",
        "watchers",
        "ok",
        "failed",
        "open s",
        "server RSS",
        "RSS growth",
        "per watcher",
        "open_streams"
    );
    println!("{}", "-".repeat(9 + 6 + 6 + 7 + 11 + 11 + 12 + 12 + 14));
    println!(
        "{:>9}  {:>6}  {:>6}  {:>7}  {:>7} MiB  {:>11}  {:>12}  {:>12}",
        0,
        "",
        "",
        "",
        w.baseline_kib / 1024,
        "",
        "",
        0
    );
    for s in &w.stages {
        let growth = s.rss_kib.saturating_sub(w.baseline_kib);
        println!(
            "{:>9}  {:>6}  {:>6}  {:>7.1}  {:>7} MiB  {:>7} MiB  {:>8.1} KiB  {:>12}",
            s.watchers,
            s.ok,
            s.failed,
            s.open_secs,
            s.rss_kib / 1024,
            growth / 1024,
            growth as f64 / s.ok.max(1) as f64,
            s.open_streams
        );
    }
    if let Some(f) = &w.failure {
        println!("stopped early: {f}");
    }
    println!(
        "open s: time to open the stage's new watchers until each got its first data event \
         ({CONNECTING} connecting at once). RSS growth: over the baseline (after 50 watchers were \
         opened and closed)."
    );
    println!(
        "after the builds below and closing every watcher: server RSS {} MiB, \
         coderd_open_streams {}; peak RSS (VmHWM) over the whole run {} MiB",
        w.after_close_kib / 1024,
        w.open_after_close,
        w.peak_kib / 1024
    );
    println!();
    println!("Builds seen by every watcher: job completed_at -> the watcher's data event with the new status");
    println!(
        "{:>9}  {:>10}  {:>6}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}",
        "watchers", "transition", "saw it", "build ms", "min", "p50", "p90", "p99", "max", "events"
    );
    println!("{}", "-".repeat(9 + 10 + 6 + 9 + 8 * 5 + 8 + 18));
    for r in &w.rounds {
        let l = &r.latencies;
        if l.is_empty() {
            println!(
                "{:>9}  {:>10}  {:>6}  {:>9.0}  (nobody saw it)",
                r.watchers, r.transition, 0, r.build_ms
            );
            continue;
        }
        println!(
            "{:>9}  {:>10}  {:>6}  {:>9.0}  {:>5.0} ms  {:>5.0} ms  {:>5.0} ms  {:>5.0} ms  {:>5.0} ms  {:>8.1}",
            r.watchers,
            r.transition,
            l.len(),
            r.build_ms,
            l[0],
            pct(l, 0.5),
            pct(l, 0.9),
            pct(l, 0.99),
            l[l.len() - 1],
            r.updates
        );
    }
    println!(
        "build ms: the build's job created_at -> completed_at (an echo build with nothing to do); \
         events: data events per watcher during the round."
    );
    println!();
    println!(
        "Following a build's logs over a WebSocket ({LOG_LINES} lines; opened while the build \
         waited in the queue)"
    );
    println!(
        "{:>4}  {:>9}  {:>10}  {:>12}  {:>9}  {:>10}  {:>7}  {:>10}  {:>9}  {:>15}",
        "run",
        "messages",
        "opened 1st",
        "start->close",
        "lines/s",
        "producer",
        "tail",
        "first line",
        "replay",
        "replay lines/s"
    );
    println!(
        "{}",
        "-".repeat(4 + 9 + 10 + 12 + 9 + 10 + 7 + 10 + 9 + 15 + 18)
    );
    for (i, r) in logs.iter().enumerate() {
        println!(
            "{:>4}  {:>9}  {:>10}  {:>10.2} s  {:>9.0}  {:>8.2} s  {:>4.0} ms  {:>7.0} ms  {:>7.2} s  {:>15.0}",
            i + 1,
            r.messages,
            if r.connected_first { "yes" } else { "no" },
            r.total_secs,
            r.lines as f64 / r.total_secs,
            r.producer_secs,
            r.tail_ms,
            r.first_ms,
            r.replay_secs,
            r.lines as f64 / r.replay_secs
        );
    }
    println!(
        "start->close: the job's started_at to the close frame; producer: started_at to \
         completed_at (the daemon writing logs in batches of 100); tail: completed_at to the \
         close frame; first line: started_at to the first log received; replay: following the \
         finished build again, connect to close frame."
    );
}

// -- main -----------------------------------------------------------------------------------

fn main() {
    // `cargo test --benches` runs bench targets without `--bench`: nothing to check there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("streams: skipped (run it with `cargo bench`)");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench());
}

async fn bench() {
    let limits = raise_fd_limit();
    eprintln!("open files limit {} (hard {})", limits.0, limits.1);
    let started = Instant::now();
    let (root, mut pg) = proc::bench_postgres("streams").await;
    let url = pg.url().to_string();
    // Spawned here, on the runtime's main thread, which outlives everything else.
    let mut srv = start_coderd(&root, &url, 1);
    srv.wait_healthy().await;
    let mut db = PgConnection::connect(&url).await.expect("connecting");
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&mut db)
        .await
        .expect("server version");
    eprintln!(
        "{version}; server up in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let srv = Arc::new(srv);
    let task_srv = srv.clone();
    let outcome = tokio::spawn(async move { run(&task_srv, &mut db).await }).await;
    let srv = Arc::try_unwrap(srv)
        .ok()
        .expect("the server handle is ours again");
    if outcome.is_err() {
        eprintln!("the end of the server's log:\n{}", srv.log_tail());
    }
    srv.stop().await;
    pg.stop().await;
    let _ = std::fs::remove_dir_all(&root);
    match outcome {
        Ok((w, logs)) => {
            print_report(&version, limits, &w, &logs);
            eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
        }
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("benchmark task failed: {e}"),
    }
}

async fn run(srv: &Replica, db: &mut PgConnection) -> (WatchReport, Vec<LogRun>) {
    let (owner, first, token) = common::first_owner(&srv.url).await;
    let org = first.organization_id;
    let watched = create_template(&owner, org, "watched", &watched_template())
        .await
        .0
        .id;
    let ws = owner.create_workspace(watched, "watched").await.id;
    owner
        .wait_for_status_within(ws, "running", BUILD_WAIT)
        .await;

    let report = watchers(srv, &owner, &token, ws, db).await;

    let logs_template = create_template(&owner, org, "logs", &log_template())
        .await
        .0
        .id;
    let blocker_template = create_template(&owner, org, "blocker", &blocker_template())
        .await
        .0
        .id;
    // The first build of each: the log workspace's writes every line once, unfollowed.
    let logs_ws = owner.create_workspace(logs_template, "logs").await.id;
    owner
        .wait_for_status_within(logs_ws, "running", BUILD_WAIT)
        .await;
    owner.stop(logs_ws).await;
    owner
        .wait_for_status_within(logs_ws, "stopped", BUILD_WAIT)
        .await;
    let blocker_ws = owner.create_workspace(blocker_template, "blocker").await.id;
    owner
        .wait_for_status_within(blocker_ws, "running", BUILD_WAIT)
        .await;
    let mut runs = Vec::new();
    for i in 0..LOG_RUNS {
        let transition = if i % 2 == 0 { "stop" } else { "start" };
        let r = follow_logs(srv, &owner, &token, logs_ws, blocker_ws, transition, db).await;
        eprintln!(
            "log run {}: {} lines in {:.2} s from the job's start to the close frame",
            i + 1,
            r.lines,
            r.total_secs
        );
        runs.push(r);
        let settled = if i % 2 == 0 { "stopped" } else { "running" };
        owner
            .wait_for_status_within(blocker_ws, settled, BUILD_WAIT)
            .await;
    }
    (report, runs)
}
