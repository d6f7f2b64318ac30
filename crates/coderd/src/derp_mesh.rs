//! The replicas' relays mesh, so a client on one replica reaches an agent whose DERP
//! connection landed on another (both use one access URL behind a load balancer).
//!
//! Each replica announces its relay URL (`CODER_DERP_SERVER_RELAY_URL`) on the database's pubsub
//! every few seconds. For every other replica it hears of, it holds one link: a DERP client
//! connection to that relay with the deployment's mesh key (kept in `site_configs`), watching
//! connections there. Keys present at the other end are recorded in the local relay as remote,
//! and packets for them go over the link as `ForwardPacket`. A link that fails is retried while
//! its replica keeps announcing; keys it announced are forgotten at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use coderd_db::pubsub::{Event, Pubsub};
use coderd_wire::derp::{frame, ClientConn, Event as DerpEvent, Forwarder, Key, KeyPair, Relay};
use futures_util::io::AsyncWriteExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_util::compat::TokioAsyncReadCompatExt;
use uuid::Uuid;

const CHANNEL: &str = "derp_mesh";
const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);
const FORGET_AFTER: Duration = Duration::from_secs(15);
/// Packets queued for one link before they are dropped.
const LINK_QUEUE: usize = 1024;

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

#[derive(Serialize, Deserialize)]
struct Announce {
    replica: Uuid,
    relay_url: String,
}

/// The sending side of a link, as the relay sees it.
struct LinkTx(mpsc::Sender<(Key, Key, Bytes)>);

impl Forwarder for LinkTx {
    fn forward(&self, src: Key, dst: Key, data: Bytes) -> bool {
        self.0.try_send((src, dst, data)).is_ok()
    }
}

struct Peer {
    url: String,
    seen: Instant,
    task: tokio::task::JoinHandle<()>,
}

/// Runs the mesh until the pubsub ends: announces `relay_url` (if this replica has one) and
/// links to every other replica that announces one.
pub async fn run(
    relay: Arc<Relay>,
    pubsub: Pubsub,
    replica: Uuid,
    relay_url: Option<String>,
    mesh_key: String,
) {
    let mut sub = pubsub.subscribe(CHANNEL);
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    let mut peers: HashMap<Uuid, Peer> = HashMap::new();
    let mesh_key = Arc::new(mesh_key);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(url) = &relay_url {
                    let a = Announce { replica, relay_url: url.clone() };
                    let payload = serde_json::to_string(&a).expect("announcement serializes");
                    if let Err(e) = pubsub.publish(CHANNEL, &payload).await {
                        tracing::debug!(error = %e, "announcing this replica's relay");
                    }
                }
                peers.retain(|id, p| {
                    let keep = p.seen.elapsed() < FORGET_AFTER;
                    if !keep {
                        tracing::info!(replica = %id, url = %p.url, "a replica's relay stopped announcing; unlinking");
                        p.task.abort();
                    }
                    keep
                });
            }
            ev = sub.recv() => match ev {
                Some(Event::Message(m)) => {
                    let Ok(a) = serde_json::from_str::<Announce>(&m) else { continue };
                    if a.replica == replica {
                        continue;
                    }
                    match peers.get_mut(&a.replica) {
                        Some(p) if p.url == a.relay_url => p.seen = Instant::now(),
                        _ => {
                            if let Some(old) = peers.remove(&a.replica) {
                                old.task.abort();
                            }
                            tracing::info!(replica = %a.replica, url = %a.relay_url, "meshing with a replica's relay");
                            let task = tokio::spawn(link(relay.clone(), a.relay_url.clone(), mesh_key.clone()));
                            peers.insert(a.replica, Peer { url: a.relay_url, seen: Instant::now(), task });
                        }
                    }
                }
                Some(Event::Dropped) => {}
                None => break,
            },
        }
    }
    for p in peers.into_values() {
        p.task.abort();
    }
}

/// Keeps one link up, reconnecting with a pause, until aborted.
async fn link(relay: Arc<Relay>, url: String, mesh_key: Arc<String>) {
    loop {
        let id = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
        let result = link_once(&relay, &url, &mesh_key, id).await;
        relay.remove_link(id);
        if let Err(e) = result {
            tracing::debug!(%url, error = %e, "a mesh link to another relay ended");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Where an `http://host:port[/…]` relay URL points.
fn host_port(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let with_port = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Some((with_port, authority.to_string()))
}

async fn link_once(relay: &Arc<Relay>, url: &str, mesh_key: &str, id: u64) -> std::io::Result<()> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let (addr, host) =
        host_port(url).ok_or_else(|| bad(format!("relay URL {url:?} is not http://host:port")))?;
    let mut tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .map_err(|_| bad(format!("connecting to {addr} timed out")))??;
    tcp.set_nodelay(true)?;
    tcp.write_all(
        format!(
            "GET /derp HTTP/1.1\r\nHost: {host}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    // The response head, a byte at a time: the relay's first frame follows it at once.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8 << 10 {
            return Err(bad("the relay's response head is too long".into()));
        }
        let mut b = [0u8; 1];
        if tcp.read(&mut b).await? == 0 {
            return Err(bad("the relay closed before answering the upgrade".into()));
        }
        head.push(b[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        let line = String::from_utf8_lossy(&head);
        return Err(bad(format!(
            "the relay refused the upgrade: {}",
            line.lines().next().unwrap_or_default()
        )));
    }
    let keys = KeyPair::generate();
    let mut conn = ClientConn::handshake(tcp.compat(), &keys, Some(mesh_key)).await?;
    conn.send_frame(frame::WATCH_CONNS, &[]).await?;
    conn.flush().await?;
    let (tx, mut rx) = mpsc::channel::<(Key, Key, Bytes)>(LINK_QUEUE);
    let fwd: Arc<dyn Forwarder> = Arc::new(LinkTx(tx));
    let (mut r, mut w) = conn.into_parts();
    let writer = async move {
        while let Some((src, dst, data)) = rx.recv().await {
            coderd_wire::derp::write_frame(&mut w, frame::FORWARD_PACKET, &[&src, &dst, &data])
                .await?;
            while let Ok((src, dst, data)) = rx.try_recv() {
                coderd_wire::derp::write_frame(&mut w, frame::FORWARD_PACKET, &[&src, &dst, &data])
                    .await?;
            }
            w.flush().await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let own = keys.public();
    let reader = async {
        loop {
            match coderd_wire::derp::read_event(&mut r).await? {
                DerpEvent::PeerPresent(k) if k != own => relay.add_remote(k, id, fwd.clone()),
                DerpEvent::PeerGone { key, .. } => relay.remove_remote(&key, id),
                _ => {}
            }
        }
    };
    tokio::select! {
        r = writer => r,
        r = reader => r,
    }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn relay_urls() {
        assert_eq!(
            host_port("http://10.0.0.5:3000"),
            Some(("10.0.0.5:3000".into(), "10.0.0.5:3000".into()))
        );
        assert_eq!(
            host_port("http://relay.internal/"),
            Some(("relay.internal:80".into(), "relay.internal".into()))
        );
        assert_eq!(host_port("https://x:1"), None);
    }
}
