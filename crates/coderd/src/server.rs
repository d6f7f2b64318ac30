//! Starting and stopping the server: database (built-in or external), HTTP listener, and
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use coderd_db::builtin::{BuiltinOptions, BuiltinPostgres};
use coderd_db::{ConnectConfig, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{default_config_dir, ServerOptions};
use crate::ratelimit::{RateLimiter, RateLimits};
use crate::state::{ApiConfig, AppState, Inner};

/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// Everything `start` needs beyond the command-line options.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    pub builtin: BuiltinOptions,
}

/// A server that is accepting requests.
pub struct RunningServer {
    addr: SocketAddr,
    access_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    serve: JoinHandle<std::io::Result<()>>,
    store: Store,
    builtin: Option<BuiltinPostgres>,
}

/// Connects to (or starts) the database, migrates it, binds the HTTP address and serves.
pub async fn start(opts: ServerOptions, start: StartOptions) -> anyhow::Result<RunningServer> {
    let mut builtin = None;
    let url = match opts.postgres_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => url.to_string(),
        None => {
            let dir = opts
                .config_dir
                .clone()
                .unwrap_or_else(default_config_dir)
                .join("postgres");
            tracing::info!(dir = %dir.display(), "no database URL given; starting the built-in PostgreSQL");
            let pg = BuiltinPostgres::start(&dir, &start.builtin).await?;
            let url = pg.url().to_string();
            builtin = Some(pg);
            url
        }
    };
    let store = Store::connect(&ConnectConfig {
        url,
        max_connections: opts.pg_conn_max_open,
        connect_timeout: Duration::from_secs(30),
    })
    .await
    .context("connecting to PostgreSQL")?;
    let deployment_id = store.deployment_id().await?;

    let listener = tokio::net::TcpListener::bind(&opts.http_address)
        .await
        .with_context(|| format!("listening on {}", opts.http_address))?;
    let addr = listener.local_addr()?;
    let access_url = opts
        .access_url
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("http://{addr}"));

    let disabled = opts.dangerous_disable_rate_limits;
    let limit = |n: i64| RateLimiter::new(if disabled { -1 } else { n });
    let state = AppState(Arc::new(Inner {
        store: store.clone(),
        config: ApiConfig {
            access_url: access_url.clone(),
            session_duration: opts.session_duration,
            default_token_lifetime: opts.default_token_lifetime,
            max_token_lifetime: opts.max_token_lifetime,
            secure_auth_cookie: opts.secure_auth_cookie,
            disable_password_auth: opts.disable_password_auth,
            disable_session_expiry_refresh: opts.disable_session_expiry_refresh,
        },
        limits: RateLimits {
            api: limit(opts.api_rate_limit),
            login: limit(60),
            files: limit(12),
        },
        deployment_id,
    }));

    let app = crate::api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let (tx, rx) = oneshot::channel::<()>();
    let serve = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    tracing::info!(address = %addr, access_url, "coderd is serving /api/v2");
    Ok(RunningServer {
        addr,
        access_url,
        shutdown: Some(tx),
        serve,
        store,
        builtin,
    })
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn access_url(&self) -> &str {
        &self.access_url
    }

    /// Stops accepting, lets in-flight requests finish (bounded), closes the database pool and
    /// stops the built-in database.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let abort = self.serve.abort_handle();
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.serve).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server ended with an error"),
            Ok(_) => {}
            Err(_) => {
                tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; dropping them");
                abort.abort();
            }
        }
        self.store.close().await;
        if let Some(mut pg) = self.builtin.take() {
            pg.stop().await;
        }
        tracing::info!("coderd stopped");
    }
}
