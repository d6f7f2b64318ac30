//! The embedded DERP relay of a release `coderd` process: packet throughput between two peers
//! on this machine, next to the same bytes over raw loopback TCP, and the memory of idle DERP
//! connections. benches/README.md has the numbers.
//!
//! `cargo bench -p coderd --bench derp` (`DERP_CONNS=N` idle connections, default 1,000).

use std::time::{Duration, Instant};

use coderd_wire::derp::{ClientConn, Event, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

#[path = "common/proc.rs"]
mod proc;

use proc::{raise_fd_limit, start_coderd, Replica};

/// A WireGuard packet's size on a 1280-byte tunnel MTU, roughly.
const PACKET: usize = 1200;
const WINDOW: Duration = Duration::from_secs(5);

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("derp: skipped (run it with `cargo bench`)");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench());
}

/// A DERP client connection over `Upgrade: DERP`, as tailscale's client makes it.
async fn connect(
    addr: &std::net::SocketAddr,
    keys: &KeyPair,
) -> ClientConn<Compat<tokio::net::TcpStream>> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    tcp.write_all(
        format!(
            "GET /derp HTTP/1.1\r\nHost: {addr}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("request");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(tcp.read(&mut b).await.expect("response"), 1, "relay closed");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    ClientConn::handshake(tcp.compat(), keys, None)
        .await
        .expect("handshake")
}

/// Sends packets from `a` to `b` for the window; returns (sent, received) bytes per second.
async fn relay_throughput(addr: &std::net::SocketAddr) -> (f64, f64) {
    let (ka, kb) = (KeyPair::generate(), KeyPair::generate());
    let mut a = connect(addr, &ka).await;
    let mut b = connect(addr, &kb).await;
    let dst = kb.public();
    let packet = vec![0x5a; PACKET];
    let receiver = tokio::spawn(async move {
        let mut bytes = 0u64;
        let deadline = tokio::time::Instant::now() + WINDOW + Duration::from_secs(1);
        while let Ok(Ok(e)) = tokio::time::timeout_at(deadline, b.recv()).await {
            if let Event::Packet { data, .. } = e {
                bytes += data.len() as u64;
            }
        }
        bytes
    });
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < WINDOW {
        // Bursts of 32, then a flush, the way a busy WireGuard peer writes.
        for _ in 0..32 {
            a.send_frame(coderd_wire::derp::frame::SEND_PACKET, &[&dst, &packet])
                .await
                .expect("send");
            sent += PACKET as u64;
        }
        a.flush().await.expect("flush");
    }
    let secs = started.elapsed().as_secs_f64();
    let received = receiver.await.expect("receiver");
    (sent as f64 / secs, received as f64 / secs)
}

/// The same packets over one loopback TCP connection, framed the same way, nothing between.
async fn tcp_throughput() -> f64 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let receiver = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 64 << 10];
        let mut bytes = 0u64;
        let deadline = tokio::time::Instant::now() + WINDOW + Duration::from_secs(1);
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
        bytes
    });
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let frame: Vec<u8> = [&[4u8, 0, 0, 0, 0][..], &[0u8; 32], &vec![0x5a; PACKET]].concat();
    let burst: Vec<u8> = frame.repeat(32);
    let started = Instant::now();
    while started.elapsed() < WINDOW {
        s.write_all(&burst).await.unwrap();
    }
    drop(s);
    let secs = started.elapsed().as_secs_f64();
    let bytes = receiver.await.unwrap();
    // Count packet payload only, as the relay's figure does.
    bytes as f64 * (PACKET as f64 / frame.len() as f64) / secs
}

async fn bench() {
    let n: usize = std::env::var("DERP_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    raise_fd_limit();
    let (root, mut pg) = proc::bench_postgres("derp").await;
    let mut srv = start_coderd(&root, pg.url(), 1);
    srv.wait_healthy().await;
    let addr = srv.addr();

    let mib = |b: f64| b / (1 << 20) as f64;
    let tcp = tcp_throughput().await;
    println!(
        "loopback TCP, the same frames, no relay: {:.0} MiB/s",
        mib(tcp)
    );
    let (sent, received) = relay_throughput(&addr).await;
    let dropped = metric_dropped(&srv).await;
    println!(
        "coderd's relay: offered {:.0} MiB/s, delivered {:.0} MiB/s, {} packets dropped",
        mib(sent),
        mib(received),
        dropped
    );
    // Upstream's relay (tailscale's derper, from coder's fork of tailscale), when built:
    // `CODERD_UPSTREAM_DERPER=/path/to/derper` (benches/README.md says how).
    if let Some(derper) = std::env::var_os("CODERD_UPSTREAM_DERPER") {
        let dir = root.join("derper");
        std::fs::create_dir_all(&dir).expect("derper dir");
        let mut child = std::process::Command::new(derper)
            .args(["-dev", "-stun=false", "-c"])
            .arg(dir.join("derper.json"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting derper");
        let up: std::net::SocketAddr = "127.0.0.1:3340".parse().unwrap();
        let started = Instant::now();
        while tokio::net::TcpStream::connect(up).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "derper never listened"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (sent, received) = relay_throughput(&up).await;
        println!(
            "upstream's derper: offered {:.0} MiB/s, delivered {:.0} MiB/s",
            mib(sent),
            mib(received)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = |pid: u32| -> u64 {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        let idle = rss(child.id());
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(connect(&up, &KeyPair::generate()).await);
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let connected = rss(child.id());
        println!(
            "upstream's derper, {n} idle connections: RSS {} → {} MiB, {:.1} KiB per connection",
            idle / 1024,
            connected / 1024,
            connected.saturating_sub(idle) as f64 / n as f64
        );
        drop(conns);
        let _ = child.kill();
        let _ = child.wait();
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = srv.rss_kib();
    let started = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(connect(&addr, &KeyPair::generate()).await);
    }
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let connected = srv.rss_kib();
    println!(
        "{n} idle DERP connections in {connect_time:?}: RSS {} → {} MiB, {:.1} KiB per connection",
        idle / 1024,
        connected / 1024,
        connected.saturating_sub(idle) as f64 / n as f64
    );
    drop(conns);
    srv.stop().await;
    pg.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}

async fn metric_dropped(srv: &Replica) -> i64 {
    srv.metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("coderd_derp_packets{outcome=\"dropped\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}
