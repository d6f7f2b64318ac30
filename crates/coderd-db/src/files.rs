//! Uploaded files (template archives), deduplicated per uploader by content hash.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    pub id: Uuid,
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub created_by: Uuid,
    pub mimetype: String,
    pub data: Vec<u8>,
}

impl Store {
    /// Stores `data` unless the same uploader already stored the same bytes. Returns the file id
    /// and whether it is new.
    pub async fn insert_file(
        &self,
        hash: &str,
        created_by: Uuid,
        mimetype: &str,
        data: &[u8],
    ) -> Result<(Uuid, bool)> {
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO files (id, hash, created_at, created_by, mimetype, data) \
             VALUES ($1, $2, now(), $3, $4, $5) ON CONFLICT (hash, created_by) DO NOTHING RETURNING id",
        )
        .bind(Uuid::new_v4())
        .bind(hash)
        .bind(created_by)
        .bind(mimetype)
        .bind(data)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(id) = inserted {
            return Ok((id, true));
        }
        let id = sqlx::query_scalar("SELECT id FROM files WHERE hash = $1 AND created_by = $2")
            .bind(hash)
            .bind(created_by)
            .fetch_one(&self.pool)
            .await?;
        Ok((id, false))
    }

    pub async fn file(&self, id: Uuid) -> Result<FileRow> {
        Ok(sqlx::query_as(
            "SELECT id, hash, created_at, created_by, mimetype, data FROM files WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }
}
