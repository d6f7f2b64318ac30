//! Workspace resources from `terraform show -json`: of a state (after an apply) or of a plan
//! (imports and dry runs).
//!
//! Every managed resource becomes a resource, except the coder provider's helper types:
//! `coder_agent` and `coder_app` become agents and apps of the resource they belong to, and
//! `coder_metadata` decorates the resource it names. Data sources are never resources.
//!
//! Upstream links these with `terraform graph`; here the links come from the JSON itself: ids
//! where the state knows them (`agent_id`, `resource_id`), else references (`depends_on` in a
//! state, the configuration's expression references in a plan).

use std::collections::HashSet;

use serde_json::Value;
use uuid::Uuid;

use crate::{Agent, AgentMetadata, AgentScript, App, AppHealthcheck, Resource, ResourceMetadata};

/// Coder provider types that describe other resources rather than being resources.
const HELPER_TYPES: [&str; 9] = [
    "coder_agent",
    "coder_agent_instance",
    "coder_app",
    "coder_metadata",
    "coder_script",
    "coder_env",
    "coder_devcontainer",
    "coder_external_auth",
    "coder_ai_task",
];

/// The display apps a `coder_agent`'s `display_apps` block turns on, in Coder's order; `None`
/// without a block (or while a plan does not know it yet), meaning the provider's defaults.
fn display_apps(block: &Value) -> Option<Vec<String>> {
    let block = block.as_array()?.first()?.as_object()?;
    Some(
        coderd_db::model::DISPLAY_APPS
            .iter()
            .filter(|app| block.get(**app).and_then(Value::as_bool).unwrap_or(false))
            .map(|app| app.to_string())
            .collect(),
    )
}

/// Resources of a state (`terraform show -json`).
pub(super) fn from_state(show: &Value) -> Vec<Resource> {
    let mut instances = Vec::new();
    collect_instances(&show["values"]["root_module"], &mut instances);
    convert(&instances, &|inst| {
        inst.json["depends_on"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(base_address)
            .collect()
    })
}

/// Resources a plan would leave (`terraform show -json <planfile>`).
pub(super) fn from_plan(show: &Value) -> Vec<Resource> {
    let mut instances = Vec::new();
    collect_instances(&show["planned_values"]["root_module"], &mut instances);
    let mut references = Vec::new();
    collect_references(&show["configuration"]["root_module"], "", &mut references);
    convert(&instances, &|inst| {
        let base = base_address(&inst.address);
        references
            .iter()
            .filter(|(from, _)| *from == base)
            .map(|(_, to)| to.clone())
            .collect()
    })
}

/// One resource instance in a state or plan.
struct Instance<'a> {
    address: String,
    kind: String,
    name: String,
    json: &'a Value,
}

impl Instance<'_> {
    fn values(&self) -> &Value {
        &self.json["values"]
    }

    fn text(&self, key: &str) -> String {
        text(&self.values()[key])
    }

    fn flag(&self, key: &str) -> bool {
        self.values()[key].as_bool().unwrap_or(false)
    }
}

fn collect_instances<'a>(module: &'a Value, out: &mut Vec<Instance<'a>>) {
    for r in module["resources"].as_array().into_iter().flatten() {
        if r["mode"] != "managed" {
            continue;
        }
        out.push(Instance {
            address: text(&r["address"]),
            kind: text(&r["type"]),
            name: text(&r["name"]),
            json: r,
        });
    }
    for child in module["child_modules"].as_array().into_iter().flatten() {
        collect_instances(child, out);
    }
}

/// (resource address, referenced text) pairs from a plan's configuration, module addresses
/// prefixed so they compare with instance addresses.
fn collect_references(module: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    for r in module["resources"].as_array().into_iter().flatten() {
        let from = format!("{prefix}{}", text(&r["address"]));
        let mut refs = Vec::new();
        gather_references(&r["expressions"], &mut refs);
        for p in r["provisioners"].as_array().into_iter().flatten() {
            gather_references(&p["expressions"], &mut refs);
        }
        for to in r["depends_on"].as_array().into_iter().flatten() {
            refs.push(text(to));
        }
        out.extend(
            refs.into_iter()
                .map(|to| (from.clone(), format!("{prefix}{to}"))),
        );
    }
    if let Some(calls) = module["module_calls"].as_object() {
        for (name, call) in calls {
            collect_references(&call["module"], &format!("{prefix}module.{name}."), out);
        }
    }
}

