//! Progress bars for fetches, drawn on stderr only when the caller asks (the CLI does when
//! stderr is a terminal): one bar per layer with bytes and rate.

use std::io::{self, Read};

/// The bars of one fetch, or nothing.
pub(crate) struct Progress {
    multi: Option<indicatif::MultiProgress>,
}

impl Progress {
    pub(crate) fn new(enabled: bool) -> Progress {
        Progress {
            multi: enabled.then(|| {
                indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr())
            }),
        }
    }

    /// Wrap a layer's blob reader so it advances a bar named after the digest.
    pub(crate) fn wrap(
        &self,
        digest: &str,
        size: u64,
        r: Box<dyn Read + Send>,
    ) -> Box<dyn Read + Send> {
        let Some(m) = &self.multi else { return r };
        let bar = m.add(indicatif::ProgressBar::new(size));
        let style = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        let short = digest.strip_prefix("sha256:").unwrap_or(digest);
        bar.set_prefix(format!("layer {}", &short[..short.len().min(12)]));
        Box::new(Counting { inner: r, bar })
    }
}

struct Counting {
    inner: Box<dyn Read + Send>,
    bar: indicatif::ProgressBar,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.bar.finish();
        } else {
            self.bar.inc(n as u64);
        }
        Ok(n)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}
