//! The server's own OpenAPI document (`/api/v2/openapi.json`, checked in as
//! `openapi/openapi.json`): it is what the server serves, it lists exactly the operations the
//! server routes, and every documented response agrees with the API reference's definition.

use std::collections::{BTreeSet, HashSet};

use reqwest::Method;
use serde_json::Value;

use crate::conformance::is_routed;
use crate::harness::{schema, TestServer};

fn checked_in() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("openapi/openapi.json is JSON")
}

/// `(METHOD, path)` of every operation in an OpenAPI/Swagger `paths` object.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

/// A path with its parameter names blanked, so `{id}` and `{workspace}` compare equal.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn served_document_is_the_checked_in_one() {
    let srv = TestServer::start().await;
    // Anyone may read it: no token.
    let raw = srv
        .client
        .send(Method::GET, "/api/v2/openapi.json", None, &[])
        .await
        .unwrap();
    assert_eq!(raw.status, 200);
    let content_type = raw
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("application/json"));
    let served: Value = serde_json::from_slice(&raw.body).expect("the document is JSON");
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(
        served,
        checked_in(),
        "the served document is not the checked-in one"
    );
    srv.stop().await;
}

#[tokio::test]
async fn document_lists_exactly_the_routed_operations() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id.to_string();
    let doc = checked_in();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p)| (m, shape(&p)))
        .collect();

    // Every documented operation is routed.
    let mut unrouted = Vec::new();
    for (method, path) in operations(&doc) {
        // Logging out would end the session the rest of the probes use.
        if path == "/users/logout" {
            continue;
        }
        if !is_routed(&owner, &method, &path, &org).await {
            unrouted.push(format!("{method} {path}"));
        }
    }
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );

    // Every reference operation the server routes is documented. (The conformance report
    // probes the reference; an operation it finds routed must be in our document.)
    let mut undocumented = Vec::new();
    for (method, path) in schema::spec().subset_operations() {
        if documented.contains(&(method.clone(), shape(&path))) || path == "/users/logout" {
            continue;
        }
        if is_routed(&owner, &method, &path, &org).await {
            undocumented.push(format!("{method} {path}"));
        }
    }
    assert!(
        undocumented.is_empty(),
        "routed but missing from the OpenAPI document: {undocumented:?}"
    );
    srv.stop().await;
}

/// Compares our documented schemas (OpenAPI 3.1, `#/components/schemas`) with the reference's
/// definitions (Swagger 2.0, `#/definitions`), recursively.
struct Compare<'a> {
    ours: &'a Value,
    seen: HashSet<(String, String)>,
    problems: Vec<String>,
}

