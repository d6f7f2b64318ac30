//! DRPC, the RPC protocol Coder's agents and tailnet clients speak over each yamux stream.
//!
//! The wire: a stream of frames, each `control byte, stream id, message id, length` (the ids
//! and the length as protobuf varints) followed by `length` bytes. The control byte holds the
//! kind in bits 1–6, "done" (last frame of a packet) in bit 0 and a control flag in bit 7.
//! Frames with the same ids make one packet. A call is: an optional `InvokeMetadata`, an
//! `Invoke` naming the method (`/coder.agent.v2.Agent/GetManifest`), the client's `Message`s
//! and its `CloseSend`; the server answers `Message`s and then `CloseSend`, or an `Error`
//! (8 bytes of big-endian error code, then the text). Ids only grow; one call at a time per
//! transport, each with the next stream id.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Largest packet accepted (and sent), as upstream's agent connection allows (4 MiB).
pub const MAX_PACKET: usize = 4 << 20;
/// Bytes read at a time from the transport.
const READ_CHUNK: usize = 4 << 10;
/// Frames are split at this size when sent.
const SPLIT: usize = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Invoke = 1,
    Message = 2,
    Error = 3,
    Cancel = 4,
    Close = 5,
    CloseSend = 6,
    InvokeMetadata = 7,
}

impl Kind {
    fn from_bits(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Invoke,
            2 => Kind::Message,
            3 => Kind::Error,
            4 => Kind::Cancel,
            5 => Kind::Close,
            6 => Kind::CloseSend,
            7 => Kind::InvokeMetadata,
            _ => return None,
        })
    }
}

/// What is wrong with what a peer sent; the transport is closed on any of these.
#[derive(Debug, PartialEq, Eq)]
pub enum WireError {
    VarintTooLong,
    UnknownKind(u8),
    TooLarge(usize),
    IdsWentBack,
    KindChanged,
    /// A packet that makes no sense where it came (a message before any invoke, …).
    Unexpected(&'static str),
    Io(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::VarintTooLong => write!(f, "varint too long"),
            WireError::UnknownKind(k) => write!(f, "unknown packet kind {k}"),
            WireError::TooLarge(n) => write!(f, "packet of {n} bytes is over the limit"),
            WireError::IdsWentBack => write!(f, "frame ids went backwards"),
            WireError::KindChanged => write!(f, "packet kind changed between frames"),
            WireError::Unexpected(what) => write!(f, "unexpected {what}"),
            WireError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WireError {}

pub fn append_varint(buf: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        buf.push((x as u8 & 0x7f) | 0x80);
        x >>= 7;
    }
    buf.push(x as u8);
}

/// A varint at the front of `buf` and how many bytes it took; `None` if `buf` ends first.
pub fn read_varint(buf: &[u8]) -> Result<Option<(u64, usize)>, WireError> {
    let mut out = 0u64;
    for (i, b) in buf.iter().enumerate() {
        if i >= 10 {
            return Err(WireError::VarintTooLong);
        }
        out |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((out, i + 1)));
        }
    }
    if buf.len() > 10 {
        return Err(WireError::VarintTooLong);
    }
    Ok(None)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub stream: u64,
    pub message: u64,
    pub done: bool,
    pub control: bool,
    pub data: Vec<u8>,
}

pub fn append_frame(buf: &mut Vec<u8>, f: &Frame) {
    let mut control = (f.kind as u8) << 1;
    if f.done {
        control |= 0b0000_0001;
    }
    if f.control {
        control |= 0b1000_0000;
    }
    buf.push(control);
    append_varint(buf, f.stream);
    append_varint(buf, f.message);
    append_varint(buf, f.data.len() as u64);
    buf.extend_from_slice(&f.data);
}

