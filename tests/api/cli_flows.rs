//! The real upstream `coder` CLI against a fresh server: the everyday flows, each asserting the
//! CLI's exit code and JSON output, and that it printed no warning about the server (version
//! mismatch, unsupported feature). The binary comes from `CODERD_CODER_CLI` (`.ci/run` builds
//! it from the pinned module, tests/peers/); without it each test says SKIPPED and passes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::harness::{create_owner, TestServer, MEMBER_PASSWORD, OWNER_EMAIL, OWNER_PASSWORD};

/// The CLI binary, or `None` (after saying SKIPPED) when there is none.
fn coder_cli(test: &str) -> Option<PathBuf> {
    match std::env::var_os("CODERD_CODER_CLI").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        _ => {
            eprintln!("SKIPPED: coder CLI not found (set CODERD_CODER_CLI) [{test}]");
            println!("SKIPPED: coder CLI not found (set CODERD_CODER_CLI) [{test}]");
            None
        }
    }
}

/// What one CLI run printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    args: String,
}

impl Run {
    /// Asserts success and a quiet stderr; answers stdout.
    fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "coder {} failed\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        assert_quiet(&self.args, &self.stderr);
        &self.stdout
    }

    fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(out)
            .unwrap_or_else(|e| panic!("coder {}: stdout is not JSON ({e}):\n{out}", self.args))
    }

    fn failed(&self) -> &str {
        assert_ne!(
            self.code,
            Some(0),
            "coder {} should have failed\nstdout:\n{}",
            self.args,
            self.stdout
        );
        assert_quiet(&self.args, &self.stderr);
        &self.stderr
    }
}

/// No warning about the server: a version mismatch or something it does not support.
fn assert_quiet(args: &str, stderr: &str) {
    let lower = stderr.to_lowercase();
    for bad in [
        "version mismatch",
        "unsupported",
        "not supported",
        "is not a valid semver",
        "api version",
        "panic:",
    ] {
        assert!(
            !lower.contains(bad),
            "coder {args}: stderr warns about the server ({bad:?}):\n{stderr}"
        );
    }
}

/// One CLI user: its own config directory, optionally a token passed with `--token`.
struct Cli {
    bin: PathBuf,
    url: String,
    dir: PathBuf,
    token: Option<String>,
}

impl Cli {
    fn new(bin: &Path, url: &str, token: Option<&str>) -> Cli {
        let dir = std::env::temp_dir().join(format!("coderd-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("config")).unwrap();
        Cli {
            bin: bin.to_path_buf(),
            url: url.to_string(),
            dir,
            token: token.map(str::to_string),
        }
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, "").await
    }

    async fn run_with_input(&self, args: &[&str], stdin: &str) -> Run {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .env("CODER_URL", &self.url)
            .env("CODER_CONFIG_DIR", self.dir.join("config"))
            .env("HOME", &self.dir)
            .env("NO_COLOR", "1")
            .env_remove("CODER_SESSION_TOKEN")
            .env_remove("CODER_NO_VERSION_WARNING")
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(t) = &self.token {
            cmd.arg("--token").arg(t);
        }
        let mut child = cmd.spawn().expect("starting the coder CLI");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("coder {} hung", args.join(" ")))
            .unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: args.join(" "),
        }
    }

    /// A directory holding an echo template (docs/echo-provisioner.md). The CLI insists on a
    /// `.tf` file, which the echo provisioner ignores.
    fn template_dir(&self, name: &str, echo: &Value) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("echo.json"), echo.to_string()).unwrap();
        std::fs::write(dir.join("main.tf"), "# see echo.json\n").unwrap();
        std::fs::write(dir.join(".terraform.lock.hcl"), "").unwrap();
        dir
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server with its owner, and a CLI signed in as the owner with `--token`.
async fn owner_cli(bin: &Path) -> (TestServer, codersdk::Client, Cli) {
    let srv = TestServer::start().await;
    let (owner, _) = create_owner(&srv.client).await;
    let cli = Cli::new(bin, &srv.url, owner.token());
    (srv, owner, cli)
}

