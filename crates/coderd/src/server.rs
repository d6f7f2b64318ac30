//! Starting and stopping the server: database (built-in or external), HTTP listener, and
//! graceful shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use coderd_db::builtin::{BuiltinOptions, BuiltinPostgres};
use coderd_db::pubsub::Pubsub;
use coderd_db::{ConnectConfig, Store};
use coderd_provisioner::daemon::{DaemonConfig, Daemons};
use coderd_provisioner::Provisioner;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use uuid::Uuid;

use crate::config::{default_config_dir, ServerOptions};
use crate::ratelimit::{RateLimiter, RateLimits};
use crate::state::{ApiConfig, AppState, Inner};

/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
/// How long open streams get to say goodbye once told the server is stopping.
const STREAMS_GRACE: Duration = Duration::from_secs(2);

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
    pubsub: Pubsub,
    daemons: Option<Daemons>,
    stop_background: watch::Sender<bool>,
    reaper: JoinHandle<()>,
    executor: Option<JoinHandle<()>>,
    state: AppState,
    builtin: Option<BuiltinPostgres>,
    /// The TLS listener (`CODER_TLS_ENABLE`).
    tls: Option<(SocketAddr, JoinHandle<std::io::Result<()>>)>,
    /// The metrics listener (`CODER_PROMETHEUS_ENABLE`).
    prometheus: Option<(SocketAddr, JoinHandle<std::io::Result<()>>)>,
}

/// The provisioners this server can run, by type name: `echo` always, `terraform` when a
/// Terraform binary is found (`terraform_path`, else `terraform` or `tofu` on PATH).
fn available_provisioners(terraform_path: Option<&Path>) -> Vec<Arc<dyn Provisioner>> {
    let mut available: Vec<Arc<dyn Provisioner>> = vec![Arc::new(coderd_provisioner::echo::Echo)];
    match coderd_provisioner::terraform::Terraform::find(terraform_path) {
        Some(tf) => {
            tracing::info!(binary = %tf.binary().display(), "terraform provisioner available");
            available.push(Arc::new(tf));
        }
        None => match terraform_path {
            Some(path) => tracing::warn!(
                path = %path.display(),
                "the configured terraform binary was not found or is not executable; \
                 the terraform provisioner is unavailable"
            ),
            None => tracing::warn!(
                "no terraform (or tofu) binary on PATH; the terraform provisioner is unavailable"
            ),
        },
    }
    let names: Vec<_> = available.iter().map(|p| p.name()).collect();
    tracing::info!(provisioners = ?names, "available provisioners");
    available
}

