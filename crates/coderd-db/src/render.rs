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

/// What a rendered workspace or build was made of, as one string that changes whenever any row
/// the answer shows changes ([`Store::render_stamps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub id: Uuid,
    pub stamp: String,
}

/// The stamps [`Store::render_stamps`] read, with the daemons the answers' jobs could use (they
/// change with every heartbeat, so they are read each time instead of stamped).
#[derive(Debug, Default)]
pub struct RenderStamps {
    pub workspaces: Vec<Stamp>,
    pub builds: Vec<Stamp>,
    /// Every daemon, in no order: whoever matches a job against them filters by its
    /// organization (`views::jobs::rematch`).
    pub daemons: Vec<DaemonRow>,
}

impl RenderStamps {
    pub fn workspace(&self, id: Uuid) -> Option<&str> {
        self.workspaces
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.stamp.as_str())
    }

    pub fn build(&self, id: Uuid) -> Option<&str> {
        self.builds
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.stamp.as_str())
    }
}

/// What a stamps statement is asked about.
#[derive(Clone, Copy)]
enum Stamped {
    Workspaces,
    Builds,
}

impl Store {
    /// The stamps of the workspaces `workspace_ids` (with their latest builds) and of the builds
    /// `build_ids`, with every daemon: one statement per kind asked about, which reads only
    /// row versions (`xmin`) and agents' statuses, never the columns themselves.
    ///
    /// A stamp is made of the `xmin` of every row [`Store::render_rows`] reads for the answer
    /// (the workspace, its template, owner and organization, the users and groups it is shared
    /// with; the build, its job, version, template, initiator, the job's worker's name, its
    /// resources, their metadata, agents and apps) and each agent's status, which moves with
    /// the clock. Any committed insert, update or delete of one of those rows gives it another
    /// `xmin`, so an answer rendered from rows read no earlier than a stamp is still right
    /// while the stamp is the same, whichever replica changed them. Workspaces without a build
    /// have no stamp.
    pub async fn render_stamps(
        &self,
        workspace_ids: &[Uuid],
        build_ids: &[Uuid],
    ) -> Result<RenderStamps> {
        let mut out = RenderStamps::default();
        if !workspace_ids.is_empty() {
            self.stamps_of(Stamped::Workspaces, workspace_ids, &mut out)
                .await?;
        }
        if !build_ids.is_empty() {
            // The daemons once, whichever statement read them last.
            out.daemons.clear();
            self.stamps_of(Stamped::Builds, build_ids, &mut out).await?;
        }
        Ok(out)
    }

    async fn stamps_of(&self, kind: Stamped, ids: &[Uuid], out: &mut RenderStamps) -> Result<()> {
        use sqlx::{FromRow, Row};
        static WORKSPACES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        static BUILDS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = match kind {
            Stamped::Workspaces => WORKSPACES.get_or_init(|| stamps_sql(kind)),
            Stamped::Builds => BUILDS.get_or_init(|| stamps_sql(kind)),
        };
        let rows = sqlx::query(sql)
            .bind(ids)
            .fetch_all(self.generic_pool())
            .await?;
        for row in rows {
            // A stamp's row has its stamp; a daemon's has none, and its own columns.
            match row.try_get::<Option<String>, _>("stamp")? {
                Some(stamp) => {
                    let stamp = Stamp {
                        id: row.try_get("id")?,
                        stamp,
                    };
                    match kind {
                        Stamped::Workspaces => out.workspaces.push(stamp),
                        Stamped::Builds => out.builds.push(stamp),
                    }
                }
                None => out.daemons.push(DaemonRow::from_row(&row)?),
            }
        }
        Ok(())
    }
}

/// `concat_ws` over `parts`, each NULL shown as empty so that no part can shift into another's
/// place.
fn joined(sep: &str, parts: &[&str]) -> String {
    let parts: Vec<String> = parts
        .iter()
        .map(|p| format!("COALESCE(({p})::text, '')"))
        .collect();
    format!("concat_ws('{sep}', {})", parts.join(", "))
}

