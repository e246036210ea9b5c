//! Requests to a running mutable pod (`rkt app start|stop|rm`): the control socket.
//!
//! stage1 listens on the unix stream socket [`crate::paths::CONTROL`] in the pod dir (mode
//! 0600, root's) while a mutable pod runs. A client connects, writes one [`Request`] as one
//! line of JSON, and reads one [`Reply`] line; then either side closes. stage1 serves one
//! request at a time from its supervision loop, so requests never race each other inside stage1;
//! stage0 serialises changes to the pod dir (`apps/`, the manifest) with the
//! [`crate::paths::APPS_LOCK`] flock before it asks. There is no daemon: the socket is the
//! pod's own process, and it goes away with the pod.
//!
//! What each request does:
//! * `start`: stage1 reads the manifest again, finds the app (stage0 added it and mounted its
//!   rootfs), and starts it as at `rkt run` — an app that ran before is started afresh (its
//!   writable layer kept). The reply comes once the app runs, or with the one-line error.
//! * `stop`: SIGTERM to the app, SIGKILL after `timeoutSecs`; the reply comes at once (the
//!   caller watches `status/<app>` for the end). Stopping an app that does not run is no error.
//! * `remove`: forget an app that does not run: its cgroups, its container state and bundle.
//!   stage0 then unmounts its rootfs and removes it from the manifest.
//! * `reopenLog`: reopen the app's CRI log file by its path (the kubelet rotated it).
//! * `closeStdin`: stage1 closes its own writer of the app's stdin fifo (see
//!   `CriApp::stdin`), so the app gets end-of-file once the attach writing to it is gone.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::AbiError;

/// The longest request or reply line either side reads.
pub const MAX_LINE: usize = 64 * 1024;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Start the app (created, or exited earlier).
    Start {
        /// App name.
        app: String,
    },
    /// Stop the app: SIGTERM, SIGKILL after the timeout.
    Stop {
        /// App name.
        app: String,
        /// Seconds between SIGTERM and SIGKILL (0: SIGKILL at once).
        #[serde(rename = "timeoutSecs")]
        timeout_secs: u64,
    },
    /// Forget an app that does not run.
    Remove {
        /// App name.
        app: String,
    },
    /// Reopen the app's CRI log file (it was rotated).
    ReopenLog {
        /// App name.
        app: String,
    },
    /// Let go of the app's stdin fifo: once its writers are gone too, the app reads
    /// end-of-file.
    CloseStdin {
        /// App name.
        app: String,
    },
}

/// The answer: `{"ok":true}` or `{"ok":false,"error":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request was carried out.
    pub ok: bool,
    /// Why not, one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    /// Success.
    pub fn ok() -> Self {
        Reply {
            ok: true,
            error: None,
        }
    }
    /// Failure with a one-line reason.
    pub fn error(msg: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(msg.into().replace('\n', " ")),
        }
    }
}

/// Read one line of at most [`MAX_LINE`] bytes and parse it.
pub fn read_line<T: serde::de::DeserializeOwned>(r: impl std::io::Read) -> Result<T, String> {
    let mut br = BufReader::new(std::io::Read::take(r, MAX_LINE as u64 + 1));
    let mut line = String::new();
    br.read_line(&mut line).map_err(|e| e.to_string())?;
    if line.len() > MAX_LINE {
        return Err("line too long".into());
    }
    if line.is_empty() {
        return Err("connection closed".into());
    }
    serde_json::from_str(line.trim_end()).map_err(|e| e.to_string())
}

/// Write one value as one line.
pub fn write_line<T: Serialize>(w: &mut impl Write, v: &T) -> std::io::Result<()> {
    let mut b = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    b.push(b'\n');
    w.write_all(&b)
}

/// Send `req` to the pod at `pod_dir` and wait for the reply (at most `timeout`). The socket is
/// reached through `/proc/self/fd/N/` of an `O_PATH` fd of the pod dir, so a long pod dir path
/// does not hit the 108-byte limit of socket addresses.
pub fn call(pod_dir: &Path, req: &Request, timeout: Duration) -> Result<Reply, AbiError> {
    let io = |source| AbiError::Io {
        path: pod_dir.join(crate::paths::CONTROL),
        source,
    };
    let dir = std::fs::File::open(pod_dir).map_err(io)?;
    use std::os::fd::AsRawFd;
    let addr = format!(
        "/proc/self/fd/{}/{}",
        dir.as_raw_fd(),
        crate::paths::CONTROL
    );
    let mut s = UnixStream::connect(&addr).map_err(io)?;
    drop(dir);
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    write_line(&mut s, req).map_err(io)?;
    read_line(&s).map_err(|e| AbiError::Invalid(format!("control socket reply: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_line_each() {
        let mut b = Vec::new();
        let r = Request::Stop {
            app: "web".into(),
            timeout_secs: 3,
        };
        write_line(&mut b, &r).unwrap();
        assert_eq!(
            String::from_utf8(b.clone()).unwrap(),
            "{\"op\":\"stop\",\"app\":\"web\",\"timeoutSecs\":3}\n"
        );
        assert_eq!(read_line::<Request>(&mut &b[..]).unwrap(), r);
        let mut b = Vec::new();
        write_line(&mut b, &Reply::error("a\nb")).unwrap();
        assert_eq!(
            read_line::<Reply>(&mut &b[..]).unwrap().error.as_deref(),
            Some("a b")
        );
    }

    #[test]
    fn hostile_lines_are_refused() {
        assert!(read_line::<Request>(&mut &b""[..]).is_err());
        assert!(read_line::<Request>(&mut &b"{\"op\":\"nuke\"}\n"[..]).is_err());
        let long = vec![b'x'; MAX_LINE + 10];
        assert_eq!(
            read_line::<Request>(&mut &long[..]).unwrap_err(),
            "line too long"
        );
    }
}
