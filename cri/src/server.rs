//! Serving: one server per data dir (an exclusive lock on `<data dir>/cri.lock`), on a unix
//! socket the kubelet connects to.

use std::future::Future;
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use crate::images::Images;
use crate::proto::image_service_server::ImageServiceServer;
use crate::proto::runtime_service_server::RuntimeServiceServer;
use crate::runtime::Runtime;
use crate::Error;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct Config {
    /// rkt's directories (data dir, configuration roots).
    pub dirs: stage0::Dirs,
    /// The unix socket to listen on.
    pub socket: PathBuf,
    /// Security checks turned off (`--insecure-options`).
    pub insecure: stage0::Insecure,
    /// This server's binary (the detached pod starter and the exec helper are its
    /// subcommands).
    pub exe: PathBuf,
    /// The CNI network pods join (rkt's `--net` value; empty: the CNI conf dir's first).
    pub net: String,
    /// The CNI conf dir.
    pub cni_conf_dir: PathBuf,
    /// Where the streaming server (exec/attach/port-forward URLs) listens.
    pub streaming: std::net::SocketAddr,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Take the data dir's server lock: a second server on the same data dir is refused.
fn lock_data_dir(data: &Path) -> Result<std::fs::File, Error> {
    std::fs::create_dir_all(data).map_err(io("creating", data))?;
    let path = data.join("cri.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("opening", &path))?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::Busy(data.to_path_buf())),
        Err(e) => Err(io("locking", &path)(e.into())),
    }
}

/// Bind `socket`, replacing a stale one (nothing answers on it).
fn bind(socket: &Path) -> Result<tokio::net::UnixListener, Error> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(Error::Io {
                what: "listening on",
                path: socket.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
            });
        }
        std::fs::remove_file(socket).map_err(io("removing the stale socket", socket))?;
    }
    let l = tokio::net::UnixListener::bind(socket).map_err(io("listening on", socket))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))
        .map_err(io("setting the mode of", socket))?;
    Ok(l)
}

/// How long requests in flight may take once the server is asked to stop.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Serve until `shutdown` completes (and then at most [`SHUTDOWN_GRACE`] more); the socket is
/// removed then.
///
/// The gRPC routes are served on hyper's HTTP/2 connections directly rather than through
/// tonic's transport server, whose timeout layer answers a request past its `grpc-timeout`
/// with `CANCELLED`: here the client's own deadline decides, and it reports
/// `DEADLINE_EXCEEDED` as the kubelet and critest expect.
pub async fn serve(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let _lock = lock_data_dir(&cfg.dirs.data)?;
    let store = image_store::Store::open(&cfg.dirs.data).map_err(|source| Error::Store {
        dir: cfg.dirs.data.clone(),
        source: Box::new(source),
    })?;
    let images = Images::new(store, cfg.dirs.config_roots(), cfg.insecure);
    let stream_listener = tokio::net::TcpListener::bind(cfg.streaming)
        .await
        .map_err(|e| Error::Io {
            what: "listening for streaming on",
            path: PathBuf::from(cfg.streaming.to_string()),
            source: e,
        })?;
    let backend = std::sync::Arc::new(crate::stream::RktBackend {
        data: cfg.dirs.data.clone(),
        exe: cfg.exe.clone(),
        global_args: crate::runtime::helper_args(
            &cfg.dirs,
            cfg.insecure,
            &cfg.net,
            &cfg.cni_conf_dir,
        ),
        dirs: cfg.dirs.clone(),
        insecure: cfg.insecure,
    });
    let stream_addr = stream_listener.local_addr().map_err(|e| Error::Io {
        what: "listening for streaming on",
        path: PathBuf::from(cfg.streaming.to_string()),
        source: e,
    })?;
    let streaming = rkt_cri_streaming::Streaming::new(
        backend,
        stream_addr,
        rkt_cri_streaming::Config::default(),
    );
    tracing::info!(address = %stream_addr, "serving streaming");
    let stream_task = tokio::spawn(streaming.clone().serve(stream_listener));
    let runtime = Runtime::new(
        cfg.dirs.clone(),
        cfg.insecure,
        images.clone(),
        cfg.exe.clone(),
        crate::runtime::helper_args(&cfg.dirs, cfg.insecure, &cfg.net, &cfg.cni_conf_dir),
        Some(streaming),
    );
    let listener = bind(&cfg.socket)?;
    tracing::info!(socket = %cfg.socket.display(), "serving CRI");
    let routes = tonic::service::Routes::new(RuntimeServiceServer::new(runtime))
        .add_service(ImageServiceServer::new(images))
        .prepare();
    let service = TowerToHyperService::new(routes);
    let connections = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // out of fds, for one: try again shortly rather than spin
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service.clone());
                let conn = connections.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    // requests in flight get SHUTDOWN_GRACE; a kubelet keeps its connection open for good, so
    // the server does not wait for it to close
    tokio::select! {
        () = connections.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {}
    }
    stream_task.abort();
    let _ = std::fs::remove_file(&cfg.socket);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_per_data_dir() {
        let d = tempfile::tempdir().unwrap();
        let first = lock_data_dir(d.path()).unwrap();
        assert!(matches!(lock_data_dir(d.path()), Err(Error::Busy(_))));
        drop(first);
        lock_data_dir(d.path()).unwrap();
    }
}
