//! API keys: issuing them, what authentication reads about one (with its user, memberships
//! and groups) in one query, recording their use, and revoking them.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{MembershipRow, Result, Store, StoreError};

/// What authentication needs about a token, read in one query.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActorRow {
    pub key_id: String,
    pub hashed_secret: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub last_used: DateTime<Utc>,
    pub lifetime_seconds: i64,
    pub login_type: String,
    pub scope: String,
    pub user_id: Uuid,
    pub username: String,
    pub user_status: String,
    pub user_deleted: bool,
    pub rbac_roles: Vec<String>,
    pub memberships: Json<Vec<MembershipRow>>,
    pub groups: Vec<Uuid>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub user_id: Uuid,
    pub last_used: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub login_type: String,
    pub scope: String,
    pub token_name: String,
    pub lifetime_seconds: i64,
}

const KEY_COLUMNS: &str = "id, user_id, last_used, expires_at, created_at, updated_at, \
    login_type::text AS login_type, scope::text AS scope, token_name, lifetime_seconds";

pub struct NewApiKey<'a> {
    pub id: &'a str,
    pub hashed_secret: &'a [u8],
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub lifetime_seconds: i64,
    pub login_type: &'a str,
    pub scope: &'a str,
    pub token_name: &'a str,
    /// The address of the client the key is issued to.
    pub ip_address: Option<std::net::IpAddr>,
}

impl Store {
    pub async fn insert_api_key(&self, key: NewApiKey<'_>) -> Result<ApiKeyRow> {
        Ok(sqlx::query_as(&format!(
            "INSERT INTO api_keys (id, hashed_secret, user_id, expires_at, created_at, updated_at, \
                 login_type, lifetime_seconds, scope, token_name, ip_address) \
             SELECT $1, $2, $3, $4, now(), now(), $5::login_type, $6, $7::api_key_scope, $8, $9::inet \
             FROM users WHERE id = $3 AND NOT deleted \
             RETURNING {KEY_COLUMNS}"
        ))
        .bind(key.id)
        .bind(key.hashed_secret)
        .bind(key.user_id)
        .bind(key.expires_at)
        .bind(key.login_type)
        .bind(key.lifetime_seconds)
        .bind(key.scope)
        .bind(key.token_name)
        .bind(key.ip_address.map(|ip| ip.to_string()))
        .fetch_one(&self.pool)
        .await?)
    }

    /// The key with `id`, its user, the user's memberships and explicit groups: everything
    /// authentication and authorization need, in one round trip.
    pub async fn actor_by_key_id(&self, id: &str) -> Result<ActorRow> {
        Ok(sqlx::query_as(
            "SELECT k.id AS key_id, k.hashed_secret, k.expires_at, k.last_used, k.lifetime_seconds, \
                 k.login_type::text AS login_type, k.scope::text AS scope, \
                 u.id AS user_id, u.username, u.status::text AS user_status, u.deleted AS user_deleted, \
                 u.rbac_roles, \
                 COALESCE((SELECT json_agg(json_build_object('organization_id', m.organization_id, \
                     'roles', m.roles, 'created_at', m.created_at, 'updated_at', m.updated_at)) \
                     FROM organization_members m WHERE m.user_id = u.id), '[]'::json) AS memberships, \
                 ARRAY(SELECT gm.group_id FROM group_members gm WHERE gm.user_id = u.id) AS groups \
             FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records use of a key: last use, client address, a slid expiry, and the user's last sighting
    /// (a dormant user becomes active again).
    /// `slide_to` is the new expiry, if it slides: it is written only over a key that has not
    /// expired meanwhile, never an expiry read earlier (a cached row may be stale).
    pub async fn touch_api_key(
        &self,
        id: &str,
        user_id: Uuid,
        ip: Option<std::net::IpAddr>,
        slide_to: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE api_keys SET last_used = now(), ip_address = $2::inet, updated_at = now(), \
                 expires_at = CASE WHEN $3::timestamptz IS NOT NULL AND expires_at > now() \
                                   THEN $3 ELSE expires_at END \
             WHERE id = $1",
        )
        .bind(id)
        .bind(ip.map(|ip| ip.to_string()))
        .bind(slide_to)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE users SET last_seen_at = now(), \
                 status = CASE WHEN status = 'dormant' THEN 'active'::user_status ELSE status END \
             WHERE id = $1",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn api_key(&self, id: &str) -> Result<ApiKeyRow> {
        Ok(
            sqlx::query_as(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
                .bind(id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn api_key_by_name(&self, user_id: Uuid, name: &str) -> Result<ApiKeyRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1 AND token_name = $2 AND login_type = 'token'"
        ))
        .bind(user_id)
        .bind(name)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Tokens (login type `token`); of one user, or of everyone when `user_id` is `None`.
    pub async fn list_tokens(&self, user_id: Option<Uuid>) -> Result<Vec<ApiKeyRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys \
             WHERE login_type = 'token' AND ($1::uuid IS NULL OR user_id = $1) ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn delete_api_key(&self, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Logout: the current key and all of the user's application-connect keys.
    pub async fn delete_session_keys(&self, user_id: Uuid, current: &str) -> Result<()> {
        sqlx::query("DELETE FROM api_keys WHERE id = $2 OR (user_id = $1 AND scope = 'application_connect')")
            .bind(user_id)
            .bind(current)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
