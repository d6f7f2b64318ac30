//! Authentication: session tokens (`<10-char id>-<22-char secret>`, only SHA-256 of the secret
//! stored), where they are read from, and password hashing.

use std::net::IpAddr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use coderd_db::StoreResultExt;
use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::authz::Actor;
use crate::http::error::ApiError;
use crate::state::AppState;

const SIGNED_OUT: &str =
    "You are signed out or your session has expired. Please sign in again to continue.";
const ID_LEN: usize = 10;
const SECRET_LEN: usize = 22;

/// How the request's credentials turned out, stored in request extensions by [`authenticate`].
#[derive(Clone)]
pub enum Authn {
    Anonymous,
    Authenticated(Actor),
    Failed(std::sync::Arc<ApiError>),
}

/// The caller's user id, put on the response for the request log.
#[derive(Clone, Copy)]
pub struct LoggedUser(pub uuid::Uuid);

/// A freshly generated token: the string to hand out, and what to store.
pub struct NewToken {
    pub id: String,
    pub hashed_secret: Vec<u8>,
    pub token: String,
}

pub fn generate_token() -> NewToken {
    let mut rng = rand::thread_rng();
    let id: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(ID_LEN)
        .map(char::from)
        .collect();
    let secret: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect();
    NewToken {
        hashed_secret: Sha256::digest(secret.as_bytes()).to_vec(),
        token: format!("{id}-{secret}"),
        id,
    }
}

/// The token of a request: cookie, query parameter, `Coder-Session-Token` header, or
/// `Authorization: Bearer`, in that order.
pub fn token_from_request(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(';') {
            if let Some((k, v)) = part.trim().split_once('=') {
                if k == codersdk::SESSION_TOKEN_COOKIE && !v.is_empty() {
                    return Some(v.to_string());
                }
            }
        }
    }
    let q = crate::http::params::QueryParams::parse(query);
    if let Some(v) = q
        .get(codersdk::SESSION_TOKEN_COOKIE)
        .filter(|v| !v.is_empty())
    {
        return Some(v.to_string());
    }
    if let Some(v) = headers
        .get(codersdk::SESSION_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        return Some(v.to_string());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn signed_out(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, SIGNED_OUT).with_detail(detail)
}

/// Go's `time.Time.String()` rendering, used in the "expired" message.
fn go_time(t: DateTime<Utc>) -> String {
    let frac = t.format("%.9f").to_string();
    let frac = frac.trim_end_matches('0');
    let frac = if frac == "." { "" } else { frac };
    format!("{}{} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"), frac)
}

