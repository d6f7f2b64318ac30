//! Fuzzes the real server with schemathesis, driven by the server's own OpenAPI document
//! (`/api/v2/openapi.json`): no generated request may get a 5xx, hang, kill the server, or get
//! an answer the document does not describe.
//!
//! Schemathesis is a Python program: `CODERD_SCHEMATHESIS` names it, else `schemathesis` or
//! `st` on PATH, else `/opt/schemathesis/bin/st`. Without it the test prints a loud
//! SKIPPED line and passes; `.ci/run` installs it. `CODERD_FUZZ_MAX_TIME` (seconds, default
//! 120) and `CODERD_FUZZ_SEED` (default fixed, `random` for a new one) tune a run; what it
//! checks and what it leaves out is recorded in docs/decisions.md.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use codersdk::{Client, CreateGroupRequest, CreateTokenRequest, Workspace};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::echo::{create_template, create_version};
use crate::harness::replica::{free_port, Replica};
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{checked_client, create_owner, fresh_database};

/// The seed CI uses, so that a red run is the same run again.
const DEFAULT_SEED: &str = "20261122";
/// Beyond the fuzzing budget: loading the document, the last requests, writing the report.
const GRACE: Duration = Duration::from_secs(90);

/// Checks every response gets. Not here: `negative_data_rejection` (the server decodes bodies
/// like Go, so `null` and unknown fields are accepted on purpose),
/// `positive_data_acceptance` (a schema-valid request may name nothing that exists, or a
/// weak password: a 4xx is the right answer) and `object_level_authorization` (needs a
/// second identity). See docs/decisions.md.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,\
                      missing_required_header,unsupported_method,allow_header_conformance,\
                      use_after_free,ensure_resource_availability,ignored_auth";

/// Operations left out, each for a reason in docs/decisions.md: logging out ends the session
/// every other request uses, `/watch` is a stream that never ends by design, and a build's
/// state is whatever bytes were put there, labelled JSON as upstream labels them.
const EXCLUDED: &[(&str, &str)] = &[
    ("POST", "/users/logout"),
    ("GET", "/workspaces/{workspace}/watch"),
    ("GET", "/workspacebuilds/{workspacebuild}/state"),
];

/// Loaded by schemathesis from its working directory: uploads (`POST /files`) are archives,
/// raw bytes it can send as it sends `application/octet-stream`.
const HOOKS: &str = r#"import schemathesis

schemathesis.serializer.alias(["application/x-tar", "application/zip"], "application/octet-stream")
"#;

/// Schemathesis, if installed; otherwise says so loudly.
fn schemathesis() -> Option<PathBuf> {
    let found = std::env::var_os("CODERD_SCHEMATHESIS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .flat_map(|d| [d.join("schemathesis"), d.join("st")])
                .find(|p| p.is_file())
        })
        .or_else(|| Some(PathBuf::from("/opt/schemathesis/bin/st")).filter(|p| p.is_file()));
    if found.is_none() {
        // Straight to stderr: the test harness would swallow `eprintln!` of a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: schemathesis not found; the fuzz test did not run \
             (set CODERD_SCHEMATHESIS or put `st` on PATH)"
        );
    }
    found
}

/// The server as its own process, so that its log (panics included) is its alone.
async fn start_server(dir: &Path) -> Replica {
    let db_url = fresh_database().await;
    let mut server = Replica::builder(&db_url, free_port())
        .env("CODER_CONFIG_DIR", dir.join("config"))
        .env("CODER_PROVISIONER_TYPES", "echo")
        .env("CODER_PROVISIONER_DAEMONS", "3")
        .env("CODER_PROVISIONER_POLL_INTERVAL", "1s")
        // Warnings and errors only: a 500's cause is logged as an error.
        .env("CODER_LOG_FILTER", "warn")
        .env("RUST_BACKTRACE", "1")
        .log(dir.join("server.log"))
        .spawn();
    server.wait_healthy().await;
    server
}

/// Whether the server still answers `/healthz` with its "OK", within 5 s.
async fn answers_healthz(server: &Replica) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    match client.get(format!("{}/healthz", server.url)).send().await {
        Ok(r) => r.status() == 200 && r.text().await.is_ok_and(|t| t == "OK"),
        Err(_) => false,
    }
}

