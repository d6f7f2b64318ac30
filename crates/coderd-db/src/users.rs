//! Users (with their preferences and Git SSH keys).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub name: String,
    pub hashed_password: String,
    pub avatar_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub status: String,
    pub login_type: String,
    pub rbac_roles: Vec<String>,
    pub theme_preference: String,
    pub deleted: bool,
    /// Organizations the user is a member of, in the order they joined.
    pub organization_ids: Vec<Uuid>,
}

pub(crate) const USER_COLUMNS: &str =
    "u.id, u.email, u.username, u.name, u.hashed_password, u.avatar_url, \
    u.created_at, u.updated_at, u.last_seen_at, u.status::text AS status, \
    u.login_type::text AS login_type, u.rbac_roles, u.theme_preference, u.deleted, \
    ARRAY(SELECT m.organization_id FROM organization_members m WHERE m.user_id = u.id \
          ORDER BY m.created_at, m.organization_id) AS organization_ids";

pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub username: &'a str,
    pub name: &'a str,
    pub hashed_password: &'a str,
    pub login_type: &'a str,
    pub status: &'a str,
    pub rbac_roles: &'a [String],
    pub organization_ids: &'a [Uuid],
}

/// Filters of `GET /users?q=`.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    /// Case-insensitive substring of username or email.
    pub search: String,
    pub status: Vec<String>,
    pub role: Vec<String>,
    pub login_type: Vec<String>,
    pub created_before: Option<DateTime<Utc>>,
    pub created_after: Option<DateTime<Utc>>,
    pub last_seen_before: Option<DateTime<Utc>>,
    pub last_seen_after: Option<DateTime<Utc>>,
    /// Keyset pagination: only users ordered after this one.
    pub after_id: Option<Uuid>,
    /// Only this user (what a plain member may see).
    pub only_user: Option<Uuid>,
    pub limit: i64,
    pub offset: i64,
}