/// The provisioners the built-in daemons run: `CODER_PROVISIONER_TYPES`, or all available.
fn configured_provisioners(
    types: &[String],
    terraform_path: Option<&Path>,
) -> anyhow::Result<Vec<Arc<dyn Provisioner>>> {
    let available = available_provisioners(terraform_path);
    if types.iter().all(|t| t.trim().is_empty()) {
        return Ok(available);
    }
    types
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| {
            available
                .iter()
                .find(|p| p.name() == t)
                .cloned()
                .ok_or_else(|| {
                    let names: Vec<_> = available.iter().map(|p| p.name()).collect();
                    anyhow::anyhow!(
                        "provisioner type {t:?} is not available (this build has: {})",
                        names.join(", ")
                    )
                })
        })
        .collect()
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
    let provisioners =
        configured_provisioners(&opts.provisioner_types, opts.terraform_path.as_deref())?;
    let proxy =
        crate::proxy::ProxyConfig::parse(&opts.proxy_trusted_headers, &opts.proxy_trusted_origins)?;
    let pubsub = Pubsub::start(store.pool().clone(), store.listen_pool().clone());

    let listener = tokio::net::TcpListener::bind(&opts.http_address)
        .await
        .with_context(|| format!("listening on {}", opts.http_address))?;
    let addr = listener.local_addr()?;
    let access_url = opts
        .access_url
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("http://{addr}"));

    let derp_settings = crate::derp::DerpSettings::from_options(&opts);
    let derp_map = crate::derp::build_map(&derp_settings, &access_url)
        .await
        .context("building the DERP map")?;
    let replica_id = Uuid::new_v4();
    let (coordinator, outbox) = crate::tailnet::Coordinator::new(replica_id);
    tokio::spawn(coordinator.clone().run_bus(pubsub.clone(), outbox));
    let mesh_key = {
        let mut b = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        store.derp_mesh_key(&hex::encode(b)).await?
    };
    let relay = crate::derp::relay(&derp_settings, &mesh_key);
    if let Some(relay) = &relay {
        // Other replicas reach this one's relay at its relay URL, or at the address it
        // listens on when that names one machine.
        let relay_url = opts
            .derp_server_relay_url
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| (!addr.ip().is_unspecified()).then(|| format!("http://{addr}")));
        if relay_url.is_none() {
            tracing::info!(
                "this replica listens on every address, so other replicas cannot mesh with its \
                 DERP relay until CODER_DERP_SERVER_RELAY_URL says where to reach it \
                 (a single replica needs nothing)"
            );
        }
        tokio::spawn(crate::derp_mesh::run(
            relay.clone(),
            pubsub.clone(),
            replica_id,
            relay_url,
            mesh_key,
        ));
    }
    let net = crate::derp::Net {
        derp_map,
        relay,
        coordinator,
        block_direct: derp_settings.block_direct,
        force_websockets: derp_settings.force_websockets,
    };

    let template_stats = Arc::new(crate::template_stats::StatsCache::default());
    let actors = Arc::new(crate::actors::ActorCache::default());
    actors.follow(&pubsub);

    let disabled = opts.dangerous_disable_rate_limits;
    let limit = |n: i64| RateLimiter::new(if disabled { -1 } else { n });
    let metrics = Arc::new(crate::metrics::Metrics::default());
    // As the access URL's scheme says, unless set either way.
    let secure_auth_cookie = opts
        .secure_auth_cookie
        .unwrap_or_else(|| access_url.starts_with("https://"));
    let deployment_config = Arc::new(crate::deployment::deployment_config(
        &crate::deployment::Effective {
            options: &opts,
            access_url: &access_url,
            secure_auth_cookie,
            sources: &opts.value_sources,
        },
    ));
    let state = AppState(Arc::new(Inner {
        store: store.clone(),
        pubsub: pubsub.clone(),
        streams: Default::default(),
        watch_hub: Default::default(),
        config: ApiConfig {
            access_url: access_url.clone(),
            session_duration: opts.session_duration,
            default_token_lifetime: opts.default_token_lifetime,
            max_token_lifetime: opts.max_token_lifetime,
            secure_auth_cookie,
            disable_password_auth: opts.disable_password_auth,
            disable_session_expiry_refresh: opts.disable_session_expiry_refresh,
            allow_workspace_renames: opts.allow_workspace_renames,
            swagger_enable: opts.swagger_enable,
            agent_binaries_dir: opts.agent_binaries_dir.clone(),
            deployment_config,
        },
        limits: RateLimits {
            api: limit(opts.api_rate_limit),
            login: limit(60),
            files: limit(12),
        },
        metrics: metrics.clone(),
        deployment_id,
        replica_id,
        template_stats: template_stats.clone(),
        actors,
        render_cache: Arc::new(crate::render_cache::RenderCache::default()),
        net,
        shutdown: watch::channel(false).0,
    }));

    let app = crate::api::router(state.clone());
    let app = if opts.redirect_to_access_url {
        let redirect = Arc::new(crate::proxy::RedirectConfig::new(&access_url));
        app.layer(axum::middleware::from_fn_with_state(
            redirect,
            crate::proxy::redirect_to_access_url,
        ))
    } else {
        app
    };
    let app = app.layer(axum::middleware::from_fn_with_state(
        Arc::new(proxy),
        crate::proxy::real_ip,
    ));
    let tls = if opts.tls_enable {
        let (Some(cert), Some(key)) = (&opts.tls_cert_file, &opts.tls_key_file) else {
            anyhow::bail!("CODER_TLS_ENABLE needs CODER_TLS_CERT_FILE and CODER_TLS_KEY_FILE");
        };
        let config = crate::tls::server_config(cert, key)?;
        let tcp = tokio::net::TcpListener::bind(&opts.tls_address)
            .await
            .with_context(|| format!("listening on {} for TLS", opts.tls_address))?;
        let listener = crate::tls::TlsListener::new(tcp, config)?;
        let tls_addr = axum::serve::Listener::local_addr(&listener)?;
        tracing::info!(address = %tls_addr, "serving the API over TLS");
        let tls_app = app
            .clone()
            .layer(axum::Extension(crate::proxy::ServedOverTls));
        // Each connection's peer, as `into_make_service_with_connect_info` gives it on TCP.
        let tls_app = tower::service_fn(
            move |conn: axum::serve::IncomingStream<'_, crate::tls::TlsListener>| {
                let peer = axum::extract::ConnectInfo(*conn.remote_addr());
                let app = tower::Layer::layer(&axum::Extension(peer), tls_app.clone());
                async move { Ok::<_, std::convert::Infallible>(app) }
            },
        );
        let stopping = state.clone();
        Some((
            tls_addr,
            tokio::spawn(async move {
                axum::serve(listener, tls_app)
                    .with_graceful_shutdown(async move { stopping.shutting_down().await })
                    .await
            }),
        ))
    } else {
        None
    };
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let (tx, rx) = oneshot::channel::<()>();
    let serve = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    let prometheus = if opts.prometheus_enable {
        let listener = tokio::net::TcpListener::bind(&opts.prometheus_address)
            .await
            .with_context(|| format!("listening on {} for metrics", opts.prometheus_address))?;
        let addr = listener.local_addr()?;
        tracing::info!(address = %addr, "serving Prometheus metrics");
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(crate::api::metrics::serve))
            .with_state(state.clone());
        let stopping = state.clone();
        Some((
            addr,
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stopping.shutting_down().await })
                    .await
            }),
        ))
    } else {
        None
    };
    let daemons = (opts.provisioner_daemons > 0).then(|| {
        let names: Vec<_> = provisioners.iter().map(|p| p.name()).collect();
        tracing::info!(count = opts.provisioner_daemons, types = ?names, "starting built-in provisioner daemons");
        coderd_provisioner::daemon::start(
            store.clone(),
            pubsub.clone(),
            DaemonConfig {
                count: opts.provisioner_daemons,
                name: format!("{}-{}", hostname(), &Uuid::new_v4().simple().to_string()[..6]),
                provisioners,
                poll_interval: opts.provisioner_poll_interval,
                heartbeat_interval: Duration::from_secs(1),
                version: crate::version::BUILD_VERSION.to_string(),
                shutdown_grace: Duration::from_secs(10),
                access_url: access_url.clone(),
                observer: Some(Arc::new(crate::metrics::Observers(vec![
                    metrics.clone(),
                    template_stats.clone(),
                ]))),
            },
        )
    });
    let (stop_background, stop_rx) = watch::channel(false);
    let reaper = crate::reaper::start(
        store.clone(),
        pubsub.clone(),
        crate::reaper::ReaperConfig {
            interval: opts.job_reaper_interval,
            hung_after: opts.job_hung_after,
            pending_after: opts.job_pending_after,
        },
        stop_rx.clone(),
    );
    let executor = (!opts.autobuild_poll_interval.is_zero()).then(|| {
        crate::lifecycle::Executor::new(state.clone()).start(opts.autobuild_poll_interval, stop_rx)
    });
    tracing::info!(address = %addr, access_url, "coderd is serving /api/v2");
    Ok(RunningServer {
        addr,
        access_url,
        shutdown: Some(tx),
        serve,
        store,
        pubsub,
        daemons,
        stop_background,
        reaper,
        executor,
        state,
        builtin,
        tls,
        prometheus,
    })
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn access_url(&self) -> &str {
        &self.access_url
    }

    /// Where the TLS listener serves, when enabled.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|t| t.0)
    }

    /// Where the metrics listener serves, when enabled.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus.as_ref().map(|p| p.0)
    }

    /// A lifecycle executor of this server, for driving ticks with a chosen clock.
    pub fn executor(&self) -> crate::lifecycle::Executor {
        crate::lifecycle::Executor::new(self.state.clone())
    }

    /// Stops acquiring jobs at once, ends open streams and stops accepting; lets in-flight
    /// requests finish (bounded) while running jobs get their grace (then fail); closes the
    /// database pool and stops the built-in database.
    pub async fn shutdown(mut self) {
        let daemons = self.daemons.take().map(|d| {
            d.stop_acquiring();
            tokio::spawn(d.shutdown())
        });
        let _ = self.state.shutdown.send(true);
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
        if let Some((_, tls)) = self.tls.take() {
            let abort = tls.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, tls).await.is_err() {
                abort.abort();
            }
        }
        // Upgraded WebSockets live outside the HTTP server: give them a moment to send their
        // close frames.
        let started = std::time::Instant::now();
        while self.state.streams.get() > 0 && started.elapsed() < STREAMS_GRACE {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some((_, metrics)) = self.prometheus.take() {
            let _ = tokio::time::timeout(STREAMS_GRACE, metrics).await;
        }
        let _ = self.stop_background.send(true);
        let _ = (&mut self.reaper).await;
        if let Some(e) = self.executor.take() {
            let _ = e.await;
        }
        if let Some(d) = daemons {
            let _ = d.await;
        }
        self.pubsub.shutdown();
        self.store.close().await;
        if let Some(mut pg) = self.builtin.take() {
            pg.stop().await;
        }
        tracing::info!("coderd stopped");
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "coderd".into())
}
