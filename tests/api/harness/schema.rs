//! Checks response bodies against `shared/reference/coder-api-reference.json` (falling back to
//! the full upstream spec for definitions outside the subset): the operation is found from the
//! method and path, and the body must match the documented schema for its status. Every
//! property of a definition must be present, with the right type and a valid enum value.

use std::sync::OnceLock;

use serde_json::Value;

pub struct Spec {
    subset: Value,
    full: Value,
    /// `extra_definitions()`.
    extra: Value,
    /// (method, path segments, spec path) of every operation in either spec.
    ops: Vec<(String, Vec<String>, String, bool)>,
}

/// Properties Coder omits when empty (`omitempty`), so they may be absent.
const OMITEMPTY: &[(&str, &str)] = &[
    ("codersdk.Response", "detail"),
    ("codersdk.Response", "validations"),
    ("codersdk.AssignableRoles", "organization_id"),
    ("codersdk.Feature", "limit"),
    ("codersdk.Feature", "actual"),
    ("codersdk.Feature", "soft_limit"),
    ("codersdk.Feature", "usage_period"),
    // The `omitempty` fields of upstream's codersdk response structs that this server sends
    // (empty strings, lists and maps, nil pointers are left out).
    ("codersdk.MinimalUser", "name"),
    ("workspacesdk.AgentConnectionInfo", "hostname_suffix"),
    ("tailcfg.DERPMap", "HomeParams"),
    ("tailcfg.DERPMap", "omitDefaultRegions"),
    ("tailcfg.DERPHomeParams", "RegionScore"),
    ("tailcfg.DERPRegion", "Avoid"),
    ("tailcfg.DERPNode", "CanPort80"),
    ("tailcfg.DERPNode", "CertName"),
    ("tailcfg.DERPNode", "DERPPort"),
    ("tailcfg.DERPNode", "ForceHTTP"),
    ("tailcfg.DERPNode", "InsecureForTests"),
    ("tailcfg.DERPNode", "IPv4"),
    ("tailcfg.DERPNode", "IPv6"),
    ("tailcfg.DERPNode", "STUNOnly"),
    ("tailcfg.DERPNode", "STUNPort"),
    ("tailcfg.DERPNode", "STUNTestIP"),
    ("codersdk.MinimalUser", "avatar_url"),
    ("codersdk.ProvisionerJobInput", "template_version_id"),
    ("codersdk.ProvisionerJobInput", "workspace_build_id"),
    ("codersdk.ProvisionerJobInput", "error"),
    ("codersdk.ProvisionerJobMetadata", "workspace_id"),
    ("codersdk.ProvisionerJobMetadata", "workspace_name"),
    ("codersdk.ProvisionerJob", "started_at"),
    ("codersdk.ProvisionerJob", "completed_at"),
    ("codersdk.ProvisionerJob", "canceled_at"),
    ("codersdk.ProvisionerJob", "error"),
    ("codersdk.ProvisionerJob", "error_code"),
    ("codersdk.ProvisionerJob", "worker_id"),
    ("codersdk.ProvisionerJob", "worker_name"),
    ("codersdk.ProvisionerJob", "available_workers"),
    ("codersdk.TemplateVersion", "warnings"),
    ("codersdk.TemplateVersionParameter", "display_name"),
    ("codersdk.TemplateVersionParameter", "validation_error"),
    ("codersdk.TemplateVersionParameter", "validation_regex"),
    ("codersdk.TemplateVersionParameter", "validation_min"),
    ("codersdk.TemplateVersionParameter", "validation_max"),
    ("codersdk.TemplateVersionParameter", "validation_monotonic"),
    ("codersdk.WorkspaceAgentHealth", "reason"),
    ("codersdk.WorkspaceApp", "url"),
    ("codersdk.WorkspaceApp", "display_name"),
    ("codersdk.WorkspaceApp", "command"),
    ("codersdk.WorkspaceApp", "icon"),
    ("codersdk.WorkspaceApp", "subdomain_name"),
    ("codersdk.WorkspaceApp", "group"),
    ("codersdk.WorkspaceApp", "tooltip"),
    ("codersdk.WorkspaceAgent", "first_connected_at"),
    ("codersdk.WorkspaceAgent", "last_connected_at"),
    ("codersdk.WorkspaceAgent", "disconnected_at"),
    ("codersdk.WorkspaceAgent", "started_at"),
    ("codersdk.WorkspaceAgent", "ready_at"),
    ("codersdk.WorkspaceAgent", "instance_id"),
    ("codersdk.WorkspaceAgent", "directory"),
    ("codersdk.WorkspaceAgent", "expanded_directory"),
    ("codersdk.WorkspaceAgent", "latency"),
    ("codersdk.WorkspaceResource", "agents"),
    ("codersdk.WorkspaceResource", "metadata"),
    ("codersdk.PreviewParameterStyling", "placeholder"),
    ("codersdk.PreviewParameterStyling", "disabled"),
    ("codersdk.PreviewParameterStyling", "label"),
    ("codersdk.PreviewParameterStyling", "mask_input"),
    ("codersdk.BuildInfoResponse", "webpush_public_key"),
    ("codersdk.SlimRole", "organization_id"),
    ("codersdk.User", "name"),
    ("codersdk.User", "avatar_url"),
    ("codersdk.User", "theme_preference"),
    ("codersdk.ReducedUser", "name"),
    ("codersdk.ReducedUser", "avatar_url"),
    ("codersdk.ReducedUser", "theme_preference"),
    ("codersdk.TemplateUser", "name"),
    ("codersdk.TemplateUser", "avatar_url"),
    ("codersdk.TemplateUser", "theme_preference"),
    ("codersdk.WorkspaceUser", "name"),
    ("codersdk.WorkspaceUser", "avatar_url"),
    ("codersdk.OrganizationMemberWithUserData", "name"),
    ("codersdk.OrganizationMemberWithUserData", "avatar_url"),
    ("codersdk.AuthMethods", "terms_of_service_url"),
    ("codersdk.BannerConfig", "message"),
    ("codersdk.BannerConfig", "background_color"),
    ("codersdk.LinkConfig", "location"),
    ("codersdk.AppearanceConfig", "support_links"),
    ("codersdk.WorkspaceBuild", "workspace_owner_avatar_url"),
    ("codersdk.SharedWorkspaceActor", "avatar_url"),
    ("codersdk.Workspace", "autostart_schedule"),
    ("codersdk.Workspace", "ttl_ms"),
    ("codersdk.Workspace", "shared_with"),
    ("codersdk.OIDCConfig", "redirect_url"),
];

