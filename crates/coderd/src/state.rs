//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use coderd_db::pubsub::Pubsub;
use coderd_db::Store;

use crate::ratelimit::RateLimits;

/// Deployment settings the API reads.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub access_url: String,
    pub session_duration: Duration,
    pub default_token_lifetime: Duration,
    pub max_token_lifetime: Duration,
    pub secure_auth_cookie: bool,
    pub disable_password_auth: bool,
    pub disable_session_expiry_refresh: bool,
    pub allow_workspace_renames: bool,
    /// Serve the Swagger UI at `/swagger`.
    pub swagger_enable: bool,
    /// Where the agent binaries served at `/bin/` are.
    pub agent_binaries_dir: Option<std::path::PathBuf>,
    /// The answer of `GET /deployment/config` (settings do not change while the server runs).
    pub deployment_config: Arc<serde_json::Value>,
}

pub struct Inner {
    pub store: Store,
    pub pubsub: Pubsub,
    pub streams: Arc<crate::watch::StreamGauge>,
    pub watch_hub: crate::watch::WatchHub,
    pub config: ApiConfig,
    pub limits: RateLimits,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub deployment_id: String,
    /// This process among the replicas sharing the database (agent connections record it).
    pub replica_id: uuid::Uuid,
    /// API keys' callers, kept until a change to them is heard (crate::actors).
    pub actors: Arc<crate::actors::ActorCache>,
    /// Rendered workspaces and builds, served again while their stamps hold (crate::render_cache).
    pub render_cache: Arc<crate::render_cache::RenderCache>,
    /// Templates' statistics, recomputed when a job's result is stored.
    pub template_stats: Arc<crate::template_stats::StatsCache>,
    /// Tailnet: the DERP map, the embedded relay and the coordinator.
    pub net: crate::derp::Net,
    /// Becomes `true` when the server starts shutting down: open streams end cleanly.
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

impl Inner {
    /// Resolves once the server is shutting down (at once if it already is).
    pub async fn shutting_down(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