/// An echo template with one mutable parameter and a resource.
fn echo_template() -> Value {
    json!({
        "parse": {
            "readme": "# Echo",
            "parameters": [{"name": "cpu", "display_name": "CPU", "type": "number",
                "mutable": true, "default_value": "2", "required": false, "options": []}],
            "logs": [{"level": "info", "output": "parsing"}]
        },
        "start": {"resources": [{"name": "box", "type": "null_resource"}],
                  "logs": [{"level": "info", "output": "starting"}]}
    })
}

async fn push_echo(cli: &Cli, name: &str) {
    let dir = cli.template_dir(name, &echo_template());
    let dir = dir.to_str().unwrap();
    cli.run(&[
        "templates",
        "push",
        name,
        "--test.provisioner",
        "echo",
        "-d",
        dir,
        "-y",
    ])
    .await
    .ok();
}

#[tokio::test]
async fn cli_login_first_user_then_token() {
    let Some(bin) = coder_cli("cli_login_first_user_then_token") else {
        return;
    };
    let srv = TestServer::start().await;
    let cli = Cli::new(&bin, &srv.url, None);
    let url = srv.url.as_str();
    // First-user setup from flags: no prompt.
    cli.run(&[
        "login",
        url,
        "--first-user-username",
        "admin",
        "--first-user-email",
        OWNER_EMAIL,
        "--first-user-password",
        OWNER_PASSWORD,
        "--first-user-full-name",
        "Ad Min",
        "--first-user-trial=false",
    ])
    .await
    .ok();
    let me = cli.run(&["whoami", "-o", "json"]).await.json();
    assert_eq!(me[0]["username"], "admin", "{me}");
    assert_eq!(me[0]["url"], url);
    let token = cli
        .run(&["tokens", "create", "--name", "laptop"])
        .await
        .ok()
        .trim()
        .to_string();
    assert!(token.contains('-'), "{token:?}");

    // Token login into a fresh config directory.
    let other = Cli::new(&bin, url, None);
    other.run(&["login", url, "--token", &token]).await.ok();
    let me = other.run(&["whoami", "-o", "json"]).await.json();
    assert_eq!(me[0]["username"], "admin");
    let bad = Cli::new(&bin, url, None);
    bad.run(&["login", url, "--token", "abcdefghij-0123456789abcdefghijkl"])
        .await
        .failed();
}

#[tokio::test]
async fn cli_users() {
    let Some(bin) = coder_cli("cli_users") else {
        return;
    };
    let (_srv, _owner, cli) = owner_cli(&bin).await;
    cli.run(&[
        "users",
        "create",
        "--username",
        "bob",
        "--email",
        "bob@example.com",
        "--password",
        MEMBER_PASSWORD,
        "--full-name",
        "Bob",
    ])
    .await
    .ok();
    let users = cli.run(&["users", "list", "-o", "json"]).await.json();
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob", "owner"]);
    let bob = cli
        .run(&["users", "show", "bob", "-o", "json"])
        .await
        .json();
    assert_eq!(
        (bob["email"].as_str(), bob["status"].as_str()),
        (Some("bob@example.com"), Some("active"))
    );
    // Suspending asks for confirmation on stdin.
    cli.run_with_input(&["users", "suspend", "bob"], "yes\n")
        .await
        .ok();
    let bob = cli
        .run(&["users", "show", "bob", "-o", "json"])
        .await
        .json();
    assert_eq!(bob["status"], "suspended");
    cli.run_with_input(&["users", "activate", "bob"], "yes\n")
        .await
        .ok();
    let bob = cli
        .run(&["users", "show", "bob", "-o", "json"])
        .await
        .json();
    assert_eq!(bob["status"], "active");
    let org = cli
        .run(&["organizations", "show", "-o", "json"])
        .await
        .json();
    assert_eq!(org[0]["name"], "coder", "{org}");
    assert_eq!(org[0]["is_default"], true);
}

