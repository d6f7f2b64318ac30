//! Command line and `CODER_*` environment configuration.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Where each setting was read from, by its argument id (`http_address`); what is absent has
/// no recorded source (servers started in-process).
pub type ValueSources = std::collections::BTreeMap<String, clap::parser::ValueSource>;

#[derive(Debug, Parser)]
#[command(
    name = "coderd",
    version,
    about = "A Coder-compatible control plane (/api/v2)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the API server.
    Server(ServerCommand),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerCommand {
    #[command(subcommand)]
    pub subcommand: Option<ServerSubcommand>,
    #[command(flatten)]
    pub options: ServerOptions,
}

#[derive(Debug, Subcommand)]
pub enum ServerSubcommand {
    /// Print the URL of the built-in PostgreSQL database.
    PostgresBuiltinUrl {
        /// Only the URL, without the psql hint.
        #[arg(long)]
        raw_url: bool,
        #[arg(long, env = "CODER_CONFIG_DIR")]
        config_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Args)]
pub struct ServerOptions {
    /// Address to serve the API on.
    #[arg(long, env = "CODER_HTTP_ADDRESS", default_value = "127.0.0.1:3000")]
    pub http_address: String,

    /// The URL users reach this deployment at (http or https).
    #[arg(long, env = "CODER_ACCESS_URL", value_parser = parse_access_url)]
    pub access_url: Option<String>,

    /// PostgreSQL connection URL. Empty: start the built-in PostgreSQL.
    #[arg(long = "postgres-url", env = "CODER_PG_CONNECTION_URL")]
    pub postgres_url: Option<String>,

