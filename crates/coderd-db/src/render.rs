//! Everything that rendering workspaces and builds reads, in one statement.
//!
//! A workspace answer needs its row, template, owner, organization, latest build, that build's
//! job, version and initiator, the provisioner daemons that could run the job, and the job's
//! resources with their agents and apps. Read one by one, that was ten statements and most of
//! the request's cost (benches/README.md, `throughput`). Here each kind is a CTE, each CTE
//! uses the same column list as the store's one-kind reads (so a row decodes to the same
//! struct), and the result is one row of JSON arrays, decoded once. One statement also means
//! one snapshot: the build, its job and its resources always agree.

use sqlx::types::Json;
use uuid::Uuid;

use crate::builds::BUILD_COLUMNS;
use crate::jobs::JOB_COLUMNS;
use crate::organizations::ORG_COLUMNS;
use crate::provisioner_daemons::DAEMON_COLUMNS;
use crate::resources::{
    assemble_resources, ResourceBase, AGENT_APPS, AGENT_COLUMNS, RESOURCE_COLUMNS,
};
use crate::template_versions::{VERSION_COLUMNS, VERSION_FROM};
use crate::templates::{TEMPLATE_COLUMNS, TEMPLATE_FROM};
use crate::users::USER_COLUMNS;
use crate::workspaces::WS_COLUMNS;
use crate::{
    AgentRow, BuildRow, DaemonRow, JobRow, OrganizationRow, ResourceRow, Result, Store,
    TemplateRow, UserRow, VersionRow, WorkspaceRow,
};

/// The rows [`Store::render_rows`] read.
#[derive(Debug, Default)]
pub struct RenderRows {
    /// The workspaces asked for, and those of the builds asked for.
    pub workspaces: Vec<WorkspaceRow>,
    /// The latest build of each workspace asked for (not of the builds' workspaces).
    pub latest_builds: Vec<BuildRow>,
    /// The builds asked for.
    pub builds: Vec<BuildRow>,
    /// The jobs of all those builds.
    pub jobs: Vec<JobRow>,
    /// Owners, initiators and users the workspaces are shared with (not deleted ones).
    pub users: Vec<UserRow>,
    /// The workspaces' templates and those of the builds' versions.
    pub templates: Vec<TemplateRow>,
    pub versions: Vec<VersionRow>,
    pub organizations: Vec<OrganizationRow>,
    /// Daemons of the jobs' organizations (and those of every organization), as
    /// `list_daemons` has them.
    pub daemons: Vec<DaemonRow>,
    /// The jobs' resources, with agents and apps.
    pub resources: Vec<ResourceRow>,
}

impl Store {
    /// The workspaces `workspace_ids` with their latest builds, and the builds `build_ids`,
    /// with everything their answers show: one statement.
    pub async fn render_rows(
        &self,
        workspace_ids: &[Uuid],
        build_ids: &[Uuid],
    ) -> Result<RenderRows> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        // Each column decodes straight into its rows (serde from the bytes, no JSON tree).
        let row: Row = sqlx::query_as(SQL.get_or_init(render_sql))
            .bind(workspace_ids)
            .bind(build_ids)
            .fetch_one(self.generic_pool())
            .await?;
        Ok(RenderRows {
            workspaces: row.0 .0,
            latest_builds: row.1 .0,
            builds: row.2 .0,
            jobs: row.3 .0,
            users: row.4 .0,
            templates: row.5 .0,
            versions: row.6 .0,
            organizations: row.7 .0,
            daemons: row.8 .0,
            resources: assemble_resources(row.9 .0, row.10 .0),
        })
    }
}

type Row = (
    Json<Vec<WorkspaceRow>>,
    Json<Vec<BuildRow>>,
    Json<Vec<BuildRow>>,
    Json<Vec<JobRow>>,
    Json<Vec<UserRow>>,
    Json<Vec<TemplateRow>>,
    Json<Vec<VersionRow>>,
    Json<Vec<OrganizationRow>>,
    Json<Vec<DaemonRow>>,
    Json<Vec<ResourceBase>>,
    Json<Vec<AgentRow>>,
);

