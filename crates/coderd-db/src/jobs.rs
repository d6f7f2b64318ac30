//! The provisioner job queue: enqueue, acquire (`FOR UPDATE SKIP LOCKED`), heartbeat, logs,
//! completion with everything a job produced, cancellation, the reaper, and provisioner daemons.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::model::{Resource, Timing};
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct JobRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub organization_id: Uuid,
    pub initiator_id: Uuid,
    pub provisioner: String,
    pub job_type: String,
    pub input: Json<Value>,
    pub worker_id: Option<Uuid>,
    pub worker_name: Option<String>,
    pub file_id: Uuid,
    pub tags: Json<BTreeMap<String, String>>,
    pub logs_overflowed: bool,
    pub status: String,
}

pub(crate) const JOB_COLUMNS: &str =
    "j.id, j.created_at, j.updated_at, j.started_at, j.canceled_at, \
    j.completed_at, j.error, j.error_code, j.organization_id, j.initiator_id, \
    j.provisioner::text AS provisioner, j.type::text AS job_type, j.input, j.worker_id, \
    (SELECT d.name FROM provisioner_daemons d WHERE d.id = j.worker_id) AS worker_name, \
    j.file_id, j.tags, j.logs_overflowed, j.job_status::text AS status";

pub struct NewJob<'a> {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub initiator_id: Uuid,
    pub provisioner: &'a str,
    pub job_type: &'a str,
    pub input: Value,
    pub file_id: Uuid,
    pub tags: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogRow {
    pub id: i64,
    pub job_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub source: String,
    pub level: String,
    pub stage: String,
    pub output: String,
}

/// A log line to append.
pub struct NewLog<'a> {
    pub level: &'a str,
    pub stage: &'a str,
    pub output: &'a str,
}

/// How a job ended, as the daemon reports it.
///
/// A failed or canceled workspace build may still report a new provisioner state (Terraform
/// can change real infrastructure before it stops); it replaces the build's, as upstream's
/// `FailJob` does. `None` keeps the state the build started with.
#[derive(Clone)]
pub enum Completion<'a> {
    Failed {
        error: &'a str,
        error_code: Option<&'a str>,
        state: Option<&'a [u8]>,
        /// What an import that failed still found (the template's variables, when some
        /// required ones lack values), stored as the version's.
        import: Option<ImportProduct<'a>>,
    },
    Canceled {
        state: Option<&'a [u8]>,
    },
    Succeeded(Produced<'a>),
}

/// What a successful job produced, stored in the same transaction that completes it.
#[derive(Clone, Default)]
pub struct Produced<'a> {
    /// (transition, resources) pairs.
    pub resources: Vec<(&'a str, &'a [Resource])>,
    pub timings: &'a [Timing],
    pub import: Option<ImportProduct<'a>>,
    pub build: Option<crate::workspaces::BuildProduct<'a>>,
}

#[derive(Clone)]
pub struct ImportProduct<'a> {
    pub template_version_id: Uuid,
    pub readme: &'a str,
    pub variables: &'a [crate::model::Variable],
    pub parameters: &'a [crate::model::Parameter],
    pub presets: &'a [crate::model::Preset],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Pending: canceled at once.
    Canceled,
    /// Running: marked canceling; its daemon stops it.
    Canceling,
    AlreadyCompleted,
    AlreadyCanceled,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct DaemonRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub name: String,
    pub provisioners: Vec<String>,
    pub organization_id: Option<Uuid>,
    pub tags: Json<BTreeMap<String, String>>,
    pub last_seen_at: DateTime<Utc>,
    pub version: String,
    pub api_version: String,
    pub current_job_id: Option<Uuid>,
    pub previous_job_id: Option<Uuid>,
}

pub(crate) const DAEMON_COLUMNS: &str =
    "id, created_at, name, provisioners::text[] AS provisioners, \
    organization_id, tags, last_seen_at, version, api_version, current_job_id, previous_job_id";

pub struct NewDaemon<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub provisioners: &'a [String],
    pub tags: &'a BTreeMap<String, String>,
    pub version: &'a str,
}

/// A job the reaper terminated.
#[derive(Debug, Clone)]
pub struct ReapedJob {
    pub id: Uuid,
    pub first_log_id: i64,
}

/// Filters of `GET /organizations/{org}/provisionerjobs`.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub organization_id: Uuid,
    pub ids: Vec<Uuid>,
    pub statuses: Vec<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub initiator: Option<Uuid>,
    pub limit: i64,
}

