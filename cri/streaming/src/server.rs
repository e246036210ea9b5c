//! The HTTP side: one-shot tokens, the routes, protocol negotiation and the upgrades.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::backend::{AttachRequest, Backend, ExecRequest};
use crate::{portforward, remotecommand, ws, Error};

/// Exec/attach protocols over SPDY, most preferred first (the kubelet's list; v5 is v4 over
/// SPDY, its close signal being WebSocket-only).
pub const SPDY_EXEC_PROTOCOLS: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
/// Port-forward protocols over SPDY.
pub const SPDY_PORT_FORWARD_PROTOCOLS: [&str; 1] = ["portforward.k8s.io"];
/// Exec/attach subprotocols over WebSocket.
pub const WS_EXEC_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// Port-forward subprotocol over WebSocket: SPDY tunnelled in binary messages.
pub const WS_PORT_FORWARD_PROTOCOLS: [&str; 1] = ["SPDY/3.1+portforward.k8s.io"];

const X_STREAM_PROTOCOL_VERSION: &str = "x-stream-protocol-version";
const X_ACCEPTED_STREAM_PROTOCOL_VERSIONS: &str = "x-accepted-stream-protocol-versions";
const TOKEN_BYTES: usize = 16;

/// Limits and timeouts; the defaults are the kubelet's.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a registered request's token stays valid (kubelet: 1 minute).
    pub token_ttl: Duration,
    /// How long to wait for the client to open the streams a request needs (kubelet: 30 s).
    pub stream_creation_timeout: Duration,
    /// A SPDY session (exec, attach, port-forward) with no frame either way for this long is
    /// closed (kubelet: 4 hours); `None`: never.
    pub stream_idle_timeout: Option<Duration>,
    /// Registered but unused tokens at most (kubelet: 1000).
    pub max_in_flight: usize,
    /// The URL prefix handed out, e.g. `http://10.0.0.5:10010`; by default `http://<bound addr>`.
    pub base_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(60),
            stream_creation_timeout: Duration::from_secs(30),
            stream_idle_timeout: Some(Duration::from_secs(4 * 3600)),
            max_in_flight: 1000,
            base_url: None,
        }
    }
}

#[derive(Debug, Clone)]
enum Pending {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(String),
}

impl Pending {
    fn route(&self) -> &'static str {
        match self {
            Pending::Exec(_) => "exec",
            Pending::Attach(_) => "attach",
            Pending::PortForward(_) => "portforward",
        }
    }
}

pub(crate) struct Inner {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) config: Config,
    base_url: String,
    cache: Mutex<HashMap<String, (Option<Instant>, Pending)>>,
}

/// The streaming server: register requests (from the CRI calls), hand out URLs, serve them.
/// Cheap to clone.
#[derive(Clone)]
pub struct Streaming {
    inner: Arc<Inner>,
}

