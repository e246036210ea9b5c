//! The WebSocket (RFC 6455) subset the streaming protocols need: the handshake key, framing
//! with masking, fragmentation, ping/pong and close, and a byte-stream adapter for SPDY over
//! WebSocket (`SPDY/3.1+portforward.k8s.io`).

use std::io;

use base64::Engine as _;
use bytes::{Buf, BytesMut};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// RFC 6455's handshake GUID.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest message (all fragments) accepted.
pub const MAX_MESSAGE: usize = 16 << 20;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

pub mod opcode {
    pub const CONTINUATION: u8 = 0;
    pub const TEXT: u8 = 1;
    pub const BINARY: u8 = 2;
    pub const CLOSE: u8 = 8;
    pub const PING: u8 = 9;
    pub const PONG: u8 = 10;
}

/// Close code for a normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code for a protocol violation.
pub const CLOSE_PROTOCOL: u16 = 1002;

/// One whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame, with its code when it had one.
    Close(Option<u16>),
}

/// A peer's WebSocket violation, or the connection failing.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("websocket: {0}")]
    Protocol(&'static str),
    #[error("websocket message of {len} bytes is over the limit of {max}")]
    TooLarge { len: u64, max: usize },
    #[error("websocket connection: {0}")]
    Io(#[from] io::Error),
}

/// Which end this is: a server requires masked frames and sends unmasked ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
    /// Bytes the header took.
    pub header_len: usize,
}

/// Parses a frame header from `buf`: `Ok(None)` when more bytes are needed. Pure and
/// panic-free on any input.
pub fn parse_frame_header(buf: &[u8]) -> Result<Option<FrameHeader>, WsError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol("reserved bits set"));
    }
    let opcode = b0 & 0x0F;
    let fin = b0 & 0x80 != 0;
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(b);
            if len >> 63 != 0 {
                return Err(WsError::Protocol("64-bit length with the top bit set"));
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode >= 8 && (!fin || len > 125) {
        return Err(WsError::Protocol("fragmented or long control frame"));
    }
    if !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) {
        return Err(WsError::Protocol("unknown opcode"));
    }
    let mask = if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        let m = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin,
        opcode,
        mask,
        len,
        header_len: at,
    }))
}

fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// Reads whole messages off a connection.
pub struct WsReader<R> {
    rd: R,
    role: Role,
    buf: BytesMut,
    partial: Option<(u8, Vec<u8>)>,
}

impl<R: AsyncRead + Unpin> WsReader<R> {
    pub fn new(rd: R, role: Role) -> Self {
        Self {
            rd,
            role,
            buf: BytesMut::with_capacity(16 * 1024),
            partial: None,
        }
    }

