//! DERP, the packet relay tailscale's clients (and so Coder's CLI and agents) fall back to when
//! they cannot reach each other directly, and use first while they find out whether they can.
//!
//! The wire, after the HTTP upgrade (or inside a WebSocket's binary messages): frames of one
//! type byte, a 4-byte big-endian length and that many bytes. The server opens with its key
//! (`ServerKey`: a magic string and its 32-byte curve25519 public key); the client answers with
//! `ClientInfo` (its own public key, a nonce and a NaCl box of a small JSON document sealed to
//! the server's key, which proves it holds the private half); the server answers `ServerInfo`
//! (a box the other way). Then the client sends `SendPacket` (destination key + packet) and the
//! server hands it to the destination as `RecvPacket` (source key + packet), or tells the
//! sender `PeerGone` when the destination is not here. Packets are WireGuard's, already
//! encrypted end to end: the relay sees only who talks to whom.
//!
//! Replicas of one deployment mesh: each connects to every other as a client holding the mesh
//! key, asks to `WatchConns`, learns from `PeerPresent`/`PeerGone` which keys are connected
//! there, and sends packets for those keys as `ForwardPacket` (source, destination, packet).
//!
//! Bounds: a frame over 64 KiB of packet is a protocol error that ends the connection; every
//! client has a queue of [`QUEUE`] frames, and a packet for a full queue is dropped (as
//! upstream does), so a slow reader loses packets and never grows the server's memory.
//!
//! Longer than 800 lines on purpose: one protocol, frames and relay loop together (about 810
//! lines), and its unit tests.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use crypto_box::aead::{Aead, AeadCore, OsRng};
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use futures_util::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The 8 bytes a `ServerKey` frame starts with ("DERP" and the key emoji in UTF-8).
pub const MAGIC: &[u8; 8] = b"DERP\xf0\x9f\x94\x91";
/// The protocol version this relay speaks (source keys on received packets).
pub const PROTOCOL_VERSION: u32 = 2;
/// Largest packet relayed.
pub const MAX_PACKET: usize = 64 << 10;
/// Frames queued for one client before its packets are dropped (upstream's depth).
pub const QUEUE: usize = 32;
/// How often an idle connection is sent a keep-alive.
pub const KEEPALIVE: Duration = Duration::from_secs(60);
/// How long a client has to introduce itself.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a packet may wait for room in a full destination queue before it is dropped.
const FULL_WAIT: Duration = Duration::from_millis(2);
/// After such a drop, packets to that destination are dropped at once for this long.
const CONGESTED_FOR: Duration = Duration::from_millis(100);
/// Per-connection buffers (benches/README.md, `derp`, has what they cost and bring).
const READ_BUFFER: usize = 8 << 10;
const WRITE_BUFFER: usize = 8 << 10;
/// Largest `ClientInfo` accepted: the JSON inside is well under a hundred bytes.
const MAX_CLIENT_INFO: usize = 4 << 10;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

pub mod frame {
    pub const SERVER_KEY: u8 = 0x01;
    pub const CLIENT_INFO: u8 = 0x02;
    pub const SERVER_INFO: u8 = 0x03;
    pub const SEND_PACKET: u8 = 0x04;
    pub const RECV_PACKET: u8 = 0x05;
    pub const KEEP_ALIVE: u8 = 0x06;
    pub const NOTE_PREFERRED: u8 = 0x07;
    pub const PEER_GONE: u8 = 0x08;
    pub const PEER_PRESENT: u8 = 0x09;
    pub const FORWARD_PACKET: u8 = 0x0a;
    pub const WATCH_CONNS: u8 = 0x10;
    pub const CLOSE_PEER: u8 = 0x11;
    pub const PING: u8 = 0x12;
    pub const PONG: u8 = 0x13;
    pub const HEALTH: u8 = 0x14;
    pub const RESTARTING: u8 = 0x15;
}

/// Why a `PeerGone` was sent.
pub const GONE_DISCONNECTED: u8 = 0x00;
pub const GONE_NOT_HERE: u8 = 0x01;

