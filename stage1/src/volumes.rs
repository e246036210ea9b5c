//! Volumes and the per-app `/etc` files stage1 provides (hostname, hosts fallback, resolv.conf,
//! the /etc/mtab symlink), as OCI mount objects.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use stage1_abi::{paths, App, DnsConfig, PodManifest, RuntimeConfig, VolumeKind};

use crate::user::resolve_in_root;
use crate::Error;

/// Create every empty volume's backing dir (`volumes/<name>`) that does not exist yet, with its
/// mode and owner, populated from the image when asked.
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
        if dir.exists() {
            continue;
        }
        std::fs::create_dir_all(pod_dir.join(paths::VOLUMES_DIR))
            .map_err(|e| Error::io(&dir, e))?;
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        if let Some((app, path)) = populate_from {
            let src = resolve_in_root(&pod_dir.join(paths::app_rootfs(app)), path);
            if src.is_dir() {
                copy_tree(&src, &dir)?;
            }
        }
        std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid)).map_err(|e| Error::io(&dir, e))?;
        let m = if *mode == 0 { 0o755 } else { *mode };
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m))
            .map_err(|e| Error::io(&dir, e))?;
    }
    Ok(())
}

/// Copy the contents of `src` into the existing dir `dst`, keeping modes, owners and symlinks.
fn copy_tree(src: &Path, dst: &Path) -> Result<(), Error> {
    for ent in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
        let ent = ent.map_err(|e| Error::io(src, e))?;
        let from = ent.path();
        let to = dst.join(ent.file_name());
        let md = std::fs::symlink_metadata(&from).map_err(|e| Error::io(&from, e))?;
        let ft = md.file_type();
        if ft.is_symlink() {
            let t = std::fs::read_link(&from).map_err(|e| Error::io(&from, e))?;
            std::os::unix::fs::symlink(t, &to).map_err(|e| Error::io(&to, e))?;
        } else if ft.is_dir() {
            std::fs::create_dir(&to).map_err(|e| Error::io(&to, e))?;
            copy_tree(&from, &to)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
        } else {
            continue;
        }
        let _ = std::os::unix::fs::lchown(&to, Some(md.uid()), Some(md.gid()));
        if !ft.is_symlink() {
            let _ = std::fs::set_permissions(&to, std::fs::Permissions::from_mode(md.mode()));
        }
    }
    Ok(())
}

fn bind(dest: &str, src: &Path, ro: bool, recursive: bool) -> Value {
    let mut opts = vec![if recursive { "rbind" } else { "bind" }];
    if ro {
        opts.push("ro");
    }
    json!({"destination": dest, "type": "bind", "source": src, "options": opts})
}

/// The app's volume mounts.
pub fn volume_mounts(pod_dir: &Path, pod: &PodManifest, app: &App) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for m in &app.mounts {
        let v = pod
            .volumes
            .iter()
            .find(|v| v.name == m.volume)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "mount point {:?} of app {:?} names undefined volume {:?}",
                    m.target, app.name, m.volume
                ))
            })?;
        let ro = v.read_only || m.read_only;
        match &v.kind {
            VolumeKind::Host { source, recursive } => {
                let src = PathBuf::from(source);
                std::fs::metadata(&src).map_err(|e| {
                    Error::Invalid(format!("volume {:?}: host source {source:?}: {e}", v.name))
                })?;
                out.push(bind(&m.target, &src, ro, *recursive));
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
    rootfs: &Path,
    rc: &RuntimeConfig,
    dns: Option<&DnsConfig>,
    readonly_rootfs: bool,
) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    std::fs::create_dir_all(files_dir).map_err(|e| Error::io(files_dir, e))?;
    let write = |name: &str, data: String| -> Result<PathBuf, Error> {
        let p = files_dir.join(name);
        std::fs::write(&p, data).map_err(|e| Error::io(&p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(&p, e))?;
        Ok(p)
    };
    let hn = write("hostname", format!("{}\n", rc.hostname))?;
    out.push(bind("/etc/hostname", &hn, false, false));

    let image_hosts = resolve_in_root(rootfs, "/etc/hosts").exists();
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

    let mtab = resolve_in_root(rootfs, "/etc/mtab");
    if !readonly_rootfs && std::fs::symlink_metadata(&mtab).is_err() {
        if let Some(parent) = mtab.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::os::unix::fs::symlink("../proc/self/mounts", &mtab);
    }
    Ok(out)
}
