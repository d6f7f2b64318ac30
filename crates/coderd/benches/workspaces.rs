//! `GET /api/v2/workspaces` (listing and search) and `GET /api/v2/workspaces/{id}` with 10,000
//! workspaces, measured over HTTP against the real server, with the SQL statements one request
//! costs counted by `pg_stat_statements`.
//!
//! Run with `cargo bench -p coderd --bench workspaces`. It starts a throwaway built-in PostgreSQL
//! (fsync off, `pg_stat_statements` preloaded), starts the server in-process on it, creates 100
//! users, two echo templates and two real workspaces (one running, one stopped) through the API,
//! then copies those two workspaces in bulk with SQL (their builds, jobs, resources, agents and
//! apps, with fresh ids) up to 10,000 workspaces spread over the 100 owners and both templates,
//! and `ANALYZE`s. It prints median / p95 / p99 latencies and statements per request. See
//! benches/README.md for results.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use coderd::config::ServerOptions;
use coderd::server::StartOptions;
use coderd_db::builtin::{BuiltinOptions, BuiltinPostgres};
use codersdk::Client;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

mod common;
use common::api;
use common::echo::create_template;
use common::users::{OWNER_EMAIL, OWNER_PASSWORD};
use common::workspace::WorkspaceApi;

/// Workspaces in all (two real ones, the rest copies).
const WORKSPACES: i64 = 10_000;
/// Users owning them (the first user and 99 members), round robin.
const OWNERS: usize = 100;
/// Timed requests per case, after `WARMUP` untimed ones.
const REPS: usize = 50;
const WARMUP: usize = 5;
/// How long each of the real workspaces' builds may take.
const SETUP_WAIT: Duration = Duration::from_secs(60);
/// Requests whose statements are counted one by one.
const COUNTED: usize = 5;

/// The echo archive of both templates: a container with metadata and an agent with two apps
/// when started, nothing when stopped (as a Docker template).
fn echo_template() -> Value {
    json!({
        "start": {
            "logs": [{"output": "starting"}],
            "resources": [{
                "name": "dev",
                "type": "docker_container",
                "icon": "/icon/docker.png",
                "metadata": [
                    {"key": "image", "value": "codercom/enterprise-base:ubuntu"},
                    {"key": "cpu", "value": "2"}
                ],
                "agents": [{
                    "name": "main",
                    "operating_system": "linux",
                    "architecture": "amd64",
                    "directory": "/home/coder",
                    "apps": [
                        {"slug": "code-server", "display_name": "code-server",
                         "url": "http://localhost:13337", "icon": "/icon/code.svg",
                         "subdomain": false, "sharing_level": "owner"},
                        {"slug": "terminal", "display_name": "Terminal",
                         "command": "bash", "sharing_level": "owner"}
                    ]
                }]
            }, {
                "name": "home",
                "type": "docker_volume"
            }]
        },
        "stop": {"resources": [{"name": "home", "type": "docker_volume"}]}
    })
}

/// Copies rows of `table` selected by `from` (which names the source row `src` and the seed
/// row `s`), replacing the `overrides` columns with expressions. Every other column (read from
/// the catalog, so new columns are copied too) keeps the source row's value.
async fn copy_rows(
    conn: &mut PgConnection,
    table: &str,
    overrides: &[(&str, &str)],
    from: &str,
) -> u64 {
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND is_generated = 'NEVER' \
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .expect("reading columns");
    assert!(!columns.is_empty(), "table {table} not found");
    let overrides: HashMap<&str, &str> = overrides.iter().copied().collect();
    for c in overrides.keys() {
        assert!(
            columns.iter().any(|col| col == c),
            "{table} has no column {c}"
        );
    }
    let values: Vec<String> = columns
        .iter()
        .map(|c| match overrides.get(c.as_str()) {
            Some(expr) => expr.to_string(),
            None => format!("src.{c}"),
        })
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({}) SELECT {} {from}",
        columns.join(", "),
        values.join(", ")
    );
    sqlx::query(&sql)
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("copying {table}: {e}\n{sql}"))
        .rows_affected()
}

