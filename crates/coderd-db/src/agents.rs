//! Workspace agents that connect: finding one by its token, its connection's life, what it
//! reports (startup, lifecycle, metadata, app health, script timings) and its startup logs.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Result, Store, StoreError};

/// An agent as its own connection needs it: the agent, its workspace and build.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentIdentity {
    pub agent_id: Uuid,
    pub agent_name: String,
    pub directory: String,
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub owner_id: Uuid,
    pub owner_username: String,
    pub organization_id: Uuid,
    pub template_id: Uuid,
    pub build_id: Uuid,
    pub build_number: i32,
    /// Whether the agent belongs to the workspace's latest build (older agents are turned
    /// away, as upstream does).
    pub is_latest: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentScriptRow {
    pub id: Uuid,
    pub workspace_agent_id: Uuid,
    pub log_source_id: Uuid,
    pub display_name: String,
    pub script: String,
    pub cron: String,
    pub log_path: String,
    pub run_on_start: bool,
    pub run_on_stop: bool,
    pub start_blocks_login: bool,
    pub timeout_seconds: i32,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentMetadataRow {
    pub workspace_agent_id: Uuid,
    pub key: String,
    pub display_name: String,
    pub script: String,
    pub interval_seconds: i64,
    pub timeout_seconds: i64,
    pub value: String,
    pub error: String,
    pub collected_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentLogRow {
    pub id: i64,
    pub agent_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub output: String,
    pub level: String,
    pub log_source_id: Uuid,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentLogSourceRow {
    pub workspace_agent_id: Uuid,
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub display_name: String,
    pub icon: String,
}

/// How one run of a script went.
pub struct ScriptTiming<'a> {
    pub script: Uuid,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub exit_code: i32,
    /// `start`, `stop` or `cron`.
    pub stage: &'a str,
    /// `ok`, `exit_failure`, `timed_out` or `pipes_left_open`.
    pub status: &'a str,
}

/// A batch of log lines from one source.
pub struct NewAgentLog<'a> {
    pub created_at: DateTime<Utc>,
    pub output: &'a str,
    pub level: &'a str,
}

/// What happened to a batch of logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogsOutcome {
    Stored,
    /// The agent's logs are over the limit: nothing of the batch was stored.
    LimitExceeded,
}

