//! `GET /metrics` and the middleware that counts and times requests; the registry itself is
//! [`crate::metrics::Metrics`].

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use prometheus::{Encoder, IntGauge, TextEncoder};

use crate::state::AppState;

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
                    .with_label_values(&[status.as_str()])
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
                    .with_label_values(&[provisioner.as_str(), status.as_str()])
                    .set(n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: counting provisioner jobs"),
    }
}

/// `GET /metrics`, in Prometheus' text format.
pub async fn serve(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let (open, idle, max) = state.store.pool_usage();
    let idle = i64::try_from(idle).unwrap_or(i64::MAX);
    let open = i64::from(open);
    m.pool_connections.with_label_values(&["idle"]).set(idle);
    m.pool_connections
        .with_label_values(&["in_use"])
        .set((open - idle).max(0));
    m.pool_max.set(i64::from(max));
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
        m.render_cache
            .with_label_values(&["hit"])
            .set(n(state.render_cache.hits.load(Relaxed)));
        m.render_cache
            .with_label_values(&["miss"])
            .set(n(state.render_cache.misses.load(Relaxed)));
        let (hits, misses) = state.store.workspace_count_lookups();
        m.workspace_count_cache
            .with_label_values(&["hit"])
            .set(n(hits));
        m.workspace_count_cache
            .with_label_values(&["miss"])
            .set(n(misses));
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
