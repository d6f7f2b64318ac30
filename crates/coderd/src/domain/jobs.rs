//! Provisioner jobs as the rest of the server starts them.

use coderd_db::JobRow;

use crate::state::AppState;

/// Announces a new job so idle daemons (in every replica) wake at once.
pub async fn announce(state: &AppState, j: &JobRow) {
    let payload = serde_json::json!({
        "organization_id": j.organization_id,
        "type": j.provisioner,
        "tags": j.tags.0,
    });
    if let Err(e) = state
        .pubsub
        .publish(coderd_provisioner::daemon::JOB_POSTED, &payload.to_string())
        .await
    {
        tracing::warn!(error = %e, "announcing a provisioner job");
    }
}