/// Identifiers of real things for path parameters, by parameter name: the fuzzer uses them
/// most of the time, so that requests get past "not found" to the handlers' logic.
struct Seed {
    token: String,
    owner: Uuid,
    values: Vec<(&'static str, Vec<Value>)>,
}

/// An owner, a second user, a group, two templates each with a workspace (one stopped), a
/// dry run, and an API token.
async fn seed(url: &str) -> Seed {
    let (owner, first) = create_owner(&checked_client(url)).await;
    let token = owner.token().unwrap().to_string();
    let org = first.organization_id;
    let member = owner
        .create_user(&codersdk::CreateUserRequest {
            email: "member@example.com".into(),
            username: "member".into(),
            password: crate::harness::MEMBER_PASSWORD.into(),
            ..Default::default()
        })
        .await
        .expect("creating a member");
    let group = owner
        .create_group(
            org,
            &CreateGroupRequest {
                name: "fuzzers".into(),
                ..Default::default()
            },
        )
        .await
        .expect("creating a group");
    let echo = json!({
        "parse": {"parameters": [
            {"name": "cpu", "type": "number", "default_value": "2", "mutable": true,
             "validation_min": 1, "validation_max": 8}
        ]},
        // States are JSON, as Terraform's are: `GET .../state` says application/json.
        "start": {"state": "{\"phase\":\"running\"}", "logs": [{"output": "starting"}],
                  "resources": [{"name": "vm", "type": "echo_vm",
                                 "agents": [{"name": "main", "operating_system": "linux",
                                             "architecture": "amd64"}]}]},
        "stop": {"state": "{\"phase\":\"stopped\"}", "resources": [{"name": "vm", "type": "echo_vm"}]}
    });
    let mut templates = Vec::new();
    let mut versions = Vec::new();
    let mut workspaces = Vec::new();
    for name in ["alpha", "beta"] {
        let (t, v) = create_template(&owner, org, name, &echo).await;
        let w = owner.create_workspace(t.id, name).await;
        templates.push((t.id, t.name));
        versions.push((v.id, v.name));
        workspaces.push(succeeded(&owner, w.id).await);
    }
    // One stopped workspace, so a build has a stop transition and a second build number.
    let stopped: Value = owner
        .request(
            reqwest::Method::POST,
            &format!("/api/v2/workspaces/{}/builds", workspaces[1].id),
            Some(&json!({"transition": "stop"})),
        )
        .await
        .expect("stopping a workspace");
    assert!(stopped["id"].is_string());
    workspaces[1] = succeeded(&owner, workspaces[1].id).await;
    // A version of no template, still being imported while the fuzzer runs.
    let pending = create_version(
        &owner,
        org,
        &json!({"parse": {"duration_ms": 600000}}),
        None,
    )
    .await;
    let dry_run: Value = owner
        .request(
            reqwest::Method::POST,
            &format!("/api/v2/templateversions/{}/dry-run", versions[0].0),
            Some(&json!({})),
        )
        .await
        .expect("starting a dry run");
    owner
        .create_token(
            "me",
            &CreateTokenRequest {
                token_name: "fuzz".into(),
                ..Default::default()
            },
        )
        .await
        .expect("creating a token");
    let keys: Vec<Value> = owner
        .get_json("/api/v2/users/me/keys/tokens")
        .await
        .unwrap();
    let files: Vec<Value> = workspaces
        .iter()
        .map(|w| json!(w.latest_build.job.file_id))
        .collect();

    let s = |v: &dyn ToString| json!(v.to_string());
    let values = vec![
        ("organization", vec![s(&org), json!("coder")]),
        ("organizationname", vec![json!("coder")]),
        (
            "user",
            vec![
                json!("me"),
                json!("member"),
                s(&member.id),
                s(&first.user_id),
            ],
        ),
        ("group", vec![s(&group.id), s(&org)]),
        ("groupName", vec![json!("fuzzers"), json!("Everyone")]),
        ("template", templates.iter().map(|t| s(&t.0)).collect()),
        ("templatename", templates.iter().map(|t| s(&t.1)).collect()),
        (
            "templateversion",
            versions
                .iter()
                .map(|v| s(&v.0))
                .chain([s(&pending.id)])
                .collect(),
        ),
        (
            "templateversionname",
            versions.iter().map(|v| s(&v.1)).collect(),
        ),
        ("workspace", workspaces.iter().map(|w| s(&w.id)).collect()),
        (
            "workspacename",
            workspaces.iter().map(|w| s(&w.name)).collect(),
        ),
        (
            "workspacebuild",
            workspaces.iter().map(|w| s(&w.latest_build.id)).collect(),
        ),
        ("buildnumber", vec![json!("1"), json!("2")]),
        (
            "job",
            workspaces
                .iter()
                .map(|w| s(&w.latest_build.job.id))
                .chain([s(&pending.job.id)])
                .collect(),
        ),
        ("jobID", vec![dry_run["id"].clone()]),
        ("fileID", files),
        ("keyname", vec![json!("fuzz")]),
        ("keyid", keys.iter().map(|k| k["id"].clone()).collect()),
    ];
    Seed {
        token,
        owner: first.user_id,
        values,
    }
}

/// Waits for the workspace's latest build to end, which must be a success.
async fn succeeded(c: &Client, ws: Uuid) -> Workspace {
    let w = c.wait_for_build(ws, Duration::from_secs(60)).await;
    assert_eq!(
        w.latest_build.job.status, "succeeded",
        "{:?}",
        w.latest_build.job
    );
    w
}

/// schemathesis.toml: the seed's values as dictionaries bound to path parameters.
fn config(seed: &Seed) -> String {
    let mut dicts = String::from("[dictionaries]\n");
    let mut params = String::from("[parameters]\n");
    for (name, values) in &seed.values {
        let list: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        dicts.push_str(&format!("{name} = {{ values = [{}] }}\n", list.join(", ")));
        // Mostly real things, sometimes whatever the fuzzer makes up.
        params.push_str(&format!(
            "\"path.{name}\" = {{ dictionary = \"{name}\", probability = 0.8 }}\n"
        ));
    }
    format!("{dicts}\n{params}")
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

#[tokio::test]
async fn schemathesis_finds_no_server_errors_or_undocumented_answers() {
    let Some(st) = schemathesis() else { return };
    let dir = std::env::temp_dir().join(format!("coderd-fuzz-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = start_server(&dir).await;
    let seed = seed(&server.url).await;
    let config_path = dir.join("schemathesis.toml");
    std::fs::write(&config_path, config(&seed)).unwrap();
    std::fs::write(dir.join("fuzz_hooks.py"), HOOKS).unwrap();

    let max_time: u64 = env_or("CODERD_FUZZ_MAX_TIME", "120")
        .parse()
        .expect("CODERD_FUZZ_MAX_TIME is a number of seconds");
    let seed_arg = env_or("CODERD_FUZZ_SEED", DEFAULT_SEED);
    let mut args: Vec<String> = vec![
        "--config-file".into(),
        config_path.display().to_string(),
        "run".into(),
        format!("{}/api/v2/openapi.json", server.url),
        "--header".into(),
        format!("{}: {}", codersdk::SESSION_TOKEN_HEADER, seed.token),
        "--checks".into(),
        CHECKS.into(),
        // Fuzzing and stateful testing repeat until this is spent.
        "--max-time".into(),
        max_time.to_string(),
        "--max-examples".into(),
        "50".into(),
        // One worker: with two, schemathesis's threads parse lambdas with `ast.parse` at once,
        // which Python 3.11 (Debian 12's) can fail with "AST constructor recursion depth
        // mismatch" and a run ends in a tool error that says nothing about the server.
        "--workers".into(),
        "1".into(),
        // A request the server takes longer than this to answer is a hang.
        "--request-timeout".into(),
        "10".into(),
        "--generation-database".into(),
        "none".into(),
        "--no-color".into(),
        "--report".into(),
        "junit".into(),
        "--report-dir".into(),
        dir.join("report").display().to_string(),
    ];
    if seed_arg != "random" {
        args.extend(["--seed".into(), seed_arg]);
    }
    for (method, path) in EXCLUDED {
        args.extend(["--exclude-name".into(), format!("{method} {path}")]);
    }
    let out_path = dir.join("schemathesis.out");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&st)
        .args(&args)
        .current_dir(&dir)
        .env("PYTHONUNBUFFERED", "1")
        .env("SCHEMATHESIS_HOOKS", "fuzz_hooks")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(dir.join("schemathesis.err")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", st.display()));
    let limit = Duration::from_secs(max_time) + GRACE;
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => Some(status.expect("waiting for schemathesis")),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let elapsed = started.elapsed();
    let output = format!(
        "{}{}",
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(dir.join("schemathesis.err")).unwrap_or_default()
    );

    let healthy = answers_healthz(&server).await;
    let log = server.log_text();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked at")).collect();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("panicked at"))
        .collect();
    let report = format!(
        "{} {}\n\n{output}\nserver errors and panics:\n{}\n\n\
         The server's log, the JUnit report and schemathesis's output are kept in {}.",
        st.display(),
        args.join(" ").replace(&seed.token, "<token>"),
        errors.join("\n"),
        dir.display()
    );
    let Some(status) = status else {
        panic!("schemathesis did not finish within {limit:?}: a request hung?\n{report}");
    };
    assert!(
        status.success(),
        "schemathesis found problems ({status}):\n{report}"
    );
    assert!(panics.is_empty(), "the server panicked:\n{report}");
    assert!(healthy, "the server no longer answers /healthz:\n{report}");
    // A request after the storm: the database pool is not exhausted, the session still works.
    let me: Value = checked_client(&server.url)
        .with_token(&seed.token)
        .get_json("/api/v2/users/me")
        .await
        .unwrap_or_else(|e| panic!("GET /users/me after fuzzing: {e}\n{report}"));
    // (The fuzzer may well have renamed the owner.)
    assert_eq!(me["id"], seed.owner.to_string(), "{me}");

    // What ran, in CI's log too (the harness swallows a passing test's `eprintln!`).
    let summary: Vec<&str> = output
        .lines()
        .skip_while(|l| !l.contains(" SUMMARY "))
        .filter(|l| !l.trim_start().starts_with("- "))
        .collect();
    let _ = writeln!(
        std::io::stderr(),
        "fuzz: schemathesis ran for {:.0}s\n{}",
        elapsed.as_secs_f64(),
        summary.join("\n")
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
