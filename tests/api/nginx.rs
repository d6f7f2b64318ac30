//! Behind a real nginx (Debian's), configured as the README's example: TLS with a certificate
//! made for the test, HTTP/1.1 to the upstream, `Upgrade` passed on, buffering off, and the
//! client's address in `X-Forwarded-For`. Through it: logins and rate limits per real client
//! address, an SSE watch that outlives nginx's idle timeout through heartbeats, a WebSocket
//! watch, a log follow, a large upload, and the forwarding rules for trusted and untrusted
//! peers. Without nginx (or openssl) the test says SKIPPED loudly.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::files::tar_with;
use crate::harness::echo::create_template;
use crate::harness::replica::{free_port, Replica};
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{checked_client, create_owner, ws_request, TestServer};
use crate::streams::{echo, follow, Sse};

/// nginx's idle timeout in the test config: longer than the server's 15 s heartbeat.
const READ_TIMEOUT_SECS: u64 = 20;

fn find(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The README's nginx site, for `upstream` (host:port lines) on `tls_port` and `plain_port`.
pub fn site_config(upstream: &str, tls_port: u16, plain_port: u16, dir: &Path) -> String {
    format!(
        r#"
upstream coderd {{
{upstream}}}
map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      close;
}}
server {{
    listen 127.0.0.1:{tls_port} ssl;
    listen 127.0.0.1:{plain_port};
    server_name localhost;
    ssl_certificate     {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;

    client_max_body_size 110m;
    location / {{
        proxy_pass http://coderd;
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_buffering off;
        proxy_request_buffering off;
        proxy_read_timeout {READ_TIMEOUT_SECS}s;
        proxy_next_upstream error timeout http_502 http_503;
    }}
}}
"#,
        dir = dir.display()
    )
}

/// An nginx process with its own prefix in a temporary directory, killed when dropped.
pub struct Nginx {
    child: Child,
    pub dir: PathBuf,
    pub plain: String,
    pub tls_port: u16,
}

