//! `GET /api/v2` and `GET /api/v2/buildinfo`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use codersdk::BuildInfoResponse;

use super::routes::Routes;
use crate::config::HOSTNAME_SUFFIX;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::{message, ok, Json};
use crate::state::AppState;
use crate::version::{API_LEVEL, BUILD_VERSION};

pub fn routes(r: &mut Routes) {
    r.get("/", root)
        .op("General", "api-root-handler", "API root handler")
        .public()
        .ok::<codersdk::Response>(200);
    r.get("/buildinfo", build_info)
        .op("General", "build-info", "Build info")
        .public()
        .ok::<codersdk::BuildInfoResponse>(200);
    r.get("/entitlements", entitlements)
        .op("Enterprise", "get-entitlements", "Get entitlements")
        .ok::<codersdk::Entitlements>(200);
    r.get("/experiments", experiments)
        .op(
            "General",
            "get-enabled-experiments",
            "Get enabled experiments",
        )
        .json(
            200,
            serde_json::json!({"type": "array", "items": {"type": "string"}}),
        );
    r.get("/experiments/available", available_experiments)
        .op("General", "get-safe-experiments", "Get safe experiments")
        .ok::<codersdk::AvailableExperiments>(200);
    r.get("/deployment/ssh", ssh_config)
        .op("General", "ssh-config", "SSH Config")
        .ok::<codersdk::SshConfigResponse>(200);
    r.get("/deployment/config", deployment_config)
        .op("General", "get-deployment-config", "Get deployment config")
        // codersdk.DeploymentConfig: upstream's DeploymentValues and its option list.
        .json(
            200,
            serde_json::json!({"type": "object", "properties": {
                "config": {"type": "object"},
                "options": {"type": "array", "items": {"type": "object"}}
            }}),
        );
    r.get("/regions", regions)
        .op(
            "WorkspaceProxies",
            "get-site-wide-regions-for-workspace-connections",
            "Get site-wide regions for workspace connections",
        )
        .ok::<codersdk::RegionsResponse>(200);
    r.get("/updatecheck", update_check)
        .op("General", "update-check", "Update check")
        .public()
        .ok::<codersdk::UpdateCheckResponse>(200);
    r.get("/appearance", appearance)
        .op("Enterprise", "get-appearance", "Get appearance")
        .ok::<codersdk::AppearanceConfig>(200);
    r.put("/appearance", update_appearance)
        .op("Enterprise", "update-appearance", "Update appearance")
        .body::<codersdk::UpdateAppearanceConfig>()
        .json(
            403,
            serde_json::json!({"$ref": "#/components/schemas/Response"}),
        );
    r.post("/users/validate-password", validate_password)
        .op(
            "Authorization",
            "validate-user-password",
            "Validate user password",
        )
        .body::<codersdk::ValidateUserPasswordRequest>()
        .ok::<codersdk::ValidateUserPasswordResponse>(200);
    r.post("/authcheck", authcheck)
        .op(
            "Authorization",
            "check-authorization",
            "Check authorization",
        )
        .body::<codersdk::AuthorizationRequest>()
        .json(
            200,
            serde_json::json!({"type": "object", "additionalProperties": {"type": "boolean"}}),
        );
}

/// `POST /authcheck`: for each named check, whether the caller may do the action to objects
/// of that kind (owned by, and in the organization of, the given ids; or, with `resource_id`,
/// to that workspace, template, user or group). Kinds this server has no objects of are
/// answered from the site roles alone, so an owner gets what upstream's owner gets.
async fn authcheck(
    State(state): State<AppState>,
    actor: crate::authz::Actor,
    crate::http::json::Body(req): crate::http::json::Body<codersdk::AuthorizationRequest>,
) -> ApiResult<Json<std::collections::BTreeMap<String, bool>>> {
    const MAX_RESOURCE_IDS: usize = 10;
    let ids = req
        .checks
        .values()
        .filter(|c| !c.object.resource_id.is_empty())
        .count();
    if ids > MAX_RESOURCE_IDS {
        return Err(ApiError::bad_request(format!(
            "Endpoint only supports using \"resource_id\" field {MAX_RESOURCE_IDS} times, found \
             {ids} usages. Remove {} objects with this field set.",
            ids - MAX_RESOURCE_IDS
        )));
    }
    if let Some(key) = req
        .checks
        .iter()
        .find(|(_, c)| c.object.resource_type.is_empty())
        .map(|(k, _)| k)
    {
        return Err(ApiError::bad_request(format!(
            "Object's \"resource_type\" field must be defined for key {key:?}."
        )));
    }
    let mut answers = std::collections::BTreeMap::new();
    for (key, c) in req.checks {
        let allowed = authcheck_one(&state, &actor, &c).await?;
        answers.insert(key, allowed);
    }
    Ok(ok(answers))
}

