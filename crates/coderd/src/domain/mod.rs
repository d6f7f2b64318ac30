//! What the server does, below HTTP: how a build is made, what a job's start announces, how
//! parameters resolve, users' keys. Handlers, the lifecycle executor and the agent API call
//! it; it never imports them.

pub mod builds;
pub mod git_ssh_keys;
pub mod jobs;
pub mod parameters;
