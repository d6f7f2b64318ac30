//! Workspace builds: queueing one (with its job), reading them, their parameters and
//! provisioner state, and what a daemon needs to run one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::jobs::{NewJob, INSERT_JOB, JOB_COLUMNS};
use crate::status::{JobStatus, Transition};
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct BuildRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub workspace_id: Uuid,
    pub template_version_id: Uuid,
    pub build_number: i32,
    pub transition: Transition,
    pub initiator_id: Uuid,
    pub job_id: Uuid,
    pub deadline: DateTime<Utc>,
    pub max_deadline: DateTime<Utc>,
    pub reason: String,
    pub daily_cost: i32,
    /// Whether the build's job had completed when this row was read. The job completes in the
    /// same transaction that writes the build's deadline and state, so a job read later that
    /// has completed while this is false means the row predates that write.
    pub job_done: bool,
    pub template_version_preset_id: Option<Uuid>,
}

pub(crate) const BUILD_COLUMNS: &str = "b.id, b.created_at, b.updated_at, b.workspace_id, b.template_version_id, \
    b.build_number, b.transition, b.initiator_id, b.job_id, b.deadline, b.max_deadline, \
    b.reason::text AS reason, b.daily_cost, b.template_version_preset_id, \
    COALESCE((SELECT j.completed_at IS NOT NULL FROM provisioner_jobs j WHERE j.id = b.job_id), false) AS job_done";

/// A build to queue; `state: None` carries the previous build's state over.
pub struct NewBuild<'a> {
    pub id: Uuid,
    pub template_version_id: Uuid,
    pub transition: Transition,
    pub initiator_id: Uuid,
    pub reason: &'a str,
    pub state: Option<&'a [u8]>,
    pub parameters: &'a [(String, String)],
    /// The preset the build was made with.
    pub preset_id: Option<Uuid>,
}

#[derive(Debug)]
pub enum BuildInsertError {
    /// The latest build's job is still pending, running or canceling.
    Active,
    Store(StoreError),
}

impl From<sqlx::Error> for BuildInsertError {
    fn from(e: sqlx::Error) -> Self {
        BuildInsertError::Store(e.into())
    }
}

impl From<StoreError> for BuildInsertError {
    fn from(e: StoreError) -> Self {
        BuildInsertError::Store(e)
    }
}

/// What a daemon needs to run a workspace build.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BuildContext {
    pub build_id: Uuid,
    pub build_number: i32,
    pub transition: Transition,
    pub state: Vec<u8>,
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub owner_id: Uuid,
    pub owner_name: String,
    pub owner_email: String,
    pub template_id: Uuid,
    pub template_name: String,
    pub template_version: String,
    pub template_version_id: Uuid,
    pub ttl: Option<i64>,
    pub autostart_schedule: Option<String>,
    pub template_default_ttl: i64,
    pub template_allow_user_autostop: bool,
    pub autostop_requirement_days_of_week: Vec<String>,
    pub autostop_requirement_weeks: i64,
    pub owner_quiet_hours: String,
    /// The build's parameters (name, value), in name order.
    #[sqlx(json)]
    pub parameters: Vec<(String, String)>,
    /// The version's template variables (name, value), in their order.
    #[sqlx(json)]
    pub variables: Vec<(String, String)>,
}

/// [`BuildContext`]'s columns, from `workspace_builds b` and what it names; the caller adds the
/// `WHERE` on `b`.
pub(crate) const BUILD_CONTEXT_SELECT: &str = "SELECT b.id AS build_id, b.build_number, b.transition, \
         b.provisioner_state AS state, \
         w.id AS workspace_id, w.name AS workspace_name, o.id AS owner_id, o.username AS owner_name, \
         o.email AS owner_email, t.id AS template_id, t.name AS template_name, v.name AS template_version, \
         v.id AS template_version_id, \
         w.ttl, w.autostart_schedule, t.default_ttl AS template_default_ttl, \
         t.allow_user_autostop AS template_allow_user_autostop, t.autostop_requirement_days_of_week, \
         t.autostop_requirement_weeks, o.quiet_hours_schedule AS owner_quiet_hours, \
         COALESCE((SELECT json_agg(json_build_array(p.name, p.value) ORDER BY p.name) \
                   FROM workspace_build_parameters p WHERE p.workspace_build_id = b.id), '[]') AS parameters, \
         COALESCE((SELECT json_agg(json_build_array(tv.name, tv.value) ORDER BY tv.display_order) \
                   FROM template_version_variables tv WHERE tv.template_version_id = v.id), '[]') AS variables \
     FROM workspace_builds b JOIN workspaces w ON w.id = b.workspace_id JOIN users o ON o.id = w.owner_id \
     JOIN templates t ON t.id = w.template_id JOIN template_versions v ON v.id = b.template_version_id";