/// A node's public key, as DERP carries it: 32 raw bytes.
pub type Key = [u8; KEY_LEN];

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// The JSON a client seals into `ClientInfo`.
#[derive(Serialize, Deserialize, Default)]
struct ClientInfo {
    #[serde(default)]
    version: u32,
    #[serde(rename = "meshKey", default, skip_serializing_if = "String::is_empty")]
    mesh_key: String,
    #[serde(rename = "canAckPings", default)]
    can_ack_pings: bool,
    #[serde(rename = "isProber", default)]
    is_prober: bool,
}

#[derive(Serialize, Deserialize, Default)]
struct ServerInfo {
    #[serde(default)]
    version: u32,
}

/// A curve25519 key pair: a relay's identity, or a client's.
pub struct KeyPair {
    secret: SecretKey,
    public: Key,
}

impl KeyPair {
    pub fn generate() -> Self {
        let secret = SecretKey::generate(&mut OsRng);
        let public = *secret.public_key().as_bytes();
        KeyPair { secret, public }
    }

    pub fn public(&self) -> Key {
        self.public
    }

    /// `nonce || box(plain)` sealed to `to`, as NaCl's `box.Seal` with a fresh nonce.
    fn seal(&self, to: &Key, plain: &[u8]) -> Vec<u8> {
        let b = SalsaBox::new(&PublicKey::from(*to), &self.secret);
        let nonce = SalsaBox::generate_nonce(&mut OsRng);
        let sealed = b
            .encrypt(&nonce, plain)
            .expect("sealing a small message cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens `nonce || box` sealed by `from` to this key.
    fn open(&self, from: &Key, data: &[u8]) -> Option<Vec<u8>> {
        if data.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let b = SalsaBox::new(&PublicKey::from(*from), &self.secret);
        b.decrypt(nonce.into(), sealed).ok()
    }
}

/// Writes one frame (not flushed).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    parts: &[&[u8]],
) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut header = [0u8; 5];
    header[0] = kind;
    header[1..].copy_from_slice(&(len as u32).to_be_bytes());
    w.write_all(&header).await?;
    for p in parts {
        w.write_all(p).await?;
    }
    Ok(())
}

/// Reads one frame whose length may be at most `max`; a longer one is an error.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    r.read_exact(&mut header).await?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > max {
        return Err(bad(format!(
            "frame of type {:#04x} is {len} bytes, over the limit of {max}",
            header[0]
        )));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok((header[0], body))
}

/// The most bytes a frame of this type may carry from a client.
fn max_len(kind: u8) -> usize {
    match kind {
        frame::SEND_PACKET => KEY_LEN + MAX_PACKET,
        frame::FORWARD_PACKET => 2 * KEY_LEN + MAX_PACKET,
        frame::NOTE_PREFERRED => 1,
        frame::PING | frame::PONG => 8,
        frame::WATCH_CONNS | frame::KEEP_ALIVE => 0,
        frame::CLOSE_PEER => KEY_LEN,
        // Frames this relay does not know are skipped, as upstream skips them.
        _ => 2 * KEY_LEN + MAX_PACKET,
    }
}

/// What a client's writer sends.
enum Out {
    Packet { src: Key, data: Bytes },
    PeerGone(Key, u8),
    PeerPresent(Key),
    Pong([u8; 8]),
}

/// Where packets for keys connected to another replica go.
pub trait Forwarder: Send + Sync {
    /// Hands a packet on; false when it had to be dropped.
    fn forward(&self, src: Key, dst: Key, data: Bytes) -> bool;
}

struct Client {
    id: u64,
    key: Key,
    tx: mpsc::Sender<Out>,
    /// Keys that sent this client packets: they hear `PeerGone` when it leaves.
    senders: Mutex<HashSet<Key>>,
    /// Cancels the connection (a newer connection took the key, or a mesh peer asked).
    close: tokio_util::sync::CancellationToken,
}

struct Remote {
    id: u64,
    fwd: Arc<dyn Forwarder>,
}

#[derive(Default)]
struct Inner {
    clients: HashMap<Key, Arc<Client>>,
    /// Mesh peers that asked to watch connections, by connection id.
    watchers: HashMap<u64, Arc<Client>>,
    /// Keys connected to other replicas, and the link to reach them.
    remote: HashMap<Key, Remote>,
}