/// Definitions every property of which Coder omits when empty (`omitempty` on each field):
/// the top level of `DeploymentValues`, two of its sections, `serpent.Option` and `Group`.
const OMITEMPTY_DEFINITIONS: &[&str] = &[
    "codersdk.DeploymentValues",
    "codersdk.HTTPCookieConfig",
    "codersdk.SessionLifetime",
    "serpent.Option",
    "serpent.Group",
];

/// Definitions whose Go type marshals itself otherwise than its fields say: these are strings
/// on the wire (`serpent.URL`, `HostPort` and `Regexp` have `MarshalJSON` methods).
const STRING_DEFINITIONS: &[&str] = &["serpent.URL", "serpent.HostPort", "serpent.Regexp"];

/// Properties whose key on the wire differs from the specification's (Coder's Go struct has
/// no JSON tag, so the key is the field name): (definition, specification's key, wire key).
pub const WIRE_KEYS: &[(&str, &str, &str)] = &[
    ("codersdk.TransitionStats", "p50", "P50"),
    ("codersdk.TransitionStats", "p95", "P95"),
    // tailscale's DERP map has no JSON tags: upstream sends Go's field names, which swaggo
    // lower-cased in the reference (Go clients decode either; docs/decisions.md, Tailnet).
    ("tailcfg.DERPMap", "homeParams", "HomeParams"),
    ("tailcfg.DERPMap", "regions", "Regions"),
    ("tailcfg.DERPHomeParams", "regionScore", "RegionScore"),
    ("tailcfg.DERPRegion", "avoid", "Avoid"),
    ("tailcfg.DERPRegion", "embeddedRelay", "EmbeddedRelay"),
    ("tailcfg.DERPRegion", "nodes", "Nodes"),
    ("tailcfg.DERPRegion", "regionCode", "RegionCode"),
    ("tailcfg.DERPRegion", "regionID", "RegionID"),
    ("tailcfg.DERPRegion", "regionName", "RegionName"),
    ("tailcfg.DERPNode", "canPort80", "CanPort80"),
    ("tailcfg.DERPNode", "certName", "CertName"),
    ("tailcfg.DERPNode", "derpport", "DERPPort"),
    ("tailcfg.DERPNode", "forceHTTP", "ForceHTTP"),
    ("tailcfg.DERPNode", "hostName", "HostName"),
    ("tailcfg.DERPNode", "insecureForTests", "InsecureForTests"),
    ("tailcfg.DERPNode", "ipv4", "IPv4"),
    ("tailcfg.DERPNode", "ipv6", "IPv6"),
    ("tailcfg.DERPNode", "name", "Name"),
    ("tailcfg.DERPNode", "regionID", "RegionID"),
    ("tailcfg.DERPNode", "stunonly", "STUNOnly"),
    ("tailcfg.DERPNode", "stunport", "STUNPort"),
    ("tailcfg.DERPNode", "stuntestIP", "STUNTestIP"),
    ("codersdk.SSHConfig", "deploymentName", "DeploymentName"),
    ("codersdk.Preset", "id", "ID"),
    ("codersdk.Preset", "name", "Name"),
    ("codersdk.Preset", "parameters", "Parameters"),
    ("codersdk.Preset", "default", "Default"),
    (
        "codersdk.Preset",
        "desiredPrebuildInstances",
        "DesiredPrebuildInstances",
    ),
    ("codersdk.Preset", "description", "Description"),
    ("codersdk.Preset", "icon", "Icon"),
    ("codersdk.PresetParameter", "name", "Name"),
    ("codersdk.PresetParameter", "value", "Value"),
    ("codersdk.SSHConfig", "sshconfigOptions", "SSHConfigOptions"),
];

