//! The DERP map clients and agents are given, and the relay this server embeds at `/derp`.
//!
//! The map is upstream's: the embedded relay as region `CODER_DERP_SERVER_REGION_ID` (999)
//! with one node at the access URL's host and port (clients rewrite it to the URL they use),
//! STUN-only regions for `CODER_DERP_SERVER_STUN_ADDRESSES` (none by default here), and any
//! regions of an external map (`CODER_DERP_CONFIG_PATH` / `CODER_DERP_CONFIG_URL`). It travels
//! in two encodings: tailscale's JSON (Go field names, as upstream's `/connection` answers) and
//! the tailnet protobuf (agents' manifests and `StreamDERPMaps`).

use std::collections::BTreeMap;
use std::sync::Arc;

use coderd_wire::proto::tailnet as tn;
use serde::{Deserialize, Serialize};

/// What tailnet clients and agents are told and served.
pub struct Net {
    pub derp_map: DerpMap,
    pub relay: Option<Arc<coderd_wire::derp::Relay>>,
    pub coordinator: Arc<crate::tailnet::Coordinator>,
    pub block_direct: bool,
    pub force_websockets: bool,
}

impl DerpSettings {
    pub fn from_options(o: &crate::config::ServerOptions) -> Self {
        DerpSettings {
            server_enable: o.derp_server_enable,
            region_id: o.derp_server_region_id,
            region_code: o.derp_server_region_code.clone(),
            region_name: o.derp_server_region_name.clone(),
            stun_addresses: o
                .derp_server_stun_addresses
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            config_path: o.derp_config_path.clone(),
            config_url: o.derp_config_url.clone().filter(|u| !u.is_empty()),
            block_direct: o.block_direct,
            force_websockets: o.derp_force_websockets,
        }
    }
}

/// Settings of the relay and the map (upstream's `CODER_DERP_*` options).
#[derive(Clone)]
pub struct DerpSettings {
    pub server_enable: bool,
    pub region_id: i64,
    pub region_code: String,
    pub region_name: String,
    pub stun_addresses: Vec<String>,
    pub config_path: Option<std::path::PathBuf>,
    pub config_url: Option<String>,
    pub block_direct: bool,
    pub force_websockets: bool,
}

