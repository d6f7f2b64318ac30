//! Black-box tests of the `/api/v2` server: real PostgreSQL, real HTTP, the real binary where a
//! process matters. See `harness` for how servers and databases are set up.

mod harness;

mod agents;
mod apikeys;
mod auth;
mod authz_matrix;
mod builtin_postgres;
mod cli;
mod cli_flows;
mod client_needs;
mod conformance;
mod dynparams;
mod files;
mod fuzz;
mod general;
mod gitsshkey;
mod groups;
mod jobs;
mod lifecycle;
mod nginx;
mod openapi_doc;
mod organizations;
mod production;
mod ratelimit;
mod reliability;
mod render_cache;
mod sdk_check;
mod security;
mod streams;
mod swagger;
mod tailnet;
mod templates;
mod terraform;
mod users;
mod workspace_settings;
mod workspaces;
