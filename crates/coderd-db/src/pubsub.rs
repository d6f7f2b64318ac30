//! Publish/subscribe across every process on the database, over LISTEN/NOTIFY.
//!
//! Each process holds one LISTEN connection on a single PostgreSQL channel; messages carry a
//! logical channel name (`provisioner_job_posted`, `workspace_owner:<id>`, …) and a small
//! payload (ids and kinds: subscribers re-read the database). Delivery fans out in memory to
//! local subscribers through bounded queues. When a subscriber may have missed messages (its
//! queue overflowed, or the connection dropped and came back) it receives [`Event::Dropped`]
//! and should re-read whatever it watches. A NOTIFY sent inside a transaction is delivered only
//! when it commits, so nobody hears of a row they cannot see yet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgExecutor, PgPool};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Result;

/// The PostgreSQL channel every message goes on.
pub(crate) const PG_CHANNEL: &str = "coderd_pubsub";
const WORKSPACE_OWNER: &str = "workspace_owner:";
/// Messages a subscriber may fall behind by before it is told to re-read.
const QUEUE: usize = 256;
/// Longest wait between reconnection attempts: watchers get fresh state soon after an outage.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Message(String),
    /// Messages may have been lost: re-read.
    Dropped,
}

struct Sub {
    tx: mpsc::Sender<Event>,
    lost: Arc<AtomicBool>,
}

#[derive(Default)]
struct Shared {
    subs: Mutex<HashMap<String, HashMap<u64, Sub>>>,
    next: AtomicU64,
}

impl Shared {
    fn dispatch(&self, channel: &str, payload: &str) {
        let subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = subs.get(channel) {
            for sub in list.values() {
                if sub
                    .tx
                    .try_send(Event::Message(payload.to_string()))
                    .is_err()
                {
                    sub.lost.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    fn drop_all(&self) {
        let subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        for sub in subs.values().flat_map(|l| l.values()) {
            if sub.tx.try_send(Event::Dropped).is_err() {
                sub.lost.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// This process's pubsub. Cheap to clone.
#[derive(Clone)]
pub struct Pubsub {
    shared: Arc<Shared>,
    pool: PgPool,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// A subscription to one logical channel; unsubscribes when dropped.
pub struct Subscription {
    channel: String,
    id: u64,
    rx: mpsc::Receiver<Event>,
    lost: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl Subscription {
    /// An event already waiting, if any (to drain a burst).
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// The next event; `None` only if the pubsub was shut down.
    pub async fn recv(&mut self) -> Option<Event> {
        match self.rx.try_recv() {
            Ok(e) => return Some(e),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if self.lost.swap(false, Ordering::SeqCst) {
            return Some(Event::Dropped);
        }
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = self.shared.subs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = subs.get_mut(&self.channel) {
            list.remove(&self.id);
            if list.is_empty() {
                subs.remove(&self.channel);
            }
        }
    }
}

impl Pubsub {
    /// Starts listening on a connection of `listen_pool` (reconnecting with backoff whenever
    /// it is lost); publishes through `pool`.
    pub fn start(pool: PgPool, listen_pool: PgPool) -> Pubsub {
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(listen(listen_pool, shared.clone()));
        Pubsub {
            shared,
            pool,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    pub fn subscribe(&self, channel: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let lost = Arc::new(AtomicBool::new(false));
        let id = self.shared.next.fetch_add(1, Ordering::Relaxed);
        self.shared
            .subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(channel.to_string())
            .or_default()
            .insert(
                id,
                Sub {
                    tx,
                    lost: lost.clone(),
                },
            );
        Subscription {
            channel: channel.to_string(),
            id,
            rx,
            lost,
            shared: self.shared.clone(),
        }
    }

    /// Publishes now (or, on a transaction, when it commits).
    pub async fn publish_with<'e>(
        executor: impl PgExecutor<'e>,
        channel: &str,
        payload: &str,
    ) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PG_CHANNEL)
            .bind(format!("{channel}\n{payload}"))
            .execute(executor)
            .await?;
        Ok(())
    }

    pub async fn publish(&self, channel: &str, payload: &str) -> Result<()> {
        Self::publish_with(&self.pool, channel, payload).await
    }

    /// Local subscriptions currently open (a gauge for leaks and metrics).
    pub fn subscriber_count(&self) -> usize {
        let subs = self.shared.subs.lock().unwrap_or_else(|p| p.into_inner());
        subs.values().map(HashMap::len).sum()
    }

    /// Stops listening; subscribers see the end of their stream.
    pub fn shutdown(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        self.shared
            .subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// The messages as NOTIFY carries them on [`PG_CHANNEL`].
pub(crate) fn wire_messages(messages: &[(&str, &str)]) -> Vec<String> {
    messages
        .iter()
        .map(|(channel, payload)| format!("{channel}\n{payload}"))
        .collect()
}

/// A query that publishes, as [`Pubsub::publish_with`] would, the messages in the `text[]`
/// parameter `$param` made by [`wire_messages`], in order, when `condition` holds: for
/// statements that publish as a part of what they do (a CTE; it yields a row per message).
pub(crate) fn notify_each_sql(param: usize, condition: &str) -> String {
    format!(
        "SELECT pg_notify('{PG_CHANNEL}', m) FROM unnest(${param}::text[]) AS m WHERE {condition}"
    )
}

/// The channel on which watchers of `owner`'s workspaces hear of changes.
pub fn workspace_owner_channel(owner: uuid::Uuid) -> String {
    format!("{WORKSPACE_OWNER}{owner}")
}

/// The message on [`workspace_owner_channel`] saying workspace `id` changed (watchers re-read).
pub fn workspace_changed(id: uuid::Uuid) -> String {
    format!(r#"{{"kind":"state_change","workspace_id":"{id}"}}"#)
}

/// A SQL expression for the wire message (see [`wire_messages`]) of [`workspace_changed`] on
/// [`workspace_owner_channel`], for the workspace whose columns are `{w}.id` and
/// `{w}.owner_id`: the same bytes, for statements that publish as a part of what they do.
pub(crate) fn workspace_changed_sql(w: &str) -> String {
    format!(
        "'{WORKSPACE_OWNER}' || {w}.owner_id || E'\\n' || \
         '{{\"kind\":\"state_change\",\"workspace_id\":\"' || {w}.id || '\"}}'"
    )
}

async fn listen(pool: PgPool, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(250);
    let mut first = true;
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "pubsub: cannot connect; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if let Err(e) = listener.listen(PG_CHANNEL).await {
            tracing::warn!(error = %e, "pubsub: LISTEN failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        backoff = Duration::from_millis(250);
        if !first {
            tracing::info!("pubsub: reconnected; subscribers will re-read");
        }
        // Also the first time: what was read before LISTEN began may have changed unheard.
        shared.drop_all();
        first = false;
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    let (channel, payload) =
                        n.payload().split_once('\n').unwrap_or((n.payload(), ""));
                    shared.dispatch(channel, payload);
                }
                // The connection was lost; messages may have been missed meanwhile.
                Ok(None) => {
                    shared.drop_all();
                    tracing::warn!("pubsub: connection lost; reconnecting");
                    break;
                }
                Err(e) => {
                    shared.drop_all();
                    tracing::warn!(error = %e, "pubsub: listener error; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}