/// By hand: the map's URL may carry credentials.
impl std::fmt::Debug for DerpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DerpSettings")
            .field("server_enable", &self.server_enable)
            .field("region_id", &self.region_id)
            .field("region_code", &self.region_code)
            .field("region_name", &self.region_name)
            .field("stun_addresses", &self.stun_addresses)
            .field("config_path", &self.config_path)
            .field(
                "config_url",
                &self.config_url.as_deref().map(coderd_db::redact_url),
            )
            .field("block_direct", &self.block_direct)
            .field("force_websockets", &self.force_websockets)
            .finish()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DerpMap {
    #[serde(
        rename = "HomeParams",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub home_params: Option<HomeParams>,
    #[serde(rename = "Regions", default)]
    pub regions: BTreeMap<i64, Region>,
    #[serde(
        rename = "omitDefaultRegions",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub omit_default_regions: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HomeParams {
    #[serde(
        rename = "RegionScore",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub region_score: BTreeMap<i64, f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Region {
    #[serde(rename = "EmbeddedRelay", default)]
    pub embedded_relay: bool,
    #[serde(rename = "RegionID", default)]
    pub region_id: i64,
    #[serde(rename = "RegionCode", default)]
    pub region_code: String,
    #[serde(rename = "RegionName", default)]
    pub region_name: String,
    #[serde(rename = "Avoid", default, skip_serializing_if = "std::ops::Not::not")]
    pub avoid: bool,
    #[serde(rename = "Nodes", default)]
    pub nodes: Vec<Node>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Node {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "RegionID", default)]
    pub region_id: i64,
    #[serde(rename = "HostName", default)]
    pub host_name: String,
    #[serde(rename = "CertName", default, skip_serializing_if = "String::is_empty")]
    pub cert_name: String,
    #[serde(rename = "IPv4", default, skip_serializing_if = "String::is_empty")]
    pub ipv4: String,
    #[serde(rename = "IPv6", default, skip_serializing_if = "String::is_empty")]
    pub ipv6: String,
    #[serde(rename = "STUNPort", default, skip_serializing_if = "is_zero")]
    pub stun_port: i32,
    #[serde(
        rename = "STUNOnly",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub stun_only: bool,
    #[serde(rename = "DERPPort", default, skip_serializing_if = "is_zero")]
    pub derp_port: i32,
    #[serde(
        rename = "InsecureForTests",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub insecure_for_tests: bool,
    #[serde(
        rename = "ForceHTTP",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub force_http: bool,
    #[serde(
        rename = "STUNTestIP",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub stun_test_ip: String,
    #[serde(
        rename = "CanPort80",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub can_port_80: bool,
}

/// Go decodes JSON field names case-insensitively, so external maps may spell them any way;
/// this folds an object's keys to the spellings above.
fn canonical_keys(v: serde_json::Value) -> serde_json::Value {
    const NAMES: [&str; 22] = [
        "HomeParams",
        "Regions",
        "omitDefaultRegions",
        "RegionScore",
        "EmbeddedRelay",
        "RegionID",
        "RegionCode",
        "RegionName",
        "Avoid",
        "Nodes",
        "Name",
        "HostName",
        "CertName",
        "IPv4",
        "IPv6",
        "STUNPort",
        "STUNOnly",
        "DERPPort",
        "InsecureForTests",
        "ForceHTTP",
        "STUNTestIP",
        "CanPort80",
    ];
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let k = NAMES
                        .iter()
                        .find(|n| n.eq_ignore_ascii_case(&k))
                        .map(|n| n.to_string())
                        .unwrap_or(k);
                    (k, canonical_keys(v))
                })
                .collect(),
        ),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(canonical_keys).collect())
        }
        other => other,
    }
}

/// Parses a DERP map in tailscale's JSON (as `CODER_DERP_CONFIG_PATH` holds it).
pub fn parse_map(json: &[u8]) -> anyhow::Result<DerpMap> {
    let v: serde_json::Value = serde_json::from_slice(json)?;
    Ok(serde_json::from_value(canonical_keys(v))?)
}

