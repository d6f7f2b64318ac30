//! `coderd server` as a process of its own on 127.0.0.1: for the tests where a process matters
//! (restarts, signals, several replicas, a replica killed) and for the benchmarks that measure
//! one (its memory from /proc, its metrics).

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// How long a replica may take to answer `/healthz` (a busy machine builds its pools slowly).
const HEALTHY_WITHIN: Duration = Duration::from_secs(90);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `coderd server` process on 127.0.0.1, killed when dropped; its standard error goes to `log`.
pub struct Replica {
    pub child: Child,
    pub url: String,
    pub port: u16,
    pub log: PathBuf,
    /// The log is a temporary file of ours, removed on drop unless a panic wants it read.
    owns_log: bool,
}

/// What differs between replicas: arguments, environment, where the log goes, whether the
/// process dies with the thread that started it.
pub struct ReplicaBuilder {
    cmd: Command,
    port: u16,
    log: Option<PathBuf>,
}

impl Replica {
    /// `coderd server` on `port` and the database at `db_url`, rate limits off; the rest is
    /// the builder's.
    pub fn builder(db_url: &str, port: u16) -> ReplicaBuilder {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coderd"));
        cmd.args(["server", "--http-address", &format!("127.0.0.1:{port}")])
            .env("CODER_PG_CONNECTION_URL", db_url)
            .env("CODER_DANGEROUS_DISABLE_RATE_LIMITS", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        ReplicaBuilder {
            cmd,
            port,
            log: None,
        }
    }

    /// A replica as the tests start one: echo provisioners only, polling every second, then
    /// `env`.
    pub fn spawn(db_url: &str, port: u16, env: &[(&str, &str)]) -> Replica {
        let mut b = Replica::builder(db_url, port)
            .env("CODER_PROVISIONER_POLL_INTERVAL", "1s")
            .env("CODER_PROVISIONER_TYPES", "echo");
        for (k, v) in env {
            b = b.env(k, v);
        }
        b.spawn()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Waits until `/healthz` answers 200; panics with the end of the log if the process
    /// exits first or takes too long.
    pub async fn wait_healthy(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{}/healthz", self.url)).await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().expect("the replica's status") {
                panic!(
                    "the replica exited early ({status}); {}:\n{}",
                    self.log.display(),
                    self.log_tail()
                );
            }
            assert!(
                started.elapsed() < HEALTHY_WITHIN,
                "the replica did not become healthy; {}:\n{}",
                self.log.display(),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends `sig` (`-TERM`, `-KILL`, …) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits up to `within` for the process to exit.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// SIGTERM, then up to 30 s for a clean exit before SIGKILL.
    pub async fn stop(mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        if self.wait_exit(Duration::from_secs(30)).await.is_none() {
            eprintln!("coderd did not stop within 30 s; killing it");
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 20 lines of the log.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// A KiB field (`VmRSS:`, `VmHWM:`, …) of the process's /proc status.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("reading the replica's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} missing from /proc status"))
    }

    /// The server's `/metrics`, as text.
    pub async fn metrics_text(&self) -> String {
        metrics_text_at(&self.url).await
    }

    /// A metric without labels from `/metrics`; -1 when it is missing.
    pub async fn metric(&self, name: &str) -> i64 {
        metric_at(&self.url, name).await
    }
}

/// `/metrics` of the server at `url` (a replica or an in-process server), as text.
pub async fn metrics_text_at(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body")
}

/// One series of `/metrics` at `url`, named in full (labels included:
/// `name{label="value"}`); -1 when it is missing.
pub async fn metric_at(url: &str, name: &str) -> i64 {
    let text = metrics_text_at(url).await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_log && !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl ReplicaBuilder {
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Writes the log to `path`, which the caller keeps; else to a temporary file.
    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// The process gets SIGTERM when the thread that spawns it ends (PR_SET_PDEATHSIG), so
    /// it cannot outlive a benchmark killed midway. Only for a thread that lives as long as
    /// the replica should (a runtime's main thread, not a tokio worker that may be retired).
    pub fn die_with_spawning_thread(mut self) -> Self {
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            self.cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        self
    }

    pub fn spawn(mut self) -> Replica {
        let owns_log = self.log.is_none();
        let log = self.log.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("coderd-replica-{}.log", Uuid::new_v4()))
        });
        let file = std::fs::File::create(&log).expect("the replica's log");
        let child = self.cmd.stderr(file).spawn().expect("starting a replica");
        Replica {
            child,
            url: format!("http://127.0.0.1:{}", self.port),
            port: self.port,
            log,
            owns_log,
        }
    }
}
