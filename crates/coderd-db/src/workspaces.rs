//! Workspaces and their builds (with build parameters and provisioner state).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::jobs::{insert_job, NewJob};
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct WorkspaceRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub owner_id: Uuid,
    pub organization_id: Uuid,
    pub template_id: Uuid,
    pub deleted: bool,
    pub name: String,
    pub autostart_schedule: Option<String>,
    pub ttl: Option<i64>,
    pub last_used_at: DateTime<Utc>,
    pub dormant_at: Option<DateTime<Utc>>,
    pub deleting_at: Option<DateTime<Utc>>,
    pub automatic_updates: String,
    pub favorite: bool,
    pub next_start_at: Option<DateTime<Utc>>,
    pub user_acl: Json<HashMap<Uuid, String>>,
    pub group_acl: Json<HashMap<Uuid, String>>,
}

pub(crate) const WS_COLUMNS: &str = "w.id, w.created_at, w.updated_at, w.owner_id, w.organization_id, w.template_id, \
    w.deleted, w.name, w.autostart_schedule, w.ttl, w.last_used_at, w.dormant_at, w.deleting_at, \
    w.automatic_updates::text AS automatic_updates, w.favorite, w.next_start_at, w.user_acl, w.group_acl";

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct BuildRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub workspace_id: Uuid,
    pub template_version_id: Uuid,
    pub build_number: i32,
    pub transition: String,
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
    b.build_number, b.transition::text AS transition, b.initiator_id, b.job_id, b.deadline, b.max_deadline, \
    b.reason::text AS reason, b.daily_cost, b.template_version_preset_id, \
    COALESCE((SELECT j.completed_at IS NOT NULL FROM provisioner_jobs j WHERE j.id = b.job_id), false) AS job_done";

pub struct NewWorkspace<'a> {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub organization_id: Uuid,
    pub template_id: Uuid,
    pub name: &'a str,
    pub autostart_schedule: Option<&'a str>,
    pub ttl: Option<i64>,
    pub automatic_updates: &'a str,
    pub next_start_at: Option<DateTime<Utc>>,
}

/// A build to queue; `state: None` carries the previous build's state over.
pub struct NewBuild<'a> {
    pub id: Uuid,
    pub template_version_id: Uuid,
    pub transition: &'a str,
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

/// Filters of `GET /workspaces?q=`, and the caller's visibility.
#[derive(Debug, Default, Clone)]
pub struct WorkspaceFilter {
    pub owner_id: Option<Uuid>,
    pub owner_username: Option<String>,
    pub template_names: Vec<String>,
    /// Case-insensitive substring.
    pub name: Option<String>,
    pub ids: Vec<Uuid>,
    pub statuses: Vec<String>,
    pub has_agent: Option<String>,
    pub dormant: Option<bool>,
    pub outdated: Option<bool>,
    pub last_used_before: Option<DateTime<Utc>>,
    pub last_used_after: Option<DateTime<Utc>>,
    pub organization_id: Option<Uuid>,
    /// (name, optional value) pairs that the latest build's parameters must match.
    pub params: Vec<(String, Option<String>)>,
    /// Whether the workspace is shared with any user or group.
    pub shared: Option<bool>,
    pub shared_with_user: Option<Uuid>,
    pub shared_with_group: Option<Uuid>,
    /// Nothing can match (e.g. asking for AI tasks, which no build here has).
    pub match_none: bool,
    /// `None`: every workspace. `Some`: owned by `viewer`, in `orgs`, or shared with them.
    pub visible: Option<WorkspaceVisibility>,
    /// Whose favorites sort first.
    pub requester: Uuid,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Default, Clone)]
pub struct WorkspaceVisibility {
    pub viewer: Uuid,
    /// Organizations whose workspaces the viewer may all read.
    pub orgs: Vec<Uuid>,
    pub groups: Vec<Uuid>,
}

/// What a daemon needs to run a workspace build.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BuildContext {
    pub build_id: Uuid,
    pub build_number: i32,
    pub transition: String,
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
    #[sqlx(skip)]
    pub parameters: Vec<(String, String)>,
}

