//! Templates: creation around an imported version, the listing and its search, settings and
//! access lists.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct TemplateRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub organization_id: Uuid,
    pub organization_name: String,
    pub organization_display_name: String,
    pub organization_icon: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub provisioner: String,
    pub active_version_id: Uuid,
    pub created_by: Uuid,
    pub created_by_username: String,
    pub user_acl: Json<HashMap<Uuid, String>>,
    pub group_acl: Json<HashMap<Uuid, String>>,
    pub default_ttl: i64,
    pub activity_bump: i64,
    pub failure_ttl: i64,
    pub time_til_dormant: i64,
    pub time_til_dormant_autodelete: i64,
    pub autostop_requirement_days_of_week: Vec<String>,
    pub autostop_requirement_weeks: i64,
    pub autostart_allowed_days: Vec<String>,
    pub allow_user_autostart: bool,
    pub allow_user_autostop: bool,
    pub allow_user_cancel_workspace_jobs: bool,
    pub require_active_version: bool,
    pub deprecated: String,
    pub max_port_sharing_level: String,
    pub cors_behavior: String,
    pub use_classic_parameter_flow: bool,
}

pub(crate) const TEMPLATE_COLUMNS: &str = "t.id, t.created_at, t.updated_at, t.organization_id, \
    o.name AS organization_name, o.display_name AS organization_display_name, o.icon AS organization_icon, \
    t.name, t.display_name, t.description, t.icon, t.provisioner::text AS provisioner, t.active_version_id, \
    t.created_by, u.username AS created_by_username, t.user_acl, t.group_acl, t.default_ttl, \
    t.activity_bump, t.failure_ttl, t.time_til_dormant, t.time_til_dormant_autodelete, \
    t.autostop_requirement_days_of_week, t.autostop_requirement_weeks, t.autostart_allowed_days, \
    t.allow_user_autostart, t.allow_user_autostop, t.allow_user_cancel_workspace_jobs, \
    t.require_active_version, t.deprecated, t.max_port_sharing_level, t.cors_behavior, \
    t.use_classic_parameter_flow";
pub(crate) const TEMPLATE_FROM: &str =
    "templates t JOIN organizations o ON o.id = t.organization_id JOIN users u ON u.id = t.created_by";

/// What a template list asks for (Coder's template search, `?q=`). Names compare
/// case-insensitively; `fuzzy_*` match substrings.
#[derive(Debug, Default, Clone)]
pub struct TemplateSearch {
    pub organization_id: Option<Uuid>,
    /// Deleted templates instead of the others.
    pub deleted: bool,
    pub exact_name: Option<String>,
    pub exact_display_name: Option<String>,
    pub fuzzy_name: Option<String>,
    /// The display name, or the name of a template without one.
    pub fuzzy_display_name: Option<String>,
    pub ids: Vec<Uuid>,
    pub deprecated: Option<bool>,
    pub author_id: Option<Uuid>,
    pub author_username: Option<String>,
    /// Nothing can match (e.g. asking for AI tasks, which no version here declares).
    pub match_none: bool,
}

/// Every settable field of a template (create and update use the same shape).
#[derive(Debug, Clone)]
pub struct TemplateFields {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub default_ttl: i64,
    pub activity_bump: i64,
    pub failure_ttl: i64,
    pub time_til_dormant: i64,
    pub time_til_dormant_autodelete: i64,
    pub autostop_requirement_days_of_week: Vec<String>,
    pub autostop_requirement_weeks: i64,
    pub autostart_allowed_days: Vec<String>,
    pub allow_user_autostart: bool,
    pub allow_user_autostop: bool,
    pub allow_user_cancel_workspace_jobs: bool,
    pub require_active_version: bool,
    pub deprecated: String,
    pub max_port_sharing_level: String,
    pub cors_behavior: String,
    pub use_classic_parameter_flow: bool,
}

/// Which templates a caller may see, pushed into the listing query.
#[derive(Debug, Clone, Default)]
pub struct TemplateVisibility {
    /// Sees every template (site-wide readers).
    pub all: bool,
    /// Sees every template of these organizations.
    pub orgs: Vec<Uuid>,
    pub user_id: Uuid,
    /// Groups the caller belongs to, Everyone groups (= member organizations) included.
    pub groups: Vec<Uuid>,
}

#[derive(Debug)]
pub enum CreateTemplateError {
    VersionNotFound,
    VersionInTemplate,
    VersionArchived,
    Store(StoreError),
}

impl From<StoreError> for CreateTemplateError {
    fn from(e: StoreError) -> Self {
        CreateTemplateError::Store(e)
    }
}

impl From<sqlx::Error> for CreateTemplateError {
    fn from(e: sqlx::Error) -> Self {
        CreateTemplateError::Store(e.into())
    }
}

