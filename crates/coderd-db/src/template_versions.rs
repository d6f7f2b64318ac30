//! Template versions: creating one with its import job, reading and archiving them, and the
//! variables, parameters and presets their import found.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::jobs::{insert_job, NewJob};
use crate::model::{Parameter, ParameterOption, Variable};
use crate::{Result, Store};

/// A rich parameter's columns, named as [`Parameter`]'s fields (so that `to_jsonb` of them
/// decodes as one), in its order.
const PARAMETER_COLUMNS: &str = "name, display_name, description, type, form_type, mutable, \
     default_value, icon, options, validation_regex, validation_min, validation_max, \
     validation_error, validation_monotonic, required, ephemeral";

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct VersionRow {
    pub id: Uuid,
    pub template_id: Option<Uuid>,
    pub organization_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub name: String,
    pub message: String,
    pub readme: String,
    pub job_id: Uuid,
    pub created_by: Uuid,
    pub created_by_username: String,
    pub created_by_name: String,
    pub created_by_avatar_url: String,
    pub archived: bool,
    /// Whether the import job had completed when this row was read (what its completion
    /// writes, such as the readme, is then in the row).
    pub job_done: bool,
}

pub(crate) const VERSION_COLUMNS: &str =
    "v.id, v.template_id, v.organization_id, v.created_at, v.updated_at, \
    v.name, v.message, v.readme, v.job_id, v.created_by, u.username AS created_by_username, \
    u.name AS created_by_name, u.avatar_url AS created_by_avatar_url, v.archived, \
    COALESCE((SELECT j.completed_at IS NOT NULL FROM provisioner_jobs j WHERE j.id = v.job_id), false) AS job_done";
pub(crate) const VERSION_FROM: &str = "template_versions v JOIN users u ON u.id = v.created_by";

pub struct NewVersion<'a> {
    pub id: Uuid,
    pub template_id: Option<Uuid>,
    pub organization_id: Uuid,
    pub name: &'a str,
    pub message: &'a str,
    pub created_by: Uuid,
}

