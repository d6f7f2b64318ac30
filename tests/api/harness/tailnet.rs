//! A tailnet client of our own for tests that need to see coordination itself (what the real
//! CLI keeps to itself): a WebSocket to `/workspaceagents/{id}/coordinate`, yamux over it (we
//! are the client), and one DRPC `Coordinate` call whose responses we read.

use std::time::Duration;

use coderd_wire::drpc::{Kind, Packet, PacketReader, PacketWriter};
use coderd_wire::proto::tailnet as tn;
use futures_util::future::poll_fn;
use futures_util::io::{AsyncReadExt, ReadHalf, WriteHalf};
use prost::Message as _;
use uuid::Uuid;

pub use crate::harness::ws_bytes::WsBytes;

/// One open `Coordinate` call.
pub struct Coordination {
    reader: PacketReader<ReadHalf<yamux::Stream>>,
    writer: PacketWriter<WriteHalf<yamux::Stream>>,
    message: u64,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Coordination {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Coordination {
    /// Opens coordination with `agent` on the server at `base` as the holder of `token`.
    pub async fn open(base: &str, agent: Uuid, token: &str) -> Coordination {
        Self::call(
            base,
            &format!("/api/v2/workspaceagents/{agent}/coordinate?version=2.0"),
            token,
            "/coder.tailnet.v2.Tailnet/Coordinate",
        )
        .await
    }

    /// Invokes `method` on the DRPC session at `path` (any of the server's yamux endpoints:
    /// a client's coordination, an agent's RPC).
    pub async fn call(base: &str, path: &str, token: &str, method: &str) -> Coordination {
        let req = super::ws_request(base, path, token);
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("the coordination WebSocket");
        let mut conn = yamux::Connection::new(
            WsBytes::new(ws),
            yamux::Config::default(),
            yamux::Mode::Client,
        );
        let stream = poll_fn(|cx| conn.poll_new_outbound(cx))
            .await
            .expect("a yamux stream");
        let driver = tokio::spawn(async move {
            while poll_fn(|cx| conn.poll_next_inbound(cx)).await.is_some() {}
        });
        let (r, w) = stream.split();
        let mut c = Coordination {
            reader: PacketReader::new(r),
            writer: PacketWriter::new(w),
            message: 1,
            driver,
        };
        c.packet(Kind::Invoke, method.as_bytes().to_vec()).await;
        c
    }

    /// Sends a raw message (bytes that need not decode as anything).
    pub async fn send_raw(&mut self, data: Vec<u8>) {
        self.packet(Kind::Message, data).await;
    }

    async fn packet(&mut self, kind: Kind, data: Vec<u8>) {
        let message = self.message;
        self.message += 1;
        self.writer
            .send(&Packet {
                kind,
                stream: 1,
                message,
                data,
            })
            .await
            .expect("sending to the coordinator");
    }

    pub async fn send(&mut self, req: &tn::CoordinateRequest) {
        self.packet(Kind::Message, req.encode_to_vec()).await;
    }

    /// Reports this peer's node (a made-up one: the coordinator only relays it).
    pub async fn update_self(&mut self, id: i64) {
        self.send(&tn::CoordinateRequest {
            update_self: Some(tn::UpdateSelf {
                node: Some(tn::Node {
                    id,
                    key: vec![1; 32],
                    preferred_derp: 999,
                    ..Default::default()
                }),
            }),
            ..Default::default()
        })
        .await;
    }

    pub async fn add_tunnel(&mut self, to: Uuid) {
        self.send(&tn::CoordinateRequest {
            add_tunnel: Some(tn::Tunnel {
                id: to.as_bytes().to_vec(),
            }),
            ..Default::default()
        })
        .await;
    }

    /// The next response, or `None` if the call ended (an error packet, or the stream closed)
    /// or nothing came within `within`.
    pub async fn next(
        &mut self,
        within: Duration,
    ) -> Option<Result<tn::CoordinateResponse, String>> {
        let p = tokio::time::timeout(within, self.reader.next())
            .await
            .ok()?;
        match p {
            Ok(Some(p)) if p.kind == Kind::Message => {
                Some(Ok(tn::CoordinateResponse::decode(p.data.as_slice())
                    .expect("a coordinate response")))
            }
            Ok(Some(p)) if p.kind == Kind::Error => {
                Some(Err(String::from_utf8_lossy(&p.data).into_owned()))
            }
            _ => None,
        }
    }

    /// Reads responses until one carries an update about `peer` of `kind`.
    pub async fn until(&mut self, peer: Uuid, kind: i32, within: Duration) -> tn::PeerUpdate {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Ok(r)) => {
                    if let Some(u) = r
                        .peer_updates
                        .into_iter()
                        .find(|u| u.id == peer.as_bytes() && u.kind == kind)
                    {
                        return u;
                    }
                }
                other => {
                    panic!("no update of kind {kind} about {peer} within {within:?}: {other:?}")
                }
            }
        }
    }
}
