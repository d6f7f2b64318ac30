//! What the workspace watchers of this process share: one feed per watched workspace, and the
//! gauge of open streams. The feeds are run by `api::streams`; this module only keeps them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use uuid::Uuid;

/// Counts open streams; each stream holds a guard for its lifetime.
#[derive(Default, Debug)]
pub struct StreamGauge(AtomicI64);

impl StreamGauge {
    pub fn open(self: &Arc<Self>) -> StreamGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        StreamGuard(self.clone())
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct StreamGuard(Arc<StreamGauge>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The latest state of a workspace as its feed rendered it: the owner's view (with their
/// `favorite`) and everyone else's, or an error body.
#[derive(Debug)]
pub enum Snapshot {
    Data {
        owner: Uuid,
        as_owner: serde_json::Value,
        as_other: serde_json::Value,
    },
    Error(serde_json::Value),
}

pub type Feed = watch::Sender<Option<Arc<Snapshot>>>;

/// One feed per watched workspace in this process: it renders the workspace once per change
/// and every local watcher reads the result, so a change costs one render however many
/// watchers there are. A feed ends when its last watcher leaves.
#[derive(Default)]
pub struct WatchHub {
    feeds: Mutex<HashMap<Uuid, Arc<Feed>>>,
}

impl WatchHub {
    /// A receiver of `workspace`'s feed; when no feed runs yet, one is made and `start` is
    /// given it to run.
    pub fn subscribe(
        &self,
        workspace: Uuid,
        start: impl FnOnce(Arc<Feed>),
    ) -> watch::Receiver<Option<Arc<Snapshot>>> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(feed) = feeds.get(&workspace) {
            return feed.subscribe();
        }
        let (tx, rx) = watch::channel(None);
        let feed = Arc::new(tx);
        feeds.insert(workspace, feed.clone());
        start(feed);
        rx
    }

    /// Removes `workspace`'s feed if nobody subscribed to it meanwhile (subscribing holds the
    /// lock); true when it was removed and its runner should end.
    pub fn leave_if_unwatched(&self, workspace: Uuid, feed: &Feed) -> bool {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        if feed.receiver_count() == 0 {
            feeds.remove(&workspace);
            return true;
        }
        false
    }
}
