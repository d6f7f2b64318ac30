//! A provisioner job's log: what its daemon (and the reaper) appended, read back in order.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::status::LogLevel;
use crate::{Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogRow {
    pub id: i64,
    pub job_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub source: String,
    pub level: LogLevel,
    pub stage: String,
    pub output: String,
}

/// A log line to append.
pub struct NewLog<'a> {
    pub level: &'a str,
    pub stage: &'a str,
    pub output: &'a str,
}

fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Store {
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
        let levels: Vec<LogLevel> = logs.iter().map(|l| LogLevel::or_info(l.level)).collect();
        let stages: Vec<&str> = logs.iter().map(|l| clip(l.stage, 128)).collect();
        let outputs: Vec<&str> = logs.iter().map(|l| clip(l.output, 1024)).collect();
        let ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO provisioner_job_logs (job_id, created_at, source, level, stage, output) \
             SELECT $1, clock_timestamp(), $2::log_source, l.level, l.stage, l.output \
             FROM unnest($3::log_level[], $4::text[], $5::text[]) WITH ORDINALITY AS l(level, stage, output, n) \
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
            "SELECT id, job_id, created_at, source::text AS source, level, stage, output \
             FROM provisioner_job_logs WHERE job_id = $1 AND id > $2 ORDER BY id",
        )
        .bind(job_id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?)
    }
}