/// Counters for /metrics and the benchmarks.
#[derive(Default)]
pub struct Stats {
    pub packets_relayed: AtomicU64,
    pub packets_forwarded: AtomicU64,
    pub packets_dropped: AtomicU64,
    pub connections_refused: AtomicU64,
}

/// The relay: who is connected, and the server's key.
pub struct Relay {
    keys: KeyPair,
    mesh_key: Option<String>,
    next_id: AtomicU64,
    inner: Mutex<Inner>,
    pub stats: Stats,
}

impl Relay {
    /// A relay with a fresh key; `mesh_key` lets other replicas in as mesh peers.
    pub fn new(mesh_key: Option<String>) -> Arc<Self> {
        Arc::new(Relay {
            keys: KeyPair::generate(),
            mesh_key: mesh_key.filter(|k| !k.is_empty()),
            next_id: AtomicU64::new(1),
            inner: Mutex::new(Inner::default()),
            stats: Stats::default(),
        })
    }

    pub fn public_key(&self) -> Key {
        self.keys.public
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many clients are connected here.
    pub fn client_count(&self) -> usize {
        self.lock().clients.len()
    }

    /// Keys connected here (what a new mesh watcher is told first).
    pub fn local_keys(&self) -> Vec<Key> {
        self.lock().clients.keys().copied().collect()
    }

    /// Records that `key` is connected to another replica, reached through `fwd`; `link` names
    /// the link so that only it can take the key back.
    pub fn add_remote(&self, key: Key, link: u64, fwd: Arc<dyn Forwarder>) {
        self.lock().remote.insert(key, Remote { id: link, fwd });
    }

    pub fn remove_remote(&self, key: &Key, link: u64) {
        let mut inner = self.lock();
        if inner.remote.get(key).is_some_and(|r| r.id == link) {
            inner.remote.remove(key);
        }
    }

    /// Forgets every key a link announced (the link went down).
    pub fn remove_link(&self, link: u64) {
        self.lock().remote.retain(|_, r| r.id != link);
    }

    /// Delivers a packet from `src` to the client holding `dst` here; false if there is none
    /// or its queue is full.
    pub fn deliver(&self, src: Key, dst: &Key, data: Bytes) -> bool {
        let client = self.lock().clients.get(dst).cloned();
        match client {
            Some(c) => {
                let ok = c.tx.try_send(Out::Packet { src, data }).is_ok();
                if ok {
                    c.senders
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(src);
                    self.stats.packets_relayed.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.stats.packets_dropped.fetch_add(1, Ordering::Relaxed);
                }
                ok
            }
            None => false,
        }
    }

    /// Serves one client connection (already upgraded) until it ends; errors say why a peer
    /// was cut off.
    pub async fn accept<S>(self: Arc<Self>, io: S) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (r, w) = io.split();
        // Buffered both ways: a packet is a header and a body, two reads and two writes each
        // unbuffered, and packets come in bursts.
        let mut r = futures_util::io::BufReader::with_capacity(READ_BUFFER, r);
        let mut w = BufWriter::with_capacity(WRITE_BUFFER, w);
        write_frame(&mut w, frame::SERVER_KEY, &[MAGIC, &self.keys.public]).await?;
        w.flush().await?;
        let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut r, MAX_CLIENT_INFO))
            .await
            .map_err(|_| bad("no client info within the handshake timeout"))?;
        let (kind, body) = hello.inspect_err(|_| {
            self.stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
        })?;
        let (key, info) = match self.client_info(kind, &body) {
            Ok(v) => v,
            Err(e) => {
                self.stats
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let mesh = match (&self.mesh_key, info.mesh_key.as_str()) {
            (_, "") => false,
            (Some(ours), theirs) if ours.as_bytes() == theirs.as_bytes() => true,
            _ => {
                self.stats
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                return Err(bad("wrong mesh key"));
            }
        };
        let sealed = self.keys.seal(
            &key,
            &serde_json::to_vec(&ServerInfo {
                version: PROTOCOL_VERSION,
            })
            .expect("server info serializes"),
        );
        write_frame(&mut w, frame::SERVER_INFO, &[&sealed]).await?;
        w.flush().await?;

        let (tx, rx) = mpsc::channel(QUEUE);
        let client = Arc::new(Client {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            key,
            tx,
            senders: Mutex::new(HashSet::new()),
            close: tokio_util::sync::CancellationToken::new(),
        });
        self.register(&client);
        let writer = tokio::spawn(write_loop(w, rx));
        let result = tokio::select! {
            r = self.read_loop(&client, mesh, &mut r) => r,
            _ = client.close.cancelled() => Ok(()),
        };
        self.unregister(&client);
        writer.abort();
        result
    }

    fn client_info(&self, kind: u8, body: &[u8]) -> io::Result<(Key, ClientInfo)> {
        if kind != frame::CLIENT_INFO {
            return Err(bad(format!(
                "expected client info (frame type 0x02), got frame type {kind:#04x}"
            )));
        }
        if body.len() < KEY_LEN + NONCE_LEN {
            return Err(bad("client info too short"));
        }
        let key: Key = body[..KEY_LEN].try_into().expect("32 bytes");
        let plain = self
            .keys
            .open(&key, &body[KEY_LEN..])
            .ok_or_else(|| bad("client info is not sealed by the key it names"))?;
        let info: ClientInfo =
            serde_json::from_slice(&plain).map_err(|e| bad(format!("client info: {e}")))?;
        Ok((key, info))
    }

    fn register(&self, client: &Arc<Client>) {
        let (old, watchers) = {
            let mut inner = self.lock();
            let old = inner.clients.insert(client.key, client.clone());
            (old, inner.watchers.values().cloned().collect::<Vec<_>>())
        };
        // One connection per key: a reconnecting node's stale connection is closed.
        if let Some(old) = old {
            old.close.cancel();
        }
        for w in watchers {
            let _ = w.tx.try_send(Out::PeerPresent(client.key));
        }
    }

    fn unregister(&self, client: &Arc<Client>) {
        let (gone, watchers, senders) = {
            let mut inner = self.lock();
            inner.watchers.remove(&client.id);
            let gone = inner
                .clients
                .get(&client.key)
                .is_some_and(|c| c.id == client.id);
            if gone {
                inner.clients.remove(&client.key);
            }
            let senders: Vec<Arc<Client>> = if gone {
                let keys = client.senders.lock().unwrap_or_else(|e| e.into_inner());
                keys.iter()
                    .filter_map(|k| inner.clients.get(k).cloned())
                    .collect()
            } else {
                Vec::new()
            };
            (
                gone,
                inner.watchers.values().cloned().collect::<Vec<_>>(),
                senders,
            )
        };
        if !gone {
            return;
        }
        for s in senders {
            let _ = s.tx.try_send(Out::PeerGone(client.key, GONE_DISCONNECTED));
        }
        for w in watchers {
            let _ = w.tx.try_send(Out::PeerGone(client.key, GONE_DISCONNECTED));
        }
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &self,
        client: &Arc<Client>,
        mesh: bool,
        r: &mut R,
    ) -> io::Result<()> {
        let mut header = [0u8; 5];
        // Where this client's last packet went: a burst to one peer takes the relay's lock
        // once, not once a packet.
        let mut route: Option<Route> = None;
        loop {
            match r.read_exact(&mut header).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
            let kind = header[0];
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            if len > max_len(kind) {
                return Err(bad(format!(
                    "frame of type {kind:#04x} is {len} bytes, over the limit of {}",
                    max_len(kind)
                )));
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).await?;
            match kind {
                frame::SEND_PACKET => {
                    if len < KEY_LEN {
                        return Err(bad("send packet frame without a destination"));
                    }
                    let dst: Key = body[..KEY_LEN].try_into().expect("32 bytes");
                    let data = Bytes::from(body).slice(KEY_LEN..);
                    self.send(client, &mut route, dst, data).await;
                }
                frame::FORWARD_PACKET if mesh => {
                    if len < 2 * KEY_LEN {
                        return Err(bad("forward packet frame without its keys"));
                    }
                    let src: Key = body[..KEY_LEN].try_into().expect("32 bytes");
                    let dst: Key = body[KEY_LEN..2 * KEY_LEN].try_into().expect("32 bytes");
                    let data = Bytes::from(body).slice(2 * KEY_LEN..);
                    self.deliver(src, &dst, data);
                }
                frame::WATCH_CONNS if mesh => {
                    let keys = {
                        let mut inner = self.lock();
                        inner.watchers.insert(client.id, client.clone());
                        inner.clients.keys().copied().collect::<Vec<_>>()
                    };
                    for k in keys {
                        // A watcher that cannot keep up misses presences; the queue bounds it.
                        if client.tx.send(Out::PeerPresent(k)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                frame::CLOSE_PEER if mesh => {
                    if len != KEY_LEN {
                        return Err(bad("close peer frame without a key"));
                    }
                    let key: Key = body[..].try_into().expect("32 bytes");
                    if let Some(c) = self.lock().clients.get(&key) {
                        c.close.cancel();
                    }
                }
                frame::FORWARD_PACKET | frame::WATCH_CONNS | frame::CLOSE_PEER => {
                    return Err(bad(format!(
                        "frame type {kind:#04x} is for mesh peers, and this client holds no mesh key"
                    )));
                }
                frame::PING => {
                    if len != 8 {
                        return Err(bad("ping frame must carry 8 bytes"));
                    }
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&body);
                    let _ = client.tx.try_send(Out::Pong(p));
                }
                // Preferred-node notes, pongs and keep-alives need nothing; unknown frame
                // types are skipped for newer clients' sake.
                _ => {}
            }
        }
    }

    /// Hands a packet from `from` to `dst`: a local client (waiting at most [`FULL_WAIT`] when
    /// its queue is full, then dropping, and not waiting again for [`CONGESTED_FOR`]), another
    /// replica through the mesh, or back to the sender as "not here".
    async fn send(&self, from: &Arc<Client>, route: &mut Option<Route>, dst: Key, data: Bytes) {
        if route.as_ref().is_none_or(|r| r.key != dst) {
            *route = self.route(from, dst);
        }
        let mut data = data;
        if let Some(r) = route.as_mut() {
            let packet = Out::Packet {
                src: from.key,
                data,
            };
            let closed = match r.client.tx.try_send(packet) {
                Ok(()) => None,
                Err(mpsc::error::TrySendError::Full(packet)) => {
                    let now = tokio::time::Instant::now();
                    if r.congested_until.is_some_and(|t| now < t) {
                        self.stats.packets_dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    // A short wait pushes back on a sender that outruns the receiver (its TCP
                    // window fills) instead of dropping a whole burst; a receiver that stays
                    // stuck costs the sender one wait per CONGESTED_FOR.
                    match r.client.tx.send_timeout(packet, FULL_WAIT).await {
                        Ok(()) => None,
                        Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                            r.congested_until = Some(now + CONGESTED_FOR);
                            self.stats.packets_dropped.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        Err(mpsc::error::SendTimeoutError::Closed(p)) => Some(p),
                    }
                }
                Err(mpsc::error::TrySendError::Closed(p)) => Some(p),
            };
            match closed {
                None => {
                    self.stats.packets_relayed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                // The destination left (or reconnected): look again.
                Some(Out::Packet { data: d, .. }) => {
                    data = d;
                    *route = self.route(from, dst);
                    if let Some(r) = route.as_ref() {
                        let ok = r
                            .client
                            .tx
                            .try_send(Out::Packet {
                                src: from.key,
                                data,
                            })
                            .is_ok();
                        let counter = if ok {
                            &self.stats.packets_relayed
                        } else {
                            &self.stats.packets_dropped
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                Some(_) => {
                    self.stats.packets_dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let remote = self.lock().remote.get(&dst).map(|r| r.fwd.clone());
        match remote {
            Some(fwd) => {
                if fwd.forward(from.key, dst, data) {
                    self.stats.packets_forwarded.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.stats.packets_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.stats.packets_dropped.fetch_add(1, Ordering::Relaxed);
                let _ = from.tx.try_send(Out::PeerGone(dst, GONE_NOT_HERE));
            }
        }
    }

    /// The local client holding `dst`, recording that `from` sends to it (so it hears when
    /// `dst` leaves).
    fn route(&self, from: &Arc<Client>, dst: Key) -> Option<Route> {
        let client = self.lock().clients.get(&dst).cloned()?;
        client
            .senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(from.key);
        Some(Route {
            key: dst,
            client,
            congested_until: None,
        })
    }
}

/// A sender's cached way to its last destination.
struct Route {
    key: Key,
    client: Arc<Client>,
    congested_until: Option<tokio::time::Instant>,
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: BufWriter<W>,
    mut rx: mpsc::Receiver<Out>,
) -> io::Result<()> {
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { return Ok(()) };
                write_out(&mut w, out).await?;
                // Everything already queued goes out in one flush.
                while let Ok(out) = rx.try_recv() {
                    write_out(&mut w, out).await?;
                }
                w.flush().await?;
                keepalive.reset();
            }
            _ = keepalive.tick() => {
                write_frame(&mut w, frame::KEEP_ALIVE, &[]).await?;
                w.flush().await?;
            }
        }
    }
}

async fn write_out<W: AsyncWrite + Unpin>(w: &mut W, out: Out) -> io::Result<()> {
    match out {
        Out::Packet { src, data } => write_frame(w, frame::RECV_PACKET, &[&src, &data]).await,
        Out::PeerGone(key, reason) => write_frame(w, frame::PEER_GONE, &[&key, &[reason]]).await,
        Out::PeerPresent(key) => write_frame(w, frame::PEER_PRESENT, &[&key]).await,
        Out::Pong(p) => write_frame(w, frame::PONG, &[&p]).await,
    }
}

/// What a client receives.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Packet { src: Key, data: Vec<u8> },
    PeerGone { key: Key, reason: u8 },
    PeerPresent(Key),
    KeepAlive,
    Ping([u8; 8]),
    Pong([u8; 8]),
    Other(u8),
}

/// Reads what a relay sent a client.
pub async fn read_event<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Event> {
    let (kind, body) = read_frame(r, 2 * KEY_LEN + MAX_PACKET).await?;
    let key = |b: &[u8]| -> io::Result<Key> {
        b.get(..KEY_LEN)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| bad("frame too short for its key"))
    };
    Ok(match kind {
        frame::RECV_PACKET => Event::Packet {
            src: key(&body)?,
            data: body[KEY_LEN..].to_vec(),
        },
        frame::PEER_GONE => Event::PeerGone {
            key: key(&body)?,
            reason: body.get(KEY_LEN).copied().unwrap_or(0),
        },
        frame::PEER_PRESENT => Event::PeerPresent(key(&body)?),
        frame::KEEP_ALIVE => Event::KeepAlive,
        frame::PING | frame::PONG => {
            let p: [u8; 8] = body
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("ping without 8 bytes"))?;
            if kind == frame::PING {
                Event::Ping(p)
            } else {
                Event::Pong(p)
            }
        }
        other => Event::Other(other),
    })
}

/// The client side, for mesh links between replicas, tests and benchmarks.
pub struct ClientConn<S> {
    r: futures_util::io::ReadHalf<S>,
    w: BufWriter<futures_util::io::WriteHalf<S>>,
    pub server_key: Key,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientConn<S> {
    /// Runs the handshake over an upgraded connection.
    pub async fn handshake(io: S, keys: &KeyPair, mesh_key: Option<&str>) -> io::Result<Self> {
        let (mut r, w) = io.split();
        let mut w = BufWriter::with_capacity(16 << 10, w);
        let (kind, body) = read_frame(&mut r, 1024).await?;
        if kind != frame::SERVER_KEY || body.len() < MAGIC.len() + KEY_LEN {
            return Err(bad("expected the server's key"));
        }
        if &body[..MAGIC.len()] != MAGIC {
            return Err(bad("bad DERP magic"));
        }
        let server_key: Key = body[MAGIC.len()..MAGIC.len() + KEY_LEN]
            .try_into()
            .expect("32 bytes");
        let info = ClientInfo {
            version: PROTOCOL_VERSION,
            mesh_key: mesh_key.unwrap_or_default().to_string(),
            can_ack_pings: true,
            is_prober: false,
        };
        let sealed = keys.seal(
            &server_key,
            &serde_json::to_vec(&info).expect("client info serializes"),
        );
        write_frame(&mut w, frame::CLIENT_INFO, &[&keys.public, &sealed]).await?;
        w.flush().await?;
        let (kind, body) = read_frame(&mut r, MAX_CLIENT_INFO).await?;
        if kind != frame::SERVER_INFO {
            return Err(bad("expected the server's info"));
        }
        keys.open(&server_key, &body)
            .ok_or_else(|| bad("server info is not sealed by the server's key"))?;
        Ok(ClientConn { r, w, server_key })
    }

    pub async fn send(&mut self, dst: &Key, data: &[u8]) -> io::Result<()> {
        write_frame(&mut self.w, frame::SEND_PACKET, &[dst, data]).await?;
        self.w.flush().await
    }

    /// Queues a frame without flushing (benchmarks send in bursts).
    pub async fn send_frame(&mut self, kind: u8, parts: &[&[u8]]) -> io::Result<()> {
        write_frame(&mut self.w, kind, parts).await
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        self.w.flush().await
    }

    pub async fn recv(&mut self) -> io::Result<Event> {
        read_event(&mut self.r).await
    }

    /// Splits into a sending and a receiving half (a mesh link reads and writes at once).
    pub fn into_parts(
        self,
    ) -> (
        futures_util::io::ReadHalf<S>,
        BufWriter<futures_util::io::WriteHalf<S>>,
    ) {
        (self.r, self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::compat::TokioAsyncReadCompatExt;

    async fn connect(
        relay: &Arc<Relay>,
        keys: &KeyPair,
        mesh: Option<&str>,
    ) -> io::Result<ClientConn<tokio_util::compat::Compat<tokio::io::DuplexStream>>> {
        let (a, b) = tokio::io::duplex(1 << 20);
        let relay = relay.clone();
        tokio::spawn(async move {
            let _ = relay.accept(b.compat()).await;
        });
        ClientConn::handshake(a.compat(), keys, mesh).await
    }

    #[tokio::test]
    async fn relays_between_two_clients_and_says_when_one_leaves() {
        let relay = Relay::new(None);
        let (ka, kb) = (KeyPair::generate(), KeyPair::generate());
        let mut a = connect(&relay, &ka, None).await.unwrap();
        let mut b = connect(&relay, &kb, None).await.unwrap();
        assert_eq!(a.server_key, relay.public_key());
        a.send(&kb.public(), b"hello").await.unwrap();
        assert_eq!(
            b.recv().await.unwrap(),
            Event::Packet {
                src: ka.public(),
                data: b"hello".to_vec()
            }
        );
        // a sent to b, so a hears when b leaves.
        drop(b);
        assert_eq!(
            a.recv().await.unwrap(),
            Event::PeerGone {
                key: kb.public(),
                reason: GONE_DISCONNECTED
            }
        );
        // A packet for a key nobody holds is answered "not here".
        a.send(&kb.public(), b"anyone?").await.unwrap();
        assert_eq!(
            a.recv().await.unwrap(),
            Event::PeerGone {
                key: kb.public(),
                reason: GONE_NOT_HERE
            }
        );
    }

    #[tokio::test]
    async fn ping_is_answered() {
        let relay = Relay::new(None);
        let k = KeyPair::generate();
        let mut c = connect(&relay, &k, None).await.unwrap();
        c.send_frame(frame::PING, &[b"12345678"]).await.unwrap();
        c.flush().await.unwrap();
        assert_eq!(c.recv().await.unwrap(), Event::Pong(*b"12345678"));
    }

    #[tokio::test]
    async fn client_info_sealed_by_another_key_is_refused() {
        let relay = Relay::new(None);
        let (a, b) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(relay.clone().accept(b.compat()));
        let (mut r, mut w) = a.compat().split();
        let (kind, _) = read_frame(&mut r, 1024).await.unwrap();
        assert_eq!(kind, frame::SERVER_KEY);
        // Names one key, seals with another.
        let (named, sealer) = (KeyPair::generate(), KeyPair::generate());
        let sealed = sealer.seal(&relay.public_key(), b"{}");
        write_frame(&mut w, frame::CLIENT_INFO, &[&named.public(), &sealed])
            .await
            .unwrap();
        w.flush().await.unwrap();
        let err = task.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("not sealed"), "{err}");
        assert_eq!(relay.client_count(), 0);
    }

    #[tokio::test]
    async fn oversized_and_mesh_only_frames_end_the_connection() {
        let relay = Relay::new(Some("secret".into()));
        let k = KeyPair::generate();
        let (a, b) = tokio::io::duplex(1 << 20);
        let task = tokio::spawn(relay.clone().accept(b.compat()));
        let c = ClientConn::handshake(a.compat(), &k, None).await.unwrap();
        // A length over 64 KiB of packet, with no body: refused on the header alone.
        let (_, mut w) = c.into_parts();
        w.write_all(&[frame::SEND_PACKET, 0x7f, 0xff, 0xff, 0xff])
            .await
            .unwrap();
        w.flush().await.unwrap();
        let err = task.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err}");

        // Without the mesh key, watching connections is refused.
        let (a, b) = tokio::io::duplex(1 << 20);
        let task = tokio::spawn(relay.clone().accept(b.compat()));
        let mut c = ClientConn::handshake(a.compat(), &k, None).await.unwrap();
        c.send_frame(frame::WATCH_CONNS, &[]).await.unwrap();
        c.flush().await.unwrap();
        let err = task.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("mesh"), "{err}");

        // A wrong mesh key is refused at the handshake.
        assert!(connect(&relay, &k, Some("guess")).await.is_err());
    }

    #[tokio::test]
    async fn a_mesh_peer_watches_and_forwards() {
        let relay = Relay::new(Some("secret".into()));
        let (kl, km) = (KeyPair::generate(), KeyPair::generate());
        let mut local = connect(&relay, &kl, None).await.unwrap();
        let mut mesh = connect(&relay, &km, Some("secret")).await.unwrap();
        mesh.send_frame(frame::WATCH_CONNS, &[]).await.unwrap();
        mesh.flush().await.unwrap();
        // The watcher hears of both connections (itself included) in some order.
        let mut present = HashSet::new();
        for _ in 0..2 {
            match mesh.recv().await.unwrap() {
                Event::PeerPresent(k) => {
                    present.insert(k);
                }
                e => panic!("unexpected {e:?}"),
            }
        }
        assert!(present.contains(&kl.public()));
        // A packet from a key on another replica, forwarded through the mesh link.
        let remote = KeyPair::generate();
        mesh.send_frame(
            frame::FORWARD_PACKET,
            &[&remote.public(), &kl.public(), b"via mesh"],
        )
        .await
        .unwrap();
        mesh.flush().await.unwrap();
        assert_eq!(
            local.recv().await.unwrap(),
            Event::Packet {
                src: remote.public(),
                data: b"via mesh".to_vec()
            }
        );
    }

    #[tokio::test]
    async fn a_slow_reader_loses_packets_not_memory() {
        let relay = Relay::new(None);
        let (ka, kb) = (KeyPair::generate(), KeyPair::generate());
        let mut a = connect(&relay, &ka, None).await.unwrap();
        // b never reads; its duplex buffer and queue fill, then packets are dropped.
        let (x, y) = tokio::io::duplex(4 << 10);
        let r2 = relay.clone();
        tokio::spawn(async move {
            let _ = r2.accept(y.compat()).await;
        });
        let _b = ClientConn::handshake(x.compat(), &kb, None).await.unwrap();
        let packet = vec![7u8; 1200];
        for _ in 0..2000 {
            a.send(&kb.public(), &packet).await.unwrap();
        }
        // Let the relay catch up with what a sent.
        for _ in 0..100 {
            if relay.stats.packets_relayed.load(Ordering::Relaxed)
                + relay.stats.packets_dropped.load(Ordering::Relaxed)
                >= 2000
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let dropped = relay.stats.packets_dropped.load(Ordering::Relaxed);
        let relayed = relay.stats.packets_relayed.load(Ordering::Relaxed);
        assert_eq!(dropped + relayed, 2000);
        assert!(dropped > 1900, "dropped {dropped}, relayed {relayed}");
    }
}