fn gather_references(expressions: &Value, out: &mut Vec<String>) {
    match expressions {
        Value::Object(map) => {
            if let Some(refs) = map.get("references").and_then(Value::as_array) {
                out.extend(refs.iter().filter_map(Value::as_str).map(str::to_string));
            }
            for (key, v) in map {
                if key != "references" {
                    gather_references(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| gather_references(v, out)),
        _ => {}
    }
}

/// An address without instance keys: `module.m[0].a.b["k"]` → `module.m.a.b`.
fn base_address(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    let mut depth = 0usize;
    let mut quoted = false;
    for c in address.chars() {
        match c {
            '"' if depth > 0 => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether `reference` (e.g. `coder_agent.main.token`) points into the resource `base`.
fn refers_to(reference: &str, base: &str) -> bool {
    let reference = base_address(reference);
    reference == base
        || reference
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('.'))
}

fn convert(instances: &[Instance], references: &dyn Fn(&Instance) -> Vec<String>) -> Vec<Resource> {
    let is_helper = |i: &Instance| HELPER_TYPES.contains(&i.kind.as_str());
    let owners: Vec<&Instance> = instances.iter().filter(|i| !is_helper(i)).collect();
    let mut resources: Vec<Resource> = owners
        .iter()
        .map(|i| Resource {
            name: i.name.clone(),
            kind: i.kind.clone(),
            ..Default::default()
        })
        .collect();
    let refs = |i: &Instance| -> HashSet<String> { references(i).into_iter().collect() };
    let links = |a: &Instance, b: &Instance| {
        let b_base = base_address(&b.address);
        refs(a).iter().any(|r| refers_to(r, &b_base))
    };

    // Agents: on the resource that uses them (it embeds their token or init script), else on
    // a resource they depend on, else on the first resource.
    let agents: Vec<&Instance> = instances
        .iter()
        .filter(|i| i.kind == "coder_agent")
        .collect();
    let mut agent_slots: Vec<(usize, usize)> = Vec::new(); // (resource, agent) per agent
    for agent in &agents {
        let owner = owners
            .iter()
            .position(|o| links(o, agent))
            .or_else(|| owners.iter().position(|o| links(agent, o)))
            .or(if owners.is_empty() { None } else { Some(0) });
        let Some(owner) = owner else { continue };
        let values = agent.values();
        resources[owner].agents.push(Agent {
            name: agent.name.clone(),
            operating_system: agent.text("os"),
            architecture: agent.text("arch"),
            directory: agent.text("dir"),
            connection_timeout_seconds: values["connection_timeout"]
                .as_i64()
                .map_or(120, |n| n as i32),
            troubleshooting_url: agent.text("troubleshooting_url"),
            // Known once applied; a plan's is unknown, and an instance-identity agent has none.
            auth_token: Uuid::parse_str(&agent.text("token")).ok(),
            display_apps: display_apps(&values["display_apps"]),
            apps: Vec::new(),
            // The agent's own `startup_script` runs as a script, as upstream.
            scripts: Some(agent.text("startup_script"))
                .filter(|s| !s.is_empty())
                .map(|script| AgentScript {
                    display_name: "Startup Script".into(),
                    script,
                    run_on_start: true,
                    start_blocks_login: agent.text("startup_script_behavior") == "blocking",
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            metadata: values["metadata"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| AgentMetadata {
                    key: text(&m["key"]),
                    display_name: text(&m["display_name"]),
                    script: text(&m["script"]),
                    interval_seconds: m["interval"].as_i64().unwrap_or(10),
                    timeout_seconds: m["timeout"].as_i64().unwrap_or(10),
                })
                .collect(),
        });
        agent_slots.push((owner, resources[owner].agents.len() - 1));
    }

    for app in instances.iter().filter(|i| i.kind == "coder_app") {
        let agent_id = app.text("agent_id");
        let agent = agents
            .iter()
            .position(|a| !agent_id.is_empty() && a.text("id") == agent_id)
            .or_else(|| agents.iter().position(|a| links(app, a)));
        let Some(&(resource, slot)) = agent.and_then(|a| agent_slots.get(a)) else {
            continue;
        };
        let display_name = match app.text("display_name") {
            // `name` is the provider's deprecated spelling.
            d if d.is_empty() => app.text("name"),
            d => d,
        };
        let share = app.text("share");
        let open_in = app.text("open_in");
        resources[resource].agents[slot].apps.push(App {
            slug: app.text("slug"),
            display_name,
            url: app.text("url"),
            command: app.text("command"),
            icon: app.text("icon"),
            subdomain: app.flag("subdomain"),
            sharing_level: if share.is_empty() {
                "owner".into()
            } else {
                share
            },
            external: app.flag("external"),
            hidden: app.flag("hidden"),
            open_in: if open_in.is_empty() {
                "slim-window".into()
            } else {
                open_in
            },
            // A list block in the state: at most one.
            healthcheck: app.values()["healthcheck"]
                .as_array()
                .and_then(|l| l.first())
                .map(|h| AppHealthcheck {
                    url: text(&h["url"]),
                    interval: h["interval"].as_i64().unwrap_or(0) as i32,
                    threshold: h["threshold"].as_i64().unwrap_or(0) as i32,
                })
                .unwrap_or_default(),
        });
    }

    for meta in instances.iter().filter(|i| i.kind == "coder_metadata") {
        let target_id = meta.text("resource_id");
        let Some(target) = owners
            .iter()
            .position(|o| !target_id.is_empty() && o.text("id") == target_id)
            .or_else(|| owners.iter().position(|o| links(meta, o)))
        else {
            continue;
        };
        let values = meta.values();
        let resource = &mut resources[target];
        resource.hide = meta.flag("hide");
        resource.icon = meta.text("icon");
        resource.daily_cost = values["daily_cost"].as_i64().unwrap_or(0) as i32;
        for item in values["item"].as_array().into_iter().flatten() {
            resource.metadata.push(ResourceMetadata {
                key: text(&item["key"]),
                value: text(&item["value"]),
                sensitive: item["sensitive"].as_bool().unwrap_or(false),
            });
        }
    }
    resources
}

/// A JSON value as text: strings verbatim, null and missing as empty, others as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn display_apps_follow_the_block_in_coders_order() {
        let block = json!([{"web_terminal": true, "vscode": false, "vscode_insiders": true,
            "ssh_helper": true, "port_forwarding_helper": false}]);
        assert_eq!(
            display_apps(&block),
            Some(vec![
                "vscode_insiders".to_string(),
                "ssh_helper".to_string(),
                "web_terminal".to_string()
            ])
        );
        // No block, or a plan that does not know it yet: the provider's defaults.
        assert_eq!(display_apps(&Value::Null), None);
        assert_eq!(display_apps(&json!([])), None);
    }

    #[test]
    fn state_resources_with_agents_apps_and_metadata() {
        let show = json!({"values": {"root_module": {
            "resources": [
                {"address": "coder_agent.main", "mode": "managed", "type": "coder_agent", "name": "main",
                 "values": {"id": "agent-1", "os": "linux", "arch": "amd64", "dir": "/home/coder",
                            "connection_timeout": 60, "token": "secret"}},
                {"address": "coder_app.code", "mode": "managed", "type": "coder_app", "name": "code",
                 "values": {"agent_id": "agent-1", "slug": "code", "display_name": "VS Code",
                            "url": "http://localhost:8080", "share": "authenticated", "subdomain": true}},
                {"address": "coder_metadata.info", "mode": "managed", "type": "coder_metadata", "name": "info",
                 "values": {"resource_id": "vm-1", "hide": false, "icon": "/icon/vm.svg", "daily_cost": 7,
                            "item": [{"key": "cpu", "value": "4", "sensitive": false},
                                     {"key": "password", "value": "hunter2", "sensitive": true},
                                     {"key": "empty", "value": null, "is_null": true}]},
                 "depends_on": ["terraform_data.vm"]},
                {"address": "data.coder_workspace.me", "mode": "data", "type": "coder_workspace", "name": "me",
                 "values": {"id": "ws"}},
                {"address": "terraform_data.vm", "mode": "managed", "type": "terraform_data", "name": "vm",
                 "values": {"id": "vm-1"}, "depends_on": ["coder_agent.main"]},
                {"address": "terraform_data.volume", "mode": "managed", "type": "terraform_data", "name": "volume",
                 "values": {"id": "vol-1"}}
            ],
            "child_modules": [{"resources": [
                {"address": "module.m.terraform_data.inner[0]", "mode": "managed", "type": "terraform_data",
                 "name": "inner", "index": 0, "values": {"id": "x"}}
            ]}]
        }}});

        let resources = from_state(&show);

        let names: Vec<(&str, &str)> = resources
            .iter()
            .map(|r| (r.kind.as_str(), r.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("terraform_data", "vm"),
                ("terraform_data", "volume"),
                ("terraform_data", "inner")
            ]
        );
        let vm = &resources[0];
        assert_eq!(
            (vm.daily_cost, vm.icon.as_str(), vm.hide),
            (7, "/icon/vm.svg", false)
        );
        assert_eq!(
            vm.metadata,
            [
                ResourceMetadata {
                    key: "cpu".into(),
                    value: "4".into(),
                    sensitive: false
                },
                ResourceMetadata {
                    key: "password".into(),
                    value: "hunter2".into(),
                    sensitive: true
                },
                ResourceMetadata {
                    key: "empty".into(),
                    value: "".into(),
                    sensitive: false
                },
            ]
        );
        assert_eq!(vm.agents.len(), 1);
        let agent = &vm.agents[0];
        assert_eq!(
            (
                agent.name.as_str(),
                agent.operating_system.as_str(),
                agent.architecture.as_str(),
                agent.directory.as_str(),
                agent.connection_timeout_seconds
            ),
            ("main", "linux", "amd64", "/home/coder", 60)
        );
        let app = &agent.apps[0];
        assert_eq!(
            (
                app.slug.as_str(),
                app.display_name.as_str(),
                app.sharing_level.as_str(),
                app.open_in.as_str()
            ),
            ("code", "VS Code", "authenticated", "slim-window")
        );
        assert!(app.subdomain && !app.external && !app.hidden);
        assert!(resources[1].agents.is_empty() && resources[1].metadata.is_empty());
    }

    #[test]
    fn plan_resources_link_by_configuration_references() {
        // In a plan, ids are unknown: links come from the configuration.
        let show = json!({
            "planned_values": {"root_module": {"resources": [
                {"address": "coder_agent.dev", "mode": "managed", "type": "coder_agent", "name": "dev",
                 "values": {"os": "linux", "arch": "arm64"}},
                {"address": "coder_app.web", "mode": "managed", "type": "coder_app", "name": "web",
                 "values": {"slug": "web", "url": "http://localhost:3000",
                            "healthcheck": [{"url": "http://localhost:3000/healthz", "interval": 5, "threshold": 6}]}},
                {"address": "coder_metadata.m[0]", "mode": "managed", "type": "coder_metadata", "name": "m",
                 "values": {"hide": true, "item": [{"key": "k", "value": "v"}]}},
                {"address": "terraform_data.first", "mode": "managed", "type": "terraform_data", "name": "first",
                 "values": {}},
                {"address": "terraform_data.box[0]", "mode": "managed", "type": "terraform_data", "name": "box",
                 "values": {}}
            ]}},
            "configuration": {"root_module": {"resources": [
                {"address": "coder_app.web", "expressions": {"agent_id": {"references": ["coder_agent.dev.id", "coder_agent.dev"]}}},
                {"address": "coder_metadata.m", "expressions": {"resource_id": {"references": ["terraform_data.box[0].id", "terraform_data.box"]}}},
                {"address": "terraform_data.box", "expressions": {"input": {"references": ["coder_agent.dev.token", "coder_agent.dev"]}}},
                {"address": "terraform_data.first", "expressions": {}}
            ]}}
        });

        let resources = from_plan(&show);

        assert_eq!(resources.len(), 2);
        let (first, boxed) = (&resources[0], &resources[1]);
        assert_eq!(first.name, "first");
        assert!(first.agents.is_empty() && first.metadata.is_empty());
        assert_eq!(boxed.name, "box");
        assert!(boxed.hide);
        assert_eq!(boxed.metadata[0].value, "v");
        assert_eq!(boxed.agents[0].name, "dev");
        assert_eq!(boxed.agents[0].connection_timeout_seconds, 120);
        assert_eq!(boxed.agents[0].apps[0].slug, "web");
        assert_eq!(boxed.agents[0].apps[0].sharing_level, "owner");
        let h = &boxed.agents[0].apps[0].healthcheck;
        assert_eq!(
            (h.url.as_str(), h.interval, h.threshold),
            ("http://localhost:3000/healthz", 5, 6)
        );
    }

    #[test]
    fn addresses_without_instance_keys() {
        assert_eq!(base_address(r#"module.m[0].a.b["k[1]"]"#), "module.m.a.b");
        assert!(refers_to("a.b.id", "a.b"));
        assert!(refers_to("a.b[0].id", "a.b"));
        assert!(!refers_to("a.bc.id", "a.b"));
    }

    #[test]
    fn empty_show_output_has_no_resources() {
        assert!(from_state(&json!({"format_version": "1.0"})).is_empty());
        assert!(from_plan(&json!({})).is_empty());
    }
}