async fn authcheck_one(
    state: &AppState,
    actor: &crate::authz::Actor,
    c: &codersdk::AuthorizationCheck,
) -> ApiResult<bool> {
    use crate::authz::{unmodelled_site_grant, Action, Object, Resource};
    let Some(action) = Action::from_name(&c.action) else {
        return Ok(false);
    };
    let Some(resource) = Resource::from_name(&c.object.resource_type) else {
        return Ok(unmodelled_site_grant(
            actor,
            &c.object.resource_type,
            &c.action,
        ));
    };
    if !c.object.resource_id.is_empty() {
        let Ok(id) = uuid::Uuid::parse_str(&c.object.resource_id) else {
            return Err(ApiError::bad_request(format!(
                "Object {:?} id is not a valid uuid.",
                c.object.resource_id
            ))
            .with_validation("resource_id", "invalid UUID"));
        };
        let found = match resource {
            Resource::Workspace => state
                .store
                .workspace(id)
                .await
                .map(|w| super::resolve::may(actor, &w, action)),
            Resource::Template => state.store.template(id).await.map(|t| {
                actor.can_template(action, t.organization_id, &t.user_acl.0, &t.group_acl.0)
            }),
            Resource::User => Ok(actor.can(action, Object::user(id))),
            Resource::Group => state
                .store
                .group(id)
                .await
                .map(|g| actor.can(action, Object::in_org(Resource::Group, g.organization_id))),
            _ => {
                let msg = format!(
                    "Object type {:?} does not support \"resource_id\" field.",
                    c.object.resource_type
                );
                return Err(
                    ApiError::bad_request(msg.clone()).with_validation("resource_type", msg)
                );
            }
        };
        return Ok(coderd_db::StoreResultExt::optional(found)?.unwrap_or(false));
    }
    let parse = |s: &str| uuid::Uuid::parse_str(s).ok();
    let owner = if c.object.owner_id == "me" {
        Some(actor.user_id)
    } else {
        parse(&c.object.owner_id)
    };
    let orgs: Vec<Option<uuid::Uuid>> = if c.object.any_org {
        actor.memberships.keys().copied().map(Some).collect()
    } else {
        vec![parse(&c.object.organization_id)]
    };
    Ok(orgs.into_iter().any(|org| {
        actor.can(
            action,
            Object {
                resource,
                org,
                owner,
            },
        )
    }))
}

/// Every feature upstream licenses (`codersdk.FeatureNames`).
const FEATURES: [&str; 26] = [
    "user_limit",
    "audit_log",
    "connection_log",
    "browser_only",
    "scim",
    "template_rbac",
    "high_availability",
    "multiple_external_auth",
    "external_provisioner_daemons",
    "appearance",
    "advanced_template_scheduling",
    "workspace_proxy",
    "user_role_management",
    "external_token_encryption",
    "workspace_batch_actions",
    "task_batch_actions",
    "access_control",
    "control_shared_ports",
    "custom_roles",
    "multiple_organizations",
    "workspace_prebuilds",
    "managed_agent_limit",
    "workspace_external_agent",
    "aibridge",
    "boundary",
    "ai_governance_user_limit",
];

/// The licensed features this server implements without a license, so clients that check
/// entitlements first (terraform-provider-coderd, the dashboard) use them: template and
/// group ACLs, role assignment, template scheduling (failure TTL, dormancy, autostop
/// requirement), access control (`require_active_version`, deprecation) and organizations.
const IMPLEMENTED: [&str; 5] = [
    "template_rbac",
    "user_role_management",
    "advanced_template_scheduling",
    "access_control",
    "multiple_organizations",
];

/// Every upstream feature, entitled and enabled where this server implements it, not
/// entitled elsewhere (no license is needed or accepted, and nothing warns).
async fn entitlements(_actor: crate::authz::Actor) -> Json<codersdk::Entitlements> {
    let features = FEATURES
        .iter()
        .map(|name| {
            let on = IMPLEMENTED.contains(name);
            let feature = codersdk::Feature {
                entitlement: if on { "entitled" } else { "not_entitled" }.into(),
                enabled: on,
                limit: None,
                actual: None,
                soft_limit: None,
                usage_period: None,
            };
            (name.to_string(), feature)
        })
        .collect();
    ok(codersdk::Entitlements {
        features,
        warnings: Vec::new(),
        errors: Vec::new(),
        has_license: false,
        trial: false,
        require_telemetry: false,
        refreshed_at: chrono::Utc::now(),
    })
}

