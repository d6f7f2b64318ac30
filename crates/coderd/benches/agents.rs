//! Connected agents at scale: N simulated agents (each a WebSocket carrying yamux carrying
//! DRPC, as upstream's agent holds it) on one `coderd` process. Measures the server's memory per
//! connected agent, its CPU while the agents idle (heartbeats, stats every 30 s, metadata every
//! 10 s, as upstream's agents report), and how long an agent's disconnection takes to reach a
//! watcher of its workspace. Run with `cargo bench -p coderd --bench agents` (`AGENTS=N`,
//! default 1000).

use std::task::Poll;
use std::time::{Duration, Instant};

use coderd_wire::drpc::{Kind, Packet, PacketReader, PacketWriter};
use coderd_wire::proto::agent as pb;
use coderd_wire::proto::tailnet as tn;
use futures_util::future::poll_fn;
use futures_util::io::AsyncReadExt;
use prost::Message as _;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

mod common;
#[path = "common/proc.rs"]
mod proc;

use common::echo::create_template;
use common::workspace::WorkspaceApi;
use common::SETUP_TIMEOUT;
use proc::{raise_fd_limit, start_coderd};

#[path = "../../../tests/support/ws_bytes.rs"]
mod ws_bytes;
use ws_bytes::WsBytes;

struct SimAgent {
    open: mpsc::Sender<oneshot::Sender<yamux::Stream>>,
    driver: tokio::task::JoinHandle<()>,
}