/// A frame at the front of `buf` and how many bytes it took; `None` if more bytes are needed.
pub fn parse_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, WireError> {
    let Some(&control) = buf.first() else {
        return Ok(None);
    };
    let kind_bits = (control & 0b0111_1110) >> 1;
    let kind = Kind::from_bits(kind_bits).ok_or(WireError::UnknownKind(kind_bits))?;
    let mut at = 1;
    let next = |at: &mut usize| -> Result<Option<u64>, WireError> {
        Ok(read_varint(&buf[*at..])?.map(|(v, n)| {
            *at += n;
            v
        }))
    };
    let Some(stream) = next(&mut at)? else {
        return Ok(None);
    };
    let Some(message) = next(&mut at)? else {
        return Ok(None);
    };
    let Some(len) = next(&mut at)? else {
        return Ok(None);
    };
    let len = usize::try_from(len).map_err(|_| WireError::TooLarge(usize::MAX))?;
    if len > MAX_PACKET {
        return Err(WireError::TooLarge(len));
    }
    if buf.len() - at < len {
        return Ok(None);
    }
    let frame = Frame {
        kind,
        stream,
        message,
        done: control & 1 == 1,
        control: control & 0b1000_0000 != 0,
        data: buf[at..at + len].to_vec(),
    };
    Ok(Some((frame, at + len)))
}

/// A whole packet: the frames of one (stream, message) id, joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub kind: Kind,
    pub stream: u64,
    pub message: u64,
    pub data: Vec<u8>,
}

/// Reads packets from a byte stream, as upstream's reader assembles them: a frame with new ids
/// starts a new packet (what was being assembled is dropped); ids never go back.
pub struct PacketReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// How many bytes of `buf` are data: a read dropped mid-way leaves zeros after them.
    valid: usize,
    last: (u64, u64),
    current: Option<Packet>,
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    pub fn new(inner: R) -> Self {
        PacketReader {
            inner,
            buf: Vec::new(),
            valid: 0,
            last: (0, 0),
            current: None,
        }
    }

    /// The next packet, or `None` at a clean end of the stream.
    pub async fn next(&mut self) -> Result<Option<Packet>, WireError> {
        self.buf.truncate(self.valid);
        loop {
            while let Some((frame, used)) = parse_frame(&self.buf)? {
                self.buf.drain(..used);
                self.valid = self.buf.len();
                if let Some(p) = self.accept(frame)? {
                    return Ok(Some(p));
                }
            }
            if self.buf.len() > MAX_PACKET + 64 {
                return Err(WireError::TooLarge(self.buf.len()));
            }
            // Read straight into the buffer's tail: a chunk on the stack would sit in this
            // future's state, kilobytes per idle stream, for as long as it waits. Callers may
            // drop this future mid-read (`select!`), so the bytes that count are `filled`.
            if self.buf.is_empty() && self.buf.capacity() > 64 << 10 {
                self.buf = Vec::new();
            }
            let filled = self.buf.len();
            self.buf.resize(filled + READ_CHUNK, 0);
            let read = self.inner.read(&mut self.buf[filled..]).await;
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(filled);
                    return Err(WireError::Io(e.to_string()));
                }
            };
            self.buf.truncate(filled + n);
            self.valid = self.buf.len();
            if n == 0 {
                return Ok(None);
            }
        }
    }

    fn accept(&mut self, f: Frame) -> Result<Option<Packet>, WireError> {
        let id = (f.stream, f.message);
        if id < self.last {
            return Err(WireError::IdsWentBack);
        }
        let same = self
            .current
            .as_ref()
            .is_some_and(|p| (p.stream, p.message) == id);
        if !same {
            self.current = Some(Packet {
                kind: f.kind,
                stream: f.stream,
                message: f.message,
                data: Vec::new(),
            });
        }
        self.last = id;
        let p = self.current.as_mut().expect("set above");
        if p.kind != f.kind {
            return Err(WireError::KindChanged);
        }
        if p.data.len() + f.data.len() > MAX_PACKET {
            return Err(WireError::TooLarge(p.data.len() + f.data.len()));
        }
        p.data.extend_from_slice(&f.data);
        if f.done {
            self.last = (f.stream, f.message + 1);
            return Ok(self.current.take());
        }
        Ok(None)
    }
}

