//! Volumes and the per-app `/etc` files stage1 provides (hostname, hosts fallback, resolv.conf,
//! the /etc/mtab symlink), as OCI mount objects.

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use stage1_abi::{paths, App, DnsConfig, PodManifest, RuntimeConfig, VolumeKind};

use crate::app::user::host_id;
use crate::security::inroot::{is_absent, Root};
use crate::Error;

/// What can be wrong with an app's volumes.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A mount point names a volume the pod does not define.
    #[error("mount point {target:?} of app {app:?} names undefined volume {volume:?}")]
    Undefined {
        /// The mount point's target.
        target: String,
        /// The app.
        app: String,
        /// The volume it names.
        volume: String,
    },
    /// A host volume's source cannot be used.
    #[error("volume {volume:?}: host source {source_path:?}: {source}")]
    HostSource {
        /// The volume.
        volume: String,
        /// Its host path.
        source_path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The host volumes `app` mounts with `idmap=true` (private users: checked at start,
/// [`PodManifest::check_idmapped_volumes`]): (source, recursive), once each. The app's helper
/// binds them through idmapped mounts of the pod's user namespace (`crate::app::helper`).
pub fn idmapped_sources(pod: &PodManifest, app: &App) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for m in &app.mounts {
        let Some(v) = pod.volumes.iter().find(|v| v.name == m.volume) else {
            continue; // volume_mounts says so
        };
        if let VolumeKind::Host {
            source,
            recursive,
            idmap: true,
            ..
        } = &v.kind
        {
            if !out.iter().any(|(s, _)| s == source) {
                out.push((source.clone(), *recursive));
            }
        }
    }
    out
}

/// Whether the app mounts a host volume with `rshared` propagation.
pub fn has_shared_volume(pod: &PodManifest, app: &App) -> bool {
    app.mounts.iter().any(|m| {
        pod.volumes.iter().any(|v| {
            v.name == m.volume
                && matches!(&v.kind, VolumeKind::Host { propagation: Some(p), .. } if p == "rshared")
        })
    })
}

/// Deepest directory tree an image `VOLUME` is copied from.
const MAX_COPY_DEPTH: usize = 128;

/// Create every empty volume's backing dir (`volumes/<name>`) that does not exist yet, with its
/// mode and owner. One populated from the image (Docker `VOLUME`) gets the content, mode and
/// owner of that dir in the app's rootfs, which is read only through [`Root`] and fds: a link
/// in the image never leads the copy out of the rootfs.
pub fn prepare_empty_volumes(pod_dir: &Path, pod: &PodManifest) -> Result<(), Error> {
    for v in &pod.volumes {
        let VolumeKind::Empty {
            mode,
            uid,
            gid,
            populate_from,
        } = &v.kind
        else {
            continue;
        };
        let dir = pod_dir.join(paths::volume_dir(&v.name));
        if dir.symlink_metadata().is_ok() {
            continue;
        }
        // with private users the manifest's owner is an id in the pod: the host's is shifted
        // (a populated volume copies the rootfs, whose idmapped files already show host ids);
        // an unmapped one is refused before the dir exists
        let users = pod.private_users.as_ref();
        let host = |what: &str, id: u32| host_id(&format!("volume {:?} {what}", v.name), id, users);
        let (uid, gid) = (host("uid", *uid)?, host("gid", *gid)?);
        std::fs::create_dir_all(pod_dir.join(paths::VOLUMES_DIR))
            .map_err(|e| Error::io(&dir, e))?;
        rustix::fs::mkdir(&dir, Mode::from_raw_mode(0o700))
            .map_err(|e| Error::io(&dir, e.into()))?;
        // a volume left half-made would count as made next time
        if let Err(e) = fill_volume(pod_dir, &dir, (*mode, uid, gid), populate_from) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    }
    Ok(())
}

/// Populate the new volume dir `dir` (when `populate_from` names an image dir) and give it its
/// mode and owner: the image dir's when there is one, else `attrs` (mode, uid, gid).
fn fill_volume(
    pod_dir: &Path,
    dir: &Path,
    attrs: (u32, u32, u32),
    populate_from: &Option<(String, String)>,
) -> Result<(), Error> {
    let dst = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(dir, e.into()))?;
    let (mut mode, mut uid, mut gid) = attrs;
    if let Some((app, path)) = populate_from {
        let root = Root::open(&pod_dir.join(paths::app_rootfs(app)))?;
        match root.open_dir(path) {
            Ok(src) => {
                let st = rustix::fs::fstat(&src).map_err(|e| root.err("volume", path, e))?;
                // Docker semantics: the volume gets the image dir's mode and owner
                (mode, uid, gid) = (st.st_mode & 0o7777, st.st_uid, st.st_gid);
                let dst_st = rustix::fs::fstat(&dst).map_err(|e| Error::io(dir, e.into()))?;
                copy_tree(&src, &dst, (dst_st.st_dev, dst_st.st_ino), 0)
                    .map_err(|(p, e)| root.err("copying volume", &format!("{path}/{p}"), e))?;
            }
            // missing, or not a dir: an empty volume with the manifest's mode and owner
            Err(e) if is_absent(e) => {}
            Err(e) => return Err(root.err("volume", path, e)),
        }
    }
    rustix::fs::fchown(
        &dst,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(|e| Error::io(dir, e.into()))?;
    let m = if mode == 0 { 0o755 } else { mode };
    rustix::fs::fchmod(&dst, Mode::from_raw_mode(m)).map_err(|e| Error::io(dir, e.into()))
}

/// Copy the contents of the dir `src` into the dir `dst`, keeping modes, owners and symlinks
/// (as links: never followed), walking with fds only. A dir that is `dst` itself (`dst_id`:
/// dev, ino) is skipped, so the copy never recurses into its own output. Errors carry the
/// path relative to `src`.
fn copy_tree(
    src: &OwnedFd,
    dst: &OwnedFd,
    dst_id: (u64, u64),
    depth: usize,
) -> Result<(), (String, Errno)> {
    if depth > MAX_COPY_DEPTH {
        return Err((String::new(), Errno::LOOP));
    }
    let dir = rustix::fs::Dir::read_from(src).map_err(|e| (String::new(), e))?;
    for ent in dir {
        let ent = ent.map_err(|e| (String::new(), e))?;
        let name: &CStr = ent.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let shown = name.to_string_lossy().into_owned();
        let at = |e: Errno| (shown.clone(), e);
        let md = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW).map_err(at)?;
        let (uid, gid) = (
            Some(rustix::fs::Uid::from_raw(md.st_uid)),
            Some(rustix::fs::Gid::from_raw(md.st_gid)),
        );
        let perm = Mode::from_raw_mode(md.st_mode & 0o7777);
        match FileType::from_raw_mode(md.st_mode) {
            FileType::Symlink => {
                let t = rustix::fs::readlinkat(src, name, Vec::new()).map_err(at)?;
                rustix::fs::symlinkat(t.as_c_str(), dst, name).map_err(at)?;
                let _ = rustix::fs::chownat(dst, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW);
            }
            FileType::Directory => {
                if (md.st_dev, md.st_ino) == dst_id {
                    continue;
                }
                let from = rustix::fs::openat(
                    src,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(at)?;
                rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700)).map_err(at)?;
                let to = rustix::fs::openat(
                    dst,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(at)?;
                copy_tree(&from, &to, dst_id, depth + 1)
                    .map_err(|(p, e)| (format!("{shown}/{p}"), e))?;
                let _ = rustix::fs::fchown(&to, uid, gid);
                let _ = rustix::fs::fchmod(&to, perm);
            }
            FileType::RegularFile => {
                let from = rustix::fs::openat(
                    src,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(at)?;
                let to = rustix::fs::openat(
                    dst,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(at)?;
                let (mut r, mut w) = (std::fs::File::from(from), std::fs::File::from(to));
                std::io::copy(&mut r, &mut w)
                    .map_err(|e| at(Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
                let _ = rustix::fs::fchown(w.as_fd(), uid, gid);
                let _ = rustix::fs::fchmod(w.as_fd(), perm);
            }
            // devices, FIFOs and sockets are not copied
            _ => {}
        }
    }
    Ok(())
}

fn bind(dest: &str, src: &Path, ro: bool, recursive: bool) -> Mount {
    let mut opts = vec![if recursive { "rbind" } else { "bind" }];
    if ro {
        opts.push("ro");
    }
    crate::app::spec::mount(dest, "bind", src, &opts)
}

/// The app's volume mounts.
pub fn volume_mounts(pod_dir: &Path, pod: &PodManifest, app: &App) -> Result<Vec<Mount>, Error> {
    let mut out = Vec::new();
    for m in &app.mounts {
        let v = pod
            .volumes
            .iter()
            .find(|v| v.name == m.volume)
            .ok_or_else(|| VolumeError::Undefined {
                target: m.target.clone(),
                app: app.name.clone(),
                volume: m.volume.clone(),
            })?;
        let ro = v.read_only || m.read_only;
        match &v.kind {
            VolumeKind::Host {
                source,
                recursive,
                propagation,
                recursive_read_only,
                ..
            } => {
                let src = PathBuf::from(source);
                std::fs::metadata(&src).map_err(|e| VolumeError::HostSource {
                    volume: v.name.clone(),
                    source_path: source.clone(),
                    source: e,
                })?;
                let mut b = bind(&m.target, &src, ro, *recursive);
                if let Some(mut o) = b.options().clone() {
                    if let Some(p) = propagation
                        .as_ref()
                        .filter(|p| matches!(p.as_str(), "rprivate" | "rslave" | "rshared"))
                    {
                        o.push(p.clone());
                    }
                    if *recursive_read_only {
                        o.push("rro".into());
                    }
                    b.set_options(Some(o));
                }
                out.push(b);
            }
            VolumeKind::Empty { .. } => {
                out.push(bind(
                    &m.target,
                    &pod_dir.join(paths::volume_dir(&v.name)),
                    ro,
                    true,
                ));
            }
        }
    }
    Ok(out)
}

/// resolv.conf as rkt wrote it: `nameserver` lines, then `search`, `options`, `domain`.
pub fn resolv_conf(d: &DnsConfig) -> String {
    let mut s = String::new();
    for n in &d.servers {
        s.push_str(&format!("nameserver {n}\n"));
    }
    if !d.search.is_empty() {
        s.push_str(&format!("search {}\n", d.search.join(" ")));
    }
    if !d.options.is_empty() {
        s.push_str(&format!("options {}\n", d.options.join(" ")));
    }
    if let Some(dom) = &d.domain {
        s.push_str(&format!("domain {dom}\n"));
    }
    s
}

const HOSTS_FALLBACK: &str =
    "127.0.0.1\tlocalhost localhost.domain localhost4 localhost4.localdomain4";
const HOSTS_FALLBACK6: &str = "::1\tip6-localhost ip6-loopback localhost6 localhost6.localdomain6";

/// Write the app's /etc files into `files_dir` and return their mounts; create the /etc/mtab
/// symlink in the rootfs when it is missing. `dns` is what resolv.conf comes from (see
/// [`crate::network::effective_dns`]); None leaves the image's file alone.
pub fn etc_mounts(
    files_dir: &Path,
    rootfs: &Root,
    rc: &RuntimeConfig,
    dns: Option<&DnsConfig>,
    readonly_rootfs: bool,
    owner: Option<u32>,
) -> Result<Vec<Mount>, Error> {
    let mut out = Vec::new();
    std::fs::create_dir_all(files_dir).map_err(|e| Error::io(files_dir, e))?;
    // `owner`: the host id of the pod's root with private users, whose files these are
    let write = |name: &str, data: String| -> Result<PathBuf, Error> {
        let p = files_dir.join(name);
        std::fs::write(&p, data).map_err(|e| Error::io(&p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(&p, e))?;
        if let Some(id) = owner {
            std::os::unix::fs::chown(&p, Some(id), Some(id)).map_err(|e| Error::io(&p, e))?;
        }
        Ok(p)
    };
    let hn = write("hostname", format!("{}\n", rc.hostname))?;
    out.push(bind("/etc/hostname", &hn, false, false));

    // the image's /etc/hosts, looked at inside the rootfs only; one its links lead out of is an
    // error, not "absent"
    let image_hosts = match rootfs.stat("/etc/hosts") {
        Ok(_) => true,
        Err(e) if is_absent(e) => false,
        Err(e) => return Err(rootfs.err("checking", "/etc/hosts", e)),
    };
    if rc.hosts_entries.iter().any(|h| h == "host") {
        out.push(bind("/etc/hosts", Path::new("/etc/hosts"), true, false));
    } else if !rc.hosts_entries.is_empty() {
        let mut s = format!("{HOSTS_FALLBACK} {}\n{HOSTS_FALLBACK6}\n", rc.hostname);
        for e in &rc.hosts_entries {
            if let Some((ip, name)) = e.split_once('=') {
                s.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        let p = write("hosts", s)?;
        out.push(bind("/etc/hosts", &p, false, false));
    } else if !image_hosts {
        let p = write(
            "hosts",
            format!("{HOSTS_FALLBACK} {}\n{HOSTS_FALLBACK6}\n", rc.hostname),
        )?;
        out.push(bind("/etc/hosts", &p, false, false));
    }

    if let Some(d) = dns {
        if d.servers.iter().any(|s| s == "host") {
            out.push(bind(
                "/etc/resolv.conf",
                Path::new("/etc/resolv.conf"),
                true,
                false,
            ));
        } else if !d.servers.iter().any(|s| s == "none") {
            let p = write("resolv.conf", resolv_conf(d))?;
            out.push(bind("/etc/resolv.conf", &p, false, false));
        }
    }

    // best effort, as rkt: an image whose /etc cannot be made or resolved inside the rootfs
    // simply gets no /etc/mtab link (never one made outside it)
    if !readonly_rootfs && rootfs.lstat("/etc/mtab").is_err_and(|e| e == Errno::NOENT) {
        if let Err(e) = rootfs
            .mkdir_all("/etc", Mode::from_raw_mode(0o755))
            .and_then(|_| rootfs.symlink("../proc/self/mounts", "/etc/mtab"))
        {
            tracing::debug!("no /etc/mtab link in {}: {e}", rootfs.path().display());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn open_dir(p: &Path) -> OwnedFd {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn copy_tree_keeps_links_modes_and_skips_its_output() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("f"), "data").unwrap();
        std::fs::set_permissions(src.join("f"), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::write(src.join("sub/g"), "g").unwrap();
        std::os::unix::fs::symlink("/etc", src.join("link")).unwrap();
        nix::unistd::mkfifo(&src.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        // the output inside the input: must not be copied into itself
        let dst = src.join("out");
        std::fs::create_dir(&dst).unwrap();
        let (s, t) = (open_dir(&src), open_dir(&dst));
        let md = std::fs::metadata(&dst).unwrap();
        copy_tree(&s, &t, (md.dev(), md.ino()), 0).unwrap();
        let mut got: Vec<String> = std::fs::read_dir(&dst)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        got.sort();
        assert_eq!(got, ["f", "link", "sub"]);
        assert_eq!(std::fs::read_to_string(dst.join("f")).unwrap(), "data");
        assert_eq!(
            std::fs::metadata(dst.join("f")).unwrap().mode() & 0o7777,
            0o640
        );
        assert_eq!(std::fs::read_to_string(dst.join("sub/g")).unwrap(), "g");
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            Path::new("/etc")
        );
    }

    #[test]
    fn copy_tree_depth_is_bounded() {
        let d = tempfile::tempdir().unwrap();
        let mut p = d.path().join("src");
        for _ in 0..MAX_COPY_DEPTH + 2 {
            p = p.join("d");
        }
        std::fs::create_dir_all(&p).unwrap();
        let dst = d.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        let md = std::fs::metadata(&dst).unwrap();
        let (path, e) = copy_tree(
            &open_dir(&d.path().join("src")),
            &open_dir(&dst),
            (md.dev(), md.ino()),
            0,
        )
        .unwrap_err();
        assert_eq!(e, Errno::LOOP);
        assert!(path.starts_with("d/d/d/"), "{path}");
    }
}