/// The CTEs that queue a build: `job` and `build` (whose `RETURNING` have [`JOB_COLUMNS`]
/// and [`BUILD_COLUMNS`]) insert the build and its job, `params` its parameters, and
/// `announced` (to be referenced) publishes messages when the statement's transaction
/// commits. Their parameters are `$n`…`$n+19`, bound in order by [`bind_build`].
pub(crate) fn build_ctes(n: usize) -> String {
    let ctes = format!(
        "job AS ({INSERT_JOB} RETURNING {JOB_COLUMNS}), \
         build AS (INSERT INTO workspace_builds AS b (id, created_at, updated_at, workspace_id, template_version_id, \
             build_number, transition, initiator_id, provisioner_state, job_id, reason, template_version_preset_id) \
         VALUES ($9, clock_timestamp(), clock_timestamp(), $10, $11, $12, $13::workspace_transition, $14, $15, $1, \
             $16::build_reason, $17) \
         RETURNING {BUILD_COLUMNS}), \
         params AS (INSERT INTO workspace_build_parameters (workspace_build_id, name, value) \
             SELECT $9, unnest($18::text[]), unnest($19::text[])), \
         announced AS ({})",
        crate::pubsub::notify_each_sql(20, "true"),
    );
    shift_parameters(&ctes, n - 1)
}

