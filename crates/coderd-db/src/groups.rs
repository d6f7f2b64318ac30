//! Groups. The Everyone group of an organization has the organization's id, and its members
//! are the organization's members; other groups list their members explicitly.

use uuid::Uuid;

use crate::{Result, Store, StoreError, UserRow};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupRow {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub organization_id: Uuid,
    pub organization_name: String,
    pub organization_display_name: String,
    pub avatar_url: String,
    pub quota_allowance: i32,
    pub source: String,
}

impl GroupRow {
    pub fn is_everyone(&self) -> bool {
        self.id == self.organization_id
    }
}

const GROUP_COLUMNS: &str = "g.id, g.name, g.display_name, g.organization_id, \
    o.name AS organization_name, o.display_name AS organization_display_name, \
    g.avatar_url, g.quota_allowance, g.source";

/// Members of every group: explicit rows, or the organization's members for Everyone.
const EXPANDED_MEMBERS: &str = "(SELECT gm.group_id, gm.user_id FROM group_members gm \
     UNION ALL SELECT m.organization_id AS group_id, m.user_id FROM organization_members m)";

pub struct NewGroup<'a> {
    pub organization_id: Uuid,
    pub name: &'a str,
    pub display_name: &'a str,
    pub avatar_url: &'a str,
    pub quota_allowance: i32,
}

pub struct UpdateGroup<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    pub avatar_url: &'a str,
    pub quota_allowance: i32,
    pub add_users: &'a [Uuid],
    pub remove_users: &'a [Uuid],
}

#[derive(Debug, Default, Clone)]
pub struct GroupFilter {
    pub organization_id: Option<Uuid>,
    /// Only groups with this member.
    pub has_member: Option<Uuid>,
    pub ids: Vec<Uuid>,
    /// Only groups of these organizations (what a caller may see); `None` = all.
    pub visible_orgs: Option<Vec<Uuid>>,
}

/// A member of a group.
#[derive(Debug, Clone)]
pub struct GroupMemberRow {
    pub group_id: Uuid,
    pub user: UserRow,
}

impl Store {
    pub async fn insert_group(&self, g: NewGroup<'_>) -> Result<GroupRow> {
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO groups (id, name, display_name, organization_id, avatar_url, quota_allowance) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(Uuid::new_v4())
        .bind(g.name)
        .bind(g.display_name)
        .bind(g.organization_id)
        .bind(g.avatar_url)
        .bind(g.quota_allowance)
        .fetch_one(&self.pool)
        .await?;
        self.group(id).await
    }

    pub async fn group(&self, id: Uuid) -> Result<GroupRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {GROUP_COLUMNS} FROM groups g JOIN organizations o ON o.id = g.organization_id WHERE g.id = $1"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn group_by_name(&self, org: Uuid, name: &str) -> Result<GroupRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {GROUP_COLUMNS} FROM groups g JOIN organizations o ON o.id = g.organization_id \
             WHERE g.organization_id = $1 AND lower(g.name) = lower($2)"
        ))
        .bind(org)
        .bind(name)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn list_groups(&self, f: &GroupFilter) -> Result<Vec<GroupRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {GROUP_COLUMNS} FROM groups g JOIN organizations o ON o.id = g.organization_id \
             WHERE ($1::uuid IS NULL OR g.organization_id = $1) \
               AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM {EXPANDED_MEMBERS} x \
                                                WHERE x.group_id = g.id AND x.user_id = $2)) \
               AND (cardinality($3::uuid[]) = 0 OR g.id = ANY($3)) \
               AND ($4::uuid[] IS NULL OR g.organization_id = ANY($4)) \
             ORDER BY lower(o.name), g.id <> g.organization_id, lower(g.name)"
        ))
        .bind(f.organization_id)
        .bind(f.has_member)
        .bind(&f.ids)
        .bind(&f.visible_orgs)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Members of all the given groups, in one query, ordered by username.
    pub async fn group_members(&self, groups: &[Uuid]) -> Result<Vec<GroupMemberRow>> {
        let pairs: Vec<(Uuid, Uuid)> = sqlx::query_as(&format!(
            "SELECT x.group_id, x.user_id FROM {EXPANDED_MEMBERS} x WHERE x.group_id = ANY($1)"
        ))
        .bind(groups)
        .fetch_all(&self.pool)
        .await?;
        let mut ids: Vec<Uuid> = pairs.iter().map(|(_, u)| *u).collect();
        ids.sort();
        ids.dedup();
        let users: std::collections::HashMap<Uuid, UserRow> = self
            .users_by_ids(&ids)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        let mut out: Vec<GroupMemberRow> = pairs
            .into_iter()
            .filter_map(|(group_id, uid)| {
                Some(GroupMemberRow {
                    group_id,
                    user: users.get(&uid)?.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            a.user
                .username
                .to_lowercase()
                .cmp(&b.user.username.to_lowercase())
        });
        Ok(out)
    }

    /// Applies a patch atomically: fields, then additions, then removals.
    pub async fn update_group(&self, id: Uuid, u: UpdateGroup<'_>) -> Result<GroupRow> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE groups SET name = $2, display_name = $3, avatar_url = $4, quota_allowance = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(u.name)
        .bind(u.display_name)
        .bind(u.avatar_url)
        .bind(u.quota_allowance)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO group_members (group_id, user_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(u.add_users)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = ANY($2)")
            .bind(id)
            .bind(u.remove_users)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.group(id).await
    }

    pub async fn delete_group(&self, id: Uuid) -> Result<()> {
        let done = sqlx::query("DELETE FROM groups WHERE id = $1 AND id <> organization_id")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
