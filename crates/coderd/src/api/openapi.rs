//! The server's own OpenAPI 3.1 document, generated from the code: every schema is derived
//! (utoipa) from the wire types in `codersdk`, and every operation is declared beside its
//! handler, with its route (`super::routes`), so the document lists exactly what is mounted. The checked-in copy is `openapi/openapi.json`;
//! a test fails when it differs from what this module generates (regenerate it with
//! `CODERD_UPDATE_OPENAPI=1 cargo test -p coderd --lib openapi`).
//!
//! Operation ids, tags and summaries follow Coder's own API reference so that generated
//! clients and docs line up with upstream.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// Name of the security scheme every authenticated operation requires.
pub const SECURITY_SCHEME: &str = "CoderSessionToken";

/// HTTP methods of the routes, in the spelling OpenAPI uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Patch => "patch",
            Method::Delete => "delete",
        }
    }
}

/// The type of a path, query or header parameter.
#[derive(Clone, Copy, Debug)]
pub enum Param {
    Str,
    Uuid,
    Int,
    Bool,
    DateTime,
    /// A comma-separated list (or the parameter repeated).
    StrList,
}

impl Param {
    fn schema(self) -> Value {
        match self {
            Param::Str => json!({"type": "string"}),
            Param::Uuid => json!({"type": "string", "format": "uuid"}),
            Param::Int => json!({"type": "integer"}),
            Param::Bool => json!({"type": "boolean"}),
            Param::DateTime => json!({"type": "string", "format": "date-time"}),
            Param::StrList => json!({"type": "array", "items": {"type": "string"}}),
        }
    }
}

/// The document under construction: operations by path and method, and component schemas.
#[derive(Default)]
pub struct Doc {
    paths: BTreeMap<String, Map<String, Value>>,
    schemas: BTreeMap<String, Value>,
}

impl Doc {
    /// Adds `T` (and every schema it refers to) to the components; returns a reference to it.
    pub fn schema_ref<T: ToSchema>(&mut self) -> Value {
        let name = T::name().to_string();
        if !self.schemas.contains_key(&name) {
            let schema = serde_json::to_value(T::schema()).expect("schemas serialize");
            self.schemas.insert(name.clone(), schema);
            let mut deps = Vec::new();
            T::schemas(&mut deps);
            for (dep, schema) in deps {
                self.schemas
                    .entry(dep)
                    .or_insert_with(|| serde_json::to_value(schema).expect("schemas serialize"));
            }
        }
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    /// Starts an operation. Authenticated by default; every operation may answer a 4xx with a
    /// `Response` body.
    fn op(&mut self, method: Method, path: &str, tag: &str, id: &str, summary: &str) -> Op<'_> {
        let error = self.schema_ref::<codersdk::Response>();
        let mut operation = json!({
            "tags": [tag],
            "operationId": id,
            "summary": summary,
            "security": [{SECURITY_SCHEME: []}],
            "parameters": [],
            "responses": {
                "4XX": {
                    "description": "The request was malformed, unauthorized, forbidden, \
                                    for something missing, or in conflict.",
                    "content": {"application/json": {"schema": error}},
                },
            },
        });
        for name in path_parameters(path) {
            let (kind, description) = path_parameter(name);
            operation["parameters"]
                .as_array_mut()
                .expect("parameters is a list")
                .push(json!({
                    "name": name,
                    "in": "path",
                    "required": true,
                    "description": description,
                    "schema": kind.schema(),
                }));
        }
        let item = self.paths.entry(path.to_string()).or_default();
        assert!(
            item.insert(method.key().to_string(), operation).is_none(),
            "{} {path} is in the route table twice",
            method.key()
        );
        Op {
            doc: self,
            path: path.to_string(),
            method,
        }
    }
}

/// Adds `T`'s schema to a document and refers to it.
type SchemaOf = fn(&mut Doc) -> Value;

