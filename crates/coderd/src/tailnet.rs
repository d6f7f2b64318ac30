//! The tailnet coordinator: it hands WireGuard node information between a client (`coder ssh`,
//! VS Code, …) and the agent it opened a tunnel to, the way upstream's coordinator does.
//!
//! Peers are identified by UUID: an agent by its agent id, a client by a fresh id per
//! coordination stream. A tunnel goes from a source (a client) to a destination (an agent).
//! What each side hears:
//! - when a tunnel is added, each end receives the other's node (if it has one yet);
//! - when a peer updates its node, every peer it shares a tunnel with receives it;
//! - when a peer leaves, every peer it shared a tunnel with hears `DISCONNECTED` (it said
//!   goodbye) or `LOST` (its connection dropped); the tunnels it was the source of go, the ones
//!   it was the destination of stay, so an agent that reconnects is found again;
//! - `ready for handshake` from a destination is passed to the source of a tunnel between them.
//!
//! Only clients add tunnels, and only to the agents their connection was authorized for (the
//! caller was allowed to SSH into the agent's workspace before the stream was accepted).
//!
//! Across replicas (a client on one, the agent on another) the coordinators gossip over the
//! database's pubsub ([`Coordinator::run_bus`]): each replica publishes what its own peers do
//! (node updates, tunnels added and removed, peers leaving), and each delivers what it hears to
//! its own peers that share a tunnel with the subject. A replica that may have missed messages
//! (pubsub reconnect) asks the others to announce their peers again. docs/decisions.md has the
//! reasoning.
//!
//! Longer than 800 lines on purpose: one state machine (about 690 lines) and its unit tests.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use coderd_db::pubsub::{Event, Pubsub};
use coderd_wire::proto::tailnet as tn;
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Responses queued for one peer before it is cut off as too slow (upstream's depth is 512).
const QUEUE: usize = 512;
/// The pubsub channel coordinators gossip on.
const BUS: &str = "tailnet_coordinator";
/// How often a replica says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Least time between two full announcements (or two requests for one).
const RESYNC_MIN: Duration = Duration::from_secs(5);
/// How long a replica may be silent before its peers count as lost (it was killed).
pub const SILENT_AFTER: Duration = Duration::from_secs(15);

pub const KIND_NODE: i32 = 1;
pub const KIND_DISCONNECTED: i32 = 2;
pub const KIND_LOST: i32 = 3;
pub const KIND_READY_FOR_HANDSHAKE: i32 = 4;

/// What a peer may do.
#[derive(Clone, Debug)]
pub enum PeerAuth {
    /// A client, which may open tunnels to these agents only.
    Client { agents: HashSet<Uuid> },
    /// An agent: it may not open tunnels.
    Agent,
}

struct Peer {
    /// Which connection holds the id (a reconnect replaces the older one).
    conn: u64,
    node: Option<tn::Node>,
    tx: mpsc::Sender<tn::CoordinateResponse>,
    auth: PeerAuth,
}

/// A peer on another replica, as far as gossip told us.
struct RemotePeer {
    replica: Uuid,
    node: Option<tn::Node>,
}

#[derive(Default)]
struct Inner {
    peers: HashMap<Uuid, Peer>,
    /// (source, destination).
    tunnels: Tunnels,
    remote: HashMap<Uuid, RemotePeer>,
    /// When each other replica was last heard from.
    replicas: HashMap<Uuid, Instant>,
    next_conn: u64,
}

/// Tunnels indexed by both ends: a node update looks up its peer's tunnels, not all of them.
#[derive(Default)]
struct Tunnels {
    by_src: HashMap<Uuid, HashSet<Uuid>>,
    by_dst: HashMap<Uuid, HashSet<Uuid>>,
}

impl Tunnels {
    fn insert(&mut self, (src, dst): (Uuid, Uuid)) {
        self.by_src.entry(src).or_default().insert(dst);
        self.by_dst.entry(dst).or_default().insert(src);
    }

    fn remove(&mut self, &(src, dst): &(Uuid, Uuid)) {
        unlink(&mut self.by_src, src, dst);
        unlink(&mut self.by_dst, dst, src);
    }

    fn contains(&self, (src, dst): &(Uuid, Uuid)) -> bool {
        self.by_src.get(src).is_some_and(|d| d.contains(dst))
    }

    /// Removes every tunnel `src` is the source of.
    fn remove_from(&mut self, src: Uuid) {
        for dst in self.by_src.remove(&src).unwrap_or_default() {
            unlink(&mut self.by_dst, dst, src);
        }
    }

    /// Everyone `id` shares a tunnel with, in either direction.
    fn peers(&self, id: Uuid) -> Vec<Uuid> {
        let out = self.by_src.get(&id).into_iter().flatten();
        out.chain(self.by_dst.get(&id).into_iter().flatten())
            .copied()
            .collect()
    }

    /// Every tunnel whose source passes `src`.
    fn with_sources<'a>(&'a self, src: impl Fn(&Uuid) -> bool + 'a) -> Vec<(Uuid, Uuid)> {
        self.by_src
            .iter()
            .filter(|(s, _)| src(s))
            .flat_map(|(s, ds)| ds.iter().map(move |d| (*s, *d)))
            .collect()
    }
}