/// The key a definition's property has on the wire.
pub fn wire_key<'a>(definition: &str, key: &'a str) -> &'a str {
    WIRE_KEYS
        .iter()
        .find(|(d, k, _)| *d == definition && *k == key)
        .map_or(key, |(_, _, wire)| wire)
}

/// Enum values we send beyond the reference's, each a documented decision (docs/decisions.md).
const EXTRA_ENUM_VALUES: &[&str] = &[
    // Templates of the echo provisioner say so; the reference lists only terraform.
    "echo",
    // Automatic builds say why: codersdk.BuildReason has these; WorkspaceBuild.reason's list
    // in the reference is shorter than what Coder sends.
    "dormancy",
    "autodelete",
    "failedstop",
];

/// Operations whose documented response the reference gets wrong; checked against what Coder
/// really answers instead (docs/decisions.md).
const RESPONSE_OVERRIDES: &[(&str, &str, &str)] = &[
    (
        "GET",
        "/templates/{template}/versions/{templateversionname}",
        "codersdk.TemplateVersion",
    ),
    (
        "GET",
        "/templates/{template}/acl/available",
        "codersdk.ACLAvailable",
    ),
    ("GET", "/users/{user}/roles", "codersdk.UserRoles"),
    (
        "GET",
        "/users/{user}/quiet-hours",
        "codersdk.UserQuietHoursScheduleResponse",
    ),
    (
        "PUT",
        "/users/{user}/quiet-hours",
        "codersdk.UserQuietHoursScheduleResponse",
    ),
];

