//! The job reaper: fails running jobs whose daemon went silent and pending jobs nobody took,
//! with Coder's messages. Safe with several replicas (each job is reaped under its row lock).

use std::time::Duration;

use chrono::Utc;
use coderd_db::pubsub::Pubsub;
use coderd_db::Store;
use coderd_provisioner::daemon::logs_channel;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Jobs handled per tick at most, as Coder's.
const MAX_JOBS_PER_RUN: i64 = 10;

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
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let now = Utc::now();
            let ago =
                |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
            let reaped = store
                .reap_jobs(
                    ago(cfg.hung_after),
                    ago(cfg.pending_after),
                    (cfg.hung_after.as_secs() / 60) as i64,
                    (cfg.pending_after.as_secs() / 60) as i64,
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
                        let _ = pubsub.publish(&ch, r#"{"end_of_logs":true}"#).await;
                        // A reaped build changes its workspace: tell its watchers.
                        if let Ok(build) = store.build_by_job(job.id).await {
                            if let Ok(w) = store.workspace(build.workspace_id).await {
                                let payload = serde_json::json!({"kind": "state_change", "workspace_id": w.id});
                                let _ = pubsub
                                    .publish(
                                        &format!("workspace_owner:{}", w.owner_id),
                                        &payload.to_string(),
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