    /// Most database connections this process opens.
    #[arg(
        long = "postgres-conn-max-open",
        env = "CODER_PG_CONN_MAX_OPEN",
        default_value_t = 10
    )]
    pub pg_conn_max_open: u32,

    /// Where state such as the built-in database lives.
    #[arg(long, env = "CODER_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,

    /// Provisioner daemons to run inside this process.
    #[arg(long, env = "CODER_PROVISIONER_DAEMONS", default_value_t = 3)]
    pub provisioner_daemons: u32,

    /// Provisioner types the built-in daemons run, comma-separated (default: every available one).
    #[arg(long, env = "CODER_PROVISIONER_TYPES", value_delimiter = ',')]
    pub provisioner_types: Vec<String>,

    /// The Terraform (or OpenTofu) binary the terraform provisioner runs: a path, or a name
    /// looked up on PATH. Default: `terraform`, else `tofu`, on PATH.
    #[arg(long, env = "CODER_TERRAFORM_PATH", hide = true)]
    pub terraform_path: Option<PathBuf>,

    /// How often idle daemons look for jobs when no notification woke them.
    #[arg(long, env = "CODER_PROVISIONER_POLL_INTERVAL", default_value = "10s", value_parser = parse_duration, hide = true)]
    pub provisioner_poll_interval: Duration,

    /// How often the job reaper looks for hung and stale jobs.
    #[arg(long, env = "CODER_JOB_HANG_DETECTOR_INTERVAL", default_value = "1m", value_parser = parse_duration, hide = true)]
    pub job_reaper_interval: Duration,

    /// A running job whose daemon has been silent this long is failed.
    #[arg(long, env = "CODER_JOB_REAPER_HUNG_AFTER", default_value = "5m", value_parser = parse_duration, hide = true)]
    pub job_hung_after: Duration,

    /// A job nobody picked up for this long is failed.
    #[arg(long, env = "CODER_JOB_REAPER_PENDING_AFTER", default_value = "30m", value_parser = parse_duration, hide = true)]
    pub job_pending_after: Duration,

    /// How often the lifecycle executor looks for workspaces to start, stop or delete (0: never).
    #[arg(long, env = "CODER_AUTOBUILD_POLL_INTERVAL", default_value = "1m", value_parser = parse_duration, hide = true)]
    pub autobuild_poll_interval: Duration,

    /// Requests per minute per user (or IP) and endpoint; 0 or less disables.
    #[arg(
        long,
        env = "CODER_API_RATE_LIMIT",
        default_value_t = 512,
        allow_negative_numbers = true
    )]
    pub api_rate_limit: i64,

    /// Turn off every rate limit (API, login, files).
    #[arg(long, env = "CODER_DANGEROUS_DISABLE_RATE_LIMITS")]
    pub dangerous_disable_rate_limits: bool,

    /// Log lines as human-readable text or JSON.
    #[arg(long, env = "CODER_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,

    /// Lifetime of a browser/password session.
    #[arg(long, env = "CODER_SESSION_DURATION", default_value = "24h", value_parser = parse_duration)]
    pub session_duration: Duration,

    /// Do not slide a session's expiry forward when it is used.
    #[arg(long, env = "CODER_DISABLE_SESSION_EXPIRY_REFRESH")]
    pub disable_session_expiry_refresh: bool,

    /// Lifetime of a token when the request names none.
    #[arg(long, env = "CODER_DEFAULT_TOKEN_LIFETIME", default_value = "168h", value_parser = parse_duration)]
    pub default_token_lifetime: Duration,

    /// Longest lifetime a token may ask for.
    #[arg(long, env = "CODER_MAX_TOKEN_LIFETIME", default_value = "876600h", value_parser = parse_duration)]
    pub max_token_lifetime: Duration,

    /// Mark the session cookie Secure. Default: when the access URL is https://.
    #[arg(
        long,
        env = "CODER_SECURE_AUTH_COOKIE",
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub secure_auth_cookie: Option<bool>,

    /// Headers a trusted reverse proxy names the client's address in, comma-separated and
    /// consulted in order (e.g. `X-Forwarded-For`).
    #[arg(long, env = "CODER_PROXY_TRUSTED_HEADERS", value_delimiter = ',')]
    pub proxy_trusted_headers: Vec<String>,

    /// Networks (CIDRs, comma-separated) whose connections may set the trusted headers.
    #[arg(long, env = "CODER_PROXY_TRUSTED_ORIGINS", value_delimiter = ',')]
    pub proxy_trusted_origins: Vec<String>,

    /// Also serve the API over TLS, on CODER_TLS_ADDRESS.
    #[arg(long, env = "CODER_TLS_ENABLE")]
    pub tls_enable: bool,

    /// Where the TLS listener binds.
    #[arg(long, env = "CODER_TLS_ADDRESS", default_value = "127.0.0.1:3443")]
    pub tls_address: String,

    /// PEM certificate chain (leaf first) for TLS.
    #[arg(long, env = "CODER_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of that certificate.
    #[arg(long, env = "CODER_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// Send OpenTelemetry traces (a span per request and per SQL statement) over OTLP/HTTP
    /// to the collector named by the standard OTEL_EXPORTER_OTLP_* variables.
    #[arg(long, env = "CODER_TRACE_ENABLE")]
    pub trace_enable: bool,

    /// Also serve /metrics on a listener of its own (CODER_PROMETHEUS_ADDRESS).
    #[arg(long, env = "CODER_PROMETHEUS_ENABLE")]
    pub prometheus_enable: bool,

    /// Where the metrics listener binds when enabled.
    #[arg(
        long,
        env = "CODER_PROMETHEUS_ADDRESS",
        default_value = "127.0.0.1:2112"
    )]
    pub prometheus_address: String,

    /// Redirect requests that do not come to the access URL (another host, or http:// when
    /// the access URL is https://) there.
    #[arg(long, env = "CODER_REDIRECT_TO_ACCESS_URL")]
    pub redirect_to_access_url: bool,

    /// Let users rename workspaces (off by default, as Coder's: renames can break tools that
    /// remember workspaces by name).
    #[arg(long, env = "CODER_ALLOW_WORKSPACE_RENAMES")]
    pub allow_workspace_renames: bool,

    /// Refuse password logins.
    #[arg(long, env = "CODER_DISABLE_PASSWORD_AUTH")]
    pub disable_password_auth: bool,

    /// Serve the Swagger UI at /swagger (upstream Coder's is off unless asked for).
    #[arg(
        long,
        env = "CODER_SWAGGER_ENABLE",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub swagger_enable: bool,

    /// Directory of agent binaries served at /bin/ (coder-<os>-<arch>[.exe]), which workspaces'
    /// init scripts download; upstream's release binaries of the pinned version belong there.
    #[arg(long, env = "CODER_AGENT_BINARIES_DIR")]
    pub agent_binaries_dir: Option<PathBuf>,

    /// Run the embedded DERP relay at /derp and put it in the DERP map.
    #[arg(long, env = "CODER_DERP_SERVER_ENABLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub derp_server_enable: bool,

    /// Region id of the embedded relay in the DERP map.
    #[arg(long, env = "CODER_DERP_SERVER_REGION_ID", default_value_t = 999)]
    pub derp_server_region_id: i64,

    /// Region code of the embedded relay.
    #[arg(long, env = "CODER_DERP_SERVER_REGION_CODE", default_value = "coder")]
    pub derp_server_region_code: String,

    /// Region name of the embedded relay.
    #[arg(
        long,
        env = "CODER_DERP_SERVER_REGION_NAME",
        default_value = "Coder Embedded Relay"
    )]
    pub derp_server_region_name: String,

    /// STUN servers (host:port) put in the DERP map for NAT traversal; none by default here
    /// (upstream defaults to Google's), "disable" for none.
    #[arg(long, env = "CODER_DERP_SERVER_STUN_ADDRESSES", value_delimiter = ',')]
    pub derp_server_stun_addresses: Vec<String>,

    /// The URL other replicas reach this replica's relay at, to mesh (default: the HTTP
    /// address this replica listens on, when it is a specific address).
    #[arg(long, env = "CODER_DERP_SERVER_RELAY_URL")]
    pub derp_server_relay_url: Option<String>,

    /// A DERP map (tailscale's JSON) to fetch at startup and merge with the embedded region.
    #[arg(long, env = "CODER_DERP_CONFIG_URL")]
    pub derp_config_url: Option<String>,

    /// A DERP map (tailscale's JSON) to read at startup and merge with the embedded region.
    #[arg(long, env = "CODER_DERP_CONFIG_PATH")]
    pub derp_config_path: Option<PathBuf>,

    /// Tell clients to connect through DERP only, never directly.
    #[arg(long, env = "CODER_BLOCK_DIRECT")]
    pub block_direct: bool,

    /// Tell clients to reach DERP over WebSockets instead of `Upgrade: DERP` (for proxies that
    /// refuse other upgrades).
    #[arg(long, env = "CODER_DERP_FORCE_WEBSOCKETS")]
    pub derp_force_websockets: bool,

    /// Where each setting came from (flag, environment, default), for `GET
    /// /deployment/config`; filled in by the binary from its parsed command line.
    #[arg(skip)]
    pub value_sources: ValueSources,
}

