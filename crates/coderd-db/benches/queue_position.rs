//! Queue position / size of pending provisioner jobs: ours, measured by calling the real
//! `Store::queue_positions` (one requested job: two counts over the pending jobs of its queue;
//! several: one window pass over the pending jobs of each distinct organization / provisioner /
//! tags queue among them) against upstream Coder's approach (every pending job joined to every
//! provisioner daemon whose tags it fits, ranked with window functions per daemon, then reduced
//! per job).
//!
//! Run with `cargo bench -p coderd-db --bench queue_position`. It starts a throwaway built-in
//! PostgreSQL (fsync off), fills it with N pending untagged `echo` jobs and M matching daemons,
//! checks that both queries agree with the expected (position, size), and prints median and p95
//! latencies. See benches/README.md for results.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use coderd_db::builtin::{BuiltinOptions, BuiltinPostgres};
use coderd_db::{ConnectConfig, Store};
use uuid::Uuid;

/// Pending jobs in the queue, cumulative: each size adds jobs behind the previous ones.
const SIZES: [usize; 3] = [1_000, 10_000, 50_000];
/// Provisioner daemons, all able to run every job.
const DAEMONS: i32 = 10;
/// Timed repetitions of each measurement, after `WARMUP` untimed ones.
const REPS: usize = 20;
const WARMUP: usize = 3;
/// Ids per page (the "page" case asks for the newest `PAGE` jobs, as a listing's first page).
const PAGE: usize = 25;
/// The single job asked for sits this many places before the end of the queue.
const SINGLE_FROM_END: usize = 10;
/// The tags of an untagged job (and of a daemon that runs untagged jobs).
const UNTAGGED: &str = r#"{"scope":"organization","owner":""}"#;
/// Job `i` (1-based position in the queue) is created at BASE + i milliseconds.
const BASE: &str = "2024-01-01T00:00:00Z";

/// Upstream's approach written for our schema: rank every pending job within each daemon that
/// can run it, then take the best position and the largest queue per requested job (0/0 when
/// the job is not pending or no daemon can run it).
const UPSTREAM_SQL: &str = "\
WITH pending AS ( \
    SELECT id, created_at, tags FROM provisioner_jobs WHERE job_status = 'pending' \
), ranked AS ( \
    SELECT p.id, \
           row_number() OVER (PARTITION BY d.id ORDER BY p.created_at) AS position, \
           count(*) OVER (PARTITION BY d.id) AS size \
    FROM pending p \
    JOIN provisioner_daemons d ON provisioner_tagset_contains(d.tags, p.tags) \
) \
SELECT j.id, coalesce(min(r.position), 0)::bigint, coalesce(max(r.size), 0)::bigint \
FROM provisioner_jobs j \
LEFT JOIN ranked r ON r.id = j.id \
WHERE j.id = ANY($1) \
GROUP BY j.id";

type Positions = HashMap<Uuid, (i64, i64)>;

async fn ours(store: &Store, ids: &[Uuid]) -> Positions {
    store
        .queue_positions(ids)
        .await
        .expect("our queue positions")
}

async fn upstream(store: &Store, ids: &[Uuid]) -> Positions {
    let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(UPSTREAM_SQL)
        .bind(ids)
        .fetch_all(store.pool())
        .await
        .expect("upstream queue positions");
    rows.into_iter().map(|(id, p, s)| (id, (p, s))).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Query {
    Ours,
    Upstream,
}

impl Query {
    fn name(self) -> &'static str {
        match self {
            Query::Ours => "ours",
            Query::Upstream => "upstream",
        }
    }

    async fn run(self, store: &Store, ids: &[Uuid]) -> Positions {
        match self {
            Query::Ours => ours(store, ids).await,
            Query::Upstream => upstream(store, ids).await,
        }
    }
}

struct Stats {
    median: f64,
    p95: f64,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = samples.len();
    // The middle sample, or the mean of the two middle ones.
    let median = (ms(samples[(n - 1) / 2]) + ms(samples[n / 2])) / 2.0;
    // Nearest rank.
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    Stats {
        median,
        p95: ms(samples[rank - 1]),
    }
}

/// Times `query` for `ids`, checking every answer against `expected`.
async fn measure(store: &Store, query: Query, ids: &[Uuid], expected: &Positions) -> Stats {
    let mut samples = Vec::with_capacity(REPS);
    for i in 0..WARMUP + REPS {
        let started = Instant::now();
        let got = query.run(store, ids).await;
        let took = started.elapsed();
        assert_eq!(
            &got,
            expected,
            "{} returned wrong queue positions",
            query.name()
        );
        if i >= WARMUP {
            samples.push(took);
        }
    }
    stats(samples)
}

struct Fixture {
    org: Uuid,
    user: Uuid,
    file: Uuid,
}

async fn setup(store: &Store) -> Fixture {
    let pool = store.pool();
    let org: Uuid = sqlx::query_scalar("SELECT id FROM organizations WHERE is_default")
        .fetch_one(pool)
        .await
        .expect("default organization");
    let user = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO users (id, email, username, created_at, updated_at) \
         VALUES ($1, 'bench@example.com', 'bench', now(), now())",
    )
    .bind(user)
    .execute(pool)
    .await
    .expect("inserting the user");
    let file = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO files (id, hash, created_at, created_by, mimetype, data) \
         VALUES ($1, repeat('0', 64), now(), $2, 'application/x-tar', ''::bytea)",
    )
    .bind(file)
    .bind(user)
    .execute(pool)
    .await
    .expect("inserting the file");
    sqlx::query(
        "INSERT INTO provisioner_daemons (id, created_at, name, provisioners, organization_id, \
             tags, last_seen_at, version, api_version) \
         SELECT gen_random_uuid(), now(), 'bench-' || g, '{echo}', $1, $2::jsonb, now(), \
             'v0.0.0', '1.0' \
         FROM generate_series(1, $3) AS g",
    )
    .bind(org)
    .bind(UNTAGGED)
    .bind(DAEMONS)
    .execute(pool)
    .await
    .expect("inserting the daemons");
    Fixture { org, user, file }
}

