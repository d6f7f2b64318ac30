//! Hot reads under concurrency, beside PostgreSQL's own ceiling for a one-row answer: the
//! table of the throughput issue, for 1, 2,000 and 10,000 workspaces.
//!
//! `cargo bench -p coderd --bench throughput` (`SIZES=1,2000,10000` by default,
//! `CONCURRENCY=32`, `SECONDS=8`; `ONLY=<text>` measures only the paths containing it). It
//! starts a built-in PostgreSQL (fsync off) and one release `coderd` (three provisioner
//! daemons, rate limits off), creates workspaces through the API (echo builds, eight clients
//! creating one after another) up to each size, and for each size:
//! - runs `pgbench` on the same database: 32 clients reading one workspace row by primary key
//!   (through a numbered table of the ids) for the same time, the physical limit for a
//!   one-row answer on this machine;
//! - hammers each endpoint with 32 keep-alive connections for the same time, counting answers
//!   per second, the 99th percentile latency and the SQL statements per request (the server's
//!   own statement counter, `coderd_db_query_latencies_seconds_count`, before and after);
//! - measures where the CPU went: the server's own CPU time and that of every PostgreSQL
//!   process, per answer (`/proc/<pid>/stat`; the load loop's share is what is left);
//! - reads the server's peak RSS.
//!
//! benches/README.md has the numbers and what changed them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use codersdk::Client;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

mod common;
#[path = "common/proc.rs"]
mod proc;

use common::echo::create_template;
use common::workspace::WorkspaceApi;
use common::{api, SETUP_TIMEOUT};
use proc::{raise_fd_limit, start_coderd, Replica};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("throughput: skipped (run it with `cargo bench`)");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench());
}

struct Load {
    rps: f64,
    p99_ms: f64,
    statements: f64,
    /// Share of the rendered workspaces and builds that were not current in memory.
    render_misses: f64,
    /// CPU microseconds per answer: the server's, and PostgreSQL's (all its processes).
    server_us: f64,
    postgres_us: f64,
    errors: usize,
}

/// CPU ticks of the server, and of every process named `postgres` (its backends).
fn cpu_ticks(server_pid: u32) -> (u64, u64) {
    let mut postgres = 0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            postgres += name.parse().map(proc::cpu_ticks_of).unwrap_or(0);
        }
    }
    (proc::cpu_ticks_of(server_pid), postgres)
}

fn ticks_to_us(ticks: u64) -> f64 {
    ticks as f64 * 1e6 / proc::clock_ticks_per_second()
}

