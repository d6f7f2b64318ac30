//! Typed calls for workspaces and builds, and waiting for builds, as methods of
//! `codersdk::Client`. Each goes through the client's own request path, so a checked client
//! (the tests') still checks every answer against the API reference. Shared by the tests and
//! the benches.

use std::time::{Duration, Instant};

use codersdk::{Client, ClientError, CreateWorkspaceRequest, Workspace, WorkspaceBuild};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// How long `wait_for_status` waits.
pub const BUILD_WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// Workspaces and builds through the API. Methods without `try_` panic on any error.
// The futures are used on the caller's runtime only; no caller needs to name them `Send`.
#[allow(async_fn_in_trait)]
pub trait WorkspaceApi {
    /// POST /users/{user}/workspaces with a full request.
    async fn try_create_workspace(
        &self,
        user: &str,
        req: &CreateWorkspaceRequest,
    ) -> Result<Workspace, ClientError>;

    /// POST /users/me/workspaces with `template_id`, `name` and the fields of `extra`.
    async fn create_workspace_with(&self, template: Uuid, name: &str, extra: Value) -> Workspace;

    /// POST /users/me/workspaces with only `template_id` and `name`.
    async fn create_workspace(&self, template: Uuid, name: &str) -> Workspace {
        self.create_workspace_with(template, name, json!({})).await
    }

    /// Creates a workspace with the fields of `extra` and waits for its first build to be
    /// running.
    async fn running_workspace_with(&self, template: Uuid, name: &str, extra: Value) -> Workspace {
        let w = self.create_workspace_with(template, name, extra).await;
        self.wait_for_status(w.id, "running").await
    }

    /// Creates a workspace and waits for its first build to be running.
    async fn running_workspace(&self, template: Uuid, name: &str) -> Workspace {
        self.running_workspace_with(template, name, json!({})).await
    }

    /// GET /workspaces/{id}, deleted ones included.
    async fn workspace(&self, id: Uuid) -> Workspace;

    /// GET /workspacebuilds/{id}.
    async fn build(&self, id: Uuid) -> WorkspaceBuild;

    /// POST /workspaces/{id}/builds with `body`.
    async fn try_create_build(&self, ws: Uuid, body: &Value)
        -> Result<WorkspaceBuild, ClientError>;

    /// POST /workspaces/{id}/builds with a transition; the status and the raw answer, for
    /// tests of refusals.
    async fn post_build(&self, ws: Uuid, transition: &str) -> (u16, Value);

    /// POST /workspaces/{id}/builds with a transition.
    async fn create_build(&self, ws: Uuid, transition: &str) -> WorkspaceBuild {
        self.try_create_build(ws, &json!({ "transition": transition }))
            .await
            .unwrap_or_else(|e| panic!("starting a {transition} build of {ws}: {e}"))
    }

    async fn stop(&self, ws: Uuid) -> WorkspaceBuild {
        self.create_build(ws, "stop").await
    }

    async fn delete(&self, ws: Uuid) -> WorkspaceBuild {
        self.create_build(ws, "delete").await
    }

    /// Polls until the workspace's latest build has `status` (`BUILD_WAIT` at most); a failed
    /// build ends the wait at once unless `status` is "failed".
    async fn wait_for_status(&self, ws: Uuid, status: &str) -> Workspace {
        self.wait_for_status_within(ws, status, BUILD_WAIT).await
    }

    async fn wait_for_status_within(&self, ws: Uuid, status: &str, within: Duration) -> Workspace {
        let started = Instant::now();
        loop {
            let w = self.workspace(ws).await;
            if w.latest_build.status == status {
                return w;
            }
            assert_ne!(
                w.latest_build.status, "failed",
                "the build failed: {:?}",
                w.latest_build.job
            );
            assert!(
                started.elapsed() < within,
                "workspace {} never became {status}: {:?}",
                w.name,
                w.latest_build.status
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until the workspace's latest build has ended (succeeded, failed or canceled).
    async fn wait_for_build(&self, ws: Uuid, within: Duration) -> Workspace {
        let started = Instant::now();
        loop {
            let w = self.workspace(ws).await;
            if w.latest_build.job.completed_at.is_some() {
                return w;
            }
            assert!(
                started.elapsed() < within,
                "the build did not end: {:?}",
                w.latest_build.job
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls build `id` until its job has `status`.
    async fn wait_for_job_status(
        &self,
        id: Uuid,
        status: &str,
        within: Duration,
    ) -> WorkspaceBuild {
        let started = Instant::now();
        loop {
            let b = self.build(id).await;
            if b.job.status == status {
                return b;
            }
            assert!(
                started.elapsed() < within,
                "build {id} never became {status}: {} {}",
                b.job.status,
                b.job.error
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl WorkspaceApi for Client {
    async fn try_create_workspace(
        &self,
        user: &str,
        req: &CreateWorkspaceRequest,
    ) -> Result<Workspace, ClientError> {
        self.request(
            Method::POST,
            &format!("/api/v2/users/{user}/workspaces"),
            Some(req),
        )
        .await
    }

    async fn create_workspace_with(&self, template: Uuid, name: &str, extra: Value) -> Workspace {
        let mut body = json!({"template_id": template, "name": name});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.request::<Value, Workspace>(Method::POST, "/api/v2/users/me/workspaces", Some(&body))
            .await
            .unwrap_or_else(|e| panic!("creating workspace {name}: {e}"))
    }

    async fn workspace(&self, id: Uuid) -> Workspace {
        self.get_json(&format!("/api/v2/workspaces/{id}?include_deleted=true"))
            .await
            .unwrap_or_else(|e| panic!("GET workspace {id}: {e}"))
    }

    async fn build(&self, id: Uuid) -> WorkspaceBuild {
        self.get_json(&format!("/api/v2/workspacebuilds/{id}"))
            .await
            .unwrap_or_else(|e| panic!("GET workspace build {id}: {e}"))
    }

    async fn try_create_build(
        &self,
        ws: Uuid,
        body: &Value,
    ) -> Result<WorkspaceBuild, ClientError> {
        self.request(
            Method::POST,
            &format!("/api/v2/workspaces/{ws}/builds"),
            Some(body),
        )
        .await
    }

    async fn post_build(&self, ws: Uuid, transition: &str) -> (u16, Value) {
        let body = json!({ "transition": transition }).to_string();
        let raw = self
            .send(
                Method::POST,
                &format!("/api/v2/workspaces/{ws}/builds"),
                Some(("application/json", body.into_bytes())),
                &[],
            )
            .await
            .expect("request");
        let v = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
        (raw.status.as_u16(), v)
    }
}
