//! The `coderd` process a benchmark measures (the tests' [`Replica`], started as a benchmark
//! wants it), the built-in PostgreSQL under it, and what a benchmark reads of the machine.
//! Shared by the benchmarks that need a process of their own (`#[path]`-included, so the others
//! do not carry it).

use std::path::{Path, PathBuf};

#[path = "../../../../tests/support/replica.rs"]
#[allow(dead_code)] // the tests' part: signals, exit statuses, the whole log
pub mod replica;

pub use replica::Replica;

/// A throwaway directory for benchmark `name` (reachable by the unprivileged user the
/// built-in database runs as) and a built-in PostgreSQL in it, fsync off.
pub async fn bench_postgres(name: &str) -> (PathBuf, coderd_db::builtin::BuiltinPostgres) {
    use std::os::unix::fs::PermissionsExt;
    let root = std::env::temp_dir().join(format!("coderd-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("bench dir");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("mode");
    let pg = coderd_db::builtin::BuiltinPostgres::start(
        &root.join("postgres"),
        &coderd_db::builtin::BuiltinOptions {
            unsafe_no_fsync: true,
        },
    )
    .await
    .expect("built-in PostgreSQL");
    (root, pg)
}

/// Starts `coderd server` on `db_url` with `daemons` built-in provisioner daemons, its config
/// and log in `root`, logging warnings only. Call from the thread that lives longest (the
/// runtime's main thread): the child gets SIGTERM when its spawning thread ends.
pub fn start_coderd(root: &Path, db_url: &str, daemons: u32) -> Replica {
    let port = replica::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let srv = Replica::builder(db_url, port)
        .args(["--access-url", &url])
        .args(["--provisioner-daemons", &daemons.to_string()])
        .env("CODER_CONFIG_DIR", root.join("config"))
        .env("CODER_LOG_FILTER", "warn")
        .log(root.join("coderd.log"))
        .die_with_spawning_thread()
        .spawn();
    eprintln!(
        "coderd: {} (pid {})",
        env!("CARGO_BIN_EXE_coderd"),
        srv.child.id()
    );
    srv
}

/// Raises the open-files limit to its hard limit (thousands of connections need it).
pub fn raise_fd_limit() -> (libc::rlim_t, libc::rlim_t) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    (r.rlim_cur, r.rlim_max)
}

/// CPU time (user + system) of process `pid` in clock ticks, from `/proc/<pid>/stat`; 0 if
/// it is gone.
#[allow(dead_code)] // not every benchmark reads CPU times
pub fn cpu_ticks_of(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command may contain spaces; the fields after its closing parenthesis are fixed:
    // utime and stime are the 12th and 13th of them.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Clock ticks per second (`/proc` CPU times are in these).
#[allow(dead_code)]
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}
