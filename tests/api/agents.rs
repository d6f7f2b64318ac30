//! The real upstream agent (`coder agent`, built from the pinned Go module; `CODERD_CODER_CLI`
//! names the binary) connecting to this server: its status, lifecycle, startup logs and
//! metadata as the API shows them, and its connection's end.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use codersdk::{Client, Workspace, WorkspaceAgent, WorkspaceAgentLog};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::echo::create_template;
use crate::harness::workspace::WorkspaceApi;
use crate::harness::TestServer;

pub fn coder_binary() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("CODERD_CODER_CLI")?);
    path.is_file().then_some(path)
}

/// A `coder agent` process, killed when dropped.
pub struct AgentProcess {
    child: Child,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new(name: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("{name}-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl AgentProcess {
    pub fn start(bin: &PathBuf, url: &str, token: Uuid) -> AgentProcess {
        let dir = tempdir::Dir::new("coderd-agent");
        let child = Command::new(bin)
            .args(["agent", "--auth", "token", "--no-reap"])
            .env("CODER_AGENT_URL", url)
            .env("CODER_AGENT_TOKEN", token.to_string())
            .env("CODER_AGENT_LOG_DIR", &dir.0)
            .env("CODER_AGENT_SCRIPT_DATA_DIR", &dir.0)
            .env("HOME", &dir.0)
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.0.join("stderr.log")).unwrap())
            .spawn()
            .expect("starting coder agent");
        AgentProcess { child, _dir: dir }
    }