/// Writes packets, split into frames.
pub struct PacketWriter<W> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> PacketWriter<W> {
    pub fn new(inner: W) -> Self {
        PacketWriter {
            inner,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, p: &Packet) -> std::io::Result<()> {
        self.buf.clear();
        let mut chunks = p.data.chunks(SPLIT).peekable();
        if chunks.peek().is_none() {
            append_frame(
                &mut self.buf,
                &Frame {
                    kind: p.kind,
                    stream: p.stream,
                    message: p.message,
                    done: true,
                    control: false,
                    data: Vec::new(),
                },
            );
        }
        while let Some(chunk) = chunks.next() {
            append_frame(
                &mut self.buf,
                &Frame {
                    kind: p.kind,
                    stream: p.stream,
                    message: p.message,
                    done: chunks.peek().is_none(),
                    control: false,
                    data: chunk.to_vec(),
                },
            );
        }
        self.inner.write_all(&self.buf).await?;
        self.inner.flush().await
    }

    pub async fn close(&mut self) -> std::io::Result<()> {
        self.inner.close().await
    }
}

/// The data of an `Error` packet: the code (0, none) and the text.
pub fn error_data(message: &str) -> Vec<u8> {
    let mut out = 0u64.to_be_bytes().to_vec();
    out.extend_from_slice(message.as_bytes());
    out
}

/// An error a method answers with; its text reaches the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError(pub String);

impl<E: std::fmt::Display> From<E> for RpcError {
    fn from(e: E) -> Self {
        RpcError(e.to_string())
    }
}

/// One call as the method sees it: the client's messages in, the method's messages out.
pub struct Call {
    pub method: String,
    incoming: mpsc::Receiver<Vec<u8>>,
    outgoing: mpsc::Sender<Vec<u8>>,
}

impl Call {
    /// The next message from the client; `None` once it closed its side.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.incoming.recv().await
    }

    /// The next message, decoded.
    pub async fn recv_msg<M: prost::Message + Default>(&mut self) -> Result<M, RpcError> {
        let data = self
            .recv()
            .await
            .ok_or_else(|| RpcError("the call sent no request".into()))?;
        M::decode(data.as_slice()).map_err(|e| RpcError(format!("decoding the request: {e}")))
    }

    /// Sends a message to the client; an error means the call is over.
    pub async fn send_msg<M: prost::Message>(&self, m: &M) -> Result<(), RpcError> {
        self.outgoing
            .send(m.encode_to_vec())
            .await
            .map_err(|_| RpcError("the call ended".into()))
    }
}

pub type CallFuture = Pin<Box<dyn Future<Output = Result<(), RpcError>> + Send>>;

/// What serves the methods of a transport.
pub trait Handler: Send + Sync + 'static {
    /// Runs one call to completion. Unknown methods answer an error.
    fn call(self: Arc<Self>, call: Call) -> CallFuture;
}