/// One stored resource with its metadata, agents and apps.
#[derive(Debug, Clone)]
pub struct ResourceRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub job_id: Uuid,
    pub transition: String,
    pub resource: Resource,
    pub agents: Vec<AgentRow>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct AgentRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resource_id: Uuid,
    pub name: String,
    pub operating_system: String,
    pub architecture: String,
    pub directory: String,
    pub connection_timeout_seconds: i32,
    pub troubleshooting_url: String,
    pub first_connected_at: Option<DateTime<Utc>>,
    pub last_connected_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub lifecycle_state: String,
    pub version: String,
    pub api_version: String,
    pub expanded_directory: String,
    pub subsystems: Vec<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
    pub logs_length: i32,
    pub logs_overflowed: bool,
    pub display_apps: Vec<String>,
    #[sqlx(skip)]
    #[serde(default)]
    pub apps: Vec<AppRow>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct AppRow {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub slug: String,
    pub display_name: String,
    pub icon: String,
    pub command: String,
    pub url: String,
    pub external: bool,
    pub subdomain: bool,
    pub sharing_level: String,
    pub hidden: bool,
    pub open_in: String,
    pub health: String,
    pub healthcheck_url: String,
    pub healthcheck_interval: i32,
    pub healthcheck_threshold: i32,
}

/// Inserts a job; call inside the transaction that inserts the row owning it.
pub async fn insert_job(conn: &mut PgConnection, job: &NewJob<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO provisioner_jobs (id, created_at, updated_at, organization_id, initiator_id, \
             provisioner, type, input, file_id, tags) \
         VALUES ($1, clock_timestamp(), clock_timestamp(), $2, $3, $4::provisioner_type, \
                 $5::provisioner_job_type, $6, $7, $8)",
    )
    .bind(job.id)
    .bind(job.organization_id)
    .bind(job.initiator_id)
    .bind(job.provisioner)
    .bind(job.job_type)
    .bind(Json(&job.input))
    .bind(job.file_id)
    .bind(Json(job.tags))
    .execute(conn)
    .await?;
    Ok(())
}