#[tokio::test]
async fn cli_templates() {
    let Some(bin) = coder_cli("cli_templates") else {
        return;
    };
    let (_srv, _owner, cli) = owner_cli(&bin).await;
    // A template with a required variable. Without a value the import fails, and the CLI
    // reads the failed version's variables to ask for the missing ones.
    let mut echo = echo_template();
    echo["parse"]["variables"] = json!([{"name": "region", "type": "string",
        "description": "Where", "default_value": "", "required": true, "sensitive": false}]);
    let dir = cli.template_dir("docker", &echo);
    let dir = dir.to_str().unwrap();
    let push = [
        "templates",
        "push",
        "docker",
        "--test.provisioner",
        "echo",
        "-d",
        dir,
        "-y",
    ];
    let unanswered = cli.run(&push).await;
    let stderr = unanswered.failed();
    assert!(
        stderr.contains("Found 1 missing required variables:")
            && stderr.contains("region (string): Where")
            && stderr.contains(r#"prompt for variable "region""#),
        "{stderr}"
    );
    let jobs = cli
        .run(&["provisioner", "jobs", "list", "-o", "json"])
        .await
        .json();
    assert_eq!(
        jobs[0]["error_code"], "REQUIRED_TEMPLATE_VARIABLES",
        "{jobs}"
    );
    assert_eq!(
        jobs[0]["error"], "required template variables need values: region",
        "{jobs}"
    );
    // Answered at the prompt, the CLI pushes again with the value.
    let answered = cli.run_with_input(&push, "eu\n").await;
    answered.ok();
    assert!(
        answered
            .stderr
            .contains("Retrying template build with provided variables..."),
        "{}",
        answered.stderr
    );
    let list = cli.run(&["templates", "list", "-o", "json"]).await.json();
    assert_eq!(list[0]["Template"]["name"], "docker", "{list}");
    assert_eq!(list[0]["Template"]["provisioner"], "echo");

    // A second version, then the version list, pull, edit, archive, delete.
    cli.run(&[
        "templates",
        "push",
        "docker",
        "--test.provisioner",
        "echo",
        "-d",
        dir,
        "-y",
        "--variable",
        "region=us",
        "--name",
        "second",
    ])
    .await
    .ok();
    let versions = cli
        .run(&["templates", "versions", "list", "docker", "-o", "json"])
        .await
        .json();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    let first = versions
        .iter()
        .map(|v| v["TemplateVersion"]["name"].as_str().unwrap())
        .find(|n| *n != "second")
        .unwrap()
        .to_string();
    let pulled = cli.dir.join("pulled");
    cli.run(&["templates", "pull", "docker", pulled.to_str().unwrap()])
        .await
        .ok();
    let echo_json = std::fs::read_to_string(pulled.join("echo.json")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&echo_json).unwrap(), echo);
    cli.run(&[
        "templates",
        "edit",
        "docker",
        "--display-name",
        "Docker",
        "-y",
    ])
    .await
    .ok();
    let list = cli.run(&["templates", "list", "-o", "json"]).await.json();
    assert_eq!(list[0]["Template"]["display_name"], "Docker");
    cli.run(&["templates", "versions", "archive", "docker", &first, "-y"])
        .await
        .ok();
    let versions = cli
        .run(&["templates", "versions", "list", "docker", "-o", "json"])
        .await
        .json();
    assert_eq!(
        versions.as_array().unwrap().len(),
        1,
        "archived ones are hidden"
    );
    cli.run(&["templates", "archive", "docker", "-y"])
        .await
        .ok();
    cli.run(&["templates", "delete", "docker", "-y"]).await.ok();
    let list = cli.run(&["templates", "list", "-o", "json"]).await;
    assert_eq!(list.ok().trim(), "[]", "{}", list.stderr);
}

