//! The CRI streaming server: the HTTP endpoint behind the URLs that the CRI `Exec`, `Attach`
//! and `PortForward` calls return, as the kubelet's `pkg/cri/streaming` serves it to
//! client-go (kubectl, critest).
//!
//! What is supported:
//! - **Routes** `/exec/{token}`, `/attach/{token}`, `/portforward/{token}` (GET or POST) on a
//!   caller-bound TCP listener, HTTP/1.1 ([`Streaming::serve`]). Tokens come from
//!   [`Streaming::register_exec`] / [`Streaming::register_attach`] /
//!   [`Streaming::register_port_forward`]: random (128 bits, base64url), one-shot, valid for
//!   one minute; an unknown, used or expired token is a 404.
//! - **SPDY/3.1** upgrades (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version`): exec/attach
//!   `v4.channel.k8s.io` (metav1.Status JSON on the error stream, exit codes),
//!   `v3.channel.k8s.io` (adds terminal resize), `v2.channel.k8s.io`, `channel.k8s.io` (plain
//!   error text); port-forward `portforward.k8s.io` (error/data stream pairs by `requestID`).
//!   No common protocol is a 403 with the kubelet's message. The codec and session are in
//!   [`spdy`]; [`decode_frame`] is the fuzzing entry point.
//! - **WebSocket** upgrades (RFC 6455): exec/attach `v5.channel.k8s.io` and
//!   `v4.channel.k8s.io` (binary messages, first byte the channel; v5's 255 closes a channel),
//!   port-forward `SPDY/3.1+portforward.k8s.io` (SPDY tunnelled through binary messages).
//!
//! Not supported: the base64 WebSocket protocols (`base64.channel.k8s.io`, …), the old
//! per-port WebSocket port-forward (`portforward.k8s.io` over WebSocket with `?port=`), TLS
//! (serve on loopback or behind the caller's TLS), an idle timeout for WebSocket exec/attach
//! (SPDY sessions have the kubelet's, [`Config::stream_idle_timeout`]).
//!
//! The runtime does the work through [`Backend`].

mod backend;
mod portforward;
mod remotecommand;
mod server;
pub mod spdy;
pub mod ws;

pub use backend::{
    AttachRequest, Backend, BoxDuplex, BoxRead, BoxWrite, Duplex, ExecRequest, Io, Size,
};
pub use server::{
    Config, Streaming, SPDY_EXEC_PROTOCOLS, SPDY_PORT_FORWARD_PROTOCOLS, WS_EXEC_PROTOCOLS,
    WS_PORT_FORWARD_PROTOCOLS,
};
pub use spdy::decode_frame;

/// Why a request could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (the CRI's InvalidArgument).
    #[error("invalid streaming request: {0}")]
    InvalidRequest(&'static str),
    /// Too many registered requests are waiting for their client (the CRI's ResourceExhausted).
    #[error("too many in-flight streaming requests (limit {0})")]
    TooManyInFlight(usize),
    /// The system's random source failed.
    #[error("no randomness for a streaming token: {0}")]
    Random(String),
}

#[cfg(test)]
mod tests;
