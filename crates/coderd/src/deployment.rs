//! `GET /deployment/config`: this server's settings as upstream's `codersdk.DeploymentConfig`
//! (`DeploymentValues` and the option list), secrets left out.
//!
//! `config` starts from the JSON Go writes for a zero `DeploymentValues`
//! (`assets/deployment-values-zero.json`: every section present, zero scalars of the top level
//! and of a few sections left out, as Go's `omitempty` does), so clients that read a section
//! find it; the settings this server has are filled in under upstream's keys. `options` lists
//! exactly this server's settings, read from its command line definition (flag, environment
//! variable, default, help), named as upstream names them where upstream has the setting, so
//! upstream's SDK decodes their values into its own types.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Args, Command};
use serde_json::{json, Map, Value};

use crate::config::{LogFormat, ServerOptions, ValueSources};

/// The settings as they are in effect, besides the options themselves.
pub struct Effective<'a> {
    pub options: &'a ServerOptions,
    pub access_url: &'a str,
    pub secure_auth_cookie: bool,
    pub sources: &'a ValueSources,
}

/// A value as Go marshals it: `serpent.Duration` is nanoseconds, lists stay lists.
enum Setting {
    Text(String),
    Bool(bool),
    Int(i64),
    Duration(Duration),
    List(Vec<String>),
    /// Never reported (upstream marks it secret).
    Secret,
}

impl Setting {
    fn to_json(&self) -> Value {
        match self {
            Setting::Text(s) => json!(s),
            Setting::Bool(b) => json!(b),
            Setting::Int(n) => json!(n),
            Setting::Duration(d) => json!(d.as_nanos() as i64),
            Setting::List(l) => json!(l),
            Setting::Secret => Value::Null,
        }
    }

    /// Go's `omitempty`: false, zero, "" and empty lists.
    fn is_zero(&self) -> bool {
        match self {
            Setting::Text(s) => s.is_empty(),
            Setting::Bool(b) => !b,
            Setting::Int(n) => *n == 0,
            Setting::Duration(d) => d.is_zero(),
            Setting::List(l) => l.is_empty(),
            Setting::Secret => true,
        }
    }
}

/// Upstream's option groups, as `[parent, …, name]`.
const NETWORKING: &[&str] = &["Networking"];
const HTTP: &[&str] = &["Networking", "HTTP"];
const TLS: &[&str] = &["Networking", "TLS"];
const PROMETHEUS: &[&str] = &["Introspection", "Prometheus"];
const TRACING: &[&str] = &["Introspection", "Tracing"];
const LOGGING: &[&str] = &["Introspection", "Logging"];
const PROVISIONING: &[&str] = &["Provisioning"];
const DERP: &[&str] = &["Networking", "DERP"];

/// One setting: its argument id, upstream's option name (ours where upstream has no such
/// setting), where its value goes in `config` (nowhere for settings of ours alone), its group.
struct Entry {
    id: &'static str,
    name: &'static str,
    path: &'static [&'static str],
    group: &'static [&'static str],
}

const fn entry(
    id: &'static str,
    name: &'static str,
    path: &'static [&'static str],
    group: &'static [&'static str],
) -> Entry {
    Entry {
        id,
        name,
        path,
        group,
    }
}

