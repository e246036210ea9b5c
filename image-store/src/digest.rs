//! Digests: validation and hashing readers.

use crate::error::{Error, Result};
use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};

/// Check `d` is `sha256:<64 lower-hex>` and return the hex part.
pub(crate) fn sha256_hex(d: &str) -> Result<&str> {
    match d.strip_prefix("sha256:") {
        Some(h)
            if h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
        {
            Ok(h)
        }
        _ => Err(Error::Invalid {
            what: "digest".into(),
            reason: format!("{d:?} is not a sha256 digest"),
        }),
    }
}

/// `sha256:<hex>` of some bytes.
pub(crate) fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A reader that hashes and counts everything read through it, optionally copying it to a sink.
pub(crate) struct HashingReader<R, W = io::Sink> {
    inner: R,
    sink: W,
    hasher: Sha256,
    count: u64,
    /// The first error the inner reader returned (a network failure, say).
    source_error: Option<String>,
}

impl<R: Read> HashingReader<R, io::Sink> {
    /// Hash only.
    pub(crate) fn new(inner: R) -> Self {
        Self::tee(inner, io::sink())
    }
}

impl<R: Read, W: Write> HashingReader<R, W> {
    /// Hash and copy to `sink`.
    pub(crate) fn tee(inner: R, sink: W) -> Self {
        HashingReader {
            inner,
            sink,
            hasher: Sha256::new(),
            count: 0,
            source_error: None,
        }
    }

    /// Read to the end, discarding.
    pub(crate) fn drain(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        while self.read(&mut buf)? != 0 {}
        Ok(())
    }

    /// The first error the inner reader returned, if any.
    pub(crate) fn source_error(&self) -> Option<&str> {
        self.source_error.as_deref()
    }

    /// `(sha256:<hex>, byte count, sink)`.
    pub(crate) fn finish(self) -> (String, u64, W) {
        (
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
            self.sink,
        )
    }
}

impl<R: Read, W: Write> Read for HashingReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted && self.source_error.is_none() {
                    self.source_error = Some(e.to_string());
                }
                return Err(e);
            }
        };
        self.hasher.update(&buf[..n]);
        self.sink.write_all(&buf[..n])?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_digests() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert!(sha256_hex(&ok).is_ok());
        assert!(sha256_hex("sha256:abc").is_err());
        assert!(sha256_hex(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(sha256_hex(&format!("sha256:../{}", "a".repeat(61))).is_err());
    }

    #[test]
    fn hashes_and_tees() {
        let mut r = HashingReader::tee(&b"hello"[..], Vec::new());
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        let (d, n, out) = r.finish();
        assert_eq!(n, 5);
        assert_eq!(out, b"hello");
        assert_eq!(d, sha256_of(b"hello"));
    }
}
