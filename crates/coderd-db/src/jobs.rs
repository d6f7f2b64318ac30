//! The provisioner job queue: enqueue, acquire (`FOR UPDATE SKIP LOCKED`), heartbeat,
//! cancellation and the reaper. What a finished job writes is in `job_results`, its logs in
//! `job_logs`, the daemons that run jobs in `provisioner_daemons`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::builds::{BuildContext, BUILD_CONTEXT_SELECT};
use crate::model::Timing;
use crate::status::JobStatus;
use crate::{Result, Store};

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
    pub status: JobStatus,
}

pub(crate) const JOB_COLUMNS: &str =
    "j.id, j.created_at, j.updated_at, j.started_at, j.canceled_at, \
    j.completed_at, j.error, j.error_code, j.organization_id, j.initiator_id, \
    j.provisioner::text AS provisioner, j.type::text AS job_type, j.input, j.worker_id, \
    (SELECT d.name FROM provisioner_daemons d WHERE d.id = j.worker_id) AS worker_name, \
    j.file_id, j.tags, j.logs_overflowed, j.job_status AS status";

/// A job a daemon claimed ([`Store::acquire_job`]) with, for a workspace build, the build's
/// context, read in the claiming statement.
#[derive(Debug)]
pub struct Acquired {
    pub job: JobRow,
    pub build: Option<BuildContext>,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for Acquired {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> std::result::Result<Self, sqlx::Error> {
        use sqlx::Row;
        let job = JobRow::from_row(row)?;
        let build = match row.try_get::<Option<Uuid>, _>("build_id")? {
            Some(_) => Some(BuildContext::from_row(row)?),
            None => None,
        };
        Ok(Acquired { job, build })
    }
}

/// SQL: `p` is a pending job in the queue of `job` (a row with a job's organization, provisioner
/// and tags; its provisioner as the enum or as text).
pub(crate) fn queued_with(p: &str, job: &str) -> String {
    format!(
        "{p}.job_status = 'pending' AND {p}.organization_id = {job}.organization_id \
         AND {p}.provisioner = {job}.provisioner::provisioner_type AND {p}.tags = {job}.tags"
    )
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Pending: canceled at once.
    Canceled,
    /// Running: marked canceling; its daemon stops it.
    Canceling,
    AlreadyCompleted,
    AlreadyCanceled,
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
    pub statuses: Vec<JobStatus>,
    pub tags: Option<BTreeMap<String, String>>,
    pub initiator: Option<Uuid>,
    pub limit: i64,
}

/// The insert of a job, its values `$1`…`$8` in the order [`insert_job`] binds them.
pub(crate) const INSERT_JOB: &str =
    "INSERT INTO provisioner_jobs AS j (id, created_at, updated_at, \
     organization_id, initiator_id, provisioner, type, input, file_id, tags) \
     VALUES ($1, clock_timestamp(), clock_timestamp(), $2, $3, $4::provisioner_type, \
             $5::provisioner_job_type, $6, $7, $8)";

/// Inserts a job; call inside the transaction that inserts the row owning it.
pub async fn insert_job(conn: &mut PgConnection, job: &NewJob<'_>) -> Result<()> {
    sqlx::query(INSERT_JOB)
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
               AND (cardinality($3::provisioner_job_status[]) = 0 OR j.job_status = ANY($3)) \
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
    /// jobs of the same organization, provisioner and tags. One job is answered with one pass
    /// over its queue's pending jobs (position and size counted together); several with one
    /// window pass per queue they are in (never the pending × daemons join upstream pays for).
    /// See benches/README.md.
    pub async fn queue_positions(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, (i64, i64)>> {
        let sql = match ids.len() {
            0 => return Ok(HashMap::new()),
            1 => format!(
                "SELECT j.id, q.position, q.size FROM provisioner_jobs j, LATERAL ( \
                     SELECT count(*) FILTER (WHERE (p.created_at, p.id) <= (j.created_at, j.id)) AS position, \
                            count(*) AS size \
                     FROM provisioner_jobs p WHERE {}) q \
                 WHERE j.id = ANY($1) AND j.job_status = 'pending'",
                queued_with("p", "j")
            ),
            _ => format!(
                "WITH wanted AS (SELECT id, organization_id, provisioner, tags FROM provisioner_jobs \
                                 WHERE id = ANY($1) AND job_status = 'pending'), \
                 queues AS (SELECT DISTINCT organization_id, provisioner, tags FROM wanted), \
                 ranked AS (SELECT p.id, \
                                row_number() OVER (PARTITION BY p.organization_id, p.provisioner, p.tags \
                                                   ORDER BY p.created_at, p.id) AS position, \
                                count(*) OVER (PARTITION BY p.organization_id, p.provisioner, p.tags) AS size \
                            FROM provisioner_jobs p JOIN queues q ON {}) \
                 SELECT r.id, r.position, r.size FROM ranked r JOIN wanted w ON w.id = r.id",
                queued_with("p", "q")
            ),
        };
        let rows: Vec<(Uuid, i64, i64)> =
            sqlx::query_as(&sql).bind(ids).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(id, pos, size)| (id, (pos, size)))
            .collect())
    }

