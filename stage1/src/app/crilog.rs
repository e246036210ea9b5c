//! The CRI log of an app (`CriApp::log_path`): stage1 holds the read ends of the app's stdout
//! and stderr pipes in its poll loop and writes what arrives to the log file in the kubelet's
//! format, one record per line:
//!
//! ```text
//! 2026-12-06T23:59:59.123456789Z stdout F a whole line
//! 2026-12-06T23:59:59.123456790Z stderr P the first 16 KiB of a longer line…
//! ```
//!
//! (`F`: the line ends here; `P`: a part, the line goes on in the next record). There is no
//! per-container shim: the pod's own process relays, and `ReopenContainerLog` (after the kubelet
//! rotated the file) is a control request that reopens the path.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::Error;

/// Longest record body: longer lines are split into `P` records.
pub const MAX_RECORD: usize = 16 * 1024;

/// One stream of the app.
struct Stream {
    name: &'static str,
    fd: OwnedFd,
    partial: Vec<u8>,
}

/// An app's log relay.
pub struct CriLog {
    path: PathBuf,
    file: File,
    streams: Vec<Stream>,
}

fn open_log(path: &Path) -> Result<File, Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

impl CriLog {
    /// Open (append to) the log at `path` and make the pipes; returns the relay and the write
    /// ends for the app's stdout and stderr.
    pub fn open(path: &Path) -> Result<(CriLog, [OwnedFd; 2]), Error> {
        let file = open_log(path)?;
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| Error::Sys("creating a log pipe".into(), e))
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        for r in [&out_r, &err_r] {
            let fl = nix::fcntl::fcntl(r.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
                .map_err(|e| Error::Sys("F_GETFL".into(), e))?;
            let fl = nix::fcntl::OFlag::from_bits_truncate(fl) | nix::fcntl::OFlag::O_NONBLOCK;
            nix::fcntl::fcntl(r.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(fl))
                .map_err(|e| Error::Sys("F_SETFL".into(), e))?;
        }
        Ok((
            CriLog {
                path: path.to_path_buf(),
                file,
                streams: vec![
                    Stream {
                        name: "stdout",
                        fd: out_r,
                        partial: Vec::new(),
                    },
                    Stream {
                        name: "stderr",
                        fd: err_r,
                        partial: Vec::new(),
                    },
                ],
            },
            [out_w, err_w],
        ))
    }

    /// The pipes still open, to poll for input.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.streams.iter().map(|s| s.fd.as_fd()).collect()
    }

    /// Read what the pipes hold (each at most a few reads, so one chatty app cannot hold the
    /// loop up) and write it out; a pipe at EOF is closed, its last partial line written.
    pub fn pump(&mut self, drain: bool) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.streams.len() {
            let mut eof = false;
            for _ in 0..if drain { usize::MAX } else { 4 } {
                match nix::unistd::read(self.streams[i].fd.as_raw_fd(), &mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        let s = &mut self.streams[i];
                        s.partial.extend_from_slice(&buf[..n]);
                        records(s.name, &mut s.partial, false, &mut out);
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => break, // EAGAIN: nothing more now
                }
            }
            if eof {
                let mut s = self.streams.remove(i);
                records(s.name, &mut s.partial, true, &mut out);
            } else {
                i += 1;
            }
        }
        if !out.is_empty() {
            if let Err(e) = self.file.write_all(&out) {
                tracing::warn!("writing {}: {e}", self.path.display());
            }
        }
    }

    /// Every pipe is closed (nothing of the app writes any more).
    pub fn closed(&self) -> bool {
        self.streams.is_empty()
    }

    /// Reopen the path (the kubelet rotated the file).
    pub fn reopen(&mut self) -> Result<(), Error> {
        self.file = open_log(&self.path)?;
        Ok(())
    }
}

/// Move what `buf` holds into `out` as records: each complete line as `F` (in `P` parts of at
/// most [`MAX_RECORD`]), and what is left of an unfinished line as a `P` record at once — an
/// attach follows the log, and a prompt without a newline must reach it (the kubelet's parser
/// joins `P` records with the next). With `all` (the end of the stream) the rest is an `F`.
fn records(stream: &str, buf: &mut Vec<u8>, all: bool, out: &mut Vec<u8>) {
    let ts = rfc3339_nano(std::time::SystemTime::now());
    let mut start = 0;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + nl];
        for (k, chunk) in line.chunks(MAX_RECORD).enumerate() {
            let last = (k + 1) * MAX_RECORD >= line.len();
            record(&ts, stream, if last { 'F' } else { 'P' }, chunk, out);
        }
        if line.is_empty() {
            record(&ts, stream, 'F', b"", out);
        }
        start += nl + 1;
    }
    buf.drain(..start);
    while buf.len() >= MAX_RECORD {
        record(&ts, stream, 'P', &buf[..MAX_RECORD], out);
        buf.drain(..MAX_RECORD);
    }
    if !buf.is_empty() {
        record(&ts, stream, if all { 'F' } else { 'P' }, buf, out);
        buf.clear();
    }
}

fn record(ts: &str, stream: &str, tag: char, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.push(b' ');
    out.push(tag as u8);
    out.push(b' ');
    out.extend_from_slice(body);
    out.push(b'\n');
}

/// `t` as RFC 3339 with nanoseconds in UTC (`2026-12-06T23:59:59.123456789Z`).
pub fn rfc3339_nano(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_rfc3339_nano_utc() {
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_796_601_599, 5);
        assert_eq!(rfc3339_nano(t), "2026-12-06T23:59:59.000000005Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert!(rfc3339_nano(leap).starts_with("2000-02-29T00:00:00"));
    }

    fn bodies(out: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect()
    }

    #[test]
    fn lines_become_full_and_partial_records() {
        let mut out = Vec::new();
        let mut buf = b"one\n\ntwo\nthr".to_vec();
        records("stdout", &mut buf, false, &mut out);
        assert_eq!(
            bodies(&out),
            ["stdout F one", "stdout F ", "stdout F two", "stdout P thr"]
        );
        assert!(buf.is_empty());
        out.clear();
        let mut rest = b"ee".to_vec();
        records("stdout", &mut rest, true, &mut out);
        assert_eq!(bodies(&out), ["stdout F ee"]);
        out.clear();
        let mut long = vec![b'x'; MAX_RECORD * 2 + 3];
        long.push(b'\n');
        records("stderr", &mut long, false, &mut out);
        let b = bodies(&out);
        assert_eq!(b.len(), 3);
        assert!(b[0].starts_with("stderr P ") && b[1].starts_with("stderr P "));
        assert_eq!(b[2], "stderr F xxx");
    }

    #[test]
    fn relay_writes_the_pipes_and_reopens() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c/0.log");
        let (mut log, [w_out, w_err]) = CriLog::open(&p).unwrap();
        nix::unistd::write(&w_out, b"hello\nwor").unwrap();
        nix::unistd::write(&w_err, b"oops\n").unwrap();
        log.pump(false);
        std::fs::rename(&p, d.path().join("rotated")).unwrap();
        log.reopen().unwrap();
        nix::unistd::write(&w_out, b"ld\n").unwrap();
        drop((w_out, w_err));
        log.pump(true);
        assert!(log.closed());
        let first = std::fs::read_to_string(d.path().join("rotated")).unwrap();
        assert_eq!(
            bodies(first.as_bytes()),
            ["stdout F hello", "stdout P wor", "stderr F oops"]
        );
        let now = std::fs::read_to_string(&p).unwrap();
        assert_eq!(bodies(now.as_bytes()), ["stdout F ld"]);
    }
}