impl Store {
    /// The agent holding `token`, with its workspace and build.
    pub async fn agent_by_token(&self, token: Uuid) -> Result<AgentIdentity> {
        sqlx::query_as(
            "SELECT a.id AS agent_id, a.name AS agent_name, a.directory, w.id AS workspace_id, \
                 w.name AS workspace_name, w.owner_id, o.username AS owner_username, \
                 w.organization_id, w.template_id, b.id AS build_id, b.build_number, \
                 b.id = lb.id AS is_latest \
             FROM workspace_agents a \
             JOIN workspace_resources r ON r.id = a.resource_id \
             JOIN workspace_builds b ON b.job_id = r.job_id \
             JOIN workspaces w ON w.id = b.workspace_id \
             JOIN users o ON o.id = w.owner_id \
             JOIN workspace_latest_builds lb ON lb.workspace_id = w.id \
             WHERE a.auth_token = $1 AND NOT w.deleted \
             ORDER BY b.build_number DESC LIMIT 1",
        )
        .bind(token)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::from)
    }

    /// Records a connection: first and last connected now, not disconnected, held by `replica`.
    pub async fn agent_connected(
        &self,
        agent: Uuid,
        replica: Uuid,
        api_version: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE workspace_agents SET first_connected_at = COALESCE(first_connected_at, now()), \
                 last_connected_at = now(), disconnected_at = NULL, last_connected_replica_id = $2, \
                 api_version = $3, updated_at = now() \
             WHERE id = $1",
        )
        .bind(agent)
        .bind(replica)
        .bind(api_version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The connection's heartbeat: still connected now (unless another replica holds it).
    pub async fn agent_heartbeat(&self, agent: Uuid, replica: Uuid) -> Result<()> {
        sqlx::query(
            "UPDATE workspace_agents SET last_connected_at = now() \
             WHERE id = $1 AND last_connected_replica_id = $2 AND disconnected_at IS NULL",
        )
        .bind(agent)
        .bind(replica)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The connection ended (only if `replica` still held it).
    pub async fn agent_disconnected(&self, agent: Uuid, replica: Uuid) -> Result<()> {
        sqlx::query(
            "UPDATE workspace_agents SET disconnected_at = now(), updated_at = now() \
             WHERE id = $1 AND last_connected_replica_id = $2",
        )
        .bind(agent)
        .bind(replica)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn agent_startup(
        &self,
        agent: Uuid,
        version: &str,
        expanded_directory: &str,
        subsystems: &[String],
    ) -> Result<()> {
        sqlx::query(
            "UPDATE workspace_agents SET version = $2, expanded_directory = $3, subsystems = $4, \
                 updated_at = now() WHERE id = $1",
        )
        .bind(agent)
        .bind(version)
        .bind(expanded_directory)
        .bind(subsystems)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A lifecycle change; `starting` records when the agent started, `ready` (and the other
    /// ends of starting) when it was ready.
    pub async fn agent_lifecycle(&self, agent: Uuid, state: &str, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE workspace_agents SET lifecycle_state = $2, updated_at = now(), \
                 started_at = CASE WHEN $2 = 'starting' THEN $3 ELSE started_at END, \
                 ready_at = CASE WHEN $2 IN ('ready', 'start_timeout', 'start_error') THEN $3 \
                                 ELSE ready_at END \
             WHERE id = $1",
        )
        .bind(agent)
        .bind(state)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn agent_scripts(&self, agents: &[Uuid]) -> Result<Vec<AgentScriptRow>> {
        Ok(sqlx::query_as(
            "SELECT id, workspace_agent_id, log_source_id, display_name, script, cron, log_path, \
                 run_on_start, run_on_stop, start_blocks_login, timeout_seconds \
             FROM workspace_agent_scripts WHERE workspace_agent_id = ANY($1) \
             ORDER BY workspace_agent_id, display_order",
        )
        .bind(agents)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn agent_log_sources(&self, agents: &[Uuid]) -> Result<Vec<AgentLogSourceRow>> {
        Ok(sqlx::query_as(
            "SELECT workspace_agent_id, id, created_at, display_name, icon \
             FROM workspace_agent_log_sources WHERE workspace_agent_id = ANY($1) \
             ORDER BY workspace_agent_id, created_at, id",
        )
        .bind(agents)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Makes sure a log source exists (the agent names its own, such as "Agent").
    pub async fn ensure_agent_log_source(
        &self,
        agent: Uuid,
        id: Uuid,
        display_name: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO workspace_agent_log_sources (workspace_agent_id, id, created_at, display_name) \
             VALUES ($1, $2, now(), $3) ON CONFLICT DO NOTHING",
        )
        .bind(agent)
        .bind(id)
        .bind(display_name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a batch of logs unless the agent's logs would pass `limit` bytes, as upstream:
    /// the batch that crosses the limit is dropped and the agent marked overflowed.
    pub async fn insert_agent_logs(
        &self,
        agent: Uuid,
        source: Uuid,
        logs: &[NewAgentLog<'_>],
        limit: i32,
    ) -> Result<LogsOutcome> {
        let bytes: i64 = logs.iter().map(|l| l.output.len() as i64).sum();
        let mut tx = self.pool.begin().await?;
        let allowed: Option<(bool,)> = sqlx::query_as(
            "UPDATE workspace_agents SET logs_length = logs_length + $2, updated_at = now() \
             WHERE id = $1 AND NOT logs_overflowed AND logs_length + $2 <= $3 RETURNING true",
        )
        .bind(agent)
        .bind(bytes as i32)
        .bind(limit)
        .fetch_optional(&mut *tx)
        .await?;
        if allowed.is_none() {
            sqlx::query("UPDATE workspace_agents SET logs_overflowed = true WHERE id = $1")
                .bind(agent)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(LogsOutcome::LimitExceeded);
        }
        let created: Vec<DateTime<Utc>> = logs.iter().map(|l| l.created_at).collect();
        let outputs: Vec<&str> = logs.iter().map(|l| l.output).collect();
        let levels: Vec<&str> = logs.iter().map(|l| l.level).collect();
        sqlx::query(
            "INSERT INTO workspace_agent_logs (agent_id, created_at, output, level, log_source_id) \
             SELECT $1, c, o, l, $5 FROM unnest($2::timestamptz[], $3::text[], $4::text[]) AS t(c, o, l)",
        )
        .bind(agent)
        .bind(&created)
        .bind(&outputs)
        .bind(&levels)
        .bind(source)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LogsOutcome::Stored)
    }

    /// The agent's logs after the log id `after`, oldest first, at most `limit`.
    pub async fn agent_logs_after(
        &self,
        agent: Uuid,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AgentLogRow>> {
        Ok(sqlx::query_as(
            "SELECT id, agent_id, created_at, output, level, log_source_id FROM workspace_agent_logs \
             WHERE agent_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(agent)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn agent_metadata(&self, agents: &[Uuid]) -> Result<Vec<AgentMetadataRow>> {
        Ok(sqlx::query_as(
            "SELECT workspace_agent_id, key, display_name, script, interval_seconds, timeout_seconds, \
                 value, error, collected_at FROM workspace_agent_metadata \
             WHERE workspace_agent_id = ANY($1) ORDER BY workspace_agent_id, display_order, key",
        )
        .bind(agents)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stores metadata results for keys the agent has (unknown keys are ignored).
    pub async fn update_agent_metadata(
        &self,
        agent: Uuid,
        results: &[(String, String, String, DateTime<Utc>)],
    ) -> Result<()> {
        let keys: Vec<&str> = results.iter().map(|r| r.0.as_str()).collect();
        let values: Vec<&str> = results.iter().map(|r| r.1.as_str()).collect();
        let errors: Vec<&str> = results.iter().map(|r| r.2.as_str()).collect();
        let at: Vec<DateTime<Utc>> = results.iter().map(|r| r.3).collect();
        sqlx::query(
            "UPDATE workspace_agent_metadata m SET value = t.v, error = t.e, collected_at = t.c \
             FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS t(k, v, e, c) \
             WHERE m.workspace_agent_id = $1 AND m.key = t.k",
        )
        .bind(agent)
        .bind(&keys)
        .bind(&values)
        .bind(&errors)
        .bind(&at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn agent_apps(&self, agents: &[Uuid]) -> Result<Vec<crate::AppRow>> {
        Ok(sqlx::query_as(
            "SELECT id, agent_id, slug, display_name, icon, command, url, external, subdomain, \
                 sharing_level, hidden, open_in, health, healthcheck_url, healthcheck_interval, \
                 healthcheck_threshold FROM workspace_apps WHERE agent_id = ANY($1) \
             ORDER BY agent_id, display_order",
        )
        .bind(agents)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stores the health the agent reports for its apps (apps of other agents are ignored).
    pub async fn update_app_health(&self, agent: Uuid, updates: &[(Uuid, &str)]) -> Result<()> {
        let ids: Vec<Uuid> = updates.iter().map(|u| u.0).collect();
        let health: Vec<&str> = updates.iter().map(|u| u.1).collect();
        sqlx::query(
            "UPDATE workspace_apps a SET health = t.h \
             FROM unnest($2::uuid[], $3::text[]) AS t(id, h) WHERE a.id = t.id AND a.agent_id = $1",
        )
        .bind(agent)
        .bind(&ids)
        .bind(&health)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn insert_script_timing(&self, agent: Uuid, t: &ScriptTiming<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO workspace_agent_script_timings \
                 (script_id, agent_id, started_at, ended_at, exit_code, stage, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(t.script)
        .bind(agent)
        .bind(t.started_at)
        .bind(t.ended_at)
        .bind(t.exit_code)
        .bind(t.stage)
        .bind(t.status)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