impl Store {
    /// Creates a version and its import job in one transaction.
    pub async fn insert_version(&self, v: NewVersion<'_>, job: NewJob<'_>) -> Result<VersionRow> {
        let mut tx = self.pool.begin().await?;
        insert_job(&mut tx, &job).await?;
        sqlx::query(
            "INSERT INTO template_versions (id, template_id, organization_id, created_at, updated_at, name, \
                 message, job_id, created_by) VALUES ($1, $2, $3, now(), now(), $4, $5, $6, $7)",
        )
        .bind(v.id)
        .bind(v.template_id)
        .bind(v.organization_id)
        .bind(v.name)
        .bind(v.message)
        .bind(job.id)
        .bind(v.created_by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.version(v.id).await
    }

    pub async fn version(&self, id: Uuid) -> Result<VersionRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE v.id = $1"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// A version, its import job and its rich parameters (as [`Store::version_parameters`]
    /// has them), in one statement: what building from it needs.
    pub async fn version_to_build(
        &self,
        id: Uuid,
    ) -> Result<(VersionRow, crate::JobRow, Vec<Parameter>)> {
        let (v, j, p): (Json<VersionRow>, Json<crate::JobRow>, Json<Vec<Parameter>>) =
            sqlx::query_as(&format!(
                "SELECT to_jsonb(v), to_jsonb(j), \
                     (SELECT COALESCE(jsonb_agg(to_jsonb(p) ORDER BY p.display_order), '[]') \
                      FROM (SELECT {PARAMETER_COLUMNS}, display_order FROM template_version_parameters \
                            WHERE template_version_id = v.id) p) \
                 FROM (SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE v.id = $1) v \
                 JOIN LATERAL (SELECT {JOB_COLUMNS} FROM provisioner_jobs j WHERE j.id = v.job_id) j ON true",
                JOB_COLUMNS = crate::jobs::JOB_COLUMNS,
            ))
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok((v.0, j.0, p.0))
    }

    pub async fn versions_by_ids(&self, ids: &[Uuid]) -> Result<Vec<VersionRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE v.id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn version_by_name(&self, template_id: Uuid, name: &str) -> Result<VersionRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE v.template_id = $1 AND lower(v.name) = lower($2)"
        ))
        .bind(template_id)
        .bind(name)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The version of the template created just before `before`.
    pub async fn previous_version(
        &self,
        template_id: Uuid,
        before: &VersionRow,
    ) -> Result<VersionRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE v.template_id = $1 \
               AND (v.created_at, v.id) < ($2, $3) ORDER BY v.created_at DESC, v.id DESC LIMIT 1"
        ))
        .bind(template_id)
        .bind(before.created_at)
        .bind(before.id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// A template's versions, oldest first, with keyset (`after`) or offset pagination.
    pub async fn list_versions(
        &self,
        template_id: Uuid,
        include_archived: bool,
        after: Option<Uuid>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<VersionRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE v.template_id = $1 AND ($2 OR NOT v.archived) \
               AND ($3::uuid IS NULL OR (v.created_at, v.id) > \
                    (SELECT created_at, id FROM template_versions WHERE id = $3)) \
             ORDER BY v.created_at, v.id LIMIT NULLIF($4, 0) OFFSET $5"
        ))
        .bind(template_id)
        .bind(include_archived)
        .bind(after)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn update_version(&self, id: Uuid, name: &str, message: &str) -> Result<VersionRow> {
        sqlx::query("UPDATE template_versions SET name = $2, message = $3, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(name)
            .bind(message)
            .execute(&self.pool)
            .await?;
        self.version(id).await
    }

    pub async fn set_version_archived(&self, id: Uuid, archived: bool) -> Result<()> {
        sqlx::query("UPDATE template_versions SET archived = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(archived)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Archives the template's versions that are not active (only failed imports unless `all`);
    /// returns their ids.
    pub async fn archive_unused_versions(&self, template_id: Uuid, all: bool) -> Result<Vec<Uuid>> {
        Ok(sqlx::query_scalar(
            "UPDATE template_versions v SET archived = true, updated_at = now() \
             FROM provisioner_jobs j, templates t \
             WHERE v.template_id = $1 AND t.id = v.template_id AND j.id = v.job_id \
               AND NOT v.archived AND v.id <> t.active_version_id \
               AND j.completed_at IS NOT NULL AND ($2 OR j.job_status = 'failed') \
             RETURNING v.id",
        )
        .bind(template_id)
        .bind(all)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A version's presets, in the template's order.
    pub async fn version_presets(&self, id: Uuid) -> Result<Vec<crate::model::StoredPreset>> {
        type Row = (
            Uuid,
            String,
            String,
            String,
            bool,
            Json<Vec<crate::model::PresetParameter>>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, name, description, icon, is_default, parameters FROM template_version_presets \
             WHERE template_version_id = $1 ORDER BY display_order",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, name, description, icon, default, parameters)| crate::model::StoredPreset {
                    id,
                    preset: crate::model::Preset {
                        name,
                        description,
                        icon,
                        default,
                        parameters: parameters.0,
                    },
                },
            )
            .collect())
    }

    pub async fn version_parameters(&self, id: Uuid) -> Result<Vec<Parameter>> {
        type Row = (
            String,
            String,
            String,
            String,
            String,
            bool,
            String,
            String,
            Json<Vec<ParameterOption>>,
            String,
            Option<i32>,
            Option<i32>,
            String,
            String,
            bool,
            bool,
        );
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {PARAMETER_COLUMNS} FROM template_version_parameters \
                 WHERE template_version_id = $1 ORDER BY display_order"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Parameter {
                name: r.0,
                display_name: r.1,
                description: r.2,
                kind: r.3,
                form_type: r.4,
                mutable: r.5,
                default_value: r.6,
                icon: r.7,
                options: r.8 .0,
                validation_regex: r.9,
                validation_min: r.10,
                validation_max: r.11,
                validation_error: r.12,
                validation_monotonic: r.13,
                required: r.14,
                ephemeral: r.15,
            })
            .collect())
    }

    pub async fn version_variables(&self, id: Uuid) -> Result<Vec<Variable>> {
        let rows: Vec<(String, String, String, String, String, bool, bool)> = sqlx::query_as(
            "SELECT name, description, type, value, default_value, required, sensitive \
             FROM template_version_variables WHERE template_version_id = $1 ORDER BY display_order",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Variable {
                name: r.0,
                description: r.1,
                kind: r.2,
                value: r.3,
                default_value: r.4,
                required: r.5,
                sensitive: r.6,
            })
            .collect())
    }
}
