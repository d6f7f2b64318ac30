//! The PostgreSQL store. Every SQL statement of coderd lives in this crate, one module per
//! aggregate; the HTTP layer sees plain row structs and [`StoreError`].

mod agents;
mod api_keys;
mod builds;
pub mod builtin;
mod files;
mod groups;
mod job_logs;
mod job_results;
mod jobs;
pub mod model;
mod organizations;
mod provisioner_daemons;
pub mod pubsub;
mod render;
mod resources;
pub mod schedule;
mod status;
mod template_versions;
mod templates;
mod users;
mod workspaces;

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

pub use agents::{
    AgentIdentity, AgentLogRow, AgentLogSourceRow, AgentMetadataRow, AgentScriptRow, LogsOutcome,
    NewAgentLog, ScriptTiming,
};
pub use files::FileRow;

/// The system user that initiates automatic builds (hidden from user listings).
pub const SYSTEM_USER_ID: uuid::Uuid = uuid::uuid!("c42fdf75-3097-471c-8c33-fb52454d81c0");
pub use api_keys::{ActorRow, ApiKeyRow, NewApiKey};
pub use builds::{BuildContext, BuildInsertError, BuildRow, NewBuild};
pub use groups::{GroupFilter, GroupMemberRow, GroupRow, NewGroup, UpdateGroup};
pub use job_logs::{LogRow, NewLog};
pub use job_results::{BuildProduct, Completion, ImportProduct, Produced};
pub use jobs::{
    insert_job, mutate_tags, Acquired, CancelOutcome, JobFilter, JobRow, NewJob, ReapedJob,
};
pub use organizations::{MemberWithUserRow, MembershipRow, NewOrganization, OrganizationRow};
pub use provisioner_daemons::{DaemonRow, NewDaemon};
pub use render::{RenderRows, RenderStamps, Stamp};
pub use resources::{AgentRow, AppRow, ResourceRow};
pub use status::{
    AgentStatus, BuildStatus, DaemonStatus, JobStatus, LogLevel, Transition, UnknownValue,
};
pub use template_versions::{NewVersion, VersionRow};
pub use templates::{
    CreateTemplateError, TemplateFields, TemplateRow, TemplateSearch, TemplateVisibility,
};
pub use users::{GitSshKeyRow, NewUser, UserFilter, UserRow};
pub use workspaces::{
    CreatedWorkspace, LifecycleCandidate, LifecycleLock, NewWorkspace, TemplateStats,
    WorkspaceFilter, WorkspaceRow, WorkspaceVisibility,
};

/// The migrations in `migrations/`, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// What went wrong in the store, in the terms a caller acts on: the row is not there, a value
/// that must be unique is taken (and by which constraint), or anything else.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique constraint (named) was violated.
    #[error("unique constraint {0} violated")]
    Conflict(String),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                StoreError::Conflict(db.constraint().unwrap_or_default().to_string())
            }
            other => StoreError::Database(other),
        }
    }
}

impl StoreError {
    /// The unique constraint this error violated, if that is what it is.
    pub fn conflict(&self) -> Option<&str> {
        match self {
            StoreError::Conflict(constraint) => Some(constraint),
            _ => None,
        }
    }

    /// The database could not be reached (down, restarting, or no connection free within
    /// [`ACQUIRE_TIMEOUT`]): worth retrying, and not the caller's fault.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => sqlx_unavailable(e),
            _ => false,
        }
    }
}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // Class 08 (connection exception), 57P01-57P03 (shutting down, cannot connect now).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a caller does with a store result before answering with it.
pub trait StoreResultExt<T> {
    /// A missing row becomes `Ok(None)`; every other error stays one.
    fn optional(self) -> Result<Option<T>>;
}