fn unlink(index: &mut HashMap<Uuid, HashSet<Uuid>>, key: Uuid, value: Uuid) {
    if let Some(set) = index.get_mut(&key) {
        set.remove(&value);
        if set.is_empty() {
            index.remove(&key);
        }
    }
}

impl Inner {
    /// Everyone `id` shares a tunnel with, in either direction.
    fn tunnel_peers(&self, id: Uuid) -> Vec<Uuid> {
        self.tunnels.peers(id)
    }

    fn node_of(&self, id: Uuid) -> Option<tn::Node> {
        self.peers
            .get(&id)
            .and_then(|p| p.node.clone())
            .or_else(|| self.remote.get(&id).and_then(|r| r.node.clone()))
    }

    /// Sends `update` to the local peer `to`; a peer whose queue is full is dropped (it will
    /// reconnect and get fresh state), as upstream drops a peer it cannot write to.
    fn send(&mut self, to: Uuid, update: tn::PeerUpdate) {
        let Some(p) = self.peers.get(&to) else {
            return;
        };
        let resp = tn::CoordinateResponse {
            peer_updates: vec![update],
            error: String::new(),
        };
        if p.tx.try_send(resp).is_err() {
            tracing::warn!(peer_id = %to, "a tailnet peer is not reading its updates; dropping it");
            self.peers.remove(&to);
        }
    }

    fn tell_tunnel_peers(&mut self, id: Uuid, node: Option<&tn::Node>, kind: i32, reason: &str) {
        for other in self.tunnel_peers(id) {
            self.send(other, update(id, node.cloned(), kind, reason));
        }
    }
}

fn update(id: Uuid, node: Option<tn::Node>, kind: i32, reason: &str) -> tn::PeerUpdate {
    tn::PeerUpdate {
        id: id.as_bytes().to_vec(),
        node,
        kind,
        reason: reason.to_string(),
    }
}

/// What replicas tell each other.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Gossip {
    /// A peer's node (base64 protobuf), or that it has none yet.
    Node {
        replica: Uuid,
        peer: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
    Tunnel {
        replica: Uuid,
        src: Uuid,
        dst: Uuid,
        add: bool,
    },
    Gone {
        replica: Uuid,
        peer: Uuid,
        lost: bool,
    },
    /// "Announce your peers and tunnels again" (a replica that may have missed gossip).
    Resync { replica: Uuid },
    /// A replica shut down: every peer it held is lost.
    ReplicaGone { replica: Uuid },
    /// "Still here", every [`HEARTBEAT`]; a replica silent for [`SILENT_AFTER`] is gone.
    Alive { replica: Uuid },
}

impl Gossip {
    fn replica(&self) -> Option<Uuid> {
        Some(match self {
            Gossip::Node { replica, .. }
            | Gossip::Tunnel { replica, .. }
            | Gossip::Gone { replica, .. }
            | Gossip::Resync { replica }
            | Gossip::ReplicaGone { replica }
            | Gossip::Alive { replica } => *replica,
        })
    }
}

/// This replica's coordinator.
pub struct Coordinator {
    replica: Uuid,
    inner: Mutex<Inner>,
    /// Gossip to publish, drained by [`Coordinator::run_bus`]; `None` in a single process.
    bus: Option<mpsc::UnboundedSender<Gossip>>,
    /// Another replica asked for everything again.
    resync_requested: std::sync::atomic::AtomicBool,
}

