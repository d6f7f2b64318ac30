//! Terraform's machine-readable UI (`-json`): one JSON message a line, turned into job logs,
//! error messages and per-resource timings.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::Timing;

/// One line of `terraform plan -json` / `apply -json` output. Unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Message {
    #[serde(rename = "@level")]
    pub level: String,
    #[serde(rename = "@message")]
    pub message: String,
    #[serde(rename = "@timestamp")]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(rename = "type")]
    pub kind: String,
    pub hook: Option<Hook>,
    pub diagnostic: Option<Diagnostic>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Hook {
    pub resource: Option<HookResource>,
    pub action: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct HookResource {
    pub addr: String,
    pub implied_provider: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Diagnostic {
    pub severity: String,
    pub summary: String,
    pub detail: String,
    pub range: Option<Range>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Range {
    pub filename: String,
    pub start: Position,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Position {
    pub line: u64,
}

/// Parses a line; `None` for anything that is not a JSON message (Terraform prints some
/// plain text even with `-json`, e.g. when its arguments are wrong).
pub(super) fn parse(line: &str) -> Option<Message> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str(line).ok()
}

/// A job log level for Terraform's `@level` (or a diagnostic's severity).
pub(super) fn level(terraform_level: &str) -> &'static str {
    match terraform_level.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "warn" | "warning" => "warn",
        "error" => "error",
        _ => "info",
    }
}

impl Message {
    /// The log lines this message becomes: the message itself, and (as upstream does) a
    /// diagnostic's detail on its own line.
    pub fn logs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let text = self.message.trim();
        if !text.is_empty() {
            out.push((level(&self.level), text.to_string()));
        }
        if let Some(d) = &self.diagnostic {
            let detail = d.detail.trim();
            if !detail.is_empty() {
                out.push((level(&d.severity), detail.to_string()));
            }
        }
        out
    }

    /// For an error diagnostic, the error a failed job reports: `summary: detail (file:line)`.
    pub fn error(&self) -> Option<String> {
        let d = self.diagnostic.as_ref()?;
        if d.severity != "error" {
            return None;
        }
        let mut text = d.summary.trim().to_string();
        let detail = d.detail.trim();
        if !detail.is_empty() {
            text.push_str(": ");
            text.push_str(detail);
        }
        if let Some(range) = d.range.as_ref().filter(|r| !r.filename.is_empty()) {
            text.push_str(&format!(" ({}:{})", range.filename, range.start.line));
        }
        Some(text)
    }
}

/// Collects per-resource timings from one stage's hook messages: each `*_start` opens a span
/// that the matching `*_complete` (or `*_errored`) closes, as upstream measures them.
pub(super) struct Timings {
    stage: &'static str,
    open: HashMap<(String, String, &'static str), DateTime<Utc>>,
    done: Vec<Timing>,
}

impl Timings {
    /// `stage` is the timing stage: `init`, `plan` or `apply`.
    pub fn new(stage: &'static str) -> Timings {
        Timings {
            stage,
            open: HashMap::new(),
            done: Vec::new(),
        }
    }

    pub fn observe(&mut self, m: &Message) {
        let Some((category, starts)) = span_kind(&m.kind) else {
            return;
        };
        let Some(hook) = &m.hook else { return };
        let Some(resource) = &hook.resource else {
            return;
        };
        // Refreshes and provisioners name no action; upstream then uses the category.
        let action = hook
            .action
            .clone()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| category.to_string());
        let at = m.timestamp.unwrap_or_else(Utc::now);
        let key = (resource.addr.clone(), action, category);
        if starts {
            self.open.insert(key, at);
            return;
        }
        let Some(started_at) = self.open.remove(&key) else {
            return;
        };
        let (resource_addr, action, _) = key;
        let source = if resource.implied_provider.is_empty() {
            "terraform".to_string()
        } else {
            resource.implied_provider.clone()
        };
        self.done.push(Timing {
            stage: self.stage.into(),
            source,
            action,
            resource: resource_addr,
            // Clock skew must not yield a negative span.
            started_at: started_at.min(at),
            ended_at: at,
        });
    }

