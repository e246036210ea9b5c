//! The streaming backend (`rkt_cri_streaming::Backend`): what Exec, Attach and PortForward do
//! once a client connected to the URL the RPC returned.
//!
//! * **exec** runs `rkt-cri exec UUID APP -- CMD…` (which becomes `rkt-stage1 enter`, confined
//!   like the app) with pipes, or with a fresh pty for a tty: stage1's enter then gives the
//!   command a pty of its own and relays, resizes arrive as `TIOCSWINSZ` on our side plus a
//!   SIGWINCH to the relay.
//! * **attach** writes the client's stdin to the app's stdin fifo (`CriApp::stdin`) and streams
//!   what the app writes from now on out of its CRI log (the pod's own process writes it; there
//!   is no shim holding the app's stdio).
//! * **port-forward** connects to `127.0.0.1:PORT` from a thread that joined the pod's network
//!   namespace (the host's for a host-network pod).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rkt_cri_streaming::{AttachRequest, Backend, BoxDuplex, ExecRequest, Io};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::state::Records;

/// The backend of one server.
#[derive(Debug, Clone)]
pub struct RktBackend {
    /// rkt's data dir.
    pub data: PathBuf,
    /// `rkt-cri` itself, with the global flags for its `exec` subcommand.
    pub exe: PathBuf,
    /// Those flags.
    pub global_args: Vec<String>,
    /// rkt's directories (for the runtime's `app_close_stdin`).
    pub dirs: stage0::Dirs,
    /// The server's `--insecure-options`.
    pub insecure: stage0::Insecure,
}

fn pod_dir(data: &std::path::Path, uuid: &str) -> PathBuf {
    data.join("pods").join("run").join(uuid)
}

impl RktBackend {
    fn records(&self) -> Records {
        Records::new(&self.data)
    }

