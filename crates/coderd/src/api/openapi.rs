//! The server's own OpenAPI 3.1 document, generated from the code: every schema is derived
//! (utoipa) from the wire types in `codersdk`, and every operation comes from the route table
//! below, one entry per route the router mounts. The checked-in copy is `openapi/openapi.json`;
//! a test fails when it differs from what this module generates (regenerate it with
//! `CODERD_UPDATE_OPENAPI=1 cargo test -p coderd --lib openapi`).
//!
//! Operation ids, tags and summaries follow Coder's own API reference so that generated
//! clients and docs line up with upstream.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// Name of the security scheme every authenticated operation requires.
pub const SECURITY_SCHEME: &str = "CoderSessionToken";

/// HTTP methods of the route table, in the spelling OpenAPI uses.
#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

use Method::{Delete as DELETE, Get as GET, Patch as PATCH, Post as POST, Put as PUT};

impl Method {
    fn key(self) -> &'static str {
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
#[derive(Clone, Copy)]
enum Param {
    Str,
    Uuid,
    Int,
    Bool,
    DateTime,
    /// A comma-separated list (or the parameter repeated).
    StrList,
}

use Param::{
    Bool as BOOL, DateTime as DATETIME, Int as INT, Str as STR, StrList as STR_LIST, Uuid as UUID,
};

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
struct Doc {
    paths: BTreeMap<String, Map<String, Value>>,
    schemas: BTreeMap<String, Value>,
}

impl Doc {
    /// Adds `T` (and every schema it refers to) to the components; returns a reference to it.
    fn schema_ref<T: ToSchema>(&mut self) -> Value {
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

    fn query(self, name: &str, kind: Param, description: &str) -> Self {
        self.param("query", name, kind, description)
    }

    /// Anyone may call it, signed in or not.
    fn public(mut self) -> Self {
        self.get()["security"] = json!([]);
        self
    }

    /// A JSON request body of type `T`.
    fn body<T: ToSchema>(mut self) -> Self {
        let schema = self.doc.schema_ref::<T>();
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

    /// A JSON body of type `T`.
    fn ok<T: ToSchema>(self, status: u16) -> Self {
        let schema = self.doc.schema_ref::<T>();
        self.response(
            status,
            description(status),
            Some(json!({"application/json": {"schema": schema}})),
        )
    }

    /// A JSON list of `T`.
    fn list<T: ToSchema>(self, status: u16) -> Self {
        let schema = self.doc.schema_ref::<T>();
        self.response(
            status,
            description(status),
            Some(json!({"application/json": {"schema": {"type": "array", "items": schema}}})),
        )
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
        "user" => (STR, "User ID, username, or me"),
        "organization" => (STR, "Organization ID or name"),
        "organizationname" => (STR, "Organization name"),
        "template" => (UUID, "Template ID"),
        "templatename" => (STR, "Template name"),
        "templateversion" => (UUID, "Template version ID"),
        "templateversionname" => (STR, "Template version name"),
        "workspace" => (UUID, "Workspace ID"),
        "workspacename" => (STR, "Workspace name"),
        "workspacebuild" => (UUID, "Workspace build ID"),
        "workspaceagent" => (UUID, "Workspace agent ID"),
        "buildnumber" => (INT, "Build number"),
        "group" => (UUID, "Group ID"),
        "groupName" => (STR, "Group name"),
        "job" | "jobID" => (UUID, "Job ID"),
        "fileID" => (UUID, "File ID"),
        "keyid" => (STR, "Key ID"),
        "keyname" => (STR, "Key name"),
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

/// Builds the document.
pub fn document() -> Value {
    let mut d = Doc::default();
    operations(&mut d);
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
pub fn document_json() -> String {
    let mut s = serde_json::to_string_pretty(&document()).expect("the document serializes");
    s.push('\n');
    s
}

/// `GET /api/v2/openapi.json`.
pub async fn serve() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(document_json).clone();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The route table: one entry per operation the router mounts under `/api/v2`.
fn operations(d: &mut Doc) {
    use codersdk::*;
    d.op(
        GET,
        "/templateversions/{templateversion}/dynamic-parameters",
        "Templates",
        "open-dynamic-parameters-websocket-by-template-version",
        "Open dynamic parameters WebSocket by template version",
    )
    .empty(101);
    d.op(
        POST,
        "/templateversions/{templateversion}/dynamic-parameters/evaluate",
        "Templates",
        "evaluate-dynamic-parameters-for-template-version",
        "Evaluate dynamic parameters for template version",
    )
    .body::<DynamicParametersRequest>()
    .ok::<DynamicParametersResponse>(200);
    d.op(
        PUT,
        "/appearance",
        "Enterprise",
        "update-appearance",
        "Update appearance",
    )
    .body::<UpdateAppearanceConfig>()
    .json(403, json!({"$ref": "#/components/schemas/Response"}));
    d.op(
        GET,
        "/users/{user}/gitsshkey",
        "Users",
        "get-user-git-ssh-key",
        "Get user Git SSH key",
    )
    .ok::<GitSshKey>(200);
    d.op(
        PUT,
        "/users/{user}/gitsshkey",
        "Users",
        "regenerate-user-ssh-key",
        "Regenerate user SSH key",
    )
    .ok::<GitSshKey>(200);
    d.op(
        GET,
        "/openapi.json",
        "General",
        "get-openapi-document",
        "This OpenAPI document",
    )
    .public()
    .json(200, json!({"type": "object"}));
    d.op(
        POST,
        "/users/{user}/keys",
        "Users",
        "create-new-session-key",
        "Create new session key",
    )
    .ok::<GenerateApiKeyResponse>(201);
    d.op(
        GET,
        "/users/{user}/keys/tokens",
        "Users",
        "get-user-tokens",
        "Get user tokens",
    )
    .list::<ApiKeyWithOwner>(200);
    d.op(
        POST,
        "/users/{user}/keys/tokens",
        "Users",
        "create-token-api-key",
        "Create token API key",
    )
    .body::<CreateTokenRequest>()
    .ok::<GenerateApiKeyResponse>(201);
    d.op(
        GET,
        "/users/{user}/keys/tokens/tokenconfig",
        "General",
        "get-token-config",
        "Get token config",
    )
    .ok::<TokenConfig>(200);
    d.op(
        GET,
        "/users/{user}/keys/tokens/{keyname}",
        "Users",
        "get-api-key-by-token-name",
        "Get API key by token name",
    )
    .ok::<ApiKey>(200);
    d.op(
        GET,
        "/users/{user}/keys/{keyid}",
        "Users",
        "get-api-key-by-id",
        "Get API key by ID",
    )
    .ok::<ApiKey>(200);
    d.op(
        DELETE,
        "/users/{user}/keys/{keyid}",
        "Users",
        "delete-api-key",
        "Delete API key",
    )
    .empty(204);
    d.op(
        GET,
        "/workspaces/{workspace}/builds",
        "Builds",
        "get-workspace-builds-by-workspace-id",
        "Get workspace builds by workspace ID",
    )
    .query("after_id", UUID, "After ID")
    .query("limit", INT, "Page limit")
    .query("offset", INT, "Page offset")
    .query("since", DATETIME, "Since timestamp")
    .list::<WorkspaceBuild>(200);
    d.op(
        POST,
        "/workspaces/{workspace}/builds",
        "Builds",
        "create-workspace-build",
        "Create workspace build",
    )
    .body::<CreateWorkspaceBuildRequest>()
    .ok::<WorkspaceBuild>(201);
    d.op(
        GET,
        "/workspacebuilds/{workspacebuild}",
        "Builds",
        "get-workspace-build",
        "Get workspace build",
    )
    .ok::<WorkspaceBuild>(200);
    d.op(
        GET,
        "/users/{user}/workspace/{workspacename}/builds/{buildnumber}",
        "Builds",
        "get-workspace-build-by-user-workspace-name-and-build-number",
        "Get workspace build by user, workspace name, and build number",
    )
    .ok::<WorkspaceBuild>(200);
    d.op(PATCH, "/workspacebuilds/{workspacebuild}/cancel", "Builds", "cancel-workspace-build", "Cancel workspace build")
        .query("expect_status", STR, "Expected status of the job. If expect_status is supplied, the request will be rejected with 412 Precondition Failed if the job doesn't match the state when performing the cancellation.")
        .ok::<Response>(200);
    d.op(
        GET,
        "/workspacebuilds/{workspacebuild}/logs",
        "Builds",
        "get-workspace-build-logs",
        "Get workspace build logs",
    )
    .query("before", INT, "Before log id")
    .query("after", INT, "After log id")
    .query(
        "follow",
        BOOL,
        "Follow log stream (a WebSocket of log batches)",
    )
    .list::<ProvisionerJobLog>(200)
    .empty(101);
    d.op(
        GET,
        "/workspacebuilds/{workspacebuild}/parameters",
        "Builds",
        "get-build-parameters-for-workspace-build",
        "Get build parameters for workspace build",
    )
    .list::<WorkspaceBuildParameter>(200);
    d.op(
        GET,
        "/workspacebuilds/{workspacebuild}/state",
        "Builds",
        "get-provisioner-state-for-workspace-build",
        "Get provisioner state for workspace build",
    )
    // The provisioner's raw state, labelled JSON as Coder labels it (docs/decisions.md).
    .json(200, json!({}));
    d.op(
        PUT,
        "/workspacebuilds/{workspacebuild}/state",
        "Builds",
        "update-workspace-build-state",
        "Update workspace build state",
    )
    .body::<UpdateWorkspaceBuildStateRequest>()
    .empty(204);
    d.op(
        GET,
        "/workspacebuilds/{workspacebuild}/timings",
        "Builds",
        "get-workspace-build-timings-by-id",
        "Get workspace build timings by ID",
    )
    .ok::<WorkspaceBuildTimings>(200);
    d.op(
        GET,
        "/workspacebuilds/{workspacebuild}/resources",
        "Builds",
        "removed-get-workspace-resources-for-workspace-build",
        "Removed: Get workspace resources for workspace build",
    )
    .list::<WorkspaceResource>(200);
    d.op(POST, "/files", "Files", "upload-file", "Upload file")
        .binary_body(&["application/x-tar", "application/zip"])
        .ok::<UploadResponse>(200)
        .ok::<UploadResponse>(201);
    d.op(
        GET,
        "/files/{fileID}",
        "Files",
        "get-file-by-id",
        "Get file by ID",
    )
    .binary(200, &["application/x-tar", "application/zip"]);
    d.op(GET, "/", "General", "api-root-handler", "API root handler")
        .public()
        .ok::<Response>(200);
    d.op(GET, "/buildinfo", "General", "build-info", "Build info")
        .public()
        .ok::<BuildInfoResponse>(200);
    d.op(
        GET,
        "/entitlements",
        "Enterprise",
        "get-entitlements",
        "Get entitlements",
    )
    .ok::<Entitlements>(200);
    d.op(
        GET,
        "/experiments",
        "General",
        "get-enabled-experiments",
        "Get enabled experiments",
    )
    .json(200, json!({"type": "array", "items": {"type": "string"}}));
    d.op(
        GET,
        "/experiments/available",
        "General",
        "get-safe-experiments",
        "Get safe experiments",
    )
    .ok::<codersdk::AvailableExperiments>(200);
    d.op(
        GET,
        "/deployment/ssh",
        "General",
        "ssh-config",
        "SSH Config",
    )
    .ok::<codersdk::SshConfigResponse>(200);
    d.op(
        GET,
        "/deployment/config",
        "General",
        "get-deployment-config",
        "Get deployment config",
    )
    // codersdk.DeploymentConfig: upstream's DeploymentValues and its option list.
    .json(
        200,
        json!({"type": "object", "properties": {
            "config": {"type": "object"},
            "options": {"type": "array", "items": {"type": "object"}}
        }}),
    );
    d.op(
        GET,
        "/regions",
        "WorkspaceProxies",
        "get-site-wide-regions-for-workspace-connections",
        "Get site-wide regions for workspace connections",
    )
    .ok::<codersdk::RegionsResponse>(200);
    d.op(
        GET,
        "/updatecheck",
        "General",
        "update-check",
        "Update check",
    )
    .public()
    .ok::<UpdateCheckResponse>(200);
    d.op(
        GET,
        "/appearance",
        "Enterprise",
        "get-appearance",
        "Get appearance",
    )
    .ok::<AppearanceConfig>(200);
    d.op(
        POST,
        "/users/validate-password",
        "Authorization",
        "validate-user-password",
        "Validate user password",
    )
    .body::<ValidateUserPasswordRequest>()
    .ok::<ValidateUserPasswordResponse>(200);
    d.op(
        POST,
        "/authcheck",
        "Authorization",
        "check-authorization",
        "Check authorization",
    )
    .body::<AuthorizationRequest>()
    .json(
        200,
        json!({"type": "object", "additionalProperties": {"type": "boolean"}}),
    );
    d.op(
        GET,
        "/organizations/{organization}/groups",
        "Enterprise",
        "get-groups-by-organization",
        "Get groups by organization",
    )
    .list::<Group>(200);
    d.op(
        POST,
        "/organizations/{organization}/groups",
        "Enterprise",
        "create-group-for-organization",
        "Create group for organization",
    )
    .body::<CreateGroupRequest>()
    .ok::<Group>(201);
    d.op(
        GET,
        "/organizations/{organization}/groups/{groupName}",
        "Enterprise",
        "get-group-by-organization-and-group-name",
        "Get group by organization and group name",
    )
    .ok::<Group>(200);
    d.op(GET, "/groups", "Enterprise", "get-groups", "Get groups")
        .query("organization", STR, "Organization ID or name")
        .query("has_member", STR, "User ID or name")
        .query("group_ids", STR, "Comma separated list of group IDs")
        .list::<Group>(200);
    d.op(
        GET,
        "/groups/{group}",
        "Enterprise",
        "get-group-by-id",
        "Get group by ID",
    )
    .ok::<Group>(200);
    d.op(
        PATCH,
        "/groups/{group}",
        "Enterprise",
        "update-group-by-name",
        "Update group by name",
    )
    .body::<PatchGroupRequest>()
    .ok::<Group>(200);
    d.op(
        DELETE,
        "/groups/{group}",
        "Enterprise",
        "delete-group-by-name",
        "Delete group by name",
    )
    .ok::<Group>(200);
    d.op(
        GET,
        "/organizations",
        "Organizations",
        "get-organizations",
        "Get organizations",
    )
    .list::<Organization>(200);
    d.op(
        POST,
        "/organizations",
        "Organizations",
        "create-organization",
        "Create organization",
    )
    .body::<CreateOrganizationRequest>()
    .ok::<Organization>(201);
    d.op(
        GET,
        "/organizations/{organization}",
        "Organizations",
        "get-organization-by-id",
        "Get organization by ID",
    )
    .ok::<Organization>(200);
    d.op(
        PATCH,
        "/organizations/{organization}",
        "Organizations",
        "update-organization",
        "Update organization",
    )
    .body::<UpdateOrganizationRequest>()
    .ok::<Organization>(200);
    d.op(
        DELETE,
        "/organizations/{organization}",
        "Organizations",
        "delete-organization",
        "Delete organization",
    )
    .ok::<Response>(200);
    d.op(
        GET,
        "/organizations/{organization}/members",
        "Members",
        "list-organization-members",
        "List organization members",
    )
    .list::<OrganizationMemberWithUserData>(200);
    d.op(
        GET,
        "/organizations/{organization}/members/roles",
        "Members",
        "get-member-roles-by-organization",
        "Get member roles by organization",
    )
    .list::<AssignableRoles>(200);
    d.op(
        GET,
        "/organizations/{organization}/members/{user}",
        "Members",
        "get-organization-member",
        "Get organization member",
    )
    .ok::<OrganizationMemberWithUserData>(200);
    d.op(
        POST,
        "/organizations/{organization}/members/{user}",
        "Members",
        "add-organization-member",
        "Add organization member",
    )
    .ok::<OrganizationMember>(200);
    d.op(
        DELETE,
        "/organizations/{organization}/members/{user}",
        "Members",
        "remove-organization-member",
        "Remove organization member",
    )
    .empty(204);
    d.op(
        PUT,
        "/organizations/{organization}/members/{user}/roles",
        "Members",
        "assign-role-to-organization-member",
        "Assign role to organization member",
    )
    .body::<UpdateRoles>()
    .ok::<OrganizationMember>(200);
    d.op(
        GET,
        "/organizations/{organization}/provisionerdaemons",
        "Provisioning",
        "get-provisioner-daemons",
        "Get provisioner daemons",
    )
    .query("limit", INT, "Page limit")
    .query("ids", STR_LIST, "Filter results by job IDs")
    .query("status", STR, "Filter results by status")
    .query(
        "tags",
        STR,
        "Provisioner tags to filter by (JSON of the form {'tag1':'value1','tag2':'value2'})",
    )
    .list::<ProvisionerDaemon>(200);
    d.op(
        GET,
        "/organizations/{organization}/provisionerjobs",
        "Organizations",
        "get-provisioner-jobs",
        "Get provisioner jobs",
    )
    .query("limit", INT, "Page limit")
    .query("ids", STR_LIST, "Filter results by job IDs")
    .query("status", STR, "Filter results by status")
    .query(
        "tags",
        STR,
        "Provisioner tags to filter by (JSON of the form {'tag1':'value1','tag2':'value2'})",
    )
    .query("initiator", UUID, "Filter results by initiator")
    .list::<ProvisionerJob>(200);
    d.op(
        GET,
        "/organizations/{organization}/provisionerjobs/{job}",
        "Organizations",
        "get-provisioner-job",
        "Get provisioner job",
    )
    .ok::<ProvisionerJob>(200);
    d.op(
        GET,
        "/workspaces/{workspace}/watch",
        "Workspaces",
        "watch-workspace-by-id",
        "Watch workspace by ID",
    )
    .content(200, "text/event-stream", json!({"type": "string"}));
    d.op(
        GET,
        "/workspaces/{workspace}/watch-ws",
        "Workspaces",
        "watch-workspace-by-id-via-websockets",
        "Watch workspace by ID via WebSockets",
    )
    .empty(101);
    d.op(
        GET,
        "/workspaceagents/me/rpc",
        "Agents",
        "workspace-agent-rpc-api",
        "Workspace agent RPC API",
    )
    .query("version", STR, "Agent API version (major.minor)")
    .empty(101);
    d.op(
        GET,
        "/workspaceagents/{workspaceagent}",
        "Agents",
        "get-workspace-agent-by-id",
        "Get workspace agent by ID",
    )
    .ok::<WorkspaceAgent>(200);
    d.op(
        GET,
        "/workspaceagents/{workspaceagent}/logs",
        "Agents",
        "get-logs-by-workspace-agent",
        "Get logs by workspace agent",
    )
    .query("after", INT, "After log id")
    .query(
        "follow",
        BOOL,
        "Follow log stream (a WebSocket of log batches)",
    )
    .list::<WorkspaceAgentLog>(200);
    d.op(
        GET,
        "/workspaceagents/{workspaceagent}/watch-metadata",
        "Agents",
        "watch-for-workspace-agent-metadata-updates",
        "Watch for workspace agent metadata updates",
    )
    .content(200, "text/event-stream", json!({"type": "string"}));
    d.op(
        GET,
        "/workspaceagents/{workspaceagent}/watch-metadata-ws",
        "Agents",
        "watch-for-workspace-agent-metadata-updates-via-websockets",
        "Watch for workspace agent metadata updates via WebSockets",
    )
    .empty(101);
    d.op(
        GET,
        "/workspaceagents/{workspaceagent}/connection",
        "Agents",
        "get-connection-info-for-workspace-agent",
        "Get connection info for workspace agent",
    )
    .content(
        200,
        "application/json",
        json!({"type": "object", "description": "workspacesdk.AgentConnectionInfo: the DERP map (tailscale's JSON), derp_force_websockets, disable_direct_connections, hostname_suffix"}),
    );
    d.op(
        GET,
        "/workspaceagents/connection",
        "Agents",
        "get-connection-info-for-workspace-agent-generic",
        "Get connection info for workspace agent generic",
    )
    .content(
        200,
        "application/json",
        json!({"type": "object", "description": "workspacesdk.AgentConnectionInfo"}),
    );
    d.op(
        GET,
        "/workspaceagents/{workspaceagent}/coordinate",
        "Agents",
        "coordinate-workspace-agent",
        "Coordinate workspace agent",
    )
    .query("version", STR, "Tailnet API version (2.0 to 2.7)")
    .empty(101);
    d.op(
        GET,
        "/workspaceagents/{workspaceagent}/listening-ports",
        "Agents",
        "get-listening-ports-for-workspace-agent",
        "Get listening ports for workspace agent (not supported: 501)",
    )
    .ok::<codersdk::Response>(501);
    d.op(
        GET,
        "/derp-map",
        "Agents",
        "get-derp-map-updates",
        "Get DERP map updates",
    )
    .empty(101);
    d.op(
        GET,
        "/workspaceagents/me/gitsshkey",
        "Agents",
        "get-workspace-agent-git-ssh-key",
        "Get workspace agent Git SSH key",
    )
    .ok::<AgentGitSshKey>(200);
    d.op(
        GET,
        "/workspaceagents/me/reinit",
        "Agents",
        "get-workspace-agent-reinitialization",
        "Get workspace agent reinitialization",
    )
    .content(200, "text/event-stream", json!({"type": "string"}));
    d.op(
        GET,
        "/workspaceagents/me/external-auth",
        "Agents",
        "get-workspace-agent-external-auth",
        "Get workspace agent external auth",
    )
    .ok::<Response>(404);
    d.op(
        PATCH,
        "/workspaceagents/me/app-status",
        "Agents",
        "patch-workspace-agent-app-status",
        "Patch workspace agent app status",
    )
    .ok::<Response>(200);
    d.op(
        GET,
        "/organizations/{organization}/templates",
        "Templates",
        "get-templates-by-organization",
        "Get templates by organization",
    )
    .query(
        "q",
        STR,
        "Search query (exact_name:, name:, deprecated:, author:, ...)",
    )
    .list::<Template>(200);
    d.op(
        POST,
        "/organizations/{organization}/templates",
        "Templates",
        "create-template-by-organization",
        "Create template by organization",
    )
    .body::<CreateTemplateRequest>()
    .ok::<Template>(201);
    d.op(
        GET,
        "/organizations/{organization}/templates/examples",
        "Templates",
        "get-template-examples-by-organization",
        "Get template examples by organization",
    )
    .list::<TemplateExample>(200);
    d.op(
        GET,
        "/organizations/{organization}/templates/{templatename}",
        "Templates",
        "get-templates-by-organization-and-template-name",
        "Get templates by organization and template name",
    )
    .ok::<Template>(200);
    d.op(
        GET,
        "/templates",
        "Templates",
        "get-all-templates",
        "Get all templates",
    )
    .query(
        "q",
        STR,
        "Search query (exact_name:, name:, deprecated:, author:, ...)",
    )
    .list::<Template>(200);
    d.op(
        GET,
        "/templates/examples",
        "Templates",
        "get-template-examples",
        "Get template examples",
    )
    .list::<TemplateExample>(200);
    d.op(
        GET,
        "/templates/{template}",
        "Templates",
        "get-template-settings-by-id",
        "Get template settings by ID",
    )
    .ok::<Template>(200);
    d.op(
        PATCH,
        "/templates/{template}",
        "Templates",
        "update-template-settings-by-id",
        "Update template settings by ID",
    )
    .body::<UpdateTemplateMeta>()
    .ok::<Template>(200)
    // The request changes nothing.
    .empty(304);
    d.op(
        DELETE,
        "/templates/{template}",
        "Templates",
        "delete-template-by-id",
        "Delete template by ID",
    )
    .ok::<Response>(200);
    d.op(
        GET,
        "/templates/{template}/acl",
        "Enterprise",
        "get-template-acls",
        "Get template ACLs",
    )
    .ok::<TemplateAcl>(200);
    d.op(
        PATCH,
        "/templates/{template}/acl",
        "Enterprise",
        "update-template-acl",
        "Update template ACL",
    )
    .body::<UpdateTemplateAcl>()
    .ok::<Response>(200);
    d.op(
        GET,
        "/templates/{template}/acl/available",
        "Enterprise",
        "get-template-available-acl-usersgroups",
        "Get template available acl users/groups",
    )
    .ok::<AclAvailable>(200);
    d.op(
        GET,
        "/templates/{template}/daus",
        "Templates",
        "get-template-daus-by-id",
        "Get template DAUs by ID",
    )
    .ok::<DausResponse>(200);
    d.op(
        GET,
        "/templates/{template}/versions",
        "Templates",
        "list-template-versions-by-template-id",
        "List template versions by template ID",
    )
    .query("after_id", UUID, "After ID")
    .query(
        "include_archived",
        BOOL,
        "Include archived versions in the list",
    )
    .query("limit", INT, "Page limit")
    .query("offset", INT, "Page offset")
    .list::<TemplateVersion>(200);
    d.op(
        PATCH,
        "/templates/{template}/versions",
        "Templates",
        "update-active-template-version-by-template-id",
        "Update active template version by template ID",
    )
    .body::<UpdateActiveTemplateVersion>()
    .ok::<Response>(200);
    d.op(
        POST,
        "/templates/{template}/versions/archive",
        "Templates",
        "archive-template-unused-versions-by-template-id",
        "Archive template unused versions by template id",
    )
    .body::<ArchiveTemplateVersionsRequest>()
    .ok::<Response>(200);
    d.op(
        GET,
        "/templates/{template}/versions/{templateversionname}",
        "Templates",
        "get-template-version-by-template-id-and-name",
        "Get template version by template ID and name",
    )
    .ok::<TemplateVersion>(200);
    d.op(
        POST,
        "/organizations/{organization}/templateversions",
        "Templates",
        "create-template-version-by-organization",
        "Create template version by organization",
    )
    .body::<CreateTemplateVersionRequest>()
    .ok::<TemplateVersion>(201);
    d.op(
        GET,
        "/organizations/{organization}/templates/{templatename}/versions/{templateversionname}",
        "Templates",
        "get-template-version-by-organization-template-and-name",
        "Get template version by organization, template, and name",
    )
    .ok::<TemplateVersion>(200);
    d.op(GET, "/organizations/{organization}/templates/{templatename}/versions/{templateversionname}/previous", "Templates", "get-previous-template-version-by-organization-template-and-name", "Get previous template version by organization, template, and name")
        .ok::<TemplateVersion>(200);
    d.op(
        GET,
        "/templateversions/{templateversion}",
        "Templates",
        "get-template-version-by-id",
        "Get template version by ID",
    )
    .ok::<TemplateVersion>(200);
    d.op(
        PATCH,
        "/templateversions/{templateversion}",
        "Templates",
        "patch-template-version-by-id",
        "Patch template version by ID",
    )
    .body::<PatchTemplateVersionRequest>()
    .ok::<TemplateVersion>(200);
    d.op(
        PATCH,
        "/templateversions/{templateversion}/cancel",
        "Templates",
        "cancel-template-version-by-id",
        "Cancel template version by ID",
    )
    .ok::<Response>(200);
    d.op(
        POST,
        "/templateversions/{templateversion}/archive",
        "Templates",
        "archive-template-version",
        "Archive template version",
    )
    .ok::<Response>(200);
    d.op(
        POST,
        "/templateversions/{templateversion}/unarchive",
        "Templates",
        "unarchive-template-version",
        "Unarchive template version",
    )
    .ok::<Response>(200);
    d.op(
        GET,
        "/templateversions/{templateversion}/logs",
        "Templates",
        "get-logs-by-template-version",
        "Get logs by template version",
    )
    .query("before", INT, "Before log id")
    .query("after", INT, "After log id")
    .query(
        "follow",
        BOOL,
        "Follow log stream (a WebSocket of log batches)",
    )
    .list::<ProvisionerJobLog>(200)
    .empty(101);
    d.op(
        GET,
        "/templateversions/{templateversion}/resources",
        "Templates",
        "get-resources-by-template-version",
        "Get resources by template version",
    )
    .list::<WorkspaceResource>(200);
    d.op(
        GET,
        "/templateversions/{templateversion}/rich-parameters",
        "Templates",
        "get-rich-parameters-by-template-version",
        "Get rich parameters by template version",
    )
    .list::<TemplateVersionParameter>(200);
    d.op(
        GET,
        "/templateversions/{templateversion}/variables",
        "Templates",
        "get-template-variables-by-template-version",
        "Get template variables by template version",
    )
    .list::<TemplateVersionVariable>(200);
    d.op(
        GET,
        "/templateversions/{templateversion}/external-auth",
        "Templates",
        "get-external-auth-by-template-version",
        "Get external auth by template version",
    )
    .json(200, json!({"type": "array", "maxItems": 0}));
    d.op(
        GET,
        "/templateversions/{templateversion}/presets",
        "Templates",
        "get-template-version-presets",
        "Get template version presets",
    )
    .list::<codersdk::Preset>(200);
    d.op(
        GET,
        "/templateversions/{templateversion}/parameters",
        "Templates",
        "removed-get-parameters-by-template-version",
        "Removed: Get parameters by template version",
    )
    .empty(200);
    d.op(
        GET,
        "/templateversions/{templateversion}/schema",
        "Templates",
        "removed-get-schema-by-template-version",
        "Removed: Get schema by template version",
    )
    .empty(200);
    d.op(
        POST,
        "/templateversions/{templateversion}/dry-run",
        "Templates",
        "create-template-version-dry-run",
        "Create template version dry-run",
    )
    .body::<CreateTemplateVersionDryRunRequest>()
    .ok::<ProvisionerJob>(201);
    d.op(
        GET,
        "/templateversions/{templateversion}/dry-run/{jobID}",
        "Templates",
        "get-template-version-dry-run-by-job-id",
        "Get template version dry-run by job ID",
    )
    .ok::<ProvisionerJob>(200);
    d.op(
        PATCH,
        "/templateversions/{templateversion}/dry-run/{jobID}/cancel",
        "Templates",
        "cancel-template-version-dry-run-by-job-id",
        "Cancel template version dry-run by job ID",
    )
    .ok::<Response>(200);
    d.op(
        GET,
        "/templateversions/{templateversion}/dry-run/{jobID}/logs",
        "Templates",
        "get-template-version-dry-run-logs-by-job-id",
        "Get template version dry-run logs by job ID",
    )
    .query("before", INT, "Before Unix timestamp")
    .query("after", INT, "After Unix timestamp")
    .query(
        "follow",
        BOOL,
        "Follow log stream (a WebSocket of log batches)",
    )
    .list::<ProvisionerJobLog>(200)
    .empty(101);
    d.op(
        GET,
        "/templateversions/{templateversion}/dry-run/{jobID}/resources",
        "Templates",
        "get-template-version-dry-run-resources-by-job-id",
        "Get template version dry-run resources by job ID",
    )
    .list::<WorkspaceResource>(200);
    d.op(
        GET,
        "/templateversions/{templateversion}/dry-run/{jobID}/matched-provisioners",
        "Templates",
        "get-template-version-dry-run-matched-provisioners",
        "Get template version dry-run matched provisioners",
    )
    .ok::<MatchedProvisioners>(200);
    d.op(
        GET,
        "/users/first",
        "Users",
        "check-initial-user-created",
        "Check initial user created",
    )
    .public()
    .ok::<Response>(200);
    d.op(
        POST,
        "/users/first",
        "Users",
        "create-initial-user",
        "Create initial user",
    )
    .public()
    .body::<CreateFirstUserRequest>()
    .ok::<CreateFirstUserResponse>(201);
    d.op(
        POST,
        "/users/login",
        "Authorization",
        "log-in-user",
        "Log in user",
    )
    .public()
    .body::<LoginWithPasswordRequest>()
    .ok::<LoginWithPasswordResponse>(201);
    d.op(
        POST,
        "/users/logout",
        "Users",
        "log-out-user",
        "Log out user",
    )
    .ok::<Response>(200);
    d.op(
        GET,
        "/users/authmethods",
        "Users",
        "get-authentication-methods",
        "Get authentication methods",
    )
    .public()
    .ok::<AuthMethods>(200);
    d.op(GET, "/users", "Users", "get-users", "Get users")
        .query("q", STR, "Search query")
        .query("after_id", UUID, "After ID")
        .query("limit", INT, "Page limit")
        .query("offset", INT, "Page offset")
        .ok::<GetUsersResponse>(200);
    d.op(
        POST,
        "/users",
        "Users",
        "create-new-user",
        "Create new user",
    )
    .body::<CreateUserRequest>()
    .ok::<User>(201);
    d.op(
        GET,
        "/users/roles",
        "Members",
        "get-site-member-roles",
        "Get site member roles",
    )
    .list::<AssignableRoles>(200);
    d.op(
        GET,
        "/users/{user}",
        "Users",
        "get-user-by-name",
        "Get user by name",
    )
    .ok::<User>(200);
    d.op(
        DELETE,
        "/users/{user}",
        "Users",
        "delete-user",
        "Delete user",
    )
    .empty(200);
    d.op(
        PUT,
        "/users/{user}/status/suspend",
        "Users",
        "suspend-user-account",
        "Suspend user account",
    )
    .ok::<User>(200);
    d.op(
        PUT,
        "/users/{user}/status/activate",
        "Users",
        "activate-user-account",
        "Activate user account",
    )
    .ok::<User>(200);
    d.op(
        GET,
        "/users/{user}/roles",
        "Users",
        "get-user-roles",
        "Get user roles",
    )
    .ok::<UserRoles>(200);
    d.op(
        PUT,
        "/users/{user}/roles",
        "Users",
        "assign-role-to-user",
        "Assign role to user",
    )
    .body::<UpdateRoles>()
    .ok::<User>(200);
    d.op(
        PUT,
        "/users/{user}/password",
        "Users",
        "update-user-password",
        "Update user password",
    )
    .body::<UpdateUserPasswordRequest>()
    .empty(204);
    d.op(
        PUT,
        "/users/{user}/profile",
        "Users",
        "update-user-profile",
        "Update user profile",
    )
    .body::<UpdateUserProfileRequest>()
    .ok::<User>(200);
    d.op(
        GET,
        "/users/{user}/quiet-hours",
        "Enterprise",
        "get-user-quiet-hours-schedule",
        "Get user quiet hours schedule",
    )
    .ok::<UserQuietHoursScheduleResponse>(200);
    d.op(
        PUT,
        "/users/{user}/quiet-hours",
        "Enterprise",
        "update-user-quiet-hours-schedule",
        "Update user quiet hours schedule",
    )
    .body::<UpdateUserQuietHoursScheduleRequest>()
    .ok::<UserQuietHoursScheduleResponse>(200);
    d.op(
        GET,
        "/users/{user}/organizations",
        "Users",
        "get-organizations-by-user",
        "Get organizations by user",
    )
    .list::<Organization>(200);
    d.op(
        GET,
        "/users/{user}/login-type",
        "Users",
        "get-user-login-type",
        "Get user login type",
    )
    .ok::<codersdk::UserLoginType>(200);
    d.op(
        GET,
        "/users/{user}/autofill-parameters",
        "Users",
        "get-autofill-build-parameters-for-user",
        "Get autofill build parameters for user",
    )
    .query("template_id", UUID, "Template ID")
    .list::<codersdk::UserParameter>(200);
    d.op(
        GET,
        "/users/{user}/appearance",
        "Users",
        "get-user-appearance-settings",
        "Get user appearance settings",
    )
    .ok::<codersdk::UserAppearanceSettings>(200);
    d.op(
        PUT,
        "/users/{user}/appearance",
        "Users",
        "update-user-appearance-settings",
        "Update user appearance settings",
    )
    .body::<codersdk::UpdateUserAppearanceSettingsRequest>()
    .ok::<codersdk::UserAppearanceSettings>(200);
    d.op(
        GET,
        "/users/{user}/organizations/{organizationname}",
        "Users",
        "get-organization-by-user-and-organization-name",
        "Get organization by user and organization name",
    )
    .ok::<Organization>(200);
    d.op(
        POST,
        "/users/{user}/workspaces",
        "Workspaces",
        "create-user-workspace",
        "Create user workspace",
    )
    .body::<CreateWorkspaceRequest>()
    .ok::<Workspace>(201);
    d.op(
        POST,
        "/organizations/{organization}/members/{user}/workspaces",
        "Workspaces",
        "create-user-workspace-by-organization",
        "Create user workspace by organization",
    )
    .body::<CreateWorkspaceRequest>()
    .ok::<Workspace>(201);
    d.op(GET, "/workspaces", "Workspaces", "list-workspaces", "List workspaces")
        .query("q", STR, "Search query in the format `key:value`. Available keys are: owner, template, name, status, has-agent, dormant, last_used_after, last_used_before, has-ai-task, has_external_agent.")
        .query("limit", INT, "Page limit")
        .query("offset", INT, "Page offset")
        .ok::<WorkspacesResponse>(200);
    d.op(
        GET,
        "/workspaces/{workspace}",
        "Workspaces",
        "get-workspace-metadata-by-id",
        "Get workspace metadata by ID",
    )
    .query(
        "include_deleted",
        BOOL,
        "Return data instead of HTTP 404 if the workspace is deleted",
    )
    .ok::<Workspace>(200);
    d.op(
        PATCH,
        "/workspaces/{workspace}",
        "Workspaces",
        "update-workspace-metadata-by-id",
        "Update workspace metadata by ID",
    )
    .body::<UpdateWorkspaceRequest>()
    .empty(204);
    d.op(
        GET,
        "/users/{user}/workspace/{workspacename}",
        "Workspaces",
        "get-workspace-metadata-by-user-and-workspace-name",
        "Get workspace metadata by user and workspace name",
    )
    .query(
        "include_deleted",
        BOOL,
        "Return data instead of HTTP 404 if the workspace is deleted",
    )
    .ok::<Workspace>(200);
    d.op(
        PUT,
        "/workspaces/{workspace}/autostart",
        "Workspaces",
        "update-workspace-autostart-schedule-by-id",
        "Update workspace autostart schedule by ID",
    )
    .body::<UpdateWorkspaceAutostartRequest>()
    .empty(204);
    d.op(
        PUT,
        "/workspaces/{workspace}/ttl",
        "Workspaces",
        "update-workspace-ttl-by-id",
        "Update workspace TTL by ID",
    )
    .body::<UpdateWorkspaceTtlRequest>()
    .empty(204);
    d.op(
        PUT,
        "/workspaces/{workspace}/autoupdates",
        "Workspaces",
        "update-workspace-automatic-updates-by-id",
        "Update workspace automatic updates by ID",
    )
    .body::<UpdateWorkspaceAutomaticUpdatesRequest>()
    .empty(204);
    d.op(
        PUT,
        "/workspaces/{workspace}/dormant",
        "Workspaces",
        "update-workspace-dormancy-status-by-id",
        "Update workspace dormancy status by id.",
    )
    .body::<UpdateWorkspaceDormancy>()
    .ok::<Workspace>(200)
    // The workspace already is (or is not) dormant.
    .empty(304);
    d.op(
        PUT,
        "/workspaces/{workspace}/extend",
        "Workspaces",
        "extend-workspace-deadline-by-id",
        "Extend workspace deadline by ID",
    )
    .body::<PutExtendWorkspaceRequest>()
    .ok::<Response>(200);
    d.op(
        PUT,
        "/workspaces/{workspace}/favorite",
        "Workspaces",
        "favorite-workspace-by-id",
        "Favorite workspace by ID.",
    )
    .empty(204);
    d.op(
        DELETE,
        "/workspaces/{workspace}/favorite",
        "Workspaces",
        "unfavorite-workspace-by-id",
        "Unfavorite workspace by ID.",
    )
    .empty(204);
    d.op(
        POST,
        "/workspaces/{workspace}/usage",
        "Workspaces",
        "post-workspace-usage-by-id",
        "Post Workspace Usage by ID",
    )
    .body::<PostWorkspaceUsageRequest>()
    .empty(204);
    d.op(
        GET,
        "/workspaces/{workspace}/resolve-autostart",
        "Workspaces",
        "resolve-workspace-autostart-by-id",
        "Resolve workspace autostart by id.",
    )
    .ok::<ResolveAutostartResponse>(200);
    d.op(
        GET,
        "/workspaces/{workspace}/timings",
        "Workspaces",
        "get-workspace-timings-by-id",
        "Get workspace timings by ID",
    )
    .ok::<WorkspaceBuildTimings>(200);
    d.op(
        GET,
        "/workspaces/{workspace}/acl",
        "Workspaces",
        "get-workspace-acls",
        "Get workspace ACLs",
    )
    .ok::<WorkspaceAcl>(200);
    d.op(
        PATCH,
        "/workspaces/{workspace}/acl",
        "Workspaces",
        "update-workspace-acl",
        "Update workspace ACL",
    )
    .body::<UpdateWorkspaceAcl>()
    .empty(204);
    d.op(
        DELETE,
        "/workspaces/{workspace}/acl",
        "Workspaces",
        "completely-clears-the-workspaces-user-and-group-acls",
        "Completely clears the workspace's user and group ACLs.",
    )
    .empty(204);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked_in_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json")
    }

    #[test]
    fn checked_in_document_is_current() {
        let generated = document_json();
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
        let doc = document();
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
                assert!(
                    op["operationId"].is_string(),
                    "{method} {path}: no operationId"
                );
            }
        }
    }
}