/// Serves calls on one transport (a yamux stream) until the client closes it or breaks the
/// protocol. Calls run one at a time, as DRPC requires of a transport.
pub async fn serve<S, H>(io: S, handler: Arc<H>) -> Result<(), WireError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    H: Handler,
{
    let (r, w) = io.split();
    let mut reader = PacketReader::new(r);
    let mut writer = PacketWriter::new(w);
    loop {
        // The invocation: optional metadata, then the method name.
        let invoke = loop {
            let Some(p) = reader.next().await? else {
                return Ok(());
            };
            match p.kind {
                Kind::InvokeMetadata => continue,
                Kind::Invoke => break p,
                // Leftovers of a call that ended (a late close or cancel) are harmless.
                Kind::Close | Kind::CloseSend | Kind::Cancel => continue,
                _ => return Err(WireError::Unexpected("packet before an invoke")),
            }
        };
        let method = String::from_utf8(invoke.data)
            .map_err(|_| WireError::Unexpected("method name that is not UTF-8"))?;
        let stream = invoke.stream;
        let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(16);
        let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
        let call = Call {
            method,
            incoming: in_rx,
            outgoing: out_tx,
        };
        let mut task = tokio::spawn(handler.clone().call(call));
        let mut in_tx = Some(in_tx);
        let mut message_id = 0u64;
        let mut send = |kind: Kind, data: Vec<u8>| {
            message_id += 1;
            Packet {
                kind,
                stream,
                message: message_id,
                data,
            }
        };
        let outcome = loop {
            tokio::select! {
                out = out_rx.recv() => match out {
                    Some(data) => {
                        if let Err(e) = writer.send(&send(Kind::Message, data)).await {
                            task.abort();
                            return Err(WireError::Io(e.to_string()));
                        }
                    }
                    None => {
                        // The method dropped its sender: it is finishing; wait for it.
                        let result = (&mut task).await;
                        break result;
                    }
                },
                packet = reader.next() => match packet {
                    Ok(Some(p)) if p.stream == stream => match p.kind {
                        Kind::Message => {
                            if let Some(tx) = &in_tx {
                                // A method that stopped reading does not block the transport.
                                let _ = tx.try_send(p.data);
                            }
                        }
                        Kind::CloseSend => in_tx = None,
                        Kind::Cancel | Kind::Close => {
                            task.abort();
                            break Ok(Ok(()));
                        }
                        _ => {
                            task.abort();
                            return Err(WireError::Unexpected("packet during a call"));
                        }
                    },
                    Ok(Some(_)) => {
                        task.abort();
                        return Err(WireError::Unexpected("packet of another stream during a call"));
                    }
                    Ok(None) => {
                        task.abort();
                        return Ok(());
                    }
                    Err(e) => {
                        task.abort();
                        return Err(e);
                    }
                },
                result = &mut task => {
                    // Whatever the method sent before it returned goes out first.
                    while let Ok(data) = out_rx.try_recv() {
                        writer.send(&send(Kind::Message, data)).await.map_err(|e| WireError::Io(e.to_string()))?;
                    }
                    break result;
                }
            }
        };
        let last = match outcome {
            Ok(Ok(())) => send(Kind::CloseSend, Vec::new()),
            Ok(Err(RpcError(msg))) => send(Kind::Error, error_data(&msg)),
            Err(e) if e.is_cancelled() => continue,
            Err(_) => send(Kind::Error, error_data("internal error")),
        };
        writer
            .send(&last)
            .await
            .map_err(|e| WireError::Io(e.to_string()))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_as_protobuf() {
        let mut b = Vec::new();
        append_varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        assert_eq!(read_varint(&b), Ok(Some((300, 2))));
        assert_eq!(read_varint(&[0x80]), Ok(None));
        assert_eq!(read_varint(&[0xff; 11]), Err(WireError::VarintTooLong));
        let mut max = Vec::new();
        append_varint(&mut max, u64::MAX);
        assert_eq!(max.len(), 10);
        assert_eq!(read_varint(&max), Ok(Some((u64::MAX, 10))));
    }

    /// Byte vectors written out by hand from the wire format: an invoke of
    /// `/a.B/C` on stream 1, message 1, done; and a control message frame.
    #[test]
    fn frames_byte_for_byte() {
        let invoke = Frame {
            kind: Kind::Invoke,
            stream: 1,
            message: 1,
            done: true,
            control: false,
            data: b"/a.B/C".to_vec(),
        };
        let mut b = Vec::new();
        append_frame(&mut b, &invoke);
        assert_eq!(
            b,
            [0x03, 0x01, 0x01, 0x06, b'/', b'a', b'.', b'B', b'/', b'C']
        );
        assert_eq!(parse_frame(&b), Ok(Some((invoke, 10))));
        // kind message (2 << 1 = 4), not done, control bit: 0x84; stream 300, message 2.
        let raw = [0x84, 0xac, 0x02, 0x02, 0x01, 0xff];
        let (f, used) = parse_frame(&raw).unwrap().unwrap();
        assert_eq!(used, 6);
        assert_eq!(
            (f.kind, f.stream, f.message, f.done, f.control, f.data),
            (Kind::Message, 300, 2, false, true, vec![0xff])
        );
        // Incomplete input asks for more; a bad kind or an oversized length is refused.
        assert_eq!(parse_frame(&raw[..5]), Ok(None));
        assert_eq!(
            parse_frame(&[0x7e, 1, 1, 0]),
            Err(WireError::UnknownKind(63))
        );
        let mut huge = vec![0x05, 1, 1];
        append_varint(&mut huge, (MAX_PACKET + 1) as u64);
        assert_eq!(parse_frame(&huge), Err(WireError::TooLarge(MAX_PACKET + 1)));
    }

    #[tokio::test]
    async fn packets_join_frames_and_ids_never_go_back() {
        let mut b = Vec::new();
        for (data, done) in [(&b"ab"[..], false), (&b"cd"[..], true)] {
            append_frame(
                &mut b,
                &Frame {
                    kind: Kind::Message,
                    stream: 1,
                    message: 2,
                    done,
                    control: false,
                    data: data.to_vec(),
                },
            );
        }
        append_frame(
            &mut b,
            &Frame {
                kind: Kind::Message,
                stream: 1,
                message: 1,
                done: true,
                control: false,
                data: vec![],
            },
        );
        let mut r = PacketReader::new(futures_util::io::Cursor::new(b));
        let p = r.next().await.unwrap().unwrap();
        assert_eq!((p.stream, p.message, p.data), (1, 2, b"abcd".to_vec()));
        assert_eq!(r.next().await, Err(WireError::IdsWentBack));
    }

    struct Echo;

    impl Handler for Echo {
        fn call(self: Arc<Self>, mut call: Call) -> CallFuture {
            Box::pin(async move {
                match call.method.as_str() {
                    "/t.T/Echo" => {
                        while let Some(m) = call.recv().await {
                            call.outgoing
                                .send(m)
                                .await
                                .map_err(|_| RpcError("gone".into()))?;
                        }
                        Ok(())
                    }
                    other => Err(RpcError(format!("unknown rpc {other:?}"))),
                }
            })
        }
    }

    fn packet(kind: Kind, stream: u64, message: u64, data: &[u8]) -> Packet {
        Packet {
            kind,
            stream,
            message,
            data: data.to_vec(),
        }
    }

    #[tokio::test]
    async fn a_call_and_an_unknown_method() {
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (client, server) = tokio::io::duplex(1 << 16);
        let served = tokio::spawn(serve(server.compat(), Arc::new(Echo)));
        let (r, w) = client.compat().split();
        let mut reader = PacketReader::new(r);
        let mut writer = PacketWriter::new(w);
        writer
            .send(&packet(Kind::InvokeMetadata, 1, 1, b""))
            .await
            .unwrap();
        writer
            .send(&packet(Kind::Invoke, 1, 2, b"/t.T/Echo"))
            .await
            .unwrap();
        writer
            .send(&packet(Kind::Message, 1, 3, b"hello"))
            .await
            .unwrap();
        writer
            .send(&packet(Kind::CloseSend, 1, 4, b""))
            .await
            .unwrap();
        let p = reader.next().await.unwrap().unwrap();
        assert_eq!(
            (p.kind, p.stream, p.data.as_slice()),
            (Kind::Message, 1, &b"hello"[..])
        );
        let p = reader.next().await.unwrap().unwrap();
        assert_eq!((p.kind, p.stream), (Kind::CloseSend, 1));

        writer
            .send(&packet(Kind::Invoke, 2, 1, b"/t.T/Nope"))
            .await
            .unwrap();
        writer
            .send(&packet(Kind::CloseSend, 2, 2, b""))
            .await
            .unwrap();
        let p = reader.next().await.unwrap().unwrap();
        assert_eq!(p.kind, Kind::Error);
        assert_eq!(&p.data[..8], &[0u8; 8]);
        assert_eq!(&p.data[8..], b"unknown rpc \"/t.T/Nope\"");

        // Garbage ends the transport with an error, not a panic.
        writer.inner.write_all(&[0x7e, 0, 0, 0]).await.unwrap();
        writer.inner.flush().await.unwrap();
        assert_eq!(served.await.unwrap(), Err(WireError::UnknownKind(63)));
    }
}
