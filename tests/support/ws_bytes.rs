//! A client WebSocket (tokio-tungstenite) seen as a byte stream, as yamux wants it: binary
//! messages are the bytes, each write is one binary message, a close is the end. Shared by the
//! API tests' tailnet client and the agents benchmark (`#[path]`-included by both).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::io::{AsyncRead, AsyncWrite};
use futures_util::{Sink, Stream};
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client WebSocket as a byte stream: binary messages are the bytes.
pub struct WsBytes {
    ws: Ws,
    pending: Vec<u8>,
    at: usize,
}

impl WsBytes {
    pub fn new(ws: Ws) -> WsBytes {
        WsBytes {
            ws,
            pending: Vec::new(),
            at: 0,
        }
    }
}

impl AsyncRead for WsBytes {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            if self.at < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.at);
                let at = self.at;
                buf[..n].copy_from_slice(&self.pending[at..at + n]);
                self.at += n;
                return Poll::Ready(Ok(n));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => {
                    self.pending = b.to_vec();
                    self.at = 0;
                }
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(0)),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(std::io::Error::other(e))),
            }
        }
    }
}

impl AsyncWrite for WsBytes {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(std::io::Error::other)?;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(buf.to_vec().into()))
            .map_err(std::io::Error::other)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.ws)
            .poll_flush(cx)
            .map_err(std::io::Error::other)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.ws)
            .poll_close(cx)
            .map_err(std::io::Error::other)
    }
}