#[tokio::test]
async fn cli_workspaces() {
    let Some(bin) = coder_cli("cli_workspaces") else {
        return;
    };
    let (_srv, _owner, cli) = owner_cli(&bin).await;
    push_echo(&cli, "docker").await;
    cli.run(&[
        "create",
        "dev",
        "-t",
        "docker",
        "--parameter",
        "cpu=4",
        "-y",
    ])
    .await
    .ok();
    let list = cli.run(&["list", "-o", "json"]).await.json();
    let ws = &list[0];
    assert_eq!(
        (ws["name"].as_str(), ws["template_name"].as_str()),
        (Some("dev"), Some("docker")),
        "{list}"
    );
    assert_eq!(ws["latest_build"]["status"], "running");
    assert_eq!(ws["latest_build"]["transition"], "start");
    let shown = cli.run(&["show", "dev"]).await;
    assert!(
        shown.ok().contains("null_resource.box") || shown.stdout.contains("box"),
        "{}",
        shown.stdout
    );

    let status = |list: Value| {
        list[0]["latest_build"]["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    cli.run(&["stop", "dev", "-y"]).await.ok();
    assert_eq!(
        status(cli.run(&["list", "-o", "json"]).await.json()),
        "stopped"
    );
    // The stop deadline comes with the next start; then it can be extended.
    cli.run(&["schedule", "stop", "dev", "8h"]).await.ok();
    cli.run(&["start", "dev", "-y"]).await.ok();
    assert_eq!(
        status(cli.run(&["list", "-o", "json"]).await.json()),
        "running"
    );
    cli.run(&["restart", "dev", "-y"]).await.ok();
    let list = cli.run(&["list", "-o", "json"]).await.json();
    assert_eq!(list[0]["latest_build"]["build_number"], 5, "{list}");
    cli.run(&[
        "schedule",
        "start",
        "dev",
        "9:30AM",
        "Mon-Fri",
        "Europe/Dublin",
    ])
    .await
    .ok();
    cli.run(&["schedule", "extend", "dev", "3h"]).await.ok();
    let sched = cli
        .run(&["schedule", "show", "dev", "-o", "json"])
        .await
        .json();
    assert_eq!(sched[0]["stops_after"], "8h", "{sched}");
    assert!(
        sched[0]["starts_at"].as_str().unwrap().contains("9:30AM"),
        "{sched}"
    );
    let list = cli.run(&["list", "-o", "json"]).await.json();
    assert_eq!(
        list[0]["autostart_schedule"],
        "CRON_TZ=Europe/Dublin 30 9 * * Mon-Fri"
    );

    // A new version of the template, then `update` moves the workspace to it.
    push_echo(&cli, "docker").await;
    let update = cli.run(&["update", "dev"]).await;
    update.ok();
    let list = cli.run(&["list", "-o", "json"]).await.json();
    assert_eq!(list[0]["outdated"], false, "{list}");
    assert_eq!(status(list), "running");
    cli.run(&["delete", "dev", "-y"]).await.ok();
    let list = cli.run(&["list", "-o", "json"]).await;
    assert_eq!(list.ok().trim(), "[]");
}

#[tokio::test]
async fn cli_list_shared_with_me() {
    let Some(bin) = coder_cli("cli_list_shared_with_me") else {
        return;
    };
    let (srv, owner, cli) = owner_cli(&bin).await;
    push_echo(&cli, "docker").await;
    cli.run(&[
        "create",
        "lent",
        "-t",
        "docker",
        "--parameter",
        "cpu=2",
        "-y",
    ])
    .await
    .ok();
    let (amy, amy_user) = srv.member(&owner, "amy").await;
    let list = cli.run(&["list", "-o", "json"]).await.json();
    let id = list[0]["id"].as_str().unwrap();
    let _: () = owner
        .request::<Value, ()>(
            reqwest::Method::PATCH,
            &format!("/api/v2/workspaces/{id}/acl"),
            Some(&json!({"user_roles": {amy_user.id.to_string(): "use"}})),
        )
        .await
        .unwrap_or(());
    let amy_cli = Cli::new(&bin, &srv.url, amy.token());
    let mine = amy_cli.run(&["list", "-o", "json"]).await.json();
    assert_eq!(mine, json!([]), "amy owns nothing");
    let shared = amy_cli
        .run(&["list", "--shared-with-me", "-o", "json"])
        .await
        .json();
    assert_eq!(shared[0]["name"], "lent", "{shared}");
}

#[tokio::test]
async fn cli_tokens() {
    let Some(bin) = coder_cli("cli_tokens") else {
        return;
    };
    let (_srv, _owner, cli) = owner_cli(&bin).await;
    let token = cli
        .run(&["tokens", "create", "--name", "ci", "--lifetime", "24h"])
        .await
        .ok()
        .trim()
        .to_string();
    let list = cli.run(&["tokens", "list", "-o", "json"]).await.json();
    let ci: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["token_name"] == "ci")
        .collect();
    assert_eq!(ci.len(), 1, "{list}");
    assert!(token.starts_with(ci[0]["id"].as_str().unwrap()));
    cli.run(&["tokens", "remove", "ci"]).await.ok();
    let list = cli.run(&["tokens", "list", "-o", "json"]).await.json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|t| t["token_name"] != "ci"),
        "{list}"
    );
    let revoked = Cli::new(&cli.bin, &cli.url, Some(&token));
    revoked.run(&["whoami"]).await.failed();
}

