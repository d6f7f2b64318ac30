//! The callers of API keys, kept in memory: with a cached key, authenticating a request costs
//! a hash and a map lookup instead of a database round trip.
//!
//! Correct with several replicas on one database: triggers on every table authentication
//! reads (migration `0011_actor_changes.sql`) publish `actor_changed` with the user's id when
//! the writing transaction commits, and every process then forgets that user's keys. When the
//! pubsub may have missed messages (a full queue, a lost LISTEN connection, its first
//! connection) the whole cache is dropped. An entry is also never used after [`MAX_AGE`],
//! whatever the pubsub says.
//!
//! A fetch that raced an invalidation must not store what it read before the write: every
//! invalidation bumps a generation, and a row read under an older generation is used for its
//! request but not kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coderd_db::pubsub::{Event, Pubsub};
use coderd_db::ActorRow;
use uuid::Uuid;

/// The pubsub channel the triggers publish on; the payload is a user id.
pub const CHANNEL: &str = "actor_changed";
/// How long an entry may serve without being read again, even if no change was heard: the
/// bound on staleness should a notification be late or lost (one read per key a second
/// under load keeps most of the gain).
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Entries kept at most; beyond, the cache starts over (a flood of distinct keys).
const MAX_ENTRIES: usize = 50_000;

struct Entry {
    row: Arc<ActorRow>,
    fetched: Instant,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    generation: u64,
}

#[derive(Default)]
pub struct ActorCache {
    inner: Mutex<Inner>,
    /// Requests served from the cache, and those that read the database (for `/metrics`).
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl ActorCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached row of key `id`, if fresh enough.
    pub fn get(&self, id: &str) -> Option<Arc<ActorRow>> {
        let inner = self.lock();
        let e = inner.entries.get(id)?;
        (e.fetched.elapsed() < MAX_AGE).then(|| e.row.clone())
    }

    pub fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Read before fetching; pass to [`ActorCache::insert`].
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Keeps `row`, unless something was invalidated since `generation` was read.
    pub fn insert(&self, generation: u64, row: ActorRow) -> Arc<ActorRow> {
        let row = Arc::new(row);
        let mut inner = self.lock();
        if inner.generation == generation {
            if inner.entries.len() >= MAX_ENTRIES {
                inner.entries.clear();
            }
            inner.entries.insert(
                row.key_id.clone(),
                Entry {
                    row: row.clone(),
                    fetched: Instant::now(),
                },
            );
        }
        row
    }

    /// Changes the cached copy of key `id` after this process wrote the same to the database.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut ActorRow)) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get_mut(id) {
            f(Arc::make_mut(&mut e.row));
        }
    }

    /// Drops one key that the database no longer has. Not an invalidation: reads of other
    /// keys in flight stay good to keep.
    pub fn discard_key(&self, id: &str) {
        self.lock().entries.remove(id);
    }

    /// Forgets one key after this process changed or deleted it: a read of it in flight may
    /// predate the change, so it is not kept either.
    pub fn forget_key(&self, id: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.remove(id);
    }

    pub fn forget_user(&self, user: Uuid) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.retain(|_, e| e.row.user_id != user);
    }

    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Subscribes now (before any request can fill the cache) and applies what is heard,
    /// until the pubsub shuts down.
    pub fn follow(self: &Arc<Self>, pubsub: &Pubsub) -> tokio::task::JoinHandle<()> {
        let mut sub = pubsub.subscribe(CHANNEL);
        let cache = self.clone();
        tokio::spawn(async move {
            while let Some(event) = sub.recv().await {
                match event {
                    Event::Message(payload) => match payload.parse::<Uuid>() {
                        Ok(user) => cache.forget_user(user),
                        Err(_) => {
                            tracing::warn!(%payload, "actor_changed: not a user id; dropping every cached key");
                            cache.clear();
                        }
                    },
                    Event::Dropped => cache.clear(),
                }
            }
            // No more news: nothing cached can be trusted from here on.
            cache.clear();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, user: Uuid) -> ActorRow {
        ActorRow {
            key_id: key.into(),
            hashed_secret: vec![],
            expires_at: chrono::Utc::now(),
            last_used: chrono::Utc::now(),
            lifetime_seconds: 0,
            login_type: "password".into(),
            scope: "all".into(),
            user_id: user,
            username: "u".into(),
            user_status: "active".into(),
            user_deleted: false,
            rbac_roles: vec![],
            memberships: sqlx::types::Json(vec![]),
            groups: vec![],
        }
    }

    #[test]
    fn a_fetch_that_raced_an_invalidation_is_not_kept() {
        let cache = ActorCache::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let g = cache.generation();
        cache.forget_user(b);
        cache.insert(g, row("key1", a));
        assert!(cache.get("key1").is_none());
        let g = cache.generation();
        cache.insert(g, row("key1", a));
        assert!(cache.get("key1").is_some());
    }

    #[test]
    fn forgetting_a_user_drops_only_their_keys() {
        let cache = ActorCache::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let g = cache.generation();
        cache.insert(g, row("key1", a));
        cache.insert(g, row("key2", a));
        cache.insert(g, row("key3", b));
        cache.forget_user(a);
        assert!(cache.get("key1").is_none() && cache.get("key2").is_none());
        assert!(cache.get("key3").is_some());
        cache.clear();
        assert!(cache.is_empty());
    }
}
