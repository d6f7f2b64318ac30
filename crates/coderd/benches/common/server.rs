//! The `coderd` process a benchmark measures: started on a database, polled until healthy,
//! its memory read from /proc, stopped with SIGTERM. Shared by the benchmarks that need a
//! process of their own (`#[path]`-included, so the others do not carry it).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

pub struct Server {
    pub child: Child,
    pub base: String,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

/// The `coderd` binary cargo built next to this benchmark.
pub fn coderd_binary() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_coderd") {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    // target/<profile>/deps/streams-<hash> → target/<profile>/coderd
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("coderd")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Server {
    /// Starts `coderd server` on `db_url`. Call from the thread that lives longest (the
    /// runtime's main thread): the child gets SIGTERM when its spawning thread ends.
    pub fn start(root: &Path, db_url: &str) -> Server {
        Self::start_with_daemons(root, db_url, 1)
    }

    /// The same, with `daemons` built-in provisioner daemons.
    pub fn start_with_daemons(root: &Path, db_url: &str, daemons: u32) -> Server {
        let bin = coderd_binary();
        assert!(bin.exists(), "coderd binary not found at {}", bin.display());
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let base = format!("http://{addr}");
        let log = root.join("coderd.log");
        let out = std::fs::File::create(&log).expect("coderd log");
        let mut cmd = Command::new(&bin);
        cmd.args(["server", "--http-address", &addr.to_string()])
            .args(["--access-url", &base])
            .args(["--postgres-url", db_url])
            .args(["--provisioner-daemons", &daemons.to_string()])
            .env("CODER_CONFIG_DIR", root.join("config"))
            .env("CODER_DANGEROUS_DISABLE_RATE_LIMITS", "true")
            .env("CODER_LOG_FILTER", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out);
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("starting coderd");
        eprintln!("coderd: {} (pid {})", bin.display(), child.id());
        Server {
            child,
            base,
            addr,
            log,
        }
    }

    pub async fn wait_healthy(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{}/healthz", self.base)).await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().expect("coderd status") {
                panic!("coderd exited early ({status}):\n{}", self.log_tail());
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "coderd did not become healthy:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// A KiB field of the server process's /proc status.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("reading the server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} missing from /proc status"))
    }

    pub async fn metric(&self, name: &str) -> i64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1)
    }

    pub async fn stop(mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("coderd did not stop within 30 s; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