/// `concurrency` connections asking for `path` as fast as they are answered, for `secs`.
async fn load(srv: &Replica, token: &str, path: &str, concurrency: usize, secs: u64) -> Load {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("http client");
    let url = format!("{}{path}", srv.url);
    // Warm up: connections open, statements prepared.
    for _ in 0..concurrency {
        let _ = client
            .get(&url)
            .header("Coder-Session-Token", token)
            .send()
            .await;
    }
    let before = statements(srv).await;
    let renders_before = renders(srv).await;
    let cpu_before = cpu_ticks(srv.child.id());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token) = (client.clone(), url.clone(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                match client
                    .get(&url)
                    .header("Coder-Session-Token", &token)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = cpu_ticks(srv.child.id());
    let after = statements(srv).await;
    let renders_after = renders(srv).await;
    all.sort();
    let p99 = all
        .get(all.len().saturating_mul(99) / 100)
        .copied()
        .unwrap_or_default();
    Load {
        rps: all.len() as f64 / elapsed,
        p99_ms: p99.as_secs_f64() * 1000.0,
        statements: (after - before) / all.len().max(1) as f64,
        render_misses: {
            let (hits, misses) = (
                renders_after.0 - renders_before.0,
                renders_after.1 - renders_before.1,
            );
            if hits + misses > 0.0 {
                misses / (hits + misses)
            } else {
                f64::NAN
            }
        },
        server_us: ticks_to_us(cpu_after.0.saturating_sub(cpu_before.0)) / all.len().max(1) as f64,
        postgres_us: ticks_to_us(cpu_after.1.saturating_sub(cpu_before.1))
            / all.len().max(1) as f64,
        errors,
    }
}

/// SQL statements the server has run so far.
async fn statements(srv: &Replica) -> f64 {
    srv.metrics_text()
        .await
        .lines()
        .filter(|l| l.starts_with("coderd_db_query_latencies_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Renderings served from memory and read from the database so far
/// (`coderd_render_cache_lookups`).
async fn renders(srv: &Replica) -> (f64, f64) {
    let hits = srv
        .metric(r#"coderd_render_cache_lookups{outcome="hit"}"#)
        .await;
    let misses = srv
        .metric(r#"coderd_render_cache_lookups{outcome="miss"}"#)
        .await;
    (hits.max(0) as f64, misses.max(0) as f64)
}

/// pgbench's reads per second of one workspace row by primary key, `concurrency` clients.
fn pgbench(db_url: &str, dir: &std::path::Path, n: usize, concurrency: usize, secs: u64) -> f64 {
    // Beside the server binaries the built-in database uses, else on PATH.
    let bin = coderd_db::builtin::find_binaries()
        .map(|d| d.join("pgbench"))
        .ok()
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "pgbench".into());
    let script = dir.join("read_workspace.sql");
    std::fs::write(
        &script,
        format!(
            "\\set n random(1, {n})\n\
             SELECT w.* FROM workspaces w JOIN bench_workspace_ids b ON w.id = b.id WHERE b.n = :n;\n"
        ),
    )
    .expect("pgbench script");
    let out = std::process::Command::new(bin)
        .args(["-n", "-M", "prepared", "-c"])
        .arg(concurrency.to_string())
        .args(["-j", "2", "-T"])
        .arg(secs.to_string())
        .arg("-f")
        .arg(&script)
        .arg(db_url)
        .output()
        .expect("running pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| {
            panic!(
                "pgbench printed no tps:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Creates workspaces of `template` until there are `target`, eight clients each creating one
/// after another, and waits for their builds; prints the rate and the server's statements per
/// workspace created and built.
async fn grow(srv: &Replica, owner: &Client, template: Uuid, have: &mut Vec<Uuid>, target: usize) {
    let owner = Arc::new(owner.clone());
    let statements_before = statements(srv).await;
    let cpu_before = cpu_ticks(srv.child.id());
    let started = Instant::now();
    let from = have.len();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(from));
    // In the order the answers came: the last ones were queued last.
    let made_ids = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (owner, next, made_ids) = (owner.clone(), next.clone(), made_ids.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= target {
                    return;
                }
                let id = owner
                    .create_workspace(template, &format!("ws-{i}"))
                    .await
                    .id;
                made_ids.lock().expect("ids").push(id);
            }
        }));
    }
    for c in clients {
        c.await.expect("creating client");
    }
    have.extend(made_ids.lock().expect("ids").drain(..));
    // Every build done (the last ones queued last).
    for w in have.iter().rev().take(16) {
        owner
            .wait_for_status_within(*w, "running", SETUP_TIMEOUT)
            .await;
    }
    let made = have.len() - from;
    if made > 0 {
        let secs = started.elapsed().as_secs_f64();
        // The server's statements in those seconds, its own background ones included.
        let per = (statements(srv).await - statements_before) / made as f64;
        let cpu_after = cpu_ticks(srv.child.id());
        let cpu_each =
            |after: u64, before: u64| ticks_to_us(after.saturating_sub(before)) / made as f64;
        println!(
            "created {made} workspaces in {secs:.1} s ({:.0} creates and builds a second, \
             {per:.1} statements each, CPU each: server {:.0} µs, PostgreSQL {:.0} µs)",
            made as f64 / secs,
            cpu_each(cpu_after.0, cpu_before.0),
            cpu_each(cpu_after.1, cpu_before.1),
        );
    }
}

async fn bench() {
    let sizes: Vec<usize> = std::env::var("SIZES")
        .unwrap_or_else(|_| "1,2000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let concurrency = env_or("CONCURRENCY", 32usize);
    let secs = env_or("SECONDS", 8u64);
    raise_fd_limit();
    let (root, mut pg) = proc::bench_postgres("throughput").await;
    let mut srv = start_coderd(&root, pg.url(), 3);
    srv.wait_healthy().await;
    let (owner, first, token) = common::first_owner(&srv.url).await;
    let echo = json!({"start": {"resources": [{"name": "dev", "type": "echo_machine",
        "agents": [{"name": "main", "operating_system": "linux", "architecture": "amd64"}]}]}});
    let (template, _) = create_template(&owner, first.organization_id, "bench", &echo).await;
    let template = template.id;
    // A member with three workspaces of their own: the narrow searches below match only
    // theirs, however many the owner has.
    api(
        &owner,
        Method::POST,
        "/api/v2/users",
        Some(
            json!({"email": "member@example.com", "username": "member", "name": "Member",
            "password": "SomeSecurePassword!", "login_type": "password",
            "organization_ids": [first.organization_id]}),
        ),
    )
    .await;
    let member = {
        let anon = Client::new(&srv.url);
        let token = anon
            .login_with_password("member@example.com", "SomeSecurePassword!")
            .await
            .expect("logging in as the member")
            .session_token;
        anon.with_token(token)
    };
    for i in 0..3 {
        let w = member
            .create_workspace(template, &format!("mine-{i}"))
            .await;
        member
            .wait_for_status_within(w.id, "running", SETUP_TIMEOUT)
            .await;
    }

    let mut workspaces = Vec::new();
    let mut db = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(pg.url())
            .await
            .expect("bench db connection")
    };
    println!(
        "| workspaces | request | req/s | share of pgbench | p99 | statements/request | \
         server CPU/request | PostgreSQL CPU/request | render misses |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &size in &sizes {
        grow(&srv, &owner, template, &mut workspaces, size).await;
        // The steady state: what autovacuum would get to minutes after a bulk creation
        // (visibility maps, statistics), done now instead of inside the measured windows.
        sqlx::raw_sql("VACUUM ANALYZE")
            .execute(&mut db)
            .await
            .expect("vacuum after creating workspaces");
        sqlx::raw_sql(
            "DROP TABLE IF EXISTS bench_workspace_ids; \
             CREATE TABLE bench_workspace_ids AS \
               SELECT row_number() OVER (ORDER BY id) AS n, id FROM workspaces; \
             CREATE UNIQUE INDEX ON bench_workspace_ids (n); ANALYZE;",
        )
        .execute(&mut db)
        .await
        .expect("the ids pgbench reads by");
        // What the server runs on its own (daemons polling, the lifecycle executor): counted
        // in the statements per request below, so shown here.
        let idle_from = statements(&srv).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle = (statements(&srv).await - idle_from - 1.0) / 3.0;
        println!("| {size} | (idle: {idle:.0} statements/s of the server's own) | | | | | | | |");
        // HOLD_SECS: time to look at the database by hand (psql) before measuring.
        let hold = env_or("HOLD_SECS", 0u64);
        if hold > 0 {
            eprintln!("holding {hold} s: psql '{}'", pg.url());
            tokio::time::sleep(Duration::from_secs(hold)).await;
        }
        let pg_rps = pgbench(pg.url(), &root, size, concurrency, secs);
        println!("| {size} | pgbench, one workspace row by key | {pg_rps:.0} | 100 % | | | | | |");
        let w = workspaces[workspaces.len() / 2];
        let ws = api(
            &owner,
            Method::GET,
            &format!("/api/v2/workspaces/{w}"),
            None,
        )
        .await;
        let build = ws["latest_build"]["id"]
            .as_str()
            .expect("build id")
            .to_string();
        for (name, path) in [
            ("GET /buildinfo", "/api/v2/buildinfo".to_string()),
            ("GET /users/me", "/api/v2/users/me".to_string()),
            ("GET /templates", "/api/v2/templates".to_string()),
            ("GET /workspaces/{id}", format!("/api/v2/workspaces/{w}")),
            (
                "GET /workspaces?limit=25",
                "/api/v2/workspaces?limit=25".to_string(),
            ),
            (
                "GET /workspaces?q=owner:member (3 matches)",
                "/api/v2/workspaces?limit=25&q=owner:member".to_string(),
            ),
            (
                "GET /workspaces?q=name:mine-1 (1 match)",
                "/api/v2/workspaces?limit=25&q=name:mine-1".to_string(),
            ),
            (
                "GET /workspacebuilds/{id}",
                format!("/api/v2/workspacebuilds/{build}"),
            ),
        ] {
            // ONLY: measure just the requests whose path contains it (to iterate on one).
            if let Ok(only) = std::env::var("ONLY") {
                if !path.contains(&only) {
                    continue;
                }
            }
            let l = load(&srv, &token, &path, concurrency, secs).await;
            assert_eq!(l.errors, 0, "{name} answered errors");
            println!(
                "| {size} | `{name}` | {:.0} | {:.1} % | {:.1} ms | {:.1} | {:.0} µs | {:.0} µs | {} |",
                l.rps,
                100.0 * l.rps / pg_rps,
                l.p99_ms,
                l.statements,
                l.server_us,
                l.postgres_us,
                if l.render_misses.is_nan() {
                    String::new()
                } else {
                    format!("{:.1} %", 100.0 * l.render_misses)
                }
            );
        }
    }
    println!(
        "peak RSS of coderd: {} MiB",
        srv.status_kib("VmHWM:") / 1024
    );
    srv.stop().await;
    pg.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}