/// Appends pending jobs at queue positions `first..first + ids.len()` (1-based).
async fn append_jobs(store: &Store, fx: &Fixture, first: usize, ids: &[Uuid]) {
    sqlx::query(
        "INSERT INTO provisioner_jobs (id, created_at, updated_at, organization_id, initiator_id, \
             provisioner, type, input, file_id, tags) \
         SELECT u.id, t.at, t.at, $4, $5, 'echo', 'template_version_import', '{}'::jsonb, $6, \
             $7::jsonb \
         FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n), \
         LATERAL (SELECT $2::timestamptz \
                      + ($3::bigint + u.n - 1) * interval '1 millisecond' AS at) AS t",
    )
    .bind(ids)
    .bind(BASE)
    .bind(first as i64)
    .bind(fx.org)
    .bind(fx.user)
    .bind(fx.file)
    .bind(UNTAGGED)
    .execute(store.pool())
    .await
    .expect("inserting jobs");
    sqlx::query("ANALYZE")
        .execute(store.pool())
        .await
        .expect("analyze");
}

struct Row {
    size: usize,
    case: &'static str,
    ours: Stats,
    upstream: Stats,
}

async fn run(store: Store) -> Vec<Row> {
    let fx = setup(&store).await;
    // queue[i] is the job at position i + 1.
    let mut queue: Vec<Uuid> = Vec::new();
    let mut rows = Vec::new();
    for &size in &SIZES {
        let started = Instant::now();
        let new: Vec<Uuid> = (queue.len()..size).map(|_| Uuid::new_v4()).collect();
        let added = new.len();
        append_jobs(&store, &fx, queue.len() + 1, &new).await;
        queue.extend(new);
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM provisioner_jobs WHERE job_status = 'pending'",
        )
        .fetch_one(store.pool())
        .await
        .expect("counting pending jobs");
        assert_eq!(pending as usize, size);
        eprintln!(
            "N = {size}: {added} jobs inserted and analyzed in {:.0} ms; measuring...",
            started.elapsed().as_secs_f64() * 1000.0
        );

        let expect = |from: usize, to: usize| -> (Vec<Uuid>, Positions) {
            let ids = queue[from..to].to_vec();
            let expected = (from..to)
                .map(|i| (queue[i], (i as i64 + 1, size as i64)))
                .collect();
            (ids, expected)
        };
        let cases = [
            (
                "single job near the end",
                expect(size - SINGLE_FROM_END, size - SINGLE_FROM_END + 1),
            ),
            ("page of 25 newest jobs", expect(size - PAGE, size)),
        ];
        for (case, (ids, expected)) in cases {
            let ours = measure(&store, Query::Ours, &ids, &expected).await;
            let upstream = measure(&store, Query::Upstream, &ids, &expected).await;
            rows.push(Row {
                size,
                case,
                ours,
                upstream,
            });
        }
    }
    rows
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:>8}  {:<24}  {:>12}  {:>10}  {:>16}  {:>14}  {:>9}",
        "pending", "case", "ours median", "ours p95", "upstream median", "upstream p95", "speed-up"
    );
    println!("{}", "-".repeat(8 + 24 + 12 + 10 + 16 + 14 + 9 + 12));
    for r in rows {
        println!(
            "{:>8}  {:<24}  {:>9.3} ms  {:>7.3} ms  {:>13.3} ms  {:>11.3} ms  {:>8.1}x",
            r.size,
            r.case,
            r.ours.median,
            r.ours.p95,
            r.upstream.median,
            r.upstream.p95,
            r.upstream.median / r.ours.median
        );
    }
    println!();
    println!(
        "{DAEMONS} daemons; {REPS} timed runs per cell after {WARMUP} warm-up runs; \
         speed-up = upstream median / ours median."
    );
}

fn main() {
    // `cargo test --benches` runs bench targets without `--bench`: nothing to check there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("queue_position: skipped (run it with `cargo bench`)");
        return;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench());
}

async fn bench() {
    let root = std::env::temp_dir().join(format!("coderd-bench-pg-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("creating the database directory");
    // The database may run as an unprivileged user, who must reach its directory.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
        .expect("setting the database directory's mode");
    let started = Instant::now();
    let mut pg = BuiltinPostgres::start(
        &root.join("postgres"),
        &BuiltinOptions {
            unsafe_no_fsync: true,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("starting the built-in PostgreSQL: {e}"));
    // One connection: every query runs on the same session (and plan cache).
    let store = Store::connect(&ConnectConfig {
        url: pg.url().to_string(),
        max_connections: 1,
        connect_timeout: Duration::from_secs(30),
    })
    .await
    .expect("connecting and migrating");
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(store.pool())
        .await
        .expect("server version");
    eprintln!(
        "{version}; started and migrated in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Run in a task so that a failed check still stops the database before it propagates.
    let outcome = tokio::spawn(run(store.clone())).await;
    store.close().await;
    pg.stop().await;
    let _ = std::fs::remove_dir_all(&root);
    match outcome {
        Ok(rows) => {
            println!("{version}");
            print_table(&rows);
            eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
        }
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("benchmark task failed: {e}"),
    }
}