/// The statement: `$1` the workspaces, `$2` the builds.
fn render_sql() -> String {
    format!(
            "WITH ws AS (SELECT {WS_COLUMNS} FROM workspaces w WHERE w.id = ANY($1::uuid[] || \
                 ARRAY(SELECT x.workspace_id FROM workspace_builds x WHERE x.id = ANY($2)))), \
             lbs AS (SELECT {BUILD_COLUMNS} FROM workspace_latest_builds b WHERE b.workspace_id = ANY($1)), \
             xbs AS (SELECT {BUILD_COLUMNS} FROM workspace_builds b WHERE b.id = ANY($2)), \
             bs AS (SELECT * FROM lbs UNION ALL SELECT * FROM xbs), \
             js AS (SELECT {JOB_COLUMNS} FROM provisioner_jobs j \
                 WHERE j.id = ANY(ARRAY(SELECT job_id FROM bs))), \
             vs AS (SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} \
                 WHERE v.id = ANY(ARRAY(SELECT template_version_id FROM bs))), \
             ts AS (SELECT {TEMPLATE_COLUMNS} FROM {TEMPLATE_FROM} WHERE t.id = ANY(ARRAY( \
                 SELECT template_id FROM ws UNION SELECT template_id FROM vs WHERE template_id IS NOT NULL))), \
             us AS (SELECT {USER_COLUMNS} FROM users u WHERE NOT u.deleted AND u.id = ANY(ARRAY( \
                 SELECT owner_id FROM ws UNION SELECT initiator_id FROM bs \
                 UNION SELECT k::uuid FROM ws, jsonb_object_keys(ws.user_acl) AS k))), \
             os AS (SELECT {ORG_COLUMNS} FROM organizations \
                 WHERE id = ANY(ARRAY(SELECT organization_id FROM ws))), \
             ds AS (SELECT {DAEMON_COLUMNS} FROM provisioner_daemons \
                 WHERE organization_id IS NULL OR organization_id = ANY(ARRAY(SELECT organization_id FROM js))), \
             rs AS (SELECT {RESOURCE_COLUMNS}, r.display_order FROM workspace_resources r \
                 WHERE r.job_id = ANY(ARRAY(SELECT job_id FROM bs))), \
             ags AS (SELECT {AGENT_COLUMNS}, {AGENT_APPS} AS apps, a.display_order FROM workspace_agents a \
                 WHERE a.resource_id = ANY(ARRAY(SELECT id FROM rs))) \
             SELECT \
                 (SELECT COALESCE(json_agg(ws), '[]') FROM ws), \
                 (SELECT COALESCE(json_agg(lbs), '[]') FROM lbs), \
                 (SELECT COALESCE(json_agg(xbs), '[]') FROM xbs), \
                 (SELECT COALESCE(json_agg(js), '[]') FROM js), \
                 (SELECT COALESCE(json_agg(us), '[]') FROM us), \
                 (SELECT COALESCE(json_agg(ts), '[]') FROM ts), \
                 (SELECT COALESCE(json_agg(vs), '[]') FROM vs), \
                 (SELECT COALESCE(json_agg(os), '[]') FROM os), \
                 (SELECT COALESCE(json_agg(ds ORDER BY ds.last_seen_at DESC, ds.name), '[]') FROM ds), \
                 (SELECT COALESCE(json_agg(rs ORDER BY rs.job_id, rs.display_order), '[]') FROM rs), \
                 (SELECT COALESCE(json_agg(ags ORDER BY ags.display_order), '[]') FROM ags)"
        )
}

#[cfg(test)]
mod tests {
    /// Every kind of row is read, each once (`CODERD_PRINT_RENDER_SQL=1` prints the statement,
    /// to EXPLAIN it by hand).
    #[test]
    fn the_statement_reads_every_kind_once() {
        let sql = super::render_sql();
        if std::env::var_os("CODERD_PRINT_RENDER_SQL").is_some() {
            println!("{sql}");
        }
        for cte in [
            "ws", "lbs", "xbs", "bs", "js", "vs", "ts", "us", "os", "ds", "rs", "ags",
        ] {
            assert_eq!(sql.matches(&format!(" {cte} AS (")).count(), 1, "{cte}");
        }
    }
}
