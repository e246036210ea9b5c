//! SPDY/3 header-block compression: zlib with the protocol's fixed dictionary, one stream per
//! direction per connection, each header block ended with a sync flush.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::frame::FrameError;

/// The header names the SPDY/3 dictionary lists first, each preceded by its 32-bit length.
const DICT_WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The dictionary's tail: status codes and common values, as one run of text.
const DICT_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 header compression dictionary (1423 bytes).
pub fn dictionary() -> &'static [u8] {
    static DICT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in DICT_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICT_TAIL.as_bytes());
        d
    })
}

/// Compresses header blocks of one direction of a connection.
pub struct HeaderCompressor {
    z: Compress,
    /// set when zlib refused the dictionary: every block is then an error
    broken: Option<String>,
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCompressor {
    pub fn new() -> Self {
        let mut z = Compress::new(Compression::default(), true);
        let broken = z.set_dictionary(dictionary()).err().map(|e| e.to_string());
        Self { z, broken }
    }

    /// Appends the compressed form of `block` (sync-flushed) to `out`.
    pub fn compress(&mut self, block: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        if let Some(e) = &self.broken {
            return Err(FrameError::Zlib(format!("dictionary: {e}")));
        }
        let start_in = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(block.len() / 2 + 256);
            }
            let before_out = self.z.total_out();
            let st = self
                .z
                .compress_vec(&block[consumed..], out, FlushCompress::Sync)
                .map_err(|e| FrameError::Zlib(e.to_string()))?;
            let consumed = (self.z.total_in() - start_in) as usize;
            let produced = self.z.total_out() - before_out;
            // a sync flush is complete when all input is in and zlib left room in the buffer
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(());
            }
            if st == Status::BufError && produced == 0 && consumed == block.len() {
                return Ok(());
            }
        }
    }
}

/// Decompresses header blocks of one direction of a connection.
pub struct HeaderDecompressor {
    z: Decompress,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    pub fn new() -> Self {
        Self {
            z: Decompress::new(true),
        }
    }

    /// Decompresses one header block; more than `limit` bytes of output is an error.
    pub fn decompress(&mut self, input: &[u8], limit: usize) -> Result<Vec<u8>, FrameError> {
        let mut out: Vec<u8> =
            Vec::with_capacity(input.len().saturating_mul(4).clamp(64, 16 * 1024));
        let start_in = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start_in) as usize;
            if out.len() == out.capacity() {
                if out.len() >= limit {
                    return Err(FrameError::HeadersTooLarge { limit });
                }
                let grow = out.len().max(1024).min(limit + 1 - out.len());
                out.reserve_exact(grow);
            }
            let before = (self.z.total_in(), self.z.total_out());
            match self
                .z
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => {
                    // the peer ended its zlib stream: later blocks could not be decoded
                    return Err(FrameError::Zlib("header compression stream ended".into()));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(dictionary())
                        .map_err(|e| FrameError::Zlib(format!("dictionary: {e}")))?;
                    continue;
                }
                Err(e) => return Err(FrameError::Zlib(e.to_string())),
            }
            if out.len() > limit {
                return Err(FrameError::HeadersTooLarge { limit });
            }
            let consumed = (self.z.total_in() - start_in) as usize;
            let progressed = (self.z.total_in(), self.z.total_out()) != before;
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if !progressed && out.len() < out.capacity() {
                // zlib wants input the block does not have
                return Err(FrameError::Zlib("truncated header block".into()));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn dictionary_is_the_spdy3_one() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // adler-32 of the dictionary as zlib reports it in FDICT headers
        let (mut a, mut b) = (1u32, 0u32);
        for &x in d {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn round_trip_across_blocks_shares_context() {
        let mut c = HeaderCompressor::new();
        let mut d = HeaderDecompressor::new();
        for block in [
            &b"\x00\x00\x00\x01\x00\x00\x00\x0astreamtype\x00\x00\x00\x05error"[..],
            b"",
            b"hello hello hello",
        ] {
            let mut z = Vec::new();
            c.compress(block, &mut z).unwrap();
            assert_eq!(d.decompress(&z, 1 << 20).unwrap(), block);
        }
    }

    /// A block compressed by C zlib (Python's zlib, zdict = the SPDY dictionary, sync flush):
    /// the decompressor must find the dictionary and decode it.
    #[test]
    fn decodes_c_zlib_output() {
        let z = hex(C_ZLIB_BLOCK);
        let mut d = HeaderDecompressor::new();
        let out = d.decompress(&z, 1 << 20).unwrap();
        assert_eq!(out, C_ZLIB_PLAIN);
    }

    #[test]
    fn limits_and_garbage() {
        let mut c = HeaderCompressor::new();
        let big = vec![b'a'; 100_000];
        let mut z = Vec::new();
        c.compress(&big, &mut z).unwrap();
        let mut d = HeaderDecompressor::new();
        assert!(matches!(
            d.decompress(&z, 1000),
            Err(FrameError::HeadersTooLarge { .. })
        ));
        let mut d = HeaderDecompressor::new();
        assert!(d.decompress(b"\x01\x02\x03\x04garbage", 1000).is_err());
        // a cut block inflates to less than was sent (zlib waits for the rest): the header
        // block parser then refuses it
        let mut d = HeaderDecompressor::new();
        let cut = d.decompress(&z[..z.len() / 2], 1 << 20);
        assert!(cut.map_or(true, |out| out.len() < big.len()));
    }

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const C_ZLIB_PLAIN: &[u8] = b"\x00\x00\x00\x02\x00\x00\x00\x0astreamtype\x00\x00\x00\x05stdin\x00\x00\x00\x04port\x00\x00\x00\x0280";
    const C_ZLIB_BLOCK: &str =
        "78f9e3c6a7c202e50e703a2b294a4dcc851625acc525c03c0129968b404998c9c200000000ffff";
}
