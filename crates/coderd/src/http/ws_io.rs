//! A WebSocket seen as a byte stream, the way upstream's `websocket.NetConn` presents it to
//! yamux: binary messages are the bytes, each write is one binary message, a text message is
//! an error and a close (or the end) is the end of the stream.

use crate::http::error::ApiError;
use crate::http::error::ApiResult;
use crate::http::json::to_go_json;
use axum::body::Bytes;
use axum::extract::ws::close_code;
use axum::extract::ws::CloseFrame;
use axum::extract::ws::Message;
use axum::extract::ws::WebSocket;
use axum::extract::ws::WebSocketUpgrade;
use futures_util::io::AsyncRead;
use futures_util::io::AsyncWrite;
use futures_util::Sink;
use futures_util::Stream;
use serde::Serialize;
use std::io;
use std::pin::Pin;
use std::task::ready;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

pub struct WsIo {
    ws: WebSocket,
    pending: Bytes,
    ended: bool,
}

impl WsIo {
    pub fn new(ws: WebSocket) -> Self {
        WsIo {
            ws,
            pending: Bytes::new(),
            ended: false,
        }
    }
}

pub fn broken(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, e.to_string())
}

impl AsyncRead for WsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if !self.pending.is_empty() {
                let n = buf.len().min(self.pending.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                let rest = self.pending.split_off(n);
                self.pending = rest;
                return Poll::Ready(Ok(n));
            }
            if self.ended {
                return Poll::Ready(Ok(0));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => self.pending = b,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "expected a binary WebSocket message, got text",
                    )))
                }
                Some(Ok(Message::Close(_))) | None => self.ended = true,
                Some(Err(e)) => return Poll::Ready(Err(broken(e))),
            }
        }
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(broken)?;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(broken)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(broken)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(broken)
    }
}

/// A WebSocket upgrade, if the request asked for one.
pub type Upgrade = Result<
    axum::extract::ws::WebSocketUpgrade,
    axum::extract::ws::rejection::WebSocketUpgradeRejection,
>;

pub fn upgrade_or_400(ws: Upgrade) -> ApiResult<WebSocketUpgrade> {
    ws.map_err(|e| ApiError::bad_request("Failed to accept websocket.").with_detail(e.body_text()))
}

pub fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// The close frame streams end with when the server shuts down: clients reconnect elsewhere.
pub fn going_away() -> Message {
    close(close_code::AWAY, "The server is shutting down.")
}

pub fn text(v: &impl Serialize) -> Message {
    let mut json = to_go_json(v);
    json.pop();
    Message::Text(String::from_utf8(json).unwrap_or_default().into())
}

/// How often an idle stream is pinged, as Coder's.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
