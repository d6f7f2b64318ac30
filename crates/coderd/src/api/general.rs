//! `GET /api/v2` and `GET /api/v2/buildinfo`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use codersdk::BuildInfoResponse;

use crate::http::json::{message, ok, Json};
use crate::state::AppState;
use crate::version::{API_LEVEL, BUILD_VERSION};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/buildinfo", get(build_info))
        .route("/entitlements", get(entitlements))
        .route("/experiments", get(experiments))
        .route("/experiments/available", get(available_experiments))
        .route("/deployment/ssh", get(ssh_config))
        .route("/regions", get(regions))
        .route("/updatecheck", get(update_check))
        .route("/appearance", get(appearance).put(update_appearance))
        .route(
            "/users/validate-password",
            axum::routing::post(validate_password),
        )
        .route("/authcheck", axum::routing::post(authcheck))
}

/// `POST /authcheck`: for each named check, whether the caller may do the action to objects
/// of that kind (owned by, and in the organization of, the given ids). Unknown resource kinds
/// and actions answer false.
async fn authcheck(
    actor: crate::authz::Actor,
    crate::http::json::Body(req): crate::http::json::Body<codersdk::AuthorizationRequest>,
) -> Json<std::collections::BTreeMap<String, bool>> {
    use crate::authz::{Action, Object, Resource};
    let parse = |s: &str| uuid::Uuid::parse_str(s).ok();
    let answers = req
        .checks
        .into_iter()
        .map(|(key, c)| {
            let allowed = match (
                Resource::from_name(&c.object.resource_type),
                Action::from_name(&c.action),
            ) {
                (Some(resource), Some(action)) => {
                    let owner = parse(&c.object.owner_id);
                    let orgs: Vec<Option<uuid::Uuid>> = if c.object.any_org {
                        actor.memberships.keys().copied().map(Some).collect()
                    } else {
                        vec![parse(&c.object.organization_id)]
                    };
                    orgs.into_iter().any(|org| {
                        actor.can(
                            action,
                            Object {
                                resource,
                                org,
                                owner,
                            },
                        )
                    })
                }
                _ => false,
            };
            (key, allowed)
        })
        .collect();
    ok(answers)
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

/// Upstream's defaults: `coder config-ssh` names hosts `coder.<workspace>` or
/// `<workspace>.coder`.
async fn ssh_config(_actor: crate::authz::Actor) -> Json<codersdk::SshConfigResponse> {
    ok(codersdk::SshConfigResponse {
        hostname_prefix: "coder.".into(),
        hostname_suffix: "coder".into(),
        ssh_config_options: Default::default(),
    })
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