struct Seed {
    /// Usernames of the owners, `OWNERS` of them.
    usernames: Vec<String>,
    template_b: String,
    /// The real running workspace.
    workspace: Uuid,
}

/// New id of a copied row: derived from the new workspace and the source row, so rows of
/// several tables can refer to each other's copies without a mapping table.
fn new_id(source: &str) -> String {
    format!("md5(s.ws_id::text || {source}::text)::uuid")
}

async fn seed(client: &Client, db_url: &str) -> Seed {
    let started = Instant::now();
    let (owner, first, _) = common::first_owner(client.base_url()).await;
    let org = first.organization_id;

    let mut owner_ids = vec![first.user_id];
    let mut usernames = vec!["owner".to_string()];
    for i in 1..OWNERS {
        let name = format!("user{i:03}");
        let u = api(
            &owner,
            Method::POST,
            "/api/v2/users",
            Some(json!({
                "email": format!("{name}@example.com"),
                "username": name,
                "login_type": "none",
                "organization_ids": [org],
            })),
        )
        .await;
        owner_ids.push(serde_json::from_value(u["id"].clone()).expect("user id"));
        usernames.push(name);
    }
    let (template_a, version_a) = create_template(&owner, org, "bench-a", &echo_template()).await;
    let (template_b, version_b) = create_template(&owner, org, "bench-b", &echo_template()).await;
    let (template_a, version_a) = (template_a.id, version_a.id);
    let (template_b, version_b) = (template_b.id, version_b.id);

    let create = |name: &'static str| {
        let owner = owner.clone();
        async move {
            let w = owner.create_workspace(template_a, name).await;
            owner
                .wait_for_status_within(w.id, "running", SETUP_WAIT)
                .await;
            w.id
        }
    };
    let running = create("real-running").await;
    let stopped = create("real-stopped").await;
    owner.stop(stopped).await;
    owner
        .wait_for_status_within(stopped, "stopped", SETUP_WAIT)
        .await;
    eprintln!(
        "users, templates and 2 real workspaces created through the API in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut conn = PgConnection::connect(db_url).await.expect("connecting");
    // One seed row per copy: its id, owner, template (and that template's version), name and
    // the real workspace it copies (every third one the stopped one, with its two builds).
    sqlx::query(
        "CREATE TEMP TABLE seed AS \
         SELECT g, gen_random_uuid() AS ws_id, \
                ($1::uuid[])[1 + g % array_length($1::uuid[], 1)] AS owner_id, \
                CASE WHEN g % 2 = 0 THEN $2::uuid ELSE $3::uuid END AS template_id, \
                CASE WHEN g % 2 = 0 THEN $4::uuid ELSE $5::uuid END AS version_id, \
                'ws-' || lpad(g::text, 5, '0') AS name, \
                CASE WHEN g % 3 = 0 THEN $7::uuid ELSE $6::uuid END AS src_ws \
         FROM generate_series(1, $8::bigint) AS g",
    )
    .bind(&owner_ids)
    .bind(template_a)
    .bind(template_b)
    .bind(version_a)
    .bind(version_b)
    .bind(running)
    .bind(stopped)
    .bind(WORKSPACES - 2)
    .execute(&mut conn)
    .await
    .expect("seed table");
    let shifted = "src.created_at - s.g * interval '1 second'";
    let mut counts = Vec::new();
    counts.push((
        "workspaces",
        copy_rows(
            &mut conn,
            "workspaces",
            &[
                ("id", "s.ws_id"),
                ("owner_id", "s.owner_id"),
                ("template_id", "s.template_id"),
                ("name", "s.name"),
                ("created_at", shifted),
                ("updated_at", shifted),
                ("last_used_at", shifted),
            ],
            "FROM seed s JOIN workspaces src ON src.id = s.src_ws",
        )
        .await,
    ));
    let job_input = format!(
        "src.input || jsonb_build_object('workspace_build_id', {})",
        new_id("b.id")
    );
    counts.push((
        "provisioner_jobs",
        copy_rows(
            &mut conn,
            "provisioner_jobs",
            &[("id", &new_id("src.id")), ("input", &job_input)],
            "FROM seed s JOIN workspace_builds b ON b.workspace_id = s.src_ws \
             JOIN provisioner_jobs src ON src.id = b.job_id",
        )
        .await,
    ));
    counts.push((
        "workspace_builds",
        copy_rows(
            &mut conn,
            "workspace_builds",
            &[
                ("id", &new_id("src.id")),
                ("workspace_id", "s.ws_id"),
                ("job_id", &new_id("src.job_id")),
                ("template_version_id", "s.version_id"),
            ],
            "FROM seed s JOIN workspace_builds src ON src.workspace_id = s.src_ws",
        )
        .await,
    ));
    counts.push((
        "workspace_build_parameters",
        copy_rows(
            &mut conn,
            "workspace_build_parameters",
            &[("workspace_build_id", &new_id("src.workspace_build_id"))],
            "FROM seed s JOIN workspace_builds b ON b.workspace_id = s.src_ws \
             JOIN workspace_build_parameters src ON src.workspace_build_id = b.id",
        )
        .await,
    ));
    counts.push((
        "workspace_resources",
        copy_rows(
            &mut conn,
            "workspace_resources",
            &[("id", &new_id("src.id")), ("job_id", &new_id("src.job_id"))],
            "FROM seed s JOIN workspace_builds b ON b.workspace_id = s.src_ws \
             JOIN workspace_resources src ON src.job_id = b.job_id",
        )
        .await,
    ));
    counts.push((
        "workspace_resource_metadata",
        copy_rows(
            &mut conn,
            "workspace_resource_metadata",
            &[(
                "workspace_resource_id",
                &new_id("src.workspace_resource_id"),
            )],
            "FROM seed s JOIN workspace_builds b ON b.workspace_id = s.src_ws \
             JOIN workspace_resources r ON r.job_id = b.job_id \
             JOIN workspace_resource_metadata src ON src.workspace_resource_id = r.id",
        )
        .await,
    ));
    counts.push((
        "workspace_agents",
        copy_rows(
            &mut conn,
            "workspace_agents",
            &[
                ("id", &new_id("src.id")),
                ("resource_id", &new_id("src.resource_id")),
                ("auth_token", "gen_random_uuid()"),
            ],
            "FROM seed s JOIN workspace_builds b ON b.workspace_id = s.src_ws \
             JOIN workspace_resources r ON r.job_id = b.job_id \
             JOIN workspace_agents src ON src.resource_id = r.id",
        )
        .await,
    ));
    counts.push((
        "workspace_apps",
        copy_rows(
            &mut conn,
            "workspace_apps",
            &[
                ("id", &new_id("src.id")),
                ("agent_id", &new_id("src.agent_id")),
            ],
            "FROM seed s JOIN workspace_builds b ON b.workspace_id = s.src_ws \
             JOIN workspace_resources r ON r.job_id = b.job_id \
             JOIN workspace_agents a ON a.resource_id = r.id \
             JOIN workspace_apps src ON src.agent_id = a.id",
        )
        .await,
    ));
    sqlx::query("ANALYZE")
        .execute(&mut conn)
        .await
        .expect("analyze");
    let _ = conn.close().await;
    let rows: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
    eprintln!(
        "copied in {:.1} s (with ANALYZE): {}",
        started.elapsed().as_secs_f64(),
        rows.join(", ")
    );
    Seed {
        usernames,
        template_b: "bench-b".into(),
        workspace: running,
    }
}

