//! End-to-end tests: a fake backend, the server on a loopback listener, and a client built on
//! this crate's own codec doing what client-go does.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::spdy::frame::Headers;
use crate::spdy::{Session, SpdyStream};
use crate::ws::{self, Message, WsReader, WsWriter};
use crate::{AttachRequest, Backend, BoxDuplex, Config, ExecRequest, Io, Streaming};

/// exec: `cat [exit N]` copies stdin to stdout, writes "err" to stderr, exits N;
/// `resize K` writes each of K terminal sizes to stdout; `fail` cannot run.
/// attach: copies stdin to stdout. port-forward: connects to 127.0.0.1:port.
pub(crate) struct Echo;

impl Backend for Echo {
    fn exec(&self, req: ExecRequest, mut io: Io) -> BoxFuture<'static, Result<i32, String>> {
        async move {
            match req.cmd[0].as_str() {
                "fail" => Err("no such container".into()),
                "resize" => {
                    let n: usize = req.cmd[1].parse().unwrap();
                    let mut rx = io.resize.take().ok_or("no resize channel")?;
                    let mut out = io.stdout.take().ok_or("no stdout")?;
                    for _ in 0..n {
                        let s = rx.recv().await.ok_or("resize ended")?;
                        out.write_all(format!("{}x{}\n", s.width, s.height).as_bytes())
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(0)
                }
                _ => {
                    if let Some(mut e) = io.stderr.take() {
                        e.write_all(b"err").await.map_err(|e| e.to_string())?;
                    }
                    if let (Some(mut i), Some(mut o)) = (io.stdin.take(), io.stdout.take()) {
                        tokio::io::copy(&mut i, &mut o)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(if req.cmd.get(1).map(String::as_str) == Some("exit") {
                        req.cmd[2].parse().unwrap()
                    } else {
                        0
                    })
                }
            }
        }
        .boxed()
    }

    fn attach(&self, _req: AttachRequest, mut io: Io) -> BoxFuture<'static, Result<(), String>> {
        async move {
            if let (Some(mut i), Some(mut o)) = (io.stdin.take(), io.stdout.take()) {
                tokio::io::copy(&mut i, &mut o)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        .boxed()
    }

    fn port_forward(
        &self,
        _pod_id: String,
        port: u16,
    ) -> BoxFuture<'static, Result<BoxDuplex, String>> {
        async move {
            let c = TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| e.to_string())?;
            Ok(Box::new(c) as BoxDuplex)
        }
        .boxed()
    }
}

async fn start(config: Config) -> Streaming {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s = Streaming::new(Arc::new(Echo), l.local_addr().unwrap(), config);
    tokio::spawn(s.clone().serve(l));
    s
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    conn: TcpStream,
}