/// What a finished build writes back, in the transaction that completes its job.
#[derive(Clone)]
pub struct BuildProduct<'a> {
    pub build_id: Uuid,
    pub workspace_id: Uuid,
    pub state: Option<&'a [u8]>,
    pub deadline: DateTime<Utc>,
    pub max_deadline: DateTime<Utc>,
    pub daily_cost: i32,
    pub delete_workspace: bool,
}

async fn insert_build_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    workspace_id: Uuid,
    number: i32,
    state: &[u8],
    b: &NewBuild<'_>,
    job: &NewJob<'_>,
) -> Result<()> {
    insert_job(tx, job).await?;
    sqlx::query(
        "INSERT INTO workspace_builds (id, created_at, updated_at, workspace_id, template_version_id, build_number, \
             transition, initiator_id, provisioner_state, job_id, reason, template_version_preset_id) \
         VALUES ($1, clock_timestamp(), clock_timestamp(), $2, $3, $4, $5::workspace_transition, $6, $7, $8, $9::build_reason, $10)",
    )
    .bind(b.id)
    .bind(workspace_id)
    .bind(b.template_version_id)
    .bind(number)
    .bind(b.transition)
    .bind(b.initiator_id)
    .bind(state)
    .bind(job.id)
    .bind(b.reason)
    .bind(b.preset_id)
    .execute(&mut **tx)
    .await?;
    let (names, values): (Vec<&str>, Vec<&str>) = b
        .parameters
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .unzip();
    sqlx::query(
        "INSERT INTO workspace_build_parameters (workspace_build_id, name, value) \
         SELECT $1, unnest($2::text[]), unnest($3::text[])",
    )
    .bind(b.id)
    .bind(&names)
    .bind(&values)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Creates a workspace and its first build (with the build's job) atomically.
    pub async fn insert_workspace(
        &self,
        w: NewWorkspace<'_>,
        b: NewBuild<'_>,
        job: NewJob<'_>,
    ) -> Result<WorkspaceRow> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO workspaces (id, created_at, updated_at, owner_id, organization_id, template_id, name, \
                 autostart_schedule, ttl, last_used_at, automatic_updates, next_start_at) \
             VALUES ($1, now(), now(), $2, $3, $4, $5, $6, $7, now(), $8::automatic_updates, $9)",
        )
        .bind(w.id)
        .bind(w.owner_id)
        .bind(w.organization_id)
        .bind(w.template_id)
        .bind(w.name)
        .bind(w.autostart_schedule)
        .bind(w.ttl)
        .bind(w.automatic_updates)
        .bind(w.next_start_at)
        .execute(&mut *tx)
        .await?;
        insert_build_tx(&mut tx, w.id, 1, b.state.unwrap_or_default(), &b, &job).await?;
        tx.commit().await?;
        self.workspace(w.id).await
    }

    /// Queues the next build of a workspace. The workspace row is locked first, so of several
    /// concurrent requests exactly one proceeds and the others see its build as active.
    pub async fn insert_build(
        &self,
        workspace_id: Uuid,
        b: NewBuild<'_>,
        job: NewJob<'_>,
    ) -> std::result::Result<BuildRow, BuildInsertError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT id FROM workspaces WHERE id = $1 FOR UPDATE")
            .bind(workspace_id)
            .fetch_one(&mut *tx)
            .await?;
        let latest: Option<(i32, Vec<u8>, String)> = sqlx::query_as(
            "SELECT b.build_number, b.provisioner_state, j.job_status::text FROM workspace_builds b \
             JOIN provisioner_jobs j ON j.id = b.job_id WHERE b.workspace_id = $1 \
             ORDER BY b.build_number DESC LIMIT 1",
        )
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (number, state) = match &latest {
            Some((_, _, status))
                if matches!(status.as_str(), "pending" | "running" | "canceling") =>
            {
                return Err(BuildInsertError::Active)
            }
            Some((n, state, _)) => (n + 1, b.state.unwrap_or(state)),
            None => (1, b.state.unwrap_or_default()),
        };
        insert_build_tx(&mut tx, workspace_id, number, state, &b, &job).await?;
        tx.commit().await?;
        Ok(self.build(b.id).await?)
    }

    pub async fn workspace(&self, id: Uuid) -> Result<WorkspaceRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {WS_COLUMNS} FROM workspaces w WHERE w.id = $1"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn workspaces_by_ids(&self, ids: &[Uuid]) -> Result<Vec<WorkspaceRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {WS_COLUMNS} FROM workspaces w WHERE w.id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The owner's workspace by name: the live one, or with `include_deleted` the newest.
    pub async fn workspace_by_owner_and_name(
        &self,
        owner: Uuid,
        name: &str,
        include_deleted: bool,
    ) -> Result<WorkspaceRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {WS_COLUMNS} FROM workspaces w WHERE w.owner_id = $1 AND lower(w.name) = lower($2) \
               AND ($3 OR NOT w.deleted) ORDER BY w.deleted, w.created_at DESC LIMIT 1"
        ))
        .bind(owner)
        .bind(name)
        .bind(include_deleted)
        .fetch_one(&self.pool)
        .await?)
    }

    /// One page of workspaces matching `f`, in Coder's order, and how many match in all.
    pub async fn list_workspaces(&self, f: &WorkspaceFilter) -> Result<(Vec<WorkspaceRow>, i64)> {
        // The latest build and its job are joined only for the filters that need them: the
        // order reads the stored `latest_build_running` (migration 0012), so a page does not
        // need every workspace's latest build.
        let needs_build = !f.statuses.is_empty()
            || f.has_agent.is_some()
            || f.outdated.is_some()
            || !f.params.is_empty();
        let needs_template = needs_build || !f.template_names.is_empty();
        let mut qb = sqlx::QueryBuilder::new(format!(
            "SELECT {WS_COLUMNS}, count(*) OVER () AS total FROM workspaces w \
             JOIN users o ON o.id = w.owner_id{}{} WHERE NOT w.deleted",
            if needs_template {
                " JOIN templates t ON t.id = w.template_id"
            } else {
                ""
            },
            if needs_build {
                " LEFT JOIN workspace_latest_builds lb ON lb.workspace_id = w.id \
                  LEFT JOIN provisioner_jobs lj ON lj.id = lb.job_id"
            } else {
                ""
            },
        ));
        if let Some(v) = &f.visible {
            let groups: Vec<String> = v.groups.iter().map(Uuid::to_string).collect();
            qb.push(" AND (w.owner_id = ")
                .push_bind(v.viewer)
                .push(" OR w.organization_id = ANY(")
                .push_bind(v.orgs.clone())
                .push(") OR w.user_acl ? ")
                .push_bind(v.viewer.to_string())
                .push(" OR w.group_acl ?| ")
                .push_bind(groups)
                .push(")");
        }
        if let Some(id) = f.owner_id {
            qb.push(" AND w.owner_id = ").push_bind(id);
        }
        if let Some(name) = &f.owner_username {
            qb.push(" AND lower(o.username) = lower(")
                .push_bind(name.clone())
                .push(")");
        }
        if !f.template_names.is_empty() {
            let names: Vec<String> = f.template_names.iter().map(|n| n.to_lowercase()).collect();
            qb.push(" AND lower(t.name) = ANY(")
                .push_bind(names)
                .push(")");
        }
        if let Some(name) = &f.name {
            qb.push(" AND w.name ILIKE '%' || ")
                .push_bind(name.clone())
                .push(" || '%'");
        }
        if !f.ids.is_empty() {
            qb.push(" AND w.id = ANY(")
                .push_bind(f.ids.clone())
                .push(")");
        }
        if !f.statuses.is_empty() {
            qb.push(
                " AND (CASE WHEN lj.job_status = 'running' AND lb.transition = 'start' THEN 'starting' \
                  WHEN lj.job_status = 'running' AND lb.transition = 'stop' THEN 'stopping' \
                  WHEN lj.job_status = 'running' AND lb.transition = 'delete' THEN 'deleting' \
                  WHEN lj.job_status = 'succeeded' AND lb.transition = 'start' THEN 'running' \
                  WHEN lj.job_status = 'succeeded' AND lb.transition = 'stop' THEN 'stopped' \
                  WHEN lj.job_status = 'succeeded' AND lb.transition = 'delete' THEN 'deleted' \
                  ELSE lj.job_status::text END) = ANY(",
            )
            .push_bind(f.statuses.clone())
            .push(")");
        }
        if let Some(status) = &f.has_agent {
            qb.push(
                " AND EXISTS (SELECT 1 FROM workspace_resources r JOIN workspace_agents a ON a.resource_id = r.id \
                  WHERE r.job_id = lb.job_id AND (CASE \
                    WHEN a.first_connected_at IS NULL AND a.connection_timeout_seconds > 0 \
                         AND now() - a.created_at > a.connection_timeout_seconds * interval '1 second' THEN 'timeout' \
                    WHEN a.first_connected_at IS NULL THEN 'connecting' \
                    WHEN a.disconnected_at IS NOT NULL THEN 'disconnected' \
                    ELSE 'connected' END) = ",
            )
            .push_bind(status.clone())
            .push(")");
        }
        if let Some(d) = f.dormant {
            qb.push(if d {
                " AND w.dormant_at IS NOT NULL"
            } else {
                " AND w.dormant_at IS NULL"
            });
        }
        if let Some(o) = f.outdated {
            qb.push(if o {
                " AND lb.template_version_id <> t.active_version_id"
            } else {
                " AND lb.template_version_id = t.active_version_id"
            });
        }
        if let Some(t) = f.last_used_before {
            qb.push(" AND w.last_used_at < ").push_bind(t);
        }
        if let Some(t) = f.last_used_after {
            qb.push(" AND w.last_used_at > ").push_bind(t);
        }
        if let Some(org) = f.organization_id {
            qb.push(" AND w.organization_id = ").push_bind(org);
        }
        if let Some(shared) = f.shared {
            qb.push(" AND (w.user_acl <> '{}'::jsonb OR w.group_acl <> '{}'::jsonb) = ")
                .push_bind(shared);
        }
        if let Some(user) = f.shared_with_user {
            qb.push(" AND w.user_acl ? ").push_bind(user.to_string());
        }
        if let Some(group) = f.shared_with_group {
            qb.push(" AND w.group_acl ? ").push_bind(group.to_string());
        }
        if f.match_none {
            qb.push(" AND false");
        }
        for (name, value) in &f.params {
            qb.push(" AND EXISTS (SELECT 1 FROM workspace_build_parameters p WHERE p.workspace_build_id = lb.id AND p.name = ")
                .push_bind(name.clone());
            if let Some(v) = value {
                qb.push(" AND p.value = ").push_bind(v.clone());
            }
            qb.push(")");
        }
        qb.push(" ORDER BY (w.owner_id = ")
            .push_bind(f.requester)
            .push(
                " AND w.favorite) DESC, \
                 w.latest_build_running DESC, \
                 lower(o.username), lower(w.name)",
            );
        if f.limit > 0 {
            qb.push(" LIMIT ").push_bind(f.limit);
        }
        if f.offset > 0 {
            qb.push(" OFFSET ").push_bind(f.offset);
        }
        let rows: Vec<(WorkspaceRow, i64)> = qb
            .build()
            .try_map(|row: sqlx::postgres::PgRow| {
                use sqlx::{FromRow, Row};
                Ok((
                    WorkspaceRow::from_row(&row)?,
                    row.try_get::<i64, _>("total")?,
                ))
            })
            .fetch_all(&self.pool)
            .await?;
        let total = match rows.first() {
            Some((_, t)) => *t,
            None if f.offset > 0 => {
                let mut g = f.clone();
                g.offset = 0;
                g.limit = 0;
                return Box::pin(self.list_workspaces(&g))
                    .await
                    .map(|(_, t)| (Vec::new(), t));
            }
            None => 0,
        };
        Ok((rows.into_iter().map(|(w, _)| w).collect(), total))
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

    pub async fn build_context(&self, build_id: Uuid) -> Result<BuildContext> {
        let mut ctx: BuildContext = sqlx::query_as(
            "SELECT b.id AS build_id, b.build_number, b.transition::text AS transition, b.provisioner_state AS state, \
                 w.id AS workspace_id, w.name AS workspace_name, o.id AS owner_id, o.username AS owner_name, \
                 o.email AS owner_email, t.id AS template_id, t.name AS template_name, v.name AS template_version, v.id AS template_version_id, \
                 w.ttl, w.autostart_schedule, t.default_ttl AS template_default_ttl, \
                 t.allow_user_autostop AS template_allow_user_autostop, t.autostop_requirement_days_of_week, \
                 t.autostop_requirement_weeks, o.quiet_hours_schedule AS owner_quiet_hours \
             FROM workspace_builds b JOIN workspaces w ON w.id = b.workspace_id JOIN users o ON o.id = w.owner_id \
             JOIN templates t ON t.id = w.template_id JOIN template_versions v ON v.id = b.template_version_id \
             WHERE b.id = $1",
        )
        .bind(build_id)
        .fetch_one(&self.pool)
        .await?;
        ctx.parameters = self
            .build_parameters(&[build_id])
            .await?
            .remove(&build_id)
            .unwrap_or_default();
        Ok(ctx)
    }

    // -- workspace settings ------------------------------------------------------------------

    pub async fn rename_workspace(&self, id: Uuid, name: &str) -> Result<()> {
        self.exec_ws(
            "UPDATE workspaces SET name = $2, updated_at = now() WHERE id = $1",
            id,
            name,
        )
        .await
    }

    pub async fn set_autostart(
        &self,
        id: Uuid,
        schedule: Option<&str>,
        next: Option<DateTime<Utc>>,
    ) -> Result<()> {
        sqlx::query("UPDATE workspaces SET autostart_schedule = $2, next_start_at = $3, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(schedule)
            .bind(next)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_ttl(&self, id: Uuid, ttl: Option<i64>) -> Result<()> {
        sqlx::query("UPDATE workspaces SET ttl = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(ttl)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_automatic_updates(&self, id: Uuid, value: &str) -> Result<()> {
        self.exec_ws(
            "UPDATE workspaces SET automatic_updates = $2::automatic_updates, updated_at = now() WHERE id = $1",
            id,
            value,
        )
        .await
    }

    /// Dormant on (with the time it will be deleted, if the template deletes dormant
    /// workspaces) or off (also counting as use).
    pub async fn set_dormant(
        &self,
        id: Uuid,
        dormant: bool,
        deleting_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE workspaces SET dormant_at = CASE WHEN $2 THEN COALESCE(dormant_at, now()) END, \
                 deleting_at = CASE WHEN $2 THEN $3 END, \
                 last_used_at = CASE WHEN $2 THEN last_used_at ELSE now() END, \
                 next_start_at = CASE WHEN $2 THEN NULL ELSE next_start_at END, updated_at = now() \
             WHERE id = $1",
        )
        .bind(id)
        .bind(dormant)
        .bind(deleting_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_favorite(&self, id: Uuid, favorite: bool) -> Result<()> {
        sqlx::query("UPDATE workspaces SET favorite = $2 WHERE id = $1")
            .bind(id)
            .bind(favorite)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_workspace_acl(
        &self,
        id: Uuid,
        users: &HashMap<Uuid, String>,
        groups: &HashMap<Uuid, String>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE workspaces SET user_acl = $2, group_acl = $3, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(Json(users))
        .bind(Json(groups))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records use, and bumps the latest build's deadline to `now + interval` as Coder's
    /// activity bump does: only for a running start build with a deadline, once at least 5% of
    /// the interval has passed, never backwards, never past its max deadline.
    pub async fn record_usage(&self, id: Uuid, interval_ns: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE workspaces SET last_used_at = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE workspace_builds b SET updated_at = now(), deadline = CASE \
                 WHEN b.max_deadline > '0001-01-02' THEN LEAST(GREATEST(b.deadline, now() + $2 * interval '1 microsecond'), b.max_deadline) \
                 ELSE GREATEST(b.deadline, now() + $2 * interval '1 microsecond') END \
             FROM provisioner_jobs j \
             WHERE b.id = (SELECT id FROM workspace_builds WHERE workspace_id = $1 ORDER BY build_number DESC LIMIT 1) \
               AND j.id = b.job_id AND j.job_status = 'succeeded' AND b.transition = 'start' \
               AND b.deadline > '0001-01-02' AND $2 > 0 \
               AND b.deadline - ($2 * 0.95) * interval '1 microsecond' < now()",
        )
        .bind(id)
        .bind(interval_ns / 1000)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_build_deadline(&self, build_id: Uuid, deadline: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE workspace_builds SET deadline = $2, updated_at = now() WHERE id = $1")
            .bind(build_id)
            .bind(deadline)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn template_has_workspaces(&self, template_id: Uuid) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM workspaces WHERE template_id = $1 AND NOT deleted)",
        )
        .bind(template_id)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn user_has_workspaces(&self, user_id: Uuid) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM workspaces WHERE owner_id = $1 AND NOT deleted)",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn exec_ws(&self, q: &str, id: Uuid, v: &str) -> Result<()> {
        sqlx::query(q).bind(id).bind(v).execute(&self.pool).await?;
        Ok(())
    }

    // -- template statistics -----------------------------------------------------------------

    /// p50/p95 build durations (ms) per transition over each template's finished, successful
    /// builds, and how many distinct users own its live workspaces.
    pub async fn template_stats(
        &self,
        template_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, TemplateStats>> {
        let durations: Vec<(Uuid, String, Option<f64>, Option<f64>)> = sqlx::query_as(
            "SELECT w.template_id, b.transition::text, \
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.completed_at - j.started_at) * 1000), \
                 percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM j.completed_at - j.started_at) * 1000) \
             FROM workspace_builds b JOIN workspaces w ON w.id = b.workspace_id JOIN provisioner_jobs j ON j.id = b.job_id \
             WHERE w.template_id = ANY($1) AND j.job_status = 'succeeded' AND j.started_at IS NOT NULL \
             GROUP BY w.template_id, b.transition",
        )
        .bind(template_ids)
        .fetch_all(&self.pool)
        .await?;
        let users: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT template_id, count(DISTINCT owner_id) FROM workspaces \
             WHERE template_id = ANY($1) AND NOT deleted GROUP BY template_id",
        )
        .bind(template_ids)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<Uuid, TemplateStats> = HashMap::new();
        for (t, transition, p50, p95) in durations {
            out.entry(t)
                .or_default()
                .build_ms
                .insert(transition, (p50.map(|v| v as i64), p95.map(|v| v as i64)));
        }
        for (t, n) in users {
            out.entry(t).or_default().active_users = n;
        }
        Ok(out)
    }

    /// Distinct users per day who used a workspace of the template (days in the given UTC
    /// offset), oldest first.
    pub async fn template_daus(
        &self,
        template_id: Uuid,
        tz_hours: i64,
    ) -> Result<Vec<(chrono::NaiveDate, i64)>> {
        Ok(sqlx::query_as(
            "SELECT ((last_used_at AT TIME ZONE 'UTC') + $2 * interval '1 hour')::date AS day, count(DISTINCT owner_id) \
             FROM workspaces WHERE template_id = $1 AND last_used_at > now() - interval '30 days' \
             GROUP BY day ORDER BY day",
        )
        .bind(template_id)
        .bind(tz_hours as f64)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[derive(Debug, Default, Clone)]
pub struct TemplateStats {
    /// transition → (p50, p95) in milliseconds.
    pub build_ms: HashMap<String, (Option<i64>, Option<i64>)>,
    pub active_users: i64,
}

pub(crate) async fn store_build(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    b: &BuildProduct<'_>,
) -> Result<()> {
    sqlx::query(
        "UPDATE workspace_builds SET provisioner_state = COALESCE($2, provisioner_state), deadline = $3, \
             max_deadline = $4, daily_cost = $5, updated_at = now() WHERE id = $1",
    )
    .bind(b.build_id)
    .bind(b.state)
    .bind(b.deadline)
    .bind(b.max_deadline)
    .bind(b.daily_cost)
    .execute(&mut **tx)
    .await?;
    if b.delete_workspace {
        sqlx::query("UPDATE workspaces SET deleted = true, updated_at = now() WHERE id = $1")
            .bind(b.workspace_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// What the lifecycle executor decides on, read fresh under the workspace's lock.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LifecycleCandidate {
    pub workspace_id: Uuid,
    pub owner_id: Uuid,
    pub owner_status: String,
    pub template_id: Uuid,
    pub autostart_schedule: Option<String>,
    pub dormant_at: Option<DateTime<Utc>>,
    pub deleting_at: Option<DateTime<Utc>>,
    pub last_used_at: DateTime<Utc>,
    pub automatic_updates: String,
    pub build_transition: Option<String>,
    pub build_created_at: Option<DateTime<Utc>>,
    pub build_deadline: Option<DateTime<Utc>>,
    pub build_template_version_id: Option<Uuid>,
    pub job_status: Option<String>,
    pub job_completed_at: Option<DateTime<Utc>>,
    pub allow_user_autostart: bool,
    pub autostart_allowed_days: Vec<String>,
    pub failure_ttl: i64,
    pub time_til_dormant: i64,
    pub time_til_dormant_autodelete: i64,
}

const CANDIDATE_FROM: &str = "workspaces w JOIN users o ON o.id = w.owner_id JOIN templates t ON t.id = w.template_id \
    LEFT JOIN workspace_latest_builds b ON b.workspace_id = w.id LEFT JOIN provisioner_jobs j ON j.id = b.job_id";

/// A session advisory lock on one workspace for the lifecycle executor; release it when done.
pub struct LifecycleLock {
    conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    key: String,
}

impl LifecycleLock {
    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
            .bind(&self.key)
            .execute(&mut *self.conn)
            .await;
    }
}

impl Store {
    /// Workspaces that may need an automatic build at `now` (the executor decides exactly).
    pub async fn lifecycle_candidates(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT w.id FROM {CANDIDATE_FROM} WHERE NOT w.deleted AND ( \
               (b.transition = 'start' AND j.job_status = 'succeeded' \
                  AND (o.status = 'suspended' OR (b.deadline > '0001-01-02' AND b.deadline <= $1))) \
               OR (b.transition = 'stop' AND j.job_status <> 'failed' AND w.autostart_schedule IS NOT NULL \
                  AND w.dormant_at IS NULL AND o.status <> 'suspended') \
               OR (b.transition = 'start' AND j.job_status = 'failed' AND t.failure_ttl > 0 \
                  AND j.completed_at + (t.failure_ttl / 1000) * interval '1 microsecond' <= $1) \
               OR (w.dormant_at IS NULL AND t.time_til_dormant > 0 \
                  AND w.last_used_at + (t.time_til_dormant / 1000) * interval '1 microsecond' <= $1) \
               OR (w.dormant_at IS NOT NULL AND w.deleting_at IS NOT NULL AND t.time_til_dormant_autodelete > 0 \
                  AND w.deleting_at <= $1)) \
             ORDER BY w.id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn lifecycle_candidate(&self, id: Uuid) -> Result<LifecycleCandidate> {
        Ok(sqlx::query_as(&format!(
            "SELECT w.id AS workspace_id, w.owner_id, o.status::text AS owner_status, w.template_id, \
                 w.autostart_schedule, w.dormant_at, w.deleting_at, w.last_used_at, \
                 w.automatic_updates::text AS automatic_updates, b.transition::text AS build_transition, \
                 b.created_at AS build_created_at, b.deadline AS build_deadline, \
                 b.template_version_id AS build_template_version_id, j.job_status::text AS job_status, \
                 j.completed_at AS job_completed_at, t.allow_user_autostart, t.autostart_allowed_days, \
                 t.failure_ttl, t.time_til_dormant, t.time_til_dormant_autodelete \
             FROM {CANDIDATE_FROM} WHERE w.id = $1 AND NOT w.deleted"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Takes the executor's lock on a workspace, or `None` if another executor holds it.
    pub async fn try_lifecycle_lock(&self, workspace: Uuid) -> Result<Option<LifecycleLock>> {
        let mut conn = self.pool.acquire().await?;
        let key = format!("lifecycle-executor:{workspace}");
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(&key)
            .fetch_one(&mut *conn)
            .await?;
        Ok(got.then_some(LifecycleLock { conn, key }))
    }

    pub async fn set_next_start(&self, id: Uuid, next: Option<DateTime<Utc>>) -> Result<()> {
        sqlx::query("UPDATE workspaces SET next_start_at = $2 WHERE id = $1")
            .bind(id)
            .bind(next)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    /// How many non-deleted workspaces' latest builds are in each job status (for /metrics).
    pub async fn latest_build_status_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT j.job_status::text, count(*) FROM workspaces w \
             JOIN workspace_latest_builds b ON b.workspace_id = w.id \
             JOIN provisioner_jobs j ON j.id = b.job_id \
             WHERE NOT w.deleted GROUP BY j.job_status",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many unfinished provisioner jobs are in each (provisioner, status), for /metrics.
    pub async fn active_job_counts(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT provisioner::text, job_status::text, count(*) FROM provisioner_jobs \
             WHERE job_status IN ('pending', 'running', 'canceling') \
             GROUP BY provisioner, job_status",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
