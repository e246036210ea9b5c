//! Exec and attach: collecting the client's streams (SPDY) or channels (WebSocket), running
//! the backend, and reporting the result on the error stream the way each protocol version
//! expects.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::backend::{AttachRequest, Backend, BoxWrite, ExecRequest, Io, Size};
use crate::spdy::frame::rst;
use crate::spdy::{Session, SpdyStream, StreamReader};
use crate::ws::{self, Message, WsReader, WsWriter};

pub(crate) enum Op {
    Exec(ExecRequest),
    Attach(AttachRequest),
}

#[derive(Clone, Copy)]
struct Wants {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl Op {
    fn wants(&self) -> Wants {
        match self {
            Op::Exec(r) => Wants {
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr && !r.tty,
                tty: r.tty,
            },
            Op::Attach(r) => Wants {
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr && !r.tty,
                tty: r.tty,
            },
        }
    }
}

/// How a run ended, as the kubelet reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    ExitCode { code: i32, message: String },
    Internal(String),
}

impl Outcome {
    /// The metav1.Status JSON (protocol v4 and later).
    pub fn status_json(&self) -> String {
        let s = serde_json::json!({});
        let v = match self {
            Outcome::Success => serde_json::json!({"metadata": s, "status": "Success"}),
            Outcome::ExitCode { code, message } => serde_json::json!({
                "metadata": s, "status": "Failure",
                "message": format!("command terminated with non-zero exit code: {message}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            }),
            Outcome::Internal(msg) => serde_json::json!({
                "metadata": s, "status": "Failure",
                "message": format!("Internal error occurred: {msg}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": msg}]},
                "code": 500,
            }),
        };
        v.to_string()
    }

    /// The plain error text (protocols v1–v3); empty on success.
    pub fn plain(&self) -> String {
        match self {
            Outcome::Success => String::new(),
            Outcome::ExitCode { message, .. } => {
                format!("command terminated with non-zero exit code: {message}")
            }
            Outcome::Internal(msg) => format!("Internal error occurred: {msg}"),
        }
    }
}

async fn run(op: Op, io: Io, backend: Arc<dyn Backend>) -> Outcome {
    match op {
        Op::Exec(r) => {
            let cmd = format!("[{}]", r.cmd.join(" "));
            match backend.exec(r, io).await {
                Ok(0) => Outcome::Success,
                Ok(code) => Outcome::ExitCode {
                    code,
                    message: format!("error executing command {cmd}, exit code {code}"),
                },
                Err(e) => Outcome::Internal(format!("error executing command in container: {e}")),
            }
        }
        Op::Attach(r) => match backend.attach(r, io).await {
            Ok(()) => Outcome::Success,
            Err(e) => Outcome::Internal(format!("error attaching to container: {e}")),
        },
    }
}

/// Parses concatenated JSON `{"Width":W,"Height":H}` objects as they arrive.
#[derive(Default)]
pub(crate) struct ResizeParser {
    buf: Vec<u8>,
}

impl ResizeParser {
    /// Feeds bytes; returns the complete sizes, or `Err` when the input is not such JSON.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<Vec<Size>, ()> {
        self.buf.extend_from_slice(data);
        if self.buf.len() > 64 * 1024 {
            return Err(());
        }
        let mut sizes = Vec::new();
        let mut used = 0;
        let mut it =
            serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
        loop {
            match it.next() {
                None => break,
                Some(Ok(v)) => {
                    used = it.byte_offset();
                    let dim = |k: &str| {
                        v.get(k)
                            .and_then(|x| x.as_u64())
                            .map(|x| x.min(u64::from(u16::MAX)) as u16)
                    };
                    match (dim("Width"), dim("Height")) {
                        (Some(width), Some(height)) => sizes.push(Size { width, height }),
                        _ => return Err(()),
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(_)) => return Err(()),
            }
        }
        self.buf.drain(..used);
        Ok(sizes)
    }
}

fn resize_from_stream(mut r: StreamReader) -> mpsc::Receiver<Size> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut p = ResizeParser::default();
        let mut buf = [0u8; 1024];
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let Ok(sizes) = p.feed(&buf[..n]) else {
                tracing::debug!("streaming: bad resize message, ignoring the resize stream");
                break;
            };
            for s in sizes {
                if tx.send(s).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// The client's streams, as they arrive.
#[derive(Default)]
struct Streams {
    error: Option<SpdyStream>,
    stdin: Option<SpdyStream>,
    stdout: Option<SpdyStream>,
    stderr: Option<SpdyStream>,
    resize: Option<SpdyStream>,
}

/// Serves one exec/attach over a SPDY session negotiated as `protocol`.
pub(crate) async fn spdy(
    mut session: Session,
    protocol: &str,
    op: Op,
    backend: Arc<dyn Backend>,
    timeout: Duration,
) {
    let version = match protocol {
        "v5.channel.k8s.io" | "v4.channel.k8s.io" => 4,
        "v3.channel.k8s.io" => 3,
        "v2.channel.k8s.io" => 2,
        _ => 1,
    };
    let w = op.wants();
    let want_resize = w.tty && version >= 3;
    let mut got = Streams::default();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        let complete = got.error.is_some()
            && got.stdin.is_some() == w.stdin
            && got.stdout.is_some() == w.stdout
            && got.stderr.is_some() == w.stderr
            && got.resize.is_some() == want_resize;
        if complete {
            break;
        }
        let s = tokio::select! {
            s = session.accept() => s,
            _ = &mut deadline => {
                tracing::debug!("streaming: timed out waiting for client to create streams");
                session.close();
                return;
            }
        };
        let Some(s) = s else {
            return;
        };
        let slot = match s.headers().get("streamtype") {
            Some("error") => &mut got.error,
            Some("stdin") if w.stdin => &mut got.stdin,
            Some("stdout") if w.stdout => &mut got.stdout,
            Some("stderr") if w.stderr => &mut got.stderr,
            Some("resize") if want_resize => &mut got.resize,
            other => {
                tracing::debug!("streaming: unexpected stream type {other:?}");
                s.reset(rst::REFUSED_STREAM);
                continue;
            }
        };
        if slot.is_some() {
            s.reset(rst::STREAM_IN_USE);
        } else {
            *slot = Some(s);
        }
    }
    // later streams have no use: refuse them rather than buffer their data
    session.stop_accepting();
    let Streams {
        error,
        stdin,
        stdout,
        stderr,
        resize,
    } = got;
    let Some(error) = error else { return };
    // the error stream is written only; the others only one way each
    let (_, mut error_w) = error.into_split();
    let write_half = |s: Option<SpdyStream>| s.map(|s| Box::new(s.into_split().1) as BoxWrite);
    // Our side of stdin (and resize) stays open until the end: client-go (v2+) reads stdin
    // and, when we close it, closes its own side, cutting off input it has not sent yet. Only
    // v1 closes it at once, as the kubelet does there.
    let mut keep_open = Vec::new();
    let stdin = stdin.map(|s| {
        let (r, w) = s.into_split();
        if version >= 2 {
            keep_open.push(w);
        }
        Box::new(r) as crate::BoxRead
    });
    let resize = resize.map(|s| {
        let (r, w) = s.into_split();
        keep_open.push(w);
        resize_from_stream(r)
    });
    let io = Io {
        stdin,
        stdout: write_half(stdout),
        stderr: write_half(stderr),
        resize,
    };
    let outcome = run(op, io, backend).await;
    let status = if version >= 4 {
        outcome.status_json()
    } else {
        outcome.plain()
    };
    if !status.is_empty() {
        let _ = error_w.write_all(status.as_bytes()).await;
    }
    let _ = error_w.shutdown().await;
    drop(error_w);
    drop(keep_open);
    session.close();
}

const CH_STDIN: u8 = 0;
const CH_STDOUT: u8 = 1;
const CH_STDERR: u8 = 2;
const CH_ERROR: u8 = 3;
const CH_RESIZE: u8 = 4;
const CH_CLOSE: u8 = 255;

type SharedWriter<W> = Arc<tokio::sync::Mutex<WsWriter<W>>>;

/// Copies what the backend writes into `rx` to the client as channel `ch` messages.
fn pump<W>(
    ch: u8,
    mut rx: tokio::io::DuplexStream,
    w: SharedWriter<W>,
) -> tokio::task::JoinHandle<()>
where
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if w.lock().await.send_binary(&[ch], &buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// Serves one exec/attach over a WebSocket negotiated as `protocol` (v4 or v5 channels).
pub(crate) async fn websocket<T>(io: T, protocol: &str, op: Op, backend: Arc<dyn Backend>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let v5 = protocol == "v5.channel.k8s.io";
    let w = op.wants();
    let (rd, wr) = tokio::io::split(io);
    let mut reader = WsReader::new(rd, ws::Role::Server);
    let writer: SharedWriter<_> =
        Arc::new(tokio::sync::Mutex::new(WsWriter::new(wr, ws::Role::Server)));

    // the kubelet's "connection is established" signal: an empty message on the lowest
    // writable channel
    let first = if w.stdout {
        CH_STDOUT
    } else if w.stderr {
        CH_STDERR
    } else {
        CH_ERROR
    };
    if writer
        .lock()
        .await
        .send_binary(&[first], &[])
        .await
        .is_err()
    {
        return;
    }

    let pipe = || tokio::io::duplex(64 * 1024);
    let (stdin_ours, stdin_theirs) = if w.stdin {
        let (a, b) = pipe();
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let mut pumps = Vec::new();
    let mut out = |want: bool, ch: u8| -> Option<BoxWrite> {
        want.then(|| {
            let (a, b) = pipe();
            pumps.push(pump(ch, a, writer.clone()));
            Box::new(b) as BoxWrite
        })
    };
    let stdout = out(w.stdout, CH_STDOUT);
    let stderr = out(w.stderr, CH_STDERR);
    let (resize_tx, resize_rx) = if w.tty {
        let (t, r) = mpsc::channel(16);
        (Some(t), Some(r))
    } else {
        (None, None)
    };

    let w2 = writer.clone();
    let reader_task = tokio::spawn(async move {
        let mut stdin = stdin_ours;
        let mut resize = ResizeParser::default();
        loop {
            let msg = match reader.read_message().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("streaming: websocket: {e}");
                    break;
                }
            };
            match msg {
                Message::Binary(d) if !d.is_empty() => match d[0] {
                    CH_STDIN => {
                        if let Some(s) = stdin.as_mut() {
                            if s.write_all(&d[1..]).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    CH_RESIZE => {
                        if let (Some(tx), Ok(sizes)) = (resize_tx.as_ref(), resize.feed(&d[1..])) {
                            for s in sizes {
                                let _ = tx.send(s).await;
                            }
                        }
                    }
                    CH_CLOSE if v5 && d.get(1) == Some(&CH_STDIN) => {
                        if let Some(mut s) = stdin.take() {
                            let _ = s.shutdown().await;
                        }
                    }
                    _ => {}
                },
                Message::Ping(p) => {
                    let _ = w2.lock().await.send(&Message::Pong(p)).await;
                }
                Message::Close(_) => {
                    let _ = w2
                        .lock()
                        .await
                        .send(&Message::Close(Some(ws::CLOSE_NORMAL)))
                        .await;
                    break;
                }
                _ => {}
            }
        }
    });

    let io = Io {
        stdin: stdin_theirs.map(|s| Box::new(s) as crate::BoxRead),
        stdout,
        stderr,
        resize: resize_rx,
    };
    let outcome = run(op, io, backend).await;
    for p in pumps {
        let _ = p.await;
    }
    {
        let mut wr = writer.lock().await;
        let _ = wr
            .send_binary(&[CH_ERROR], outcome.status_json().as_bytes())
            .await;
        let _ = wr.send(&Message::Close(Some(ws::CLOSE_NORMAL))).await;
    }
    // give the client a moment to answer the close, then hang up
    let abort = reader_task.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), reader_task)
        .await
        .is_err()
    {
        abort.abort();
    }
    let _ = writer.lock().await.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_matches_the_kubelet() {
        assert_eq!(
            Outcome::Success.status_json(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let v: serde_json::Value = serde_json::from_str(
            &Outcome::ExitCode {
                code: 3,
                message: "m".into(),
            }
            .status_json(),
        )
        .unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        let v: serde_json::Value =
            serde_json::from_str(&Outcome::Internal("boom".into()).status_json()).unwrap();
        assert_eq!(v["reason"], "InternalError");
        assert_eq!(v["code"], 500);
        assert_eq!(v["message"], "Internal error occurred: boom");
        assert_eq!(Outcome::Success.plain(), "");
    }

    #[test]
    fn resize_messages_may_arrive_in_pieces() {
        let mut p = ResizeParser::default();
        assert_eq!(p.feed(br#"{"Width":80,"Hei"#).unwrap(), vec![]);
        assert_eq!(
            p.feed(b"ght\":24}\n{\"Width\":100,\"Height\":40}").unwrap(),
            vec![
                Size {
                    width: 80,
                    height: 24
                },
                Size {
                    width: 100,
                    height: 40
                }
            ]
        );
        assert!(p.feed(b"nonsense").is_err());
    }
}