/// One piece of an operation's description, applied in order.
enum Step {
    Param(&'static str, &'static str, Param, &'static str),
    Public,
    Body(SchemaOf),
    BinaryBody(&'static [&'static str]),
    Ok(u16, SchemaOf),
    List(u16, SchemaOf),
    Json(u16, Value),
    Content(u16, &'static str, Value),
    Binary(u16, &'static [&'static str]),
    Empty(u16),
}

/// A route's OpenAPI operation, declared beside its handler (see `super::routes`). Every
/// operation is authenticated and may answer a 4xx with a `Response` body unless it says
/// otherwise; path parameters are described from their names.
pub struct Operation {
    tag: &'static str,
    id: &'static str,
    summary: &'static str,
    steps: Vec<Step>,
}

impl Operation {
    pub fn new(tag: &'static str, id: &'static str, summary: &'static str) -> Self {
        Operation {
            tag,
            id,
            summary,
            steps: Vec::new(),
        }
    }

    fn step(&mut self, step: Step) -> &mut Self {
        self.steps.push(step);
        self
    }

    /// A parameter in `location` (`query`, `header`).
    pub fn param(
        &mut self,
        location: &'static str,
        name: &'static str,
        kind: Param,
        description: &'static str,
    ) -> &mut Self {
        self.step(Step::Param(location, name, kind, description))
    }

    pub fn query(
        &mut self,
        name: &'static str,
        kind: Param,
        description: &'static str,
    ) -> &mut Self {
        self.param("query", name, kind, description)
    }

    /// Anyone may call it, signed in or not.
    pub fn public(&mut self) -> &mut Self {
        self.step(Step::Public)
    }

    /// A JSON request body of type `T`.
    pub fn body<T: ToSchema>(&mut self) -> &mut Self {
        self.step(Step::Body(Doc::schema_ref::<T>))
    }

    /// A request body of raw bytes in one of the given content types.
    pub fn binary_body(&mut self, content_types: &'static [&'static str]) -> &mut Self {
        self.step(Step::BinaryBody(content_types))
    }

    /// A JSON answer of type `T`.
    pub fn ok<T: ToSchema>(&mut self, status: u16) -> &mut Self {
        self.step(Step::Ok(status, Doc::schema_ref::<T>))
    }

    /// A JSON list of `T`.
    pub fn list<T: ToSchema>(&mut self, status: u16) -> &mut Self {
        self.step(Step::List(status, Doc::schema_ref::<T>))
    }

    /// A JSON answer described by a schema written here (maps and lists of plain values).
    pub fn json(&mut self, status: u16, schema: Value) -> &mut Self {
        self.step(Step::Json(status, schema))
    }

    /// An answer in another content type.
    pub fn content(&mut self, status: u16, content_type: &'static str, schema: Value) -> &mut Self {
        self.step(Step::Content(status, content_type, schema))
    }

    /// Raw bytes in one of the given content types.
    pub fn binary(&mut self, status: u16, content_types: &'static [&'static str]) -> &mut Self {
        self.step(Step::Binary(status, content_types))
    }

    /// An answer without a body.
    pub fn empty(&mut self, status: u16) -> &mut Self {
        self.step(Step::Empty(status))
    }

    /// A job's logs, as every job-backed logs endpoint answers them (`api::job_endpoints`):
    /// after a log id, as a JSON list or followed over a WebSocket.
    pub fn job_logs(&mut self) -> &mut Self {
        self.query("after", Param::Int, "After log id")
            .query(
                "follow",
                Param::Bool,
                "Follow log stream (a WebSocket of log batches)",
            )
            .list::<codersdk::ProvisionerJobLog>(200)
            .empty(101)
    }

    /// The filters of provisioner job and daemon lists.
    pub fn job_filters(&mut self) -> &mut Self {
        self.query("limit", Param::Int, "Page limit")
            .query("ids", Param::StrList, "Filter results by job IDs")
            .query("status", Param::Str, "Filter results by status")
            .query(
                "tags",
                Param::Str,
                "Provisioner tags to filter by (JSON of the form {'tag1':'value1','tag2':'value2'})",
            )
    }

    /// Adds this operation, at `method` and `path`, to `d`.
    fn describe(&self, d: &mut Doc, method: Method, path: &str) {
        let mut op = d.op(method, path, self.tag, self.id, self.summary);
        for step in &self.steps {
            op = match step {
                Step::Param(location, name, kind, description) => {
                    op.param(location, name, *kind, description)
                }
                Step::Public => op.public(),
                Step::Body(schema) => {
                    let schema = schema(op.doc);
                    op.body(schema)
                }
                Step::BinaryBody(types) => op.binary_body(types),
                Step::Ok(status, schema) => {
                    let schema = schema(op.doc);
                    op.json(*status, schema)
                }
                Step::List(status, schema) => {
                    let schema = schema(op.doc);
                    op.json(*status, json!({"type": "array", "items": schema}))
                }
                Step::Json(status, schema) => op.json(*status, schema.clone()),
                Step::Content(status, ct, schema) => op.content(*status, ct, schema.clone()),
                Step::Binary(status, types) => op.binary(*status, types),
                Step::Empty(status) => op.empty(*status),
            };
        }
    }
}

