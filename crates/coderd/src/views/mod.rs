//! Rows to `codersdk` types: how each answer is rendered, and the batch loaders that fetch
//! what a page of answers needs in a fixed number of statements. Views read the store and
//! never the request; handlers (`crate::api`) call them.

pub mod builds;
pub mod convert;
pub mod groups;
pub mod jobs;
pub mod loaded;
pub mod template_versions;
pub mod workspaces;
