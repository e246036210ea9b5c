//! rkt's per-pod monitor.
//!
//! `rkt run` is one process for the pod's whole life: stage0 execs `rkt-stage1`, which sets the
//! pod up with libcontainer and then execs `rkt-monitor` (this crate's binary) for as long as the
//! apps run; when they have all exited, the monitor execs `rkt-stage1 teardown`, which removes
//! the pod's network and cgroups and exits with the pod's code. Same PID throughout, so a shell,
//! a systemd unit or the kubelet's shim sees one process, and while the pod runs that process is
//! a static binary with no libc whose resident set is a few pages (the set-up binary's would be
//! megabytes of code it no longer needs).
//!
//! The library is `no_std` and allocation-free, and it is also what stage1 links for the
//! handoff in both directions ([`handoff`]) and for supervising in-process when it keeps the pod
//! itself (an interactive app's terminal relay):
//! - [`handoff`]: the monitor's argv (written by stage1) and the teardown argv (written by the
//!   monitor), each with its parser.
//! - [`pod`]: the stop/reap state machine: which app exited, when to stop the others, when to
//!   kill, what the pod's exit code is.
//! - [`status`]: the `status/<app>` record (stage1-abi's `AppStatus`) as JSON, without serde.
//! - [`monitor`]: the binary's loop (signalfd + ppoll, wait4, exec) on raw system calls.
#![cfg_attr(not(test), no_std)]

pub mod handoff;
pub mod monitor;
pub mod pause;
pub mod pod;
pub mod status;
pub mod sys;

/// Fixed-capacity formatting into a stack buffer (the monitor has no allocator).
pub struct Buf<const N: usize> {
    data: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self {
            data: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> Buf<N> {
    /// What was written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// What was written so far followed by a NUL, as a C string: `None` if there is no room for
    /// the NUL or the text has a NUL of its own.
    pub fn as_cstr(&mut self) -> Option<&core::ffi::CStr> {
        if self.len >= N {
            return None;
        }
        self.data[self.len] = 0;
        core::ffi::CStr::from_bytes_with_nul(&self.data[..=self.len]).ok()
    }
}

impl<const N: usize> core::fmt::Write for Buf<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let b = s.as_bytes();
        let end = self.len.checked_add(b.len()).ok_or(core::fmt::Error)?;
        if end > N {
            return Err(core::fmt::Error);
        }
        self.data[self.len..end].copy_from_slice(b);
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Buf;
    use core::fmt::Write;

    #[test]
    fn buf_formats_and_refuses_overflow() {
        let mut b = Buf::<8>::default();
        write!(b, "ab{}", 12).unwrap();
        assert_eq!(b.as_bytes(), b"ab12");
        assert_eq!(b.as_cstr().unwrap().to_bytes(), b"ab12");
        assert!(write!(b, "12345").is_err());
        let mut full = Buf::<4>::default();
        write!(full, "abcd").unwrap();
        assert!(full.as_cstr().is_none(), "no room for the NUL");
    }
}