/// One operation being described.
struct Op<'a> {
    doc: &'a mut Doc,
    path: String,
    method: Method,
}

impl Op<'_> {
    fn get(&mut self) -> &mut Value {
        self.doc
            .paths
            .get_mut(&self.path)
            .and_then(|item| item.get_mut(self.method.key()))
            .expect("the operation was inserted by Doc::op")
    }

    fn param(mut self, location: &str, name: &str, kind: Param, description: &str) -> Self {
        let mut p = json!({
            "name": name,
            "in": location,
            "description": description,
            "schema": kind.schema(),
        });
        if matches!(kind, Param::StrList) {
            p["style"] = json!("form");
            p["explode"] = json!(false);
        }
        self.get()["parameters"]
            .as_array_mut()
            .expect("parameters is a list")
            .push(p);
        self
    }

    /// Anyone may call it, signed in or not.
    fn public(mut self) -> Self {
        self.get()["security"] = json!([]);
        self
    }

    /// A JSON request body of the given schema.
    fn body(mut self, schema: Value) -> Self {
        self.get()["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": schema}},
        });
        self
    }

    /// A request body of raw bytes in one of the given content types.
    fn binary_body(mut self, content_types: &[&str]) -> Self {
        self.get()["requestBody"] = json!({
            "required": true,
            "content": binary_content(content_types),
        });
        self
    }

    fn response(mut self, status: u16, description: &str, content: Option<Value>) -> Self {
        let mut r = json!({ "description": description });
        if let Some(c) = content {
            r["content"] = c;
        }
        self.get()["responses"][status.to_string()] = r;
        self
    }

    /// A JSON body described by a schema written here (maps and lists of plain values).
    fn json(self, status: u16, schema: Value) -> Self {
        self.response(
            status,
            description(status),
            Some(json!({"application/json": {"schema": schema}})),
        )
    }

    /// A body in another content type.
    fn content(self, status: u16, content_type: &str, schema: Value) -> Self {
        self.response(
            status,
            description(status),
            Some(json!({ content_type: {"schema": schema} })),
        )
    }

    /// Raw bytes in one of the given content types.
    fn binary(self, status: u16, content_types: &[&str]) -> Self {
        self.response(
            status,
            description(status),
            Some(binary_content(content_types)),
        )
    }

    /// No body.
    fn empty(self, status: u16) -> Self {
        self.response(status, description(status), None)
    }
}