async fn resolve(state: &AppState, token: &str, ip: Option<IpAddr>) -> Result<Actor, ApiError> {
    let parts: Vec<&str> = token.split('-').collect();
    if parts.len() != 2 {
        return Err(signed_out(format!(
            "Invalid API key format: incorrect amount of API key parts, expected 2 got {}",
            parts.len()
        )));
    }
    let (id, secret) = (parts[0], parts[1]);
    if id.len() != ID_LEN {
        return Err(signed_out(format!(
            "Invalid API key format: invalid API key ID length, expected {ID_LEN} got {}",
            id.len()
        )));
    }
    if secret.len() != SECRET_LEN {
        return Err(signed_out(format!(
            "Invalid API key format: invalid API key secret length, expected {SECRET_LEN} got {}",
            secret.len()
        )));
    }
    let hashed = Sha256::digest(secret.as_bytes());
    let row = match state.actors.get(id) {
        // A cached row that would refuse is confirmed against the database first: the refusal
        // may be news this process has not heard yet the other way (a key refreshed elsewhere).
        Some(row) if accepts(&row, &hashed) => {
            state.actors.count(true);
            row
        }
        // Not cached, aged out, or refusing: read again. This is not news of a change, so it
        // must not bump the generation: concurrent misses of one key would then keep each
        // other's reads from being kept, and under load none would be (a miss storm).
        _ => {
            state.actors.count(false);
            let generation = state.actors.generation();
            match state.store.actor_by_key_id(id).await.optional()? {
                Some(row) => state.actors.insert(generation, row),
                None => {
                    state.actors.discard_key(id);
                    return Err(signed_out("API key is invalid."));
                }
            }
        }
    };
    if !bool::from(hashed.as_slice().ct_eq(&row.hashed_secret)) {
        return Err(signed_out("API key secret is invalid."));
    }
    let now = Utc::now();
    if row.expires_at <= now {
        return Err(signed_out(format!(
            "API key expired at {:?}.",
            go_time(row.expires_at)
        )));
    }
    if row.user_deleted {
        return Err(signed_out("API key is invalid."));
    }
    if row.user_status == "suspended" {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "User is not active (status = {:?}). Contact an admin to reactivate your account.",
                row.user_status
            ),
        ));
    }

    // Writes are rate-limited to one an hour per key: last use, and the sliding expiry.
    let hour = chrono::Duration::hours(1);
    let lifetime = chrono::Duration::seconds(row.lifetime_seconds);
    let mut expires_at = row.expires_at;
    let refresh = !state.config.disable_session_expiry_refresh
        && row.login_type != "token"
        && expires_at - now <= lifetime - hour;
    if refresh {
        expires_at = now + lifetime;
    }
    if refresh || now - row.last_used > hour || row.user_status == "dormant" {
        match state
            .store
            .touch_api_key(id, row.user_id, ip, refresh.then_some(expires_at))
            .await
        {
            // What was written, so the next request does not write it again.
            Ok(()) => state.actors.update(id, |r| {
                r.last_used = now;
                r.expires_at = expires_at;
                if r.user_status == "dormant" {
                    r.user_status = "active".into();
                }
            }),
            Err(e) => tracing::warn!(error = %e, "recording API key use"),
        }
    }

    Ok(Actor {
        user_id: row.user_id,
        username: row.username.clone(),
        key_id: row.key_id.clone(),
        site_roles: row.rbac_roles.clone(),
        memberships: row
            .memberships
            .0
            .iter()
            .map(|m| (m.organization_id, m.roles.clone()))
            .collect(),
        groups: row.groups.clone(),
    })
}

/// Whether a cached row would let the secret hashed to `hashed` in now (else it is read
/// again before refusing).
fn accepts(row: &coderd_db::ActorRow, hashed: &[u8]) -> bool {
    bool::from(hashed.ct_eq(&row.hashed_secret))
        && row.expires_at > Utc::now()
        && !row.user_deleted
        && row.user_status != "suspended"
}

/// Resolves the caller once per request; handlers that need a user take [`Actor`].
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let token = token_from_request(req.headers(), req.uri().query());
    let ip = crate::proxy::client_ip(req.extensions());
    let authn = match token {
        None => Authn::Anonymous,
        Some(token) => match resolve(&state, &token, ip).await {
            Ok(actor) => Authn::Authenticated(actor),
            Err(e) => Authn::Failed(std::sync::Arc::new(e)),
        },
    };
    let user = match &authn {
        Authn::Authenticated(a) => Some(a.user_id),
        _ => None,
    };
    req.extensions_mut().insert(authn);
    let mut resp = next.run(req).await;
    if let Some(user) = user {
        resp.extensions_mut().insert(LoggedUser(user));
    }
    resp
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Actor, ApiError> {
        match parts.extensions.get::<Authn>() {
            Some(Authn::Authenticated(a)) => Ok(a.clone()),
            Some(Authn::Failed(e)) => Err(ApiError::clone(e)),
            _ => Err(signed_out(format!(
                "Cookie {:?} or query parameter must be provided.",
                codersdk::SESSION_TOKEN_COOKIE
            ))),
        }
    }
}

/// The caller if a valid token was sent; `None` when none was (bad tokens still fail).
pub struct MaybeActor(pub Option<Actor>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<MaybeActor, ApiError> {
        match parts.extensions.get::<Authn>() {
            Some(Authn::Anonymous) | None => Ok(MaybeActor(None)),
            _ => Actor::from_request_parts(parts, s)
                .await
                .map(|a| MaybeActor(Some(a))),
        }
    }
}

// -- passwords ---------------------------------------------------------------------------------

/// Hashes a password with Argon2id (PHC string format), off the async threads.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::internal("Hashing a password", e))?
    .map_err(|e| ApiError::internal("Hashing a password", e))
}

