//! SPDY/3.1 frames: parsing and writing, with strict length checks.
//!
//! A frame is split off a byte buffer by [`split_frame`] (which rejects an oversized length
//! before its payload is buffered), then decoded by a [`FrameDecoder`], which owns the
//! connection's inbound header-decompression context. [`FrameEncoder`] owns the outbound one.
//! [`decode_frame`] is the pure, context-free entry point for fuzzing.

use super::zlib::{HeaderCompressor, HeaderDecompressor};

/// The only SPDY version spoken.
pub const VERSION: u16 = 3;
/// The largest payload the 24-bit length field can carry; DATA frames may use all of it.
pub const MAX_DATA_PAYLOAD: usize = 0xFF_FFFF;
/// The largest control frame accepted (SYN_STREAM with its compressed headers included).
pub const MAX_CONTROL_PAYLOAD: usize = 1 << 20;
/// The largest header block accepted after decompression.
pub const MAX_HEADER_BLOCK: usize = 1 << 20;
/// The 8-byte common frame header.
pub const FRAME_HEADER_LEN: usize = 8;

/// DATA and SYN_STREAM/SYN_REPLY/HEADERS flag: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM flag: the receiver may not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// Control frame types.
pub mod kind {
    pub const SYN_STREAM: u16 = 1;
    pub const SYN_REPLY: u16 = 2;
    pub const RST_STREAM: u16 = 3;
    pub const SETTINGS: u16 = 4;
    pub const PING: u16 = 6;
    pub const GOAWAY: u16 = 7;
    pub const HEADERS: u16 = 8;
    pub const WINDOW_UPDATE: u16 = 9;
}

/// RST_STREAM status codes.
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const UNSUPPORTED_VERSION: u32 = 4;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    pub const STREAM_IN_USE: u32 = 8;
    pub const STREAM_ALREADY_CLOSED: u32 = 9;
    pub const FRAME_TOO_LARGE: u32 = 11;
}

/// GOAWAY status codes.
pub mod goaway {
    pub const OK: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INTERNAL_ERROR: u32 = 2;
}

/// SETTINGS ids this implementation acts on.
pub mod settings {
    pub const MAX_CONCURRENT_STREAMS: u32 = 4;
    pub const INITIAL_WINDOW_SIZE: u32 = 7;
}

/// A frame that cannot be parsed. Every variant is a peer's fault (or a truncated buffer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("spdy frame is incomplete: {needed} more bytes needed")]
    Incomplete { needed: usize },
    #[error("spdy frame of {len} bytes is over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("spdy version {0} is not supported (only 3)")]
    UnsupportedVersion(u16),
    #[error("spdy {kind} frame has a bad length {len}")]
    BadLength { kind: &'static str, len: usize },
    #[error("spdy {0} frame names stream 0")]
    ZeroStreamId(&'static str),
    #[error("spdy header block: {0}")]
    HeaderBlock(&'static str),
    #[error("spdy header block is over {limit} bytes decompressed")]
    HeadersTooLarge { limit: usize },
    #[error("spdy header compression: {0}")]
    Zlib(String),
}

/// A header block: lower-case names, each with one value (several values joined by NUL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name: value`; a name already present gets the value appended after a NUL.
    pub fn add(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        if let Some((_, v)) = self.0.iter_mut().find(|(n, _)| *n == name) {
            v.push('\0');
            v.push_str(value);
        } else {
            self.0.push((name, value.to_owned()));
        }
    }

    /// Builder form of [`Headers::add`].
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.add(name, value);
        self
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or(""))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

/// A decoded SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream_id: u32,
        flags: u8,
        data: bytes::Bytes,
    },
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    /// A control frame of a type this implementation does not know (SPDY says: ignore it).
    Unknown {
        kind: u16,
        flags: u8,
        len: usize,
    },
}

