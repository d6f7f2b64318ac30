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
//! With each answer its JSON is kept ([`Spliced`]), so that a hit copies bytes with the
//! per-request parts written into their places instead of cloning and encoding the answer.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use coderd_db::{RenderStamps, WorkspaceRow};
use codersdk::{MatchedProvisioners, Workspace, WorkspaceBuild};
use serde::Serialize;
use uuid::Uuid;

use crate::http::encode::to_go_json;

/// Entries of each kind kept at most (an entry is a few kilobytes); past it, one is dropped
/// for each one added.
pub const CAPACITY: usize = 2048;

/// What the cache keeps: an answer with a build in it, and what of it is set per request.
pub trait Kept: Clone + Serialize {
    /// The build whose `matched_provisioners` is computed per request.
    fn build(&self) -> &WorkspaceBuild;
    fn build_mut(&mut self) -> &mut WorkspaceBuild;
    /// Whose favorite it is, set per request (workspaces only).
    fn favorite_mut(&mut self) -> Option<&mut bool>;
}

impl Kept for Workspace {
    fn build(&self) -> &WorkspaceBuild {
        &self.latest_build
    }
    fn build_mut(&mut self) -> &mut WorkspaceBuild {
        &mut self.latest_build
    }
    fn favorite_mut(&mut self) -> Option<&mut bool> {
        Some(&mut self.favorite)
    }
}

impl Kept for WorkspaceBuild {
    fn build(&self) -> &WorkspaceBuild {
        self
    }
    fn build_mut(&mut self) -> &mut WorkspaceBuild {
        self
    }
    fn favorite_mut(&mut self) -> Option<&mut bool> {
        None
    }
}

/// `matched_provisioners` as no real answer has it, so that its JSON can be found in an answer.
const MARK: MatchedProvisioners = MatchedProvisioners {
    count: i64::MIN + 0x5eed,
    available: i64::MIN + 0x5eed,
    most_recently_seen: None,
};

/// `value` as [`to_go_json`] writes it, without the trailing newline.
fn go_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = to_go_json(value);
    out.pop();
    out
}

/// Where `needle` is in `hay`, if it is there exactly once.
fn once(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let mut found = hay
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| w == &needle);
    let (at, _) = found.next()?;
    found.next().is_none().then_some(at)
}

/// A kept answer's JSON, exactly as [`to_go_json`] writes it but for the trailing newline, cut
/// where what is set per request goes: serving a hit copies bytes instead of cloning and
/// encoding the answer again.
struct Spliced {
    bytes: Vec<u8>,
    /// The value of the build's `matched_provisioners`.
    matched: Range<usize>,
    /// The value of the workspace's `favorite` (`false` in `bytes`).
    favorite: Option<Range<usize>>,
}

impl Spliced {
    /// `view` encoded with marks where the per-request parts go; `None` when a mark is not
    /// found exactly once (the answer is then encoded per request, as before).
    fn of<T: Kept>(view: &T) -> Option<Spliced> {
        let mut marked = view.clone();
        marked.build_mut().matched_provisioners = MARK;
        let has_favorite = match marked.favorite_mut() {
            Some(f) => {
                *f = false;
                true
            }
            None => false,
        };
        let bytes = go_json(&marked);
        let mark = go_json(&MARK);
        let at = once(&bytes, &mark)?;
        let matched = at..at + mark.len();
        let favorite = if has_favorite {
            let key = br#""favorite":false"#;
            let at = once(&bytes, key)? + key.len() - b"false".len();
            Some(at..at + b"false".len())
        } else {
            None
        };
        Some(Spliced {
            bytes,
            matched,
            favorite,
        })
    }

    /// Appends the answer with `matched` and `favorite` in their places.
    fn write(&self, out: &mut Vec<u8>, matched: &MatchedProvisioners, favorite: bool) {
        let matched = go_json(matched);
        let favorite: &[u8] = if favorite { b"true" } else { b"false" };
        let mut cuts = [
            Some((self.matched.clone(), &matched[..])),
            self.favorite.clone().map(|r| (r, favorite)),
        ];
        // Written in the order they are in.
        if let [Some(a), Some(b)] = &cuts {
            if b.0.start < a.0.start {
                cuts.swap(0, 1);
            }
        }
        let mut from = 0;
        for (r, value) in cuts.into_iter().flatten() {
            out.extend_from_slice(&self.bytes[from..r.start]);
            out.extend_from_slice(value);
            from = r.end;
        }
        out.extend_from_slice(&self.bytes[from..]);
    }
}

struct Entry<T> {
    stamp: String,
    /// The workspace the answer is of, as read with it (who may see it, whose favorite it is).
    row: WorkspaceRow,
    view: T,
    /// The job's provisioner (for `matched_provisioners`).
    provisioner: String,
    /// `view` as JSON, ready to be served.
    json: Option<Spliced>,
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

/// A cached answer: the row it is of (to decide whether the asker may see it), and the answer
/// as the asker sees it once its `matched_provisioners` is given (computed by the caller from
/// [`Hit::build`], [`Hit::provisioner`] and the daemons of now).
pub struct Hit<T> {
    entry: Arc<Entry<T>>,
    favorite: bool,
}

impl<T: Kept> Hit<T> {
    pub fn row(&self) -> &WorkspaceRow {
        &self.entry.row
    }