impl Store {
    /// Templates by id, deleted ones included (jobs outlive their template).
    pub async fn templates_by_ids(&self, ids: &[Uuid]) -> Result<Vec<TemplateRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM {TEMPLATE_FROM} WHERE t.id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Creates a template around an imported version (which joins it and becomes active).
    pub async fn insert_template(
        &self,
        org: Uuid,
        version_id: Uuid,
        created_by: Uuid,
        fields: &TemplateFields,
        everyone_use: bool,
    ) -> std::result::Result<TemplateRow, CreateTemplateError> {
        let mut tx = self.pool.begin().await?;
        let version: Option<(Option<Uuid>, bool, Uuid, String)> = sqlx::query_as(
            "SELECT v.template_id, v.archived, v.organization_id, j.provisioner::text FROM template_versions v \
             JOIN provisioner_jobs j ON j.id = v.job_id WHERE v.id = $1 FOR UPDATE OF v",
        )
        .bind(version_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((existing, archived, version_org, provisioner)) = version else {
            return Err(CreateTemplateError::VersionNotFound);
        };
        if version_org != org {
            return Err(CreateTemplateError::VersionNotFound);
        }
        if existing.is_some() {
            return Err(CreateTemplateError::VersionInTemplate);
        }
        if archived {
            return Err(CreateTemplateError::VersionArchived);
        }
        let id = Uuid::new_v4();
        let group_acl: HashMap<Uuid, &str> = if everyone_use {
            HashMap::from([(org, "use")])
        } else {
            HashMap::new()
        };
        sqlx::query(
            "INSERT INTO templates (id, created_at, updated_at, organization_id, name, display_name, description, icon, \
                 provisioner, active_version_id, created_by, group_acl, default_ttl, activity_bump, failure_ttl, \
                 time_til_dormant, time_til_dormant_autodelete, autostop_requirement_days_of_week, \
                 autostop_requirement_weeks, autostart_allowed_days, allow_user_autostart, allow_user_autostop, \
                 allow_user_cancel_workspace_jobs, require_active_version, deprecated, max_port_sharing_level, \
                 cors_behavior, use_classic_parameter_flow) \
             VALUES ($1, now(), now(), $2, $3, $4, $5, $6, $7::provisioner_type, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)",
        )
        .bind(id)
        .bind(org)
        .bind(&fields.name)
        .bind(&fields.display_name)
        .bind(&fields.description)
        .bind(&fields.icon)
        .bind(&provisioner)
        .bind(version_id)
        .bind(created_by)
        .bind(Json(&group_acl))
        .bind(fields.default_ttl)
        .bind(fields.activity_bump)
        .bind(fields.failure_ttl)
        .bind(fields.time_til_dormant)
        .bind(fields.time_til_dormant_autodelete)
        .bind(&fields.autostop_requirement_days_of_week)
        .bind(fields.autostop_requirement_weeks)
        .bind(&fields.autostart_allowed_days)
        .bind(fields.allow_user_autostart)
        .bind(fields.allow_user_autostop)
        .bind(fields.allow_user_cancel_workspace_jobs)
        .bind(fields.require_active_version)
        .bind(&fields.deprecated)
        .bind(&fields.max_port_sharing_level)
        .bind(&fields.cors_behavior)
        .bind(fields.use_classic_parameter_flow)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        sqlx::query(
            "UPDATE template_versions SET template_id = $2, updated_at = now() WHERE id = $1",
        )
        .bind(version_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(self.template(id).await?)
    }

    pub async fn template(&self, id: Uuid) -> Result<TemplateRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM {TEMPLATE_FROM} WHERE t.id = $1 AND NOT t.deleted"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn template_by_name(&self, org: Uuid, name: &str) -> Result<TemplateRow> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM {TEMPLATE_FROM} \
             WHERE t.organization_id = $1 AND lower(t.name) = lower($2) AND NOT t.deleted"
        ))
        .bind(org)
        .bind(name)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Templates the caller may see that match `f`, ordered by name.
    pub async fn list_templates(
        &self,
        f: &TemplateSearch,
        vis: &TemplateVisibility,
    ) -> Result<Vec<TemplateRow>> {
        if f.match_none {
            return Ok(Vec::new());
        }
        let groups: Vec<String> = vis.groups.iter().map(Uuid::to_string).collect();
        let mut qb = sqlx::QueryBuilder::new(format!(
            "SELECT {TEMPLATE_COLUMNS} FROM {TEMPLATE_FROM} WHERE t.deleted = "
        ));
        qb.push_bind(f.deleted)
            .push(" AND (")
            .push_bind(vis.all)
            .push(" OR t.organization_id = ANY(")
            .push_bind(vis.orgs.clone())
            .push(") OR t.user_acl ? ")
            .push_bind(vis.user_id.to_string())
            .push(" OR t.group_acl ?| ")
            .push_bind(groups)
            .push(")");
        if let Some(org) = f.organization_id {
            qb.push(" AND t.organization_id = ").push_bind(org);
        }
        if let Some(n) = &f.exact_name {
            qb.push(" AND lower(t.name) = lower(")
                .push_bind(n.clone())
                .push(")");
        }
        if let Some(n) = &f.exact_display_name {
            qb.push(" AND lower(t.display_name) = lower(")
                .push_bind(n.clone())
                .push(")");
        }
        if let Some(n) = &f.fuzzy_name {
            qb.push(" AND strpos(lower(t.name), lower(")
                .push_bind(n.clone())
                .push(")) > 0");
        }
        if let Some(n) = &f.fuzzy_display_name {
            // Templates without a display name match on their name (which has no spaces).
            qb.push(
                " AND CASE WHEN t.display_name <> '' THEN strpos(lower(t.display_name), lower(",
            )
            .push_bind(n.clone())
            .push(")) > 0 ELSE strpos(lower(t.name), replace(lower(")
            .push_bind(n.clone())
            .push("), ' ', '')) > 0 END");
        }
        if !f.ids.is_empty() {
            qb.push(" AND t.id = ANY(")
                .push_bind(f.ids.clone())
                .push(")");
        }
        if let Some(d) = f.deprecated {
            qb.push(if d {
                " AND t.deprecated <> ''"
            } else {
                " AND t.deprecated = ''"
            });
        }
        if let Some(id) = f.author_id {
            qb.push(" AND t.created_by = ").push_bind(id);
        }
        if let Some(name) = &f.author_username {
            qb.push(" AND lower(u.username) = lower(")
                .push_bind(name.clone())
                .push(") AND NOT u.deleted");
        }
        qb.push(" ORDER BY lower(t.name), t.id");
        Ok(qb.build_query_as().fetch_all(&self.pool).await?)
    }

