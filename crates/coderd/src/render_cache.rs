//! Rendered workspaces and builds, kept in this process and served again while their stamps
//! ([`coderd_db::Store::render_stamps`]) say that nothing they show has changed.
//!
//! Every read still asks the database, in one statement that reads only row versions, whether
//! the answer is still right: what another replica changed a moment ago is never served stale,
//! and nothing has to be told to forget. What depends on the asker (`favorite`) is set per
//! request from the cached row; what depends on the daemons and the clock
//! (`matched_provisioners`) is computed again by the caller from the daemons the stamps
//! statement read (`views::jobs::rematch`), with the job's provisioner kept here.
//! A build whose job is pending (its queue position moves with other jobs) is not kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use coderd_db::{RenderStamps, WorkspaceRow};
use codersdk::{Workspace, WorkspaceBuild};
use uuid::Uuid;

/// Entries of each kind kept at most (an entry is a few kilobytes); past it, one is dropped
/// for each one added.
pub const CAPACITY: usize = 2048;

struct Entry<T> {
    stamp: String,
    /// The workspace the answer is of, as read with it (who may see it, whose favorite it is).
    row: WorkspaceRow,
    view: T,
    /// The job's provisioner (for `matched_provisioners`).
    provisioner: String,
}

struct Map<T>(Mutex<HashMap<Uuid, Arc<Entry<T>>>>);

impl<T> Default for Map<T> {
    fn default() -> Self {
        Map(Mutex::new(HashMap::new()))
    }
}

impl<T> Map<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Entry<T>>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: Uuid, stamp: Option<&str>) -> Option<Arc<Entry<T>>> {
        let stamp = stamp?;
        let map = self.lock();
        map.get(&id).filter(|e| e.stamp == stamp).cloned()
    }

    fn put(&self, id: Uuid, entry: Entry<T>) {
        let mut map = self.lock();
        if map.len() >= CAPACITY && !map.contains_key(&id) {
            if let Some(old) = map.keys().next().copied() {
                map.remove(&old);
            }
        }
        map.insert(id, Arc::new(entry));
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// What a cached answer gives back: the row it is of (to decide whether the asker may see it),
/// the answer as the asker sees it but for its `matched_provisioners`, and the job's
/// provisioner to match daemons with.
pub struct Hit<T> {
    pub row: WorkspaceRow,
    pub view: T,
    pub provisioner: String,
}

#[derive(Default)]
pub struct RenderCache {
    workspaces: Map<Workspace>,
    builds: Map<WorkspaceBuild>,
    /// Answers served from here, and those rendered from the database (for `/metrics`).
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl RenderCache {
    fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Entries kept, workspaces and builds.
    pub fn len(&self) -> (usize, usize) {
        (self.workspaces.len(), self.builds.len())
    }

    /// Workspace `id` as `viewer` sees it, if its stamp in `stamps` is the cached one.
    pub fn workspace(
        &self,
        stamps: &RenderStamps,
        id: Uuid,
        viewer: Uuid,
    ) -> Option<Hit<Workspace>> {
        let hit = self.workspaces.get(id, stamps.workspace(id));
        self.count(hit.is_some());
        let e = hit?;
        let mut view = e.view.clone();
        view.favorite = e.row.favorite && e.row.owner_id == viewer;
        Some(Hit {
            row: e.row.clone(),
            view,
            provisioner: e.provisioner.clone(),
        })
    }

    /// Keeps workspace `view`, rendered from rows read after `stamps` were, under its stamp.
    pub fn put_workspace(
        &self,
        stamps: &RenderStamps,
        row: &WorkspaceRow,
        provisioner: &str,
        view: &Workspace,
    ) {
        let Some(stamp) = stamps.workspace(row.id) else {
            return;
        };
        if view.latest_build.job.status == "pending" || view.id != row.id {
            return;
        }
        self.workspaces.put(
            row.id,
            Entry {
                stamp: stamp.to_string(),
                row: row.clone(),
                view: view.clone(),
                provisioner: provisioner.to_string(),
            },
        );
    }

    /// Build `id`, with the workspace it is of, if its stamp in `stamps` is the cached one.
    pub fn build(&self, stamps: &RenderStamps, id: Uuid) -> Option<Hit<WorkspaceBuild>> {
        let hit = self.builds.get(id, stamps.build(id));
        self.count(hit.is_some());
        let e = hit?;
        Some(Hit {
            row: e.row.clone(),
            view: e.view.clone(),
            provisioner: e.provisioner.clone(),
        })
    }

    /// Keeps build `view` of workspace `row`, rendered from rows read after `stamps` were.
    pub fn put_build(
        &self,
        stamps: &RenderStamps,
        row: &WorkspaceRow,
        provisioner: &str,
        view: &WorkspaceBuild,
    ) {
        let Some(stamp) = stamps.build(view.id) else {
            return;
        };
        if view.job.status == "pending" || view.workspace_id != row.id {
            return;
        }
        self.builds.put(
            view.id,
            Entry {
                stamp: stamp.to_string(),
                row: row.clone(),
                view: view.clone(),
                provisioner: provisioner.to_string(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_keeps_at_most_its_capacity() {
        let map: Map<u32> = Map::default();
        for i in 0..(CAPACITY + 10) {
            let id = Uuid::from_u128(i as u128);
            map.put(
                id,
                Entry {
                    stamp: "s".into(),
                    row: test_row(id),
                    view: 0,
                    provisioner: String::new(),
                },
            );
        }
        assert_eq!(map.len(), CAPACITY);
        let last = Uuid::from_u128((CAPACITY + 9) as u128);
        assert!(map.get(last, Some("s")).is_some());
        assert!(map.get(last, Some("other")).is_none());
        assert!(map.get(last, None).is_none());
    }

    fn test_row(id: Uuid) -> WorkspaceRow {
        serde_json::from_value(serde_json::json!({
            "id": id, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "owner_id": id, "organization_id": id, "template_id": id, "deleted": false,
            "name": "w", "autostart_schedule": null, "ttl": null,
            "last_used_at": "2026-01-01T00:00:00Z", "dormant_at": null, "deleting_at": null,
            "automatic_updates": "never", "favorite": false, "next_start_at": null,
            "user_acl": {}, "group_acl": {}
        }))
        .expect("a workspace row")
    }
}
