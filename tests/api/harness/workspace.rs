//! Helpers for tests that need workspaces: creating one, reading it, waiting for its builds.

use std::time::{Duration, Instant};

use codersdk::{Client, Workspace};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::raw_json;

/// POST /users/me/workspaces with `template_id`, `name` and the fields of `extra`.
pub async fn create_ws(client: &Client, template: Uuid, name: &str, extra: Value) -> Workspace {
    let mut body = json!({"template_id": template, "name": name});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    client
        .request::<Value, Workspace>(Method::POST, "/api/v2/users/me/workspaces", Some(&body))
        .await
        .unwrap_or_else(|e| panic!("creating workspace {name}: {e}"))
}

pub async fn get_ws(client: &Client, id: Uuid) -> Workspace {
    client
        .get_json(&format!("/api/v2/workspaces/{id}"))
        .await
        .unwrap_or_else(|e| panic!("GET workspace {id}: {e}"))
}

/// Polls until the latest build has `status` (30 s at most).
pub async fn wait_status(client: &Client, id: Uuid, status: &str) -> Workspace {
    let started = Instant::now();
    loop {
        let w = get_ws(client, id).await;
        if w.latest_build.status == status {
            return w;
        }
        assert_ne!(
            w.latest_build.status, "failed",
            "the build failed: {:?}",
            w.latest_build.job
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "workspace {} never became {status}: {:?}",
            w.name,
            w.latest_build.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a workspace and waits for its first build to finish.
pub async fn running_ws(client: &Client, template: Uuid, name: &str, extra: Value) -> Workspace {
    let w = create_ws(client, template, name, extra).await;
    wait_status(client, w.id, "running").await
}

/// POST /workspaces/{id}/builds with a transition.
pub async fn build(client: &Client, id: Uuid, transition: &str) -> (u16, Value) {
    raw_json(
        client,
        "POST",
        &format!("/api/v2/workspaces/{id}/builds"),
        Some(&json!({ "transition": transition }).to_string()),
    )
    .await
}