impl Nginx {
    /// Starts nginx in front of `upstreams` (`127.0.0.1:port` each), or says why it cannot.
    pub async fn start(upstreams: &[String]) -> Result<Nginx, String> {
        let nginx = find("nginx", "CODERD_NGINX").ok_or("nginx not found")?;
        let dir = std::env::temp_dir().join(format!("coderd-nginx-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        crate::production::test_certificate(&dir)?;
        let (tls_port, plain_port) = (free_port(), free_port());
        let upstream: String = upstreams
            .iter()
            .map(|u| format!("    server {u} max_fails=0;\n"))
            .collect();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/logs/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n{site}\n}}\n",
            d = dir.display(),
            site = site_config(&upstream, tls_port, plain_port, &dir)
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("stderr.log")).unwrap(),
            ))
            .spawn()
            .expect("starting nginx");
        let n = Nginx {
            child,
            dir,
            plain: format!("http://127.0.0.1:{plain_port}"),
            tls_port,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", plain_port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nginx did not start: {}",
                std::fs::read_to_string(n.dir.join("stderr.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(n)
    }

    /// `curl -i` over TLS to `path`, trusting the test certificate: the whole answer.
    pub async fn curl_tls(&self, args: &[&str], path: &str) -> String {
        let url = format!("https://localhost:{}{path}", self.tls_port);
        crate::production::curl_tls(&self.dir, args, &url).await
    }
}

impl Drop for Nginx {
    /// SIGTERM first: the master then stops its worker, which SIGKILL would orphan.
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our child's, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        while self.child.try_wait().ok().flatten().is_none()
            && started.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A client whose connections come from `local` (one of 127.0.0.x).
fn from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// Anonymous `GET /api/v2/buildinfo` from `local` until 429: how many were allowed.
async fn budget(client: &reqwest::Client, base: &str, spoof: Option<&str>) -> usize {
    for n in 0..150 {
        let mut r = client.get(format!("{base}/api/v2/buildinfo"));
        if let Some(s) = spoof {
            r = r.header("X-Forwarded-For", s);
        }
        let status = r.send().await.unwrap().status();
        if status == 429 {
            return n;
        }
        assert_eq!(status, 200);
    }
    150
}

#[tokio::test]
async fn behind_nginx() {
    // The server trusts X-Forwarded-For from 127.0.0.1 only: nginx's address.
    let srv = TestServer::start_with(|o| {
        o.dangerous_disable_rate_limits = false;
        o.api_rate_limit = 100;
        o.proxy_trusted_headers = vec!["X-Forwarded-For".into()];
        o.proxy_trusted_origins = vec!["127.0.0.1/32".into()];
    })
    .await;
    let upstream = srv.url.trim_start_matches("http://").to_string();
    let nginx = match Nginx::start(&[upstream]).await {
        Ok(n) => n,
        Err(why) => {
            eprintln!("SKIPPED: {why}: the nginx suite (tests/api/nginx.rs) did not run");
            srv.stop().await;
            return;
        }
    };
    let base = nginx.plain.clone();

    // Each client address has its own budget, though all come through nginx; what a client
    // says in X-Forwarded-For is replaced by nginx.
    assert_eq!(
        budget(&from("127.0.0.2"), &base, Some("203.0.113.9")).await,
        100
    );
    assert_eq!(
        budget(&from("127.0.0.3"), &base, Some("203.0.113.9")).await,
        100
    );
    // Directly, from a peer that is not trusted, the header is ignored: 127.0.0.2 has
    // already spent its budget, whatever it claims.
    assert_eq!(
        budget(&from("127.0.0.2"), &srv.url, Some("198.51.100.1")).await,
        0
    );

    // Login over TLS: the access URL is http here, so the cookie is not Secure; the key
    // records the client's address as nginx saw it.
    let anon = checked_client(&base);
    let (owner, first) = create_owner(&anon).await;
    let body =
        json!({"email": crate::harness::OWNER_EMAIL, "password": crate::harness::OWNER_PASSWORD})
            .to_string();
    let answer = nginx
        .curl_tls(
            &[
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
            ],
            "/api/v2/users/login",
        )
        .await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("coder_session_token="), "{answer}");

    let token = owner.token().unwrap().to_string();
    let (t, _) = create_template(&owner, first.organization_id, "proxied", &echo(30, 0)).await;
    let w = owner.running_workspace(t.id, "dev").await;

    // The build's logs, followed over a WebSocket through nginx.
    let path = format!("/api/v2/workspacebuilds/{}/logs?follow", w.latest_build.id);
    let (logs, code) = follow(&base, &path, &token).await;
    assert_eq!((logs.len(), code), (30, CloseCode::Normal));

    // A WebSocket watch through nginx sees the current state at once (after a ping).
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(
        &base,
        &format!("/api/v2/workspaces/{}/watch-ws", w.id),
        &token,
    ))
    .await
    .expect("a WebSocket through nginx");
    let first_frame = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"type\":\"data\"") => {
                    return t.to_string()
                }
                Some(Ok(_)) => continue,
                other => panic!("the WebSocket watch ended: {other:?}"),
            }
        }
    })
    .await
    .expect("no frame through nginx");
    assert!(first_frame.contains("\"type\":\"data\""), "{first_frame}");

    // An SSE watch: the first event comes through unbuffered; then nothing changes for
    // longer than nginx's idle timeout, and heartbeats keep the stream open; a build then
    // arrives on the same stream.
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v2/workspaces/{}/watch", w.id))
        .header("Coder-Session-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut sse = Sse::from_response(resp);
    sse.until_status("running").await;
    let quiet_until = Instant::now() + Duration::from_secs(READ_TIMEOUT_SECS + 3);
    let mut pings = 0;
    while Instant::now() < quiet_until {
        let left = quiet_until.saturating_duration_since(Instant::now());
        match sse.next(left).await {
            Some((kind, _)) if kind == "ping" => pings += 1,
            Some(_) => {}
            None => break,
        }
    }
    assert!(pings >= 1, "no heartbeat in {READ_TIMEOUT_SECS} s");
    owner.stop(w.id).await;
    sse.until_status("stopped").await;
    drop(socket);

    // A large template upload goes through (nginx's body limit is above the server's).
    let big = vec![b'x'; 40 << 20];
    let tar = tar_with(&[("main.tf", b"" as &[u8]), ("blob.bin", &big)]);
    let raw = owner
        .send(
            reqwest::Method::POST,
            "/api/v2/files",
            Some(("application/x-tar", tar)),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", String::from_utf8_lossy(&raw.body));

    // A key made through nginx records the client's address, not nginx's.
    let key = from("127.0.0.2")
        .post(format!("{base}/api/v2/users/login"))
        .json(&json!({"email": crate::harness::OWNER_EMAIL, "password": crate::harness::OWNER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 201);
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(&srv.db_url).await.unwrap();
    let ip: Option<String> = sqlx::query_scalar(
        "SELECT host(ip_address) FROM api_keys ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(ip.as_deref(), Some("127.0.0.2"));
    drop(nginx);
    srv.stop().await;
}

/// A replica with one provisioner daemon.
fn spawn_replica(db_url: &str, port: u16) -> Replica {
    Replica::spawn(db_url, port, &[("CODER_PROVISIONER_DAEMONS", "1")])
}

/// SIGTERM, then waits (20 s at most) for a clean exit.
async fn terminate(replica: &mut Replica) {
    replica.signal("-TERM");
    match replica.wait_exit(Duration::from_secs(20)).await {
        Some(status) => assert!(status.success(), "the replica exited with {status}"),
        None => panic!("SIGTERM did not stop the replica"),
    }
}

enum Next {
    Event(String, Option<serde_json::Value>),
    Quiet,
    End,
}

/// An SSE watch that tells a clean end from silence.
struct Watch {
    resp: reqwest::Response,
    buf: String,
}

impl Watch {
    async fn open(base: &str, token: &str, workspace: uuid::Uuid) -> Watch {
        let resp = reqwest::Client::new()
            .get(format!("{base}/api/v2/workspaces/{workspace}/watch"))
            .header("Coder-Session-Token", token)
            .send()
            .await
            .expect("opening a watch through nginx");
        assert_eq!(resp.status(), 200, "opening a watch through nginx");
        Watch {
            resp,
            buf: String::new(),
        }
    }

    async fn next(&mut self, within: Duration) -> Next {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let kind = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .unwrap_or("")
                    .to_string();
                let data = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .map(|d| serde_json::from_str(d).expect("data lines are JSON"));
                return Next::Event(kind, data);
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Next::Quiet;
            };
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(Ok(None)) => return Next::End,
                Ok(Err(e)) => panic!("the watch broke instead of ending cleanly: {e:?}"),
                Err(_) => return Next::Quiet,
            }
        }
    }

    async fn until_status(&mut self, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Next::Event(kind, Some(data)) if kind == "data" => {
                    if data["latest_build"]["status"] == status {
                        return;
                    }
                }
                Next::Event(..) => {}
                Next::Quiet => panic!("no {status} event"),
                Next::End => panic!("the watch ended before {status}"),
            }
        }
    }

    async fn until_end(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Next::End => return,
                Next::Event(..) => {}
                Next::Quiet => panic!("the watch did not end when its replica stopped"),
            }
        }
    }
}

