use clap::{CommandFactory, FromArgMatches};
use coderd::config::{default_config_dir, Cli, Command, LogFormat, ServerSubcommand};
use coderd::server::{self, StartOptions};
use tracing_subscriber::EnvFilter;

/// Requests allocate and free many small buffers on two threads; glibc's malloc spent a
/// seventh of the server's CPU on them (benches/README.md, `throughput`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Log lines on stderr, filtered by `CODER_LOG_FILTER`; beside them, and whatever that
/// filter says, sqlx's statement events feed the query latency metric.
fn init_logging(format: LogFormat, traces: Option<&coderd::traces::Tracing>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = EnvFilter::try_from_env("CODER_LOG_FILTER")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Human => lines.boxed(),
        LogFormat::Json => lines.json().flatten_event(true).boxed(),
    };
    let statements = tracing_subscriber::filter::Targets::new()
        .with_target("sqlx::query", tracing::Level::TRACE);
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(coderd::metrics::QueryLatencyLayer.with_filter(statements))
        .with(traces.map(|t| {
            tracing_opentelemetry::layer()
                .with_tracer(t.tracer())
                .with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_target("coderd::trace", tracing::Level::INFO),
                )
        }))
        .init();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let Command::Server(mut cmd) = cli.command;
    if let Some(("server", server)) = matches.subcommand() {
        cmd.options.value_sources = server
            .ids()
            .filter_map(|id| Some((id.to_string(), server.value_source(id.as_str())?)))
            .collect();
    }
    if let Some(ServerSubcommand::PostgresBuiltinUrl {
        raw_url,
        config_dir,
    }) = cmd.subcommand
    {
        let dir = config_dir
            .unwrap_or_else(default_config_dir)
            .join("postgres");
        return match coderd_db::builtin::builtin_url(&dir) {
            Ok(url) if raw_url => {
                println!("{url}");
                std::process::ExitCode::SUCCESS
            }
            Ok(url) => {
                println!("psql \"{url}\"");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let traces = if cmd.options.trace_enable {
        match coderd::traces::Tracing::start() {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("error: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    init_logging(cmd.options.log_format, traces.as_ref());
    let running = match server::start(cmd.options, StartOptions::default()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    shutdown_signal().await;
    tracing::info!("shutting down");
    // A second SIGTERM/SIGINT means now: skip the grace (the built-in database stops with us).
    tokio::spawn(async {
        shutdown_signal().await;
        tracing::warn!("second shutdown signal; exiting without waiting");
        std::process::exit(1);
    });
    running.shutdown().await;
    if let Some(t) = traces {
        t.shutdown().await;
    }
    std::process::ExitCode::SUCCESS
}