const ENTRIES: &[Entry] = &[
    entry("access_url", "Access URL", &["access_url"], NETWORKING),
    entry("http_address", "HTTP Address", &["http_address"], HTTP),
    entry(
        "redirect_to_access_url",
        "Redirect to Access URL",
        &["redirect_to_access_url"],
        NETWORKING,
    ),
    entry(
        "proxy_trusted_headers",
        "Proxy Trusted Headers",
        &["proxy_trusted_headers"],
        NETWORKING,
    ),
    entry(
        "proxy_trusted_origins",
        "Proxy Trusted Origins",
        &["proxy_trusted_origins"],
        NETWORKING,
    ),
    entry(
        "secure_auth_cookie",
        "Secure Auth Cookie",
        &["http_cookies", "secure_auth_cookie"],
        NETWORKING,
    ),
    entry(
        "session_duration",
        "Session Duration",
        &["session_lifetime", "default_duration"],
        HTTP,
    ),
    entry(
        "disable_session_expiry_refresh",
        "Disable Session Expiry Refresh",
        &["session_lifetime", "disable_expiry_refresh"],
        HTTP,
    ),
    entry(
        "default_token_lifetime",
        "Default Token Lifetime",
        &["session_lifetime", "default_token_lifetime"],
        &[],
    ),
    entry(
        "max_token_lifetime",
        "Max Token Lifetime",
        &["session_lifetime", "max_token_lifetime"],
        HTTP,
    ),
    entry(
        "disable_password_auth",
        "Disable Password Authentication",
        &["disable_password_auth"],
        HTTP,
    ),
    entry("tls_enable", "TLS Enable", &["tls", "enable"], TLS),
    entry("tls_address", "TLS Address", &["tls", "address"], TLS),
    entry(
        "tls_cert_file",
        "TLS Certificate Files",
        &["tls", "cert_file"],
        TLS,
    ),
    entry("tls_key_file", "TLS Key Files", &["tls", "key_file"], TLS),
    entry(
        "postgres_url",
        "Postgres Connection URL",
        &["pg_connection_url"],
        &[],
    ),
    entry(
        "pg_conn_max_open",
        "Postgres Connection Max Open",
        &["pg_conn_max_open"],
        &[],
    ),
    entry(
        "provisioner_daemons",
        "Provisioner Daemons",
        &["provisioner", "daemons"],
        PROVISIONING,
    ),
    entry(
        "provisioner_types",
        "Provisioner Daemon Types",
        &["provisioner", "daemon_types"],
        PROVISIONING,
    ),
    entry(
        "provisioner_poll_interval",
        "Poll Interval",
        &["provisioner", "daemon_poll_interval"],
        PROVISIONING,
    ),
    entry(
        "autobuild_poll_interval",
        "Autobuild Poll Interval",
        &["autobuild_poll_interval"],
        &[],
    ),
    entry(
        "job_reaper_interval",
        "Job Reaper Detect Interval",
        &["job_hang_detector_interval"],
        &[],
    ),
    entry("job_hung_after", "Job Reaper Hung After", &[], PROVISIONING),
    entry(
        "job_pending_after",
        "Job Reaper Pending After",
        &[],
        PROVISIONING,
    ),
    entry("terraform_path", "Terraform Path", &[], PROVISIONING),
    entry(
        "api_rate_limit",
        "API Rate Limit",
        &["rate_limit", "api"],
        &[],
    ),
    entry(
        "dangerous_disable_rate_limits",
        "Disable All Rate Limits",
        &["rate_limit", "disable_all"],
        &[],
    ),
    entry("log_format", "Log Format", &[], LOGGING),
    entry(
        "trace_enable",
        "Trace Enable",
        &["trace", "enable"],
        TRACING,
    ),
    entry(
        "prometheus_enable",
        "Prometheus Enable",
        &["prometheus", "enable"],
        PROMETHEUS,
    ),
    entry(
        "prometheus_address",
        "Prometheus Address",
        &["prometheus", "address"],
        PROMETHEUS,
    ),
    entry(
        "allow_workspace_renames",
        "Allow Workspace Renames",
        &["allow_workspace_renames"],
        &[],
    ),
    entry(
        "swagger_enable",
        "Enable swagger endpoint",
        &["swagger", "enable"],
        &[],
    ),
    entry("config_dir", "Config Directory", &[], &[]),
    entry("agent_binaries_dir", "Agent Binaries Directory", &[], &[]),
    entry(
        "derp_server_enable",
        "DERP Server Enable",
        &["derp", "server", "enable"],
        DERP,
    ),
    entry(
        "derp_server_region_id",
        "DERP Server Region ID",
        &["derp", "server", "region_id"],
        DERP,
    ),
    entry(
        "derp_server_region_code",
        "DERP Server Region Code",
        &["derp", "server", "region_code"],
        DERP,
    ),
    entry(
        "derp_server_region_name",
        "DERP Server Region Name",
        &["derp", "server", "region_name"],
        DERP,
    ),
    entry(
        "derp_server_stun_addresses",
        "DERP Server STUN Addresses",
        &["derp", "server", "stun_addresses"],
        DERP,
    ),
    entry(
        "derp_server_relay_url",
        "DERP Server Relay URL",
        &["derp", "server", "relay_url"],
        DERP,
    ),
    entry(
        "block_direct",
        "Block Direct Connections",
        &["derp", "config", "block_direct"],
        DERP,
    ),
    entry(
        "derp_force_websockets",
        "DERP Force WebSockets",
        &["derp", "config", "force_websockets"],
        DERP,
    ),
    entry(
        "derp_config_url",
        "DERP Config URL",
        &["derp", "config", "url"],
        DERP,
    ),
    entry(
        "derp_config_path",
        "DERP Config Path",
        &["derp", "config", "path"],
        DERP,
    ),
];

