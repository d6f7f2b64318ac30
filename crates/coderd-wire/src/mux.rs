//! The yamux session an agent or client opens over its WebSocket: every stream it opens is a
//! DRPC transport, served by the same handler.

use std::sync::Arc;

use futures_util::future::poll_fn;
use futures_util::io::{AsyncRead, AsyncWrite};

use crate::drpc;

/// Most streams a peer may hold open at once (upstream's agents use a handful).
const MAX_STREAMS: usize = 256;

/// Serves a yamux session as its server side until the peer closes it or it fails; each
/// inbound stream gets its own task running [`drpc::serve`].
pub async fn serve_session<S, H>(socket: S, handler: Arc<H>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: drpc::Handler,
{
    let mut cfg = yamux::Config::default();
    cfg.set_max_num_streams(MAX_STREAMS);
    let mut conn = yamux::Connection::new(socket, cfg, yamux::Mode::Server);
    let mut tasks = tokio::task::JoinSet::new();
    let result = loop {
        match poll_fn(|cx| conn.poll_next_inbound(cx)).await {
            Some(Ok(stream)) => {
                let handler = handler.clone();
                tasks.spawn(async move {
                    if let Err(e) = drpc::serve(stream, handler).await {
                        tracing::debug!(error = %e, "closing a DRPC transport");
                    }
                });
            }
            Some(Err(e)) => break Err(e.to_string()),
            None => break Ok(()),
        }
        // Reap finished transports so a long session does not accumulate them.
        while tasks.try_join_next().is_some() {}
    };
    tasks.abort_all();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drpc::{
        Call, CallFuture, Handler, Kind, Packet, PacketReader, PacketWriter, RpcError,
    };
    use crate::proto::agent::{Lifecycle, UpdateLifecycleRequest};
    use futures_util::io::AsyncReadExt;
    use prost::Message;
    use tokio_util::compat::TokioAsyncReadCompatExt;

    struct Lifecycles;

    impl Handler for Lifecycles {
        fn call(self: Arc<Self>, mut call: Call) -> CallFuture {
            Box::pin(async move {
                let req: UpdateLifecycleRequest = call.recv_msg().await?;
                let l = req
                    .lifecycle
                    .ok_or_else(|| RpcError("no lifecycle".into()))?;
                call.send_msg(&l).await
            })
        }
    }

    /// A client session (the other side of yamux, as an agent holds it) calls twice, on two
    /// streams at once.
    #[tokio::test]
    async fn calls_on_concurrent_streams() {
        let (client, server) = tokio::io::duplex(1 << 16);
        tokio::spawn(serve_session(server.compat(), Arc::new(Lifecycles)));
        let mut conn = yamux::Connection::new(
            client.compat(),
            yamux::Config::default(),
            yamux::Mode::Client,
        );
        let a = poll_fn(|cx| conn.poll_new_outbound(cx)).await.unwrap();
        let b = poll_fn(|cx| conn.poll_new_outbound(cx)).await.unwrap();
        // The client side must be polled too for its streams to move.
        tokio::spawn(
            async move { while poll_fn(|cx| conn.poll_next_inbound(cx)).await.is_some() {} },
        );
        let call = |stream: yamux::Stream, state: i32| async move {
            let (r, w) = stream.split();
            let mut reader = PacketReader::new(r);
            let mut writer = PacketWriter::new(w);
            let req = UpdateLifecycleRequest {
                lifecycle: Some(Lifecycle {
                    state,
                    changed_at: None,
                }),
            };
            for (kind, message, data) in [
                (
                    Kind::Invoke,
                    1,
                    b"/coder.agent.v2.Agent/UpdateLifecycle".to_vec(),
                ),
                (Kind::Message, 2, req.encode_to_vec()),
                (Kind::CloseSend, 3, Vec::new()),
            ] {
                writer
                    .send(&Packet {
                        kind,
                        stream: 1,
                        message,
                        data,
                    })
                    .await
                    .unwrap();
            }
            let p = reader.next().await.unwrap().unwrap();
            assert_eq!(p.kind, Kind::Message);
            Lifecycle::decode(p.data.as_slice()).unwrap().state
        };
        let (x, y) = tokio::join!(call(a, 2), call(b, 5));
        assert_eq!((x, y), (2, 5));
    }
}