    async fn exec_(self: Arc<Self>, req: ExecRequest, io: Io) -> Result<i32, String> {
        let c = self
            .records()
            .container(&req.container_id)
            .ok_or_else(|| format!("container {} not found", req.container_id))?;
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.args(&self.global_args)
            .arg("exec")
            .arg(&c.sandbox_id)
            .arg(&c.app)
            .arg("--")
            .args(&req.cmd)
            .kill_on_drop(true);
        if req.tty {
            return exec_tty(cmd, io).await;
        }
        cmd.stdin(if io.stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        drop(cmd);
        let Io {
            stdin,
            stdout,
            stderr,
            ..
        } = io;
        // stdin may never end (the client keeps it open): the command's end decides
        let to = child.stdin.take();
        let feeder = tokio::spawn(async move {
            if let (Some(mut from), Some(mut to)) = (stdin, to) {
                let _ = tokio::io::copy(&mut from, &mut to).await;
                let _ = to.shutdown().await;
            }
        });
        let (so, se) = (child.stdout.take(), child.stderr.take());
        let out = async {
            if let Some(mut s) = so {
                match stdout {
                    Some(mut w) => {
                        let _ = tokio::io::copy(&mut s, &mut w).await;
                        let _ = w.shutdown().await;
                    }
                    None => {
                        let _ = tokio::io::copy(&mut s, &mut tokio::io::sink()).await;
                    }
                }
            }
        };
        let err = async {
            if let Some(mut s) = se {
                match stderr {
                    Some(mut w) => {
                        let _ = tokio::io::copy(&mut s, &mut w).await;
                        let _ = w.shutdown().await;
                    }
                    None => {
                        let _ = tokio::io::copy(&mut s, &mut tokio::io::sink()).await;
                    }
                }
            }
        };
        tokio::join!(out, err);
        let st = child.wait().await.map_err(|e| e.to_string());
        feeder.abort();
        let st = st?;
        Ok(st.code().unwrap_or(255))
    }

    async fn attach_(self: Arc<Self>, req: AttachRequest, io: Io) -> Result<(), String> {
        let c = self
            .records()
            .container(&req.container_id)
            .ok_or_else(|| format!("container {} not found", req.container_id))?;
        let dir = pod_dir(&self.data, &c.sandbox_id);
        let Io {
            stdin,
            stdout,
            stderr,
            ..
        } = io;
        let fifo = dir.join(stage1_abi::paths::app_stdin(&c.app));
        let status = dir.join(stage1_abi::paths::app_status(&c.app));
        let (dirs, insecure) = (self.dirs.clone(), self.insecure);
        let (uuid, app, once) = (c.sandbox_id.clone(), c.app.clone(), c.stdin_once);
        let feed = async move {
            let Some(mut from) = stdin else {
                return;
            };
            let Ok(mut to) = tokio::fs::OpenOptions::new().write(true).open(&fifo).await else {
                return; // no stdin was asked for at create: nothing to write to
            };
            let _ = tokio::io::copy(&mut from, &mut to).await;
            let _ = to.flush().await;
            drop(to);
            if once {
                // StdinOnce: the app reads end-of-file now that this attach's stdin ended
                let _ = tokio::task::spawn_blocking(move || {
                    stage0::Runtime::open(dirs)
                        .map(|rt| rt.with_insecure(insecure))
                        .and_then(|rt| rt.app_close_stdin(&uuid, &app))
                })
                .await;
            }
        };
        let log = c.log_path.clone();
        let follow = async move {
            let Ok(mut f) = tokio::fs::File::open(&log).await else {
                return;
            };
            let _ = f.seek(std::io::SeekFrom::End(0)).await;
            let mut r = tokio::io::BufReader::new(f);
            let (mut out, mut err) = (stdout, stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line).await {
                    Ok(0) => {
                        // the app's end ends the attach, once its last words are out
                        if app_exited(&status) {
                            let mut rest = Vec::new();
                            let _ = r.read_to_end(&mut rest).await;
                            for l in rest.split_inclusive(|b| *b == b'\n') {
                                write_record(l, &mut out, &mut err).await;
                            }
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(_) if line.ends_with(b"\n") => {
                        write_record(&line, &mut out, &mut err).await;
                    }
                    Ok(_) => {
                        // half a record: wait for the rest
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let mut more = Vec::new();
                        let _ = r.read_until(b'\n', &mut more).await;
                        line.extend_from_slice(&more);
                        write_record(&line, &mut out, &mut err).await;
                    }
                    Err(_) => break,
                }
            }
            if let Some(mut w) = out {
                let _ = w.shutdown().await;
            }
            if let Some(mut w) = err {
                let _ = w.shutdown().await;
            }
        };
        // the attach lasts as long as the app's output does
        tokio::select! {
            _ = follow => {}
            _ = async { feed.await; std::future::pending::<()>().await } => {}
        }
        Ok(())
    }

    async fn port_forward_(self: Arc<Self>, pod: String, port: u16) -> Result<BoxDuplex, String> {
        let rec = self
            .records()
            .sandbox(&pod)
            .ok_or_else(|| format!("pod sandbox {pod} not found"))?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = if rec.host_network {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                .map_err(|e| format!("connecting to port {port}: {e}"))?
        } else {
            let pid = std::fs::read_to_string(
                pod_dir(&self.data, &pod).join(stage1_abi::paths::SANDBOX_PID),
            )
            .map_err(|e| format!("pod sandbox {pod} is not running: {e}"))?;
            let ns = std::fs::File::open(format!("/proc/{}/ns/net", pid.trim()))
                .map_err(|e| format!("pod sandbox {pod}'s network namespace: {e}"))?;
            tokio::task::spawn_blocking(move || {
                // a thread of its own joins the namespace and ends after the connect: no other
                // work of the server ever runs in the pod's network
                std::thread::spawn(move || {
                    use std::os::fd::AsFd;
                    rustix::thread::move_into_link_name_space(
                        ns.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .map_err(|e| format!("joining the pod's network namespace: {e}"))?;
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                        .map_err(|e| format!("connecting to port {port} in the pod: {e}"))
                })
                .join()
                .map_err(|_| "port-forward thread failed".to_string())?
            })
            .await
            .map_err(|e| e.to_string())??
        };
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let s = tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())?;
        Ok(Box::new(s))
    }
}

/// Whether the app's status record says it ended.
fn app_exited(status: &std::path::Path) -> bool {
    std::fs::read(status)
        .ok()
        .and_then(|d| serde_json::from_slice::<stage1_abi::AppStatus>(&d).ok())
        .is_some_and(|s| s.finished())
}

/// One CRI log record (`TS STREAM TAG TEXT\n`) to the client's stream.
async fn write_record(
    rec: &[u8],
    out: &mut Option<rkt_cri_streaming::BoxWrite>,
    err: &mut Option<rkt_cri_streaming::BoxWrite>,
) {
    let mut parts = rec.splitn(4, |b| *b == b' ');
    let (Some(_ts), Some(stream), Some(tag), Some(text)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let mut body = text.strip_suffix(b"\n").unwrap_or(text).to_vec();
    if tag == b"F" {
        body.push(b'\n');
    }
    let w = if stream == b"stderr" {
        err.as_mut().or(out.as_mut())
    } else {
        out.as_mut()
    };
    if let Some(w) = w {
        let _ = w.write_all(&body).await;
        let _ = w.flush().await;
    }
}

/// An exec with a terminal: the command's stdio is a fresh pty's slave; the client's stdin goes
/// to the master, the master's output to the client's stdout.
async fn exec_tty(mut cmd: tokio::process::Command, io: Io) -> Result<i32, String> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(|e| format!("opening a pty: {e}"))?;
    grantpt(&master).map_err(|e| format!("grantpt: {e}"))?;
    unlockpt(&master).map_err(|e| format!("unlockpt: {e}"))?;
    let name = ptsname(&master, Vec::new()).map_err(|e| format!("ptsname: {e}"))?;
    // O_NOCTTY: the server has no controlling terminal, and must not get this one (its
    // hangup would kill the server)
    use std::os::unix::fs::OpenOptionsExt;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name.as_bytes()))
        .map_err(|e| format!("opening the pty: {e}"))?;
    let mut child = cmd
        .stdin(slave.try_clone().map_err(|e| e.to_string())?)
        .stdout(slave.try_clone().map_err(|e| e.to_string())?)
        .stderr(slave)
        .spawn()
        .map_err(|e| e.to_string())?;
    // the command's stdio holds the only slave fds: their end is the master's EOF
    drop(cmd);
    let pid = child.id();
    let master = std::fs::File::from(master);
    let (mut rd, mut wr) = (
        tokio::fs::File::from_std(master.try_clone().map_err(|e| e.to_string())?),
        tokio::fs::File::from_std(master.try_clone().map_err(|e| e.to_string())?),
    );
    let Io {
        stdin,
        stdout,
        resize,
        ..
    } = io;
    let resizer = async move {
        let Some(mut rx) = resize else {
            return std::future::pending::<()>().await;
        };
        while let Some(sz) = rx.recv().await {
            let _ = rustix::termios::tcsetwinsize(
                &master,
                rustix::termios::Winsize {
                    ws_row: sz.height,
                    ws_col: sz.width,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                },
            );
            if let Some(p) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::WINCH);
            }
        }
        std::future::pending::<()>().await
    };
    let feed = async move {
        if let Some(mut from) = stdin {
            let _ = tokio::io::copy(&mut from, &mut wr).await;
        }
        std::future::pending::<()>().await
    };
    let out = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut w = stdout;
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break, // EIO once every slave is closed
                Ok(n) => {
                    if let Some(w) = w.as_mut() {
                        if w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let _ = w.flush().await;
                    }
                }
            }
        }
        if let Some(mut w) = w {
            let _ = w.shutdown().await;
        }
    });
    let st = tokio::select! {
        st = child.wait() => st,
        _ = async { tokio::join!(resizer, feed) } => unreachable_wait(),
    };
    // what the command wrote last is still in the pty
    let _ = tokio::time::timeout(Duration::from_millis(500), out).await;
    let st = st.map_err(|e| e.to_string())?;
    Ok(st.code().unwrap_or(255))
}

fn unreachable_wait() -> std::io::Result<std::process::ExitStatus> {
    Err(std::io::Error::other("exec ended without an exit status"))
}

impl Backend for RktBackend {
    fn exec(&self, req: ExecRequest, io: Io) -> BoxFuture<'static, Result<i32, String>> {
        Box::pin(Arc::new(self.clone()).exec_(req, io))
    }

    fn attach(&self, req: AttachRequest, io: Io) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(Arc::new(self.clone()).attach_(req, io))
    }

    fn port_forward(
        &self,
        pod_id: String,
        port: u16,
    ) -> BoxFuture<'static, Result<BoxDuplex, String>> {
        Box::pin(Arc::new(self.clone()).port_forward_(pod_id, port))
    }
}
