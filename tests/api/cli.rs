//! The real upstream `coder` CLI against our server: the binary `CODERD_CODER_CLI` names (built
//! by `tests/peers/build.sh`, which `.ci/run` calls), run as a process with `CODER_URL`, a config
//! dir of its own and `--token`. Without the binary each test prints a loud SKIPPED line.
//!
//! `coder_cli` and `CoderCli` are for any test that wants to drive the CLI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::TestServer;

/// How long one CLI command may take before the test fails (the CLI starts in well under a
/// second; the machine may be busy with other tests).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The upstream `coder` binary, if `CODERD_CODER_CLI` names one.
pub fn coder_cli() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("CODERD_CODER_CLI")?);
    path.is_file().then_some(path)
}

/// The CLI, or `None` after saying loudly that the test is skipped.
pub fn cli_or_skip() -> Option<PathBuf> {
    let cli = coder_cli();
    if cli.is_none() {
        // Straight to stderr: the test harness would swallow `eprintln!` of a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: coder CLI not found (set CODERD_CODER_CLI; tests/peers/build.sh builds it)"
        );
    }
    cli
}

/// What one CLI run left behind.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Asserts the command exited 0 and parses its standard output as JSON.
    pub fn json(&self) -> Value {
        assert!(self.status.success(), "the coder CLI failed: {self:#?}");
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("the coder CLI did not print JSON ({e}): {self:#?}"))
    }
}

/// The CLI talking to one server as one user, with a configuration directory of its own
/// (removed on drop) so no run sees another's (or the developer's) login.
pub struct CoderCli {
    binary: PathBuf,
    url: String,
    token: String,
    config_dir: PathBuf,
}

impl CoderCli {
    pub fn new(binary: &Path, url: &str, token: &str) -> CoderCli {
        let config_dir =
            std::env::temp_dir().join(format!("coderd-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&config_dir).expect("creating the CLI's config dir");
        CoderCli {
            binary: binary.to_path_buf(),
            url: url.to_string(),
            token: token.to_string(),
            config_dir,
        }
    }

    /// Runs `coder <args> --token <token>`, killing it after `CLI_TIMEOUT`.
    pub async fn run(&self, args: &[&str]) -> CliOutput {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--token", &self.token]);
        self.run_plain(&all).await
    }

    /// The CLI's configuration directory, where `url` and `session` files log it in (what
    /// `coder config-ssh`'s proxy commands read).
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// Writes the login the way `coder login` leaves it, for commands that read it from the
    /// configuration directory rather than the environment.
    pub fn store_login(&self) {
        std::fs::write(self.config_dir.join("url"), &self.url).unwrap();
        std::fs::write(self.config_dir.join("session"), &self.token).unwrap();
    }

    /// A command for the CLI's binary with this server and token in its environment
    /// (`CODER_URL`, `CODER_SESSION_TOKEN`) and nothing of the developer's.
    pub fn command(&self, program: &Path, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CODER_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(args)
            .env("CODER_URL", &self.url)
            .env("CODER_SESSION_TOKEN", &self.token)
            .env("CODER_CONFIG_DIR", &self.config_dir)
            .env("NO_COLOR", "1")
            .kill_on_drop(true);
        cmd
    }

    /// Runs `coder <args>` exactly as given (the token travels in the environment), killing
    /// it after `CLI_TIMEOUT`.
    pub async fn run_plain(&self, args: &[&str]) -> CliOutput {
        let mut cmd = tokio::process::Command::new(&self.binary);
        // The developer's own CODER_* settings (a URL, a session token) must not leak in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CODER_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(args)
            .env("CODER_URL", &self.url)
            .env("CODER_SESSION_TOKEN", &self.token)
            .env("CODER_CONFIG_DIR", &self.config_dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().expect("starting the coder CLI");
        let out = tokio::time::timeout(CLI_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("coder {args:?} did not finish in {CLI_TIMEOUT:?}"))
            .expect("waiting for the coder CLI");
        CliOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for CoderCli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config_dir);
    }
}

#[tokio::test]
async fn whoami_and_users_list_through_the_real_cli() {
    let Some(binary) = cli_or_skip() else {
        return;
    };
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let cli = CoderCli::new(&binary, &srv.url, owner.token().expect("the owner's token"));

    let out = cli.run(&["whoami", "-o", "json"]).await;
    let rows = out.json();
    let me = &rows.as_array().expect("whoami -o json prints a list")[0];
    assert_eq!(me["username"], "owner", "{out:#?}");
    assert_eq!(me["user_id"], first.user_id.to_string(), "{out:#?}");
    assert_eq!(
        me["organization_ids"],
        serde_json::json!([first.organization_id.to_string()]),
        "{out:#?}"
    );
    assert_eq!(
        me["url"].as_str().map(|u| u.trim_end_matches('/')),
        Some(srv.url.as_str()),
        "{out:#?}"
    );

    let out = cli.run(&["users", "list", "-o", "json"]).await;
    let users = out.json();
    let users = users.as_array().expect("users list -o json prints a list");
    assert_eq!(users.len(), 1, "{out:#?}");
    assert_eq!(users[0]["username"], "owner");
    assert_eq!(users[0]["email"], crate::harness::OWNER_EMAIL);
    assert_eq!(users[0]["status"], "active");
    assert_eq!(users[0]["id"], first.user_id.to_string());

    // A token the server does not know is refused; the CLI fails and tells the user to log in.
    let stranger = CoderCli::new(&binary, &srv.url, "abcdefghij-0123456789abcdefghij01");
    let out = stranger.run(&["whoami"]).await;
    assert!(!out.status.success(), "{out:#?}");
    assert!(
        out.stderr
            .contains("You are signed out or your session has expired"),
        "the CLI read our 401 as upstream's: {out:#?}"
    );
}
