//! Fetch progress on a terminal: one indicatif bar per layer download (bytes and rate) on
//! stderr, for the image store's progress callback.

use std::sync::Arc;

use stage0::images::{LayerProgress, Progress};

/// Bars on stderr when it is a terminal; `None` otherwise (nothing is drawn).
pub fn terminal_bars() -> Option<Arc<dyn Progress>> {
    std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        Arc::new(Bars(indicatif::MultiProgress::with_draw_target(
            indicatif::ProgressDrawTarget::stderr(),
        ))) as Arc<dyn Progress>
    })
}

struct Bars(indicatif::MultiProgress);

impl Progress for Bars {
    fn layer(&self, digest: &str, size: u64) -> Box<dyn LayerProgress> {
        let bar = self.0.add(indicatif::ProgressBar::new(size));
        let style = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        let short = digest.strip_prefix("sha256:").unwrap_or(digest);
        bar.set_prefix(format!("layer {}", &short[..short.len().min(12)]));
        Box::new(Bar(bar))
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        let _ = self.0.clear();
    }
}

struct Bar(indicatif::ProgressBar);

impl LayerProgress for Bar {
    fn advance(&mut self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&mut self) {
        self.0.finish();
    }
}
