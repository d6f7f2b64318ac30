//! Provisioner jobs as the rest of the server starts them.

use coderd_db::JobRow;

use crate::state::AppState;

/// Announces a new job so idle daemons (in every replica) wake at once.
pub async fn announce(state: &AppState, j: &JobRow) {
    announce_new(state, j.organization_id, &j.provisioner, &j.tags.0).await;
}

/// [`announce`] from what the job was inserted with, without reading it back.
pub async fn announce_new(
    state: &AppState,
    organization_id: uuid::Uuid,
    provisioner: &str,
    tags: &std::collections::BTreeMap<String, String>,
) {
    if let Err(e) = state
        .pubsub
        .publish(
            coderd_provisioner::daemon::JOB_POSTED,
            &posted(organization_id, provisioner, tags),
        )
        .await
    {
        tracing::warn!(error = %e, "announcing a provisioner job");
    }
}

/// The payload on [`coderd_provisioner::daemon::JOB_POSTED`] announcing a new job (daemons
/// that could run it wake).
pub fn posted(
    organization_id: uuid::Uuid,
    provisioner: &str,
    tags: &std::collections::BTreeMap<String, String>,
) -> String {
    serde_json::json!({
        "organization_id": organization_id,
        "type": provisioner,
        "tags": tags,
    })
    .to_string()
}
