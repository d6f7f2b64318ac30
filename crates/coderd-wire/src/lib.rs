//! Wire framing for the connections agents and tailnet clients hold: a yamux session over a
//! WebSocket, DRPC on each of its streams, and the protobuf messages of Coder's `Agent` and
//! `Tailnet` services. Nothing here knows HTTP handlers or SQL.

pub mod derp;
pub mod drpc;
pub mod mux;
pub mod proto;