fn path_text(p: &Option<std::path::PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn setting(e: &Effective<'_>, id: &str) -> Setting {
    use Setting::*;
    let o = e.options;
    match id {
        "access_url" => Text(e.access_url.to_string()),
        "http_address" => Text(o.http_address.clone()),
        "redirect_to_access_url" => Bool(o.redirect_to_access_url),
        "proxy_trusted_headers" => List(o.proxy_trusted_headers.clone()),
        "proxy_trusted_origins" => List(o.proxy_trusted_origins.clone()),
        "secure_auth_cookie" => Bool(e.secure_auth_cookie),
        "session_duration" => Duration(o.session_duration),
        "disable_session_expiry_refresh" => Bool(o.disable_session_expiry_refresh),
        "default_token_lifetime" => Duration(o.default_token_lifetime),
        "max_token_lifetime" => Duration(o.max_token_lifetime),
        "disable_password_auth" => Bool(o.disable_password_auth),
        "tls_enable" => Bool(o.tls_enable),
        "tls_address" => Text(o.tls_address.clone()),
        // Upstream takes several; this server one.
        "tls_cert_file" => List(
            o.tls_cert_file
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        ),
        "tls_key_file" => List(
            o.tls_key_file
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        ),
        "postgres_url" => Secret,
        "pg_conn_max_open" => Int(o.pg_conn_max_open.into()),
        "provisioner_daemons" => Int(o.provisioner_daemons.into()),
        "provisioner_types" => List(o.provisioner_types.clone()),
        "provisioner_poll_interval" => Duration(o.provisioner_poll_interval),
        "autobuild_poll_interval" => Duration(o.autobuild_poll_interval),
        "job_reaper_interval" => Duration(o.job_reaper_interval),
        "job_hung_after" => Duration(o.job_hung_after),
        "job_pending_after" => Duration(o.job_pending_after),
        "terraform_path" => Text(path_text(&o.terraform_path)),
        "api_rate_limit" => Int(o.api_rate_limit),
        "dangerous_disable_rate_limits" => Bool(o.dangerous_disable_rate_limits),
        "log_format" => Text(
            match o.log_format {
                LogFormat::Human => "human",
                LogFormat::Json => "json",
            }
            .into(),
        ),
        "trace_enable" => Bool(o.trace_enable),
        "prometheus_enable" => Bool(o.prometheus_enable),
        "prometheus_address" => Text(o.prometheus_address.clone()),
        "allow_workspace_renames" => Bool(o.allow_workspace_renames),
        "swagger_enable" => Bool(o.swagger_enable),
        "config_dir" => Text(path_text(&o.config_dir)),
        "agent_binaries_dir" => Text(path_text(&o.agent_binaries_dir)),
        "derp_server_enable" => Bool(o.derp_server_enable),
        "derp_server_region_id" => Int(o.derp_server_region_id),
        "derp_server_region_code" => Text(o.derp_server_region_code.clone()),
        "derp_server_region_name" => Text(o.derp_server_region_name.clone()),
        "derp_server_stun_addresses" => List(o.derp_server_stun_addresses.clone()),
        "derp_server_relay_url" => Text(o.derp_server_relay_url.clone().unwrap_or_default()),
        "block_direct" => Bool(o.block_direct),
        "derp_force_websockets" => Bool(o.derp_force_websockets),
        "derp_config_url" => Text(o.derp_config_url.clone().unwrap_or_default()),
        "derp_config_path" => Text(path_text(&o.derp_config_path)),
        _ => unreachable!("no setting {id}"),
    }
}

/// Sets `value` at `path`, or (Go's `omitempty` at the top level, and in the sections whose
/// fields carry it) leaves a zero value out.
fn put(config: &mut Map<String, Value>, path: &[&str], s: &Setting) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = config;
    for p in parents {
        here = here
            .entry(p.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("sections are objects");
    }
    // Go omits zero values of the top level and of these sections; elsewhere it sends them.
    let omits = parents.is_empty() || matches!(parents, ["http_cookies" | "session_lifetime"]);
    if s.is_zero() && omits {
        here.remove(*last);
    } else {
        here.insert(last.to_string(), s.to_json());
    }
}

fn group(names: &[&str]) -> Value {
    names.iter().fold(Value::Null, |parent, name| {
        let mut g = json!({ "name": name });
        if !parent.is_null() {
            g["parent"] = parent;
        }
        g
    })
}

/// The whole answer of `GET /deployment/config`.
pub fn deployment_config(e: &Effective<'_>) -> Value {
    let mut config: Map<String, Value> =
        serde_json::from_str(include_str!("../assets/deployment-values-zero.json"))
            .expect("the zero DeploymentValues is JSON");
    let args: BTreeMap<String, clap::Arg> = ServerOptions::augment_args(Command::new("server"))
        .get_arguments()
        .map(|a| (a.get_id().to_string(), a.clone()))
        .collect();
    let mut options = Vec::new();
    for entry in ENTRIES {
        let s = setting(e, entry.id);
        put(&mut config, entry.path, &s);
        let arg = &args[entry.id];
        let mut o = Map::new();
        o.insert("name".into(), json!(entry.name));
        if let Some(help) = arg.get_help() {
            o.insert("description".into(), json!(help.to_string()));
        }
        if let Some(flag) = arg.get_long() {
            o.insert("flag".into(), json!(flag));
        }
        if let Some(env) = arg.get_env() {
            o.insert("env".into(), json!(env.to_string_lossy()));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() {
            o.insert("default".into(), json!(defaults.join(",")));
        }
        let mut annotations = Map::new();
        match s {
            Setting::Secret => {
                annotations.insert("secret".into(), json!("true"));
            }
            Setting::Duration(_) => {
                annotations.insert("format_duration".into(), json!("true"));
                o.insert("value".into(), s.to_json());
            }
            _ => {
                o.insert("value".into(), s.to_json());
            }
        }
        if !annotations.is_empty() {
            o.insert("annotations".into(), Value::Object(annotations));
        }
        if !entry.group.is_empty() {
            o.insert("group".into(), group(entry.group));
        }
        if arg.is_hide_set() {
            o.insert("hidden".into(), json!(true));
        }
        if let Some(source) = e.sources.get(entry.id) {
            let source = match source {
                ValueSource::CommandLine => "flag",
                ValueSource::EnvVariable => "env",
                _ => "default",
            };
            o.insert("value_source".into(), json!(source));
        }
        options.push(Value::Object(o));
    }
    // Where the log lines go (upstream takes a path per format).
    let log = match e.options.log_format {
        LogFormat::Human => "human",
        LogFormat::Json => "json",
    };
    config["logging"][log] = json!("/dev/stderr");
    // What this server does without a setting for it.
    config.insert("ssh_keygen_algorithm".into(), json!("ed25519"));
    config["config_ssh"]["DeploymentName"] = json!("coder.");
    config["user_quiet_hours_schedule"] = json!({
        "default_schedule": coderd_db::schedule::DEFAULT_QUIET_HOURS,
        "allow_user_custom": true,
    });
    json!({ "config": config, "options": options })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new setting must be reported too.
    #[test]
    fn every_setting_is_listed() {
        let listed: Vec<&str> = ENTRIES.iter().map(|e| e.id).collect();
        for arg in ServerOptions::augment_args(Command::new("server")).get_arguments() {
            let id = arg.get_id().as_str();
            assert!(listed.contains(&id), "{id} is not in deployment::ENTRIES");
        }
    }

    #[test]
    fn secrets_are_left_out() {
        let options = ServerOptions {
            postgres_url: Some("postgres://coder:hunter2@db/coder".into()),
            ..Default::default()
        };
        let sources = ValueSources::new();
        let answer = deployment_config(&Effective {
            options: &options,
            access_url: "http://127.0.0.1:3000",
            secure_auth_cookie: false,
            sources: &sources,
        });
        assert!(!answer.to_string().contains("hunter2"));
        let pg = answer["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["env"] == "CODER_PG_CONNECTION_URL")
            .unwrap();
        assert_eq!(pg.get("value"), None);
        assert_eq!(pg["annotations"]["secret"], "true");
    }
}
