//! Workspaces: creation (with the first build), the listing and its filters, settings, usage,
//! template statistics, and what the lifecycle executor reads and locks.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::builds::{bind_build, build_ctes, BuildRow, NewBuild};
use crate::jobs::{JobRow, NewJob};
use crate::provisioner_daemons::{DaemonRow, DAEMON_COLUMNS};
use crate::status::{agent_status_sql, AgentStatus, BuildStatus, JobStatus, Transition};
use crate::{Result, Store};

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

/// Filters of `GET /workspaces?q=`, and the caller's visibility.
#[derive(Debug, Default, Clone)]
pub struct WorkspaceFilter {
    pub owner_id: Option<Uuid>,
    pub owner_username: Option<String>,
    pub template_names: Vec<String>,
    /// Case-insensitive substring.
    pub name: Option<String>,
    pub ids: Vec<Uuid>,
    pub statuses: Vec<BuildStatus>,
    pub has_agent: Option<AgentStatus>,
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

impl WorkspaceFilter {
    /// Whether the filter reads only the workspace row's keys, flags and name: not the latest
    /// build, its job, parameters or template, nor the time of last use.
    fn keys_and_flags_of_the_row(&self) -> bool {
        self.template_names.is_empty()
            && self.statuses.is_empty()
            && self.has_agent.is_none()
            && self.outdated.is_none()
            && self.params.is_empty()
            && self.last_used_before.is_none()
            && self.last_used_after.is_none()
    }
}

#[derive(Debug, Default, Clone)]
pub struct WorkspaceVisibility {
    pub viewer: Uuid,
    /// Organizations whose workspaces the viewer may all read.
    pub orgs: Vec<Uuid>,
    pub groups: Vec<Uuid>,
}

/// A workspace just created ([`Store::insert_workspace`]).
#[derive(Debug)]
pub struct CreatedWorkspace {
    pub workspace: WorkspaceRow,
    pub build: BuildRow,
    pub job: JobRow,
    /// The new job's queue's size, which is also its position: it is last.
    pub queue_size: i64,
    /// The daemons that could serve the job's organization, as `Store::list_daemons` has them.
    pub daemons: Vec<DaemonRow>,
}

impl Store {
    /// Creates a workspace with its first build (and the build's job and parameters) in one
    /// statement, and publishes `announce` (channel, payload) when it commits. Answers the
    /// rows as inserted, with what rendering the new job needs besides: its place in its
    /// queue and the daemons of its organization, read in the same statement.
    pub async fn insert_workspace(
        &self,
        w: NewWorkspace<'_>,
        b: NewBuild<'_>,
        job: NewJob<'_>,
        announce: &[(&str, &str)],
    ) -> Result<CreatedWorkspace> {
        // The statement's snapshot does not hold the job it inserts, and holds only jobs
        // committed before it began, all created earlier: the new job is last in its queue,
        // one after the pending jobs of that queue the snapshot holds (as
        // `Store::queue_positions` would count it a moment later, less what moved since).
        let sql = format!(
            "WITH ws AS ( \
                 INSERT INTO workspaces AS w (id, created_at, updated_at, owner_id, organization_id, template_id, name, \
                     autostart_schedule, ttl, last_used_at, automatic_updates, next_start_at) \
                 VALUES ($1, now(), now(), $2, $3, $4, $5, $6, $7, now(), $8::automatic_updates, $9) \
                 RETURNING {WS_COLUMNS}), \
             {} \
             SELECT to_jsonb(ws), to_jsonb(build), to_jsonb(job), \
                 (SELECT count(*) FROM provisioner_jobs p WHERE {queued}) + 1, \
                 (SELECT COALESCE(json_agg(d ORDER BY d.last_seen_at DESC, d.name), '[]') \
                  FROM (SELECT {DAEMON_COLUMNS} FROM provisioner_daemons \
                        WHERE organization_id IS NULL OR organization_id = job.organization_id) d) \
             FROM ws, build, job \
             WHERE (SELECT count(*) FROM announced) >= 0",
            build_ctes(10),
            queued = crate::jobs::queued_with("p", "job"),
        );
        let q = sqlx::query_as(&sql)
            .bind(w.id)
            .bind(w.owner_id)
            .bind(w.organization_id)
            .bind(w.template_id)
            .bind(w.name)
            .bind(w.autostart_schedule)
            .bind(w.ttl)
            .bind(w.automatic_updates)
            .bind(w.next_start_at);
        let state = b.state.unwrap_or_default();
        type Row = (
            Json<WorkspaceRow>,
            Json<BuildRow>,
            Json<JobRow>,
            i64,
            Json<Vec<DaemonRow>>,
        );
        let (ws, build, job, queue_size, daemons): Row =
            bind_build(q, w.id, 1, state, &b, &job, announce)
                .fetch_one(&self.pool)
                .await?;
        Ok(CreatedWorkspace {
            workspace: ws.0,
            build: build.0,
            job: job.0,
            queue_size,
            daemons: daemons.0,
        })
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

    /// The pool a page of `f` is read from: the one whose plans are generic when `f` matches
    /// by keys and flags only, whose best plan (the page-order index walked to `LIMIT`) does
    /// not depend on the values. PostgreSQL's default re-planned such a page on every
    /// execution: its generic estimate, which guesses a tenth of the table for `LIMIT $n`,
    /// never beats a custom plan's, so planning cost three times the execution
    /// (benches/README.md, `throughput`, run 10). A substring, a time range, a status or a
    /// parameter can change the best plan, and keeps the default; a substring's matches read
    /// first (`matches_first`) are the trigram index's, whatever the term.
    fn page_pool(&self, f: &WorkspaceFilter, matches_first: bool) -> &sqlx::PgPool {
        if (f.name.is_none() || matches_first) && f.keys_and_flags_of_the_row() {
            self.generic_pool()
        } else {
            &self.pool
        }
    }

    /// One page of workspaces matching `f`, in Coder's order, and how many match in all: two
    /// statements, run side by side, or one when the total is known (below).
    ///
    /// The order is the requester's favorites first, then workspaces whose latest build is a
    /// successful start, then the owner's username and the name, case-insensitively. After the
    /// favorites that is the index `workspaces_page_order_idx` (migration 0013), so the page is
    /// two index walks that stop after `offset + limit` matches each (the requester's
    /// favorites, everything else) merged; only the count reads every match.
    ///
    /// The count is kept in this process for filters on the workspace row alone
    /// ([`counts_key`]) and reused while the generations the page reads with its rows
    /// (migration 0014) are those it was counted under: then the page is one statement, and
    /// a total is never older than the page it comes with.
    pub async fn list_workspaces(&self, f: &WorkspaceFilter) -> Result<(Vec<WorkspaceRow>, i64)> {
        let walk = (f.limit > 0).then(|| f.limit + f.offset.max(0));
        // A total that may be reused reads the generations with the page, in its snapshot.
        let counted = counts_key(f);
        // A substring's page walks the page-order index filtering every row it passes: what
        // the table costs when few match, and PostgreSQL re-plans it each time. When the
        // total kept for the same search (however old: it only picks the plan) says the
        // matches are few, they are read first, through the trigram index, and the page is
        // ordered from them on a generic plan (benches/README.md, `throughput`, run 10).
        let matches_first = f.name.is_some()
            && counted
                .as_deref()
                .and_then(|k| self.counts.hint(k))
                .is_some_and(|n| n <= FEW_MATCHES);
        let mut page = sqlx::QueryBuilder::new("");
        if matches_first {
            page.push("WITH m AS MATERIALIZED (SELECT w.*");
            push_matches(&mut page, f);
            page.push(") ");
        }
        page.push("SELECT p.*");
        if counted.is_some() {
            page.push(format!(", {GENERATIONS} AS page_generations"));
        }
        page.push(" FROM (");
        for (rank, part) in [(0, " AND (w.owner_id = "), (1, " AND NOT (w.owner_id = ")] {
            if rank == 1 {
                page.push(" UNION ALL ");
            }
            page.push(format!(
                "(SELECT {WS_COLUMNS}, {rank} AS page_rank, w.latest_build_running AS page_running, \
                 lower(w.owner_username) AS page_owner, lower(w.name) AS page_name"
            ));
            if matches_first {
                page.push(" FROM m w WHERE true");
            } else {
                push_matches(&mut page, f);
            }
            page.push(part)
                .push_bind(f.requester)
                .push(
                    " AND w.favorite) ORDER BY w.latest_build_running DESC, \
                     lower(w.owner_username), lower(w.name), w.id LIMIT ",
                )
                .push_bind(walk)
                .push(")");
        }
        page.push(") p ORDER BY page_rank, page_running DESC, page_owner, page_name, id LIMIT ")
            .push_bind(walk.map(|_| f.limit))
            .push(" OFFSET ")
            .push_bind(f.offset.max(0));
        let count = |generations: bool| {
            let mut count = sqlx::QueryBuilder::new("SELECT count(*)");
            if generations {
                count.push(format!(", {GENERATIONS}"));
            }
            push_matches(&mut count, f);
            count
        };
        let Some(key) = counted else {
            let mut count = count(false);
            let (rows, total): (Vec<WorkspaceRow>, i64) = tokio::try_join!(
                page.build_query_as()
                    .fetch_all(self.page_pool(f, matches_first)),
                count.build_query_scalar().fetch_one(&self.pool),
            )?;
            return Ok((rows, total));
        };
        use sqlx::{FromRow, Row};
        let found = page
            .build()
            .fetch_all(self.page_pool(f, matches_first))
            .await?;
        let rows = found
            .iter()
            .map(WorkspaceRow::from_row)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // An empty page reads no generations: its total is counted.
        let seen: Option<String> = found
            .first()
            .map(|r| r.try_get("page_generations"))
            .transpose()?;
        if let Some(total) = self.counts.get(&key, seen.as_deref()) {
            return Ok((rows, total));
        }
        let (total, seen): (i64, String) =
            count(true).build_query_as().fetch_one(&self.pool).await?;
        self.counts.put(key, seen, total);
        Ok((rows, total))
    }

    /// Workspace page totals reused from memory and counted again since start, where they
    /// could have been reused (`coderd_workspace_count_cache_lookups`).
    pub fn workspace_count_lookups(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.counts.hits.load(Relaxed),
            self.counts.misses.load(Relaxed),
        )
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
        let durations: Vec<(Uuid, Transition, Option<f64>, Option<f64>)> = sqlx::query_as(
            "SELECT w.template_id, b.transition, \
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
    pub build_ms: HashMap<Transition, (Option<i64>, Option<i64>)>,
    pub active_users: i64,
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
    pub build_transition: Option<Transition>,
    pub build_created_at: Option<DateTime<Utc>>,
    pub build_deadline: Option<DateTime<Utc>>,
    pub build_template_version_id: Option<Uuid>,
    pub job_status: Option<JobStatus>,
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
                 w.automatic_updates::text AS automatic_updates, b.transition AS build_transition, \
                 b.created_at AS build_created_at, b.deadline AS build_deadline, \
                 b.template_version_id AS build_template_version_id, j.job_status, \
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

/// At most this many matches (as last counted) and a substring's matches are read first.
const FEW_MATCHES: i64 = 100;

/// The generations of the workspace rows (migration 0014), as one string: equal in two
/// snapshots only if no statement that could change a cacheable total committed between them.
const GENERATIONS: &str = "(SELECT coalesce(string_agg(g.shard::text || ':' || \
     g.generation::text, ',' ORDER BY g.shard), '') FROM workspace_generations g)";

/// What identifies a total that may be kept ([`WorkspaceCounts`]): the filter without its page.
/// `None` when the filter reads what the generations do not follow: the latest build, its
/// job, parameters or template, or the time of last use (which changes with every use).
fn counts_key(f: &WorkspaceFilter) -> Option<String> {
    f.keys_and_flags_of_the_row().then(|| {
        let mut key = f.clone();
        (key.limit, key.offset, key.requester) = (0, 0, Uuid::nil());
        // Sets, whose order (from a map of memberships) says nothing.
        key.ids.sort();
        if let Some(v) = &mut key.visible {
            v.orgs.sort();
            v.groups.sort();
        }
        format!("{key:?}")
    })
}

/// Totals of workspace searches, in this process, each with the generations it was counted
/// under; reused only while a later statement reads the same generations.
#[derive(Debug, Default)]
pub(crate) struct WorkspaceCounts {
    map: std::sync::Mutex<HashMap<String, (String, i64)>>,
    /// Totals reused, and totals counted where they could have been (for `/metrics`).
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl WorkspaceCounts {
    /// Totals kept at most; past it the map starts over (a flood of distinct searches).
    const CAPACITY: usize = 1024;

    /// The total last counted for `key`, under whatever generations: a guess of its size.
    fn hint(&self, key: &str) -> Option<i64> {
        self.lock().get(key).map(|(_, n)| *n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, i64)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The total kept for `key` if it was counted under `generations` (a miss when the page
    /// read none).
    fn get(&self, key: &str, generations: Option<&str>) -> Option<i64> {
        let found = generations.and_then(|g| {
            self.lock()
                .get(key)
                .filter(|(seen, _)| seen == g)
                .map(|(_, n)| *n)
        });
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        found
    }

    fn put(&self, key: String, generations: String, total: i64) {
        let mut map = self.lock();
        if map.len() >= Self::CAPACITY && !map.contains_key(&key) {
            map.clear();
        }
        map.insert(key, (generations, total));
    }
}

/// `FROM … WHERE …` of the workspaces matching `f`: not deleted, visible to the caller, and
/// matching every filter. The latest build and its job are joined only for the filters that
/// need them.
fn push_matches(qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, f: &WorkspaceFilter) {
    let needs_build = !f.statuses.is_empty()
        || f.has_agent.is_some()
        || f.outdated.is_some()
        || !f.params.is_empty();
    let needs_template = needs_build || !f.template_names.is_empty();
    qb.push(" FROM workspaces w");
    if needs_template {
        qb.push(" JOIN templates t ON t.id = w.template_id");
    }
    if needs_build {
        qb.push(
            " LEFT JOIN workspace_latest_builds lb ON lb.workspace_id = w.id \
              LEFT JOIN provisioner_jobs lj ON lj.id = lb.job_id",
        );
    }
    qb.push(" WHERE NOT w.deleted");
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
        qb.push(" AND lower(w.owner_username) = lower(")
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
        let (jobs, transitions) = BuildStatus::pairs(&f.statuses);
        qb.push(" AND EXISTS (SELECT 1 FROM unnest(")
            .push_bind(jobs)
            .push("::provisioner_job_status[], ")
            .push_bind(transitions)
            .push(
                "::workspace_transition[]) AS s(job_status, transition) \
             WHERE s.job_status = lj.job_status AND s.transition = lb.transition)",
            );
    }
    if let Some(status) = &f.has_agent {
        qb.push(concat!(
            " AND EXISTS (SELECT 1 FROM workspace_resources r JOIN workspace_agents a ON a.resource_id = r.id \
              WHERE r.job_id = lb.job_id AND ",
            agent_status_sql!(),
            " = "
        ))
        .push_bind(status.as_str())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A total is kept only for filters whose every column the generations' trigger follows:
    /// a column read but not followed would let a change go unseen.
    #[test]
    fn kept_totals_read_only_columns_the_generations_follow() {
        let some = Some(Uuid::from_u128(1));
        let f = WorkspaceFilter {
            owner_id: some,
            owner_username: Some("u".into()),
            name: Some("n".into()),
            ids: vec![Uuid::from_u128(2)],
            dormant: Some(true),
            organization_id: some,
            shared: Some(true),
            shared_with_user: some,
            shared_with_group: some,
            match_none: true,
            visible: Some(WorkspaceVisibility {
                viewer: Uuid::from_u128(3),
                orgs: vec![Uuid::from_u128(4)],
                groups: vec![Uuid::from_u128(5)],
            }),
            ..Default::default()
        };
        assert!(
            counts_key(&f).is_some(),
            "every workspace-row filter is kept"
        );
        let mut qb = sqlx::QueryBuilder::new("SELECT count(*)");
        push_matches(&mut qb, &f);
        let sql = qb.sql().to_string();
        assert!(
            !sql.contains(" JOIN "),
            "only the workspace row is read: {sql}"
        );

        let migration = include_str!("../../../migrations/0014_workspace_generations.sql");
        let (_, after) = migration.split_once("UPDATE OF").expect("a column list");
        let (list, _) = after.split_once("ON workspaces").expect("the table");
        let followed: Vec<&str> = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|c| !c.is_empty())
            .collect();
        let mut read: Vec<&str> = sql
            .match_indices("w.")
            .map(|(i, _)| {
                let rest = &sql[i + 2..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        read.sort();
        read.dedup();
        assert!(read.len() >= 8, "the filter reads its columns: {read:?}");
        for column in read {
            assert!(
                followed.contains(&column),
                "{column} is filtered on but not followed by the trigger ({followed:?})"
            );
        }

        for unkept in [
            WorkspaceFilter {
                template_names: vec!["t".into()],
                ..Default::default()
            },
            WorkspaceFilter {
                statuses: vec![BuildStatus::Running],
                ..Default::default()
            },
            WorkspaceFilter {
                outdated: Some(true),
                ..Default::default()
            },
            WorkspaceFilter {
                params: vec![("p".into(), None)],
                ..Default::default()
            },
            WorkspaceFilter {
                last_used_after: Some(Utc::now()),
                ..Default::default()
            },
        ] {
            assert!(
                counts_key(&unkept).is_none(),
                "{unkept:?} is counted each time"
            );
        }
        let paged = WorkspaceFilter {
            limit: 25,
            offset: 50,
            requester: Uuid::from_u128(9),
            ..Default::default()
        };
        assert_eq!(
            counts_key(&paged),
            counts_key(&WorkspaceFilter::default()),
            "pages of one search share its total"
        );
        let mut reordered = f.clone();
        if let Some(v) = &mut reordered.visible {
            v.orgs = vec![Uuid::from_u128(7), Uuid::from_u128(4)];
        }
        let mut sorted = reordered.clone();
        if let Some(v) = &mut sorted.visible {
            v.orgs.reverse();
        }
        assert_eq!(
            counts_key(&reordered),
            counts_key(&sorted),
            "a caller's organizations in another order are the same search"
        );
    }
}