#[tokio::test]
async fn cli_groups() {
    let Some(bin) = coder_cli("cli_groups") else {
        return;
    };
    let (_srv, _owner, cli) = owner_cli(&bin).await;
    // Groups are commands of upstream's enterprise CLI; the AGPL build has none.
    if cli.run(&["groups", "--help"]).await.code != Some(0) {
        println!(
            "SKIPPED: this coder CLI has no `groups` command (an AGPL build; upstream's enterprise \
             one, github.com/coder/coder/v2/enterprise/cmd/coder, has it)"
        );
        return;
    }
    cli.run(&[
        "users",
        "create",
        "--username",
        "bob",
        "--email",
        "bob@example.com",
        "--password",
        MEMBER_PASSWORD,
    ])
    .await
    .ok();
    cli.run(&["groups", "create", "devs"]).await.ok();
    cli.run(&[
        "groups",
        "edit",
        "devs",
        "--add-users",
        "bob",
        "--display-name",
        "Developers",
    ])
    .await
    .ok();
    let groups = cli.run(&["groups", "list", "-o", "json"]).await.json();
    let devs = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["Group"]["name"] == "devs")
        .unwrap_or_else(|| panic!("{groups}"));
    assert_eq!(devs["Group"]["display_name"], "Developers");
    assert_eq!(devs["Group"]["members"][0]["username"], "bob", "{devs}");
    cli.run_with_input(&["groups", "delete", "devs"], "yes\n")
        .await
        .ok();
    let groups = cli.run(&["groups", "list", "-o", "json"]).await.json();
    assert!(groups
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["Group"]["name"] != "devs"));
}

#[tokio::test]
async fn cli_provisioners_and_jobs() {
    let Some(bin) = coder_cli("cli_provisioners_and_jobs") else {
        return;
    };
    let (_srv, _owner, cli) = owner_cli(&bin).await;
    push_echo(&cli, "docker").await;
    let daemons = cli.run(&["provisioner", "list", "-o", "json"]).await.json();
    let daemons = daemons.as_array().unwrap();
    assert!(!daemons.is_empty());
    assert!(daemons.iter().all(|d| d["provisioners"]
        .as_array()
        .unwrap()
        .contains(&json!("echo"))));
    let jobs = cli
        .run(&["provisioner", "jobs", "list", "-o", "json"])
        .await
        .json();
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["type"], "template_version_import");
    assert_eq!(jobs[0]["status"], "succeeded");
}