    pub fn finish(self) -> Vec<Timing> {
        self.done
    }
}

/// (category, whether it starts a span) for the message types that carry timings.
fn span_kind(kind: &str) -> Option<(&'static str, bool)> {
    Some(match kind {
        "apply_start" => ("apply", true),
        "apply_complete" | "apply_errored" => ("apply", false),
        "provision_start" => ("provision", true),
        "provision_complete" | "provision_errored" => ("provision", false),
        "refresh_start" => ("state refresh", true),
        "refresh_complete" => ("state refresh", false),
        _ => return None,
    })
}

/// A whole stage's span, as upstream records it next to the per-resource ones.
pub(super) fn stage_timing(
    stage: &'static str,
    started_at: DateTime<Utc>,
    ended_at: DateTime<Utc>,
) -> Timing {
    Timing {
        stage: stage.into(),
        source: "coder".into(),
        action: "terraform".into(),
        resource: format!("coder_stage_{stage}"),
        started_at,
        ended_at,
    }
}

/// Terraform's plain-text error output (from `init`, which has no JSON mode before 1.9) as
/// one message: blank lines collapsed, box-drawing decoration removed.
pub(super) fn text_error(lines: &[String]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in lines {
        let line = line
            .trim_start_matches(['╷', '│', '╵'])
            .trim_end()
            .trim_start_matches(' ');
        if line.is_empty() && out.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        out.push(line);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const APPLY: &str = r#"{"@level":"info","@message":"Terraform 1.11.4","@module":"terraform.ui","@timestamp":"2026-11-22T14:18:27.046269Z","terraform":"1.11.4","type":"version","ui":"1.2"}
{"@level":"info","@message":"terraform_data.workspace: Creating...","@module":"terraform.ui","@timestamp":"2026-11-22T14:18:27.050877Z","hook":{"resource":{"addr":"terraform_data.workspace","module":"","resource":"terraform_data.workspace","implied_provider":"terraform","resource_type":"terraform_data","resource_name":"workspace","resource_key":null},"action":"create"},"type":"apply_start"}
{"@level":"info","@message":"terraform_data.workspace: Provisioning with 'local-exec'...","@module":"terraform.ui","@timestamp":"2026-11-22T14:18:27.051286Z","hook":{"resource":{"addr":"terraform_data.workspace","module":"","resource":"terraform_data.workspace","implied_provider":"terraform","resource_type":"terraform_data","resource_name":"workspace","resource_key":null},"provisioner":"local-exec"},"type":"provision_start"}
{"@level":"info","@message":"terraform_data.workspace: (local-exec) Provisioning complete","@module":"terraform.ui","@timestamp":"2026-11-22T14:18:27.053437Z","hook":{"resource":{"addr":"terraform_data.workspace","module":"","resource":"terraform_data.workspace","implied_provider":"terraform","resource_type":"terraform_data","resource_name":"workspace","resource_key":null},"provisioner":"local-exec"},"type":"provision_complete"}
{"@level":"info","@message":"terraform_data.workspace: Creation complete after 0s [id=7810b393]","@module":"terraform.ui","@timestamp":"2026-11-22T14:18:27.053564Z","hook":{"resource":{"addr":"terraform_data.workspace","module":"","resource":"terraform_data.workspace","implied_provider":"terraform","resource_type":"terraform_data","resource_name":"workspace","resource_key":null},"action":"create","id_key":"id","id_value":"7810b393","elapsed_seconds":0},"type":"apply_complete"}
{"@level":"info","@message":"terraform_data.other: Destroying...","@timestamp":"2026-11-22T14:18:28Z","hook":{"resource":{"addr":"terraform_data.other","implied_provider":"terraform"},"action":"delete"},"type":"apply_start"}
{"@level":"error","@message":"Error: local-exec provisioner error","@module":"terraform.ui","@timestamp":"2026-11-22T14:18:33.489735Z","diagnostic":{"severity":"error","summary":"local-exec provisioner error","detail":"Error running command 'exit 3': exit status 3. Output: oops\n","address":"terraform_data.x","range":{"filename":"main.tf","start":{"line":2,"column":28,"byte":59},"end":{"line":2,"column":29,"byte":60}}},"type":"diagnostic"}"#;

    fn messages() -> Vec<Message> {
        APPLY.lines().map(|l| parse(l).unwrap()).collect()
    }

    #[test]
    fn messages_become_logs_with_levels() {
        let m = messages();
        assert_eq!(m[0].logs(), [("info", "Terraform 1.11.4".to_string())]);
        assert_eq!(
            m[6].logs(),
            [
                ("error", "Error: local-exec provisioner error".to_string()),
                (
                    "error",
                    "Error running command 'exit 3': exit status 3. Output: oops".to_string()
                ),
            ]
        );
        for (terraform, ours) in [
            ("trace", "trace"),
            ("debug", "debug"),
            ("info", "info"),
            ("warn", "warn"),
            ("error", "error"),
            ("ERROR", "error"),
            ("other", "info"),
        ] {
            assert_eq!(level(terraform), ours);
        }
        assert!(parse("Usage: terraform [global options] <subcommand> [args]").is_none());
        assert!(parse("{not json").is_none());
    }

    #[test]
    fn error_diagnostics_become_the_failure_message() {
        let m = messages();
        assert_eq!(
            m[6].error().unwrap(),
            "local-exec provisioner error: Error running command 'exit 3': exit status 3. \
             Output: oops (main.tf:2)"
        );
        assert!(m[1].error().is_none());
        let warning = parse(
            r#"{"@level":"warn","@message":"Warning: x","type":"diagnostic","diagnostic":{"severity":"warning","summary":"x","detail":""}}"#,
        )
        .unwrap();
        assert!(warning.error().is_none());
    }

    #[test]
    fn hooks_become_timings() {
        let mut t = Timings::new("apply");
        for m in messages() {
            t.observe(&m);
        }
        let got: Vec<(String, String, String, String, i64)> = t
            .finish()
            .into_iter()
            .map(|t| {
                let micros = (t.ended_at - t.started_at).num_microseconds().unwrap();
                (t.stage, t.source, t.action, t.resource, micros)
            })
            .collect();
        // The provisioner closes first; the unfinished destroy of `other` yields nothing.
        assert_eq!(
            got,
            [
                (
                    "apply".into(),
                    "terraform".into(),
                    "provision".into(),
                    "terraform_data.workspace".into(),
                    2151
                ),
                (
                    "apply".into(),
                    "terraform".into(),
                    "create".into(),
                    "terraform_data.workspace".into(),
                    2687
                ),
            ]
        );
    }

    #[test]
    fn refresh_timings_use_the_category_as_action() {
        let mut t = Timings::new("plan");
        for line in [
            r#"{"@timestamp":"2026-01-01T00:00:01Z","type":"refresh_start","hook":{"resource":{"addr":"a.b","implied_provider":"coder"},"id_key":"id","id_value":"1"}}"#,
            r#"{"@timestamp":"2026-01-01T00:00:03Z","type":"refresh_complete","hook":{"resource":{"addr":"a.b","implied_provider":"coder"},"id_key":"id","id_value":"1"}}"#,
        ] {
            t.observe(&parse(line).unwrap());
        }
        let timings = t.finish();
        assert_eq!(timings.len(), 1);
        assert_eq!(
            (
                timings[0].stage.as_str(),
                timings[0].source.as_str(),
                timings[0].action.as_str()
            ),
            ("plan", "coder", "state refresh")
        );
        assert_eq!(
            (timings[0].ended_at - timings[0].started_at).num_seconds(),
            2
        );
    }

    #[test]
    fn text_errors_are_tidied() {
        let lines: Vec<String> = [
            "",
            "Error: Terraform encountered problems during initialisation.",
            "",
            "",
            "╷",
            "│ Error: Invalid expression",
            "│ ",
            "│   on main.tf line 2:",
            "╵",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            text_error(&lines),
            "Error: Terraform encountered problems during initialisation.\n\n\
             Error: Invalid expression\n\non main.tf line 2:"
        );
    }
}
