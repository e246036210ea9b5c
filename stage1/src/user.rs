//! Resolve `--user` / `--group` inside an app's root filesystem (appc rules): numeric id, a name
//! from the rootfs' /etc/passwd or /etc/group, or `/path` = owner of that file in the rootfs.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::Error;

/// Resolve `path` (absolute, as seen inside the app) under `root`, following symlinks but never
/// leaving `root` (a symlink to `/x` means `root/x`; `..` stops at `root`).
pub fn resolve_in_root(root: &Path, path: &str) -> PathBuf {
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    let mut todo: Vec<std::ffi::OsString> = Path::new(path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            parts.pop();
            continue;
        }
        let cur: PathBuf = parts.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        let cand = cur.join(&c);
        match std::fs::read_link(&cand) {
            Ok(target) if hops < 40 => {
                hops += 1;
                if target.is_absolute() {
                    parts.clear();
                }
                let comps: Vec<std::ffi::OsString> = target
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(n) => Some(n.to_os_string()),
                        Component::ParentDir => Some("..".into()),
                        _ => None,
                    })
                    .collect();
                todo.extend(comps.into_iter().rev());
            }
            _ => parts.push(c),
        }
    }
    parts.iter().fold(root.to_path_buf(), |p, c| p.join(c))
}

/// A passwd entry we care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// uid
    pub uid: u32,
    /// primary gid
    pub gid: u32,
    /// home dir
    pub home: String,
}

fn lookup_file(root: &Path, file: &str, name: &str) -> Result<Option<Vec<String>>, Error> {
    let p = resolve_in_root(root, file);
    let data = match std::fs::read_to_string(&p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&p, e)),
    };
    Ok(data
        .lines()
        .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == name))
}

/// Look `name` up in the rootfs' /etc/passwd.
pub fn passwd_entry(root: &Path, name: &str) -> Result<Option<PasswdEntry>, Error> {
    Ok(lookup_file(root, "/etc/passwd", name)?.and_then(|f| {
        Some(PasswdEntry {
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).cloned().unwrap_or_else(|| "/".into()),
        })
    }))
}

/// Resolve the app's user and group to (uid, gid).
pub fn resolve(root: &Path, user: &str, group: &str) -> Result<(u32, u32), Error> {
    let mut pw_gid = None;
    let uid = if user.is_empty() {
        0
    } else if let Ok(n) = user.parse::<u32>() {
        n
    } else if user.starts_with('/') {
        let p = resolve_in_root(root, user);
        std::fs::metadata(&p)
            .map_err(|e| Error::Invalid(format!("user {user:?}: {e}")))?
            .uid()
    } else {
        let e = passwd_entry(root, user)?.ok_or_else(|| {
            Error::Invalid(format!(
                "user {user:?} not found in the image's /etc/passwd"
            ))
        })?;
        pw_gid = Some(e.gid);
        e.uid
    };
    let gid = if group.is_empty() {
        pw_gid.unwrap_or(0)
    } else if let Ok(n) = group.parse::<u32>() {
        n
    } else if group.starts_with('/') {
        let p = resolve_in_root(root, group);
        std::fs::metadata(&p)
            .map_err(|e| Error::Invalid(format!("group {group:?}: {e}")))?
            .gid()
    } else {
        lookup_file(root, "/etc/group", group)?
            .and_then(|f| f.get(2)?.parse().ok())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "group {group:?} not found in the image's /etc/group"
                ))
            })?
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_numbers_and_paths() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1001:u:/home/user:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        assert_eq!(resolve(r, "user", "").unwrap(), (1000, 1001));
        assert_eq!(resolve(r, "user", "staff").unwrap(), (1000, 50));
        assert_eq!(resolve(r, "42", "43").unwrap(), (42, 43));
        let me = std::fs::metadata(r.join("etc/passwd")).unwrap();
        assert_eq!(
            resolve(r, "/etc/passwd", "/etc/passwd").unwrap(),
            (me.uid(), me.gid())
        );
        assert!(resolve(r, "nobody", "")
            .unwrap_err()
            .to_string()
            .contains("not found"));
    }

    #[test]
    fn symlinks_stay_in_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::os::unix::fs::symlink("/../../../etc/shadow", r.join("etc/passwd")).unwrap();
        assert_eq!(resolve_in_root(r, "/etc/passwd"), r.join("etc/shadow"));
        assert_eq!(resolve_in_root(r, "/../x"), r.join("x"));
    }
}
