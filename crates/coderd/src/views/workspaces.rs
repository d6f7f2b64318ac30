//! Workspaces as the API shows them.

use std::collections::HashMap;

use coderd_db::{GroupFilter, WorkspaceRow};
use codersdk::{SharedWorkspaceActor, Workspace, WorkspaceHealth};
use uuid::Uuid;

use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::convert::NS_PER_MS;
use crate::views::loaded::Loaded;

/// Renders workspaces as `viewer` sees them.
pub async fn render(
    state: &AppState,
    viewer: Uuid,
    rows: Vec<WorkspaceRow>,
) -> ApiResult<Vec<Workspace>> {
    render_with(state, viewer, rows, Loaded::default()).await
}

/// Like [`render`], reusing rows the caller already read (the template `workspace_for` read).
pub async fn render_with(
    state: &AppState,
    viewer: Uuid,
    rows: Vec<WorkspaceRow>,
    mut loaded: Loaded,
) -> ApiResult<Vec<Workspace>> {
    let ids: Vec<Uuid> = rows.iter().map(|w| w.id).collect();
    for w in &rows {
        loaded.workspaces.insert(w.id, w.clone());
    }
    let acl_users = rows.iter().flat_map(|w| w.user_acl.0.keys().copied());
    loaded
        .users(state, rows.iter().map(|w| w.owner_id).chain(acl_users))
        .await?;
    loaded
        .templates(state, rows.iter().map(|w| w.template_id))
        .await?;
    // A workspace's organization is its template's, whose row carries the organization's
    // name (read in the same statement): an organization is read only for a workspace whose
    // template is elsewhere, which none is.
    let elsewhere: Vec<Uuid> = rows
        .iter()
        .filter(|w| {
            loaded
                .templates
                .get(&w.template_id)
                .is_none_or(|t| t.organization_id != w.organization_id)
        })
        .map(|w| w.organization_id)
        .collect();
    loaded.organizations(state, elsewhere).await?;
    let group_ids: Vec<Uuid> = rows
        .iter()
        .flat_map(|w| w.group_acl.0.keys().copied())
        .collect();
    let shared_groups: HashMap<Uuid, coderd_db::GroupRow> = if group_ids.is_empty() {
        HashMap::new()
    } else {
        let f = GroupFilter {
            ids: group_ids,
            ..Default::default()
        };
        state
            .store
            .list_groups(&f)
            .await?
            .into_iter()
            .map(|g| (g.id, g))
            .collect()
    };
    let missing: Vec<Uuid> = ids
        .iter()
        .filter(|id| !loaded.latest.contains_key(id))
        .copied()
        .collect();
    let mut latest: Vec<coderd_db::BuildRow> = ids
        .iter()
        .filter_map(|id| loaded.latest.remove(id))
        .collect();
    if !missing.is_empty() {
        latest.extend(state.store.latest_builds(&missing).await?);
    }
    let mut latest: HashMap<Uuid, codersdk::WorkspaceBuild> =
        crate::views::builds::render_with(state, latest, &mut loaded)
            .await?
            .into_iter()
            .map(|b| (b.workspace_id, b))
            .collect();
    let (users, templates, orgs) = (&loaded.users, &loaded.templates, &loaded.organizations);
    rows.into_iter()
        .map(|w| {
            let missing = |what: &str| {
                ApiError::internal("Rendering a workspace", format!("its {what} is missing"))
            };
            let t = templates
                .get(&w.template_id)
                .ok_or_else(|| missing("template"))?;
            let build = latest
                .remove(&w.id)
                .ok_or_else(|| missing("latest build"))?;
            let owner = users.get(&w.owner_id);
            let failing: Vec<Uuid> = build
                .resources
                .iter()
                .flat_map(|r| r.agents.iter())
                .filter(|a| !a.health.healthy)
                .map(|a| a.id)
                .collect();
            let ttl = if t.allow_user_autostop {
                w.ttl
            } else {
                Some(t.default_ttl).filter(|t| *t > 0)
            };
            let mut shared_with: Vec<SharedWorkspaceActor> = w
                .user_acl
                .0
                .iter()
                .filter_map(|(id, role)| {
                    let u = users.get(id)?;
                    Some(SharedWorkspaceActor {
                        id: *id,
                        actor_type: "user".into(),
                        name: u.username.clone(),
                        avatar_url: u.avatar_url.clone(),
                        roles: vec![role.clone()],
                    })
                })
                .collect();
            shared_with.extend(w.group_acl.0.iter().filter_map(|(id, role)| {
                let g = shared_groups.get(id)?;
                Some(SharedWorkspaceActor {
                    id: *id,
                    actor_type: "group".into(),
                    name: g.name.clone(),
                    avatar_url: g.avatar_url.clone(),
                    roles: vec![role.clone()],
                })
            }));
            Ok(Workspace {
                id: w.id,
                created_at: w.created_at,
                updated_at: w.updated_at,
                owner_id: w.owner_id,
                owner_name: owner.map(|u| u.username.clone()).unwrap_or_default(),
                owner_avatar_url: owner.map(|u| u.avatar_url.clone()).unwrap_or_default(),
                organization_id: w.organization_id,
                organization_name: if t.organization_id == w.organization_id {
                    t.organization_name.clone()
                } else {
                    orgs.get(&w.organization_id)
                        .map(|o| o.name.clone())
                        .unwrap_or_default()
                },
                template_id: t.id,
                template_name: t.name.clone(),
                template_display_name: t.display_name.clone(),
                template_icon: t.icon.clone(),
                template_allow_user_cancel_workspace_jobs: t.allow_user_cancel_workspace_jobs,
                template_active_version_id: t.active_version_id,
                template_require_active_version: t.require_active_version,
                template_use_classic_parameter_flow: t.use_classic_parameter_flow,
                outdated: build.template_version_id != t.active_version_id,
                latest_build: build,
                latest_app_status: None,
                name: w.name,
                autostart_schedule: w.autostart_schedule,
                ttl_ms: ttl.map(|ns| ns / NS_PER_MS),
                last_used_at: w.last_used_at,
                deleting_at: w.deleting_at,
                dormant_at: w.dormant_at,
                health: WorkspaceHealth {
                    healthy: failing.is_empty(),
                    failing_agents: failing,
                },
                automatic_updates: w.automatic_updates,
                allow_renames: state.config.allow_workspace_renames,
                favorite: w.favorite && w.owner_id == viewer,
                next_start_at: w.next_start_at,
                is_prebuild: false,
                shared_with,
                task_id: None,
            })
        })
        .collect()
}

pub async fn render_one(state: &AppState, viewer: Uuid, w: WorkspaceRow) -> ApiResult<Workspace> {
    Ok(render(state, viewer, vec![w]).await?.remove(0))
}
