//! Messages of `coder.tailnet.v2` (package `coder.tailnet.v2`, service `Tailnet`), written
//! here as plain prost structs: field numbers are the wire's; fields this server neither reads
//! nor fills are left out (protobuf skips unknown fields). Enums travel as `i32`.

use std::collections::HashMap;

pub const SERVICE: &str = "coder.tailnet.v2.Tailnet";

#[derive(Clone, PartialEq, prost::Message)]
pub struct DerpMap {
    #[prost(message, optional, tag = "1")]
    pub home_params: Option<HomeParams>,
    #[prost(map = "int64, message", tag = "2")]
    pub regions: HashMap<i64, DerpRegion>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HomeParams {
    #[prost(map = "int64, double", tag = "1")]
    pub region_score: HashMap<i64, f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DerpRegion {
    #[prost(int64, tag = "1")]
    pub region_id: i64,
    #[prost(bool, tag = "2")]
    pub embedded_relay: bool,
    #[prost(string, tag = "3")]
    pub region_code: String,
    #[prost(string, tag = "4")]
    pub region_name: String,
    #[prost(bool, tag = "5")]
    pub avoid: bool,
    #[prost(message, repeated, tag = "6")]
    pub nodes: Vec<DerpNode>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DerpNode {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int64, tag = "2")]
    pub region_id: i64,
    #[prost(string, tag = "3")]
    pub host_name: String,
    #[prost(string, tag = "4")]
    pub cert_name: String,
    #[prost(string, tag = "5")]
    pub ipv4: String,
    #[prost(string, tag = "6")]
    pub ipv6: String,
    #[prost(int32, tag = "7")]
    pub stun_port: i32,
    #[prost(bool, tag = "8")]
    pub stun_only: bool,
    #[prost(int32, tag = "9")]
    pub derp_port: i32,
    #[prost(bool, tag = "10")]
    pub insecure_for_tests: bool,
    #[prost(bool, tag = "11")]
    pub force_http: bool,
    #[prost(string, tag = "12")]
    pub stun_test_ip: String,
    #[prost(bool, tag = "13")]
    pub can_port_80: bool,
}

/// A peer's WireGuard node: its keys, DERP home and addresses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Node {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(message, optional, tag = "2")]
    pub as_of: Option<prost_types::Timestamp>,
    #[prost(bytes = "vec", tag = "3")]
    pub key: Vec<u8>,
    #[prost(string, tag = "4")]
    pub disco: String,
    #[prost(int32, tag = "5")]
    pub preferred_derp: i32,
    #[prost(map = "string, double", tag = "6")]
    pub derp_latency: HashMap<String, f64>,
    #[prost(map = "int32, string", tag = "7")]
    pub derp_forced_websocket: HashMap<i32, String>,
    #[prost(string, repeated, tag = "8")]
    pub addresses: Vec<String>,
    #[prost(string, repeated, tag = "9")]
    pub allowed_ips: Vec<String>,
    #[prost(string, repeated, tag = "10")]
    pub endpoints: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamDerpMapsRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshResumeTokenRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshResumeTokenResponse {
    #[prost(string, tag = "1")]
    pub token: String,
    #[prost(message, optional, tag = "2")]
    pub refresh_in: Option<prost_types::Duration>,
    #[prost(message, optional, tag = "3")]
    pub expires_at: Option<prost_types::Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CoordinateRequest {
    #[prost(message, optional, tag = "1")]
    pub update_self: Option<UpdateSelf>,
    #[prost(message, optional, tag = "2")]
    pub disconnect: Option<Disconnect>,
    #[prost(message, optional, tag = "3")]
    pub add_tunnel: Option<Tunnel>,
    #[prost(message, optional, tag = "4")]
    pub remove_tunnel: Option<Tunnel>,
    #[prost(message, repeated, tag = "5")]
    pub ready_for_handshake: Vec<ReadyForHandshake>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateSelf {
    #[prost(message, optional, tag = "1")]
    pub node: Option<Node>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Disconnect {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Tunnel {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadyForHandshake {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CoordinateResponse {
    #[prost(message, repeated, tag = "1")]
    pub peer_updates: Vec<PeerUpdate>,
    #[prost(string, tag = "2")]
    pub error: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PeerUpdate {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    pub node: Option<Node>,
    /// 1 node, 2 disconnected, 3 lost, 4 ready for handshake.
    #[prost(int32, tag = "3")]
    pub kind: i32,
    #[prost(string, tag = "4")]
    pub reason: String,
}

/// Telemetry is accepted and dropped: its fields are not needed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TelemetryRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TelemetryResponse {}