/// Builds the deployment's map, as upstream's `NewDERPMap` does.
pub async fn build_map(s: &DerpSettings, access_url: &str) -> anyhow::Result<DerpMap> {
    if s.config_path.is_some() && s.config_url.is_some() {
        anyhow::bail!("CODER_DERP_CONFIG_URL and CODER_DERP_CONFIG_PATH may not both be set");
    }
    let mut map = match (&s.config_path, &s.config_url) {
        (Some(path), _) => {
            let raw = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("reading the DERP map {}: {e}", path.display()))?;
            parse_map(&raw)
                .map_err(|e| anyhow::anyhow!("parsing the DERP map {}: {e}", path.display()))?
        }
        (None, Some(url)) => {
            // Errors name the URL without its credentials (reqwest's would name it whole).
            let shown = coderd_db::redact_url(url);
            let fetch_failed = |e: reqwest::Error| {
                anyhow::anyhow!("fetching the DERP map {shown}: {}", e.without_url())
            };
            let raw = reqwest::get(url.as_str())
                .await
                .and_then(|r| r.error_for_status())
                .map_err(fetch_failed)?
                .bytes()
                .await
                .map_err(fetch_failed)?;
            parse_map(&raw).map_err(|e| anyhow::anyhow!("parsing the DERP map {shown}: {e}"))?
        }
        (None, None) => DerpMap::default(),
    };
    if s.server_enable {
        let url = url_parts(access_url)?;
        let mut add = vec![Region {
            embedded_relay: true,
            region_id: s.region_id,
            region_code: s.region_code.clone(),
            region_name: s.region_name.clone(),
            avoid: false,
            nodes: vec![Node {
                name: format!("{}b", s.region_id),
                region_id: s.region_id,
                host_name: url.host,
                stun_port: -1,
                derp_port: url.port as i32,
                force_http: url.http,
                ..Default::default()
            }],
        }];
        for (i, addr) in s.stun_addresses.iter().enumerate() {
            if addr == "disable" {
                break;
            }
            let (host, port) = addr
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<i32>().ok()?)))
                .ok_or_else(|| anyhow::anyhow!("STUN address {addr:?} is not host:port"))?;
            let id = s.region_id + i as i64 + 1;
            add.push(Region {
                embedded_relay: false,
                region_id: id,
                region_code: format!("coder_stun_{id}"),
                region_name: format!("Coder STUN {id}"),
                avoid: false,
                nodes: vec![Node {
                    name: format!("{id}stun0"),
                    region_id: id,
                    host_name: host.trim_matches(['[', ']']).to_string(),
                    stun_only: true,
                    stun_port: port,
                    ..Default::default()
                }],
            });
        }
        for r in add {
            if map.regions.contains_key(&r.region_id) {
                anyhow::bail!(
                    "the built-in DERP region {} ({}) conflicts with a region of the external map",
                    r.region_id,
                    r.region_code
                );
            }
            map.regions.insert(r.region_id, r);
        }
    }
    if map.regions.values().all(|r| r.nodes.is_empty()) {
        anyhow::bail!(
            "the DERP map has no regions. A valid DERP map is required for networking to work: \
             supply one (CODER_DERP_CONFIG_PATH or CODER_DERP_CONFIG_URL) or use the built-in \
             DERP server (CODER_DERP_SERVER_ENABLE)"
        );
    }
    Ok(map)
}

struct UrlParts {
    host: String,
    port: u16,
    http: bool,
}

fn url_parts(access_url: &str) -> anyhow::Result<UrlParts> {
    let (scheme, rest) = access_url
        .split_once("://")
        .ok_or_else(|| anyhow::anyhow!("the access URL {access_url:?} has no scheme"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let http = scheme.eq_ignore_ascii_case("http");
    let default_port = if http { 80 } else { 443 };
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        let (h, rest) = stripped
            .split_once(']')
            .ok_or_else(|| anyhow::anyhow!("bad IPv6 host in {access_url:?}"))?;
        let port = rest.strip_prefix(':').and_then(|p| p.parse().ok());
        (h.to_string(), port.unwrap_or(default_port))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().unwrap_or(default_port)),
            None => (authority.to_string(), default_port),
        }
    };
    Ok(UrlParts { host, port, http })
}