/// A frame split off a buffer, its header block (if any) still compressed.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a> {
    /// `Some(type)` for a control frame, `None` for DATA.
    pub control: Option<u16>,
    /// The stream id of a DATA frame (0 for control frames).
    pub stream_id: u32,
    pub flags: u8,
    pub payload: &'a [u8],
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Splits the first frame off `buf`: `Ok(None)` when more bytes are needed. The length limits
/// are checked from the 8-byte header alone, so an oversized frame is refused before it is read.
pub fn split_frame(buf: &[u8]) -> Result<Option<(RawFrame<'_>, usize)>, FrameError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    let word = be32(buf);
    let flags = buf[4];
    let len = (be32(&buf[4..]) & 0xFF_FFFF) as usize;
    let control = word & 0x8000_0000 != 0;
    if control {
        let version = ((word >> 16) & 0x7FFF) as u16;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        if len > MAX_CONTROL_PAYLOAD {
            return Err(FrameError::TooLarge {
                len,
                max: MAX_CONTROL_PAYLOAD,
            });
        }
    }
    let total = FRAME_HEADER_LEN + len;
    if buf.len() < total {
        return Ok(None);
    }
    let raw = RawFrame {
        control: control.then_some((word & 0xFFFF) as u16),
        stream_id: if control { 0 } else { word & 0x7FFF_FFFF },
        flags,
        payload: &buf[FRAME_HEADER_LEN..total],
    };
    Ok(Some((raw, total)))
}

/// Decodes frames of one connection direction (owns its header-decompression context).
#[derive(Default)]
pub struct FrameDecoder {
    z: HeaderDecompressor,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn decode(&mut self, raw: RawFrame<'_>) -> Result<Frame, FrameError> {
        let p = raw.payload;
        let len = p.len();
        let Some(kind) = raw.control else {
            return Ok(Frame::Data {
                stream_id: raw.stream_id,
                flags: raw.flags,
                data: bytes::Bytes::copy_from_slice(p),
            });
        };
        let need = |name: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(FrameError::BadLength { kind: name, len })
            }
        };
        let stream_id = |name: &'static str| {
            let id = be32(p) & 0x7FFF_FFFF;
            if id == 0 {
                Err(FrameError::ZeroStreamId(name))
            } else {
                Ok(id)
            }
        };
        Ok(match kind {
            kind::SYN_STREAM => {
                need("SYN_STREAM", len >= 10)?;
                let id = stream_id("SYN_STREAM")?;
                let headers = self.headers(&p[10..])?;
                Frame::SynStream {
                    stream_id: id,
                    associated_to: be32(&p[4..]) & 0x7FFF_FFFF,
                    priority: p[8] >> 5,
                    flags: raw.flags,
                    headers,
                }
            }
            kind::SYN_REPLY => {
                need("SYN_REPLY", len >= 4)?;
                let id = stream_id("SYN_REPLY")?;
                Frame::SynReply {
                    stream_id: id,
                    flags: raw.flags,
                    headers: self.headers(&p[4..])?,
                }
            }
            kind::HEADERS => {
                need("HEADERS", len >= 4)?;
                let id = stream_id("HEADERS")?;
                Frame::Headers {
                    stream_id: id,
                    flags: raw.flags,
                    headers: self.headers(&p[4..])?,
                }
            }
            kind::RST_STREAM => {
                need("RST_STREAM", len == 8)?;
                Frame::RstStream {
                    stream_id: stream_id("RST_STREAM")?,
                    status: be32(&p[4..]),
                }
            }
            kind::SETTINGS => {
                need("SETTINGS", len >= 4)?;
                let n = be32(p) as usize;
                need(
                    "SETTINGS",
                    n.checked_mul(8).and_then(|b| b.checked_add(4)) == Some(len),
                )?;
                let entries = p[4..]
                    .chunks_exact(8)
                    .map(|e| Setting {
                        flags: e[0],
                        id: be32(e) & 0xFF_FFFF,
                        value: be32(&e[4..]),
                    })
                    .collect();
                Frame::Settings {
                    flags: raw.flags,
                    entries,
                }
            }
            kind::PING => {
                need("PING", len == 4)?;
                Frame::Ping { id: be32(p) }
            }
            kind::GOAWAY => {
                need("GOAWAY", len == 8)?;
                Frame::GoAway {
                    last_good_stream_id: be32(p) & 0x7FFF_FFFF,
                    status: be32(&p[4..]),
                }
            }
            kind::WINDOW_UPDATE => {
                need("WINDOW_UPDATE", len == 8)?;
                Frame::WindowUpdate {
                    stream_id: be32(p) & 0x7FFF_FFFF,
                    delta: be32(&p[4..]) & 0x7FFF_FFFF,
                }
            }
            other => Frame::Unknown {
                kind: other,
                flags: raw.flags,
                len,
            },
        })
    }

    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, FrameError> {
        let block = self.z.decompress(compressed, MAX_HEADER_BLOCK)?;
        parse_header_block(&block)
    }
}

