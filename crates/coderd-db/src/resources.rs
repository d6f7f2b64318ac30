//! What a job's provisioner created, as stored: resources with their metadata, agents and
//! apps, read back in a fixed number of queries.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::model::Resource;
use crate::status::{agent_status_sql, AgentStatus, Transition};
use crate::{Result, Store};

/// One stored resource with its metadata, agents and apps.
#[derive(Debug, Clone)]
pub struct ResourceRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub job_id: Uuid,
    pub transition: Transition,
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
    /// Computed when the row is read ([`AgentStatus::SQL`]).
    pub status: AgentStatus,
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

impl Store {
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
        Ok(sqlx::query_scalar(
            "SELECT b.workspace_id FROM workspace_agents a \
             JOIN workspace_resources r ON r.id = a.resource_id \
             JOIN workspace_builds b ON b.job_id = r.job_id WHERE a.id = $1",
        )
        .bind(agent)
        .fetch_one(&self.pool)
        .await?)
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
}

/// A resource's columns (alias `r`), its metadata as JSON.
pub(crate) const RESOURCE_COLUMNS: &str = "r.id, r.created_at, r.job_id, \
    r.transition::workspace_transition AS transition, \
    r.type AS kind, r.name, r.hide, r.icon, r.daily_cost, \
    COALESCE((SELECT json_agg(json_build_object('key', m.key, 'value', m.value, \
        'sensitive', m.sensitive) ORDER BY m.display_order) \
        FROM workspace_resource_metadata m WHERE m.workspace_resource_id = r.id), \
        '[]'::json) AS metadata";

/// An agent's columns (alias `a`), without its apps.
pub(crate) const AGENT_COLUMNS: &str = concat!(
    "a.id, a.created_at, a.updated_at, a.resource_id, a.name, \
    a.operating_system, a.architecture, a.directory, a.connection_timeout_seconds, \
    a.troubleshooting_url, a.first_connected_at, a.last_connected_at, a.disconnected_at, \
    a.lifecycle_state, a.version, a.api_version, a.expanded_directory, a.subsystems, \
    a.started_at, a.ready_at, a.logs_length, a.logs_overflowed, a.display_apps, ",
    agent_status_sql!(),
    " AS status"
);

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
    transition: Transition,
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
