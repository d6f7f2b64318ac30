//! Signing in: password checks, issuing session keys, the session cookie. Shared by the
//! login, token and CLI-auth endpoints.

use axum::http::{HeaderValue, StatusCode};
use chrono::Utc;
use coderd_db::NewApiKey;
use coderd_db::{StoreError, StoreResultExt};
use uuid::Uuid;

use crate::auth::{generate_token, verify_password};
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn session_cookie(state: &AppState, value: &str, expire: bool) -> HeaderValue {
    let mut c = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax",
        codersdk::SESSION_TOKEN_COOKIE
    );
    if expire {
        c.push_str("; Max-Age=0");
    }
    if state.config.secure_auth_cookie {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Issues a key for `user_id` lasting `lifetime`.
pub async fn issue_key(
    state: &AppState,
    user_id: Uuid,
    login_type: &str,
    lifetime: std::time::Duration,
    token_name: &str,
    client: crate::proxy::ClientIp,
) -> Result<String, StoreError> {
    let t = generate_token();
    let lifetime_seconds = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let expires_at = Utc::now()
        .checked_add_signed(chrono::Duration::seconds(lifetime_seconds))
        .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
    state
        .store
        .insert_api_key(NewApiKey {
            id: &t.id,
            hashed_secret: &t.hashed_secret,
            user_id,
            expires_at,
            lifetime_seconds,
            login_type,
            scope: "all",
            token_name,
            ip_address: Some(client.0).filter(|ip| !ip.is_unspecified()),
        })
        .await?;
    Ok(t.token)
}

/// The user whose email and password these are, refused as `POST /users/login` refuses them
/// (a dormant user becomes active).
pub async fn password_login(
    state: &AppState,
    email: &str,
    password: &str,
) -> ApiResult<coderd_db::UserRow> {
    if email.is_empty() || password.is_empty() {
        let field = if email.is_empty() {
            "email"
        } else {
            "password"
        };
        return Err(ApiError::validation_tag(field, "required", ""));
    }
    if state.config.disable_password_auth {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Password authentication is disabled.",
        ));
    }
    let user = state
        .store
        .user_by_username_or_email(email)
        .await
        .optional()?
        .filter(|u| u.email.eq_ignore_ascii_case(email));
    let hash = user
        .as_ref()
        .map(|u| u.hashed_password.clone())
        .filter(|h| !h.is_empty());
    if !verify_password(password.to_string(), hash).await {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Incorrect email or password.",
        ));
    }
    let user = user
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Incorrect email or password."))?;
    if user.login_type != "password" {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Incorrect login type, attempting to use \"password\" but user is of login type {:?}",
                user.login_type
            ),
        ));
    }
    if user.status == "suspended" {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Your account is suspended. Contact an admin to reactivate your account.",
        ));
    }
    if user.status == "dormant" {
        state.store.update_user_status(user.id, "active").await?;
    }
    Ok(user)
}