/// Parses a decompressed header block (32-bit counts and lengths, SPDY/3).
pub fn parse_header_block(block: &[u8]) -> Result<Headers, FrameError> {
    let mut rest = block;
    let mut take = |n: usize| -> Result<&[u8], FrameError> {
        if rest.len() < n {
            return Err(FrameError::HeaderBlock("truncated"));
        }
        let (a, b) = rest.split_at(n);
        rest = b;
        Ok(a)
    };
    let count = be32(take(4)?) as usize;
    // each pair takes at least 8 bytes: a bound that needs no allocation to check
    if count > block.len() / 8 {
        return Err(FrameError::HeaderBlock("more pairs than bytes"));
    }
    let mut h = Headers(Vec::with_capacity(count));
    for _ in 0..count {
        let n = be32(take(4)?) as usize;
        let name = take(n)?;
        if name.is_empty() {
            return Err(FrameError::HeaderBlock("empty header name"));
        }
        let name = std::str::from_utf8(name)
            .map_err(|_| FrameError::HeaderBlock("header name is not utf-8"))?;
        let n = be32(take(4)?) as usize;
        let value = String::from_utf8_lossy(take(n)?);
        h.add(name, &value);
    }
    if !rest.is_empty() {
        return Err(FrameError::HeaderBlock("bytes after the last pair"));
    }
    Ok(h)
}

fn header_block(h: &Headers) -> Vec<u8> {
    let mut b = Vec::with_capacity(
        4 + h
            .0
            .iter()
            .map(|(n, v)| 8 + n.len() + v.len())
            .sum::<usize>(),
    );
    b.extend_from_slice(&(h.0.len() as u32).to_be_bytes());
    for (n, v) in &h.0 {
        b.extend_from_slice(&(n.len() as u32).to_be_bytes());
        b.extend_from_slice(n.as_bytes());
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    b
}

/// Encodes frames of one connection direction (owns its header-compression context).
#[derive(Default)]
pub struct FrameEncoder {
    z: HeaderCompressor,
}

impl FrameEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `frame`'s wire form to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let start = out.len();
        let control = |out: &mut Vec<u8>, kind: u16, flags: u8| {
            out.extend_from_slice(&(0x8000u16 | VERSION).to_be_bytes());
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(&[flags, 0, 0, 0]);
        };
        let id =
            |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&(v & 0x7FFF_FFFF).to_be_bytes());
        match frame {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                id(out, *stream_id);
                out.extend_from_slice(&[*flags, 0, 0, 0]);
                out.extend_from_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                control(out, kind::SYN_STREAM, *flags);
                id(out, *stream_id);
                id(out, *associated_to);
                out.extend_from_slice(&[(priority & 7) << 5, 0]);
                self.z.compress(&header_block(headers), out)?;
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                control(out, kind::SYN_REPLY, *flags);
                id(out, *stream_id);
                self.z.compress(&header_block(headers), out)?;
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                control(out, kind::HEADERS, *flags);
                id(out, *stream_id);
                self.z.compress(&header_block(headers), out)?;
            }
            Frame::RstStream { stream_id, status } => {
                control(out, kind::RST_STREAM, 0);
                id(out, *stream_id);
                out.extend_from_slice(&status.to_be_bytes());
            }
            Frame::Settings { flags, entries } => {
                control(out, kind::SETTINGS, *flags);
                out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for e in entries {
                    out.extend_from_slice(
                        &((u32::from(e.flags) << 24) | (e.id & 0xFF_FFFF)).to_be_bytes(),
                    );
                    out.extend_from_slice(&e.value.to_be_bytes());
                }
            }
            Frame::Ping { id: ping } => {
                control(out, kind::PING, 0);
                out.extend_from_slice(&ping.to_be_bytes());
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control(out, kind::GOAWAY, 0);
                id(out, *last_good_stream_id);
                out.extend_from_slice(&status.to_be_bytes());
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control(out, kind::WINDOW_UPDATE, 0);
                id(out, *stream_id);
                id(out, *delta);
            }
            Frame::Unknown { kind, flags, len } => {
                control(out, *kind, *flags);
                out.resize(out.len() + len, 0);
            }
        }
        let len = out.len() - start - FRAME_HEADER_LEN;
        let max = if matches!(frame, Frame::Data { .. }) {
            MAX_DATA_PAYLOAD
        } else {
            MAX_CONTROL_PAYLOAD
        };
        if len > max {
            out.truncate(start);
            return Err(FrameError::TooLarge { len, max });
        }
        out[start + 5..start + 8].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        Ok(())
    }
}