impl Resp {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Sends an HTTP/1.1 request to `url` and reads the response head (and a non-101 body).
async fn request(url: &str, method: &str, headers: &[(&str, &str)]) -> Resp {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut conn = TcpStream::connect(host).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(conn.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut body = String::new();
    if status != 101 {
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut b = vec![0u8; len];
        conn.read_exact(&mut b).await.unwrap();
        body = String::from_utf8(b).unwrap();
    }
    Resp {
        status,
        headers,
        body,
        conn,
    }
}

async fn spdy_upgrade(url: &str, protocols: &[&str]) -> Resp {
    let mut h = vec![("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")];
    for p in protocols {
        h.push(("X-Stream-Protocol-Version", p));
    }
    request(url, "POST", &h).await
}

async fn ws_upgrade(url: &str, protocols: &str) -> Resp {
    let r = request(
        url,
        "GET",
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Protocol", protocols),
        ],
    )
    .await;
    if r.status == 101 {
        assert_eq!(
            r.header("sec-websocket-accept"),
            ["s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]
        );
    }
    r
}

async fn open(s: &Session, kind: &str) -> SpdyStream {
    s.open(Headers::new().with("streamType", kind), false)
        .await
        .unwrap()
}

async fn read_all<R: AsyncRead + Unpin>(mut r: R) -> String {
    let mut v = Vec::new();
    r.read_to_end(&mut v).await.unwrap();
    String::from_utf8(v).unwrap()
}

fn exec(cmd: &[&str], tty: bool, stdin: bool, stdout: bool, stderr: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c1".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout,
        stderr,
    }
}

async fn timeout<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

#[tokio::test]
async fn spdy_v4_exec_streams_and_exit_code() {
    timeout(async {
        let s = start(Config::default()).await;
        let url = s
            .register_exec(exec(&["cat", "exit", "3"], false, true, true, true))
            .unwrap();
        let r = spdy_upgrade(&url, &["v4.channel.k8s.io", "v3.channel.k8s.io"]).await;
        assert_eq!(r.status, 101);
        assert_eq!(r.header("x-stream-protocol-version"), ["v4.channel.k8s.io"]);
        assert_eq!(r.header("upgrade"), ["SPDY/3.1"]);
        let sess = Session::client(r.conn);
        // client-go's order: error first, then stdin, stdout, stderr
        let error = open(&sess, "error").await;
        let stdin = open(&sess, "stdin").await;
        let stdout = open(&sess, "stdout").await;
        let stderr = open(&sess, "stderr").await;
        let (mut stdin_r, mut w) = stdin.into_split();
        // client-go reads stdin and closes its side when ours closes: ours must stay open
        // while the command runs (kubectl cut input at 128 KiB when it did not)
        let mut b = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(200), stdin_r.read(&mut b));
        assert!(
            early.await.is_err(),
            "the server closed stdin before the command ended"
        );
        let big: String = (0..200_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let input = big.clone();
        tokio::spawn(async move {
            w.write_all(input.as_bytes()).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let (out, err) = tokio::join!(
            read_all(stdout.into_split().0),
            read_all(stderr.into_split().0)
        );
        assert_eq!(out, big);
        assert_eq!(err, "err");
        let status: serde_json::Value =
            serde_json::from_str(&read_all(error.into_split().0).await).unwrap();
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
        // the server says goodbye and hangs up
        sess.handle().closed().await;
    })
    .await
}

#[tokio::test]
async fn spdy_v4_success_and_internal_error() {
    timeout(async {
        let s = start(Config::default()).await;
        // client-go offers v5 first; over SPDY it is v4
        let url = s
            .register_exec(exec(&["cat"], false, false, true, false))
            .unwrap();
        let r = spdy_upgrade(&url, &["v5.channel.k8s.io", "v4.channel.k8s.io"]).await;
        assert_eq!(r.header("x-stream-protocol-version"), ["v5.channel.k8s.io"]);
        let sess = Session::client(r.conn);
        let error = open(&sess, "error").await;
        let stdout = open(&sess, "stdout").await;
        assert_eq!(read_all(stdout.into_split().0).await, "");
        assert_eq!(
            read_all(error.into_split().0).await,
            r#"{"metadata":{},"status":"Success"}"#
        );

        let url = s
            .register_exec(exec(&["fail"], false, false, true, false))
            .unwrap();
        let sess = Session::client(spdy_upgrade(&url, &["v4.channel.k8s.io"]).await.conn);
        let error = open(&sess, "error").await;
        let _stdout = open(&sess, "stdout").await;
        let status: serde_json::Value =
            serde_json::from_str(&read_all(error.into_split().0).await).unwrap();
        assert_eq!(status["reason"], "InternalError");
        assert_eq!(
            status["message"],
            "Internal error occurred: error executing command in container: no such container"
        );
    })
    .await
}

#[tokio::test]
async fn spdy_v1_and_v2_plain_error_text() {
    timeout(async {
        let s = start(Config::default()).await;
        for proto in ["channel.k8s.io", "v2.channel.k8s.io"] {
            let url = s.register_exec(exec(&["cat", "exit", "2"], false, true, true, false)).unwrap();
            let r = spdy_upgrade(&url, &[proto]).await;
            assert_eq!(r.header("x-stream-protocol-version"), [proto]);
            let sess = Session::client(r.conn);
            let error = open(&sess, "error").await;
            let stdin = open(&sess, "stdin").await;
            let stdout = open(&sess, "stdout").await;
            let (_, mut w) = stdin.into_split();
            w.write_all(b"x").await.unwrap();
            w.shutdown().await.unwrap();
            assert_eq!(read_all(stdout.into_split().0).await, "x");
            assert_eq!(
                read_all(error.into_split().0).await,
                "command terminated with non-zero exit code: error executing command [cat exit 2], exit code 2"
            );
        }
    })
    .await
}

#[tokio::test]
async fn spdy_tty_resize() {
    timeout(async {
        let s = start(Config::default()).await;
        let url = s
            .register_exec(exec(&["resize", "2"], true, false, true, false))
            .unwrap();
        let sess = Session::client(spdy_upgrade(&url, &["v4.channel.k8s.io"]).await.conn);
        let error = open(&sess, "error").await;
        let stdout = open(&sess, "stdout").await;
        let resize = open(&sess, "resize").await;
        let (_, mut w) = resize.into_split();
        // client-go's json.Encoder: one object per line, possibly split across frames
        w.write_all(b"{\"Width\":80,\"Height\":24}\n{\"Width\":")
            .await
            .unwrap();
        w.write_all(b"132,\"Height\":43}\n").await.unwrap();
        assert_eq!(read_all(stdout.into_split().0).await, "80x24\n132x43\n");
        assert_eq!(
            read_all(error.into_split().0).await,
            r#"{"metadata":{},"status":"Success"}"#
        );
    })
    .await
}

#[tokio::test]
async fn spdy_attach() {
    timeout(async {
        let s = start(Config::default()).await;
        let url = s
            .register_attach(AttachRequest {
                container_id: "c1".into(),
                tty: false,
                stdin: true,
                stdout: true,
                stderr: false,
            })
            .unwrap();
        assert!(url.contains("/attach/"));
        let sess = Session::client(spdy_upgrade(&url, &["v4.channel.k8s.io"]).await.conn);
        let error = open(&sess, "error").await;
        let (_, mut w) = open(&sess, "stdin").await.into_split();
        let stdout = open(&sess, "stdout").await;
        w.write_all(b"attached").await.unwrap();
        drop(w);
        assert_eq!(read_all(stdout.into_split().0).await, "attached");
        assert_eq!(
            read_all(error.into_split().0).await,
            r#"{"metadata":{},"status":"Success"}"#
        );
    })
    .await
}

async fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((c, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = c.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// What client-go's port forwarder does per local connection, over `sess`.
async fn forward_once(
    sess: &Session,
    port: u16,
    request_id: u32,
    payload: &[u8],
) -> (Vec<u8>, String) {
    let h = |t: &str| {
        Headers::new()
            .with("streamType", t)
            .with("port", &port.to_string())
            .with("requestID", &request_id.to_string())
    };
    let error = sess.open(h("error"), false).await.unwrap();
    let (err_r, mut err_w) = error.into_split();
    err_w.shutdown().await.unwrap();
    let data = sess.open(h("data"), false).await.unwrap();
    let (mut r, mut w) = data.into_split();
    w.write_all(payload).await.unwrap();
    w.shutdown().await.unwrap();
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    (back, read_all(err_r).await)
}

async fn port_forward_checks(sess: Session) {
    let port = echo_server().await;
    // two requests at once, interleaved on one session
    let (a, b) = tokio::join!(
        forward_once(&sess, port, 0, b"first request"),
        forward_once(&sess, port, 1, &[7u8; 100_000])
    );
    assert_eq!(a, (b"first request".to_vec(), String::new()));
    assert_eq!(b, (vec![7u8; 100_000], String::new()));
    let dead = closed_port().await;
    let (back, err) = forward_once(&sess, dead, 2, b"x").await;
    assert!(back.is_empty());
    assert!(
        err.starts_with(&format!("error forwarding port {dead} to pod pod1: ")),
        "{err}"
    );
    // a stream without a port is refused
    assert!(sess
        .open(
            Headers::new()
                .with("streamType", "data")
                .with("requestID", "9"),
            false
        )
        .await
        .is_err());
}

#[tokio::test]
async fn spdy_port_forward_two_request_ids() {
    timeout(async {
        let s = start(Config::default()).await;
        let url = s.register_port_forward("pod1").unwrap();
        let r = spdy_upgrade(&url, &["portforward.k8s.io"]).await;
        assert_eq!(r.status, 101);
        assert_eq!(
            r.header("x-stream-protocol-version"),
            ["portforward.k8s.io"]
        );
        port_forward_checks(Session::client(r.conn)).await;
    })
    .await
}

#[tokio::test]
async fn websocket_port_forward_tunnels_spdy() {
    timeout(async {
        let s = start(Config::default()).await;
        let url = s.register_port_forward("pod1").unwrap();
        let r = ws_upgrade(&url, "SPDY/3.1+portforward.k8s.io").await;
        assert_eq!(r.status, 101);
        assert_eq!(
            r.header("sec-websocket-protocol"),
            ["SPDY/3.1+portforward.k8s.io"]
        );
        let (rd, wr) = tokio::io::split(r.conn);
        let tunnel = ws::byte_stream(
            WsReader::new(rd, ws::Role::Client),
            WsWriter::new(wr, ws::Role::Client),
        );
        port_forward_checks(Session::client(tunnel)).await;
    })
    .await
}

/// Reads channel messages until the error channel speaks; returns (stdout, stderr, status).
async fn ws_collect<R: AsyncRead + Unpin>(r: &mut WsReader<R>) -> (String, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        match r
            .read_message()
            .await
            .unwrap()
            .expect("connection ended before the status")
        {
            Message::Binary(d) => match d[0] {
                1 => out.extend_from_slice(&d[1..]),
                2 => err.extend_from_slice(&d[1..]),
                3 if d.len() > 1 => {
                    return (
                        String::from_utf8(out).unwrap(),
                        String::from_utf8(err).unwrap(),
                        String::from_utf8(d[1..].to_vec()).unwrap(),
                    );
                }
                _ => {}
            },
            m => panic!("unexpected {m:?}"),
        }
    }
}

async fn ws_exec(
    s: &Streaming,
    req: ExecRequest,
    proto: &str,
) -> (
    WsReader<impl AsyncRead + Unpin>,
    WsWriter<impl AsyncWrite + Unpin>,
) {
    let url = s.register_exec(req).unwrap();
    let r = ws_upgrade(&url, &format!("{proto}, v4.channel.k8s.io")).await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-protocol"), [proto]);
    let (rd, wr) = tokio::io::split(r.conn);
    (
        WsReader::new(rd, ws::Role::Client),
        WsWriter::new(wr, ws::Role::Client),
    )
}

#[tokio::test]
async fn websocket_v5_exec_and_close_channel() {
    timeout(async {
        let s = start(Config::default()).await;
        let (mut r, mut w) = ws_exec(
            &s,
            exec(&["cat", "exit", "4"], false, true, true, true),
            "v5.channel.k8s.io",
        )
        .await;
        // the server's "connection established": an empty stdout message
        assert_eq!(
            r.read_message().await.unwrap(),
            Some(Message::Binary(vec![1]))
        );
        w.send(&Message::Ping(b"hb".to_vec())).await.unwrap();
        w.send_binary(&[0], b"hello ").await.unwrap();
        w.send_binary(&[0], b"world").await.unwrap();
        // without v5's close of stdin, cat would never end
        w.send_binary(&[255], &[0]).await.unwrap();
        let mut pong = false;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = loop {
            match r.read_message().await.unwrap().unwrap() {
                Message::Pong(p) => pong = p == b"hb",
                Message::Binary(d) if d[0] == 1 => out.extend_from_slice(&d[1..]),
                Message::Binary(d) if d[0] == 2 => err.extend_from_slice(&d[1..]),
                Message::Binary(d) if d[0] == 3 => {
                    break String::from_utf8(d[1..].to_vec()).unwrap()
                }
                m => panic!("unexpected {m:?}"),
            }
        };
        assert!(pong);
        assert_eq!(out, b"hello world");
        assert_eq!(err, b"err");
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(v["details"]["causes"][0]["message"], "4");
        assert_eq!(
            r.read_message().await.unwrap(),
            Some(Message::Close(Some(1000)))
        );
        w.send(&Message::Close(Some(1000))).await.unwrap();
    })
    .await
}

#[tokio::test]
async fn websocket_v4_exec_and_tty_resize() {
    timeout(async {
        let s = start(Config::default()).await;
        let (mut r, _w) = ws_exec(
            &s,
            exec(&["cat", "exit", "0"], false, false, true, true),
            "v4.channel.k8s.io",
        )
        .await;
        assert_eq!(
            r.read_message().await.unwrap(),
            Some(Message::Binary(vec![1]))
        );
        assert_eq!(
            ws_collect(&mut r).await,
            (
                String::new(),
                "err".into(),
                r#"{"metadata":{},"status":"Success"}"#.into()
            )
        );

        let (mut r, mut w) = ws_exec(
            &s,
            exec(&["resize", "1"], true, false, true, false),
            "v5.channel.k8s.io",
        )
        .await;
        w.send_binary(&[4], br#"{"Width":90,"Height":30}"#)
            .await
            .unwrap();
        let (out, _, status) = ws_collect(&mut r).await;
        assert_eq!(out, "90x30\n");
        assert_eq!(status, r#"{"metadata":{},"status":"Success"}"#);
    })
    .await
}

#[tokio::test]
async fn unknown_reused_and_expired_tokens_are_404() {
    timeout(async {
        let s = start(Config::default()).await;
        let base = s.base_url().to_owned();
        let r = spdy_upgrade(&format!("{base}/exec/nosuchtoken"), &["v4.channel.k8s.io"]).await;
        assert_eq!((r.status, r.body.as_str()), (404, "404 page not found\n"));
        assert_eq!(
            request(&format!("{base}/other/x"), "GET", &[]).await.status,
            404
        );

        // used once (here: a completed exec), then gone
        let url = s
            .register_exec(exec(&["cat"], false, false, true, false))
            .unwrap();
        let sess = Session::client(spdy_upgrade(&url, &["v4.channel.k8s.io"]).await.conn);
        let error = open(&sess, "error").await;
        let _out = open(&sess, "stdout").await;
        read_all(error.into_split().0).await;
        assert_eq!(spdy_upgrade(&url, &["v4.channel.k8s.io"]).await.status, 404);

        // a token for exec is not one for attach
        let url = s
            .register_exec(exec(&["cat"], false, false, true, false))
            .unwrap();
        assert_eq!(
            spdy_upgrade(&url.replace("/exec/", "/attach/"), &["v4.channel.k8s.io"])
                .await
                .status,
            404
        );

        let short = start(Config {
            token_ttl: Duration::from_millis(1),
            ..Config::default()
        })
        .await;
        let url = short.register_port_forward("p").unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            spdy_upgrade(&url, &["portforward.k8s.io"]).await.status,
            404
        );
    })
    .await
}

#[tokio::test]
async fn no_common_protocol_is_403() {
    timeout(async {
        let s = start(Config::default()).await;
        let url = s.register_exec(exec(&["cat"], false, false, true, false)).unwrap();
        let r = spdy_upgrade(&url, &["v9.channel.k8s.io", "v8.channel.k8s.io"]).await;
        assert_eq!(r.status, 403);
        assert_eq!(
            r.body,
            "unable to upgrade: unable to negotiate protocol: client supports [v9.channel.k8s.io v8.channel.k8s.io], \
             server accepts [v5.channel.k8s.io v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]\n"
        );
        assert_eq!(r.header("x-accepted-stream-protocol-versions").len(), 5);
        // the token was spent by the attempt, as the kubelet's are
        assert_eq!(spdy_upgrade(&url, &["v4.channel.k8s.io"]).await.status, 404);

        let url = s.register_port_forward("p").unwrap();
        assert_eq!(ws_upgrade(&url, "v5.channel.k8s.io").await.status, 403);
        let url = s.register_exec(exec(&["cat"], false, false, true, false)).unwrap();
        assert_eq!(spdy_upgrade(&url, &[]).await.status, 400);
    })
    .await
}

#[tokio::test]
async fn streams_not_created_in_time_end_the_session() {
    timeout(async {
        let s = start(Config {
            stream_creation_timeout: Duration::from_millis(200),
            ..Config::default()
        })
        .await;
        let url = s
            .register_exec(exec(&["cat"], false, true, true, false))
            .unwrap();
        let sess = Session::client(spdy_upgrade(&url, &["v4.channel.k8s.io"]).await.conn);
        let _error = open(&sess, "error").await;
        // no stdin/stdout: the server gives up and hangs up
        sess.handle().closed().await;
    })
    .await
}

#[tokio::test]
async fn hostile_peers_are_hung_up_on() {
    timeout(async {
        let s = start(Config::default()).await;
        // SPDY: a control frame claiming 16 MiB
        let url = s
            .register_exec(exec(&["cat"], false, true, true, false))
            .unwrap();
        let mut c = spdy_upgrade(&url, &["v4.channel.k8s.io"]).await.conn;
        c.write_all(&[0x80, 3, 0, 1, 0, 0xFF, 0xFF, 0xFF])
            .await
            .unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        let (f, _) = crate::decode_frame(&rest).unwrap();
        assert!(
            matches!(f, crate::spdy::Frame::GoAway { status: 1, .. }),
            "{f:?}"
        );

        // WebSocket: an unmasked client frame
        let url = s
            .register_exec(exec(&["cat"], false, true, true, false))
            .unwrap();
        let mut c = ws_upgrade(&url, "v5.channel.k8s.io").await.conn;
        c.write_all(&[0x82, 0x02, 0, b'x']).await.unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest).await;
        // the "connected" message came first; then stdin ended, the exec ended, and the
        // server hung up (read_to_end returned)
        assert_eq!(&rest[..3], &[0x82, 0x01, 0x01]);
    })
    .await
}
