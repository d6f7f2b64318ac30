//! The lifecycle executor: every tick, starts, stops, makes dormant or deletes the workspaces
//! that are due, with Coder's rules in Coder's order (autostop, autostart, failed-build stop,
//! dormancy, auto-delete). Each workspace is handled under a session advisory lock, so with
//! several replicas exactly one acts on it per tick; one with an active build is skipped.
//! Time comes in as an argument: tests drive `tick` with any clock they like.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use coderd_db::schedule::{self, Weekly};
use coderd_db::{
    JobStatus, LifecycleCandidate, NewLog, StoreResultExt, Transition, SYSTEM_USER_ID,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::domain::builds::BuildSpec;
use crate::http::error::ErrorKind;
use crate::state::AppState;

/// Failed automatic deletes are retried after this long.
const AUTODELETE_RETRY: chrono::Duration = chrono::Duration::hours(24);

/// What the executor does to one workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub transition: Option<Transition>,
    pub reason: &'static str,
    /// Mark the workspace dormant first.
    pub make_dormant: bool,
}

/// When a stopped workspace may next autostart: the first time its schedule fires after its
/// last build was created, on a day the template allows.
pub fn next_allowed_autostart(
    schedule: &Weekly,
    after: DateTime<Utc>,
    allowed_days: &[String],
) -> Option<DateTime<Utc>> {
    let mut t = after;
    for _ in 0..64 {
        let next = schedule.next(t)?;
        let day = schedule::day_name(next.with_timezone(&schedule.time_zone()).weekday());
        if allowed_days.is_empty() || allowed_days.iter().any(|d| d == day) {
            return Some(next);
        }
        t = next;
    }
    None
}

fn ns(n: i64) -> chrono::Duration {
    chrono::Duration::nanoseconds(n)
}

/// Coder's `getNextTransition`: what, if anything, is due for `c` at `tick`.
pub fn decide(c: &LifecycleCandidate, tick: DateTime<Utc>) -> Option<Decision> {
    if c.job_status.is_some_and(JobStatus::is_active) {
        return None;
    }
    let transition = c.build_transition;
    let dormant = c.dormant_at.is_some();
    let suspended = c.owner_status == "suspended";
    let failed = c.job_status == Some(JobStatus::Failed);
    let stop = |reason| {
        Some(Decision {
            transition: Some(Transition::Stop),
            reason,
            make_dormant: false,
        })
    };

    // 1. Autostop: the deadline passed, or the owner was suspended.
    if !failed && !dormant && transition == Some(Transition::Start) {
        let deadline = c.build_deadline.filter(|d| !schedule::is_zero(*d));
        if suspended || deadline.is_some_and(|d| tick >= d) {
            return stop("autostop");
        }
    }
    // 2. Autostart: the schedule fired since the last build, for an active owner.
    if !failed
        && !dormant
        && !suspended
        && transition == Some(Transition::Stop)
        && c.allow_user_autostart
    {
        if let (Some(raw), Some(created)) = (c.autostart_schedule.as_deref(), c.build_created_at) {
            if let Ok(s) = Weekly::parse(raw) {
                if next_allowed_autostart(&s, created, &c.autostart_allowed_days)
                    .is_some_and(|n| tick >= n)
                {
                    return Some(Decision {
                        transition: Some(Transition::Start),
                        reason: "autostart",
                        make_dormant: false,
                    });
                }
            }
        }
    }
    // 3. A failed start is stopped once the template's failure TTL has passed.
    if failed && transition == Some(Transition::Start) && c.failure_ttl > 0 {
        if let Some(done) = c.job_completed_at {
            if tick - done >= ns(c.failure_ttl) {
                return stop("failedstop");
            }
        }
    }
    // 4. Dormancy after the template's idle time (and a stop if it was running).
    if !dormant && c.time_til_dormant > 0 && tick - c.last_used_at >= ns(c.time_til_dormant) {
        let running = transition == Some(Transition::Start) && !failed;
        return Some(Decision {
            transition: running.then_some(Transition::Stop),
            reason: "dormancy",
            make_dormant: true,
        });
    }
    // 5. Auto-delete of dormant workspaces (a failed delete is retried after a day).
    if dormant && c.time_til_dormant_autodelete > 0 {
        if let Some(at) = c.deleting_at {
            let retry_wait = transition == Some(Transition::Delete)
                && failed
                && c.job_completed_at
                    .is_some_and(|done| tick - done < AUTODELETE_RETRY);
            if tick > at && !retry_wait {
                return Some(Decision {
                    transition: Some(Transition::Delete),
                    reason: "autodelete",
                    make_dormant: false,
                });
            }
        }
    }
    None
}

