//! The only unsafe code of the CLI: process-wide signal disposition.
#![allow(unsafe_code)]

/// Restore the default SIGPIPE disposition (terminate quietly), as a Unix filter should: Rust
/// ignores SIGPIPE by default, which turns `rkt image list | head` into a panic on write.
pub fn default_sigpipe() {
    // SAFETY: called once at the start of main, before any thread is spawned; setting a signal
    // disposition to SIG_DFL installs no handler code and touches no Rust state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
