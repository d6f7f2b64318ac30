//! coderd-rs: a Coder-compatible `/api/v2` server.

pub mod actors;
pub mod agentapi;
pub mod api;
pub mod archive;
pub mod auth;
pub mod authz;
pub mod binaries;
pub mod config;
pub mod csrf;
pub mod deployment;
pub mod derp;
pub mod derp_mesh;
pub mod domain;
pub mod http;
#[cfg(test)]
mod layers;
pub mod lifecycle;
pub mod metrics;
pub mod middleware;
pub mod proxy;
pub mod ratelimit;
pub mod reaper;
pub mod render_cache;
pub mod search;
pub mod server;
pub mod state;
pub mod swagger;
pub mod tailnet;
pub mod template_stats;
pub mod tls;
pub mod traces;
pub mod version;
pub mod views;
pub mod watch;