impl SimAgent {
    async fn connect(base: &str, token: Uuid) -> SimAgent {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!(
            "{}/api/v2/workspaceagents/me/rpc?version=2.7",
            base.replacen("http", "ws", 1)
        )
        .into_client_request()
        .expect("request");
        req.headers_mut().insert(
            "Coder-Session-Token",
            token.to_string().parse().expect("header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("agent connect");
        let mut conn = yamux::Connection::new(
            WsBytes::new(ws),
            yamux::Config::default(),
            yamux::Mode::Client,
        );
        let (open, mut requests) = mpsc::channel::<oneshot::Sender<yamux::Stream>>(8);
        let driver = tokio::spawn(async move {
            let mut waiting: Vec<oneshot::Sender<yamux::Stream>> = Vec::new();
            poll_fn(|cx| {
                while let Poll::Ready(Some(tx)) = requests.poll_recv(cx) {
                    waiting.push(tx);
                }
                while !waiting.is_empty() {
                    match conn.poll_new_outbound(cx) {
                        Poll::Ready(Ok(s)) => {
                            let _ = waiting.remove(0).send(s);
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending => break,
                    }
                }
                loop {
                    match conn.poll_next_inbound(cx) {
                        Poll::Ready(Some(Ok(_))) => {}
                        Poll::Ready(_) => return Poll::Ready(()),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            })
            .await;
        });
        SimAgent { open, driver }
    }

    /// One unary call on a fresh stream, as upstream's agent makes each call.
    async fn call(&self, method: &str, req: Vec<u8>) -> Vec<u8> {
        let (tx, rx) = oneshot::channel();
        self.open.send(tx).await.expect("driver alive");
        let stream = rx.await.expect("a stream");
        let (r, w) = AsyncReadExt::split(stream);
        let mut reader = PacketReader::new(r);
        let mut writer = PacketWriter::new(w);
        for (kind, message, data) in [
            (Kind::Invoke, 1, method.as_bytes().to_vec()),
            (Kind::Message, 2, req),
            (Kind::CloseSend, 3, Vec::new()),
        ] {
            writer
                .send(&Packet {
                    kind,
                    stream: 1,
                    message,
                    data,
                })
                .await
                .expect("sending a call");
        }
        let p = reader.next().await.expect("reading").expect("an answer");
        assert_eq!(
            p.kind,
            Kind::Message,
            "{method}: {:?}",
            String::from_utf8_lossy(&p.data)
        );
        let _ = writer.close().await;
        p.data
    }

    /// Opens `Coordinate` and reports a node, leaving the stream open: the agent is then a
    /// coordinated tailnet peer, as a real agent is all its life.
    async fn coordinate(&self, node_id: i64) -> Box<dyn std::any::Any + Send> {
        let (tx, rx) = oneshot::channel();
        self.open.send(tx).await.expect("driver alive");
        let stream = rx.await.expect("a stream");
        let (r, w) = AsyncReadExt::split(stream);
        let mut writer = PacketWriter::new(w);
        let req = tn::CoordinateRequest {
            update_self: Some(tn::UpdateSelf {
                node: Some(tn::Node {
                    id: node_id,
                    key: vec![7; 32],
                    disco: format!("discokey:{node_id:064x}"),
                    preferred_derp: 999,
                    addresses: vec![format!("fd7a:115c:a1e0::{node_id:x}/128")],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        for (kind, message, data) in [
            (
                Kind::Invoke,
                1,
                b"/coder.tailnet.v2.Tailnet/Coordinate".to_vec(),
            ),
            (Kind::Message, 2, req.encode_to_vec()),
        ] {
            writer
                .send(&Packet {
                    kind,
                    stream: 1,
                    message,
                    data,
                })
                .await
                .expect("sending a coordinate request");
        }
        Box::new((PacketReader::new(r), writer))
    }

    async fn report_ready(&self) {
        let req = pb::UpdateLifecycleRequest {
            lifecycle: Some(pb::Lifecycle {
                state: 5,
                changed_at: None,
            }),
        };
        self.call("/coder.agent.v2.Agent/UpdateLifecycle", req.encode_to_vec())
            .await;
    }

    async fn report_stats(&self) {
        let req = pb::UpdateStatsRequest {
            stats: Some(pb::Stats::default()),
        };
        self.call("/coder.agent.v2.Agent/UpdateStats", req.encode_to_vec())
            .await;
    }

    async fn report_metadata(&self, value: &str) {
        let req = pb::BatchUpdateMetadataRequest {
            metadata: vec![pb::Metadata {
                key: "load".into(),
                result: Some(pb::MetadataResult {
                    collected_at: None,
                    age: 0,
                    value: value.into(),
                    error: String::new(),
                }),
            }],
        };
        self.call(
            "/coder.agent.v2.Agent/BatchUpdateMetadata",
            req.encode_to_vec(),
        )
        .await;
    }
}

/// Total CPU time (user + system) of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    proc::cpu_ticks_of(pid) as f64 / proc::clock_ticks_per_second()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("agents: skipped (run it with `cargo bench`)");
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
    let n: usize = std::env::var("AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let limits = raise_fd_limit();
    eprintln!("open files limit {}", limits.0);
    let (root, mut pg) = proc::bench_postgres("agents").await;
    let mut srv = start_coderd(&root, pg.url(), 1);
    srv.wait_healthy().await;
    let (owner, first, _) = common::first_owner(&srv.url).await;

    // A hundred agents a workspace (a template each, so every agent has its own token).
    let started = Instant::now();
    let mut tokens = Vec::with_capacity(n);
    let mut workspaces = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(100) {
        let count = 100.min(n - chunk * 100);
        let chunk_tokens: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
        let agents: Vec<serde_json::Value> = chunk_tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                json!({"name": format!("a{i}"), "operating_system": "linux", "architecture": "amd64",
                       "auth_token": t,
                       "metadata": [{"key": "load", "display_name": "Load", "script": "true",
                                     "interval_seconds": 10, "timeout_seconds": 1}]})
            })
            .collect();
        let echo =
            json!({"start": {"resources": [{"name": "vm", "type": "echo_vm", "agents": agents}]}});
        let (template, _) =
            create_template(&owner, first.organization_id, &format!("t{chunk}"), &echo).await;
        let w = owner
            .create_workspace(template.id, &format!("w{chunk}"))
            .await;
        workspaces.push(w.id);
        tokens.extend(chunk_tokens);
    }
    // Wait for the builds.
    for w in &workspaces {
        owner
            .wait_for_status_within(*w, "running", SETUP_TIMEOUT)
            .await;
    }
    eprintln!(
        "{n} agents in {} workspaces built in {:?}",
        workspaces.len(),
        started.elapsed()
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = srv.rss_kib();
    let connect_started = Instant::now();
    let mut agents = Vec::with_capacity(n);
    for t in &tokens {
        let a = SimAgent::connect(&srv.url, *t).await;
        a.report_ready().await;
        agents.push(a);
    }
    let connect_time = connect_started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let connected_rss = srv.rss_kib();
    let per_agent = (connected_rss.saturating_sub(idle_rss)) as f64 / n as f64;

    // Every agent a coordinated tailnet peer, as real agents are.
    let mut coordinations = Vec::with_capacity(n);
    for (i, a) in agents.iter().enumerate() {
        coordinations.push(a.coordinate(i as i64).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let peers = srv.metric("coderd_tailnet_coordinator_peers").await;
    assert_eq!(peers, n as i64, "every agent is a coordinated peer");
    let coordinated_rss = srv.rss_kib();
    let per_peer = (coordinated_rss.saturating_sub(connected_rss)) as f64 / n as f64;

    // Idle: 60 s of upstream's reporting rhythm, spread over the agents.
    let agents = std::sync::Arc::new(agents);
    let window = Duration::from_secs(60);
    let cpu_before = cpu_seconds(srv.child.id());
    let window_started = Instant::now();
    let reporter = {
        let agents = agents.clone();
        tokio::spawn(async move {
            let step = Duration::from_secs(10) / agents.len().max(1) as u32;
            let mut round = 0u64;
            loop {
                for (i, a) in agents.iter().enumerate() {
                    a.report_metadata(&format!("{round}")).await;
                    if (round as usize + i).is_multiple_of(3) {
                        a.report_stats().await;
                    }
                    tokio::time::sleep(step).await;
                }
                round += 1;
            }
        })
    };
    tokio::time::sleep(window).await;
    reporter.abort();
    let _ = reporter.await;
    let cpu = (cpu_seconds(srv.child.id()) - cpu_before) / window_started.elapsed().as_secs_f64();

    // A disconnection reaching a workspace watcher.
    let mut latencies = Vec::new();
    let agents = std::sync::Arc::try_unwrap(agents)
        .ok()
        .expect("reporter gone");
    let mut agents: Vec<Option<SimAgent>> = agents.into_iter().map(Some).collect();
    for k in 0..workspaces.len().min(10) {
        let w = workspaces[k];
        let mut resp = reqwest::Client::new()
            .get(format!("{}/api/v2/workspaces/{w}/watch", srv.url))
            .header("Coder-Session-Token", owner.token().unwrap())
            .send()
            .await
            .expect("watch");
        // The first event is the current state.
        let _ = resp.chunk().await;
        let agent = agents[k * 100].take().expect("agent");
        let cut = Instant::now();
        agent.driver.abort();
        drop(agent);
        let mut buf = String::new();
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
                .await
                .expect("an event in time")
                .expect("stream")
                .expect("open");
            buf.push_str(&String::from_utf8_lossy(&chunk));
            if buf.contains("\"disconnected\"") {
                break;
            }
        }
        latencies.push(cut.elapsed());
    }
    latencies.sort();
    drop(agents);

    drop(coordinations);

    println!("| agents | connect all | RSS idle | RSS connected | per agent | RSS coordinated | per coordinated peer | CPU at idle (of one core) | disconnect → watcher (median, max) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {n} | {:.1} s | {} MiB | {} MiB | {:.1} KiB | {} MiB | {:.1} KiB | {:.1} % | {:.0} ms, {:.0} ms |",
        connect_time.as_secs_f64(),
        idle_rss / 1024,
        connected_rss / 1024,
        per_agent,
        coordinated_rss / 1024,
        per_peer,
        cpu * 100.0,
        latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0,
    );
    srv.stop().await;
    pg.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}