    /// The build whose daemons are matched (its job's organization and tags).
    pub fn build(&self) -> &WorkspaceBuild {
        self.entry.view.build()
    }

    /// The job's provisioner.
    pub fn provisioner(&self) -> &str {
        &self.entry.provisioner
    }

    /// The answer, as a value.
    pub fn view(&self, matched: MatchedProvisioners) -> T {
        let mut view = self.entry.view.clone();
        view.build_mut().matched_provisioners = matched;
        if let Some(f) = view.favorite_mut() {
            *f = self.favorite;
        }
        view
    }

    /// Appends the answer's JSON, exactly as [`to_go_json`] writes [`Hit::view`] but for the
    /// trailing newline.
    pub fn write_json(&self, out: &mut Vec<u8>, matched: MatchedProvisioners) {
        match &self.entry.json {
            Some(json) => json.write(out, &matched, self.favorite),
            None => out.extend_from_slice(&go_json(&self.view(matched))),
        }
    }

    /// The answer's JSON as a response body: [`Hit::write_json`] and the trailing newline.
    pub fn json_line(&self, matched: MatchedProvisioners) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.entry
                .json
                .as_ref()
                .map_or(4096, |j| j.bytes.len() + 64),
        );
        self.write_json(&mut out, matched);
        out.push(b'\n');
        out
    }
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
        let entry = hit?;
        let favorite = entry.row.favorite && entry.row.owner_id == viewer;
        Some(Hit { entry, favorite })
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
                json: Spliced::of(view),
            },
        );
    }

    /// Build `id`, with the workspace it is of, if its stamp in `stamps` is the cached one.
    pub fn build(&self, stamps: &RenderStamps, id: Uuid) -> Option<Hit<WorkspaceBuild>> {
        let hit = self.builds.get(id, stamps.build(id));
        self.count(hit.is_some());
        let entry = hit?;
        Some(Hit {
            entry,
            favorite: false,
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
                json: Spliced::of(view),
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
                    json: None,
                },
            );
        }
        assert_eq!(map.len(), CAPACITY);
        let last = Uuid::from_u128((CAPACITY + 9) as u128);
        assert!(map.get(last, Some("s")).is_some());
        assert!(map.get(last, Some("other")).is_none());
        assert!(map.get(last, None).is_none());
    }

    /// A workspace as the server rendered one, named like the key the splice looks for.
    fn kept_workspace() -> Workspace {
        serde_json::from_str(include_str!("../testdata/kept-workspace.json")).expect("a workspace")
    }

    #[test]
    fn spliced_bytes_are_what_encoding_the_answer_gives() {
        let view = kept_workspace();
        let spliced = Spliced::of(&view).expect("both marks found exactly once");
        let build = Spliced::of(&view.latest_build).expect("the build's mark found");
        assert!(build.favorite.is_none(), "builds have no favorite");
        for favorite in [false, true] {
            for matched in [
                MatchedProvisioners {
                    count: 0,
                    available: 0,
                    most_recently_seen: None,
                },
                view.latest_build.matched_provisioners.clone(),
            ] {
                let mut expected = view.clone();
                expected.favorite = favorite;
                expected.latest_build.matched_provisioners = matched.clone();
                let mut out = Vec::new();
                spliced.write(&mut out, &matched, favorite);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    String::from_utf8(go_json(&expected)).unwrap()
                );
                let mut out = Vec::new();
                build.write(&mut out, &matched, favorite);
                assert_eq!(out, go_json(&expected.latest_build));
            }
        }
    }

    #[test]
    fn cuts_are_written_in_the_order_they_are_in() {
        let matched = MatchedProvisioners {
            count: 1,
            available: 0,
            most_recently_seen: None,
        };
        let value = String::from_utf8(go_json(&matched)).unwrap();
        // `favorite` after `matched_provisioners` (as in a workspace), and before it.
        for (text, m, f) in [("a[M]b[F]c", 1..4, 5..8), ("a[F]b[M]c", 5..8, 1..4)] {
            let spliced = Spliced {
                bytes: text.as_bytes().to_vec(),
                matched: m,
                favorite: Some(f),
            };
            let mut out = Vec::new();
            spliced.write(&mut out, &matched, true);
            let expected = text.replace("[M]", &value).replace("[F]", "true");
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn a_mark_not_found_exactly_once_is_encoded_per_request() {
        assert_eq!(once(b"abcabc", b"abc"), None);
        assert_eq!(once(b"xabcx", b"abc"), Some(1));
        assert_eq!(once(b"xx", b"abc"), None);
        // A string value can hold the mark's text only escaped, so it is still found once.
        let mut view = kept_workspace();
        view.template_display_name = String::from_utf8(go_json(&MARK)).unwrap();
        assert!(Spliced::of(&view).is_some());
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
