//! Fetch progress as a callback: the store never draws anything itself. A front end passes a
//! [`Progress`] in [`crate::FetchOptions::progress`] (`rkt` draws bars on a terminal with it; a
//! CRI server could report pull progress); each layer download then reports its bytes.

use std::io::{self, Read};
use std::sync::Arc;

/// Receives the progress of a fetch. Called from the fetch's worker threads.
pub trait Progress: Send + Sync {
    /// A layer download of `size` bytes (its blob `digest`) starts; the returned handle gets
    /// its bytes as they are read.
    fn layer(&self, digest: &str, size: u64) -> Box<dyn LayerProgress>;
}

/// The progress of one layer download.
pub trait LayerProgress: Send {
    /// `n` more bytes were read.
    fn advance(&mut self, n: u64);
    /// The download ended (all bytes read).
    fn finish(&mut self);
}

/// Wrap a layer's blob reader so it reports to `progress`, if any.
pub(crate) fn wrap(
    progress: Option<&Arc<dyn Progress>>,
    digest: &str,
    size: u64,
    r: Box<dyn Read + Send>,
) -> Box<dyn Read + Send> {
    match progress {
        None => r,
        Some(p) => Box::new(Counting {
            inner: r,
            layer: p.layer(digest, size),
        }),
    }
}

struct Counting {
    inner: Box<dyn Read + Send>,
    layer: Box<dyn LayerProgress>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.layer.finish();
        } else {
            self.layer.advance(n as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Arc<Mutex<Vec<(String, u64, bool)>>>);
    struct One(Arc<Mutex<Vec<(String, u64, bool)>>>, usize);
    impl Progress for Seen {
        fn layer(&self, digest: &str, size: u64) -> Box<dyn LayerProgress> {
            let mut v = self.0.lock().unwrap();
            v.push((digest.into(), size, false));
            Box::new(One(self.0.clone(), v.len() - 1))
        }
    }
    impl LayerProgress for One {
        fn advance(&mut self, n: u64) {
            self.0.lock().unwrap()[self.1].1 -= n;
        }
        fn finish(&mut self) {
            self.0.lock().unwrap()[self.1].2 = true;
        }
    }

    #[test]
    fn a_layer_reports_every_byte_and_its_end() {
        let seen = Seen::default();
        let log = seen.0.clone();
        let p: Arc<dyn Progress> = Arc::new(seen);
        let mut r = wrap(Some(&p), "sha256:ab", 5, Box::new(&b"hello"[..]));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
        assert_eq!(
            *log.lock().unwrap(),
            vec![("sha256:ab".to_string(), 0, true)]
        );
    }
}