/// Like `RESPONSE_OVERRIDES`, for answers the specification has no definition of: the schema
/// of what Coder really sends (its Go type), inline.
const INLINE_RESPONSE_OVERRIDES: &[(&str, &str, &str)] = &[(
    "GET",
    "/experiments/available",
    // codersdk.AvailableExperiments; the spec documents a bare list.
    r#"{"type": "object", "properties": {"safe": {"type": "array", "items": {"type": "string"}}}}"#,
)];

/// Operations whose successful body is a provisioner's bytes as they are, labelled
/// `application/json` as Coder labels them (JSON only when the provisioner wrote JSON).
const RAW_BODIES: &[(&str, &str)] = &[("GET", "/workspacebuilds/{workspacebuild}/state")];

fn reference_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference")
}

pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let load = |name: &str| -> Value {
            let path = reference_dir().join(name);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading the API reference {}: {e}", path.display()));
            serde_json::from_str(&text).expect("the API reference is JSON")
        };
        let subset = load("coder-api-reference.json");
        let full = load("upstream-swagger-full.json");
        let mut ops = Vec::new();
        for (doc, in_subset) in [(&subset, true), (&full, false)] {
            for (path, item) in doc["paths"].as_object().unwrap() {
                for method in item.as_object().unwrap().keys() {
                    let segs = path
                        .trim_matches('/')
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                    ops.push((method.to_uppercase(), segs, path.clone(), in_subset));
                }
            }
        }
        Spec {
            subset,
            full,
            extra: extra_definitions(),
            ops,
        }
    })
}

impl Spec {
    /// (method, path) of every operation in the subset reference.
    pub fn subset_operations(&self) -> Vec<(String, String)> {
        self.ops
            .iter()
            .filter(|(_, _, _, in_subset)| *in_subset)
            .map(|(m, _, p, _)| (m.clone(), p.clone()))
            .collect()
    }

    /// The spec operation for a request, preferring the subset and literal segments.
    pub fn operation(&self, method: &str, path: &str) -> Option<(&Value, String)> {
        let path = path.split('?').next().unwrap_or("");
        let path = path.strip_prefix("/api/v2").unwrap_or(path);
        let segs: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let mut best: Option<(usize, bool, &String)> = None;
        for (m, pattern, spec_path, in_subset) in &self.ops {
            if m != method || pattern.len() != segs.len() {
                continue;
            }
            let mut literal = 0;
            let ok = pattern.iter().zip(&segs).all(|(p, s)| {
                if p.starts_with('{') {
                    true
                } else {
                    literal += 1;
                    p == s
                }
            });
            if ok && best.is_none_or(|(l, sub, _)| (literal, *in_subset) > (l, sub)) {
                best = Some((literal, *in_subset, spec_path));
            }
        }
        let (_, in_subset, spec_path) = best?;
        let doc = if in_subset { &self.subset } else { &self.full };
        Some((
            &doc["paths"][spec_path][method.to_lowercase()],
            spec_path.clone(),
        ))
    }

    /// The documented 2xx response schemas of a subset operation, by status, with the
    /// corrections of `RESPONSE_OVERRIDES` applied. `None` for a status without a body.
    pub fn success_responses(&self, method: &str, spec_path: &str) -> Vec<(u16, Option<Value>)> {
        let op = &self.subset["paths"][spec_path][method.to_lowercase()];
        let overridden = RESPONSE_OVERRIDES
            .iter()
            .find(|(m, p, _)| *m == method && *p == spec_path)
            .map(|(_, _, def)| serde_json::json!({"$ref": format!("#/definitions/{def}")}));
        let mut out = Vec::new();
        for (status, r) in op["responses"].as_object().into_iter().flatten() {
            let Ok(code) = status.parse::<u16>() else {
                continue;
            };
            if (200..300).contains(&code) {
                let schema = r.get("schema").cloned();
                out.push((code, overridden.clone().or(schema)));
            }
        }
        out
    }