/// One coordination stream's membership; leaving is [`Coordinator::leave`].
pub struct Membership {
    pub id: Uuid,
    conn: u64,
    pub updates: mpsc::Receiver<tn::CoordinateResponse>,
}

impl Coordinator {
    /// A coordinator for this replica, and the receiver of the gossip it wants published
    /// (hand it to [`Coordinator::run_bus`]).
    pub fn new(replica: Uuid) -> (Arc<Self>, BusOutbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Coordinator {
                replica,
                inner: Mutex::new(Inner::default()),
                bus: Some(tx),
                resync_requested: Default::default(),
            }),
            BusOutbox(rx),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, g: Gossip) {
        if let Some(bus) = &self.bus {
            let _ = bus.send(g);
        }
    }

    /// Peers connected here.
    pub fn peer_count(&self) -> usize {
        self.lock().peers.len()
    }

    /// Joins `id` (replacing an older connection with the same id) and sends it the nodes of
    /// the peers it already shares tunnels with.
    pub fn join(&self, id: Uuid, auth: PeerAuth) -> Membership {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut inner = self.lock();
        inner.next_conn += 1;
        let conn = inner.next_conn;
        if let Some(old) = inner.peers.insert(
            id,
            Peer {
                conn,
                node: None,
                tx: tx.clone(),
                auth,
            },
        ) {
            let _ = old.tx.try_send(tn::CoordinateResponse {
                peer_updates: Vec::new(),
                error: "overwritten by a newer connection".into(),
            });
        }
        let updates: Vec<tn::PeerUpdate> = inner
            .tunnel_peers(id)
            .into_iter()
            .filter_map(|other| {
                inner
                    .node_of(other)
                    .map(|n| update(other, Some(n), KIND_NODE, "init"))
            })
            .collect();
        if !updates.is_empty() {
            let _ = tx.try_send(tn::CoordinateResponse {
                peer_updates: updates,
                error: String::new(),
            });
        }
        drop(inner);
        Membership {
            id,
            conn,
            updates: rx,
        }
    }

    /// Handles one request from a member; an error ends its stream with that message.
    pub fn handle(&self, m: &Membership, req: tn::CoordinateRequest) -> Result<(), String> {
        let mut inner = self.lock();
        let Some(peer) = inner.peers.get(&m.id).filter(|p| p.conn == m.conn) else {
            return Err("this connection was replaced or removed".into());
        };
        let auth = peer.auth.clone();
        // Authorize the whole request before any of it takes effect.
        if let Some(t) = &req.add_tunnel {
            let dst = Uuid::from_slice(&t.id).map_err(|_| "a tunnel's id is not a UUID")?;
            match &auth {
                PeerAuth::Client { agents } if agents.contains(&dst) => {}
                PeerAuth::Client { .. } => {
                    return Err(format!("you may not open a tunnel to {dst}"));
                }
                PeerAuth::Agent => return Err("agents may not open tunnels".into()),
            }
        }
        if let Some(u) = req.update_self {
            let node = u.node;
            if let Some(p) = inner.peers.get_mut(&m.id) {
                p.node = node.clone();
            }
            inner.tell_tunnel_peers(m.id, node.as_ref(), KIND_NODE, "node update");
            self.publish(Gossip::Node {
                replica: self.replica,
                peer: m.id,
                node: node.map(|n| encode(&n)),
            });
        }
        if let Some(t) = req.add_tunnel {
            let dst = Uuid::from_slice(&t.id).map_err(|_| "a tunnel's id is not a UUID")?;
            inner.tunnels.insert((m.id, dst));
            if let Some(n) = inner.node_of(dst) {
                inner.send(m.id, update(dst, Some(n), KIND_NODE, "add tunnel"));
            }
            if let Some(n) = inner.node_of(m.id) {
                inner.send(dst, update(m.id, Some(n), KIND_NODE, "add tunnel"));
            }
            self.publish(Gossip::Tunnel {
                replica: self.replica,
                src: m.id,
                dst,
                add: true,
            });
        }
        if let Some(t) = req.remove_tunnel {
            let dst = Uuid::from_slice(&t.id).map_err(|_| "a tunnel's id is not a UUID")?;
            inner.send(m.id, update(dst, None, KIND_DISCONNECTED, "remove tunnel"));
            inner.send(dst, update(m.id, None, KIND_DISCONNECTED, "remove tunnel"));
            inner.tunnels.remove(&(m.id, dst));
            self.publish(Gossip::Tunnel {
                replica: self.replica,
                src: m.id,
                dst,
                add: false,
            });
        }
        for r in req.ready_for_handshake {
            let dst =
                Uuid::from_slice(&r.id).map_err(|_| "a ready-for-handshake id is not a UUID")?;
            if inner.tunnels.contains(&(m.id, dst)) || inner.tunnels.contains(&(dst, m.id)) {
                inner.send(dst, update(m.id, None, KIND_READY_FOR_HANDSHAKE, ""));
            } else if let Some(p) = inner.peers.get(&m.id) {
                // Racy by nature (the source may just have left): an error message, not a cut.
                let _ = p.tx.try_send(tn::CoordinateResponse {
                    peer_updates: Vec::new(),
                    error: format!(
                        "ready for handshake error: you do not share a tunnel with {dst:?}"
                    ),
                });
            }
        }
        if req.disconnect.is_some() {
            drop(inner);
            self.leave(m, false);
        }
        Ok(())
    }

    /// Removes a member: its tunnel peers hear it disconnected (`lost` false) or lost.
    pub fn leave(&self, m: &Membership, lost: bool) {
        let mut inner = self.lock();
        if inner.peers.get(&m.id).is_none_or(|p| p.conn != m.conn) {
            return;
        }
        inner.peers.remove(&m.id);
        let (kind, reason) = if lost {
            (KIND_LOST, "lost")
        } else {
            (KIND_DISCONNECTED, "disconnected")
        };
        inner.tell_tunnel_peers(m.id, None, kind, reason);
        inner.tunnels.remove_from(m.id);
        drop(inner);
        self.publish(Gossip::Gone {
            replica: self.replica,
            peer: m.id,
            lost,
        });
    }

    /// Gives up on replicas silent since before `now - SILENT_AFTER`: their peers are lost.
    pub fn expire_silent(&self, now: Instant) {
        let silent: Vec<Uuid> = self
            .lock()
            .replicas
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) > SILENT_AFTER)
            .map(|(r, _)| *r)
            .collect();
        for replica in silent {
            tracing::warn!(%replica, "a replica stopped coordinating; its tailnet peers are lost");
            self.lock().replicas.remove(&replica);
            self.hear(Gossip::ReplicaGone { replica });
        }
    }

    /// Applies gossip from another replica.
    fn hear(&self, g: Gossip) {
        let mut inner = self.lock();
        if let Some(r) = g.replica().filter(|r| *r != self.replica) {
            if !matches!(g, Gossip::ReplicaGone { .. }) {
                inner.replicas.insert(r, Instant::now());
            }
        }
        match g {
            Gossip::Alive { .. } => {}
            Gossip::Node {
                replica,
                peer,
                node,
            } => {
                if replica == self.replica {
                    return;
                }
                let node = node.and_then(|n| decode(&n));
                inner.remote.insert(
                    peer,
                    RemotePeer {
                        replica,
                        node: node.clone(),
                    },
                );
                let local: Vec<Uuid> = inner
                    .tunnel_peers(peer)
                    .into_iter()
                    .filter(|p| inner.peers.contains_key(p))
                    .collect();
                for to in local {
                    inner.send(to, update(peer, node.clone(), KIND_NODE, "node update"));
                }
            }
            Gossip::Tunnel {
                replica,
                src,
                dst,
                add,
            } => {
                if replica == self.replica {
                    return;
                }
                if add {
                    inner.tunnels.insert((src, dst));
                    if inner.peers.contains_key(&dst) {
                        if let Some(n) = inner.node_of(src) {
                            inner.send(dst, update(src, Some(n), KIND_NODE, "add tunnel"));
                        }
                        // The source's replica may not have our peer's node yet.
                        let node = inner.peers.get(&dst).and_then(|p| p.node.clone());
                        drop(inner);
                        self.publish(Gossip::Node {
                            replica: self.replica,
                            peer: dst,
                            node: node.map(|n| encode(&n)),
                        });
                    }
                } else {
                    inner.tunnels.remove(&(src, dst));
                    inner.send(dst, update(src, None, KIND_DISCONNECTED, "remove tunnel"));
                }
            }
            Gossip::Gone {
                replica,
                peer,
                lost,
            } => {
                if replica == self.replica {
                    return;
                }
                inner.remote.remove(&peer);
                let (kind, reason) = if lost {
                    (KIND_LOST, "lost")
                } else {
                    (KIND_DISCONNECTED, "disconnected")
                };
                inner.tell_tunnel_peers(peer, None, kind, reason);
                inner.tunnels.remove_from(peer);
            }
            Gossip::ReplicaGone { replica } => {
                if replica == self.replica {
                    return;
                }
                inner.replicas.remove(&replica);
                let gone: Vec<Uuid> = inner
                    .remote
                    .iter()
                    .filter(|(_, r)| r.replica == replica)
                    .map(|(id, _)| *id)
                    .collect();
                for peer in gone {
                    inner.remote.remove(&peer);
                    inner.tell_tunnel_peers(peer, None, KIND_LOST, "replica gone");
                    inner.tunnels.remove_from(peer);
                }
            }
            Gossip::Resync { replica } => {
                if replica != self.replica {
                    // Answered by the bus loop, at most once per RESYNC_MIN.
                    self.resync_requested
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }

    /// Publishes every local peer's node and every tunnel a local peer is the source of.
    fn announce_all(&self) {
        let (nodes, tunnels) = {
            let inner = self.lock();
            let nodes: Vec<(Uuid, Option<tn::Node>)> = inner
                .peers
                .iter()
                .map(|(id, p)| (*id, p.node.clone()))
                .collect();
            let tunnels = inner.tunnels.with_sources(|s| inner.peers.contains_key(s));
            (nodes, tunnels)
        };
        for (peer, node) in nodes {
            self.publish(Gossip::Node {
                replica: self.replica,
                peer,
                node: node.map(|n| encode(&n)),
            });
        }
        for (src, dst) in tunnels {
            self.publish(Gossip::Tunnel {
                replica: self.replica,
                src,
                dst,
                add: true,
            });
        }
    }

    /// Tells the other replicas that every peer of this one is gone (at shutdown).
    pub fn announce_shutdown(&self) {
        self.publish(Gossip::ReplicaGone {
            replica: self.replica,
        });
    }

    /// Runs the gossip: publishes what this replica's peers do and applies what the others
    /// say, until the pubsub shuts down.
    pub async fn run_bus(self: Arc<Self>, pubsub: Pubsub, mut outbox: BusOutbox) {
        let mut sub = pubsub.subscribe(BUS);
        // A replica that starts (or restarts) asks for the others' state.
        self.publish(Gossip::Resync {
            replica: self.replica,
        });
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        // Announcing everything, and asking everyone to, are rate-limited: with thousands of
        // peers either is many messages, and a subscriber that falls behind must not start a
        // storm of resyncs that makes it fall behind again.
        let mut last_announce: Option<Instant> = None;
        let mut last_ask: Option<Instant> = None;
        let due = |last: Option<Instant>| last.is_none_or(|t| t.elapsed() >= RESYNC_MIN);
        loop {
            tokio::select! {
                _ = heartbeat.tick() => {
                    self.publish(Gossip::Alive { replica: self.replica });
                    self.expire_silent(Instant::now());
                }
                g = outbox.0.recv() => {
                    let Some(g) = g else { return };
                    let mut batch = vec![g];
                    while let Ok(g) = outbox.0.try_recv() {
                        batch.push(g);
                    }
                    for payload in pack(&batch) {
                        if let Err(e) = pubsub.publish(BUS, &payload).await {
                            tracing::warn!(error = %e, "publishing tailnet coordination");
                        }
                    }
                }
                ev = sub.recv() => match ev {
                    Some(Event::Message(m)) => match serde_json::from_str::<Vec<Gossip>>(&m) {
                        Ok(list) => {
                            for g in list {
                                self.hear(g);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "unreadable tailnet coordination"),
                    },
                    Some(Event::Dropped) => {
                        // Messages of others may have been missed: ask them again.
                        if due(last_ask) {
                            last_ask = Some(Instant::now());
                            self.publish(Gossip::Resync { replica: self.replica });
                        }
                    }
                    None => return,
                },
            }
            if self
                .resync_requested
                .load(std::sync::atomic::Ordering::Relaxed)
                && due(last_announce)
            {
                self.resync_requested
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                last_announce = Some(Instant::now());
                self.announce_all();
            }
        }
    }
}

/// Most bytes of gossip in one NOTIFY (PostgreSQL's limit is 8,000, with the channel name).
const MAX_PAYLOAD: usize = 7000;

/// Packs gossip into as few JSON arrays under [`MAX_PAYLOAD`] as it fits in.
fn pack(batch: &[Gossip]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::from("[");
    for g in batch {
        let item = serde_json::to_string(g).expect("gossip serializes");
        if current.len() > 1 && current.len() + item.len() + 2 > MAX_PAYLOAD {
            current.push(']');
            out.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&item);
    }
    if current.len() > 1 {
        current.push(']');
        out.push(current);
    }
    out
}

/// Gossip waiting to be published.
pub struct BusOutbox(mpsc::UnboundedReceiver<Gossip>);

fn encode(n: &tn::Node) -> String {
    base64::engine::general_purpose::STANDARD.encode(n.encode_to_vec())
}

fn decode(s: &str) -> Option<tn::Node> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    tn::Node::decode(bytes.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i64) -> tn::Node {
        tn::Node {
            id,
            preferred_derp: 999,
            ..Default::default()
        }
    }

    fn req_node(id: i64) -> tn::CoordinateRequest {
        tn::CoordinateRequest {
            update_self: Some(tn::UpdateSelf {
                node: Some(node(id)),
            }),
            ..Default::default()
        }
    }

    fn add_tunnel(dst: Uuid) -> tn::CoordinateRequest {
        tn::CoordinateRequest {
            add_tunnel: Some(tn::Tunnel {
                id: dst.as_bytes().to_vec(),
            }),
            ..Default::default()
        }
    }

    fn drain(m: &mut Membership) -> Vec<tn::PeerUpdate> {
        let mut out = Vec::new();
        while let Ok(r) = m.updates.try_recv() {
            out.extend(r.peer_updates);
        }
        out
    }

    fn next(m: &mut Membership) -> tn::PeerUpdate {
        let mut r = m.updates.try_recv().expect("an update");
        assert_eq!(r.error, "");
        r.peer_updates.remove(0)
    }

    #[test]
    fn client_and_agent_learn_each_others_nodes() {
        let (c, _bus) = Coordinator::new(Uuid::new_v4());
        let (agent_id, client_id) = (Uuid::new_v4(), Uuid::new_v4());
        let mut agent = c.join(agent_id, PeerAuth::Agent);
        c.handle(&agent, req_node(1)).unwrap();
        let mut client = c.join(
            client_id,
            PeerAuth::Client {
                agents: [agent_id].into(),
            },
        );
        c.handle(&client, req_node(2)).unwrap();
        c.handle(&client, add_tunnel(agent_id)).unwrap();
        let u = next(&mut client);
        assert_eq!((u.id, u.kind), (agent_id.as_bytes().to_vec(), KIND_NODE));
        assert_eq!(u.node.unwrap().id, 1);
        let u = next(&mut agent);
        assert_eq!(u.node.unwrap().id, 2);
        // The agent's new node reaches the client.
        c.handle(&agent, req_node(3)).unwrap();
        assert_eq!(next(&mut client).node.unwrap().id, 3);
        // The agent drops: the client hears it lost; the tunnel stays for its return.
        c.leave(&agent, true);
        assert_eq!(next(&mut client).kind, KIND_LOST);
        let mut agent = c.join(agent_id, PeerAuth::Agent);
        assert_eq!(
            next(&mut agent).node.unwrap().id,
            2,
            "the returning agent is told"
        );
        c.handle(&agent, req_node(4)).unwrap();
        assert_eq!(next(&mut client).node.unwrap().id, 4);
        // The client says goodbye.
        c.handle(
            &client,
            tn::CoordinateRequest {
                disconnect: Some(tn::Disconnect {}),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(next(&mut agent).kind, KIND_DISCONNECTED);
        assert_eq!(c.peer_count(), 1);
    }

    #[test]
    fn tunnels_only_where_authorized() {
        let (c, _bus) = Coordinator::new(Uuid::new_v4());
        let (allowed, other) = (Uuid::new_v4(), Uuid::new_v4());
        let client = c.join(
            Uuid::new_v4(),
            PeerAuth::Client {
                agents: [allowed].into(),
            },
        );
        let err = c.handle(&client, add_tunnel(other)).unwrap_err();
        assert!(err.contains("may not"), "{err}");
        let agent = c.join(allowed, PeerAuth::Agent);
        assert!(c.handle(&agent, add_tunnel(other)).is_err());
        let bad = tn::CoordinateRequest {
            add_tunnel: Some(tn::Tunnel { id: vec![1, 2, 3] }),
            ..Default::default()
        };
        assert!(c.handle(&client, bad).is_err());
    }

    #[test]
    fn gossip_is_packed_under_the_notify_limit() {
        let batch: Vec<Gossip> = (0..1000)
            .map(|i| Gossip::Node {
                replica: Uuid::new_v4(),
                peer: Uuid::new_v4(),
                node: Some(encode(&node(i))),
            })
            .collect();
        let payloads = pack(&batch);
        assert!(payloads.len() < 100, "{} payloads", payloads.len());
        let mut n = 0;
        for p in &payloads {
            assert!(p.len() <= MAX_PAYLOAD);
            n += serde_json::from_str::<Vec<Gossip>>(p).unwrap().len();
        }
        assert_eq!(n, 1000);
    }

    /// Two replicas wired together by hand (what `run_bus` does over the database).
    #[test]
    fn gossip_connects_peers_on_two_replicas() {
        let (a, mut bus_a) = Coordinator::new(Uuid::new_v4());
        let (b, mut bus_b) = Coordinator::new(Uuid::new_v4());
        let pump = |from: &mut BusOutbox, to: &[&Arc<Coordinator>]| {
            let mut n = 0;
            while let Ok(g) = from.0.try_recv() {
                let json = serde_json::to_string(&g).unwrap();
                for c in to {
                    c.hear(serde_json::from_str(&json).unwrap());
                }
                n += 1;
            }
            n
        };
        let agent_id = Uuid::new_v4();
        let mut agent = b.join(agent_id, PeerAuth::Agent);
        b.handle(&agent, req_node(1)).unwrap();
        let mut client = a.join(
            Uuid::new_v4(),
            PeerAuth::Client {
                agents: [agent_id].into(),
            },
        );
        a.handle(&client, req_node(2)).unwrap();
        a.handle(&client, add_tunnel(agent_id)).unwrap();
        // Until gossip flows, the client's replica knows nothing of the agent.
        assert!(client.updates.try_recv().is_err());
        while pump(&mut bus_a, &[&b]) + pump(&mut bus_b, &[&a]) > 0 {}
        assert_eq!(next(&mut agent).node.unwrap().id, 2);
        let seen = drain(&mut client);
        assert!(!seen.is_empty());
        assert!(seen
            .iter()
            .all(|u| u.kind == KIND_NODE && u.node.as_ref().unwrap().id == 1));
        // B shuts down: A's client hears its agent lost.
        b.announce_shutdown();
        while pump(&mut bus_b, &[&a]) > 0 {}
        assert_eq!(next(&mut client).kind, KIND_LOST);
        // A replica that goes silent is given up on the same way.
        let mut agent2 = b.join(agent_id, PeerAuth::Agent);
        b.handle(&agent2, req_node(5)).unwrap();
        let _ = drain(&mut agent2);
        let mut client2 = a.join(
            Uuid::new_v4(),
            PeerAuth::Client {
                agents: [agent_id].into(),
            },
        );
        a.handle(&client2, add_tunnel(agent_id)).unwrap();
        while pump(&mut bus_a, &[&b]) + pump(&mut bus_b, &[&a]) > 0 {}
        assert!(drain(&mut client2).iter().any(|u| u.kind == KIND_NODE));
        a.expire_silent(std::time::Instant::now() + 2 * SILENT_AFTER);
        assert!(drain(&mut client2).iter().any(|u| u.kind == KIND_LOST));
    }
}
