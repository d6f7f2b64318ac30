//! Templates' statistics, cached per template between the jobs that change them.

use uuid::Uuid;

/// Templates' statistics (build-time percentiles over every build, active users), kept per
/// template until a job's result is stored in this process (or [`STATS_MAX_AGE`] passes, for
/// jobs other replicas ran): computing them reads every build of the template, which a
/// request should not pay for while nothing changed. Upstream serves them from a cache
/// refreshed hourly.
#[derive(Default)]
pub struct StatsCache {
    generation: std::sync::atomic::AtomicU64,
    entries: std::sync::Mutex<
        std::collections::HashMap<Uuid, (u64, std::time::Instant, coderd_db::TemplateStats)>,
    >,
}

/// Longest a template's statistics are served without being recomputed.
pub const STATS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30);

impl StatsCache {
    /// Something a job changed is stored: every template's statistics are recomputed when
    /// next asked for.
    pub fn invalidate(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub async fn get(
        &self,
        store: &coderd_db::Store,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, coderd_db::TemplateStats>, coderd_db::StoreError>
    {
        // The generation is read before the database: a job stored meanwhile leaves what is
        // computed now marked old.
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let mut out = std::collections::HashMap::new();
        let mut missing = Vec::new();
        {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                match entries.get(id) {
                    Some((g, at, s)) if *g == generation && at.elapsed() < STATS_MAX_AGE => {
                        out.insert(*id, s.clone());
                    }
                    _ => missing.push(*id),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let fresh = store.template_stats(&missing).await?;
        let now = std::time::Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for id in missing {
            let s = fresh.get(&id).cloned().unwrap_or_default();
            entries.insert(id, (generation, now, s.clone()));
            out.insert(id, s);
        }
        // Deleted templates are not asked for again; keep the map from growing without end.
        if entries.len() > 10_000 {
            entries.retain(|_, (g, at, _)| *g == generation && at.elapsed() < STATS_MAX_AGE);
        }
        Ok(out)
    }
}

/// Dropped both when a job ends and once its result is stored: what is computed in between
/// (from rows about to change) is dropped again by the second.
impl coderd_provisioner::daemon::JobObserver for StatsCache {
    fn started(&self, _: &str) {}
    fn finished(&self, _: &str, _: &str, _: std::time::Duration) {
        self.invalidate();
    }
    fn stored(&self) {
        self.invalidate();
    }
}