impl DerpMap {
    /// The protobuf form agents are sent.
    pub fn to_proto(&self) -> tn::DerpMap {
        tn::DerpMap {
            // Upstream's agents read the home parameters without checking they are there.
            home_params: Some(tn::HomeParams {
                region_score: self
                    .home_params
                    .as_ref()
                    .map(|h| h.region_score.iter().map(|(k, v)| (*k, *v)).collect())
                    .unwrap_or_default(),
            }),
            regions: self
                .regions
                .iter()
                .map(|(id, r)| {
                    (
                        *id,
                        tn::DerpRegion {
                            region_id: r.region_id,
                            embedded_relay: r.embedded_relay,
                            region_code: r.region_code.clone(),
                            region_name: r.region_name.clone(),
                            avoid: r.avoid,
                            nodes: r
                                .nodes
                                .iter()
                                .map(|n| tn::DerpNode {
                                    name: n.name.clone(),
                                    region_id: n.region_id,
                                    host_name: n.host_name.clone(),
                                    cert_name: n.cert_name.clone(),
                                    ipv4: n.ipv4.clone(),
                                    ipv6: n.ipv6.clone(),
                                    stun_port: n.stun_port,
                                    stun_only: n.stun_only,
                                    derp_port: n.derp_port,
                                    insecure_for_tests: n.insecure_for_tests,
                                    force_http: n.force_http,
                                    stun_test_ip: n.stun_test_ip.clone(),
                                    can_port_80: n.can_port_80,
                                })
                                .collect(),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// The relay for this server, if it runs one; `mesh_key` lets the other replicas' relays in.
pub fn relay(s: &DerpSettings, mesh_key: &str) -> Option<Arc<coderd_wire::derp::Relay>> {
    s.server_enable
        .then(|| coderd_wire::derp::Relay::new(Some(mesh_key.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DerpSettings {
        DerpSettings {
            server_enable: true,
            region_id: 999,
            region_code: "coder".into(),
            region_name: "Coder Embedded Relay".into(),
            stun_addresses: Vec::new(),
            config_path: None,
            config_url: None,
            block_direct: false,
            force_websockets: false,
        }
    }

    #[tokio::test]
    async fn the_embedded_region_as_upstream_writes_it() {
        let map = build_map(&settings(), "http://127.0.0.1:3000")
            .await
            .unwrap();
        let json = serde_json::to_value(&map).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"Regions": {"999": {
                "EmbeddedRelay": true, "RegionID": 999, "RegionCode": "coder",
                "RegionName": "Coder Embedded Relay",
                "Nodes": [{"Name": "999b", "RegionID": 999, "HostName": "127.0.0.1",
                           "STUNPort": -1, "DERPPort": 3000, "ForceHTTP": true}]}}})
        );
        let https = build_map(&settings(), "https://coder.example.com/")
            .await
            .unwrap();
        let n = &https.regions[&999].nodes[0];
        assert_eq!(
            (n.host_name.as_str(), n.derp_port, n.force_http),
            ("coder.example.com", 443, false)
        );
        assert_eq!(map.to_proto().regions[&999].nodes[0].derp_port, 3000);
    }

    #[tokio::test]
    async fn stun_regions_and_external_maps() {
        let mut s = settings();
        s.stun_addresses = vec!["stun.example.com:3478".into()];
        let map = build_map(&s, "http://h:1").await.unwrap();
        let stun = &map.regions[&1000];
        assert!(stun.nodes[0].stun_only);
        assert_eq!(stun.nodes[0].stun_port, 3478);

        let dir = std::env::temp_dir().join(format!("derpmap-{}", uuid::Uuid::new_v4()));
        std::fs::write(
            &dir,
            br#"{"regions": {"1": {"regionid": 1, "regioncode": "ext", "nodes": [{"name": "1a", "regionid": 1, "hostname": "relay.example.com"}]}}}"#,
        )
        .unwrap();
        s.stun_addresses.clear();
        s.config_path = Some(dir.clone());
        let map = build_map(&s, "http://h:1").await.unwrap();
        assert_eq!(map.regions[&1].nodes[0].host_name, "relay.example.com");
        assert!(map.regions.contains_key(&999));
        // Without the built-in relay, the external map alone.
        s.server_enable = false;
        let map = build_map(&s, "http://h:1").await.unwrap();
        assert_eq!(map.regions.len(), 1);
        std::fs::remove_file(&dir).unwrap();
        // The same map fetched from CODER_DERP_CONFIG_URL.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/map.json", l.local_addr().unwrap());
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf).await;
            let body = r#"{"Regions": {"7": {"RegionID": 7, "RegionCode": "far", "Nodes": [{"Name": "7a", "RegionID": 7, "HostName": "far.example.com"}]}}}"#;
            let _ = c
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        });
        s.config_path = None;
        s.config_url = Some(url);
        let map = build_map(&s, "http://h:1").await.unwrap();
        assert_eq!(map.regions[&7].nodes[0].host_name, "far.example.com");
        // No map at all is refused with a clear message.
        s.config_url = None;
        let err = build_map(&s, "http://h:1").await.unwrap_err().to_string();
        assert!(err.contains("no regions"), "{err}");
    }
}