    /// Updates every field, and (when given) the group ACL, in one statement.
    pub async fn update_template(
        &self,
        id: Uuid,
        f: &TemplateFields,
        group_acl: Option<&HashMap<Uuid, String>>,
    ) -> Result<TemplateRow> {
        sqlx::query(
            "UPDATE templates SET updated_at = now(), name = $2, display_name = $3, description = $4, icon = $5, \
                 default_ttl = $6, activity_bump = $7, failure_ttl = $8, time_til_dormant = $9, \
                 time_til_dormant_autodelete = $10, autostop_requirement_days_of_week = $11, \
                 autostop_requirement_weeks = $12, autostart_allowed_days = $13, allow_user_autostart = $14, \
                 allow_user_autostop = $15, allow_user_cancel_workspace_jobs = $16, require_active_version = $17, \
                 deprecated = $18, max_port_sharing_level = $19, cors_behavior = $20, use_classic_parameter_flow = $21, \
                 group_acl = COALESCE($22, group_acl) \
             WHERE id = $1 AND NOT deleted",
        )
        .bind(id)
        .bind(&f.name)
        .bind(&f.display_name)
        .bind(&f.description)
        .bind(&f.icon)
        .bind(f.default_ttl)
        .bind(f.activity_bump)
        .bind(f.failure_ttl)
        .bind(f.time_til_dormant)
        .bind(f.time_til_dormant_autodelete)
        .bind(&f.autostop_requirement_days_of_week)
        .bind(f.autostop_requirement_weeks)
        .bind(&f.autostart_allowed_days)
        .bind(f.allow_user_autostart)
        .bind(f.allow_user_autostop)
        .bind(f.allow_user_cancel_workspace_jobs)
        .bind(f.require_active_version)
        .bind(&f.deprecated)
        .bind(&f.max_port_sharing_level)
        .bind(&f.cors_behavior)
        .bind(f.use_classic_parameter_flow)
        .bind(group_acl.map(Json))
        .execute(&self.pool)
        .await?;
        self.template(id).await
    }

    pub async fn set_active_version(&self, template_id: Uuid, version_id: Uuid) -> Result<()> {
        sqlx::query(
            "UPDATE templates SET active_version_id = $2, updated_at = now() WHERE id = $1",
        )
        .bind(template_id)
        .bind(version_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_template_acl(
        &self,
        id: Uuid,
        users: &HashMap<Uuid, String>,
        groups: &HashMap<Uuid, String>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE templates SET user_acl = $2, group_acl = $3, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(Json(users))
        .bind(Json(groups))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a template deleted (its name becomes free).
    pub async fn delete_template(&self, id: Uuid) -> Result<()> {
        sqlx::query("UPDATE templates SET deleted = true, updated_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
