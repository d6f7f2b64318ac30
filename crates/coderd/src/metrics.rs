//! Prometheus metrics under upstream Coder's names and labels where Coder has them: requests
//! (`coderd_api_*`), provisioner jobs (`coderd_provisionerd_*`), latest builds, pubsub latency
//! (`coder_pubsub_*`); plus the database pool and our stream gauges. Served on `/metrics`, and
//! on `CODER_PROMETHEUS_ADDRESS` when set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Every collector of one process.
pub struct Metrics {
    pub(crate) registry: Registry,
    pub(crate) requests_processed: IntCounterVec,
    pub(crate) concurrent_requests: IntGaugeVec,
    pub(crate) concurrent_websockets: IntGaugeVec,
    pub(crate) websocket_durations: HistogramVec,
    pub(crate) request_latencies: HistogramVec,
    pub(crate) jobs_current: IntGaugeVec,
    pub(crate) job_timings: HistogramVec,
    // Read at scrape time.
    pub(crate) workspace_latest_build: IntGaugeVec,
    pub(crate) provisioner_jobs: IntGaugeVec,
    pub(crate) pool_connections: IntGaugeVec,
    pub(crate) pool_max: IntGauge,
    pub(crate) open_streams: IntGauge,
    /// DERP relay and coordinator gauges, read from them at scrape time.
    pub(crate) derp_clients: IntGauge,
    pub(crate) derp_packets: IntGaugeVec,
    pub(crate) tailnet_peers: IntGauge,
    pub(crate) api_key_cache: IntGaugeVec,
    pub(crate) render_cache: IntGaugeVec,
    pub(crate) workspace_count_cache: IntGaugeVec,
    pub(crate) pubsub_subscribers: IntGauge,
    pub(crate) pubsub_send_latency: prometheus::Gauge,
    pub(crate) pubsub_receive_latency: prometheus::Gauge,
    pub(crate) pubsub_measures: IntCounter,
    pub(crate) pubsub_measure_errors: IntCounter,
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
            render_cache: register(
                &r,
                IntGaugeVec::new(
                    prometheus::Opts::new(
                        "coderd_render_cache_lookups",
                        "Workspaces and builds answered since start, by whether their rendering \
                         was still current in memory (hit) or was read from the database (miss).",
                    ),
                    &["outcome"],
                )
                .unwrap(),
            ),
            workspace_count_cache: register(
                &r,
                IntGaugeVec::new(
                    prometheus::Opts::new(
                        "coderd_workspace_count_cache_lookups",
                        "Workspace pages since start whose total could be kept, by whether it \
                         was still current in memory (hit) or was counted again (miss).",
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