/// The `{name}` segments of a path.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// Every path parameter the API uses, one meaning each: what the handlers accept.
fn path_parameter(name: &str) -> (Param, &'static str) {
    match name {
        "user" => (Param::Str, "User ID, username, or me"),
        "organization" => (Param::Str, "Organization ID or name"),
        "organizationname" => (Param::Str, "Organization name"),
        "template" => (Param::Uuid, "Template ID"),
        "templatename" => (Param::Str, "Template name"),
        "templateversion" => (Param::Uuid, "Template version ID"),
        "templateversionname" => (Param::Str, "Template version name"),
        "workspace" => (Param::Uuid, "Workspace ID"),
        "workspacename" => (Param::Str, "Workspace name"),
        "workspacebuild" => (Param::Uuid, "Workspace build ID"),
        "workspaceagent" => (Param::Uuid, "Workspace agent ID"),
        "buildnumber" => (Param::Int, "Build number"),
        "group" => (Param::Uuid, "Group ID"),
        "groupName" => (Param::Str, "Group name"),
        "job" | "jobID" => (Param::Uuid, "Job ID"),
        "fileID" => (Param::Uuid, "File ID"),
        "keyid" => (Param::Str, "Key ID"),
        "keyname" => (Param::Str, "Key name"),
        other => panic!("path parameter {{{other}}} has no entry in path_parameter"),
    }
}

fn binary_content(content_types: &[&str]) -> Value {
    let content: Map<String, Value> = content_types
        .iter()
        .map(|ct| {
            (
                ct.to_string(),
                json!({"schema": {"type": "string", "contentMediaType": ct}}),
            )
        })
        .collect();
    Value::Object(content)
}

fn description(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        _ => "Response",
    }
}

/// Builds the document of `operations` (each route's method, path and operation).
pub fn document<'a>(
    operations: impl IntoIterator<Item = (Method, &'a str, &'a Operation)>,
) -> Value {
    let mut d = Doc::default();
    for (method, path, operation) in operations {
        operation.describe(&mut d, method, path);
    }
    let paths: Map<String, Value> = d
        .paths
        .into_iter()
        .map(|(path, item)| (path, Value::Object(item)))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "coderd-rs API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Coder's /api/v2, as served by coderd-rs. Authenticate with a session \
                            token in the Coder-Session-Token header (POST /users/login returns \
                            one).",
            "license": {"name": "AGPL-3.0-only", "identifier": "AGPL-3.0-only"},
        },
        "servers": [{"url": "/api/v2"}],
        "paths": paths,
        "components": {
            "schemas": d.schemas,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": codersdk::SESSION_TOKEN_HEADER,
                },
            },
        },
    })
}

/// The document as pretty JSON with a final newline, as checked in under `openapi/`.
pub fn document_json<'a>(
    operations: impl IntoIterator<Item = (Method, &'a str, &'a Operation)>,
) -> String {
    let mut s =
        serde_json::to_string_pretty(&document(operations)).expect("the document serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked_in_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json")
    }

    #[test]
    fn checked_in_document_is_current() {
        let generated = crate::api::openapi_json();
        let path = checked_in_path();
        if std::env::var_os("CODERD_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("writing openapi/openapi.json");
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "openapi/openapi.json differs from the document the code generates; regenerate it \
             with `CODERD_UPDATE_OPENAPI=1 cargo test -p coderd --lib openapi` and commit it"
        );
    }

    /// Every `$ref` names a schema the document defines, and every path parameter is declared.
    #[test]
    fn document_is_self_consistent() {
        let doc: Value = serde_json::from_str(&crate::api::openapi_json()).unwrap();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref to {name}");
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                for seg in path.split('/').filter(|s| s.starts_with('{')) {
                    let name = seg.trim_matches(|c| c == '{' || c == '}');
                    assert!(
                        declared.contains(&name),
                        "{method} {path}: path parameter {name} is not declared"
                    );
                }
                let mut names: Vec<(&str, &str)> = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p["in"].as_str().unwrap(), p["name"].as_str().unwrap()))
                    .collect();
                let all = names.len();
                names.sort();
                names.dedup();
                assert_eq!(
                    names.len(),
                    all,
                    "{method} {path}: a parameter is declared twice"
                );
                assert!(
                    op["operationId"].is_string(),
                    "{method} {path}: no operationId"
                );
            }
        }
    }
}