impl Store {
    /// Creates the first user unless any user exists: `Ok(None)` when one already does. The
    /// check and insert run under a transaction-scoped advisory lock so that concurrent first
    /// users cannot both win.
    pub async fn insert_first_user(&self, user: NewUser<'_>) -> Result<Option<UserRow>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('coderd:first-user'))")
            .execute(&mut *tx)
            .await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE NOT is_system)")
                .fetch_one(&mut *tx)
                .await?;
        if exists {
            return Ok(None);
        }
        let id = insert_user_tx(&mut tx, &user).await?;
        tx.commit().await?;
        self.user_by_id(id).await.map(Some)
    }

    pub async fn insert_user(&self, user: NewUser<'_>) -> Result<UserRow> {
        let mut tx = self.pool.begin().await?;
        let id = insert_user_tx(&mut tx, &user).await?;
        tx.commit().await?;
        self.user_by_id(id).await
    }

    pub async fn user_count(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM users WHERE NOT deleted AND NOT is_system")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn user_by_id(&self, id: Uuid) -> Result<UserRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1 AND NOT u.deleted"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Case-insensitive lookup by username or email.
    pub async fn user_by_username_or_email(&self, name: &str) -> Result<UserRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u \
             WHERE (lower(u.username) = lower($1) OR lower(u.email) = lower($1)) AND NOT u.deleted AND NOT u.is_system \
             LIMIT 1"
        ))
        .bind(name)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn users_by_ids(&self, ids: &[Uuid]) -> Result<Vec<UserRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = ANY($1) AND NOT u.deleted"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    /// One page of users matching `f`, and how many match in all.
    pub async fn list_users(&self, f: &UserFilter) -> Result<(Vec<UserRow>, i64)> {
        let mut qb = sqlx::QueryBuilder::new(format!(
            "SELECT {USER_COLUMNS}, count(*) OVER () AS total FROM users u WHERE NOT u.deleted AND NOT u.is_system"
        ));
        if !f.search.is_empty() {
            qb.push(" AND (u.username ILIKE '%' || ")
                .push_bind(&f.search)
                .push(" || '%' OR u.email ILIKE '%' || ")
                .push_bind(&f.search)
                .push(" || '%')");
        }
        if !f.status.is_empty() {
            qb.push(" AND u.status::text = ANY(")
                .push_bind(&f.status)
                .push(")");
        }
        if !f.role.is_empty() {
            qb.push(" AND u.rbac_roles && ").push_bind(&f.role);
        }
        if !f.login_type.is_empty() {
            qb.push(" AND u.login_type::text = ANY(")
                .push_bind(&f.login_type)
                .push(")");
        }
        for (col, op, v) in [
            ("created_at", "<", f.created_before),
            ("created_at", ">", f.created_after),
            ("last_seen_at", "<", f.last_seen_before),
            ("last_seen_at", ">", f.last_seen_after),
        ] {
            if let Some(v) = v {
                qb.push(format!(" AND u.{col} {op} ")).push_bind(v);
            }
        }
        if let Some(id) = f.only_user {
            qb.push(" AND u.id = ").push_bind(id);
        }
        if let Some(after) = f.after_id {
            qb.push(" AND lower(u.username) > (SELECT lower(username) FROM users WHERE id = ")
                .push_bind(after)
                .push(")");
        }
        qb.push(" ORDER BY lower(u.username) ASC");
        if f.limit > 0 {
            qb.push(" LIMIT ").push_bind(f.limit);
        }
        if f.offset > 0 {
            qb.push(" OFFSET ").push_bind(f.offset);
        }
        let rows: Vec<(UserRow, i64)> = qb
            .build()
            .try_map(|row: sqlx::postgres::PgRow| {
                use sqlx::{FromRow, Row};
                Ok((UserRow::from_row(&row)?, row.try_get::<i64, _>("total")?))
            })
            .fetch_all(&self.pool)
            .await?;
        let total = match rows.first() {
            Some((_, t)) => *t,
            // The page may be past the end while other rows match: count them separately.
            None if f.offset > 0 || f.after_id.is_some() => {
                let mut g = f.clone();
                g.offset = 0;
                g.limit = 0;
                g.after_id = None;
                return Box::pin(self.list_users(&g))
                    .await
                    .map(|(_, t)| (Vec::new(), t));
            }
            None => 0,
        };
        Ok((rows.into_iter().map(|(u, _)| u).collect(), total))
    }

    pub async fn update_user_profile(
        &self,
        id: Uuid,
        username: &str,
        name: &str,
    ) -> Result<UserRow> {
        sqlx::query("UPDATE users SET username = $2, name = $3, updated_at = now() WHERE id = $1 AND NOT deleted")
            .bind(id)
            .bind(username)
            .bind(name)
            .execute(&self.pool)
            .await?;
        self.user_by_id(id).await
    }

    pub async fn update_user_status(&self, id: Uuid, status: &str) -> Result<UserRow> {
        sqlx::query(
            "UPDATE users SET status = $2::user_status, updated_at = now() WHERE id = $1 AND NOT deleted",
        )
        .bind(id)
        .bind(status)
        .execute(&self.pool)
        .await?;
        self.user_by_id(id).await
    }

    pub async fn update_user_roles(&self, id: Uuid, roles: &[String]) -> Result<UserRow> {
        sqlx::query(
            "UPDATE users SET rbac_roles = $2, updated_at = now() WHERE id = $1 AND NOT deleted",
        )
        .bind(id)
        .bind(roles)
        .execute(&self.pool)
        .await?;
        self.user_by_id(id).await
    }

    /// The user's quiet hours schedule (empty: the deployment default).
    pub async fn quiet_hours(&self, id: Uuid) -> Result<String> {
        Ok(
            sqlx::query_scalar("SELECT quiet_hours_schedule FROM users WHERE id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn set_quiet_hours(&self, id: Uuid, schedule: &str) -> Result<()> {
        sqlx::query("UPDATE users SET quiet_hours_schedule = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(schedule)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user's theme preference and terminal font.
    pub async fn appearance(&self, id: Uuid) -> Result<(String, String)> {
        Ok(
            sqlx::query_as("SELECT theme_preference, terminal_font FROM users WHERE id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn set_appearance(&self, id: Uuid, theme: &str, font: &str) -> Result<()> {
        sqlx::query(
            "UPDATE users SET theme_preference = $2, terminal_font = $3, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(theme)
        .bind(font)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest value of each non-ephemeral parameter of the user's start builds of
    /// `template`, newest first (at most 100): what a new workspace's form is filled with.
    pub async fn autofill_parameters(
        &self,
        user: Uuid,
        template: Uuid,
    ) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT name, value FROM ( \
               SELECT DISTINCT ON (p.name) p.name, p.value, b.created_at \
               FROM workspace_build_parameters p \
               JOIN workspace_builds b ON b.id = p.workspace_build_id \
               JOIN workspaces w ON w.id = b.workspace_id \
               JOIN template_version_parameters tp \
                 ON tp.template_version_id = b.template_version_id AND tp.name = p.name \
               WHERE w.owner_id = $1 AND w.template_id = $2 AND b.transition = 'start' \
                 AND NOT tp.ephemeral \
               ORDER BY p.name, b.created_at DESC) latest \
             ORDER BY created_at DESC, name LIMIT 100",
        )
        .bind(user)
        .bind(template)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Sets a new password hash and signs the user out everywhere but `keep_key`.
    pub async fn update_user_password(
        &self,
        id: Uuid,
        hashed: &str,
        keep_key: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET hashed_password = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(hashed)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_keys WHERE user_id = $1 AND login_type <> 'token' AND id <> COALESCE($2, '')")
            .bind(id)
            .bind(keep_key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks the user deleted and removes their keys and memberships, atomically.
    pub async fn delete_user(&self, id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET deleted = true, updated_at = now() WHERE id = $1 AND NOT deleted",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        for q in [
            "DELETE FROM api_keys WHERE user_id = $1",
            "DELETE FROM organization_members WHERE user_id = $1",
            "DELETE FROM group_members WHERE user_id = $1",
        ] {
            sqlx::query(q).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_user_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    user: &NewUser<'_>,
) -> Result<Uuid> {
    sqlx::query(
        "INSERT INTO users (id, email, username, name, hashed_password, created_at, updated_at, \
             status, login_type, rbac_roles) \
         VALUES ($1, $2, $3, $4, $5, now(), now(), $6::user_status, $7::login_type, $8)",
    )
    .bind(user.id)
    .bind(user.email)
    .bind(user.username)
    .bind(user.name)
    .bind(user.hashed_password)
    .bind(user.status)
    .bind(user.login_type)
    .bind(user.rbac_roles)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO organization_members (user_id, organization_id, created_at, updated_at) \
         SELECT $1, unnest($2::uuid[]), now(), now()",
    )
    .bind(user.id)
    .bind(user.organization_ids)
    .execute(&mut **tx)
    .await?;
    Ok(user.id)
}

/// A user's Git SSH key, without its private half.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GitSshKeyRow {
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub public_key: String,
}

impl Store {
    /// The user's key pair as (private key, public key), for their workspaces' agents.
    pub async fn git_ssh_key_pair(&self, user: Uuid) -> Result<Option<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT private_key, public_key FROM gitsshkeys WHERE user_id = $1")
                .bind(user)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn git_ssh_key(&self, user: Uuid) -> Result<Option<GitSshKeyRow>> {
        Ok(sqlx::query_as(
            "SELECT user_id, created_at, updated_at, public_key FROM gitsshkeys WHERE user_id = $1",
        )
        .bind(user)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Stores the key pair unless the user already has one; returns the stored key either way
    /// (so two first reads racing agree on one key).
    pub async fn ensure_git_ssh_key(
        &self,
        user: Uuid,
        private_key: &str,
        public_key: &str,
    ) -> Result<GitSshKeyRow> {
        // The outer SELECT cannot see the row this statement inserts, hence the union.
        Ok(sqlx::query_as(
            "WITH ins AS (
                INSERT INTO gitsshkeys (user_id, created_at, updated_at, private_key, public_key)
                VALUES ($1, now(), now(), $2, $3)
                ON CONFLICT (user_id) DO NOTHING
                RETURNING user_id, created_at, updated_at, public_key
            )
            SELECT * FROM ins
            UNION ALL
            SELECT user_id, created_at, updated_at, public_key FROM gitsshkeys
            WHERE user_id = $1 AND NOT EXISTS (SELECT 1 FROM ins)",
        )
        .bind(user)
        .bind(private_key)
        .bind(public_key)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Replaces the user's key pair (creating it if there was none).
    pub async fn replace_git_ssh_key(
        &self,
        user: Uuid,
        private_key: &str,
        public_key: &str,
    ) -> Result<GitSshKeyRow> {
        Ok(sqlx::query_as(
            "INSERT INTO gitsshkeys (user_id, created_at, updated_at, private_key, public_key)
             VALUES ($1, now(), now(), $2, $3)
             ON CONFLICT (user_id) DO UPDATE
                SET private_key = EXCLUDED.private_key,
                    public_key = EXCLUDED.public_key,
                    updated_at = now()
             RETURNING user_id, created_at, updated_at, public_key",
        )
        .bind(user)
        .bind(private_key)
        .bind(public_key)
        .fetch_one(&self.pool)
        .await?)
    }
}