impl<'a> Compare<'a> {
    /// Follows `$ref`s, drops the `null` alternative of nullable schemas, and merges the
    /// parts of an `allOf` (serde's `flatten`) into one object.
    fn ours_resolved(&self, s: &Value) -> (String, Value) {
        let mut s = s;
        let mut name = String::new();
        loop {
            if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                name = r.trim_start_matches("#/components/schemas/").to_string();
                s = &self.ours["components"]["schemas"][name.as_str()];
                continue;
            }
            if let Some(alts) = s.get("oneOf").or(s.get("anyOf")).and_then(Value::as_array) {
                let non_null: Vec<&Value> = alts.iter().filter(|a| a["type"] != "null").collect();
                if non_null.len() == 1 {
                    s = non_null[0];
                    continue;
                }
            }
            break;
        }
        let Some(parts) = s.get("allOf").and_then(Value::as_array) else {
            return (name, s.clone());
        };
        let mut props = serde_json::Map::new();
        for part in parts {
            let (_, part) = self.ours_resolved(part);
            if let Some(p) = part.get("properties").and_then(Value::as_object) {
                props.extend(p.clone());
            }
        }
        (
            name,
            serde_json::json!({"type": "object", "properties": props}),
        )
    }

    fn compare(&mut self, reference: &Value, ours: &Value, at: &str) {
        let spec = schema::spec();
        let mut r = reference;
        let mut r_name = String::new();
        while let Some(name) = r.get("$ref").and_then(Value::as_str) {
            r_name = name.trim_start_matches("#/definitions/").to_string();
            match spec.resolve(name) {
                Some(def) => r = def,
                None => {
                    self.problems
                        .push(format!("{at}: reference names unknown {name}"));
                    return;
                }
            }
        }
        let (o_name, o) = self.ours_resolved(ours);
        let o = &o;
        // A field we always send as null, or a map we always send empty, agrees with any
        // reference type (it is documented as exactly that).
        if o["type"] == "null" || o.get("maxProperties") == Some(&Value::from(0)) {
            return;
        }
        if !r_name.is_empty() && !self.seen.insert((r_name.clone(), o_name.clone())) {
            return;
        }
        let o_types: Vec<&str> = match &o["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect(),
            _ => Vec::new(),
        };
        let r_type = r.get("type").and_then(Value::as_str);
        match r_type {
            // The reference leaves it open: anything we document agrees.
            None => {}
            Some("object") => {
                if !o_types.contains(&"object") {
                    self.problems.push(format!(
                        "{at}: reference {r_name} is an object, we document {o}"
                    ));
                    return;
                }
                let r_props = r.get("properties").and_then(Value::as_object);
                let o_props = o.get("properties").and_then(Value::as_object);
                if let Some(r_props) = r_props {
                    let Some(o_props) = o_props else {
                        self.problems.push(format!(
                            "{at}: reference {r_name} has properties, our {o_name} has none"
                        ));
                        return;
                    };
                    for (key, r_prop) in r_props {
                        let key = schema::wire_key(&r_name, key);
                        match o_props.get(key) {
                            Some(o_prop) => self.compare(r_prop, o_prop, &format!("{at}.{key}")),
                            None => self.problems.push(format!(
                                "{at}.{key}: in the reference's {r_name}, missing from our {o_name}"
                            )),
                        }
                    }
                    let wire: Vec<&str> = r_props
                        .keys()
                        .map(|k| schema::wire_key(&r_name, k))
                        .collect();
                    for key in o_props.keys().filter(|k| !wire.contains(&k.as_str())) {
                        self.problems.push(format!(
                            "{at}.{key}: in our {o_name}, not in the reference's {r_name}"
                        ));
                    }
                }
                if let Some(r_extra) = r.get("additionalProperties").filter(|v| v.is_object()) {
                    match o.get("additionalProperties").filter(|v| v.is_object()) {
                        Some(o_extra) => self.compare(r_extra, o_extra, &format!("{at}.*")),
                        None if o_props.is_some() => self.problems.push(format!(
                            "{at}: reference {r_name} is a map, our {o_name} is a struct"
                        )),
                        None => {}
                    }
                }
            }
            Some("array") => {
                if !o_types.contains(&"array") {
                    self.problems
                        .push(format!("{at}: reference is a list, we document {o}"));
                    return;
                }
                if let (Some(ri), Some(oi)) = (r.get("items"), o.get("items")) {
                    // A list we document as always empty agrees with any item type.
                    if o.get("maxItems") != Some(&Value::from(0)) {
                        self.compare(ri, oi, &format!("{at}[]"));
                    }
                }
            }
            Some(t) => {
                let agrees =
                    o_types.contains(&t) || (t == "number" && o_types.contains(&"integer"));
                if !agrees {
                    self.problems
                        .push(format!("{at}: reference type {t}, we document {o}"));
                    return;
                }
                let r_format = r.get("format").and_then(Value::as_str);
                let o_format = o.get("format").and_then(Value::as_str);
                if matches!(r_format, Some("uuid" | "date-time")) && r_format != o_format {
                    self.problems.push(format!(
                        "{at}: reference format {r_format:?}, we document {o_format:?}"
                    ));
                }
            }
        }
    }
}