impl Streaming {
    /// A server whose URLs point at `addr` (the address its listener is bound to) unless
    /// `config.base_url` says otherwise.
    pub fn new(backend: Arc<dyn Backend>, addr: SocketAddr, config: Config) -> Self {
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let base_url = base_url.trim_end_matches('/').to_owned();
        Self {
            inner: Arc::new(Inner {
                backend,
                config,
                base_url,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The prefix of every URL handed out.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Registers an exec (the CRI `Exec` call) and returns the URL the client connects to.
    pub fn register_exec(&self, req: ExecRequest) -> Result<String, Error> {
        if req.container_id.is_empty() {
            return Err(Error::InvalidRequest("missing container id"));
        }
        if req.cmd.is_empty() {
            return Err(Error::InvalidRequest("missing command"));
        }
        check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
        self.insert(Pending::Exec(req))
    }

    /// Registers an attach (the CRI `Attach` call) and returns its URL.
    pub fn register_attach(&self, req: AttachRequest) -> Result<String, Error> {
        if req.container_id.is_empty() {
            return Err(Error::InvalidRequest("missing container id"));
        }
        check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
        self.insert(Pending::Attach(req))
    }

    /// Registers a port-forward to a pod (the CRI `PortForward` call) and returns its URL.
    pub fn register_port_forward(&self, pod_id: &str) -> Result<String, Error> {
        if pod_id.is_empty() {
            return Err(Error::InvalidRequest("missing pod sandbox id"));
        }
        self.insert(Pending::PortForward(pod_id.to_owned()))
    }

    fn insert(&self, p: Pending) -> Result<String, Error> {
        let mut raw = [0u8; TOKEN_BYTES];
        getrandom::getrandom(&mut raw).map_err(|e| Error::Random(e.to_string()))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = Instant::now();
        let route = p.route();
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.inner.config.max_in_flight {
            cache.retain(|_, (exp, _)| exp.is_none_or(|e| e > now));
            if cache.len() >= self.inner.config.max_in_flight {
                return Err(Error::TooManyInFlight(self.inner.config.max_in_flight));
            }
        }
        // a ttl too large for the clock never expires
        let exp = now.checked_add(self.inner.config.token_ttl);
        cache.insert(token.clone(), (exp, p));
        Ok(format!("{}/{route}/{token}", self.inner.base_url))
    }

    fn consume(&self, route: &str, token: &str) -> Option<Pending> {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (exp, p) = cache.remove(token)?;
        (exp.is_none_or(|e| e > Instant::now()) && p.route() == route).then_some(p)
    }

    /// Serves HTTP/1.1 on `listener` until the task running it is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // out of fds and the like: wait instead of spinning
                    tracing::warn!("streaming server: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let this = self.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let this = this.clone();
                    async move { Ok::<_, Infallible>(this.handle(req)) }
                });
                // a client that never finishes its request head is dropped after 30 s
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!("streaming server: connection from {peer}: {e}");
                }
            });
        }
    }

    fn handle(&self, mut req: Request<Incoming>) -> Response<String> {
        let path = req.uri().path().to_owned();
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let (Some(route), Some(token)) = (parts.next(), parts.next()) else {
            return not_found();
        };
        if !matches!(route, "exec" | "attach" | "portforward")
            || token.is_empty()
            || token.contains('/')
        {
            return not_found();
        }
        if req.method() != Method::GET && req.method() != Method::POST {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n".into(),
            );
        }
        let Some(pending) = self.consume(route, token) else {
            return not_found();
        };
        let headers = req.headers();
        let websocket = has_token(headers, CONNECTION.as_str(), "upgrade")
            && has_token(headers, UPGRADE.as_str(), "websocket");
        let timeout = self.inner.config.stream_creation_timeout;
        let idle = self.inner.config.stream_idle_timeout;
        let backend = self.inner.backend.clone();
        if websocket {
            let server: &[&str] = match pending {
                Pending::PortForward(_) => &WS_PORT_FORWARD_PROTOCOLS,
                _ => &WS_EXEC_PROTOCOLS,
            };
            let key = headers
                .get("sec-websocket-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let version_ok = headers
                .get("sec-websocket-version")
                .is_some_and(|v| v.as_bytes() == b"13");
            if key.is_empty() || !version_ok {
                return text(StatusCode::BAD_REQUEST, "unable to upgrade: a websocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13\n".into());
            }
            let client = list_values(headers, "sec-websocket-protocol");
            let Some(proto) = negotiate(&client, server) else {
                return forbidden(&client, server);
            };
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let io = match on_upgrade.await {
                    Ok(u) => TokioIo::new(u),
                    Err(e) => return tracing::debug!("streaming server: websocket upgrade: {e}"),
                };
                match pending {
                    Pending::PortForward(pod) => {
                        let (rd, wr) = tokio::io::split(io);
                        let tunnel = ws::byte_stream(
                            ws::WsReader::new(rd, ws::Role::Server),
                            ws::WsWriter::new(wr, ws::Role::Server),
                        );
                        let session = spdy_session(tunnel, true, idle);
                        portforward::serve(session, pod, backend, timeout).await
                    }
                    Pending::Exec(r) => {
                        remotecommand::websocket(io, proto, remotecommand::Op::Exec(r), backend)
                            .await
                    }
                    Pending::Attach(r) => {
                        remotecommand::websocket(io, proto, remotecommand::Op::Attach(r), backend)
                            .await
                    }
                }
            });
            let mut resp = Response::new(String::new());
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = resp.headers_mut();
            h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(UPGRADE, HeaderValue::from_static("websocket"));
            if let Ok(v) = HeaderValue::from_str(&ws::accept_key(&key)) {
                h.insert("sec-websocket-accept", v);
            }
            h.insert("sec-websocket-protocol", HeaderValue::from_static(proto));
            return resp;
        }

        // SPDY: negotiate the protocol first (as the kubelet does), then check the upgrade
        let server: &[&str] = match pending {
            Pending::PortForward(_) => &SPDY_PORT_FORWARD_PROTOCOLS,
            _ => &SPDY_EXEC_PROTOCOLS,
        };
        let client = list_values(headers, X_STREAM_PROTOCOL_VERSION);
        if client.is_empty() {
            return text(
                StatusCode::BAD_REQUEST,
                "unable to upgrade: X-Stream-Protocol-Version is required\n".into(),
            );
        }
        let Some(proto) = negotiate(&client, server) else {
            return forbidden(&client, server);
        };
        if !has_token(headers, CONNECTION.as_str(), "upgrade")
            || !has_token(headers, UPGRADE.as_str(), "spdy/3.1")
        {
            return text(
                StatusCode::BAD_REQUEST,
                "unable to upgrade: missing upgrade headers in request\n".into(),
            );
        }
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let io = match on_upgrade.await {
                Ok(u) => TokioIo::new(u),
                Err(e) => return tracing::debug!("streaming server: spdy upgrade: {e}"),
            };
            let op = match pending {
                Pending::PortForward(pod) => {
                    let session = spdy_session(io, true, idle);
                    return portforward::serve(session, pod, backend, timeout).await;
                }
                Pending::Exec(r) => remotecommand::Op::Exec(r),
                Pending::Attach(r) => remotecommand::Op::Attach(r),
            };
            let session = spdy_session(io, false, idle);
            remotecommand::spdy(session, proto, op, backend, timeout).await
        });
        let mut resp = Response::new(String::new());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        h.insert(X_STREAM_PROTOCOL_VERSION, HeaderValue::from_static(proto));
        resp
    }
}