    /// The last lines of the agent's own log, for failure messages.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self._dir.0.join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| std::env::var("CODERD_AGENT_LOG_GREP").map_or(true, |g| l.contains(&g)))
            .collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An echo template whose agent has a known token, a startup script and a metadata item.
pub fn agent_echo(token: Uuid) -> Value {
    json!({"start": {"resources": [{"name": "dev", "type": "echo_machine", "agents": [{
        "name": "main", "operating_system": "linux", "architecture": "amd64",
        "auth_token": token,
        "scripts": [{"display_name": "Startup Script", "run_on_start": true,
                     "script": "echo hello from the startup script"}],
        "metadata": [{"key": "tick", "display_name": "Tick", "script": "date +%s%N",
                      "interval_seconds": 1, "timeout_seconds": 1}]
    }]}]}})
}

pub async fn the_agent(c: &Client, ws: Uuid) -> WorkspaceAgent {
    let w: Workspace = c
        .get_json(&format!("/api/v2/workspaces/{ws}"))
        .await
        .unwrap();
    w.latest_build.resources[0].agents[0].clone()
}

/// Polls the workspace's agent until `done` holds (60 s at most).
pub async fn until(
    c: &Client,
    ws: Uuid,
    what: &str,
    agent: Option<&AgentProcess>,
    done: impl Fn(&WorkspaceAgent) -> bool,
) -> WorkspaceAgent {
    let started = Instant::now();
    loop {
        let a = the_agent(c, ws).await;
        if done(&a) {
            return a;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the agent never became {what}: status {}, lifecycle {}\nagent log:\n{}",
            a.status,
            a.lifecycle_state,
            agent.map(AgentProcess::log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_real_agent_connects_reports_and_disconnects() {
    let Some(bin) = coder_binary() else {
        eprintln!(
            "SKIPPED: coder CLI not found (set CODERD_CODER_CLI): the real agent was not run"
        );
        return;
    };
    if std::env::var_os("CODERD_TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,sqlx=warn,hyper=info",
            ))
            .try_init();
    }
    let srv = TestServer::start().await;
    scenario(&bin, &srv, None).await;
}

/// The same, with the agent connected to another replica (a `coderd` process on the same
/// database) and everything read from this one.
#[tokio::test]
async fn the_real_agent_on_another_replica_is_seen_from_this_one() {
    use crate::harness::replica::{free_port, Replica};
    let Some(bin) = coder_binary() else {
        eprintln!(
            "SKIPPED: coder CLI not found (set CODERD_CODER_CLI): the real agent was not run"
        );
        return;
    };
    let srv = TestServer::start().await;
    let mut other = Replica::spawn(
        &srv.db_url,
        free_port(),
        &[("CODER_PROVISIONER_DAEMONS", "0")],
    );
    other.wait_healthy().await;
    scenario(&bin, &srv, Some(&other.url)).await;
    other.signal("-TERM");
    let _ = other.wait_exit(Duration::from_secs(30)).await;
}

/// The agent's life as every client reads it from `srv`: the agent connects to `agent_url`
/// (another replica) or to `srv` itself.
async fn scenario(bin: &PathBuf, srv: &TestServer, agent_url: Option<&str>) {
    let agent_url = agent_url.unwrap_or(&srv.url).to_string();
    let (owner, first) = srv.owner().await;
    let token = Uuid::new_v4();
    let (t, _) = create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
    let w = owner.running_workspace(t.id, "dev").await;
    let before = the_agent(&owner, w.id).await;
    assert_eq!(before.status, "connecting");

    let agent = AgentProcess::start(bin, &agent_url, token);
    let a = until(&owner, w.id, "connected and ready", Some(&agent), |a| {
        a.status == "connected" && a.lifecycle_state == "ready"
    })
    .await;
    assert!(a.first_connected_at.is_some() && a.started_at.is_some() && a.ready_at.is_some());
    assert!(
        a.version.starts_with("v2."),
        "agent version {:?}",
        a.version
    );
    assert_eq!(a.api_version, "2.7");
    assert!(a.health.healthy, "{:?}", a.health);
    let ws: Workspace = owner
        .get_json(&format!("/api/v2/workspaces/{}", w.id))
        .await
        .unwrap();
    assert!(ws.health.healthy, "{:?}", ws.health);

    // The startup script's output reached the agent's logs.
    let started = Instant::now();
    loop {
        let logs: Vec<WorkspaceAgentLog> = owner
            .get_json(&format!("/api/v2/workspaceagents/{}/logs", a.id))
            .await
            .unwrap();
        if logs
            .iter()
            .any(|l| l.output.contains("hello from the startup script"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no startup script output in {logs:?}\nagent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Following the logs over a WebSocket gets them as batches.
    {
        use futures_util::StreamExt;
        let req = crate::harness::ws_request(
            &srv.url,
            &format!("/api/v2/workspaceagents/{}/logs?follow&after=0", a.id),
            owner.token().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a batch of logs")
            .unwrap()
            .unwrap();
        let batch: Vec<WorkspaceAgentLog> = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        assert!(
            batch
                .iter()
                .any(|l| l.output.contains("hello from the startup script")),
            "{batch:?}"
        );
    }

    // The real CLI shows the agent and its logs.
    let cli = crate::cli::CoderCli::new(bin, &srv.url, owner.token().unwrap());
    let out = cli.run(&["show", "dev"]).await;
    assert!(out.status.success(), "{out:#?}");
    assert!(
        out.stdout.contains("main"),
        "coder show lists the agent: {out:#?}"
    );
    assert!(
        !out.stderr.contains("version mismatch"),
        "no warning about the server: {out:#?}"
    );
    let out = cli.run(&["logs", "dev"]).await;
    assert!(out.status.success(), "{out:#?}");
    assert!(
        out.stdout.contains("hello from the startup script"),
        "coder logs shows the startup script's output: {out:#?}"
    );

    // The metadata item's value arrives, and changes, on the metadata watch.
    let mut resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v2/workspaceagents/{}/watch-metadata",
            srv.url, a.id
        ))
        .header("Coder-Session-Token", owner.token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut seen: Vec<String> = Vec::new();
    let mut buf = String::new();
    let started = Instant::now();
    while seen.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "metadata values seen: {seen:?}\nagent log:\n{}",
            agent.log()
        );
        let chunk = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
            .await
            .expect("a metadata event")
            .unwrap()
            .expect("the stream stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            if !event.starts_with("event: data") {
                continue;
            }
            let items: Vec<Value> = serde_json::from_str(data).unwrap();
            assert_eq!(items.len(), 1, "{data}");
            assert_eq!(items[0]["description"]["key"], "tick");
            let value = items[0]["result"]["value"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if !value.is_empty() && seen.last() != Some(&value) {
                seen.push(value);
            }
        }
    }
    drop(resp);
    // The WebSocket form sends the same events as `ServerSentEvent` messages.
    {
        use futures_util::StreamExt;
        let req = crate::harness::ws_request(
            &srv.url,
            &format!("/api/v2/workspaceagents/{}/watch-metadata-ws", a.id),
            owner.token().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a metadata event")
            .unwrap()
            .unwrap();
        let event: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        assert_eq!(event["type"], "data", "{event}");
        assert_eq!(event["data"][0]["description"]["key"], "tick", "{event}");
    }

    // Killing the agent ends its connection at once.
    drop(agent);
    let a = until(&owner, w.id, "disconnected", None, |a| {
        a.status == "disconnected"
    })
    .await;
    assert!(a.disconnected_at.is_some());

    // A new agent process reconnects.
    let again = AgentProcess::start(bin, &agent_url, token);
    until(&owner, w.id, "connected again", Some(&again), |a| {
        a.status == "connected"
    })
    .await;
}

#[tokio::test]
async fn agent_tokens_and_versions_are_checked() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let token = Uuid::new_v4();
    let (t, _) = create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
    owner.running_workspace(t.id, "dev").await;
    let rpc = |q: &str, token: Option<String>| {
        let mut req =
            reqwest::Client::new().get(format!("{}/api/v2/workspaceagents/me/rpc{q}", srv.url));
        if let Some(t) = token {
            req = req.header("Coder-Session-Token", t);
        }
        req
    };
    let cases = [
        (
            "",
            None,
            401,
            "Cookie \"coder_session_token\" must be provided.",
        ),
        (
            "",
            Some("not-a-uuid".to_string()),
            401,
            "Workspace agent token invalid.",
        ),
        (
            "",
            Some(Uuid::new_v4().to_string()),
            401,
            "Workspace agent not authorized.",
        ),
        (
            "?version=3.0",
            Some(token.to_string()),
            400,
            "Unknown or unsupported API version",
        ),
        (
            "?version=2.99",
            Some(token.to_string()),
            400,
            "Unknown or unsupported API version",
        ),
        // A valid agent that does not ask for a WebSocket.
        (
            "?version=2.7",
            Some(token.to_string()),
            400,
            "Failed to accept websocket.",
        ),
    ];
    for (q, tok, status, message) in cases {
        let resp = rpc(q, tok.clone()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{q} {tok:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["message"], message, "{q} {tok:?}: {body}");
    }
}

/// The agent connected to one replica (a `coderd` process) is seen connected from another, and
/// turns disconnected for everyone when that replica is killed without a word.
#[tokio::test]
async fn agent_status_holds_across_replicas_and_a_dead_one() {
    use crate::harness::replica::{free_port, Replica};
    let Some(bin) = coder_binary() else {
        eprintln!(
            "SKIPPED: coder CLI not found (set CODERD_CODER_CLI): the real agent was not run"
        );
        return;
    };
    let b = TestServer::start().await;
    let (owner, first) = b.owner().await;
    let token = Uuid::new_v4();
    let (t, _) = create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
    let w = owner.running_workspace(t.id, "dev").await;
    let mut a = Replica::spawn(
        &b.db_url,
        free_port(),
        &[("CODER_PROVISIONER_DAEMONS", "0")],
    );
    a.wait_healthy().await;

    let agent = AgentProcess::start(&bin, &a.url, token);
    let seen = until(
        &owner,
        w.id,
        "connected (read from the other replica)",
        Some(&agent),
        |x| x.status == "connected" && x.lifecycle_state == "ready",
    )
    .await;
    assert!(seen.disconnected_at.is_none());

    // kill -9: no disconnect is recorded; the missing heartbeats tell.
    a.signal("-KILL");
    assert!(a.wait_exit(Duration::from_secs(10)).await.is_some());
    let started = Instant::now();
    until(
        &owner,
        w.id,
        "disconnected after its replica died",
        None,
        |x| x.status == "disconnected",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "a dead replica's agent took {:?} to show disconnected",
        started.elapsed()
    );
    drop(agent);
}

/// Garbage on an agent's connection closes that connection; the server goes on serving.
#[tokio::test]
async fn garbage_on_the_agent_connection_is_cut_off() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let token = Uuid::new_v4();
    let (t, _) = create_template(&owner, first.organization_id, "agent", &agent_echo(token)).await;
    owner.running_workspace(t.id, "dev").await;
    let garbage: [&[u8]; 3] = [
        // Not yamux at all.
        b"GET / HTTP/1.1\r\n\r\n",
        // A yamux header of an unknown version.
        &[9, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0],
        // A yamux data frame claiming a 4 GiB body.
        &[0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
    ];
    for bytes in garbage {
        let req = crate::harness::ws_request(
            &srv.url,
            "/api/v2/workspaceagents/me/rpc?version=2.7",
            &token.to_string(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        ws.send(Message::Binary(bytes.to_vec().into()))
            .await
            .unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(m) = ws.next().await {
                if matches!(m, Err(_) | Ok(Message::Close(_))) {
                    return;
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the connection stayed open after {bytes:?}");
    }
    // A text message is not the agent protocol either.
    let req = crate::harness::ws_request(
        &srv.url,
        "/api/v2/workspaceagents/me/rpc?version=2.7",
        &token.to_string(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::Text("hello".into())).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = ws.next().await {
            if matches!(m, Err(_) | Ok(Message::Close(_))) {
                return;
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the connection stayed open after a text message"
    );
    // A method the server does not know is answered with an error, not a dropped agent.
    let rpc = "/api/v2/workspaceagents/me/rpc?version=2.7";
    let mut call = crate::harness::tailnet::Coordination::call(
        &srv.url,
        rpc,
        &token.to_string(),
        "/coder.agent.v2.Agent/NoSuchMethod",
    )
    .await;
    call.send_raw(Vec::new()).await;
    match call.next(Duration::from_secs(10)).await {
        Some(Err(e)) => assert!(e.contains("unknown rpc"), "{e}"),
        other => panic!("an unknown method got {other:?}"),
    }
    // A request that is not the protobuf its method takes ends that call with an error.
    let mut call = crate::harness::tailnet::Coordination::call(
        &srv.url,
        rpc,
        &token.to_string(),
        "/coder.agent.v2.Agent/UpdateLifecycle",
    )
    .await;
    call.send_raw(vec![0xff; 64]).await;
    match call.next(Duration::from_secs(10)).await {
        Some(Err(e)) => assert!(e.contains("decoding"), "{e}"),
        other => panic!("a request that does not decode got {other:?}"),
    }
    // The server is fine, and the agent shows disconnected.
    let me = owner.user("me").await.unwrap();
    assert_eq!(me.username, "owner");
}

/// `/bin/`: the agent binaries from the operator's directory, with ETags and a listing; a
/// missing binary or a name outside the scheme is a clear 404.
#[tokio::test]
async fn agent_binaries_are_served_from_the_operators_directory() {
    let dir = tempdir::Dir::new("coderd-bin");
    std::fs::write(dir.0.join("coder-linux-amd64"), b"#!/bin/sh\necho agent\n").unwrap();
    std::fs::write(dir.0.join("coder-windows-amd64.exe"), b"MZ").unwrap();
    std::fs::write(dir.0.join("secret.txt"), b"not served").unwrap();
    let path = dir.0.clone();
    let srv = TestServer::start_with(move |o| o.agent_binaries_dir = Some(path)).await;
    let http = reqwest::Client::new();
    let get = |p: &str| http.get(format!("{}{p}", srv.url));

    let resp = get("/bin/coder-linux-amd64").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag.len(), 42, "a quoted SHA-1: {etag}");
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        b"#!/bin/sh\necho agent\n"
    );
    let resp = get("/bin/coder-linux-amd64")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 304);
    let resp = http
        .head(format!("{}/bin/coder-windows-amd64.exe", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-length"], "2");

    let listing = get("/bin/coder.sha1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(names, ["coder-linux-amd64", "coder-windows-amd64.exe"]);
    assert!(listing.starts_with(&etag[1..41]), "{listing}");

    for missing in [
        "/bin/coder-darwin-arm64",
        "/bin/secret.txt",
        "/bin/..%2Fsecret.txt",
    ] {
        let resp = get(missing).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{missing}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("CODER_AGENT_BINARIES_DIR"),
            "{missing}: {body}"
        );
    }
}

/// The real agent checks an app's health as the template says (`coder_app`'s healthcheck) and
/// the API shows it `healthy`, then `unhealthy` once the app stops answering; a startup script
/// that floods its logs past the 1 MiB limit leaves the agent connected, its logs marked
/// overflowed and their size at the limit.
#[tokio::test]
async fn app_health_and_a_log_flood_with_the_real_agent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(bin) = coder_binary() else {
        eprintln!(
            "SKIPPED: coder CLI not found (set CODERD_CODER_CLI): the real agent was not run"
        );
        return;
    };
    // The "app": answers 200 to anything until it is stopped.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let token = Uuid::new_v4();
    let archive = json!({"start": {"resources": [{"name": "dev", "type": "echo_machine", "agents": [{
        "name": "main", "operating_system": "linux", "architecture": "amd64",
        "auth_token": token,
        "apps": [{"slug": "web", "display_name": "Web", "url": format!("http://127.0.0.1:{port}"),
                  "healthcheck": {"url": format!("http://127.0.0.1:{port}/healthz"),
                                  "interval": 1, "threshold": 2}}],
        "scripts": [{"display_name": "Flood", "run_on_start": true,
                     "script": "head -c 3000000 /dev/zero | tr '\\0' x | fold -w 100"}]
    }]}]}});
    let (t, _) = create_template(&owner, first.organization_id, "agent", &archive).await;
    let w = owner.running_workspace(t.id, "dev").await;
    let before = the_agent(&owner, w.id).await;
    assert_eq!(before.apps[0].health, "initializing");
    assert_eq!(before.apps[0].healthcheck.threshold, 2);

    let agent = AgentProcess::start(&bin, &srv.url, token);
    until(
        &owner,
        w.id,
        "ready with a healthy app",
        Some(&agent),
        |a| {
            a.status == "connected" && a.lifecycle_state == "ready" && a.apps[0].health == "healthy"
        },
    )
    .await;
    let a = until(&owner, w.id, "overflowed", Some(&agent), |a| {
        a.logs_overflowed
    })
    .await;
    assert!(
        a.logs_length <= 1 << 20,
        "{} bytes of logs kept",
        a.logs_length
    );
    assert_eq!(
        a.status, "connected",
        "the flood did not cost the agent its connection"
    );

    app.abort();
    // Aborting the accept loop closes the listener: the checks fail from now on.
    until(
        &owner,
        w.id,
        "unhealthy once the app is gone",
        Some(&agent),
        |a| a.apps[0].health == "unhealthy",
    )
    .await;
}
