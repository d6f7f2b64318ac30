//! Template versions as the API shows them.

use coderd_db::{JobRow, VersionRow};
use codersdk::{
    MinimalUser, TemplateVersion, TemplateVersionParameter, TemplateVersionParameterOption,
};

use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::jobs;
use crate::views::jobs::{matched_provisioners, JobViews};

/// Renders versions with their jobs: a fixed number of queries for any number of versions.
pub async fn render(
    state: &AppState,
    mut versions: Vec<VersionRow>,
) -> ApiResult<Vec<TemplateVersion>> {
    let jobs = jobs::jobs_of(state, &mut versions, |ids| async move {
        state.store.versions_by_ids(&ids).await
    })
    .await?;
    let refs: Vec<&JobRow> = jobs.values().collect();
    let views = JobViews::load(state, &refs).await?;
    versions
        .into_iter()
        .map(|v| {
            let j = jobs.get(&v.job_id).ok_or_else(|| {
                ApiError::internal("Rendering a template version", "its job is missing")
            })?;
            Ok(TemplateVersion {
                matched_provisioners: matched_provisioners(
                    views.daemons(j.organization_id),
                    &j.provisioner,
                    &j.tags.0,
                ),
                job: views.render(j),
                id: v.id,
                // Upstream sends the zero UUID for a version not (yet) in a template.
                template_id: Some(v.template_id.unwrap_or_default()),
                organization_id: v.organization_id,
                created_at: v.created_at,
                updated_at: v.updated_at,
                name: v.name,
                message: v.message,
                readme: v.readme,
                created_by: MinimalUser {
                    id: v.created_by,
                    username: v.created_by_username,
                    name: v.created_by_name,
                    avatar_url: v.created_by_avatar_url,
                },
                archived: v.archived,
                warnings: Vec::new(),
                has_external_agent: false,
            })
        })
        .collect()
}

pub async fn render_one(state: &AppState, v: VersionRow) -> ApiResult<TemplateVersion> {
    Ok(render(state, vec![v]).await?.remove(0))
}

pub fn parameter(p: coderd_db::model::Parameter) -> TemplateVersionParameter {
    TemplateVersionParameter {
        description_plaintext: p.description.clone(),
        name: p.name,
        display_name: p.display_name,
        description: p.description,
        kind: p.kind,
        form_type: p.form_type,
        mutable: p.mutable,
        default_value: p.default_value,
        icon: p.icon,
        options: p
            .options
            .into_iter()
            .map(|o| TemplateVersionParameterOption {
                name: o.name,
                description: o.description,
                value: o.value,
                icon: o.icon,
            })
            .collect(),
        validation_error: p.validation_error,
        validation_regex: p.validation_regex,
        validation_min: p.validation_min,
        validation_max: p.validation_max,
        validation_monotonic: Some(p.validation_monotonic).filter(|m| !m.is_empty()),
        required: p.required,
        ephemeral: p.ephemeral,
    }
}