    /// The next message; `Ok(None)` when the connection ended between frames.
    pub async fn read_message(&mut self) -> Result<Option<Message>, WsError> {
        loop {
            let Some(h) = parse_frame_header(&self.buf)? else {
                if self.fill().await? {
                    continue;
                }
                return Ok(None);
            };
            match (self.role, h.mask.is_some()) {
                (Role::Server, false) => {
                    return Err(WsError::Protocol("client frame is not masked"))
                }
                (Role::Client, true) => return Err(WsError::Protocol("server frame is masked")),
                _ => {}
            }
            let so_far = self.partial.as_ref().map_or(0, |p| p.1.len() as u64);
            if h.len + so_far > MAX_MESSAGE as u64 {
                return Err(WsError::TooLarge {
                    len: h.len + so_far,
                    max: MAX_MESSAGE,
                });
            }
            let total = h.header_len + h.len as usize;
            while self.buf.len() < total {
                if !self.fill().await? {
                    return Err(WsError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
            }
            self.buf.advance(h.header_len);
            let mut payload = self.buf.split_to(h.len as usize).to_vec();
            if let Some(m) = h.mask {
                apply_mask(&mut payload, m);
            }
            match h.opcode {
                opcode::PING => return Ok(Some(Message::Ping(payload))),
                opcode::PONG => return Ok(Some(Message::Pong(payload))),
                opcode::CLOSE => {
                    return match payload.len() {
                        0 => Ok(Some(Message::Close(None))),
                        1 => Err(WsError::Protocol("close frame of one byte")),
                        _ => Ok(Some(Message::Close(Some(u16::from_be_bytes([
                            payload[0], payload[1],
                        ]))))),
                    };
                }
                opcode::CONTINUATION => {
                    let Some((_, data)) = self.partial.as_mut() else {
                        return Err(WsError::Protocol("continuation without a message"));
                    };
                    data.extend_from_slice(&payload);
                }
                op => {
                    if self.partial.is_some() {
                        return Err(WsError::Protocol("new message inside a fragmented one"));
                    }
                    self.partial = Some((op, payload));
                }
            }
            if h.fin {
                if let Some((op, data)) = self.partial.take() {
                    return Ok(Some(if op == opcode::TEXT {
                        Message::Text(data)
                    } else {
                        Message::Binary(data)
                    }));
                }
            }
        }
    }

    /// Reads more bytes; `false` at EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        self.buf.reserve(16 * 1024);
        Ok(self.rd.read_buf(&mut self.buf).await? > 0)
    }
}

/// Writes messages to a connection.
pub struct WsWriter<W> {
    wr: W,
    role: Role,
    closed: bool,
}

impl<W: AsyncWrite + Unpin> WsWriter<W> {
    pub fn new(wr: W, role: Role) -> Self {
        Self {
            wr,
            role,
            closed: false,
        }
    }

    /// Sends one unfragmented message and flushes. After a close frame, nothing more is sent.
    pub async fn send(&mut self, msg: &Message) -> io::Result<()> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "websocket is closed",
            ));
        }
        let close_payload;
        let (op, data): (u8, &[u8]) = match msg {
            Message::Text(d) => (opcode::TEXT, d),
            Message::Binary(d) => (opcode::BINARY, d),
            Message::Ping(d) => (opcode::PING, d),
            Message::Pong(d) => (opcode::PONG, d),
            Message::Close(code) => {
                self.closed = true;
                close_payload = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
                (opcode::CLOSE, &close_payload)
            }
        };
        self.send_frame(op, data).await
    }

    /// Sends a binary message made of `head` followed by `body` (a channel byte and data).
    pub async fn send_binary(&mut self, head: &[u8], body: &[u8]) -> io::Result<()> {
        let mut v = Vec::with_capacity(head.len() + body.len());
        v.extend_from_slice(head);
        v.extend_from_slice(body);
        self.send(&Message::Binary(v)).await
    }

    async fn send_frame(&mut self, op: u8, data: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(data.len() + 14);
        out.push(0x80 | op);
        let mask_bit = if self.role == Role::Client { 0x80 } else { 0 };
        match data.len() {
            n if n < 126 => out.push(mask_bit | n as u8),
            n if n <= 0xFFFF => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let start = out.len();
        if self.role == Role::Client {
            let mut m = [0u8; 4];
            getrandom::getrandom(&mut m).map_err(|e| io::Error::other(e.to_string()))?;
            out.extend_from_slice(&m);
            out.extend_from_slice(data);
            apply_mask(&mut out[start + 4..], m);
        } else {
            out.extend_from_slice(data);
        }
        self.wr.write_all(&out).await?;
        self.wr.flush().await
    }

    /// Shuts the write side of the connection down.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.wr.shutdown().await
    }
}