/// `sql` with each parameter `$k` renumbered `$k+by` (for SQL put after other parameters).
fn shift_parameters(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match rest[..digits].parse::<usize>() {
            Ok(k) => out.push_str(&(k + by).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// Binds [`build_ctes`]'s parameters, after those already bound to `q`.
pub(crate) fn bind_build<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    workspace_id: Uuid,
    number: i32,
    state: &'q [u8],
    b: &NewBuild<'q>,
    job: &NewJob<'q>,
    announce: &[(&str, &str)],
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    let (names, values): (Vec<&'q str>, Vec<&'q str>) = b
        .parameters
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .unzip();
    q.bind(job.id)
        .bind(job.organization_id)
        .bind(job.initiator_id)
        .bind(job.provisioner)
        .bind(job.job_type)
        .bind(Json(job.input.clone()))
        .bind(job.file_id)
        .bind(Json(job.tags))
        .bind(b.id)
        .bind(workspace_id)
        .bind(b.template_version_id)
        .bind(number)
        .bind(b.transition)
        .bind(b.initiator_id)
        .bind(state)
        .bind(b.reason)
        .bind(b.preset_id)
        .bind(names)
        .bind(values)
        .bind(crate::pubsub::wire_messages(announce))
}

impl Store {
    /// Queues the next build of a workspace and publishes `announce` (channel, payload) when
    /// it commits. The workspace row is locked first, so of several concurrent requests
    /// exactly one proceeds and the others see its build as active.
    pub async fn insert_build(
        &self,
        workspace_id: Uuid,
        b: NewBuild<'_>,
        job: NewJob<'_>,
        announce: &[(&str, &str)],
    ) -> std::result::Result<BuildRow, BuildInsertError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT id FROM workspaces WHERE id = $1 FOR UPDATE")
            .bind(workspace_id)
            .fetch_one(&mut *tx)
            .await?;
        let latest: Option<(i32, Vec<u8>, JobStatus)> = sqlx::query_as(
            "SELECT b.build_number, b.provisioner_state, j.job_status FROM workspace_builds b \
             JOIN provisioner_jobs j ON j.id = b.job_id WHERE b.workspace_id = $1 \
             ORDER BY b.build_number DESC LIMIT 1",
        )
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (number, state) = match &latest {
            Some((_, _, status)) if status.is_active() => return Err(BuildInsertError::Active),
            Some((n, state, _)) => (n + 1, b.state.unwrap_or(state)),
            None => (1, b.state.unwrap_or_default()),
        };
        let sql = format!(
            "WITH {} SELECT * FROM build WHERE (SELECT count(*) FROM announced) >= 0",
            build_ctes(1)
        );
        let row: BuildRow = bind_build(
            sqlx::query_as(&sql),
            workspace_id,
            number,
            state,
            &b,
            &job,
            announce,
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Latest build of each given workspace.
    pub async fn latest_builds(&self, workspace_ids: &[Uuid]) -> Result<Vec<BuildRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {BUILD_COLUMNS} FROM workspace_latest_builds b WHERE b.workspace_id = ANY($1)"
        ))
        .bind(workspace_ids)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn build(&self, id: Uuid) -> Result<BuildRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {BUILD_COLUMNS} FROM workspace_builds b WHERE b.id = $1"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn builds_by_ids(&self, ids: &[Uuid]) -> Result<Vec<BuildRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {BUILD_COLUMNS} FROM workspace_builds b WHERE b.id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn build_by_job(&self, job_id: Uuid) -> Result<BuildRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {BUILD_COLUMNS} FROM workspace_builds b WHERE b.job_id = $1"
        ))
        .bind(job_id)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn build_by_number(&self, workspace_id: Uuid, number: i32) -> Result<BuildRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {BUILD_COLUMNS} FROM workspace_builds b WHERE b.workspace_id = $1 AND b.build_number = $2"
        ))
        .bind(workspace_id)
        .bind(number)
        .fetch_one(&self.pool)
        .await?)
    }

    /// A workspace's builds, newest first.
    pub async fn list_builds(
        &self,
        workspace_id: Uuid,
        after: Option<Uuid>,
        since: Option<DateTime<Utc>>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<BuildRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {BUILD_COLUMNS} FROM workspace_builds b WHERE b.workspace_id = $1 \
               AND ($2::uuid IS NULL OR b.build_number < (SELECT build_number FROM workspace_builds WHERE id = $2)) \
               AND ($3::timestamptz IS NULL OR b.created_at >= $3) \
             ORDER BY b.build_number DESC LIMIT NULLIF($4, 0) OFFSET $5"
        ))
        .bind(workspace_id)
        .bind(after)
        .bind(since)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Parameters of each given build, in name order.
    pub async fn build_parameters(
        &self,
        build_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<(String, String)>>> {
        let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
            "SELECT workspace_build_id, name, value FROM workspace_build_parameters \
             WHERE workspace_build_id = ANY($1) ORDER BY name",
        )
        .bind(build_ids)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<Uuid, Vec<(String, String)>> = HashMap::new();
        for (b, n, v) in rows {
            out.entry(b).or_default().push((n, v));
        }
        Ok(out)
    }

    pub async fn build_state(&self, build_id: Uuid) -> Result<Vec<u8>> {
        Ok(
            sqlx::query_scalar("SELECT provisioner_state FROM workspace_builds WHERE id = $1")
                .bind(build_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn set_build_state(&self, build_id: Uuid, state: &[u8]) -> Result<()> {
        sqlx::query(
            "UPDATE workspace_builds SET provisioner_state = $2, updated_at = now() WHERE id = $1",
        )
        .bind(build_id)
        .bind(state)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Everything a daemon needs to run build `build_id`, in one statement.
    pub async fn build_context(&self, build_id: Uuid) -> Result<BuildContext> {
        Ok(
            sqlx::query_as(&format!("{BUILD_CONTEXT_SELECT} WHERE b.id = $1"))
                .bind(build_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn set_build_deadline(&self, build_id: Uuid, deadline: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE workspace_builds SET deadline = $2, updated_at = now() WHERE id = $1")
            .bind(build_id)
            .bind(deadline)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many non-deleted workspaces' latest builds are in each job status (for /metrics).
    pub async fn latest_build_status_counts(&self) -> Result<Vec<(JobStatus, i64)>> {
        Ok(sqlx::query_as(
            "SELECT j.job_status, count(*) FROM workspaces w \
             JOIN workspace_latest_builds b ON b.workspace_id = w.id \
             JOIN provisioner_jobs j ON j.id = b.job_id \
             WHERE NOT w.deleted GROUP BY j.job_status",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_after_those_before() {
        assert_eq!(
            shift_parameters("VALUES ($1, $10, $2::text), '$x' $", 9),
            "VALUES ($10, $19, $11::text), '$x' $"
        );
        let ctes = build_ctes(10);
        assert!(ctes.contains("$10, clock_timestamp()") && ctes.contains("unnest($29::text[])"));
        assert!(!ctes.contains("$9,") && !ctes.contains("$30"), "{ctes}");
    }
}
