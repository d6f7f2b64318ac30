//! Rows loaded once per request and shared by the renderers: rendering a page of workspaces
//! walks workspaces → builds → jobs → versions → templates, and each kind is fetched once, only
//! for the ids not already loaded.

use std::collections::HashMap;
use std::future::Future;

use coderd_db::{BuildRow, StoreError, TemplateRow, UserRow, VersionRow, WorkspaceRow};
use uuid::Uuid;

use crate::http::error::ApiResult;
use crate::state::AppState;

#[derive(Default)]
pub struct Loaded {
    pub users: HashMap<Uuid, UserRow>,
    pub workspaces: HashMap<Uuid, WorkspaceRow>,
    pub builds: HashMap<Uuid, BuildRow>,
    pub versions: HashMap<Uuid, VersionRow>,
    pub templates: HashMap<Uuid, TemplateRow>,
}

/// Fetches the rows of `ids` missing from `map` (one query, none if nothing is missing).
async fn fill<T, Fut>(
    map: &mut HashMap<Uuid, T>,
    ids: impl IntoIterator<Item = Uuid>,
    key: fn(&T) -> Uuid,
    fetch: impl FnOnce(Vec<Uuid>) -> Fut,
) -> ApiResult<()>
where
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let mut missing: Vec<Uuid> = ids.into_iter().filter(|id| !map.contains_key(id)).collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        for row in fetch(missing).await? {
            map.insert(key(&row), row);
        }
    }
    Ok(())
}

impl Loaded {
    pub async fn users(
        &mut self,
        state: &AppState,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> ApiResult<()> {
        fill(
            &mut self.users,
            ids,
            |r| r.id,
            |m| async move { state.store.users_by_ids(&m).await },
        )
        .await
    }

    pub async fn workspaces(
        &mut self,
        state: &AppState,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> ApiResult<()> {
        fill(
            &mut self.workspaces,
            ids,
            |r| r.id,
            |m| async move { state.store.workspaces_by_ids(&m).await },
        )
        .await
    }

    pub async fn builds(
        &mut self,
        state: &AppState,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> ApiResult<()> {
        fill(
            &mut self.builds,
            ids,
            |r| r.id,
            |m| async move { state.store.builds_by_ids(&m).await },
        )
        .await
    }

    pub async fn versions(
        &mut self,
        state: &AppState,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> ApiResult<()> {
        fill(
            &mut self.versions,
            ids,
            |r| r.id,
            |m| async move { state.store.versions_by_ids(&m).await },
        )
        .await
    }

    pub async fn templates(
        &mut self,
        state: &AppState,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> ApiResult<()> {
        fill(
            &mut self.templates,
            ids,
            |r| r.id,
            |m| async move { state.store.templates_by_ids(&m).await },
        )
        .await
    }
}
