//! Organizations and their members.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::{Result, Store, StoreError, UserRow};

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct OrganizationRow {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const ORG_COLUMNS: &str =
    "id, name, display_name, description, icon, is_default, created_at, updated_at";

pub struct NewOrganization<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    pub description: &'a str,
    pub icon: &'a str,
    /// Joins the new organization as its first member.
    pub creator: Uuid,
}

/// A user's membership of one organization.
#[derive(Debug, Clone, Deserialize, sqlx::FromRow)]
pub struct MembershipRow {
    pub organization_id: Uuid,
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct MemberWithUserRow {
    pub membership: MembershipRow,
    pub user: UserRow,
}

impl Store {
    /// Creates an organization with its Everyone group and its creator as first member.
    pub async fn insert_organization(&self, org: NewOrganization<'_>) -> Result<OrganizationRow> {
        let mut tx = self.pool.begin().await?;
        let row: OrganizationRow = sqlx::query_as(&format!(
            "INSERT INTO organizations (id, name, display_name, description, icon, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, now(), now()) RETURNING {ORG_COLUMNS}"
        ))
        .bind(Uuid::new_v4())
        .bind(org.name)
        .bind(org.display_name)
        .bind(org.description)
        .bind(org.icon)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO groups (id, name, organization_id) VALUES ($1, 'Everyone', $1)")
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO organization_members (user_id, organization_id, created_at, updated_at) \
             VALUES ($1, $2, now(), now())",
        )
        .bind(org.creator)
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn default_organization(&self) -> Result<OrganizationRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations WHERE is_default"
        ))
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn organization_by_id(&self, id: Uuid) -> Result<OrganizationRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn organizations_by_ids(&self, ids: &[Uuid]) -> Result<Vec<OrganizationRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations WHERE id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn organization_by_name(&self, name: &str) -> Result<OrganizationRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations WHERE lower(name) = lower($1)"
        ))
        .bind(name)
        .fetch_one(&self.pool)
        .await?)
    }

    /// All organizations, or only those `member_of` belongs to.
    pub async fn list_organizations(
        &self,
        member_of: Option<Uuid>,
    ) -> Result<Vec<OrganizationRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations o WHERE $1::uuid IS NULL OR EXISTS \
                 (SELECT 1 FROM organization_members m WHERE m.organization_id = o.id AND m.user_id = $1) \
             ORDER BY is_default DESC, lower(name)"
        ))
        .bind(member_of)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn update_organization(
        &self,
        id: Uuid,
        name: &str,
        display_name: &str,
        description: &str,
        icon: &str,
    ) -> Result<OrganizationRow> {
        Ok(sqlx::query_as(&format!(
            "UPDATE organizations SET name = $2, display_name = $3, description = $4, icon = $5, \
                 updated_at = now() WHERE id = $1 RETURNING {ORG_COLUMNS}"
        ))
        .bind(id)
        .bind(name)
        .bind(display_name)
        .bind(description)
        .bind(icon)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn delete_organization(&self, id: Uuid) -> Result<()> {
        let done = sqlx::query("DELETE FROM organizations WHERE id = $1 AND NOT is_default")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // -- members -----------------------------------------------------------------------------

    pub async fn membership(&self, org: Uuid, user: Uuid) -> Result<MembershipRow> {
        Ok(sqlx::query_as(
            "SELECT organization_id, roles, created_at, updated_at FROM organization_members \
             WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(org)
        .bind(user)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Adds a member; `Conflict` when already one.
    pub async fn insert_member(&self, org: Uuid, user: Uuid) -> Result<MembershipRow> {
        Ok(sqlx::query_as(
            "INSERT INTO organization_members (user_id, organization_id, created_at, updated_at) \
             VALUES ($2, $1, now(), now()) RETURNING organization_id, roles, created_at, updated_at",
        )
        .bind(org)
        .bind(user)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Removes a member from the organization and from its groups.
    pub async fn delete_member(&self, org: Uuid, user: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(org)
        .bind(user)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "DELETE FROM group_members gm USING groups g \
             WHERE gm.group_id = g.id AND g.organization_id = $1 AND gm.user_id = $2",
        )
        .bind(org)
        .bind(user)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn update_member_roles(
        &self,
        org: Uuid,
        user: Uuid,
        roles: &[String],
    ) -> Result<MembershipRow> {
        Ok(sqlx::query_as(
            "UPDATE organization_members SET roles = $3, updated_at = now() \
             WHERE organization_id = $1 AND user_id = $2 \
             RETURNING organization_id, roles, created_at, updated_at",
        )
        .bind(org)
        .bind(user)
        .bind(roles)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Members of an organization with their user rows, ordered by username.
    pub async fn list_members(&self, org: Uuid) -> Result<Vec<MemberWithUserRow>> {
        let members: Vec<(Uuid, MembershipRow)> = sqlx::query_as::<_, (Uuid, Vec<String>, DateTime<Utc>, DateTime<Utc>)>(
            "SELECT user_id, roles, created_at, updated_at FROM organization_members WHERE organization_id = $1",
        )
        .bind(org)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(user_id, roles, created_at, updated_at)| {
            (
                user_id,
                MembershipRow {
                    organization_id: org,
                    roles,
                    created_at,
                    updated_at,
                },
            )
        })
        .collect();
        let ids: Vec<Uuid> = members.iter().map(|(id, _)| *id).collect();
        let mut users = self.users_by_ids(&ids).await?;
        users.sort_by_key(|u| u.username.to_lowercase());
        let mut by_user: std::collections::HashMap<Uuid, MembershipRow> =
            members.into_iter().collect();
        Ok(users
            .into_iter()
            .filter_map(|user| {
                let membership = by_user.remove(&user.id)?;
                Some(MemberWithUserRow { membership, user })
            })
            .collect())
    }
}