/// Which replica holds the one open stream, by its `/metrics`.
async fn stream_holder(replicas: &[Replica]) -> usize {
    let started = Instant::now();
    loop {
        for (i, r) in replicas.iter().enumerate() {
            let s = crate::production::scrape(&r.url).await;
            if crate::production::sample(&s, "coderd_open_streams", &[]) == Some(1.0) {
                return i;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no replica holds the watch"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rolling_restart_behind_nginx() {
    let db_url = crate::harness::fresh_database().await;
    let ports = [free_port(), free_port()];
    let mut replicas = [
        spawn_replica(&db_url, ports[0]),
        spawn_replica(&db_url, ports[1]),
    ];
    for r in &mut replicas {
        r.wait_healthy().await;
    }
    let nginx = match Nginx::start(&ports.map(|p| format!("127.0.0.1:{p}"))).await {
        Ok(n) => n,
        Err(why) => {
            eprintln!("SKIPPED: {why}: the rolling restart behind nginx did not run");
            return;
        }
    };
    let base = nginx.plain.clone();
    let (owner, first) = create_owner(&checked_client(&base)).await;
    let token = owner.token().unwrap().to_string();
    let (t, _) = create_template(&owner, first.organization_id, "rolling", &echo(3, 0)).await;
    let w = owner.running_workspace(t.id, "dev").await;

    // A client that keeps calling the API through nginx the whole time.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let caller = {
        let (done, base, token) = (done.clone(), base.clone(), token.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let paths = [
                "/api/v2/users/me".to_string(),
                format!("/api/v2/workspaces/{}", w.id),
            ];
            let (mut ok, mut failed) = (0usize, Vec::new());
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                for path in &paths {
                    match http
                        .get(format!("{base}{path}"))
                        .header("Coder-Session-Token", &token)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => ok += 1,
                        Ok(r) => failed.push(format!("{path}: {}", r.status())),
                        Err(e) => failed.push(format!("{path}: {e}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed)
        })
    };

    let mut watch = Watch::open(&base, &token, w.id).await;
    watch.until_status("running").await;
    let mut restarted = Vec::new();
    for (transition, status) in [("stop", "stopped"), ("start", "running")] {
        // Stop the replica holding the watch: its stream ends cleanly, the client opens it
        // again through nginx (the other replica), and sees the next build there.
        let holder = stream_holder(&replicas).await;
        restarted.push(holder);
        terminate(&mut replicas[holder]).await;
        watch.until_end().await;
        watch = Watch::open(&base, &token, w.id).await;
        let (code, body) = owner.post_build(w.id, transition).await;
        assert_eq!(code, 201, "{body}");
        watch.until_status(status).await;
        replicas[holder] = spawn_replica(&db_url, ports[holder]);
        replicas[holder].wait_healthy().await;
    }
    // Both replicas were restarted in turn.
    restarted.sort_unstable();
    assert_eq!(restarted, [0, 1]);

    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed) = caller.await.unwrap();
    assert!(
        failed.is_empty(),
        "requests failed during the rolling restart: {failed:?}"
    );
    assert!(ok >= 20, "only {ok} requests were made");
    drop(nginx);
}