/// Coder's tag normalization: merge left to right (an empty value never overwrites), then make
/// `scope` organization (no owner) or user (owned by `user`).
pub fn mutate_tags(user: Uuid, sets: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for set in sets {
        for (k, v) in set.iter() {
            if !v.is_empty() || !out.contains_key(k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    match out.get("scope").map(String::as_str) {
        Some("user") => {
            out.insert("owner".into(), user.to_string());
        }
        _ => {
            out.insert("scope".into(), "organization".into());
            out.insert("owner".into(), String::new());
        }
    }
    out
}

fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Store {
    pub async fn job(&self, id: Uuid) -> Result<JobRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM provisioner_jobs j WHERE j.id = $1"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Inserts a job that no other row owns (dry runs).
    pub async fn insert_standalone_job(&self, job: NewJob<'_>) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_job(&mut conn, &job).await
    }

    pub async fn jobs_by_ids(&self, ids: &[Uuid]) -> Result<Vec<JobRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM provisioner_jobs j WHERE j.id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn list_jobs(&self, f: &JobFilter) -> Result<Vec<JobRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM provisioner_jobs j \
             WHERE j.organization_id = $1 \
               AND (cardinality($2::uuid[]) = 0 OR j.id = ANY($2)) \
               AND (cardinality($3::text[]) = 0 OR j.job_status::text = ANY($3)) \
               AND ($4::jsonb IS NULL OR j.tags @> $4) \
               AND ($5::uuid IS NULL OR j.initiator_id = $5) \
             ORDER BY j.created_at DESC, j.id DESC LIMIT $6"
        ))
        .bind(f.organization_id)
        .bind(&f.ids)
        .bind(&f.statuses)
        .bind(f.tags.as_ref().map(Json))
        .bind(f.initiator)
        .bind(if f.limit > 0 { f.limit } else { 50 })
        .fetch_all(&self.pool)
        .await?)
    }

    /// Queue position (1-based) and size of each pending job among `ids`, among the pending
    /// jobs of the same organization, provisioner and tags. One job is answered with two
    /// counts over the pending-jobs index; several with one window pass per queue they are in
    /// (never the pending × daemons join upstream pays for). See benches/README.md.
    pub async fn queue_positions(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, (i64, i64)>> {
        let sql = match ids.len() {
            0 => return Ok(HashMap::new()),
            1 => {
                "SELECT j.id, \
                     (SELECT count(*) FROM provisioner_jobs p WHERE p.job_status = 'pending' \
                        AND p.organization_id = j.organization_id AND p.provisioner = j.provisioner \
                        AND p.tags = j.tags AND (p.created_at, p.id) <= (j.created_at, j.id)), \
                     (SELECT count(*) FROM provisioner_jobs p WHERE p.job_status = 'pending' \
                        AND p.organization_id = j.organization_id AND p.provisioner = j.provisioner \
                        AND p.tags = j.tags) \
                 FROM provisioner_jobs j WHERE j.id = ANY($1) AND j.job_status = 'pending'"
            }
            _ => {
                "WITH wanted AS (SELECT id, organization_id, provisioner, tags FROM provisioner_jobs \
                                 WHERE id = ANY($1) AND job_status = 'pending'), \
                 queues AS (SELECT DISTINCT organization_id, provisioner, tags FROM wanted), \
                 ranked AS (SELECT p.id, \
                                row_number() OVER (PARTITION BY p.organization_id, p.provisioner, p.tags \
                                                   ORDER BY p.created_at, p.id) AS position, \
                                count(*) OVER (PARTITION BY p.organization_id, p.provisioner, p.tags) AS size \
                            FROM provisioner_jobs p JOIN queues q ON q.organization_id = p.organization_id \
                                 AND q.provisioner = p.provisioner AND q.tags = p.tags \
                            WHERE p.job_status = 'pending') \
                 SELECT r.id, r.position, r.size FROM ranked r JOIN wanted w ON w.id = r.id"
            }
        };
        let rows: Vec<(Uuid, i64, i64)> =
            sqlx::query_as(sql).bind(ids).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(id, pos, size)| (id, (pos, size)))
            .collect())
    }

    /// Claims the oldest pending job this daemon can run, or `None`. Concurrent daemons (in any
    /// process) never claim the same job: candidates locked by another claim are skipped.
    pub async fn acquire_job(
        &self,
        daemon_id: Uuid,
        provisioners: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<Option<JobRow>> {
        let claimed: Option<Uuid> = sqlx::query_scalar(
            "WITH job AS ( \
                 UPDATE provisioner_jobs SET started_at = clock_timestamp(), updated_at = clock_timestamp(), \
                     worker_id = $1 \
                 WHERE id = (SELECT id FROM provisioner_jobs \
                             WHERE job_status = 'pending' \
                               AND provisioner::text = ANY($2) \
                               AND provisioner_tagset_contains($3, tags) \
                             ORDER BY created_at, id FOR UPDATE SKIP LOCKED LIMIT 1) \
                 RETURNING id), \
             daemon AS ( \
                 UPDATE provisioner_daemons SET current_job_id = (SELECT id FROM job), last_seen_at = now() \
                 WHERE id = $1 AND EXISTS (SELECT 1 FROM job)) \
             SELECT id FROM job",
        )
        .bind(daemon_id)
        .bind(provisioners)
        .bind(Json(tags))
        .fetch_optional(&self.pool)
        .await?;
        match claimed {
            Some(id) => self.job(id).await.map(Some),
            None => Ok(None),
        }
    }

    /// Gives back a job `daemon` claimed just as it began stopping, as if it had never been
    /// claimed (a job canceled meanwhile ends canceled); other daemons are told it is there.
    pub async fn release_job(&self, id: Uuid, daemon: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE provisioner_jobs SET updated_at = clock_timestamp(), \
                 started_at = CASE WHEN canceled_at IS NULL THEN NULL ELSE started_at END, \
                 worker_id = CASE WHEN canceled_at IS NULL THEN NULL ELSE worker_id END, \
                 completed_at = CASE WHEN canceled_at IS NULL THEN NULL ELSE clock_timestamp() END \
             WHERE id = $1 AND worker_id = $2 AND completed_at IS NULL",
        )
        .bind(id)
        .bind(daemon)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE provisioner_daemons SET current_job_id = NULL WHERE id = $1")
            .bind(daemon)
            .execute(&mut *tx)
            .await?;
        crate::pubsub::Pubsub::publish_with(&mut *tx, "provisioner_job_posted", "{}").await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that the job and its daemon are alive (a busy daemon is not listed offline).
    /// Answers whether the job should stop: it was canceled, or it is already finished (the
    /// reaper ended it).
    pub async fn heartbeat_job(&self, id: Uuid) -> Result<bool> {
        let canceled: Option<bool> = sqlx::query_scalar(
            "WITH daemon AS ( \
                 UPDATE provisioner_daemons SET last_seen_at = now() WHERE current_job_id = $1) \
             UPDATE provisioner_jobs SET updated_at = clock_timestamp() \
             WHERE id = $1 AND completed_at IS NULL RETURNING canceled_at IS NOT NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(canceled.unwrap_or(true))
    }

    /// Appends log lines in one statement; returns the new ids (ascending).
    pub async fn insert_logs(
        &self,
        job_id: Uuid,
        source: &str,
        logs: &[NewLog<'_>],
    ) -> Result<Vec<i64>> {
        if logs.is_empty() {
            return Ok(Vec::new());
        }
        let levels: Vec<&str> = logs
            .iter()
            .map(|l| match l.level {
                "trace" | "debug" | "info" | "warn" | "error" => l.level,
                _ => "info",
            })
            .collect();
        let stages: Vec<&str> = logs.iter().map(|l| clip(l.stage, 128)).collect();
        let outputs: Vec<&str> = logs.iter().map(|l| clip(l.output, 1024)).collect();
        let ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO provisioner_job_logs (job_id, created_at, source, level, stage, output) \
             SELECT $1, clock_timestamp(), $2::log_source, l.level::log_level, l.stage, l.output \
             FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS l(level, stage, output, n) \
             ORDER BY l.n RETURNING id",
        )
        .bind(job_id)
        .bind(source)
        .bind(&levels)
        .bind(&stages)
        .bind(&outputs)
        .fetch_all(&self.pool)
        .await?;
        let mut ids = ids;
        ids.sort_unstable();
        Ok(ids)
    }

    /// Logs of a job with id greater than `after`, oldest first.
    pub async fn logs_after(&self, job_id: Uuid, after: i64) -> Result<Vec<LogRow>> {
        Ok(sqlx::query_as(
            "SELECT id, job_id, created_at, source::text AS source, level::text AS level, stage, output \
             FROM provisioner_job_logs WHERE job_id = $1 AND id > $2 ORDER BY id",
        )
        .bind(job_id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ends a job with everything it produced, atomically. `false` when the job had already
    /// ended (canceled while pending, or reaped), in which case nothing is written.
    pub async fn complete_job(
        &self,
        id: Uuid,
        daemon: Option<Uuid>,
        how: Completion<'_>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
            "SELECT completed_at FROM provisioner_jobs WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        match done {
            None => return Err(StoreError::NotFound),
            Some(Some(_)) => return Ok(false),
            Some(None) => {}
        }
        match how {
            Completion::Failed {
                error,
                error_code,
                state,
                import,
            } => {
                store_unsuccessful_state(&mut tx, id, state).await?;
                if let Some(import) = import {
                    store_import(&mut tx, &import).await?;
                }
                sqlx::query(
                    "UPDATE provisioner_jobs SET completed_at = clock_timestamp(), updated_at = clock_timestamp(), \
                         error = $2, error_code = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(if error.is_empty() { "failed" } else { error })
                .bind(error_code)
                .execute(&mut *tx)
                .await?;
            }
            Completion::Canceled { state } => {
                store_unsuccessful_state(&mut tx, id, state).await?;
                sqlx::query(
                    "UPDATE provisioner_jobs SET completed_at = clock_timestamp(), updated_at = clock_timestamp(), \
                         canceled_at = COALESCE(canceled_at, clock_timestamp()) WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            Completion::Succeeded(p) => {
                for (transition, resources) in &p.resources {
                    insert_resources(&mut tx, id, transition, resources).await?;
                }
                insert_timings(&mut tx, id, p.timings).await?;
                if let Some(import) = p.import {
                    store_import(&mut tx, &import).await?;
                }
                if let Some(build) = &p.build {
                    crate::workspaces::store_build(&mut tx, build).await?;
                }
                sqlx::query(
                    "UPDATE provisioner_jobs SET completed_at = clock_timestamp(), updated_at = clock_timestamp() \
                     WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
        }
        if let Some(daemon) = daemon {
            sqlx::query(
                "UPDATE provisioner_daemons SET current_job_id = NULL, previous_job_id = $2, last_seen_at = now() \
                 WHERE id = $1",
            )
            .bind(daemon)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Cancels a job: a pending one ends at once, a running one becomes canceling. With
    /// `expect`, the job must currently be in that status (`Err(Some(status))` otherwise).
    pub async fn cancel_job(
        &self,
        id: Uuid,
        expect: Option<&str>,
    ) -> Result<Result<CancelOutcome, String>> {
        let mut tx = self.pool.begin().await?;
        let (status, worker): (String, Option<Uuid>) = sqlx::query_as(
            "SELECT job_status::text, worker_id FROM provisioner_jobs WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(expect) = expect {
            if expect != status {
                return Ok(Err(status));
            }
        }
        let outcome = match status.as_str() {
            "succeeded" | "failed" => CancelOutcome::AlreadyCompleted,
            "canceled" | "canceling" => CancelOutcome::AlreadyCanceled,
            _ if worker.is_none() => {
                sqlx::query(
                    "UPDATE provisioner_jobs SET canceled_at = clock_timestamp(), completed_at = clock_timestamp(), \
                         updated_at = clock_timestamp() WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                CancelOutcome::Canceled
            }
            _ => {
                sqlx::query(
                    "UPDATE provisioner_jobs SET canceled_at = clock_timestamp(), updated_at = clock_timestamp() \
                     WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                CancelOutcome::Canceling
            }
        };
        tx.commit().await?;
        Ok(Ok(outcome))
    }

    /// Fails jobs whose daemon stopped heartbeating (running, not updated since `hung_before`)
    /// and jobs nobody picked up (pending since `pending_before`), with Coder's log lines and
    /// error. Each job is handled in its own transaction holding its row lock, so replicas
    /// reaping at once never handle the same job twice.
    pub async fn reap_jobs(
        &self,
        hung_before: DateTime<Utc>,
        pending_before: DateTime<Utc>,
        hung_for: &str,
        pending_for: &str,
        limit: i64,
    ) -> Result<Vec<ReapedJob>> {
        let candidates: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM provisioner_jobs WHERE completed_at IS NULL AND \
                 ((started_at IS NULL AND updated_at < $2) OR (started_at IS NOT NULL AND updated_at < $1)) \
             ORDER BY random() LIMIT $3",
        )
        .bind(hung_before)
        .bind(pending_before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut reaped = Vec::new();
        for id in candidates {
            let mut tx = self.pool.begin().await?;
            let row: Option<JobClock> = sqlx::query_as(
                "SELECT started_at, updated_at, completed_at FROM provisioner_jobs \
                 WHERE id = $1 FOR UPDATE SKIP LOCKED",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(JobClock {
                started_at: started,
                updated_at: updated,
                completed_at: completed,
            }) = row
            else {
                continue;
            };
            let (kind, how_long) = match started {
                _ if completed.is_some() => continue,
                None if updated < pending_before => ("pending", pending_for),
                Some(_) if updated < hung_before => ("hung", hung_for),
                _ => continue,
            };
            let stage: String = sqlx::query_scalar(
                "SELECT stage FROM provisioner_job_logs WHERE job_id = $1 ORDER BY id DESC LIMIT 1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_else(|| "Unknown".into());
            let lines = [
                String::new(),
                "====================".into(),
                format!("Coder: Build has been detected as {kind} for {how_long} and will be terminated."),
                "====================".into(),
                String::new(),
            ];
            let first: i64 = sqlx::query_scalar(
                "INSERT INTO provisioner_job_logs (job_id, created_at, source, level, stage, output) \
                 SELECT $1, clock_timestamp() + (l.n - 1) * interval '1 millisecond', 'provisioner_daemon', 'error', $2, l.output \
                 FROM unnest($3::text[]) WITH ORDINALITY AS l(output, n) ORDER BY l.n RETURNING id",
            )
            .bind(id)
            .bind(&stage)
            .bind(&lines[..])
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .min()
            .unwrap_or(0);
            sqlx::query(
                "UPDATE provisioner_jobs SET updated_at = clock_timestamp(), completed_at = clock_timestamp(), \
                     started_at = COALESCE(started_at, clock_timestamp()), error = $2, error_code = NULL \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(format!(
                "Coder: Build has been detected as {kind} for {how_long} and has been terminated by the reaper."
            ))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE provisioner_daemons SET current_job_id = NULL WHERE current_job_id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            reaped.push(ReapedJob {
                id,
                first_log_id: first,
            });
        }
        Ok(reaped)
    }

    /// Agents (with their apps) whose `column` (`id` or `resource_id`) is one of `ids`, in one
    /// query: the apps come along as JSON.
    async fn agents_where(&self, column: &str, ids: &[Uuid]) -> Result<Vec<AgentRow>> {
        let rows: Vec<AgentWithApps> = sqlx::query_as(&format!(
            "SELECT {AGENT_COLUMNS}, {AGENT_APPS} AS apps_json \
             FROM workspace_agents a WHERE a.{column} = ANY($1) ORDER BY a.display_order"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AgentRow {
                apps: r.apps_json.0,
                ..r.agent
            })
            .collect())
    }

    /// Agents by id, with their apps.
    pub async fn agents_by_ids(&self, ids: &[Uuid]) -> Result<Vec<AgentRow>> {
        self.agents_where("id", ids).await
    }

    /// The workspace an agent belongs to.
    pub async fn workspace_of_agent(&self, agent: Uuid) -> Result<Uuid> {
        let row: Option<(Uuid,)> = sqlx::query_as(
            "SELECT b.workspace_id FROM workspace_agents a \
             JOIN workspace_resources r ON r.id = a.resource_id \
             JOIN workspace_builds b ON b.job_id = r.job_id WHERE a.id = $1",
        )
        .bind(agent)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.0).ok_or(StoreError::NotFound)
    }

    /// Stored resources (with metadata, agents and apps) of the given jobs: two queries,
    /// whatever the number of jobs and resources.
    pub async fn resources_for_jobs(&self, job_ids: &[Uuid]) -> Result<Vec<ResourceRow>> {
        let rows: Vec<ResourceBase> = sqlx::query_as(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM workspace_resources r WHERE r.job_id = ANY($1) \
             ORDER BY r.job_id, r.display_order"
        ))
        .bind(job_ids)
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let agents = if ids.is_empty() {
            Vec::new()
        } else {
            self.agents_where("resource_id", &ids).await?
        };
        Ok(assemble_resources(rows, agents))
    }

    pub async fn job_timings(&self, job_ids: &[Uuid]) -> Result<Vec<(Uuid, Timing)>> {
        let rows: Vec<TimingRow> = sqlx::query_as(
            "SELECT job_id, started_at, ended_at, stage, source, action, resource FROM provisioner_job_timings \
             WHERE job_id = ANY($1) ORDER BY started_at",
        )
        .bind(job_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |TimingRow {
                     job_id,
                     started_at,
                     ended_at,
                     stage,
                     source,
                     action,
                     resource,
                 }| {
                    (
                        job_id,
                        Timing {
                            stage,
                            source,
                            action,
                            resource,
                            started_at,
                            ended_at,
                        },
                    )
                },
            )
            .collect())
    }

    // -- daemons -----------------------------------------------------------------------------

    pub async fn register_daemon(&self, d: NewDaemon<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO provisioner_daemons (id, created_at, name, provisioners, tags, last_seen_at, version, api_version) \
             VALUES ($1, now(), $2, $3::provisioner_type[], $4, now(), $5, '1.0')",
        )
        .bind(d.id)
        .bind(d.name)
        .bind(d.provisioners)
        .bind(Json(d.tags))
        .bind(d.version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn daemon_seen(&self, id: Uuid) -> Result<()> {
        sqlx::query("UPDATE provisioner_daemons SET last_seen_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes daemons registered and last seen before `before` (upstream's purge keeps a
    /// week); answers how many went.
    pub async fn delete_old_daemons(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM provisioner_daemons WHERE created_at < $1 AND last_seen_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    pub async fn delete_daemon(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM provisioner_daemons WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Daemons serving an organization (built-in daemons serve all), most recently seen first.
    pub async fn list_daemons(&self, org: Uuid) -> Result<Vec<DaemonRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DAEMON_COLUMNS} FROM provisioner_daemons \
             WHERE organization_id IS NULL OR organization_id = $1 ORDER BY last_seen_at DESC, name"
        ))
        .bind(org)
        .fetch_all(&self.pool)
        .await?)
    }
}

async fn insert_resources(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job_id: Uuid,
    transition: &str,
    resources: &[Resource],
) -> Result<()> {
    for (i, r) in resources.iter().enumerate() {
        let rid = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO workspace_resources (id, created_at, job_id, transition, type, name, hide, icon, daily_cost, display_order) \
             VALUES ($1, now(), $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(rid)
        .bind(job_id)
        .bind(transition)
        .bind(&r.kind)
        .bind(&r.name)
        .bind(r.hide)
        .bind(&r.icon)
        .bind(r.daily_cost)
        .bind(i as i32)
        .execute(&mut **tx)
        .await?;
        for (j, m) in r.metadata.iter().enumerate() {
            sqlx::query(
                "INSERT INTO workspace_resource_metadata (workspace_resource_id, key, value, sensitive, display_order) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workspace_resource_id, key) DO UPDATE SET value = EXCLUDED.value",
            )
            .bind(rid)
            .bind(&m.key)
            .bind(&m.value)
            .bind(m.sensitive)
            .bind(j as i32)
            .execute(&mut **tx)
            .await?;
        }
        for (j, a) in r.agents.iter().enumerate() {
            let aid = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO workspace_agents (id, created_at, updated_at, resource_id, name, auth_token, operating_system, \
                     architecture, directory, connection_timeout_seconds, troubleshooting_url, display_order, display_apps) \
                 VALUES ($1, now(), now(), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(aid)
            .bind(rid)
            .bind(&a.name)
            .bind(a.auth_token.unwrap_or_else(Uuid::new_v4))
            .bind(&a.operating_system)
            .bind(&a.architecture)
            .bind(&a.directory)
            .bind(if a.connection_timeout_seconds > 0 { a.connection_timeout_seconds } else { 120 })
            .bind(&a.troubleshooting_url)
            .bind(j as i32)
            .bind(a.display_apps.clone().unwrap_or_else(|| {
                crate::model::DEFAULT_DISPLAY_APPS.map(String::from).to_vec()
            }))
            .execute(&mut **tx)
            .await?;
            for (k, sc) in a.scripts.iter().enumerate() {
                let source = Uuid::new_v4();
                let name = if sc.display_name.is_empty() {
                    "Script"
                } else {
                    sc.display_name.as_str()
                };
                sqlx::query(
                    "INSERT INTO workspace_agent_log_sources (workspace_agent_id, id, created_at, display_name, icon) \
                     VALUES ($1, $2, now(), $3, $4)",
                )
                .bind(aid)
                .bind(source)
                .bind(name)
                .bind(&sc.icon)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "INSERT INTO workspace_agent_scripts (workspace_agent_id, id, log_source_id, created_at, \
                         display_name, script, cron, log_path, run_on_start, run_on_stop, start_blocks_login, \
                         timeout_seconds, display_order) \
                     VALUES ($1, $2, $3, now(), $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(aid)
                .bind(Uuid::new_v4())
                .bind(source)
                .bind(name)
                .bind(&sc.script)
                .bind(&sc.cron)
                .bind(&sc.log_path)
                .bind(sc.run_on_start)
                .bind(sc.run_on_stop)
                .bind(sc.start_blocks_login)
                .bind(sc.timeout_seconds)
                .bind(k as i32)
                .execute(&mut **tx)
                .await?;
            }
            for (k, m) in a.metadata.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO workspace_agent_metadata (workspace_agent_id, key, display_name, script, \
                         interval_seconds, timeout_seconds, display_order) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(aid)
                .bind(&m.key)
                .bind(&m.display_name)
                .bind(&m.script)
                .bind(if m.interval_seconds > 0 { m.interval_seconds } else { 10 })
                .bind(if m.timeout_seconds > 0 { m.timeout_seconds } else { 10 })
                .bind(k as i32)
                .execute(&mut **tx)
                .await?;
            }
            for (k, app) in a.apps.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO workspace_apps (id, created_at, agent_id, slug, display_name, icon, command, url, external, \
                         subdomain, sharing_level, hidden, open_in, display_order, healthcheck_url, \
                         healthcheck_interval, healthcheck_threshold, health) \
                     VALUES ($1, now(), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                )
                .bind(Uuid::new_v4())
                .bind(aid)
                .bind(&app.slug)
                .bind(&app.display_name)
                .bind(&app.icon)
                .bind(&app.command)
                .bind(&app.url)
                .bind(app.external)
                .bind(app.subdomain)
                .bind(if app.sharing_level.is_empty() { "owner" } else { app.sharing_level.as_str() })
                .bind(app.hidden)
                .bind(if app.open_in.is_empty() { "slim-window" } else { app.open_in.as_str() })
                .bind(k as i32)
                .bind(&app.healthcheck.url)
                .bind(app.healthcheck.interval)
                .bind(app.healthcheck.threshold)
                .bind(if app.healthcheck.url.is_empty() { "disabled" } else { "initializing" })
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}

/// The new state of a workspace build that failed or was canceled, when its provisioner
/// reported one: the infrastructure may have changed before it stopped. Jobs that are not
/// workspace builds have no build row, so nothing is written for them.
async fn store_unsuccessful_state(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job_id: Uuid,
    state: Option<&[u8]>,
) -> Result<()> {
    let Some(state) = state else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE workspace_builds SET provisioner_state = $2, updated_at = now() WHERE job_id = $1",
    )
    .bind(job_id)
    .bind(state)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_timings(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job_id: Uuid,
    timings: &[Timing],
) -> Result<()> {
    for t in timings {
        sqlx::query(
            "INSERT INTO provisioner_job_timings (job_id, started_at, ended_at, stage, source, action, resource) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(job_id)
        .bind(t.started_at)
        .bind(t.ended_at)
        .bind(&t.stage)
        .bind(&t.source)
        .bind(&t.action)
        .bind(&t.resource)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn store_import(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    p: &ImportProduct<'_>,
) -> Result<()> {
    sqlx::query("UPDATE template_versions SET readme = $2, updated_at = now() WHERE id = $1")
        .bind(p.template_version_id)
        .bind(p.readme)
        .execute(&mut **tx)
        .await?;
    for (i, v) in p.variables.iter().enumerate() {
        sqlx::query(
            "INSERT INTO template_version_variables (template_version_id, display_order, name, description, type, \
                 value, default_value, required, sensitive) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(p.template_version_id)
        .bind(i as i32)
        .bind(&v.name)
        .bind(&v.description)
        .bind(if v.kind.is_empty() { "string" } else { v.kind.as_str() })
        .bind(&v.value)
        .bind(&v.default_value)
        .bind(v.required)
        .bind(v.sensitive)
        .execute(&mut **tx)
        .await?;
    }
    for (i, prm) in p.parameters.iter().enumerate() {
        sqlx::query(
            "INSERT INTO template_version_parameters (template_version_id, display_order, name, display_name, \
                 description, type, form_type, mutable, default_value, icon, options, validation_regex, \
                 validation_min, validation_max, validation_error, validation_monotonic, required, ephemeral) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(p.template_version_id)
        .bind(i as i32)
        .bind(&prm.name)
        .bind(&prm.display_name)
        .bind(&prm.description)
        .bind(if prm.kind.is_empty() { "string" } else { prm.kind.as_str() })
        .bind(&prm.form_type)
        .bind(prm.mutable)
        .bind(&prm.default_value)
        .bind(&prm.icon)
        .bind(Json(&prm.options))
        .bind(&prm.validation_regex)
        .bind(prm.validation_min)
        .bind(prm.validation_max)
        .bind(&prm.validation_error)
        .bind(&prm.validation_monotonic)
        .bind(prm.required)
        .bind(prm.ephemeral)
        .execute(&mut **tx)
        .await?;
    }
    for (i, preset) in p.presets.iter().enumerate() {
        sqlx::query(
            "INSERT INTO template_version_presets (id, template_version_id, display_order, name, description, \
                 icon, is_default, parameters) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(Uuid::new_v4())
        .bind(p.template_version_id)
        .bind(i as i32)
        .bind(&preset.name)
        .bind(&preset.description)
        .bind(&preset.icon)
        .bind(preset.default)
        .bind(Json(&preset.parameters))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct JobClock {
    started_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

/// A resource's columns (alias `r`), its metadata as JSON.
pub(crate) const RESOURCE_COLUMNS: &str = "r.id, r.created_at, r.job_id, r.transition, \
    r.type AS kind, r.name, r.hide, r.icon, r.daily_cost, \
    COALESCE((SELECT json_agg(json_build_object('key', m.key, 'value', m.value, \
        'sensitive', m.sensitive) ORDER BY m.display_order) \
        FROM workspace_resource_metadata m WHERE m.workspace_resource_id = r.id), \
        '[]'::json) AS metadata";

/// An agent's columns (alias `a`), without its apps.
pub(crate) const AGENT_COLUMNS: &str = "a.id, a.created_at, a.updated_at, a.resource_id, a.name, \
    a.operating_system, a.architecture, a.directory, a.connection_timeout_seconds, \
    a.troubleshooting_url, a.first_connected_at, a.last_connected_at, a.disconnected_at, \
    a.lifecycle_state, a.version, a.api_version, a.expanded_directory, a.subsystems, \
    a.started_at, a.ready_at, a.logs_length, a.logs_overflowed, a.display_apps";

/// The apps of agent `a`, as a JSON array of [`AppRow`]s.
pub(crate) const AGENT_APPS: &str = "COALESCE((SELECT json_agg(json_build_object('id', p.id, \
    'agent_id', p.agent_id, 'slug', p.slug, 'display_name', p.display_name, 'icon', p.icon, \
    'command', p.command, 'url', p.url, 'external', p.external, 'subdomain', p.subdomain, \
    'sharing_level', p.sharing_level, 'hidden', p.hidden, 'open_in', p.open_in, \
    'health', p.health, 'healthcheck_url', p.healthcheck_url, \
    'healthcheck_interval', p.healthcheck_interval, \
    'healthcheck_threshold', p.healthcheck_threshold) ORDER BY p.display_order) \
    FROM workspace_apps p WHERE p.agent_id = a.id), '[]'::json)";

/// Resources (in their order) with their agents (in theirs).
pub(crate) fn assemble_resources(
    rows: Vec<ResourceBase>,
    agents: Vec<AgentRow>,
) -> Vec<ResourceRow> {
    let mut agents_by_res: HashMap<Uuid, Vec<AgentRow>> = HashMap::new();
    for a in agents {
        agents_by_res.entry(a.resource_id).or_default().push(a);
    }
    rows.into_iter()
        .map(|r| ResourceRow {
            id: r.id,
            created_at: r.created_at,
            job_id: r.job_id,
            transition: r.transition,
            resource: Resource {
                name: r.name,
                kind: r.kind,
                hide: r.hide,
                icon: r.icon,
                daily_cost: r.daily_cost,
                metadata: r.metadata.0,
                agents: Vec::new(),
            },
            agents: agents_by_res.remove(&r.id).unwrap_or_default(),
        })
        .collect()
}

#[derive(sqlx::FromRow, serde::Deserialize)]
pub(crate) struct ResourceBase {
    id: Uuid,
    created_at: DateTime<Utc>,
    job_id: Uuid,
    transition: String,
    kind: String,
    name: String,
    hide: bool,
    icon: String,
    daily_cost: i32,
    metadata: Json<Vec<crate::model::ResourceMetadata>>,
}

#[derive(sqlx::FromRow)]
struct AgentWithApps {
    #[sqlx(flatten)]
    agent: AgentRow,
    apps_json: Json<Vec<AppRow>>,
}

#[derive(sqlx::FromRow)]
struct TimingRow {
    job_id: Uuid,
    started_at: DateTime<Utc>,
    ended_at: DateTime<Utc>,
    stage: String,
    source: String,
    action: String,
    resource: String,
}