struct Stats {
    median: f64,
    p95: f64,
    p99: f64,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = samples.len();
    let rank = |p: f64| ms(samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1]);
    Stats {
        median: (ms(samples[(n - 1) / 2]) + ms(samples[n / 2])) / 2.0,
        p95: rank(0.95),
        p99: rank(0.99),
    }
}

/// `pg_stat_statements` of the server's database, when it could be loaded.
struct Statements {
    conn: PgConnection,
}

/// Cumulative statement counts and execution time by statement text, without our own probes.
type Snapshot = HashMap<String, (i64, f64)>;

impl Statements {
    async fn snapshot(&mut self) -> Snapshot {
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(
            "SELECT query, sum(calls)::bigint, sum(total_exec_time)::float8 FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND query NOT LIKE '%pg_stat_statements%' \
             GROUP BY query",
        )
        .fetch_all(&mut self.conn)
        .await
        .expect("reading pg_stat_statements");
        rows.into_iter().map(|(q, c, t)| (q, (c, t))).collect()
    }
}

/// Statements run between two snapshots: (text, calls, total ms).
type Delta = Vec<(String, i64, f64)>;
/// The statements of one request of some cases, by case.
type Details = Vec<(String, Delta)>;

/// Statements (calls, total ms) run between two snapshots, by statement text.
fn delta(before: &Snapshot, after: &Snapshot) -> Delta {
    let mut out: Vec<(String, i64, f64)> = after
        .iter()
        .filter_map(|(q, (c, t))| {
            let (c0, t0) = before.get(q).copied().unwrap_or((0, 0.0));
            (c - c0 > 0).then(|| (q.clone(), c - c0, t - t0))
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

struct Case {
    name: String,
    path: String,
}

struct Row {
    name: String,
    returned: usize,
    count: i64,
    bytes: usize,
    stats: Stats,
    /// Statements per request: min and max over `COUNTED` requests.
    statements: Option<(i64, i64)>,
    /// Mean database execution time per request over the timed runs.
    db_ms: Option<f64>,
}

async fn get(http: &reqwest::Client, base: &str, token: &str, path: &str) -> axum::body::Bytes {
    let resp = http
        .get(format!("{base}{path}"))
        .header("Coder-Session-Token", token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status();
    let body = resp.bytes().await.expect("reading the body");
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body)
    );
    body
}

async fn measure(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    case: &Case,
    stmts: &mut Option<Statements>,
    details: &mut Details,
) -> Row {
    let first = get(http, base, token, &case.path).await;
    let v: Value = serde_json::from_slice(&first).expect("JSON");
    let (returned, count) = match v.get("workspaces") {
        Some(list) => (
            list.as_array().map_or(0, Vec::len),
            v["count"].as_i64().unwrap_or(-1),
        ),
        None => (1, 1),
    };
    for _ in 1..WARMUP {
        get(http, base, token, &case.path).await;
    }
    let mut statements = None;
    if let Some(s) = stmts.as_mut() {
        let (mut lo, mut hi) = (i64::MAX, 0);
        for i in 0..COUNTED {
            let before = s.snapshot().await;
            get(http, base, token, &case.path).await;
            let d = delta(&before, &s.snapshot().await);
            let n: i64 = d.iter().map(|(_, c, _)| c).sum();
            lo = lo.min(n);
            hi = hi.max(n);
            if i == 0 {
                details.push((case.name.clone(), d));
            }
        }
        statements = Some((lo, hi));
    }
    let before = match stmts.as_mut() {
        Some(s) => Some(s.snapshot().await),
        None => None,
    };
    let mut samples = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let started = Instant::now();
        get(http, base, token, &case.path).await;
        samples.push(started.elapsed());
    }
    let db_ms = match (stmts.as_mut(), before) {
        (Some(s), Some(before)) => {
            let d = delta(&before, &s.snapshot().await);
            Some(d.iter().map(|(_, _, t)| t).sum::<f64>() / REPS as f64)
        }
        _ => None,
    };
    Row {
        name: case.name.clone(),
        returned,
        count,
        bytes: first.len(),
        stats: stats(samples),
        statements,
        db_ms,
    }
}

fn print_table(version: &str, rows: &[Row], details: &[(String, Delta)]) {
    println!("{version}");
    println!();
    println!(
        "{:<52}  {:>4}  {:>6}  {:>8}  {:>9}  {:>9}  {:>9}  {:>7}  {:>8}",
        "request", "rows", "count", "bytes", "median", "p95", "p99", "stmts", "DB ms"
    );
    println!("{}", "-".repeat(52 + 4 + 6 + 8 + 9 * 3 + 7 + 8 + 16));
    for r in rows {
        let stmts = match r.statements {
            Some((lo, hi)) if lo == hi => lo.to_string(),
            Some((lo, hi)) => format!("{lo}-{hi}"),
            None => "n/a".into(),
        };
        let db = r.db_ms.map_or("n/a".into(), |d| format!("{d:.2}"));
        println!(
            "{:<52}  {:>4}  {:>6}  {:>8}  {:>6.2} ms  {:>6.2} ms  {:>6.2} ms  {:>7}  {:>8}",
            r.name,
            r.returned,
            r.count,
            r.bytes,
            r.stats.median,
            r.stats.p95,
            r.stats.p99,
            stmts,
            db
        );
    }
    println!();
    println!(
        "{WORKSPACES} workspaces, {OWNERS} owners; {REPS} timed requests per row after {WARMUP} \
         warm-up ones, one at a time over a keep-alive connection, as the owner (site-wide read). \
         stmts = SQL statements per request (min-max over {COUNTED} requests, pg_stat_statements); \
         DB ms = their mean execution time per request."
    );
    for (name, d) in details {
        println!();
        println!("statements of one `{name}`:");
        for (q, c, t) in d {
            let q: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = q.chars().take(110).collect();
            println!("  {c:>3} x {t:>7.3} ms  {short}");
        }
    }
}

async fn run(db_url: String, stats_available: bool) -> (Vec<Row>, Details) {
    let opts = ServerOptions {
        http_address: "127.0.0.1:0".into(),
        postgres_url: Some(db_url.clone()),
        dangerous_disable_rate_limits: true,
        // No background work while statements are counted: daemons wake on notifications only,
        // the lifecycle executor never ticks, the reaper practically never.
        provisioner_poll_interval: Duration::from_secs(3600),
        job_reaper_interval: Duration::from_secs(3600),
        autobuild_poll_interval: Duration::ZERO,
        ..Default::default()
    };
    let server = coderd::server::start(opts, StartOptions::default())
        .await
        .expect("starting the server");
    let base = format!("http://{}", server.local_addr());
    let client = Client::new(&base);
    let seed = seed(&client, &db_url).await;
    let token = client
        .login_with_password(OWNER_EMAIL, OWNER_PASSWORD)
        .await
        .expect("logging in")
        .session_token;

    let mut stmts = if stats_available {
        let mut conn = PgConnection::connect(&db_url).await.expect("connecting");
        match sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&mut conn)
            .await
        {
            Ok(_) => Some(Statements { conn }),
            Err(e) => {
                eprintln!("pg_stat_statements unusable: {e}");
                None
            }
        }
    } else {
        None
    };

    let owner_user = &seed.usernames[42];
    let cases = [
        (
            "GET /workspaces?limit=1",
            "/api/v2/workspaces?limit=1".to_string(),
        ),
        (
            "GET /workspaces?limit=25",
            "/api/v2/workspaces?limit=25".to_string(),
        ),
        (
            "GET /workspaces?limit=100",
            "/api/v2/workspaces?limit=100".to_string(),
        ),
        (
            "GET /workspaces?limit=25&offset=5000",
            "/api/v2/workspaces?limit=25&offset=5000".to_string(),
        ),
        (
            "q=owner:<user> limit=25",
            format!("/api/v2/workspaces?limit=25&q=owner:{owner_user}"),
        ),
        (
            "q=template:<name> status:running limit=25",
            format!(
                "/api/v2/workspaces?limit=25&q=template:{}%20status:running",
                seed.template_b
            ),
        ),
        (
            "q=name:123 limit=25",
            "/api/v2/workspaces?limit=25&q=name:123".to_string(),
        ),
        (
            "GET /workspaces/{id}",
            format!("/api/v2/workspaces/{}", seed.workspace),
        ),
    ];
    let http = reqwest::Client::new();
    let mut rows = Vec::new();
    let mut details = Vec::new();
    for (name, path) in cases {
        let case = Case {
            name: name.to_string(),
            path,
        };
        let mut d = Vec::new();
        let row = measure(&http, &base, &token, &case, &mut stmts, &mut d).await;
        eprintln!(
            "{name}: median {:.2} ms, {} rows of {}",
            row.stats.median, row.returned, row.count
        );
        if matches!(name, "GET /workspaces?limit=25" | "GET /workspaces/{id}") {
            details.extend(d);
        }
        rows.push(row);
    }
    // Sanity: every listing counted every workspace it should.
    assert_eq!(
        rows[1].count, WORKSPACES,
        "the listing counts every workspace"
    );
    assert_eq!(rows[1].returned, 25);
    assert_eq!(rows[2].returned, 100);
    assert_eq!(rows[3].returned, 25);
    assert_eq!(rows[4].count, WORKSPACES / OWNERS as i64);
    if let Some(s) = stmts {
        let _ = s.conn.close().await;
    }
    server.shutdown().await;
    (rows, details)
}