#[test]
fn documented_responses_agree_with_the_reference() {
    let spec = schema::spec();
    let doc = checked_in();
    let reference: Vec<(String, String)> = spec.subset_operations();
    let mut cmp = Compare {
        ours: &doc,
        seen: HashSet::new(),
        problems: Vec::new(),
    };
    // Streams: the reference documents a JSON 200 where the server streams
    // (text/event-stream) or upgrades to a WebSocket (101).
    const STREAMS: &[(&str, &str)] = &[
        ("GET", "/workspaces/{workspace}/watch"),
        ("GET", "/workspaces/{workspace}/watch-ws"),
    ];
    // Licensed features: this server has no license and answers 403, as unlicensed Coder does.
    const UNLICENSED: &[(&str, &str)] = &[("PUT", "/appearance")];
    // Raw bytes: the reference documents a WorkspaceBuild where Coder sends the provisioner's
    // state as it is (docs/decisions.md).
    const RAW: &[(&str, &str)] = &[("GET", "/workspacebuilds/{workspacebuild}/state")];
    // Created: the reference documents 200 where Coder, and this server, answer 201.
    const CREATED: &[(&str, &str)] = &[
        ("POST", "/organizations/{organization}/templates"),
        (
            "POST",
            "/organizations/{organization}/members/{user}/workspaces",
        ),
        ("POST", "/users/{user}/workspaces"),
        ("POST", "/workspaces/{workspace}/builds"),
    ];
    // Wider than the reference: where Coder answers a type that adds fields to the documented
    // one (its token lists are APIKeyWithOwner: APIKey and the owner's username).
    const WIDER: &[&str] = &["GET /users/{user}/keys/tokens 200[].username:"];
    let mut compared = 0;
    for (method, path) in operations(&doc) {
        if UNLICENSED.contains(&(method.as_str(), path.as_str())) {
            let op = &doc["paths"][path.as_str()][method.to_lowercase()];
            assert!(
                !op["responses"]["403"].is_null(),
                "{method} {path} documents its 403"
            );
            continue;
        }
        if STREAMS.contains(&(method.as_str(), path.as_str())) {
            let op = &doc["paths"][path.as_str()][method.to_lowercase()];
            let streams = !op["responses"]["200"]["content"]["text/event-stream"].is_null()
                || !op["responses"]["101"].is_null();
            assert!(streams, "{method} {path} is documented as a stream");
            continue;
        }
        if RAW.contains(&(method.as_str(), path.as_str())) {
            let op = &doc["paths"][path.as_str()][method.to_lowercase()];
            let raw = &op["responses"]["200"]["content"]["application/json"]["schema"];
            assert_eq!(
                raw,
                &serde_json::json!({}),
                "{method} {path} is documented as any JSON"
            );
            continue;
        }
        let Some((_, ref_path)) = reference
            .iter()
            .find(|(m, p)| *m == method && shape(p) == shape(&path))
        else {
            continue;
        };
        let op = &doc["paths"][path.as_str()][method.to_lowercase()];
        for (status, r_schema) in spec.success_responses(&method, ref_path) {
            let status = if status == 200 && CREATED.contains(&(method.as_str(), path.as_str())) {
                201
            } else {
                status
            };
            let at = format!("{method} {path} {status}");
            let ours = &op["responses"][status.to_string()];
            if ours.is_null() {
                cmp.problems
                    .push(format!("{at}: the reference documents it, we do not"));
                continue;
            }
            let o_schema = ours["content"]["application/json"]["schema"].clone();
            match (r_schema, o_schema.is_null()) {
                (Some(r), false) => {
                    // Each operation is compared afresh: a type seen elsewhere still counts.
                    cmp.seen.clear();
                    cmp.compare(&r, &o_schema, &at);
                    compared += 1;
                }
                (Some(_), true) => cmp.problems.push(format!(
                    "{at}: the reference has a JSON body, we document none"
                )),
                (None, false) => cmp
                    .problems
                    .push(format!("{at}: we document a JSON body, the reference none")),
                (None, true) => {}
            }
        }
    }
    cmp.problems
        .retain(|p| !WIDER.iter().any(|w| p.starts_with(w)));
    println!("openapi: compared {compared} documented responses with the reference");
    assert!(compared > 100, "only {compared} responses were compared");
    assert!(
        cmp.problems.is_empty(),
        "{} documented responses disagree with the reference:\n  {}",
        cmp.problems.len(),
        cmp.problems.join("\n  ")
    );
}
