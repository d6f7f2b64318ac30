//! Store rows → `codersdk` wire types.

use coderd_db::{ApiKeyRow, GroupRow, MembershipRow, OrganizationRow, UserRow};
use codersdk::{ApiKey, Group, Organization, OrganizationMember, ReducedUser, SlimRole, User};

use crate::authz::{org_role_display_name, site_role_display_name};

/// Go's `time.Duration` is nanoseconds; the API speaks milliseconds.
pub const NS_PER_MS: i64 = 1_000_000;

pub fn site_roles(names: &[String]) -> Vec<SlimRole> {
    names
        .iter()
        .map(|n| SlimRole {
            name: n.clone(),
            display_name: site_role_display_name(n).to_string(),
            organization_id: String::new(),
        })
        .collect()
}

pub fn org_roles(m: &MembershipRow) -> Vec<SlimRole> {
    m.roles
        .iter()
        .map(|n| SlimRole {
            name: n.clone(),
            display_name: org_role_display_name(n).to_string(),
            organization_id: m.organization_id.to_string(),
        })
        .collect()
}

pub fn user(u: UserRow) -> User {
    User {
        roles: site_roles(&u.rbac_roles),
        id: u.id,
        username: u.username,
        avatar_url: u.avatar_url,
        name: u.name,
        email: u.email,
        created_at: u.created_at,
        updated_at: u.updated_at,
        last_seen_at: u.last_seen_at,
        status: u.status,
        login_type: u.login_type,
        theme_preference: u.theme_preference,
        organization_ids: u.organization_ids,
    }
}

pub fn reduced_user(u: &UserRow) -> ReducedUser {
    ReducedUser {
        id: u.id,
        username: u.username.clone(),
        avatar_url: u.avatar_url.clone(),
        name: u.name.clone(),
        email: u.email.clone(),
        created_at: u.created_at,
        updated_at: u.updated_at,
        last_seen_at: u.last_seen_at,
        status: u.status.clone(),
        login_type: u.login_type.clone(),
        theme_preference: u.theme_preference.clone(),
    }
}

pub fn organization(o: OrganizationRow) -> Organization {
    Organization {
        id: o.id,
        name: o.name,
        display_name: o.display_name,
        description: o.description,
        icon: o.icon,
        created_at: o.created_at,
        updated_at: o.updated_at,
        is_default: o.is_default,
    }
}

pub fn member(user_id: uuid::Uuid, m: &MembershipRow) -> OrganizationMember {
    OrganizationMember {
        user_id,
        organization_id: m.organization_id,
        created_at: m.created_at,
        updated_at: m.updated_at,
        roles: org_roles(m),
    }
}

pub fn group(g: GroupRow, members: Vec<ReducedUser>) -> Group {
    Group {
        total_member_count: members.len() as i64,
        members,
        id: g.id,
        name: g.name,
        display_name: g.display_name,
        organization_id: g.organization_id,
        organization_name: g.organization_name,
        organization_display_name: g.organization_display_name,
        avatar_url: g.avatar_url,
        quota_allowance: i64::from(g.quota_allowance),
        source: g.source,
    }
}

pub fn api_key(k: ApiKeyRow) -> ApiKey {
    ApiKey {
        scopes: vec![k.scope.clone()],
        id: k.id,
        user_id: k.user_id,
        last_used: k.last_used,
        expires_at: k.expires_at,
        created_at: k.created_at,
        updated_at: k.updated_at,
        login_type: k.login_type,
        scope: k.scope,
        token_name: k.token_name,
        lifetime_seconds: k.lifetime_seconds,
        allow_list: Vec::new(),
    }
}