    /// Claims the oldest pending job this daemon can run, or `None`. Concurrent daemons (in any
    /// process) never claim the same job: candidates locked by another claim are skipped. A
    /// build's workspace is announced as changed (it is running now: watchers that rendered it
    /// pending read it again, as upstream's AcquireJob publishes), and a build's context
    /// (what [`Store::build_context`] reads) comes with its job, all in one statement.
    pub async fn acquire_job(
        &self,
        daemon_id: Uuid,
        provisioners: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<Option<Acquired>> {
        Ok(sqlx::query_as(&format!(
            "WITH job AS ( \
                 UPDATE provisioner_jobs SET started_at = clock_timestamp(), updated_at = clock_timestamp(), \
                     worker_id = $1 \
                 WHERE id = (SELECT id FROM provisioner_jobs \
                             WHERE job_status = 'pending' \
                               AND provisioner::text = ANY($2) \
                               AND provisioner_tagset_contains($3, tags) \
                             ORDER BY created_at, id FOR UPDATE SKIP LOCKED LIMIT 1) \
                 RETURNING *), \
             daemon AS ( \
                 UPDATE provisioner_daemons SET current_job_id = (SELECT id FROM job), last_seen_at = now() \
                 WHERE id = $1 AND EXISTS (SELECT 1 FROM job)), \
             announced AS ( \
                 SELECT pg_notify($4, {changed}) FROM job \
                 JOIN workspace_builds b ON job.type = 'workspace_build' \
                     AND b.id = (job.input->>'workspace_build_id')::uuid \
                 JOIN workspaces w ON w.id = b.workspace_id) \
             SELECT {JOB_COLUMNS}, c.* FROM job j \
             LEFT JOIN LATERAL ({BUILD_CONTEXT_SELECT} WHERE j.type = 'workspace_build' \
                 AND b.id = (j.input->>'workspace_build_id')::uuid) c ON true \
             WHERE (SELECT count(*) FROM announced) >= 0",
            changed = crate::pubsub::workspace_changed_sql("w"),
        ))
        .bind(daemon_id)
        .bind(provisioners)
        .bind(Json(tags))
        .bind(crate::pubsub::PG_CHANNEL)
        .fetch_optional(&self.pool)
        .await?)
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
        sqlx::query(
            "UPDATE provisioner_daemons SET current_job_id = NULL WHERE id = $1 AND current_job_id = $2",
        )
        .bind(daemon)
        .bind(id)
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

    /// Cancels a job: a pending one ends at once, a running one becomes canceling. With
    /// `expect`, the job must currently be in that status (`Err(Some(status))` otherwise).
    pub async fn cancel_job(
        &self,
        id: Uuid,
        expect: Option<&str>,
    ) -> Result<Result<CancelOutcome, String>> {
        let mut tx = self.pool.begin().await?;
        let (status, worker): (JobStatus, Option<Uuid>) = sqlx::query_as(
            "SELECT job_status, worker_id FROM provisioner_jobs WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(expect) = expect {
            if expect != status.as_str() {
                return Ok(Err(status.as_str().to_string()));
            }
        }
        let outcome = match status {
            JobStatus::Succeeded | JobStatus::Failed => CancelOutcome::AlreadyCompleted,
            JobStatus::Canceled | JobStatus::Canceling => CancelOutcome::AlreadyCanceled,
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

    /// How many unfinished provisioner jobs are in each (provisioner, status), for /metrics.
    pub async fn active_job_counts(&self) -> Result<Vec<(String, JobStatus, i64)>> {
        Ok(sqlx::query_as(
            "SELECT provisioner::text, job_status, count(*) FROM provisioner_jobs \
             WHERE job_status = ANY($1) \
             GROUP BY provisioner, job_status",
        )
        .bind(
            JobStatus::ALL
                .iter()
                .copied()
                .filter(|s| s.is_active())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&self.pool)
        .await?)
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
}

#[derive(sqlx::FromRow)]
struct JobClock {
    started_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
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