/// Runs a byte stream over binary WebSocket messages (each write one message, each message's
/// payload read in order): returns the byte-stream end; the pumps run until either side ends.
pub fn byte_stream<R, W>(mut reader: WsReader<R>, writer: WsWriter<W>) -> tokio::io::DuplexStream
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut from_session, mut to_session) = tokio::io::split(ours);
    let writer = std::sync::Arc::new(tokio::sync::Mutex::new(writer));
    let w2 = writer.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if w2
                        .lock()
                        .await
                        .send(&Message::Binary(buf[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let mut w = w2.lock().await;
        let _ = w.send(&Message::Close(Some(CLOSE_NORMAL))).await;
        let _ = w.shutdown().await;
    });
    tokio::spawn(async move {
        loop {
            match reader.read_message().await {
                Ok(Some(Message::Binary(d))) => {
                    if to_session.write_all(&d).await.is_err() {
                        break;
                    }
                }
                Ok(Some(Message::Ping(p))) => {
                    let _ = writer.lock().await.send(&Message::Pong(p)).await;
                }
                Ok(Some(Message::Pong(_))) => {}
                Ok(Some(Message::Text(_))) => {
                    tracing::debug!("websocket: text message on a binary tunnel, closing");
                    let _ = writer
                        .lock()
                        .await
                        .send(&Message::Close(Some(CLOSE_PROTOCOL)))
                        .await;
                    break;
                }
                Ok(Some(Message::Close(_))) | Ok(None) => {
                    let _ = writer
                        .lock()
                        .await
                        .send(&Message::Close(Some(CLOSE_NORMAL)))
                        .await;
                    break;
                }
                Err(e) => {
                    tracing::debug!("websocket tunnel: {e}");
                    break;
                }
            }
        }
        let _ = to_session.shutdown().await;
    });
    theirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn messages_round_trip_both_roles() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let mut client_w = WsWriter::new(aw, Role::Client);
        let mut server_r = WsReader::new(br, Role::Server);
        let mut server_w = WsWriter::new(bw, Role::Server);
        let mut client_r = WsReader::new(ar, Role::Client);
        let big = vec![7u8; 70_000];
        for m in [
            Message::Binary(b"\x00hi".to_vec()),
            Message::Binary(big.clone()),
            Message::Ping(b"p".to_vec()),
            Message::Text(b"t".to_vec()),
            Message::Close(Some(1000)),
        ] {
            client_w.send(&m).await.unwrap();
            assert_eq!(server_r.read_message().await.unwrap(), Some(m.clone()));
            if !matches!(m, Message::Close(_)) {
                server_w.send(&m).await.unwrap();
                assert_eq!(client_r.read_message().await.unwrap(), Some(m));
            }
        }
        assert!(client_w.send(&Message::Binary(vec![])).await.is_err());
    }

    #[tokio::test]
    async fn fragments_are_joined_and_violations_refused() {
        let msg = |bytes: &[u8]| {
            let bytes = bytes.to_vec();
            async move {
                let (a, mut b) = tokio::io::duplex(1 << 16);
                b.write_all(&bytes).await.unwrap();
                drop(b);
                WsReader::new(a, Role::Server).read_message().await
            }
        };
        // "ab" in two masked fragments (mask 0)
        let frags = [0x02, 0x81, 0, 0, 0, 0, b'a', 0x80, 0x81, 0, 0, 0, 0, b'b'];
        assert_eq!(
            msg(&frags).await.unwrap(),
            Some(Message::Binary(b"ab".to_vec()))
        );
        // unmasked client frame
        assert!(matches!(
            msg(&[0x82, 0x01, b'a']).await,
            Err(WsError::Protocol(_))
        ));
        // reserved bits, unknown opcode, long ping, continuation first
        assert!(matches!(
            msg(&[0xC2, 0x80, 0, 0, 0, 0]).await,
            Err(WsError::Protocol(_))
        ));
        assert!(matches!(
            msg(&[0x83, 0x80, 0, 0, 0, 0]).await,
            Err(WsError::Protocol(_))
        ));
        assert!(matches!(
            msg(&[0x89, 0xFE, 0, 200, 0, 0, 0, 0]).await,
            Err(WsError::Protocol(_))
        ));
        assert!(matches!(
            msg(&[0x80, 0x80, 0, 0, 0, 0]).await,
            Err(WsError::Protocol(_))
        ));
        // a huge declared length is refused before anything is buffered
        assert!(matches!(
            msg(&[0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).await,
            Err(WsError::TooLarge { .. })
        ));
        // truncated payload
        assert!(matches!(
            msg(&[0x82, 0x85, 0, 0, 0, 0, b'a']).await,
            Err(WsError::Io(_))
        ));
        // clean EOF
        assert_eq!(msg(&[]).await.unwrap(), None);
    }
}