/// Decodes the first frame of `bytes` with a fresh header context (as at the start of a
/// connection) and returns it with the number of bytes it took. Pure and panic-free on any
/// input: the entry point for fuzzing.
pub fn decode_frame(bytes: &[u8]) -> Result<(Frame, usize), FrameError> {
    match split_frame(bytes)? {
        Some((raw, used)) => Ok((FrameDecoder::new().decode(raw)?, used)),
        None => {
            let needed = if bytes.len() < FRAME_HEADER_LEN {
                FRAME_HEADER_LEN - bytes.len()
            } else {
                FRAME_HEADER_LEN + (be32(&bytes[4..]) & 0xFF_FFFF) as usize - bytes.len()
            };
            Err(FrameError::Incomplete { needed })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frames: &[Frame]) {
        let mut enc = FrameEncoder::new();
        let mut wire = Vec::new();
        for f in frames {
            enc.encode(f, &mut wire).unwrap();
        }
        let mut dec = FrameDecoder::new();
        let mut rest = &wire[..];
        for f in frames {
            let (raw, used) = split_frame(rest).unwrap().unwrap();
            assert_eq!(&dec.decode(raw).unwrap(), f);
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
    }

    fn hdrs() -> Headers {
        Headers::new()
            .with("streamType", "stdin")
            .with("port", "8080")
            .with("requestid", "0")
    }

    #[test]
    fn every_frame_type_round_trips() {
        round_trip(&[
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 3,
                flags: FLAG_UNIDIRECTIONAL,
                headers: hdrs(),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: Headers::new(),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 1,
                priority: 0,
                flags: FLAG_FIN,
                headers: hdrs(),
            },
            Frame::Data {
                stream_id: 1,
                flags: 0,
                data: bytes::Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: bytes::Bytes::new(),
            },
            Frame::RstStream {
                stream_id: 3,
                status: rst::CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![Setting {
                    flags: 1,
                    id: settings::INITIAL_WINDOW_SIZE,
                    value: 65536,
                }],
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good_stream_id: 3,
                status: goaway::OK,
            },
            Frame::Headers {
                stream_id: 1,
                flags: FLAG_FIN,
                headers: Headers::new().with("a", "b"),
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 1 << 20,
            },
            Frame::Unknown {
                kind: 10,
                flags: 0,
                len: 3,
            },
        ]);
    }

    #[test]
    fn header_names_are_lowercase_and_case_insensitive() {
        let h = Headers::new()
            .with("StreamType", "error")
            .with("streamtype", "data");
        assert_eq!(h.len(), 1);
        assert_eq!(h.get("STREAMTYPE"), Some("error"));
        assert_eq!(h.iter().next(), Some(("streamtype", "error\0data")));
    }

    /// A SYN_STREAM as a C-zlib peer writes it (header block from zlib.rs's vector).
    #[test]
    fn decodes_foreign_syn_stream() {
        let block = super::super::zlib::tests::hex(
            "78f9e3c6a7c202e50e703a2b294a4dcc851625acc525c03c0129968b404998c9c200000000ffff",
        );
        let mut f = vec![0x80, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0];
        f.extend_from_slice(&block);
        let len = (f.len() - 8) as u32;
        f[5..8].copy_from_slice(&len.to_be_bytes()[1..]);
        let (frame, used) = decode_frame(&f).unwrap();
        assert_eq!(used, f.len());
        let Frame::SynStream {
            stream_id: 5,
            headers,
            ..
        } = frame
        else {
            panic!("{frame:?}")
        };
        assert_eq!(headers.get("streamtype"), Some("stdin"));
        assert_eq!(headers.get("port"), Some("80"));
    }

    #[test]
    fn truncated_frames_ask_for_more() {
        let mut wire = Vec::new();
        FrameEncoder::new()
            .encode(
                &Frame::SynStream {
                    stream_id: 1,
                    associated_to: 0,
                    priority: 0,
                    flags: 0,
                    headers: hdrs(),
                },
                &mut wire,
            )
            .unwrap();
        for cut in 0..wire.len() {
            assert!(
                matches!(
                    decode_frame(&wire[..cut]),
                    Err(FrameError::Incomplete { .. })
                ),
                "cut {cut}"
            );
            assert!(split_frame(&wire[..cut]).unwrap().is_none());
        }
        assert!(decode_frame(&wire).is_ok());
    }

    #[test]
    fn hostile_frames_are_errors() {
        // oversized control frame: refused from its header alone
        let big = [0x80, 3, 0, 1, 0, 0x20, 0, 0];
        assert!(matches!(
            split_frame(&big),
            Err(FrameError::TooLarge { .. })
        ));
        // wrong version
        assert!(matches!(
            decode_frame(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]),
            Err(FrameError::UnsupportedVersion(2))
        ));
        // bad fixed lengths
        assert!(matches!(
            decode_frame(&[0x80, 3, 0, 6, 0, 0, 0, 3, 0, 0, 1]),
            Err(FrameError::BadLength { .. })
        ));
        assert!(matches!(
            decode_frame(&[0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1]),
            Err(FrameError::BadLength { .. })
        ));
        assert!(matches!(
            decode_frame(&[0x80, 3, 0, 7, 0, 0, 0, 4, 0, 0, 0, 1]),
            Err(FrameError::BadLength { .. })
        ));
        assert!(matches!(
            decode_frame(&[0x80, 3, 0, 9, 0, 0, 0, 4, 0, 0, 0, 1]),
            Err(FrameError::BadLength { .. })
        ));
        assert!(matches!(
            decode_frame(&[0x80, 3, 0, 1, 0, 0, 0, 2, 0, 1]),
            Err(FrameError::BadLength { .. })
        ));
        // settings count that does not match the length, including one that would overflow
        assert!(matches!(
            decode_frame(&[0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 9]),
            Err(FrameError::BadLength { .. })
        ));
        assert!(matches!(
            decode_frame(&[0x80, 3, 0, 4, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::BadLength { .. })
        ));
        // stream id 0 on a stream frame
        assert!(matches!(
            decode_frame(&[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(FrameError::ZeroStreamId(_))
        ));
        // SYN_STREAM whose header block is not zlib
        let mut f = vec![0x80, 3, 0, 1, 0, 0, 0, 18, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        f.extend_from_slice(b"notzlib!");
        assert!(matches!(decode_frame(&f), Err(FrameError::Zlib(_))));
        // unknown control types decode to Unknown and are skipped
        let (f, used) = decode_frame(&[0x80, 3, 0, 0x42, 0, 0, 0, 2, 1, 2, 9]).unwrap();
        assert_eq!(
            f,
            Frame::Unknown {
                kind: 0x42,
                flags: 0,
                len: 2
            }
        );
        assert_eq!(used, 10);
    }

    #[test]
    fn hostile_header_blocks_are_errors() {
        let cases: [&[u8]; 5] = [
            b"",
            b"\x00\x00\x00\x01",
            b"\xff\xff\xff\xff\x00\x00\x00\x00",
            b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00",
            b"\x00\x00\x00\x01\x00\x00\x00\x01a\xff\xff\xff\xff",
        ];
        for c in cases {
            assert!(parse_header_block(c).is_err(), "{c:?}");
        }
        assert!(parse_header_block(b"\x00\x00\x00\x00trailing").is_err());
        // a header block that inflates past the limit
        let mut block = 1u32.to_be_bytes().to_vec();
        block.extend_from_slice(&1u32.to_be_bytes());
        block.push(b'a');
        block.extend_from_slice(&((MAX_HEADER_BLOCK as u32) + 1).to_be_bytes());
        block.resize(block.len() + MAX_HEADER_BLOCK + 1, b'x');
        let mut z = Vec::new();
        HeaderCompressor::new().compress(&block, &mut z).unwrap();
        let mut f = vec![0x80, 3, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1];
        f.extend_from_slice(&z);
        let len = (f.len() - 8) as u32;
        f[5..8].copy_from_slice(&len.to_be_bytes()[1..]);
        assert!(matches!(
            decode_frame(&f),
            Err(FrameError::HeadersTooLarge { .. })
        ));
    }

    /// Cheap deterministic fuzzing: no input may panic the decoder.
    #[test]
    fn random_inputs_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut wire = Vec::new();
        FrameEncoder::new()
            .encode(
                &Frame::SynStream {
                    stream_id: 1,
                    associated_to: 0,
                    priority: 0,
                    flags: 0,
                    headers: hdrs(),
                },
                &mut wire,
            )
            .unwrap();
        for i in 0..20_000 {
            let mut buf: Vec<u8> = if i % 2 == 0 {
                (0..(next() % 64) as usize).map(|_| next() as u8).collect()
            } else {
                wire.clone()
            };
            if !buf.is_empty() {
                let n = buf.len();
                for _ in 0..=(next() % 4) {
                    buf[(next() as usize) % n] = next() as u8;
                }
            }
            if i % 4 == 0 && buf.len() >= 2 {
                buf[0] = 0x80;
                buf[1] = 3;
            }
            let _ = decode_frame(&buf);
        }
    }
}