impl<T> StoreResultExt<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// How long a query waits for a free connection (or for the database to accept one) before
/// failing: a request during an outage answers 503 quickly instead of hanging.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// Connections that always use a statement's generic plan (`plan_cache_mode =
    /// force_generic_plan`), for statements that read by ids and whose best plan therefore
    /// does not depend on the values: [`Store::render_rows`]. Left to choose, PostgreSQL
    /// re-plans those on every execution, because the generic plan's estimate (ten elements
    /// for every id array) is dearer than one custom plan's, and planning the render
    /// statement costs about three times running it (benches/README.md, `throughput`, run 4).
    /// Half of `max_connections`; `None` when that is 1 (then `pool` serves them).
    generic_pool: Option<PgPool>,
    /// The pubsub's LISTEN connection, apart from `pool` so it never takes a request's place
    /// (with `max_connections = 1` it would otherwise hold the only one).
    listen_pool: PgPool,
    /// Totals of workspace searches kept while the rows they count are unchanged
    /// (`Store::list_workspaces`).
    counts: std::sync::Arc<workspaces::WorkspaceCounts>,
}

/// How to reach the database and how many connections to keep.
#[derive(Clone)]
pub struct ConnectConfig {
    pub url: String,
    pub max_connections: u32,
    /// How long to keep retrying the first connection.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// `url` with its password (the user info's, and any `*password*` parameter's) replaced by
/// `***`, to print it. What does not look like a URL is replaced whole.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redacted>".into();
    };
    // The last `@`: a password with an unescaped `@` is hidden whole (with the host, at worst).
    let (user, after) = match rest.rsplit_once('@') {
        Some((info, after)) => match info.split_once(':') {
            Some((user, _)) => (format!("{user}:***@"), after),
            None => (format!("{info}@"), after),
        },
        None => (String::new(), rest),
    };
    let after = match after.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                        format!("{k}=***")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => after.to_string(),
    };
    format!("{scheme}://{user}{after}")
}

/// A pooled connection idle at least this long is pinged before it serves a statement.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Whether a connection may serve (`before_acquire`): one in use moments ago may, unchecked (a
/// ping before every statement is a round trip each); one that sat idle is pinged first, and
/// closed if the database does not answer (the pool then takes or opens another). Without it a
/// database restart cost one failed request per pooled connection, found by the requests that
/// drew them; the id-keyed pool, which only requests use, would hand them all to users.
fn ping_if_idle(
    conn: &mut sqlx::PgConnection,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = sqlx::Result<bool>> + Send + '_>> {
    Box::pin(async move {
        if meta.idle_for < PING_IF_IDLE_FOR {
            return Ok(true);
        }
        Ok(sqlx::Connection::ping(conn).await.is_ok())
    })
}

/// A pool that requests draw from, of at most `max` connections.
fn request_pool(max: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // No ping before every statement: that is a round trip per statement. Only a
        // connection that sat idle is pinged first.
        .test_before_acquire(false)
        .before_acquire(ping_if_idle)
}