/// A stamps statement, `$1` the workspaces or the builds: one row per workspace or build (its
/// id and, last, `stamp`, the daemon columns NULL), then one per daemon (`stamp` NULL, its columns as
/// [`DaemonRow`] has them, so that they decode without JSON). Flat joins on keys and no CTEs,
/// since each plan node costs PostgreSQL more than the rows it reads, and one kind per
/// statement: an arm asked about nothing still costs its plan (benches/README.md, run 8).
///
/// The parts of a stamp are listed in no order within a kind: the order rows are read in
/// changes only when they are rewritten, which changes their `xmin` anyway, so a different
/// order can only cost a needless render, never serve a stale one. A workspace shared with
/// users or groups has no stamp (their names would need two more lookups on every read) and
/// is rendered from the database each time.
fn stamps_sql(kind: Stamped) -> String {
    let status = crate::status::agent_status_sql!();
    // A resource with its metadata, agents and apps, as one join: any insert, update or
    // delete of one of them changes the multiset of these rows.
    let row = joined(".", &["r.xmin", "m.xmin", "a.xmin", status, "p.xmin"]);
    let resources = format!(
        "SELECT string_agg({row}, ',') \
         FROM workspace_resources r \
         LEFT JOIN workspace_resource_metadata m ON m.workspace_resource_id = r.id \
         LEFT JOIN workspace_agents a ON a.resource_id = r.id \
         LEFT JOIN workspace_apps p ON p.agent_id = a.id \
         WHERE r.job_id = b.job_id"
    );
    // A build's stamp; the caller joins the workspace `w`.
    let build = joined(
        "/",
        &[
            "b.xmin", "j.xmin", "v.xmin", "vt.xmin", "i.xmin", "w.xmin", "o.xmin", "wd.name",
            &resources,
        ],
    );
    let build_joins = "JOIN provisioner_jobs j ON j.id = b.job_id \
         LEFT JOIN provisioner_daemons wd ON wd.id = j.worker_id \
         LEFT JOIN template_versions v ON v.id = b.template_version_id \
         LEFT JOIN templates vt ON vt.id = v.template_id \
         LEFT JOIN users i ON i.id = b.initiator_id \
         LEFT JOIN users o ON o.id = w.owner_id";
    let no_daemon = "NULL::timestamptz AS created_at, NULL::text AS name, \
         NULL::text[] AS provisioners, NULL::uuid AS organization_id, NULL::jsonb AS tags, \
         NULL::timestamptz AS last_seen_at, NULL::text AS version, NULL::text AS api_version, \
         NULL::uuid AS current_job_id, NULL::uuid AS previous_job_id";
    let stamps = match kind {
        Stamped::Workspaces => {
            let workspace = joined("#", &[&build, "t.xmin", "g.xmin"]);
            format!(
                "SELECT w.id, {no_daemon}, {workspace} AS stamp FROM workspaces w \
                 JOIN LATERAL (SELECT x.xmin, x.job_id, x.template_version_id, x.initiator_id \
                     FROM workspace_builds x WHERE x.workspace_id = w.id \
                     ORDER BY x.build_number DESC LIMIT 1) b ON true \
                 {build_joins} \
                 LEFT JOIN templates t ON t.id = w.template_id \
                 LEFT JOIN organizations g ON g.id = w.organization_id \
                 WHERE w.id = ANY($1) AND w.user_acl = '{{}}' AND w.group_acl = '{{}}'"
            )
        }
        Stamped::Builds => format!(
            "SELECT b.id, {no_daemon}, {build} AS stamp FROM workspace_builds b \
             JOIN workspaces w ON w.id = b.workspace_id {build_joins} \
             WHERE b.id = ANY($1)"
        ),
    };
    // Every daemon: fewer than the filter by the jobs' organizations costs (run 8).
    format!("{stamps} UNION ALL SELECT {DAEMON_COLUMNS}, NULL FROM provisioner_daemons")
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
    /// Every row the render reads has its place in the stamp (`CODERD_PRINT_RENDER_SQL=1` prints
    /// it too).
    #[test]
    fn the_stamp_covers_every_table_the_render_reads() {
        use super::Stamped;
        for kind in [Stamped::Workspaces, Stamped::Builds] {
            let sql = super::stamps_sql(kind);
            if std::env::var_os("CODERD_PRINT_RENDER_SQL").is_some() {
                println!("{sql}");
            }
            covers(&sql, kind);
        }
    }

    fn covers(sql: &str, kind: super::Stamped) {
        let render = super::render_sql();
        // A build's stamp has its workspace's row but not the workspace's template or
        // organization, which a build's answer does not show.
        let workspace_only: &[&str] = match kind {
            super::Stamped::Workspaces => &[],
            super::Stamped::Builds => &["organizations"],
        };
        for table in [
            "workspaces",
            "workspace_builds",
            "provisioner_jobs",
            "template_versions",
            "templates",
            "users",
            "organizations",
            "provisioner_daemons",
            "workspace_resources",
            "workspace_resource_metadata",
            "workspace_agents",
            "workspace_apps",
        ] {
            assert!(
                render.contains(&format!(" {table} ")),
                "{table} is not rendered"
            );
            assert!(
                workspace_only.contains(&table) || sql.contains(&format!(" {table} ")),
                "{table} is not stamped"
            );
        }
    }

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
