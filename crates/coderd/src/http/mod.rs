//! HTTP plumbing shared by the handlers: errors, JSON, parameters.

pub mod encode;
pub mod error;
pub mod json;
pub mod params;
pub mod ws_io;
