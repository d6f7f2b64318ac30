//! Groups as the API shows them.

use std::collections::HashMap;

use coderd_db::GroupRow;
use codersdk::{Group, ReducedUser};
use uuid::Uuid;

use crate::http::error::ApiResult;
use crate::state::AppState;
use crate::views::convert;

/// Groups with their members: one query for all the members, whatever the number of groups.
pub async fn with_members(state: &AppState, groups: Vec<GroupRow>) -> ApiResult<Vec<Group>> {
    let ids: Vec<Uuid> = groups.iter().map(|g| g.id).collect();
    let mut members: HashMap<Uuid, Vec<ReducedUser>> = HashMap::new();
    for m in state.store.group_members(&ids).await? {
        members
            .entry(m.group_id)
            .or_default()
            .push(convert::reduced_user(&m.user));
    }
    Ok(groups
        .into_iter()
        .map(|g| {
            let m = members.remove(&g.id).unwrap_or_default();
            convert::group(g, m)
        })
        .collect())
}
