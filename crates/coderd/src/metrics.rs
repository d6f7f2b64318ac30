//! Prometheus metrics under upstream Coder's names and labels where Coder has them: requests
//! (`coderd_api_*`), provisioner jobs (`coderd_provisionerd_*`), latest builds, pubsub latency
//! (`coder_pubsub_*`); plus the database pool and our stream gauges. Served on `/metrics`, and
//! on `CODER_PROMETHEUS_ADDRESS` when set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::state::AppState;

/// Every collector of one process.
pub struct Metrics {
    registry: Registry,
    requests_processed: IntCounterVec,
    concurrent_requests: IntGaugeVec,
    concurrent_websockets: IntGaugeVec,
    websocket_durations: HistogramVec,
    request_latencies: HistogramVec,
    jobs_current: IntGaugeVec,
    job_timings: HistogramVec,
    // Read at scrape time.
    workspace_latest_build: IntGaugeVec,
    provisioner_jobs: IntGaugeVec,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    open_streams: IntGauge,
    /// DERP relay and coordinator gauges, read from them at scrape time.
    derp_clients: IntGauge,
    derp_packets: IntGaugeVec,
    tailnet_peers: IntGauge,
    api_key_cache: IntGaugeVec,
    pubsub_subscribers: IntGauge,
    pubsub_send_latency: prometheus::Gauge,
    pubsub_receive_latency: prometheus::Gauge,
    pubsub_measures: IntCounter,
    pubsub_measure_errors: IntCounter,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

impl Default for Metrics {
    fn default() -> Self {
        let r = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help);
        let hist = |name: &str, help: &str, buckets: &[f64]| {
            HistogramOpts::new(name, help).buckets(buckets.to_vec())
        };
        Metrics {
            requests_processed: register(
                &r,
                IntCounterVec::new(
                    opts(
                        "coderd_api_requests_processed_total",
                        "The total number of processed API requests",
                    ),
                    &["code", "method", "path"],
                )
                .unwrap(),
            ),
            concurrent_requests: register(
                &r,
                IntGaugeVec::new(
                    opts(
                        "coderd_api_concurrent_requests",
                        "The number of concurrent API requests.",
                    ),
                    &["method", "path"],
                )
                .unwrap(),
            ),
            concurrent_websockets: register(
                &r,
                IntGaugeVec::new(
                    opts(
                        "coderd_api_concurrent_websockets",
                        "The total number of concurrent API websockets.",
                    ),
                    &["path"],
                )
                .unwrap(),
            ),
            websocket_durations: register(
                &r,
                HistogramVec::new(
                    hist(
                        "coderd_api_websocket_durations_seconds",
                        "Websocket duration distribution of requests in seconds.",
                        &[0.001, 1.0, 60.0, 3600.0, 54000.0, 108000.0],
                    ),
                    &["path"],
                )
                .unwrap(),
            ),
            request_latencies: register(
                &r,
                HistogramVec::new(
                    hist(
                        "coderd_api_request_latencies_seconds",
                        "Latency distribution of requests in seconds.",
                        &[
                            0.001, 0.005, 0.010, 0.025, 0.050, 0.100, 0.500, 1.0, 5.0, 10.0, 30.0,
                        ],
                    ),
                    &["method", "path"],
                )
                .unwrap(),
            ),
            jobs_current: register(
                &r,
                IntGaugeVec::new(
                    opts(
                        "coderd_provisionerd_jobs_current",
                        "The number of currently running provisioner jobs.",
                    ),
                    &["provisioner"],
                )
                .unwrap(),
            ),
            job_timings: register(
                &r,
                HistogramVec::new(
                    hist(
                        "coderd_provisionerd_job_timings_seconds",
                        "The provisioner job time duration in seconds.",
                        &[1.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0],
                    ),
                    &["provisioner", "status"],
                )
                .unwrap(),
            ),
            workspace_latest_build: register(
                &r,
                IntGaugeVec::new(
                    opts(
                        "coderd_api_workspace_latest_build",
                        "The current number of workspace builds by status for all non-deleted workspaces.",
                    ),
                    &["status"],
                )
                .unwrap(),
            ),
            provisioner_jobs: register(
                &r,
                IntGaugeVec::new(
                    opts(
                        "coderd_provisioner_jobs",
                        "Unfinished provisioner jobs of the deployment, by provisioner and status.",
                    ),
                    &["provisioner", "status"],
                )
                .unwrap(),
            ),
            pool_connections: register(
                &r,
                IntGaugeVec::new(
                    opts(
                        "coderd_db_pool_connections",
                        "Open database connections of this process's pool, by state.",
                    ),
                    &["state"],
                )
                .unwrap(),
            ),
            pool_max: register(
                &r,
                IntGauge::new(
                    "coderd_db_pool_max_connections",
                    "The most connections the pool opens (CODER_PG_CONN_MAX_OPEN).",
                )
                .unwrap(),
            ),
            open_streams: register(
                &r,
                IntGauge::new(
                    "coderd_open_streams",
                    "Open watch and log-follow streams.",
                )
                .unwrap(),
            ),
            derp_clients: register(
                &r,
                IntGauge::new(
                    "coderd_derp_clients",
                    "Clients connected to this replica's DERP relay.",
                )
                .unwrap(),
            ),
            derp_packets: register(
                &r,
                IntGaugeVec::new(
                    prometheus::Opts::new(
                        "coderd_derp_packets",
                        "Packets this replica's relay handled since it started, by outcome: \
                         relayed (to a local client), forwarded (to another replica), dropped.",
                    ),
                    &["outcome"],
                )
                .unwrap(),
            ),
            tailnet_peers: register(
                &r,
                IntGauge::new(
                    "coderd_tailnet_coordinator_peers",
                    "Clients and agents coordinating through this replica.",
                )
                .unwrap(),
            ),
            api_key_cache: register(
                &r,
                IntGaugeVec::new(
                    prometheus::Opts::new(
                        "coderd_api_key_cache_lookups",
                        "Authenticated requests since start, by whether their API key's caller \
                         was served from memory (hit) or read from the database (miss).",
                    ),
                    &["outcome"],
                )
                .unwrap(),
            ),
            pubsub_subscribers: register(
                &r,
                IntGauge::new("coderd_pubsub_subscribers", "Local pubsub subscriptions.").unwrap(),
            ),
            pubsub_send_latency: register(
                &r,
                prometheus::Gauge::new(
                    "coder_pubsub_send_latency_seconds",
                    "The time taken to send a message into a pubsub event channel",
                )
                .unwrap(),
            ),
            pubsub_receive_latency: register(
                &r,
                prometheus::Gauge::new(
                    "coder_pubsub_receive_latency_seconds",
                    "The time taken to receive a message from a pubsub event channel",
                )
                .unwrap(),
            ),
            pubsub_measures: register(
                &r,
                IntCounter::new(
                    "coder_pubsub_latency_measures_total",
                    "The number of pubsub latency measurements",
                )
                .unwrap(),
            ),
            pubsub_measure_errors: register(
                &r,
                IntCounter::new(
                    "coder_pubsub_latency_measure_errs_total",
                    "The number of pubsub latency measurement failures",
                )
                .unwrap(),
            ),
            registry: {
                register(&r, QUERY_LATENCIES.clone());
                r
            },
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Held by a WebSocket for its lifetime: `coderd_api_concurrent_websockets` and, at the end,
/// `coderd_api_websocket_durations_seconds`.
pub struct WebsocketGuard {
    metrics: Arc<Metrics>,
    path: &'static str,
    started: Instant,
}

impl Drop for WebsocketGuard {
    fn drop(&mut self) {
        self.metrics
            .concurrent_websockets
            .with_label_values(&[self.path])
            .dec();
        self.metrics
            .websocket_durations
            .with_label_values(&[self.path])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Metrics {
    /// Counts an upgraded WebSocket of route `path` until the guard is dropped.
    pub fn websocket(self: &Arc<Self>, path: &'static str) -> WebsocketGuard {
        self.concurrent_websockets.with_label_values(&[path]).inc();
        WebsocketGuard {
            metrics: self.clone(),
            path,
            started: Instant::now(),
        }
    }
}

/// This process's daemons' jobs, as Coder's provisionerd counts them.
/// Several observers of the built-in daemons' jobs, told in turn.
pub struct Observers(pub Vec<Arc<dyn coderd_provisioner::daemon::JobObserver>>);

impl coderd_provisioner::daemon::JobObserver for Observers {
    fn started(&self, provisioner: &str) {
        self.0.iter().for_each(|o| o.started(provisioner));
    }

    fn finished(&self, provisioner: &str, status: &str, took: Duration) {
        self.0
            .iter()
            .for_each(|o| o.finished(provisioner, status, took));
    }

    fn stored(&self) {
        self.0.iter().for_each(|o| o.stored());
    }
}

impl coderd_provisioner::daemon::JobObserver for Metrics {
    fn started(&self, provisioner: &str) {
        self.jobs_current.with_label_values(&[provisioner]).inc();
    }

    fn finished(&self, provisioner: &str, status: &str, took: Duration) {
        self.jobs_current.with_label_values(&[provisioner]).dec();
        self.job_timings
            .with_label_values(&[provisioner, status])
            .observe(took.as_secs_f64());
    }
}

fn is_websocket_upgrade(req: &Request) -> bool {
    let h = req.headers();
    h.get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && h.get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"))
}

/// Counts and times every request by method and route pattern (never the raw path, so the
/// label set stays bounded; unrouted requests have an empty `path`). A request is concurrent
/// until its body is sent, so an open event stream counts, as in Coder.
pub async fn track_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let m = state.metrics.clone();
    let method = req.method().to_string();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let websocket = is_websocket_upgrade(&req);
    let started = Instant::now();
    let concurrent = (!websocket).then(|| {
        let g = m.concurrent_requests.with_label_values(&[&method, &path]);
        g.inc();
        GaugeGuard(g)
    });
    let resp = next.run(req).await;
    m.requests_processed
        .with_label_values(&[resp.status().as_str(), &method, &path])
        .inc();
    if websocket {
        return resp;
    }
    m.request_latencies
        .with_label_values(&[&method, &path])
        .observe(started.elapsed().as_secs_f64());
    let (parts, body) = resp.into_parts();
    // A body of known size is in memory already (and keeps its Content-Length); a stream
    // counts until it ends.
    if axum::body::HttpBody::size_hint(&body).exact().is_some() {
        return Response::from_parts(parts, body);
    }
    let body = body.into_data_stream().map(move |chunk| {
        let _still_sending = &concurrent;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// Decrements a gauge when dropped.
struct GaugeGuard(IntGauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Measures pubsub's round trip as Coder does: publish on a channel of our own and wait for
/// the message to come back through LISTEN.
async fn measure_pubsub(state: &AppState) {
    let m = &state.metrics;
    m.pubsub_measures.inc();
    let channel = format!("pubsub-latency:{}", uuid::Uuid::new_v4());
    let mut sub = state.pubsub.subscribe(&channel);
    let started = Instant::now();
    if state.pubsub.publish(&channel, "ping").await.is_err() {
        m.pubsub_measure_errors.inc();
        m.pubsub_send_latency.set(-1.0);
        m.pubsub_receive_latency.set(-1.0);
        return;
    }
    m.pubsub_send_latency.set(started.elapsed().as_secs_f64());
    match tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match sub.recv().await {
                Some(coderd_db::pubsub::Event::Message(_)) => return true,
                Some(coderd_db::pubsub::Event::Dropped) => continue,
                None => return false,
            }
        }
    })
    .await
    {
        Ok(true) => m
            .pubsub_receive_latency
            .set(started.elapsed().as_secs_f64()),
        _ => {
            m.pubsub_measure_errors.inc();
            m.pubsub_receive_latency.set(-1.0);
        }
    }
}

/// Reads what lives in the database; a failure leaves the last values and is logged.
async fn refresh_from_database(state: &AppState) {
    let m = &state.metrics;
    match state.store.latest_build_status_counts().await {
        Ok(rows) => {
            m.workspace_latest_build.reset();
            for (status, n) in rows {
                m.workspace_latest_build
                    .with_label_values(&[&status])
                    .set(n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: counting latest builds"),
    }
    match state.store.active_job_counts().await {
        Ok(rows) => {
            m.provisioner_jobs.reset();
            for (provisioner, status, n) in rows {
                m.provisioner_jobs
                    .with_label_values(&[&provisioner, &status])
                    .set(n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: counting provisioner jobs"),
    }
}

/// `GET /metrics`, in Prometheus' text format.
pub async fn serve(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let pool = state.store.pool();
    let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
    let open = i64::from(pool.size());
    m.pool_connections.with_label_values(&["idle"]).set(idle);
    m.pool_connections
        .with_label_values(&["in_use"])
        .set((open - idle).max(0));
    m.pool_max
        .set(i64::from(pool.options().get_max_connections()));
    m.open_streams.set(state.streams.get());
    if let Some(relay) = &state.net.relay {
        use std::sync::atomic::Ordering::Relaxed;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        m.derp_clients
            .set(i64::try_from(relay.client_count()).unwrap_or(i64::MAX));
        for (outcome, v) in [
            ("relayed", &relay.stats.packets_relayed),
            ("forwarded", &relay.stats.packets_forwarded),
            ("dropped", &relay.stats.packets_dropped),
        ] {
            m.derp_packets
                .with_label_values(&[outcome])
                .set(n(v.load(Relaxed)));
        }
    }
    m.tailnet_peers
        .set(i64::try_from(state.net.coordinator.peer_count()).unwrap_or(i64::MAX));
    {
        use std::sync::atomic::Ordering::Relaxed;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        m.api_key_cache
            .with_label_values(&["hit"])
            .set(n(state.actors.hits.load(Relaxed)));
        m.api_key_cache
            .with_label_values(&["miss"])
            .set(n(state.actors.misses.load(Relaxed)));
    }
    m.pubsub_subscribers
        .set(i64::try_from(state.pubsub.subscriber_count()).unwrap_or(i64::MAX));
    tokio::join!(refresh_from_database(&state), measure_pubsub(&state));
    let mut body = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut body) {
        tracing::error!(error = %e, "encoding metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

/// Every SQL statement's latency, by statement kind and first table (`SELECT workspaces`),
/// fed by [`QueryLatencyLayer`] from sqlx's statement events. Shared by the servers of a
/// process, as the tracing subscriber is.
static QUERY_LATENCIES: std::sync::LazyLock<HistogramVec> = std::sync::LazyLock::new(|| {
    HistogramVec::new(
        HistogramOpts::new(
            "coderd_db_query_latencies_seconds",
            "Latency distribution of SQL statements in seconds, by kind and first table.",
        )
        .buckets(vec![
            0.001, 0.005, 0.010, 0.025, 0.050, 0.100, 0.500, 1.0, 5.0, 10.0, 30.0,
        ]),
        &["query"],
    )
    .unwrap()
});

/// `SELECT workspaces` for `SELECT … FROM workspaces w …`: the verb and the first table
/// named after `FROM`, `INTO`, `UPDATE` or `JOIN`, so the label set stays small.
fn query_label(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().take(400).collect();
    let mut verb = words
        .first()
        .map(|w| w.to_ascii_uppercase())
        .unwrap_or_default();
    // A statement led by CTEs is labelled by what it does: a write if any part writes.
    if verb == "WITH" {
        verb = ["INSERT", "UPDATE", "DELETE"]
            .into_iter()
            .find(|v| words.iter().any(|w| w.eq_ignore_ascii_case(v)))
            .unwrap_or("SELECT")
            .to_string();
    }
    let after = |kw: &str| {
        words
            .windows(2)
            .find(|w| w[0].eq_ignore_ascii_case(kw) && !w[1].starts_with('('))
            .map(|w| w[1])
    };
    let table = match verb.as_str() {
        "UPDATE" => after("UPDATE"),
        "INSERT" => after("INTO"),
        "DELETE" => after("FROM"),
        _ => after("FROM")
            .or_else(|| after("INTO"))
            .or_else(|| after("UPDATE")),
    };
    let table: String = table
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    if table.is_empty() {
        verb
    } else {
        format!("{verb} {table}")
    }
}

/// A tracing layer that turns sqlx's per-statement events (`sqlx::query`, which the store
/// emits at trace level) into `coderd_db_query_latencies_seconds`. Installed by the binary
/// beside its log output.
pub struct QueryLatencyLayer;

#[derive(Default)]
struct StatementFields {
    summary: String,
    statement: String,
    elapsed_secs: Option<f64>,
}

impl tracing::field::Visit for StatementFields {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_string(),
            "db.statement" => self.statement = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "summary" => self.summary = format!("{value:?}").trim_matches('"').to_string(),
            "db.statement" => self.statement = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for QueryLatencyLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut f = StatementFields::default();
        event.record(&mut f);
        if let Some(secs) = f.elapsed_secs {
            let sql = if f.statement.trim().is_empty() {
                &f.summary
            } else {
                &f.statement
            };
            let label = query_label(sql);
            QUERY_LATENCIES.with_label_values(&[&label]).observe(secs);
            crate::traces::statement_span(&label, sql, Duration::from_secs_f64(secs.max(0.0)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::query_label;

    #[test]
    fn statements_are_labelled_by_kind_and_table() {
        assert_eq!(
            query_label("SELECT w.id, w.name FROM workspaces w JOIN users u ON u.id = w.owner_id"),
            "SELECT workspaces"
        );
        assert_eq!(
            query_label("WITH ws AS (SELECT * FROM workspaces w) SELECT json_agg(ws) FROM ws"),
            "SELECT workspaces"
        );
        assert_eq!(
            query_label("WITH x AS (SELECT id FROM jobs) UPDATE builds SET a = 1 FROM x"),
            "UPDATE builds"
        );
        assert_eq!(
            query_label("INSERT INTO api_keys (id) VALUES ($1)"),
            "INSERT api_keys"
        );
        assert_eq!(
            query_label("UPDATE api_keys SET last_used = now()"),
            "UPDATE api_keys"
        );
        assert_eq!(
            query_label("DELETE FROM files WHERE id = $1"),
            "DELETE files"
        );
        assert_eq!(query_label("SELECT pg_notify($1, $2)"), "SELECT");
        assert_eq!(
            query_label("SELECT count(*) FROM (SELECT 1) x, provisioner_jobs j"),
            "SELECT"
        );
    }
}