    /// The definition a `#/definitions/...` reference names.
    pub fn resolve(&self, reference: &str) -> Option<&Value> {
        self.definition(reference.trim_start_matches("#/definitions/"))
    }

    fn definition(&self, name: &str) -> Option<&Value> {
        let d = &self.subset["definitions"][name];
        if !d.is_null() {
            return Some(d);
        }
        let d = &self.full["definitions"][name];
        if !d.is_null() {
            return Some(d);
        }
        let d = &self.extra[name];
        (!d.is_null()).then_some(d)
    }

    /// Validates a response; returns a description of every problem found.
    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: &str,
        body: &[u8],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let is_json = content_type.starts_with("application/json");
        if !is_json {
            if status >= 400 {
                problems.push(format!(
                    "error status {status} without a JSON body (content type {content_type:?})"
                ));
            }
            return problems;
        }
        let raw_body = status < 300
            && self
                .operation(method, path)
                .is_some_and(|(_, p)| RAW_BODIES.contains(&(method, p.as_str())));
        if raw_body {
            return problems;
        }
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return vec![format!("body is not JSON: {e}")],
        };
        if status >= 400 || status == 101 {
            self.check(
                &serde_json::json!({"$ref": "#/definitions/codersdk.Response"}),
                &value,
                "$",
                &mut problems,
            );
            return problems;
        }
        let Some((op, spec_path)) = self.operation(method, path) else {
            return problems;
        };
        if let Some((_, _, schema)) = INLINE_RESPONSE_OVERRIDES
            .iter()
            .find(|(m, p, _)| *m == method && *p == spec_path)
        {
            let schema: Value = serde_json::from_str(schema).expect("inline schemas are JSON");
            self.check(&schema, &value, "$", &mut problems);
            return problems;
        }
        if let Some((_, _, def)) = RESPONSE_OVERRIDES
            .iter()
            .find(|(m, p, _)| *m == method && *p == spec_path)
        {
            let schema = serde_json::json!({"$ref": format!("#/definitions/{def}")});
            self.check(&schema, &value, "$", &mut problems);
            return problems;
        }
        let responses = &op["responses"];
        let schema = responses
            .get(status.to_string())
            .and_then(|r| r.get("schema"))
            .or_else(|| {
                responses.as_object().and_then(|m| {
                    m.iter()
                        .find(|(k, _)| k.starts_with('2'))
                        .and_then(|(_, r)| r.get("schema"))
                })
            });
        if let Some(schema) = schema {
            self.check(schema, &value, "$", &mut problems);
        }
        problems
    }

    /// Problems of one JSON value against a schema (e.g. a `$ref` to a definition).
    pub fn check_value(&self, schema: &Value, v: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, v, "$", &mut out);
        out
    }

    fn check(&self, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/definitions/");
            if STRING_DEFINITIONS.contains(&name) {
                self.check(&serde_json::json!({"type": "string"}), v, at, out);
                return;
            }
            match self.definition(name) {
                Some(def) => self.check_def(name, def, v, at, out),
                None => out.push(format!("{at}: unknown definition {name}")),
            }
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(s, v, at, out);
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let extra = v.as_str().is_some_and(|s| EXTRA_ENUM_VALUES.contains(&s));
            if !values.contains(v) && !extra {
                out.push(format!(
                    "{at}: {v} is not one of {}",
                    Value::Array(values.clone())
                ));
            }
        }
        let Some(ty) = schema.get("type").and_then(Value::as_str) else {
            return;
        };
        match ty {
            "object" => self.check_def("", schema, v, at, out),
            "array" => match v.as_array() {
                Some(items) => {
                    if let Some(item) = schema.get("items") {
                        for (i, x) in items.iter().enumerate() {
                            self.check(item, x, &format!("{at}[{i}]"), out);
                        }
                    }
                }
                None => out.push(format!("{at}: expected an array, got {v}")),
            },
            "string" => match v.as_str() {
                Some(s) => match schema.get("format").and_then(Value::as_str) {
                    Some("uuid") if uuid::Uuid::parse_str(s).is_err() => {
                        out.push(format!("{at}: {s:?} is not a uuid"))
                    }
                    Some("date-time") if chrono::DateTime::parse_from_rfc3339(s).is_err() => {
                        out.push(format!("{at}: {s:?} is not an RFC 3339 date-time"))
                    }
                    _ => {}
                },
                None => out.push(format!("{at}: expected a string, got {v}")),
            },
            "integer" if !(v.is_i64() || v.is_u64()) => {
                out.push(format!("{at}: expected an integer, got {v}"))
            }
            "number" if !v.is_number() => out.push(format!("{at}: expected a number, got {v}")),
            "boolean" if !v.is_boolean() => out.push(format!("{at}: expected a boolean, got {v}")),
            _ => {}
        }
    }

    fn check_def(&self, name: &str, def: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
        if def.get("type").and_then(Value::as_str) != Some("object") {
            self.check(def, v, at, out);
            return;
        }
        let Some(obj) = v.as_object() else {
            out.push(format!("{at}: expected an object ({name}), got {v}"));
            return;
        };
        if let Some(extra) = def.get("additionalProperties") {
            for (k, x) in obj {
                self.check(extra, x, &format!("{at}.{k}"), out);
            }
        }
        let required: Vec<&str> = def
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(props) = def.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (key, schema) in props {
            let key = wire_key(name, key);
            let here = format!("{at}.{key}");
            match obj.get(key) {
                None if OMITEMPTY.contains(&(name, key))
                    || OMITEMPTY_DEFINITIONS.contains(&name) => {}
                None => out.push(format!("{here}: missing ({name})")),
                // Go sends null for nil pointers and maps; never for a list we promise as [].
                Some(Value::Null) => {
                    let is_array = schema.get("type").and_then(Value::as_str) == Some("array");
                    if required.contains(&key) || is_array {
                        out.push(format!("{here}: null where {name} needs a value"));
                    }
                }
                Some(x) => self.check(schema, x, &here, out),
            }
        }
    }
}

