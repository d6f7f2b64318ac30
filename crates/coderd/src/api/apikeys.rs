//! API keys: CLI session keys and named tokens.

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use coderd_db::{StoreResultExt, UserRow};
use codersdk::{ApiKey, ApiKeyWithOwner, CreateTokenRequest, GenerateApiKeyResponse, TokenConfig};

use super::resolve;
use super::resolve::UserParam;
use super::routes::Routes;
use super::sessions::issue_key;
use crate::authz::{Action, Actor, Object, Resource};
use crate::http::error::{ApiError, ApiResult, ConflictExt};
use crate::http::json::{created, ok, Body, Json};
use crate::http::params::QueryParams;
use crate::state::AppState;
use crate::views::convert;

/// CLI session keys (`POST /users/{user}/keys`) last a week, as Coder's.
const CLI_KEY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

pub fn routes(r: &mut Routes) {
    r.post("/users/{user}/keys", create_cli_key)
        .op("Users", "create-new-session-key", "Create new session key")
        .ok::<codersdk::GenerateApiKeyResponse>(201);
    r.get("/users/{user}/keys/tokens", list_tokens)
        .op("Users", "get-user-tokens", "Get user tokens")
        .list::<codersdk::ApiKeyWithOwner>(200);
    r.post("/users/{user}/keys/tokens", create_token)
        .op("Users", "create-token-api-key", "Create token API key")
        .body::<codersdk::CreateTokenRequest>()
        .ok::<codersdk::GenerateApiKeyResponse>(201);
    r.get("/users/{user}/keys/tokens/tokenconfig", token_config)
        .op("General", "get-token-config", "Get token config")
        .ok::<codersdk::TokenConfig>(200);
    r.get("/users/{user}/keys/tokens/{keyname}", token_by_name)
        .op(
            "Users",
            "get-api-key-by-token-name",
            "Get API key by token name",
        )
        .ok::<codersdk::ApiKey>(200);
    r.get("/users/{user}/keys/{keyid}", key_by_id)
        .op("Users", "get-api-key-by-id", "Get API key by ID")
        .ok::<codersdk::ApiKey>(200);
    r.delete("/users/{user}/keys/{keyid}", delete_key)
        .op("Users", "delete-api-key", "Delete API key")
        .empty(204);
}

/// The `{user}` whose keys are addressed, checked for `action` on their keys.
fn key_owner(actor: &Actor, u: UserRow, action: Action) -> ApiResult<UserRow> {
    let keys = Object::owned_by(Resource::ApiKey, u.id);
    if !actor.can(action, keys) {
        return Err(if actor.can(Action::Read, keys) {
            ApiError::forbidden()
        } else {
            ApiError::not_found()
        });
    }
    Ok(u)
}

async fn create_cli_key(
    State(state): State<AppState>,
    actor: Actor,
    client: crate::proxy::ClientIp,
    UserParam(u): UserParam,
) -> ApiResult<Json<GenerateApiKeyResponse>> {
    let u = key_owner(&actor, u, Action::Create)?;
    let key = issue_key(&state, u.id, "password", CLI_KEY_LIFETIME, "", client).await?;
    Ok(created(GenerateApiKeyResponse { key }))
}

