//! Provisioner daemons: registration, the heartbeat that keeps them listed, and their purge.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{Result, Store};

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct DaemonRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub name: String,
    pub provisioners: Vec<String>,
    pub organization_id: Option<Uuid>,
    pub tags: Json<BTreeMap<String, String>>,
    pub last_seen_at: DateTime<Utc>,
    pub version: String,
    pub api_version: String,
    pub current_job_id: Option<Uuid>,
    pub previous_job_id: Option<Uuid>,
}

pub(crate) const DAEMON_COLUMNS: &str =
    "id, created_at, name, provisioners::text[] AS provisioners, \
    organization_id, tags, last_seen_at, version, api_version, current_job_id, previous_job_id";

pub struct NewDaemon<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub provisioners: &'a [String],
    pub tags: &'a BTreeMap<String, String>,
    pub version: &'a str,
}

impl Store {
    pub async fn register_daemon(&self, d: NewDaemon<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO provisioner_daemons (id, created_at, name, provisioners, tags, last_seen_at, version, api_version) \
             VALUES ($1, now(), $2, $3::provisioner_type[], $4, now(), $5, '1.0')",
        )
        .bind(d.id)
        .bind(d.name)
        .bind(d.provisioners)
        .bind(Json(d.tags))
        .bind(d.version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn daemon_seen(&self, id: Uuid) -> Result<()> {
        sqlx::query("UPDATE provisioner_daemons SET last_seen_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes daemons registered and last seen before `before` (upstream's purge keeps a
    /// week); answers how many went.
    pub async fn delete_old_daemons(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM provisioner_daemons WHERE created_at < $1 AND last_seen_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    pub async fn delete_daemon(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM provisioner_daemons WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Daemons serving an organization (built-in daemons serve all), most recently seen first.
    pub async fn list_daemons(&self, org: Uuid) -> Result<Vec<DaemonRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DAEMON_COLUMNS} FROM provisioner_daemons \
             WHERE organization_id IS NULL OR organization_id = $1 ORDER BY last_seen_at DESC, name"
        ))
        .bind(org)
        .fetch_all(&self.pool)
        .await?)
    }
}