/// `coder support bundle` reads `GET /deployment/config` through upstream's SDK, decodes it
/// into upstream's `DeploymentValues` and option set, and writes them into the bundle.
#[tokio::test]
async fn cli_support_bundle_holds_the_deployment_config() {
    let Some(bin) = coder_cli("cli_support_bundle_holds_the_deployment_config") else {
        return;
    };
    let srv = TestServer::start_with(|o| {
        o.session_duration = Duration::from_secs(36 * 3600);
        o.allow_workspace_renames = true;
    })
    .await;
    let (owner, _) = create_owner(&srv.client).await;
    let cli = Cli::new(&bin, &srv.url, owner.token());
    let bundle = cli.dir.join("bundle.zip");
    cli.run(&["support", "bundle", "-y", "-O", bundle.to_str().unwrap()])
        .await
        .ok();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&bundle).unwrap()).unwrap();
    let config: Value =
        serde_json::from_reader(zip.by_name("deployment/config.json").unwrap()).unwrap();
    let values = &config["config"];
    assert_eq!(values["access_url"], srv.url.as_str(), "{values}");
    assert_eq!(
        values["session_lifetime"]["default_duration"],
        36 * 3600 * 1_000_000_000u64
    );
    assert_eq!(values["allow_workspace_renames"], true);
    assert_eq!(values["provisioner"]["daemon_types"], json!(["echo"]));
    // Its option set took our values into upstream's typed options, by name.
    let option = |name: &str| {
        config["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("no option {name:?}"))
            .clone()
    };
    assert_eq!(
        option("Session Duration")["value"],
        36 * 3600 * 1_000_000_000u64
    );
    assert_eq!(option("HTTP Address")["value"], "127.0.0.1:0");
    assert!(
        !config.to_string().contains(&srv.db_url),
        "the database URL is a secret"
    );
}

/// `coder create --preset`: the CLI reads the version's presets, applies the named one's
/// values and sends its id; the workspace's build has both.
#[tokio::test]
async fn cli_create_with_a_preset() {
    let Some(bin) = coder_cli("cli_create_with_a_preset") else {
        return;
    };
    let (_srv, owner, cli) = owner_cli(&bin).await;
    let mut echo = echo_template();
    echo["parse"]["presets"] = json!([
        {"name": "small", "default": true, "parameters": [{"name": "cpu", "value": "1"}]},
        {"name": "big", "description": "For builds",
         "parameters": [{"name": "cpu", "value": "8"}]}
    ]);
    let dir = cli.template_dir("docker", &echo);
    cli.run(&[
        "templates",
        "push",
        "docker",
        "--test.provisioner",
        "echo",
        "-d",
        dir.to_str().unwrap(),
        "-y",
    ])
    .await
    .ok();
    let created = cli
        .run(&["create", "dev", "-t", "docker", "--preset", "big", "-y"])
        .await;
    let out = created.ok();
    assert!(out.contains("Preset 'big' applied"), "{out}");
    // Without --preset the default one is applied.
    let created = cli.run(&["create", "dev2", "-t", "docker", "-y"]).await;
    assert!(
        created.ok().contains("Preset 'small' (default) applied"),
        "{}",
        created.stdout
    );

    let list = cli.run(&["list", "-o", "json"]).await.json();
    let build = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .unwrap_or_else(|| panic!("no workspace {name} in {list}"))["latest_build"]
            .clone()
    };
    let dev = build("dev");
    let presets: Value = owner
        .get_json(&format!(
            "/api/v2/templateversions/{}/presets",
            dev["template_version_id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(dev["template_version_preset_id"], presets[1]["ID"], "{dev}");
    let params: Value = owner
        .get_json(&format!(
            "/api/v2/workspacebuilds/{}/parameters",
            dev["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(params, json!([{"name": "cpu", "value": "8"}]));
    assert_eq!(
        build("dev2")["template_version_preset_id"],
        presets[0]["ID"]
    );
}
