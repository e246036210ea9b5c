//! What the CRI tests (`cri.rs`, `cri_runtime.rs`) share: `rkt-cri` on a test context's dirs,
//! started until its socket answers, a gRPC channel on that socket, and the signature policy an
//! operator writes for an internal mirror of unsigned images.
#![allow(dead_code)] // each test crate uses what it needs

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rkt_tests::TestCtx;
use tonic::transport::Channel;

/// `rkt-cri` on `ctx`'s dirs listening on `socket` (plain-http loopback registries), with
/// `extra` flags.
pub fn server(ctx: &TestCtx, socket: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(rkt_tests::bin_dir().join("rkt-cri"));
    c.arg(format!("--listen={}", socket.display()))
        .arg(format!("--dir={}", ctx.dir().display()))
        .arg(format!("--local-config={}", ctx.local_config().display()))
        .arg(format!("--system-config={}", ctx.system_config().display()))
        .arg("--insecure-options=http")
        .args(extra)
        .stdin(Stdio::null());
    c
}

/// Start [`server`] and wait until its socket answers.
pub fn start(ctx: &TestCtx, socket: &Path, extra: &[&str]) -> Child {
    let child = server(ctx, socket, extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rkt-cri");
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "rkt-cri did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A gRPC channel on the server's unix socket, as the kubelet opens one.
pub async fn channel(socket: PathBuf) -> Channel {
    tonic::transport::Endpoint::try_from("http://[::]:0")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                let s = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await
        .expect("connect to rkt-cri")
}

/// The policy an operator writes for an internal mirror of unsigned images: these registries'
/// images are accepted unsigned, everything else needs a signature (docs/trust.md).
pub fn accept_unsigned(ctx: &TestCtx, registries: &[&str]) {
    let scopes: serde_json::Map<String, serde_json::Value> = registries
        .iter()
        .map(|r| {
            (
                r.to_string(),
                serde_json::json!([{"type": "insecureAcceptAnything"}]),
            )
        })
        .collect();
    let policy = serde_json::json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": scopes},
    });
    std::fs::create_dir_all(ctx.local_config()).unwrap();
    std::fs::write(
        ctx.local_config().join("policy.json"),
        serde_json::to_vec(&policy).unwrap(),
    )
    .unwrap();
}