fn main() {
    // `cargo test --benches` runs bench targets without `--bench`: nothing to check there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("workspaces: skipped (run it with `cargo bench`)");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench());
}

/// With this set, every statement slower than 5 ms is logged with its `EXPLAIN ANALYZE` plan
/// (auto_explain), and the log copied to `PLANS_LOG` at the end. It slows those statements.
const EXPLAIN_ENV: &str = "CODERD_BENCH_EXPLAIN";
const PLANS_LOG: &str = "/tmp/coderd-bench-workspaces-plans.log";

/// Preloads `pg_stat_statements` (a restart) and creates it in the `coder` database.
async fn enable_statements(pg: &mut BuiltinPostgres, dir: &std::path::Path) -> bool {
    let explain = std::env::var_os(EXPLAIN_ENV).is_some();
    let attempt = async {
        let mut conn = PgConnection::connect(pg.url()).await?;
        sqlx::raw_sql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            .execute(&mut conn)
            .await?;
        if explain {
            // Its settings are known once it is loaded.
            sqlx::raw_sql("LOAD 'auto_explain'")
                .execute(&mut conn)
                .await?;
            for setting in [
                "session_preload_libraries = 'auto_explain'",
                "auto_explain.log_min_duration = '5ms'",
                "auto_explain.log_analyze = on",
                "auto_explain.log_buffers = on",
            ] {
                sqlx::raw_sql(&format!("ALTER SYSTEM SET {setting}"))
                    .execute(&mut conn)
                    .await?;
            }
        }
        conn.close().await?;
        Ok::<_, sqlx::Error>(())
    };
    if let Err(e) = attempt.await {
        eprintln!("pg_stat_statements: cannot preload it ({e}); statements will not be counted");
        return false;
    }
    pg.stop().await;
    *pg = BuiltinPostgres::start(
        dir,
        &BuiltinOptions {
            unsafe_no_fsync: true,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("restarting the built-in PostgreSQL: {e}"));
    let attempt = async {
        let mut conn = PgConnection::connect(pg.url()).await?;
        sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok::<_, sqlx::Error>(())
    };
    match attempt.await {
        Ok(()) => true,
        Err(e) => {
            eprintln!("pg_stat_statements: cannot create it ({e}); statements will not be counted");
            false
        }
    }
}

async fn bench() {
    let root = std::env::temp_dir().join(format!("coderd-bench-ws-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("creating the database directory");
    // The database may run as an unprivileged user, who must reach its directory.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
        .expect("setting the database directory's mode");
    let started = Instant::now();
    let dir = root.join("postgres");
    let mut pg = BuiltinPostgres::start(
        &dir,
        &BuiltinOptions {
            unsafe_no_fsync: true,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("starting the built-in PostgreSQL: {e}"));
    let stats_available = enable_statements(&mut pg, &dir).await;
    let url = pg.url().to_string();
    let version: String = {
        let mut conn = PgConnection::connect(&url).await.expect("connecting");
        let v = sqlx::query_scalar("SELECT version()")
            .fetch_one(&mut conn)
            .await
            .expect("server version");
        let _ = conn.close().await;
        v
    };
    eprintln!(
        "{version}; ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Run in a task so that a failed check still stops the database before it propagates.
    let outcome = tokio::spawn(run(url, stats_available)).await;
    pg.stop().await;
    if std::env::var_os(EXPLAIN_ENV).is_some() {
        match std::fs::copy(dir.join("postgres.log"), PLANS_LOG) {
            Ok(_) => eprintln!("plans of statements over 5 ms: {PLANS_LOG}"),
            Err(e) => eprintln!("copying the PostgreSQL log: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    match outcome {
        Ok((rows, details)) => {
            print_table(&version, &rows, &details);
            eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
        }
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("benchmark task failed: {e}"),
    }
}