/// Definitions of upstream types that neither spec has (an override above names them), written
/// from `codersdk`'s Go types.
fn extra_definitions() -> Value {
    serde_json::json!({
        "codersdk.UserRoles": {
            "type": "object",
            "required": ["roles", "organization_roles"],
            "properties": {
                "roles": {"type": "array", "items": {"type": "string"}},
                "organization_roles": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_operations_preferring_literals() {
        let s = spec();
        let (_, p) = s.operation("GET", "/api/v2/users/roles").unwrap();
        assert_eq!(p, "/users/roles");
        let (_, p) = s.operation("GET", "/api/v2/users/me?x=1").unwrap();
        assert_eq!(p, "/users/{user}");
    }

    #[test]
    fn catches_missing_and_mistyped_fields() {
        let s = spec();
        let body = serde_json::json!({"id": "not-a-uuid", "name": 3});
        let problems = s.check_response(
            "GET",
            "/api/v2/organizations/coder",
            200,
            "application/json",
            body.to_string().as_bytes(),
        );
        assert!(
            problems.iter().any(|p| p.contains("not a uuid")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("expected a string")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("$.is_default: missing")),
            "{problems:?}"
        );
    }

    #[test]
    fn error_bodies_must_be_responses() {
        let s = spec();
        assert!(!s
            .check_response(
                "GET",
                "/api/v2/x",
                404,
                "application/json",
                br#"{"error":"x"}"#
            )
            .is_empty());
        assert!(s
            .check_response(
                "GET",
                "/api/v2/x",
                404,
                "application/json",
                br#"{"message":"x"}"#
            )
            .is_empty());
    }
}
