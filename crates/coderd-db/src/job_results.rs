//! What a finished job writes, in the transaction that completes it: the resources, agents
//! and timings it produced, an import's template version details, a build's state and deadlines.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::model::{Resource, Timing};
use crate::status::Transition;
use crate::{Result, Store, StoreError};

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
    pub resources: Vec<(Transition, &'a [Resource])>,
    pub timings: &'a [Timing],
    pub import: Option<ImportProduct<'a>>,
    pub build: Option<BuildProduct<'a>>,
}

#[derive(Clone)]
pub struct ImportProduct<'a> {
    pub template_version_id: Uuid,
    pub readme: &'a str,
    pub variables: &'a [crate::model::Variable],
    pub parameters: &'a [crate::model::Parameter],
    pub presets: &'a [crate::model::Preset],
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

impl Store {
    /// Ends a job with everything it produced, atomically, and publishes `announce` (channel,
    /// payload) when it commits. `false` when the job had already ended (canceled while
    /// pending, or reaped), in which case nothing is written or published.
    pub async fn complete_job(
        &self,
        id: Uuid,
        daemon: Option<Uuid>,
        how: Completion<'_>,
        announce: &[(&str, &str)],
    ) -> Result<bool> {
        let (kind, error, error_code) = match &how {
            Completion::Failed {
                error, error_code, ..
            } => (
                "failed",
                Some(if error.is_empty() { "failed" } else { *error }),
                *error_code,
            ),
            Completion::Canceled { .. } => ("canceled", None, None),
            Completion::Succeeded(_) => ("succeeded", None, None),
        };
        let mut tx = self.pool.begin().await?;
        // What the job produced is written first and the job ends last, in one statement with
        // its daemon's release and the announcements (all of it visible, and heard, only when
        // the transaction commits). Last, so that the daemon's row is locked only for that
        // statement and the commit: the daemon acquires its next job while this one's result
        // is stored, and that acquisition updates the same row. A job that had already ended
        // (canceled, or reaped meanwhile) rolls back what was written for it.
        match how {
            Completion::Failed { state, import, .. } => {
                store_unsuccessful_state(&mut tx, id, state).await?;
                if let Some(import) = import {
                    store_import(&mut tx, &import).await?;
                }
            }
            Completion::Canceled { state } => {
                store_unsuccessful_state(&mut tx, id, state).await?;
            }
            Completion::Succeeded(p) => {
                for (transition, resources) in &p.resources {
                    insert_resources(&mut tx, id, *transition, resources).await?;
                }
                insert_timings(&mut tx, id, p.timings).await?;
                if let Some(import) = p.import {
                    store_import(&mut tx, &import).await?;
                }
                if let Some(build) = &p.build {
                    store_build(&mut tx, build).await?;
                }
            }
        }
        // The daemon may already hold its next job: only this one is taken off it.
        let ended: Option<i64> = sqlx::query_scalar(&format!(
            "WITH job AS ( \
                 UPDATE provisioner_jobs SET completed_at = clock_timestamp(), updated_at = clock_timestamp(), \
                     error = CASE WHEN $2 = 'failed' THEN $3 ELSE error END, \
                     error_code = CASE WHEN $2 = 'failed' THEN $4 ELSE error_code END, \
                     canceled_at = CASE WHEN $2 = 'canceled' THEN COALESCE(canceled_at, clock_timestamp()) \
                                   ELSE canceled_at END \
                 WHERE id = $1 AND completed_at IS NULL RETURNING id), \
             daemon AS ( \
                 UPDATE provisioner_daemons SET previous_job_id = $1, last_seen_at = now(), \
                     current_job_id = CASE WHEN current_job_id = $1 THEN NULL ELSE current_job_id END \
                 WHERE id = $5 AND EXISTS (SELECT 1 FROM job)), \
             announced AS ({} ) \
             SELECT (SELECT count(*) FROM announced) FROM job",
            crate::pubsub::notify_each_sql(6, "EXISTS (SELECT 1 FROM job)"),
        ))
        .bind(id)
        .bind(kind)
        .bind(error)
        .bind(error_code)
        .bind(daemon)
        .bind(crate::pubsub::wire_messages(announce))
        .fetch_optional(&mut *tx)
        .await?;
        if ended.is_none() {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM provisioner_jobs WHERE id = $1)")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            // Dropped without a commit: what was written above is rolled back.
            return if exists {
                Ok(false)
            } else {
                Err(StoreError::NotFound)
            };
        }
        tx.commit().await?;
        Ok(true)
    }
}

async fn insert_resources(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job_id: Uuid,
    transition: Transition,
    resources: &[Resource],
) -> Result<()> {
    for (i, r) in resources.iter().enumerate() {
        let rid = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO workspace_resources (id, created_at, job_id, transition, type, name, hide, icon, daily_cost, display_order) \
             VALUES ($1, now(), $2, $3::text, $4, $5, $6, $7, $8, $9)",
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
    if timings.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&Timing) -> &str| timings.iter().map(f).collect::<Vec<&str>>();
    sqlx::query(
        "INSERT INTO provisioner_job_timings (job_id, started_at, ended_at, stage, source, action, resource) \
         SELECT $1, * FROM unnest($2::timestamptz[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[])",
    )
    .bind(job_id)
    .bind(timings.iter().map(|t| t.started_at).collect::<Vec<_>>())
    .bind(timings.iter().map(|t| t.ended_at).collect::<Vec<_>>())
    .bind(column(|t| &t.stage))
    .bind(column(|t| &t.source))
    .bind(column(|t| &t.action))
    .bind(column(|t| &t.resource))
    .execute(&mut **tx)
    .await?;
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

async fn store_build(
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
