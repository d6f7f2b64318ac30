//! The protobuf messages, written in our own words with the field numbers the wire needs.

pub mod agent;
pub mod tailnet;