/// A hash of a password nobody has, so unknown users cost as much time as wrong passwords.
static DECOY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Checks `password` against `hash` (or against a decoy when there is no user).
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| {
            DECOY_HASH
                .get_or_init(|| {
                    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
                    Argon2::default()
                        .hash_password(b"decoy password nobody has", &salt)
                        .map(|h| h.to_string())
                        .unwrap_or_default()
                })
                .clone()
        });
        let ok = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        real && ok
    })
    .await
    .unwrap_or(false)
}

/// Coder's password rule: at least 52 bits of estimated entropy, at most 64 characters.
pub fn validate_password(password: &str) -> Result<(), String> {
    if password.chars().count() > 64 {
        return Err("password must be at most 64 characters".into());
    }
    let bits = password_entropy(password);
    if bits < 52.0 {
        return Err(format!(
            "insecure password, try including more special characters, using uppercase letters, \
             using numbers or using a longer password (estimated {bits:.0} of 52 bits of entropy)"
        ));
    }
    Ok(())
}

/// Entropy estimate in the manner of go-password-validator: log2(size of the character pool)
/// times the length once runs of repeated characters and simple sequences are discounted.
fn password_entropy(password: &str) -> f64 {
    const SPECIAL: &str = "!@$&*_-., \"#%'()+/:;<=>?[\\]^{|}~`";
    let mut pool = 0u32;
    let chars: Vec<char> = password.chars().collect();
    if chars.iter().any(|c| c.is_ascii_lowercase()) {
        pool += 26;
    }
    if chars.iter().any(|c| c.is_ascii_uppercase()) {
        pool += 26;
    }
    if chars.iter().any(|c| c.is_ascii_digit()) {
        pool += 10;
    }
    if chars.iter().any(|c| SPECIAL.contains(*c)) {
        pool += SPECIAL.chars().count() as u32;
    }
    let mut others: Vec<char> = chars
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_alphanumeric() && !SPECIAL.contains(*c))
        .collect();
    others.sort();
    others.dedup();
    pool += others.len() as u32;
    if pool == 0 {
        return 0.0;
    }
    // Effective length: a character equal to, or one step from, the previous two adds nothing.
    let mut length = 0usize;
    for (i, c) in chars.iter().enumerate() {
        let repeats = i >= 2 && {
            let (a, b, c) = (chars[i - 2] as i64, chars[i - 1] as i64, *c as i64);
            (a == b && b == c) || (b - a == c - b && (c - b).abs() == 1)
        };
        if !repeats {
            length += 1;
        }
    }
    f64::from(pool).log2() * length as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        let t = generate_token();
        let (id, secret) = t.token.split_once('-').unwrap();
        assert_eq!((id.len(), secret.len()), (10, 22));
        assert_eq!(t.hashed_secret, Sha256::digest(secret.as_bytes()).to_vec());
    }

    #[test]
    fn password_strength() {
        assert!(validate_password("password").is_err());
        assert!(validate_password("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_err());
        assert!(validate_password("abcdefghijklmnopqrstuvwxyz").is_err());
        assert!(validate_password("SomeSecurePassword!").is_ok());
        assert!(validate_password("correct-horse-battery-staple").is_ok());
        assert!(validate_password(&"Ab1!".repeat(20)).is_err());
    }

    #[test]
    fn go_time_format() {
        let t = DateTime::parse_from_rfc3339("2024-05-06T07:08:09.120Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(go_time(t), "2024-05-06 07:08:09.12 +0000 UTC");
    }

    #[test]
    fn token_sources_in_order() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer bearer-tok".parse().unwrap());
        assert_eq!(token_from_request(&h, None).as_deref(), Some("bearer-tok"));
        h.insert("Coder-Session-Token", "header-tok".parse().unwrap());
        assert_eq!(token_from_request(&h, None).as_deref(), Some("header-tok"));
        assert_eq!(
            token_from_request(&h, Some("coder_session_token=q-t")).as_deref(),
            Some("q-t")
        );
        h.insert(
            header::COOKIE,
            "a=b; coder_session_token=cookie-tok".parse().unwrap(),
        );
        assert_eq!(
            token_from_request(&h, Some("coder_session_token=q-t")).as_deref(),
            Some("cookie-tok")
        );
    }
}