impl Store {
    /// Connects (retrying while the database comes up) and applies pending migrations.
    pub async fn connect(cfg: &ConnectConfig) -> Result<Store> {
        let opts: PgConnectOptions = cfg.url.parse().map_err(StoreError::Database)?;
        let opts = opts.log_statements(tracing::log::LevelFilter::Trace);
        let started = Instant::now();
        let mut attempt = 0u32;
        // With two or more connections allowed, half of them (rounded down) are for id-keyed
        // reads (`generic_pool`).
        let max = cfg.max_connections.max(1);
        let general = if max >= 2 { max - max / 2 } else { 1 };
        let pool = loop {
            attempt += 1;
            let res = request_pool(general).connect_with(opts.clone()).await;
            match res {
                Ok(pool) => break pool,
                Err(err) if started.elapsed() < cfg.connect_timeout => {
                    tracing::warn!(
                        attempt,
                        host = opts.get_host(),
                        port = opts.get_port(),
                        error = %err,
                        "waiting for PostgreSQL to accept connections"
                    );
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt.min(4))))
                        .await;
                }
                Err(err) => return Err(err.into()),
            }
        };
        let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
            .fetch_one(&pool)
            .await?;
        if version < 130000 {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                format!("PostgreSQL 13 or newer is required (server_version_num = {version})")
                    .into(),
            )));
        }
        // sqlx holds a session advisory lock while migrating, so replicas starting together
        // apply each migration exactly once.
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        let generic_pool = (max >= 2).then(|| {
            request_pool(max / 2)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::Executor::execute(conn, "SET plan_cache_mode = force_generic_plan")
                            .await
                            .map(|_| ())
                    })
                })
                .connect_lazy_with(opts.clone())
        });
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(opts);
        Ok(Store {
            pool,
            generic_pool,
            listen_pool,
            counts: Default::default(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connections of both request pools: (open, idle, most allowed).
    pub fn pool_usage(&self) -> (u32, usize, u32) {
        let of = |p: &PgPool| (p.size(), p.num_idle(), p.options().get_max_connections());
        let (open, idle, max) = of(&self.pool);
        match &self.generic_pool {
            Some(g) => {
                let (o, i, m) = of(g);
                (open + o, idle + i, max + m)
            }
            None => (open, idle, max),
        }
    }

    /// `plan_cache_mode` as a connection of each request pool has it: (the general pool, the
    /// pool of id-keyed reads). For tests and diagnostics.
    pub async fn plan_cache_modes(&self) -> Result<(String, String)> {
        let q = "SELECT current_setting('plan_cache_mode')";
        Ok((
            sqlx::query_scalar(q).fetch_one(&self.pool).await?,
            sqlx::query_scalar(q).fetch_one(self.generic_pool()).await?,
        ))
    }

    /// The pool for statements that read by ids.
    pub(crate) fn generic_pool(&self) -> &PgPool {
        self.generic_pool.as_ref().unwrap_or(&self.pool)
    }

    /// The pool (of one) the pubsub's LISTEN connection comes from.
    pub fn listen_pool(&self) -> &PgPool {
        &self.listen_pool
    }

    pub async fn close(&self) {
        self.listen_pool.close().await;
        if let Some(g) = &self.generic_pool {
            g.close().await;
        }
        self.pool.close().await;
    }

    /// Cheap liveness check of the database connection.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl Store {
    /// This deployment's id, created with the database.
    pub async fn deployment_id(&self) -> Result<String> {
        Ok(
            sqlx::query_scalar("SELECT value FROM site_configs WHERE key = 'deployment_id'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The secret the replicas' DERP relays mesh with: `candidate` if none was stored yet (the
    /// first replica to ask decides), else the stored one.
    pub async fn derp_mesh_key(&self, candidate: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO site_configs (key, value) VALUES ('derp_mesh_key', $1) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(candidate)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM site_configs WHERE key = 'derp_mesh_key'")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_printed_without_their_passwords() {
        for (url, shown) in [
            (
                "postgres://coder:hunter2@db:5432/coder?sslmode=disable",
                "postgres://coder:***@db:5432/coder?sslmode=disable",
            ),
            (
                "postgres://coder@db/coder?password=hunter2&sslmode=require",
                "postgres://coder@db/coder?password=***&sslmode=require",
            ),
            (
                "postgres://coder:hun@ter2@db/coder?sslpassword=hunter2",
                "postgres://coder:***@db/coder?sslpassword=***",
            ),
            ("postgres://db/coder", "postgres://db/coder"),
            ("host=db password=hunter2", "<redacted>"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }

    #[test]
    fn connect_config_debug_hides_the_password() {
        let cfg = ConnectConfig {
            url: "postgres://coder:hunter2@db/coder".into(),
            max_connections: 10,
            connect_timeout: Duration::from_secs(1),
        };
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(
            printed.contains("postgres://coder:***@db/coder"),
            "{printed}"
        );
    }
}