/// By hand: the database URL may hold a password (and the DERP map's URL credentials).
impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured whole, so that a new option cannot be left out.
        let ServerOptions {
            http_address,
            access_url,
            postgres_url,
            pg_conn_max_open,
            config_dir,
            provisioner_daemons,
            provisioner_types,
            terraform_path,
            provisioner_poll_interval,
            job_reaper_interval,
            job_hung_after,
            job_pending_after,
            autobuild_poll_interval,
            api_rate_limit,
            dangerous_disable_rate_limits,
            log_format,
            session_duration,
            disable_session_expiry_refresh,
            default_token_lifetime,
            max_token_lifetime,
            secure_auth_cookie,
            proxy_trusted_headers,
            proxy_trusted_origins,
            tls_enable,
            tls_address,
            tls_cert_file,
            tls_key_file,
            trace_enable,
            prometheus_enable,
            prometheus_address,
            redirect_to_access_url,
            allow_workspace_renames,
            disable_password_auth,
            swagger_enable,
            agent_binaries_dir,
            derp_server_enable,
            derp_server_region_id,
            derp_server_region_code,
            derp_server_region_name,
            derp_server_stun_addresses,
            derp_server_relay_url,
            derp_config_url,
            derp_config_path,
            block_direct,
            derp_force_websockets,
            value_sources,
        } = self;
        let redacted = |url: &Option<String>| url.as_deref().map(coderd_db::redact_url);
        f.debug_struct("ServerOptions")
            .field("http_address", http_address)
            .field("access_url", access_url)
            .field("postgres_url", &redacted(postgres_url))
            .field("pg_conn_max_open", pg_conn_max_open)
            .field("config_dir", config_dir)
            .field("provisioner_daemons", provisioner_daemons)
            .field("provisioner_types", provisioner_types)
            .field("terraform_path", terraform_path)
            .field("provisioner_poll_interval", provisioner_poll_interval)
            .field("job_reaper_interval", job_reaper_interval)
            .field("job_hung_after", job_hung_after)
            .field("job_pending_after", job_pending_after)
            .field("autobuild_poll_interval", autobuild_poll_interval)
            .field("api_rate_limit", api_rate_limit)
            .field(
                "dangerous_disable_rate_limits",
                dangerous_disable_rate_limits,
            )
            .field("log_format", log_format)
            .field("session_duration", session_duration)
            .field(
                "disable_session_expiry_refresh",
                disable_session_expiry_refresh,
            )
            .field("default_token_lifetime", default_token_lifetime)
            .field("max_token_lifetime", max_token_lifetime)
            .field("secure_auth_cookie", secure_auth_cookie)
            .field("proxy_trusted_headers", proxy_trusted_headers)
            .field("proxy_trusted_origins", proxy_trusted_origins)
            .field("tls_enable", tls_enable)
            .field("tls_address", tls_address)
            .field("tls_cert_file", tls_cert_file)
            .field("tls_key_file", tls_key_file)
            .field("trace_enable", trace_enable)
            .field("prometheus_enable", prometheus_enable)
            .field("prometheus_address", prometheus_address)
            .field("redirect_to_access_url", redirect_to_access_url)
            .field("allow_workspace_renames", allow_workspace_renames)
            .field("disable_password_auth", disable_password_auth)
            .field("swagger_enable", swagger_enable)
            .field("agent_binaries_dir", agent_binaries_dir)
            .field("derp_server_enable", derp_server_enable)
            .field("derp_server_region_id", derp_server_region_id)
            .field("derp_server_region_code", derp_server_region_code)
            .field("derp_server_region_name", derp_server_region_name)
            .field("derp_server_stun_addresses", derp_server_stun_addresses)
            .field("derp_server_relay_url", derp_server_relay_url)
            .field("derp_config_url", &redacted(derp_config_url))
            .field("derp_config_path", derp_config_path)
            .field("block_direct", block_direct)
            .field("derp_force_websockets", derp_force_websockets)
            .field("value_sources", value_sources)
            .finish()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        // Parsing no arguments yields every default; environment variables are not read here.
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            o: ServerOptions,
        }
        let mut o = Only::parse_from(["coderd"]).o;
        // `parse_from` still reads CODER_* variables; reset what tests and embedders expect.
        o.postgres_url = None;
        o.config_dir = None;
        o
    }
}

