//! Test harness: a real PostgreSQL (from `CODER_TEST_PG_URL`, else the built-in database code
//! in a temp dir), a fresh database per test cloned from a migrated template, and the real
//! server on a random port, spoken to over HTTP through `codersdk::Client`. Every response the
//! client receives is checked against the API reference.

#[path = "../../support/echo.rs"]
pub mod echo;
#[path = "../../support/replica.rs"]
#[allow(dead_code)] // the benchmarks' part: memory, metrics, a log of their own
pub mod replica;
pub mod schema;
pub mod tailnet;
#[path = "../../support/users.rs"]
mod users;
#[path = "../../support/workspace.rs"]
pub mod workspace;
#[path = "../../support/ws_bytes.rs"]
pub mod ws_bytes;

pub use users::{create_owner, OWNER_EMAIL, OWNER_PASSWORD};

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use coderd::config::ServerOptions;
use coderd::server::{RunningServer, StartOptions};
use codersdk::{Client, CreateFirstUserResponse, CreateUserRequest, User};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

pub const MEMBER_PASSWORD: &str = "AnotherSecurePassword!";

const TEMPLATE_DB: &str = "coderd_test_template";

struct Cluster {
    /// URL of the cluster's maintenance database, with credentials.
    admin_url: String,
    file_copy: bool,
}

fn with_db(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// Runs `fut` on a private runtime in its own thread (the caller may be inside a runtime).
fn block_on_thread<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut)
    })
    .join()
    .unwrap()
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| block_on_thread(init_cluster()))
}

