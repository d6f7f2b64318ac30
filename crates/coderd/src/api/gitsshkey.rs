//! `GET|PUT /users/{user}/gitsshkey`: each user's Git SSH key (ed25519, as Coder generates by
//! default). The key pair is made on first read; `PUT` replaces it.

use axum::extract::State;
use coderd_db::UserRow;
use codersdk::GitSshKey;

use super::resolve;
use super::resolve::UserParam;
use super::routes::Routes;
use crate::authz::{Action, Actor};
use crate::domain::git_ssh_keys::generate;
use crate::http::error::ApiResult;
use crate::http::json::{ok, Json};
use crate::state::AppState;

pub fn routes(r: &mut Routes) {
    r.get("/users/{user}/gitsshkey", get_key)
        .op("Users", "get-user-git-ssh-key", "Get user Git SSH key")
        .ok::<codersdk::GitSshKey>(200);
    r.put("/users/{user}/gitsshkey", regenerate)
        .op(
            "Users",
            "regenerate-user-ssh-key",
            "Regenerate user SSH key",
        )
        .ok::<codersdk::GitSshKey>(200);
}

/// The user the path names, when the caller may see and change their personal settings
/// (themselves, owners, user admins). Others' keys are as invisible as the users are.
fn key_owner(actor: &Actor, u: UserRow) -> ApiResult<uuid::Uuid> {
    Ok(resolve::allow_user(actor, u, Action::UpdatePersonal)?.id)
}

fn wire(row: coderd_db::GitSshKeyRow) -> GitSshKey {
    GitSshKey {
        user_id: row.user_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
        public_key: row.public_key,
    }
}

async fn get_key(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
) -> ApiResult<Json<GitSshKey>> {
    let user = key_owner(&actor, u)?;
    let row = match state.store.git_ssh_key(user).await? {
        Some(row) => row,
        None => {
            let (private, public) = generate()?;
            state
                .store
                .ensure_git_ssh_key(user, &private, &public)
                .await?
        }
    };
    Ok(ok(wire(row)))
}

async fn regenerate(
    State(state): State<AppState>,
    actor: Actor,
    UserParam(u): UserParam,
) -> ApiResult<Json<GitSshKey>> {
    let user = key_owner(&actor, u)?;
    let (private, public) = generate()?;
    let row = state
        .store
        .replace_git_ssh_key(user, &private, &public)
        .await?;
    Ok(ok(wire(row)))
}
