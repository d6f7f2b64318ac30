use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `codersdk.Response`: the generic message body, used for every error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Response {
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<ValidationError>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ValidationError {
    pub field: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct BuildInfoResponse {
    pub external_url: String,
    pub version: String,
    pub dashboard_url: String,
    pub telemetry: bool,
    pub workspace_proxy: bool,
    pub agent_api_version: String,
    pub provisioner_api_version: String,
    pub upgrade_message: String,
    pub deployment_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub webpush_public_key: String,
}

// ---------------------------------------------------------------------------------------------
// Users and authentication

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CreateFirstUserRequest {
    pub email: String,
    pub username: String,
    pub name: String,
    pub password: String,
    pub trial: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreateFirstUserResponse {
    pub user_id: Uuid,
    pub organization_id: Uuid,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct LoginWithPasswordRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginWithPasswordResponse {
    pub session_token: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CreateUserRequest {
    pub email: String,
    pub username: String,
    pub name: String,
    pub password: String,
    pub login_type: String,
    pub user_status: Option<String>,
    pub organization_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateUserProfileRequest {
    pub username: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateUserPasswordRequest {
    pub old_password: String,
    pub password: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateRoles {
    pub roles: Vec<String>,
}

/// `codersdk.SlimRole`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct SlimRole {
    pub name: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub organization_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub avatar_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub status: String,
    pub login_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub theme_preference: String,
    pub organization_ids: Vec<Uuid>,
    pub roles: Vec<SlimRole>,
}

/// `codersdk.ReducedUser`: a user without roles and organizations (group members).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReducedUser {
    pub id: Uuid,
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub avatar_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub status: String,
    pub login_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub theme_preference: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GetUsersResponse {
    pub users: Vec<User>,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Permission {
    pub negate: bool,
    pub resource_type: String,
    pub action: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssignableRoles {
    pub name: String,
    pub display_name: String,
    /// Empty (and left out, as Coder's `omitempty`) for site-wide roles.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(format = Uuid)]
    pub organization_id: String,
    pub site_permissions: Vec<Permission>,
    pub organization_permissions: Vec<Permission>,
    pub organization_member_permissions: Vec<Permission>,
    pub user_permissions: Vec<Permission>,
    pub assignable: bool,
    pub built_in: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AuthMethod {
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct GithubAuthMethod {
    pub enabled: bool,
    pub default_provider_configured: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct OidcAuthMethod {
    pub enabled: bool,
    #[serde(rename = "signInText")]
    pub sign_in_text: String,
    #[serde(rename = "iconUrl")]
    pub icon_url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AuthMethods {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub terms_of_service_url: String,
    pub password: AuthMethod,
    pub github: GithubAuthMethod,
    pub oidc: OidcAuthMethod,
}

// ---------------------------------------------------------------------------------------------
// API keys

/// `lifetime` is a Go `time.Duration`: nanoseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CreateTokenRequest {
    pub lifetime: i64,
    /// Deprecated upstream in favour of `scopes`.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    pub token_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GenerateApiKeyResponse {
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub user_id: Uuid,
    pub last_used: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub login_type: String,
    pub scope: String,
    pub scopes: Vec<String>,
    pub token_name: String,
    pub lifetime_seconds: i64,
    pub allow_list: Vec<ApiAllowListTarget>,
}

/// `GET /users/{user}/roles`: the names of a user's site roles and, by organization id, of
/// their organization roles (upstream's `codersdk.UserRoles`; the implied `member` and
/// `organization-member` roles are not listed).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserRoles {
    pub roles: Vec<String>,
    pub organization_roles: std::collections::BTreeMap<Uuid, Vec<String>>,
}

/// A token as token lists answer it: the key and its owner's username (upstream's
/// `codersdk.APIKeyWithOwner`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyWithOwner {
    #[serde(flatten)]
    pub key: ApiKey,
    pub username: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiAllowListTarget {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// `max_token_lifetime` is a Go `time.Duration`: nanoseconds.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenConfig {
    pub max_token_lifetime: i64,
}

// ---------------------------------------------------------------------------------------------
// Organizations

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub is_default: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CreateOrganizationRequest {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
}

/// Fields left out (or null) are not changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateOrganizationRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrganizationMember {
    pub user_id: Uuid,
    pub organization_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub roles: Vec<SlimRole>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrganizationMemberWithUserData {
    pub user_id: Uuid,
    pub organization_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub roles: Vec<SlimRole>,
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub avatar_url: String,
    pub email: String,
    pub global_roles: Vec<SlimRole>,
}

// ---------------------------------------------------------------------------------------------
// Groups

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Group {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub organization_id: Uuid,
    pub organization_name: String,
    pub organization_display_name: String,
    pub members: Vec<ReducedUser>,
    pub total_member_count: i64,
    pub avatar_url: String,
    pub quota_allowance: i64,
    pub source: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CreateGroupRequest {
    pub name: String,
    pub display_name: String,
    pub avatar_url: String,
    pub quota_allowance: i64,
}

/// Fields left out (or null) are not changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct PatchGroupRequest {
    pub add_users: Vec<String>,
    pub remove_users: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_allowance: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Files

/// `hash` holds the file's id (Coder's naming).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadResponse {
    pub hash: Uuid,
}

// ---------------------------------------------------------------------------------------------
// Deployment-wide answers

/// `GET /entitlements`. Features are keyed by name (`template_rbac`, `audit_log`, ...).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entitlements {
    pub features: std::collections::BTreeMap<String, Feature>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    pub has_license: bool,
    pub trial: bool,
    pub require_telemetry: bool,
    pub refreshed_at: DateTime<Utc>,
}

/// One feature's entitlement. Limits and usage are left out when the feature has none, as
/// Coder leaves them out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Feature {
    /// `entitled`, `grace_period` or `not_entitled`.
    pub entitlement: String,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub actual: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub soft_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub usage_period: Option<UsagePeriod>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsagePeriod {
    pub issued_at: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpdateCheckResponse {
    pub current: bool,
    pub version: String,
    pub url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct BannerConfig {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub background_color: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct LinkConfig {
    pub name: String,
    pub target: String,
    pub icon: String,
    /// Where the link shows: `navbar` or `dropdown`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
}

/// `GET /deployment/ssh`: how clients name workspaces in SSH configs.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SshConfigResponse {
    pub hostname_prefix: String,
    pub hostname_suffix: String,
    pub ssh_config_options: std::collections::BTreeMap<String, String>,
}

/// A place workspaces are reached through; this server is the only one (`primary`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Region {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub icon_url: String,
    pub healthy: bool,
    pub path_app_url: String,
    pub wildcard_hostname: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegionsResponse {
    pub regions: Vec<Region>,
}

/// `GET /experiments/available`: experiments safe to turn on.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AvailableExperiments {
    pub safe: Vec<String>,
}

/// `GET /users/{user}/login-type`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserLoginType {
    pub login_type: String,
}

/// A parameter value a user gave before (`GET /users/{user}/autofill-parameters`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserParameter {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserAppearanceSettings {
    pub theme_preference: String,
    /// `""` (the default), `ibm-plex-mono`, `fira-code`, `source-code-pro` or `jetbrains-mono`.
    pub terminal_font: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateUserAppearanceSettingsRequest {
    pub theme_preference: String,
    pub terminal_font: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppearanceConfig {
    pub application_name: String,
    pub logo_url: String,
    pub docs_url: String,
    pub service_banner: BannerConfig,
    pub announcement_banners: Vec<BannerConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub support_links: Vec<LinkConfig>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ValidateUserPasswordRequest {
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ValidateUserPasswordResponse {
    pub valid: bool,
    pub details: String,
}

/// The object an authorization check asks about: a kind of resource, optionally owned by a
/// user and inside an organization.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AuthorizationObject {
    pub resource_type: String,
    pub owner_id: String,
    pub organization_id: String,
    pub resource_id: String,
    pub any_org: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AuthorizationCheck {
    pub object: AuthorizationObject,
    pub action: String,
}

/// `POST /authcheck`: named checks; the answer maps each name to whether it is allowed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AuthorizationRequest {
    pub checks: std::collections::BTreeMap<String, AuthorizationCheck>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserQuietHoursScheduleResponse {
    pub raw_schedule: String,
    pub user_set: bool,
    pub user_can_set: bool,
    pub time: String,
    pub timezone: String,
    pub next: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateUserQuietHoursScheduleRequest {
    pub schedule: String,
}

/// `codersdk.GitSSHKey`: the public half of a user's Git SSH key, in OpenSSH format with a
/// trailing newline.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GitSshKey {
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub public_key: String,
}

/// `PUT /appearance` (a licensed feature: this server refuses it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateAppearanceConfig {
    pub application_name: String,
    pub logo_url: String,
    pub service_banner: BannerConfig,
    pub announcement_banners: Vec<BannerConfig>,
}