async fn init_cluster() -> Cluster {
    let admin_url = match std::env::var("CODER_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(url) => url,
        None => {
            let root = std::env::temp_dir().join(format!("coderd-test-pg-{}", std::process::id()));
            remove_stale_clusters();
            std::fs::create_dir_all(&root).unwrap();
            // The database may run as an unprivileged user, who must reach its directory.
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
            let pg = coderd_db::builtin::BuiltinPostgres::start(
                &root.join("postgres"),
                &coderd_db::builtin::BuiltinOptions {
                    unsafe_no_fsync: true,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("starting the test PostgreSQL: {e}"));
            let url = pg.url().to_string();
            // It lives as long as this test process, which stops it by its death signal.
            std::mem::forget(pg);
            url
        }
    };
    let mut conn = PgConnection::connect(&admin_url)
        .await
        .expect("connecting to the test PostgreSQL");
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {TEMPLATE_DB}"))
        .execute(&mut conn)
        .await;
    sqlx::query(&format!("CREATE DATABASE {TEMPLATE_DB}"))
        .execute(&mut conn)
        .await
        .expect("creating the template database");
    let store = coderd_db::Store::connect(&coderd_db::ConnectConfig {
        url: with_db(&admin_url, TEMPLATE_DB),
        max_connections: 1,
        connect_timeout: std::time::Duration::from_secs(10),
    })
    .await
    .expect("migrating the template database");
    store.close().await;
    Cluster {
        admin_url,
        file_copy: version >= 150000,
    }
}

/// Removes clusters left by earlier test processes that are gone.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("coderd-test-pg-")
            .and_then(|p| p.parse::<u32>().ok())
        {
            if !PathBuf::from(format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A fresh, migrated database for one test; returns its URL.
pub async fn fresh_database() -> String {
    create_database(&format!("TEMPLATE {TEMPLATE_DB}")).await
}

/// A database with no tables at all, as a new deployment starts with.
pub async fn empty_database() -> String {
    create_database("").await
}

async fn create_database(template: &str) -> String {
    let c = cluster();
    let name = format!("t_{}", Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&c.admin_url).await.unwrap();
    let strategy = if c.file_copy && !template.is_empty() {
        " STRATEGY = FILE_COPY"
    } else {
        ""
    };
    sqlx::query(&format!("CREATE DATABASE {name} {template}{strategy}"))
        .execute(&mut conn)
        .await
        .expect("cloning the template database");
    let _ = conn.close().await;
    with_db(&c.admin_url, &name)
}

/// A client whose every response is checked against the API reference.
pub fn checked_client(base: &str) -> Client {
    Client::new(base).with_observer(Arc::new(|method, path, status, ct, body| {
        let problems = schema::spec().check_response(method.as_str(), path, status.as_u16(), ct, body);
        assert!(
            problems.is_empty(),
            "{method} {path} answered {status} with a body that does not match the API reference:\n  {}\nbody: {}",
            problems.join("\n  "),
            String::from_utf8_lossy(body)
        );
    }))
}

pub struct TestServer {
    pub url: String,
    pub db_url: String,
    /// Anonymous client.
    pub client: Client,
    running: Option<RunningServer>,
}

/// Options every test server starts with: random port, rate limits off.
pub fn test_options(db_url: &str) -> ServerOptions {
    ServerOptions {
        http_address: "127.0.0.1:0".into(),
        postgres_url: Some(db_url.to_string()),
        dangerous_disable_rate_limits: true,
        pg_conn_max_open: 5,
        provisioner_poll_interval: std::time::Duration::from_secs(1),
        // Tests that want terraform ask for it; the default would add it when it is on PATH.
        provisioner_types: vec!["echo".into()],
        // Tests tick the lifecycle executor themselves, with their own clock.
        autobuild_poll_interval: std::time::Duration::ZERO,
        ..Default::default()
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut ServerOptions)) -> TestServer {
        let db_url = fresh_database().await;
        let mut opts = test_options(&db_url);
        configure(&mut opts);
        let running = coderd::server::start(opts, StartOptions::default())
            .await
            .expect("starting the server");
        let url = format!("http://{}", running.local_addr());
        TestServer {
            client: checked_client(&url),
            url,
            db_url,
            running: Some(running),
        }
    }

    /// A lifecycle executor of this server, to tick with a chosen clock.
    pub fn executor(&self) -> coderd::lifecycle::Executor {
        self.running.as_ref().expect("running").executor()
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Creates the first user (an owner) and returns a client logged in as them.
    pub async fn owner(&self) -> (Client, CreateFirstUserResponse) {
        create_owner(&self.client).await
    }

    /// Creates a user through `admin`, activates them by logging in, and returns their client.
    pub async fn member(&self, admin: &Client, username: &str) -> (Client, User) {
        let email = format!("{username}@example.com");
        let user = admin
            .create_user(&CreateUserRequest {
                email: email.clone(),
                username: username.into(),
                password: MEMBER_PASSWORD.into(),
                ..Default::default()
            })
            .await
            .expect("creating a member");
        let token = self
            .client
            .login_with_password(&email, MEMBER_PASSWORD)
            .await
            .expect("logging in as a member")
            .session_token;
        (self.client.with_token(token), user)
    }
}

/// A WebSocket request to `path` of a server at `base` (http://…), with a session token.
pub fn ws_request(
    base: &str,
    path: &str,
    token: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{}{path}", base.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Coder-Session-Token", token.parse().unwrap());
    req
}

/// Sends a raw JSON request and returns (status, parsed body or Null).
pub async fn raw_json(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let raw = client
        .send(
            method,
            path,
            body.map(|b| ("application/json", b.as_bytes().to_vec())),
            &[],
        )
        .await
        .expect("request");
    let v = serde_json::from_slice(&raw.body).unwrap_or(serde_json::Value::Null);
    (raw.status.as_u16(), v)
}

/// Asserts an error status and message (and returns the body for more checks).
pub fn expect_error(err: codersdk::ClientError, status: u16, message: &str) -> codersdk::Response {
    match err {
        codersdk::ClientError::Api {
            status: s,
            response,
        } => {
            assert_eq!(s.as_u16(), status, "unexpected status; body: {response:?}");
            assert_eq!(
                response.message, message,
                "unexpected message; body: {response:?}"
            );
            response
        }
        other => panic!("expected an API error, got {other}"),
    }
}
