//! Serving: one server per data dir (an exclusive lock on `<data dir>/cri.lock`), on a unix
//! socket the kubelet connects to.

use std::future::Future;
use std::path::{Path, PathBuf};

use tokio_stream::wrappers::UnixListenerStream;

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
pub async fn serve(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let _lock = lock_data_dir(&cfg.dirs.data)?;
    let store = image_store::Store::open(&cfg.dirs.data).map_err(|source| Error::Store {
        dir: cfg.dirs.data.clone(),
        source: Box::new(source),
    })?;
    let images = Images::new(store, cfg.dirs.config_roots(), cfg.insecure);
    let listener = bind(&cfg.socket)?;
    tracing::info!(socket = %cfg.socket.display(), "serving CRI");
    // after `shutdown`, clients get SHUTDOWN_GRACE to finish; a kubelet keeps its connection
    // open for good, so the server does not wait for it to close
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tonic::transport::Server::builder()
        .add_service(RuntimeServiceServer::new(Runtime))
        .add_service(ImageServiceServer::new(images))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            shutdown.await;
            let _ = stopping.send(());
        });
    let res = tokio::select! {
        r = serving => r,
        _ = async {
            if stopped.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => Ok(()),
    };
    let _ = std::fs::remove_file(&cfg.socket);
    res.map_err(|e| Error::Serve(Box::new(e)))
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
