//! Path parameters that name objects: `{user}` and `{organization}`.

use coderd_db::{OrganizationRow, StoreError, UserRow};
use uuid::Uuid;

use crate::authz::{Action, Actor, Object, Resource};
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `{user}`: `me`, a UUID, or a username (case-insensitive). Unknown users answer 400, as
/// Coder's does; existence is not hidden, handlers authorize afterwards.
pub async fn user(state: &AppState, actor: Option<&Actor>, raw: &str) -> ApiResult<UserRow> {
    let found = if raw == "me" {
        let Some(actor) = actor else {
            return Err(ApiError::bad_request(
                "Cannot use \"me\" without a valid session.",
            ));
        };
        state.store.user_by_id(actor.user_id).await
    } else if let Ok(id) = Uuid::parse_str(raw) {
        state.store.user_by_id(id).await
    } else {
        state.store.user_by_username_or_email(raw).await
    };
    match found {
        Ok(u) => Ok(u),
        Err(StoreError::NotFound) => Err(no_such_user(raw)),
        Err(e) => Err(e.into()),
    }
}

/// `{user}` that the actor must be allowed to read. One they may not read answers as one that
/// does not exist (upstream's 400), so that the answer tells nothing about who exists.
pub async fn readable_user(state: &AppState, actor: &Actor, raw: &str) -> ApiResult<UserRow> {
    let u = user(state, Some(actor), raw).await?;
    if !actor.can(Action::Read, Object::user(u.id)) {
        return Err(no_such_user(raw));
    }
    Ok(u)
}

fn no_such_user(raw: &str) -> ApiError {
    ApiError::bad_request("\"user\" must be an existing uuid or username.")
        .with_detail(format!("queried user={raw:?}"))
}

/// `{organization}`: a UUID or a name, readable by the actor (404 otherwise).
pub async fn organization(
    state: &AppState,
    actor: &Actor,
    raw: &str,
) -> ApiResult<OrganizationRow> {
    let org = match Uuid::parse_str(raw) {
        Ok(id) => state.store.organization_by_id(id).await,
        Err(_) => state.store.organization_by_name(raw).await,
    }?;
    if !actor.can(Action::Read, Object::in_org(Resource::Organization, org.id)) {
        return Err(ApiError::not_found());
    }
    Ok(org)
}

/// Coder's name rule (usernames, organization and group names): letters and digits in groups
/// joined by single hyphens, at most 32 characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A plausible email address: something@domain.tld without spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace())
        && !domain.contains('@')
}

/// A readable random name, like Coder's `adjective_scientist` (tokens, template versions).
pub fn random_name() -> String {
    const ADJ: &[&str] = &[
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "proud", "quiet", "swift", "witty",
    ];
    const NAME: &[&str] = &[
        "babbage", "curie", "dijkstra", "euler", "fermat", "gauss", "hopper", "kepler", "lovelace",
        "noether", "pascal", "ritchie", "turing", "wozniak",
    ];
    use rand::Rng;
    let mut rng = rand::thread_rng();
    format!(
        "{}_{}{}",
        ADJ[rng.gen_range(0..ADJ.len())],
        NAME[rng.gen_range(0..NAME.len())],
        rng.gen_range(0..100)
    )
}

/// Coder's template version name rule: words of letters and digits joined by single `_`,
/// `.` or `-`, at most 64 characters.
pub fn valid_version_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .split(['_', '.', '-'])
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "alice", "a-b-c", "A1", &"x".repeat(32)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "a_b", "a b", &"x".repeat(33), "me!"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(valid_email("a@b.co"));
        assert!(!valid_email("a@b"));
        assert!(!valid_email("ab.co"));
        assert!(!valid_email("a b@c.de"));
    }
}