/// The default config dir: `/var/lib/coderd-rs` for root (whose home the unprivileged
/// database user cannot reach), else `$XDG_CONFIG_HOME/coderd-rs` or `~/.config/coderd-rs`.
pub fn default_config_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/coderd-rs");
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("coderd-rs");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".config").join("coderd-rs")
}

fn parse_access_url(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Ok(String::new());
    }
    if s.starts_with("http://") || s.starts_with("https://") {
        Ok(s.trim_end_matches('/').to_string())
    } else {
        Err(format!(
            "access URL {s:?} must start with http:// or https://"
        ))
    }
}

/// Parses a Go duration: `300ms`, `1.5h`, `2h45m`, `24h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {s:?}"))?;
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("unknown unit {unit:?} in duration {s:?}")),
        };
        total += value * scale;
        rest = tail;
    }
    Ok(Duration::from_secs_f64(total))
}

/// Upstream's defaults: `coder config-ssh` names hosts `coder.<workspace>` or
/// `<workspace>.coder`.
/// Workspaces' SSH host names end in this (upstream's `CODER_WORKSPACE_HOSTNAME_SUFFIX`
/// default): `<workspace>.coder`, or `coder.<workspace>` with the prefix.
pub const HOSTNAME_SUFFIX: &str = "coder";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn debug_hides_the_database_password() {
        let o = ServerOptions {
            postgres_url: Some("postgres://coder:hunter2@db/coder?sslmode=disable".into()),
            derp_config_url: Some("https://derp:s3cret@maps.example.com/derp.json".into()),
            ..ServerOptions::default()
        };
        let printed = format!("{o:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("s3cret"),
            "{printed}"
        );
        assert!(
            printed.contains("postgres://coder:***@db/coder?sslmode=disable"),
            "{printed}"
        );
        assert!(printed.contains("http_address"), "{printed}");
    }
}