/// One executor; `tick` runs one pass, `start` ticks on an interval.
#[derive(Clone)]
pub struct Executor {
    state: AppState,
}

impl Executor {
    pub fn new(state: AppState) -> Executor {
        Executor { state }
    }

    /// Handles every workspace due at `now` (rounded down to the minute); returns what it did.
    pub async fn tick(&self, now: DateTime<Utc>) -> Vec<(Uuid, Decision)> {
        let tick = schedule::truncate_minute(now);
        let ids = match self.state.store.lifecycle_candidates(tick).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "lifecycle executor: listing candidates");
                return Vec::new();
            }
        };
        let mut done = Vec::new();
        for id in ids {
            match self.handle(id, tick).await {
                Ok(Some(d)) => done.push((id, d)),
                Ok(None) => {}
                Err(e) => tracing::warn!(workspace = %id, error = %e, "lifecycle executor"),
            }
        }
        done
    }

    async fn handle(&self, id: Uuid, tick: DateTime<Utc>) -> anyhow::Result<Option<Decision>> {
        let store = &self.state.store;
        let Some(lock) = store.try_lifecycle_lock(id).await? else {
            return Ok(None);
        };
        let result = self.handle_locked(id, tick).await;
        lock.release().await;
        result
    }

    async fn handle_locked(
        &self,
        id: Uuid,
        tick: DateTime<Utc>,
    ) -> anyhow::Result<Option<Decision>> {
        let store = &self.state.store;
        // Re-read under the lock: another replica may have acted already.
        let Some(c) = store.lifecycle_candidate(id).await.optional()? else {
            return Ok(None);
        };
        let Some(d) = decide(&c, tick) else {
            self.refresh_next_start(&c, tick).await;
            return Ok(None);
        };
        let ws = store.workspace(id).await?;
        let template = store
            .templates_by_ids(&[ws.template_id])
            .await?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("template of workspace {id} is missing"))?;
        if d.make_dormant {
            let deleting_at = (template.time_til_dormant_autodelete > 0)
                .then(|| tick + ns(template.time_til_dormant_autodelete));
            store.set_dormant(id, true, deleting_at).await?;
        }
        if let Some(t) = d.transition {
            let transition = t.as_str();
            let spec = |version| BuildSpec {
                transition: t,
                version_id: version,
                initiator: SYSTEM_USER_ID,
                reason: d.reason,
                state: None,
                parameters: &[],
                preset: None,
            };
            match crate::domain::builds::create_build(&self.state, &ws, &template, spec(None)).await
            {
                Ok(b) => {
                    tracing::info!(workspace = %id, build = b.build_number, transition, reason = d.reason, "automatic build")
                }
                // The active version needs parameters this workspace lacks: start it with the
                // version it has, and say why in the build's log.
                Err(e) if t == Transition::Start && e.kind == ErrorKind::InvalidParameter => {
                    let b = crate::domain::builds::create_build(
                        &self.state,
                        &ws,
                        &template,
                        spec(c.build_template_version_id),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {}", e.body.message, e.body.detail))?;
                    let line = format!(
                        "Coder: the template's active version needs parameters this workspace does not have ({}: {}); \
                         started with the workspace's current version instead.",
                        e.body.message, e.body.detail
                    );
                    store
                        .insert_logs(
                            b.job_id,
                            "provisioner_daemon",
                            &[NewLog {
                                level: "warn",
                                stage: "Autostart",
                                output: &line,
                            }],
                        )
                        .await?;
                }
                Err(e) => return Err(anyhow::anyhow!("{}: {}", e.body.message, e.body.detail)),
            }
        } else {
            crate::domain::builds::publish_workspace(&self.state, ws.owner_id, ws.id).await;
        }
        if d.transition == Some(Transition::Start) {
            self.refresh_next_start(&c, tick).await;
        }
        Ok(Some(d))
    }

    /// Keeps `next_start_at` current for clients.
    async fn refresh_next_start(&self, c: &LifecycleCandidate, tick: DateTime<Utc>) {
        let next = match (&c.autostart_schedule, c.dormant_at) {
            (Some(raw), None) => Weekly::parse(raw)
                .ok()
                .and_then(|s| next_allowed_autostart(&s, tick, &c.autostart_allowed_days)),
            _ => None,
        };
        let _ = self.state.store.set_next_start(c.workspace_id, next).await;
    }

    /// Ticks every `interval` until `stop` fires.
    pub fn start(self, interval: Duration, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stop.changed() => return,
                }
                self.tick(Utc::now()).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn running(deadline: &str) -> LifecycleCandidate {
        LifecycleCandidate {
            workspace_id: Uuid::nil(),
            owner_id: Uuid::nil(),
            owner_status: "active".into(),
            template_id: Uuid::nil(),
            autostart_schedule: None,
            dormant_at: None,
            deleting_at: None,
            last_used_at: t("2024-05-13T08:00:00Z"),
            automatic_updates: "never".into(),
            build_transition: Some(Transition::Start),
            build_created_at: Some(t("2024-05-13T08:00:00Z")),
            build_deadline: Some(t(deadline)),
            build_template_version_id: None,
            job_status: Some(JobStatus::Succeeded),
            job_completed_at: Some(t("2024-05-13T08:01:00Z")),
            allow_user_autostart: true,
            autostart_allowed_days: schedule::DAYS_OF_WEEK
                .iter()
                .map(|d| d.to_string())
                .collect(),
            failure_ttl: 0,
            time_til_dormant: 0,
            time_til_dormant_autodelete: 0,
        }
    }

    fn kind(d: Option<Decision>) -> Option<(Option<Transition>, &'static str)> {
        d.map(|d| (d.transition, d.reason))
    }

    #[test]
    fn autostop_at_the_deadline_minute() {
        let c = running("2024-05-13T12:00:00Z");
        assert_eq!(decide(&c, t("2024-05-13T11:59:00Z")), None);
        assert_eq!(
            kind(decide(&c, t("2024-05-13T12:00:00Z"))),
            Some((Some(Transition::Stop), "autostop"))
        );
        assert_eq!(
            kind(decide(&c, t("2024-05-13T12:01:00Z"))),
            Some((Some(Transition::Stop), "autostop"))
        );
        let mut none = running("0001-01-01T00:00:00Z");
        assert_eq!(
            decide(&none, t("2030-01-01T00:00:00Z")),
            None,
            "no deadline, no autostop"
        );
        none.owner_status = "suspended".into();
        assert_eq!(
            kind(decide(&none, t("2024-05-13T09:00:00Z"))),
            Some((Some(Transition::Stop), "autostop"))
        );
        let mut busy = running("2024-05-13T12:00:00Z");
        busy.job_status = Some(JobStatus::Running);
        assert_eq!(
            decide(&busy, t("2024-05-14T00:00:00Z")),
            None,
            "never while a build is active"
        );
    }

    fn stopped(schedule: &str, created: &str) -> LifecycleCandidate {
        let mut c = running("0001-01-01T00:00:00Z");
        c.build_transition = Some(Transition::Stop);
        c.autostart_schedule = Some(schedule.into());
        c.build_created_at = Some(t(created));
        c
    }

    #[test]
    fn autostart_at_the_scheduled_minute() {
        let c = stopped("CRON_TZ=UTC 0 9 * * *", "2024-05-13T08:00:00Z");
        assert_eq!(decide(&c, t("2024-05-13T08:59:00Z")), None);
        assert_eq!(
            kind(decide(&c, t("2024-05-13T09:00:00Z"))),
            Some((Some(Transition::Start), "autostart"))
        );
        assert_eq!(
            kind(decide(&c, t("2024-05-13T09:01:00Z"))),
            Some((Some(Transition::Start), "autostart"))
        );
        let mut suspended = c.clone();
        suspended.owner_status = "suspended".into();
        assert_eq!(
            decide(&suspended, t("2024-05-13T09:00:00Z")),
            None,
            "suspended owners are never started"
        );
        let mut disallowed = c.clone();
        disallowed.allow_user_autostart = false;
        assert_eq!(decide(&disallowed, t("2024-05-13T09:00:00Z")), None);
        let mut weekdays_only = c.clone();
        weekdays_only.autostart_allowed_days = vec!["tuesday".into()];
        // Monday 09:00 is not allowed; Tuesday 09:00 is.
        assert_eq!(decide(&weekdays_only, t("2024-05-13T09:00:00Z")), None);
        assert!(decide(&weekdays_only, t("2024-05-14T09:00:00Z")).is_some());
    }

    #[test]
    fn autostart_across_a_dst_change() {
        // Berlin springs forward on 2024-03-31: 09:00 local is 07:00Z that day, 08:00Z the day before.
        let c = stopped("CRON_TZ=Europe/Berlin 0 9 * * *", "2024-03-30T12:00:00Z");
        assert_eq!(decide(&c, t("2024-03-31T06:59:00Z")), None);
        assert!(decide(&c, t("2024-03-31T07:00:00Z")).is_some());
        // A time inside the skipped hour never fires that day.
        let gap = stopped("CRON_TZ=Europe/Berlin 30 2 * * *", "2024-03-30T12:00:00Z");
        assert_eq!(decide(&gap, t("2024-03-31T12:00:00Z")), None);
        assert!(decide(&gap, t("2024-04-01T00:30:00Z")).is_some());
    }

    #[test]
    fn failed_starts_dormancy_and_autodelete() {
        let mut failed = running("0001-01-01T00:00:00Z");
        failed.job_status = Some(JobStatus::Failed);
        failed.failure_ttl = 3_600_000_000_000;
        assert_eq!(decide(&failed, t("2024-05-13T09:00:00Z")), None);
        assert_eq!(
            kind(decide(&failed, t("2024-05-13T09:01:00Z"))),
            Some((Some(Transition::Stop), "failedstop"))
        );

        let mut idle = running("0001-01-01T00:00:00Z");
        idle.time_til_dormant = 24 * 3_600_000_000_000;
        assert_eq!(decide(&idle, t("2024-05-14T07:59:00Z")), None);
        let d = decide(&idle, t("2024-05-14T08:00:00Z")).unwrap();
        assert_eq!(
            (d.transition, d.reason, d.make_dormant),
            (Some(Transition::Stop), "dormancy", true)
        );

        let mut dormant = stopped("CRON_TZ=UTC 0 9 * * *", "2024-05-13T08:00:00Z");
        dormant.dormant_at = Some(t("2024-05-14T08:00:00Z"));
        dormant.deleting_at = Some(t("2024-05-21T08:00:00Z"));
        dormant.time_til_dormant_autodelete = 7 * 24 * 3_600_000_000_000;
        assert_eq!(
            decide(&dormant, t("2024-05-15T09:00:00Z")),
            None,
            "dormant workspaces do not autostart"
        );
        assert_eq!(decide(&dormant, t("2024-05-21T08:00:00Z")), None);
        assert_eq!(
            kind(decide(&dormant, t("2024-05-21T08:01:00Z"))),
            Some((Some(Transition::Delete), "autodelete"))
        );
        let mut retry = dormant.clone();
        retry.build_transition = Some(Transition::Delete);
        retry.job_status = Some(JobStatus::Failed);
        retry.job_completed_at = Some(t("2024-05-21T08:01:00Z"));
        assert_eq!(
            decide(&retry, t("2024-05-22T08:00:00Z")),
            None,
            "a failed delete waits a day"
        );
        assert!(decide(&retry, t("2024-05-22T08:02:00Z")).is_some());
    }
}