/// No experiments are enabled.
async fn experiments(_actor: crate::authz::Actor) -> Json<Vec<String>> {
    ok(Vec::new())
}

/// No experiment is safe to turn on (upstream's list is empty too).
async fn available_experiments(
    _actor: crate::authz::Actor,
) -> Json<codersdk::AvailableExperiments> {
    ok(codersdk::AvailableExperiments { safe: Vec::new() })
}

async fn ssh_config(_actor: crate::authz::Actor) -> Json<codersdk::SshConfigResponse> {
    ok(codersdk::SshConfigResponse {
        hostname_prefix: "coder.".into(),
        hostname_suffix: HOSTNAME_SUFFIX.into(),
        ssh_config_options: Default::default(),
    })
}

/// This server's settings (`codersdk.DeploymentConfig`), secrets left out; for those who may
/// read the deployment's configuration (owners and auditors, as upstream).
async fn deployment_config(
    State(state): State<AppState>,
    actor: crate::authz::Actor,
) -> ApiResult<Json<serde_json::Value>> {
    if !crate::authz::unmodelled_site_grant(&actor, "deployment_config", "read") {
        return Err(ApiError::forbidden());
    }
    Ok(ok(state.config.deployment_config.as_ref().clone()))
}

/// The one region there is: this deployment (no workspace proxies), named `primary` with the
/// deployment id, as upstream names its own.
async fn regions(
    State(state): State<AppState>,
    _actor: crate::authz::Actor,
) -> Json<codersdk::RegionsResponse> {
    ok(codersdk::RegionsResponse {
        regions: vec![codersdk::Region {
            id: uuid::Uuid::parse_str(&state.deployment_id).unwrap_or_default(),
            name: "primary".into(),
            display_name: "Default".into(),
            icon_url: "/emojis/1f3e1.png".into(),
            healthy: true,
            path_app_url: state.config.access_url.clone(),
            wildcard_hostname: String::new(),
        }],
    })
}

/// This server does not call out to check for releases; it reports itself as current.
async fn update_check() -> Json<codersdk::UpdateCheckResponse> {
    ok(codersdk::UpdateCheckResponse {
        current: true,
        version: BUILD_VERSION.into(),
        url: String::new(),
    })
}

/// The default appearance (custom branding is an enterprise feature upstream).
async fn appearance(_actor: crate::authz::Actor) -> Json<codersdk::AppearanceConfig> {
    ok(codersdk::AppearanceConfig {
        application_name: String::new(),
        logo_url: String::new(),
        docs_url: String::new(),
        service_banner: Default::default(),
        announcement_banners: Vec::new(),
        support_links: Vec::new(),
    })
}

/// Whether a password meets the strength rule, with the reason when it does not. The
/// password is required (`validate:"required"` upstream: missing or empty is a 400).
async fn validate_password(
    _actor: crate::authz::Actor,
    crate::http::json::Body(req): crate::http::json::Body<codersdk::ValidateUserPasswordRequest>,
) -> Result<Json<codersdk::ValidateUserPasswordResponse>, crate::http::error::ApiError> {
    if req.password.is_empty() {
        return Err(crate::http::error::ApiError::validation_tag(
            "password", "required", "",
        ));
    }
    let result = crate::auth::validate_password(&req.password);
    Ok(ok(codersdk::ValidateUserPasswordResponse {
        valid: result.is_ok(),
        details: result.err().unwrap_or_default(),
    }))
}

/// Changing the appearance is a licensed feature upstream, and this server has no license: it
/// answers as an unlicensed Coder deployment does.
async fn update_appearance(_actor: crate::authz::Actor) -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Appearance is a Premium feature. Contact sales!",
    )
}

pub(super) async fn root() -> Response {
    message(StatusCode::OK, "👋")
}

async fn build_info(State(state): State<AppState>) -> Json<BuildInfoResponse> {
    ok(BuildInfoResponse {
        external_url: format!("https://github.com/coder/coder/releases/tag/v{API_LEVEL}"),
        version: BUILD_VERSION.into(),
        dashboard_url: state.config.access_url.clone(),
        telemetry: false,
        workspace_proxy: false,
        agent_api_version: "2.0".into(),
        provisioner_api_version: "1.0".into(),
        upgrade_message: String::new(),
        deployment_id: state.deployment_id.clone(),
        webpush_public_key: String::new(),
    })
}