/// The server side of a SPDY session; port-forward sessions refuse malformed streams.
fn spdy_session<T>(io: T, port_forward: bool, idle: Option<Duration>) -> crate::spdy::Session
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let session = if port_forward {
        crate::spdy::Session::server_with_check(io, Box::new(portforward::acceptable))
    } else {
        crate::spdy::Session::server(io)
    };
    if let Some(idle) = idle {
        session.handle().set_idle_timeout(idle);
    }
    session
}

fn check_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<(), Error> {
    if tty && stderr {
        return Err(Error::InvalidRequest("tty and stderr cannot both be true"));
    }
    if !stdin && !stdout && !stderr {
        return Err(Error::InvalidRequest(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    Ok(())
}

/// Every value of a header, split at commas and trimmed, in order.
fn list_values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn has_token(h: &HeaderMap, name: &str, token: &str) -> bool {
    list_values(h, name)
        .iter()
        .any(|v| v.eq_ignore_ascii_case(token))
}

/// The first of the client's protocols the server speaks (the client's preference wins).
fn negotiate(client: &[String], server: &[&'static str]) -> Option<&'static str> {
    client
        .iter()
        .find_map(|c| server.iter().copied().find(|s| s == c))
}

fn text(status: StatusCode, body: String) -> Response<String> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn not_found() -> Response<String> {
    text(StatusCode::NOT_FOUND, "404 page not found\n".into())
}

fn forbidden(client: &[String], server: &[&str]) -> Response<String> {
    let msg = format!(
        "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]\n",
        client.join(" "),
        server.join(" ")
    );
    let mut r = text(StatusCode::FORBIDDEN, msg);
    for s in server {
        if let Ok(v) = HeaderValue::from_str(s) {
            r.headers_mut()
                .append(X_ACCEPTED_STREAM_PROTOCOL_VERSIONS, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_the_clients_order() {
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            negotiate(
                &c(&["v2.channel.k8s.io", "v4.channel.k8s.io"]),
                &SPDY_EXEC_PROTOCOLS
            ),
            Some("v2.channel.k8s.io")
        );
        assert_eq!(
            negotiate(&c(&["v6.channel.k8s.io"]), &SPDY_EXEC_PROTOCOLS),
            None
        );
        let mut h = HeaderMap::new();
        h.append(X_STREAM_PROTOCOL_VERSION, HeaderValue::from_static("a, b"));
        h.append(X_STREAM_PROTOCOL_VERSION, HeaderValue::from_static("c"));
        assert_eq!(
            list_values(&h, X_STREAM_PROTOCOL_VERSION),
            c(&["a", "b", "c"])
        );
    }

    #[test]
    fn requests_are_validated_and_tokens_are_one_shot() {
        let s = Streaming::new(
            Arc::new(crate::tests::Echo),
            "127.0.0.1:1".parse().unwrap(),
            Config {
                max_in_flight: 2,
                ..Config::default()
            },
        );
        let exec = |tty, stderr| ExecRequest {
            container_id: "c".into(),
            cmd: vec!["cat".into()],
            tty,
            stdin: true,
            stdout: true,
            stderr,
        };
        assert!(matches!(
            s.register_exec(exec(true, true)),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            s.register_port_forward(""),
            Err(Error::InvalidRequest(_))
        ));
        let url = s.register_exec(exec(false, true)).unwrap();
        let token = url.rsplit('/').next().unwrap().to_owned();
        assert!(url.starts_with("http://127.0.0.1:1/exec/") && token.len() >= 11);
        s.register_port_forward("pod").unwrap();
        assert!(matches!(
            s.register_port_forward("pod"),
            Err(Error::TooManyInFlight(2))
        ));
        assert!(
            s.consume("attach", &token).is_none(),
            "a token is for its own route only"
        );
        let url = s.register_exec(exec(false, false)).unwrap();
        let token = url.rsplit('/').next().unwrap();
        assert!(s.consume("exec", token).is_some());
        assert!(s.consume("exec", token).is_none());
    }
}
