//! `coderd server` processes on 127.0.0.1 for the tests where a process matters: restarts,
//! signals, several replicas, a replica killed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `coderd server` process on 127.0.0.1, killed when dropped; its log goes to `log`.
pub struct Replica {
    pub child: Child,
    pub url: String,
    pub port: u16,
    pub log: PathBuf,
}

impl Replica {
    pub fn spawn(db_url: &str, port: u16, env: &[(&str, &str)]) -> Replica {
        let log = std::env::temp_dir().join(format!("coderd-replica-{}.log", Uuid::new_v4()));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coderd"));
        cmd.args(["server", "--http-address", &format!("127.0.0.1:{port}")])
            .env("CODER_PG_CONNECTION_URL", db_url)
            .env("CODER_DANGEROUS_DISABLE_RATE_LIMITS", "true")
            .env("CODER_PROVISIONER_POLL_INTERVAL", "1s")
            .env("CODER_PROVISIONER_TYPES", "echo")
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Replica {
            child: cmd.spawn().expect("starting a replica"),
            url: format!("http://127.0.0.1:{port}"),
            port,
            log,
        }
    }

    pub async fn wait_healthy(&self) {
        let started = Instant::now();
        while reqwest::get(format!("{}/healthz", self.url))
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "replica did not start; log: {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits up to `within` for the process to exit.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
