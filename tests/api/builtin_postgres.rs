//! The real `coderd` binary with its built-in PostgreSQL: start, serve, stop cleanly on
//! SIGTERM, start again with the same data.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{OWNER_EMAIL, OWNER_PASSWORD};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(config: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_coderd"))
        .args(["server", "--http-address", &format!("127.0.0.1:{port}")])
        .env("CODER_CONFIG_DIR", config)
        .env_remove("CODER_PG_CONNECTION_URL")
        .env("CODER_DANGEROUS_DISABLE_RATE_LIMITS", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting coderd")
}

async fn wait_healthy(url: &str, child: &mut Child) {
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/healthz")).await {
            if r.status() == 200 {
                return;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("coderd exited early: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "coderd did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn terminate(mut child: Child) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "coderd exited with {status}");
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "coderd did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn builtin_url(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_coderd"))
        .args(["server", "postgres-builtin-url", "--raw-url"])
        .env("CODER_CONFIG_DIR", config)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn builtin_database_keeps_data_across_restarts() {
    let config =
        std::env::temp_dir().join(format!("coderd-builtin-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&config).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db_url = builtin_url(&config);
    assert!(db_url.starts_with("postgres://coder:"), "{db_url}");
    let pg_port: u16 = db_url
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let password_file = config.join("postgres/password");
    assert_eq!(
        std::fs::metadata(&password_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = spawn(&config, port);
    wait_healthy(&url, &mut child).await;
    let client = codersdk::Client::new(&url);
    client
        .create_first_user(&codersdk::CreateFirstUserRequest {
            email: OWNER_EMAIL.into(),
            username: "owner".into(),
            password: OWNER_PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    terminate(child);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", pg_port)).is_err(),
        "the built-in PostgreSQL stops with coderd"
    );

    let mut child = spawn(&config, port);
    wait_healthy(&url, &mut child).await;
    assert_eq!(
        builtin_url(&config),
        db_url,
        "same password and port on the second start"
    );
    let token = client
        .login_with_password(OWNER_EMAIL, OWNER_PASSWORD)
        .await
        .expect("the user survived the restart");
    assert_eq!(
        client
            .with_token(token.session_token)
            .user("me")
            .await
            .unwrap()
            .username,
        "owner"
    );
    terminate(child);
    let _ = std::fs::remove_dir_all(&config);
}

#[test]
fn version_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_coderd"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim(), format!("coderd {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_configuration_is_refused_before_starting() {
    let out = Command::new(env!("CARGO_BIN_EXE_coderd"))
        .args(["server", "--access-url", "ftp://example.com"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must start with http:// or https://"), "{err}");
}
