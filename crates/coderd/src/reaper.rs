//! The job reaper: fails running jobs whose daemon went silent and pending jobs nobody took,
//! with Coder's messages. Safe with several replicas (each job is reaped under its row lock).
//! It also deletes provisioner daemons not seen for a week, as upstream's database purge does
//! (a daemon killed without deregistering leaves its row behind; listings show it `offline`
//! meanwhile).

use std::time::Duration;

use chrono::Utc;
use coderd_db::pubsub::{self, Pubsub};
use coderd_db::Store;
use coderd_provisioner::daemon::{logs_channel, END_OF_LOGS};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Jobs handled per tick at most, as Coder's.
const MAX_JOBS_PER_RUN: i64 = 10;
/// Daemons not seen for this long are deleted, as upstream's.
pub const DAEMON_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often old daemons are looked for, as upstream's purge.
const DAEMON_PURGE_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// A threshold in the reaper's words: whole minutes as minutes, anything else in seconds.
pub fn threshold_words(d: Duration) -> String {
    let secs = d.as_secs();
    let minutes = secs / 60;
    let (n, unit) = if minutes > 0 && minutes * 60 == secs {
        (minutes, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[derive(Clone, Copy, Debug)]
pub struct ReaperConfig {
    pub interval: Duration,
    pub hung_after: Duration,
    pub pending_after: Duration,
}

pub fn start(
    store: Store,
    pubsub: Pubsub,
    cfg: ReaperConfig,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let hung_for = threshold_words(cfg.hung_after);
        let pending_for = threshold_words(cfg.pending_after);
        let mut next_purge = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let now = Utc::now();
            if std::time::Instant::now() >= next_purge {
                let before = now - chrono::Duration::from_std(DAEMON_EXPIRY).unwrap_or_default();
                match store.delete_old_daemons(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        deleted = n,
                        "deleted provisioner daemons not seen for a week"
                    ),
                    Err(e) => tracing::warn!(error = %e, "deleting old provisioner daemons"),
                }
                next_purge = std::time::Instant::now() + DAEMON_PURGE_INTERVAL;
            }
            let ago =
                |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
            let reaped = store
                .reap_jobs(
                    ago(cfg.hung_after),
                    ago(cfg.pending_after),
                    &hung_for,
                    &pending_for,
                    MAX_JOBS_PER_RUN,
                )
                .await;
            match reaped {
                Ok(jobs) => {
                    for job in jobs {
                        tracing::warn!(job = %job.id, "reaped a hung or stale provisioner job");
                        let ch = logs_channel(job.id);
                        let _ = pubsub
                            .publish(
                                &ch,
                                &format!(r#"{{"created_after":{}}}"#, job.first_log_id - 1),
                            )
                            .await;
                        let _ = pubsub.publish(&ch, END_OF_LOGS).await;
                        // A reaped build changes its workspace: tell its watchers.
                        if let Ok(build) = store.build_by_job(job.id).await {
                            if let Ok(w) = store.workspace(build.workspace_id).await {
                                let _ = pubsub
                                    .publish(
                                        &pubsub::workspace_owner_channel(w.owner_id),
                                        &pubsub::workspace_changed(w.id),
                                    )
                                    .await;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "job reaper"),
            }
        }
    })
}
