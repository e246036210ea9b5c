//! Port-forward over a SPDY session: the client opens an `error` and a `data` stream per
//! forwarded connection, paired by their `requestID` header; each pair gets a connection
//! from the backend and bytes are copied both ways.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::backend::Backend;
use crate::spdy::frame::rst;
use crate::spdy::{Headers, Session, SpdyStream};

#[derive(Default)]
struct Pair {
    data: Option<SpdyStream>,
    error: Option<SpdyStream>,
    deadline: Option<Instant>,
}

/// Whether a new stream's headers make a port-forward stream (the session refuses others).
pub(crate) fn acceptable(h: &Headers) -> bool {
    check(h).is_ok()
}

/// Checks a new stream's `port` and `streamType` headers; `Err` says why it is refused.
fn check(h: &Headers) -> Result<(u16, bool), String> {
    let port = h.get("port").ok_or("\"port\" header is required")?;
    let port: u16 = port
        .parse()
        .map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if port == 0 {
        return Err("port \"0\" must be > 0".into());
    }
    match h.get("streamtype") {
        Some("error") => Ok((port, false)),
        Some("data") => Ok((port, true)),
        Some(t) => Err(format!("invalid stream type {t:?}")),
        None => Err("\"streamType\" header is required".into()),
    }
}

/// The pair key: the `requestID` header, or for old clients the stream ids the kubelet
/// infers (an error stream's own id, a data stream's id minus 2).
fn request_id(s: &SpdyStream, data: bool) -> String {
    match s.headers().get("requestid") {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ if data => s.id().saturating_sub(2).to_string(),
        _ => s.id().to_string(),
    }
}

async fn write_error(s: SpdyStream, msg: &str) {
    let (_, mut w) = s.into_split();
    let _ = w.write_all(msg.as_bytes()).await;
    let _ = w.shutdown().await;
}

/// Serves port-forward requests for `pod_id` until the client hangs up.
pub(crate) async fn serve(
    mut session: Session,
    pod_id: String,
    backend: Arc<dyn Backend>,
    timeout: Duration,
) {
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut tick =
        tokio::time::interval(timeout.clamp(Duration::from_millis(10), Duration::from_secs(1)));
    loop {
        let s = tokio::select! {
            s = session.accept() => s,
            _ = tick.tick() => {
                let now = Instant::now();
                let expired: Vec<String> = pairs.iter().filter(|(_, p)| p.deadline.is_some_and(|d| d <= now)).map(|(k, _)| k.clone()).collect();
                for id in expired {
                    if let Some(p) = pairs.remove(&id) {
                        tracing::debug!("port-forward: request {id}: timed out waiting for streams");
                        if let Some(e) = p.error {
                            write_error(e, &format!("timed out waiting for streams of request {id}")).await;
                        }
                        if let Some(d) = p.data {
                            d.reset(rst::CANCEL);
                        }
                    }
                }
                continue;
            }
        };
        let Some(s) = s else { break };
        let (port, is_data) = match check(s.headers()) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!("port-forward: stream {} refused: {e}", s.id());
                s.reset(rst::REFUSED_STREAM);
                continue;
            }
        };
        let id = request_id(&s, is_data);
        // a timeout past the clock's range means no deadline
        let pair = pairs.entry(id.clone()).or_insert_with(|| Pair {
            deadline: Instant::now().checked_add(timeout),
            ..Pair::default()
        });
        let slot = if is_data {
            &mut pair.data
        } else {
            &mut pair.error
        };
        if slot.is_some() {
            let msg = format!(
                "error processing stream for request {id}: {} stream already assigned",
                if is_data { "data" } else { "error" }
            );
            s.reset(rst::STREAM_IN_USE);
            if let Some(e) = pair.error.take() {
                write_error(e, &msg).await;
            }
            continue;
        }
        *slot = Some(s);
        if pair.data.is_some() && pair.error.is_some() {
            if let Some(Pair {
                data: Some(data),
                error: Some(error),
                ..
            }) = pairs.remove(&id)
            {
                tokio::spawn(forward(pod_id.clone(), port, data, error, backend.clone()));
            }
        }
    }
    session.close();
}

async fn forward(
    pod_id: String,
    port: u16,
    data: SpdyStream,
    error: SpdyStream,
    backend: Arc<dyn Backend>,
) {
    let (_, mut err_w) = error.into_split();
    let (mut data_r, mut data_w) = data.into_split();
    match backend.port_forward(pod_id.clone(), port).await {
        Err(e) => {
            let _ = err_w
                .write_all(format!("error forwarding port {port} to pod {pod_id}: {e}").as_bytes())
                .await;
        }
        Ok(conn) => {
            let (mut conn_r, mut conn_w) = tokio::io::split(conn);
            let up = async {
                let _ = tokio::io::copy(&mut data_r, &mut conn_w).await;
                let _ = conn_w.shutdown().await;
            };
            let down = async {
                let _ = tokio::io::copy(&mut conn_r, &mut data_w).await;
                let _ = data_w.shutdown().await;
            };
            tokio::join!(up, down);
        }
    }
    drop(data_w);
    let _ = err_w.shutdown().await;
}
