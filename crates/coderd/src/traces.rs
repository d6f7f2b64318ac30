//! OpenTelemetry traces (`CODER_TRACE_ENABLE`): a span per request and a child span per SQL
//! statement, sent over OTLP/HTTP to the collector the standard `OTEL_*` variables name
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_BSP_*`, …).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// The exporter and its batch processor; shut it down to flush what is left.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Builds the exporter from the environment and makes it the global provider.
    pub fn start() -> anyhow::Result<Tracing> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .build()
            .context("building the OTLP span exporter")?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("coderd")
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        ENABLED.store(true, Ordering::SeqCst);
        Ok(Tracing { provider })
    }

    /// The tracer the tracing layer hands request spans to.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("coderd")
    }

    /// Sends what is still buffered (on a blocking thread: the exporter's client blocks).
    pub async fn shutdown(self) {
        let provider = self.provider;
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = provider.shutdown() {
                eprintln!("flushing traces: {e}");
            }
        })
        .await;
    }
}

/// The one span a request runs in, so that what is logged while answering it carries its id;
/// when traced, also the exported span `GET /api/v2/workspaces/{workspace}`.
pub fn request_span(method: &str, route: &str, request_id: uuid::Uuid) -> tracing::Span {
    if !ENABLED.load(Ordering::Relaxed) {
        return tracing::info_span!(target: "coderd::trace", "request", %request_id);
    }
    tracing::info_span!(
        target: "coderd::trace",
        "request",
        %request_id,
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    )
}

/// A finished SQL statement as a child of the current span: it ran for `elapsed` until now.
pub(crate) fn statement_span(name: &str, sql: &str, elapsed: Duration) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let parent = tracing::Span::current().context();
    let end = SystemTime::now();
    let tracer = opentelemetry::global::tracer("coderd");
    let mut span = tracer
        .span_builder(name.to_string())
        .with_kind(SpanKind::Client)
        .with_start_time(end - elapsed)
        .with_attributes([
            KeyValue::new("db.system", "postgresql"),
            KeyValue::new("db.statement", sql.chars().take(2000).collect::<String>()),
        ])
        .start_with_context(&tracer, &parent);
    span.end_with_timestamp(end);
}