async fn create_token(
    State(state): State<AppState>,
    actor: Actor,
    client: crate::proxy::ClientIp,
    UserParam(u): UserParam,
    Body(req): Body<CreateTokenRequest>,
) -> ApiResult<Json<GenerateApiKeyResponse>> {
    let u = key_owner(&actor, u, Action::Create)?;
    let invalid = |detail: String| {
        ApiError::bad_request("Failed to validate create API key request.").with_detail(detail)
    };
    let max = state.config.max_token_lifetime;
    let lifetime = match req.lifetime {
        0 => state.config.default_token_lifetime.min(max),
        n if n < 0 => return Err(invalid("lifetime must be a positive duration".into())),
        n => {
            let d = Duration::from_nanos(n as u64);
            if d > max {
                return Err(invalid(format!(
                    "lifetime must be less than {}h",
                    max.as_secs() / 3600
                )));
            }
            if d < Duration::from_secs(1) {
                return Err(invalid("lifetime must be at least one second".into()));
            }
            d
        }
    };
    // Only the full scope is implemented; a token is never issued broader than was asked
    // for, so any other scope is refused (upstream's words for a scope it does not know).
    for scope in req
        .scopes
        .iter()
        .chain(Some(&req.scope).filter(|s| !s.is_empty()))
    {
        if !matches!(scope.as_str(), "all" | "coder:all") {
            return Err(
                ApiError::bad_request("Failed to create API key.").with_detail(format!(
                "invalid or unsupported API key scope: {scope:?} (this deployment issues tokens \
                 with the \"all\" scope only)"
            )),
            );
        }
    }
    let name = if req.token_name.is_empty() {
        resolve::random_name()
    } else {
        req.token_name
    };
    if name.chars().count() > 64 {
        return Err(ApiError::validation_tag("token_name", "max", &name));
    }
    let key = issue_key(&state, u.id, "token", lifetime, &name, client)
        .await
        .on_conflict(
            "name",
            format!("A token with name {name:?} already exists."),
        )?;
    Ok(created(GenerateApiKeyResponse { key }))
}

async fn list_tokens(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<ApiKeyWithOwner>>> {
    let u = key_owner(&actor, u, Action::Read)?;
    let include_all = QueryParams::parse(raw.as_deref()).get("include_all") == Some("true");
    let rows = if include_all {
        state
            .store
            .list_tokens(None)
            .await?
            .into_iter()
            .filter(|k| actor.can(Action::Read, Object::owned_by(Resource::ApiKey, k.user_id)))
            .collect()
    } else {
        state.store.list_tokens(Some(u.id)).await?
    };
    // Each with its owner's username, as upstream's APIKeyWithOwner.
    let mut usernames = std::collections::HashMap::from([(u.id, u.username.clone())]);
    let mut out = Vec::with_capacity(rows.len());
    for k in rows {
        let username = match usernames.get(&k.user_id) {
            Some(name) => name.clone(),
            None => {
                let name = state.store.user_by_id(k.user_id).await?.username;
                usernames.insert(k.user_id, name.clone());
                name
            }
        };
        out.push(ApiKeyWithOwner {
            key: convert::api_key(k),
            username,
        });
    }
    Ok(ok(out))
}

async fn token_config(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
) -> ApiResult<Json<TokenConfig>> {
    key_owner(&actor, u, Action::Read)?;
    let ns = state.config.max_token_lifetime.as_nanos();
    Ok(ok(TokenConfig {
        max_token_lifetime: i64::try_from(ns).unwrap_or(i64::MAX),
    }))
}

async fn token_by_name(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
    // The key is looked up only once the action on the owner's keys is allowed (403 first).
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<Json<ApiKey>> {
    let u = key_owner(&actor, u, Action::Read)?;
    let key = state.store.api_key_by_name(u.id, &name).await?;
    Ok(ok(convert::api_key(key)))
}

async fn key_of(state: &AppState, owner: &UserRow, id: &str) -> ApiResult<coderd_db::ApiKeyRow> {
    state
        .store
        .api_key(id)
        .await
        .optional()?
        .filter(|k| k.user_id == owner.id)
        .ok_or_else(ApiError::not_found)
}

async fn key_by_id(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
    // The key is looked up only once the action on the owner's keys is allowed (403 first).
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<ApiKey>> {
    let u = key_owner(&actor, u, Action::Read)?;
    Ok(ok(convert::api_key(key_of(&state, &u, &id).await?)))
}

async fn delete_key(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
    // The key is looked up only once the action on the owner's keys is allowed (403 first).
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let u = key_owner(&actor, u, Action::Delete)?;
    let key = key_of(&state, &u, &id).await?;
    state.store.delete_api_key(&key.id).await?;
    // This process forgets at once; the others when the trigger's message reaches them.
    state.actors.forget_key(&key.id);
    Ok(StatusCode::NO_CONTENT)
}
