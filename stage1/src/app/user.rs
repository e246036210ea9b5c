//! Resolve `--user` / `--group` inside an app's root filesystem (appc rules): numeric id, a name
//! from the rootfs' /etc/passwd or /etc/group, or `/path` = owner of that file in the rootfs;
//! and the user's supplementary groups from the rootfs' /etc/group ([`supplementary_gids`]).
//! Every file is read through [`Root`] (`openat2(RESOLVE_IN_ROOT)`), so a link in the image can
//! never make stage1 read the host's files; ids above [`MAX_ID`] are refused wherever they come
//! from (2^32-1 is `(uid_t)-1`, which `setresuid` takes as "leave unchanged", i.e. root).

use crate::security::inroot::{is_absent, Root};
use crate::Error;

/// The largest uid or gid an app may run as (2^31-1, as runc).
pub const MAX_ID: u32 = i32::MAX as u32;

/// What can be wrong with an app's user or group.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// An id above [`MAX_ID`].
    #[error("{what} {id} is above the largest allowed id {MAX_ID}")]
    IdTooLarge {
        /// Where it came from.
        what: String,
        /// The id as given.
        id: String,
    },
    /// A user name the image's /etc/passwd does not list.
    #[error("user {0:?} not found in the image's /etc/passwd")]
    NoSuchUser(String),
    /// A group name the image's /etc/group does not list.
    #[error("group {0:?} not found in the image's /etc/group")]
    NoSuchGroup(String),
    /// An id the pod's user namespace does not map (`--private-users`).
    #[error("{what} {id} is outside the pod's user namespace (ids 0 to {last})")]
    Unmapped {
        /// Where it came from.
        what: String,
        /// The id.
        id: u32,
        /// The last id the namespace maps.
        last: u32,
    },
}

/// The host id of pod id `id`: itself without private users, shifted by `range` with them. An
/// id the pod's user namespace does not map is refused: nothing could run as it or own a file
/// as it (the kernel refuses unmapped ids).
pub fn host_id(what: &str, id: u32, range: Option<&stage1_abi::IdRange>) -> Result<u32, Error> {
    match range {
        None => Ok(id),
        Some(r) => r.host_id(id).ok_or_else(|| {
            UserError::Unmapped {
                what: what.to_string(),
                id,
                last: r.count - 1,
            }
            .into()
        }),
    }
}

/// Refuse an id above [`MAX_ID`]; `what` names where it came from.
pub fn check_id(what: &str, id: u32) -> Result<u32, Error> {
    if id > MAX_ID {
        return Err(UserError::IdTooLarge {
            what: what.to_string(),
            id: id.to_string(),
        }
        .into());
    }
    Ok(id)
}

/// A numeric id (all digits), or None for a name or path; a number too large for a u32 is an
/// error rather than a name to look up.
fn numeric(what: &str, s: &str) -> Result<Option<u32>, Error> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u64>() {
        Ok(n) if n <= u64::from(MAX_ID) => Ok(Some(n as u32)),
        _ => Err(UserError::IdTooLarge {
            what: what.to_string(),
            id: s.to_string(),
        }
        .into()),
    }
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

/// The fields of the line of `file` (in the root) whose first field is `name`; None when the
/// file or the line is missing. A file the root's links lead out of is an error.
fn lookup_file(root: &Root, file: &str, name: &str) -> Result<Option<Vec<String>>, Error> {
    let data = match root.read_file(file) {
        Ok(d) => d,
        Err(e) if is_absent(e) => return Ok(None),
        Err(e) => return Err(root.err("reading", file, e)),
    };
    Ok(String::from_utf8_lossy(&data)
        .lines()
        .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == name))
}

/// Look `name` up in the rootfs' /etc/passwd.
pub fn passwd_entry(root: &Root, name: &str) -> Result<Option<PasswdEntry>, Error> {
    Ok(lookup_file(root, "/etc/passwd", name)?.and_then(|f| {
        Some(PasswdEntry {
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).cloned().unwrap_or_else(|| "/".into()),
        })
    }))
}

/// Owner (uid, gid) of `path` in the root (symlinks followed inside it).
fn owner_of(root: &Root, what: &str, path: &str) -> Result<(u32, u32), Error> {
    let st = root
        .stat(path)
        .map_err(|e| root.err(&format!("{what}: owner of"), path, e))?;
    Ok((st.st_uid, st.st_gid))
}

/// Resolve the app's user and group to (uid, gid).
pub fn resolve(root: &Root, user: &str, group: &str) -> Result<(u32, u32), Error> {
    let mut pw_gid = None;
    let uid = if user.is_empty() {
        0
    } else if let Some(n) = numeric("user", user)? {
        if group.is_empty() {
            // a uid without a group: its primary group in the image, as docker's --user=UID
            pw_gid = entries(root, "/etc/passwd")?
                .into_iter()
                .find(|f| f.len() >= 4 && f[2].parse::<u32>().ok() == Some(n))
                .and_then(|f| f[3].parse().ok());
        }
        n
    } else if user.starts_with('/') {
        owner_of(root, "user", user)?.0
    } else {
        let e = passwd_entry(root, user)?.ok_or_else(|| UserError::NoSuchUser(user.to_string()))?;
        pw_gid = Some(e.gid);
        e.uid
    };
    let gid = if group.is_empty() {
        pw_gid.unwrap_or(0)
    } else if let Some(n) = numeric("group", group)? {
        n
    } else if group.starts_with('/') {
        owner_of(root, "group", group)?.1
    } else {
        lookup_file(root, "/etc/group", group)?
            .and_then(|f| f.get(2)?.parse().ok())
            .ok_or_else(|| UserError::NoSuchGroup(group.to_string()))?
    };
    Ok((
        check_id(&format!("user {user:?}: uid"), uid)?,
        check_id(&format!("group {group:?}: gid"), gid)?,
    ))
}

/// The lines of `file` (in the root) split into fields; empty when the file is missing. A file
/// the root's links lead out of, or one over the size bound of [`Root::read_file`], is an
/// error.
fn entries(root: &Root, file: &str) -> Result<Vec<Vec<String>>, Error> {
    let data = match root.read_file(file) {
        Ok(d) => d,
        Err(e) if is_absent(e) => return Ok(Vec::new()),
        Err(e) => return Err(root.err("reading", file, e)),
    };
    Ok(String::from_utf8_lossy(&data)
        .lines()
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect())
}

/// The name the image's /etc/passwd gives the app's user, whose group memberships it gets:
/// `user` itself when it is a name, the first entry with uid `uid` when it is a number; None
/// for the default user (empty), an owner path, or a uid the file does not list.
fn user_name(root: &Root, user: &str, uid: u32) -> Result<Option<String>, Error> {
    if user.is_empty() || user.starts_with('/') {
        return Ok(None);
    }
    if numeric("user", user)?.is_none() {
        return Ok(Some(user.to_string()));
    }
    Ok(entries(root, "/etc/passwd")?
        .into_iter()
        .find(|f| f.len() >= 3 && f[2].parse::<u32>().ok() == Some(uid))
        .map(|mut f| f.swap_remove(0)))
}

/// The app's supplementary groups, as docker, runc and the kubelet's default `Merge` policy
/// give them: every group of the image's /etc/group whose member list names the app's user
/// (`user_name`), then the manifest's `extra`; each gid once, in that order, the primary
/// `gid` left out. A listed group's gid above [`MAX_ID`] is refused like any other id.
pub fn supplementary_gids(
    root: &Root,
    user: &str,
    uid: u32,
    gid: u32,
    extra: &[u32],
) -> Result<Vec<u32>, Error> {
    let mut out: Vec<u32> = Vec::new();
    if let Some(name) = user_name(root, user, uid)? {
        for f in entries(root, "/etc/group")? {
            let (Some(group), Some(g), Some(members)) = (f.first(), f.get(2), f.get(3)) else {
                continue;
            };
            if !members.split(',').any(|m| m.trim() == name) {
                continue;
            }
            if g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()) {
                continue; // not a group line
            }
            // all digits: too large for a u32 is as refused as above MAX_ID
            let g = g.parse::<u32>().unwrap_or(u32::MAX);
            out.push(check_id(
                &format!("group {group:?} of user {name:?}: gid"),
                g,
            )?);
        }
    }
    out.extend(extra);
    let mut seen = std::collections::HashSet::from([gid]);
    out.retain(|g| seen.insert(*g));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn image() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1001:u:/home/user:/bin/sh\n\
             big:x:4294967295:0::/:/bin/sh\nbiggid:x:5:2147483648::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/group"),
            "root:x:0:\nstaff:x:50:\nbig:x:4294967295:\n",
        )
        .unwrap();
        let root = Root::open(r).unwrap();
        (d, root)
    }

    #[test]
    fn resolves_names_numbers_and_paths() {
        let (d, r) = image();
        assert_eq!(resolve(&r, "user", "").unwrap(), (1000, 1001));
        assert_eq!(resolve(&r, "user", "staff").unwrap(), (1000, 50));
        assert_eq!(resolve(&r, "42", "43").unwrap(), (42, 43));
        let me = std::fs::metadata(d.path().join("etc/passwd")).unwrap();
        assert_eq!(
            resolve(&r, "/etc/passwd", "/etc/passwd").unwrap(),
            (me.uid(), me.gid())
        );
        assert!(resolve(&r, "nobody", "")
            .unwrap_err()
            .to_string()
            .contains("not found"));
    }

    #[test]
    fn ids_above_2_31_are_refused() {
        let (_d, r) = image();
        assert_eq!(
            resolve(&r, "2147483647", "2147483647").unwrap(),
            (MAX_ID, MAX_ID)
        );
        for (u, g) in [
            ("4294967295", ""),
            ("2147483648", "0"),
            ("0", "4294967295"),
            ("99999999999999999999", "0"),
            ("big", ""),
            ("biggid", ""),
            ("0", "big"),
        ] {
            let e = resolve(&r, u, g).unwrap_err().to_string();
            assert!(
                e.contains("above the largest allowed id 2147483647"),
                "{u}:{g}: {e}"
            );
        }
        assert!(check_id("x", 4294967295).is_err());
        assert_eq!(check_id("x", 7).unwrap(), 7);
    }

    #[test]
    fn links_out_of_the_root_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("img");
        std::fs::create_dir_all(img.join("etc")).unwrap();
        // a host dir with a passwd the image does not have
        let host = d.path().join("host");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("passwd"), "hostonly:x:4242:4242::/:/bin/sh\n").unwrap();
        // /etc/passwd -> /p/passwd, /p -> c0 -> c1 -> ... -> c44 -> <host>
        std::os::unix::fs::symlink("/p/passwd", img.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("c0", img.join("p")).unwrap();
        for i in 0..45 {
            let next = if i == 44 {
                host.to_str().unwrap().to_string()
            } else {
                format!("c{}", i + 1)
            };
            std::os::unix::fs::symlink(next, img.join(format!("c{i}"))).unwrap();
        }
        let r = Root::open(&img).unwrap();
        let e = resolve(&r, "hostonly", "").unwrap_err().to_string();
        assert!(e.contains("too many levels of symbolic links"), "{e}");
        // a short absolute link to the host file is the image's (missing) file
        std::fs::remove_file(img.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(host.join("passwd"), img.join("etc/passwd")).unwrap();
        let e = resolve(&r, "hostonly", "").unwrap_err().to_string();
        assert!(e.contains("not found in the image's /etc/passwd"), "{e}");
        // `..` stops at the root
        std::fs::remove_file(img.join("etc/passwd")).unwrap();
        std::fs::write(img.join("passwd"), "inimg:x:7:8::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("../../../../../passwd", img.join("etc/passwd")).unwrap();
        assert_eq!(resolve(&r, "inimg", "").unwrap(), (7, 8));
        // an owner path through the chain fails closed
        let e = resolve(&r, "/c0/passwd", "").unwrap_err().to_string();
        assert!(e.contains("too many levels"), "{e}");
    }

    fn with_groups(passwd: &str, group: &str) -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(d.path().join("etc/group"), group).unwrap();
        let r = Root::open(d.path()).unwrap();
        (d, r)
    }

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n\
                          other:x:1001:1001::/:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nwheel:x:10:root,app\naudio:x:29:other, app\n\
                         video:x:44:other\ndup:x:29:app\nbroken line\nself:x:1000:app\n";

    #[test]
    fn named_and_numeric_users_get_their_image_groups_then_the_manifests() {
        let (_d, r) = with_groups(PASSWD, GROUP);
        // every group naming the user, in file order, each gid once, not the primary
        assert_eq!(
            supplementary_gids(&r, "app", 1000, 1000, &[]).unwrap(),
            [10, 29]
        );
        // a uid the passwd file names gets that user's groups
        assert_eq!(
            supplementary_gids(&r, "1000", 1000, 1000, &[]).unwrap(),
            [10, 29]
        );
        // the manifest's are added after them, deduplicated, without the primary gid
        assert_eq!(
            supplementary_gids(&r, "app", 1000, 1000, &[5, 10, 1000, 6, 5]).unwrap(),
            [10, 29, 5, 6]
        );
        // another primary group (--group) is left out, the user's own group is then listed
        assert_eq!(
            supplementary_gids(&r, "app", 1000, 10, &[]).unwrap(),
            [29, 1000]
        );
        assert_eq!(
            supplementary_gids(&r, "other", 1001, 1001, &[]).unwrap(),
            [29, 44]
        );
        // no user named: only the manifest's
        assert_eq!(supplementary_gids(&r, "4242", 4242, 0, &[7]).unwrap(), [7]);
        assert_eq!(supplementary_gids(&r, "", 0, 0, &[7, 0]).unwrap(), [7]);
        assert_eq!(
            supplementary_gids(&r, "/etc/passwd", 0, 0, &[]).unwrap(),
            [0u32; 0]
        );
        // a user in no group, a missing /etc/group
        assert_eq!(supplementary_gids(&r, "0", 0, 0, &[]).unwrap(), [10]);
        let (_d, r) = with_groups(PASSWD, "");
        assert_eq!(
            supplementary_gids(&r, "app", 1000, 1000, &[3]).unwrap(),
            [3]
        );
        let d = tempfile::tempdir().unwrap();
        let r = Root::open(d.path()).unwrap();
        assert_eq!(
            supplementary_gids(&r, "app", 1000, 1000, &[3]).unwrap(),
            [3]
        );
    }

    #[test]
    fn image_groups_above_2_31_are_refused() {
        let (_d, r) = with_groups(PASSWD, "big:x:4294967295:app\nnotme:x:4294967295:other\n");
        let e = supplementary_gids(&r, "app", 1000, 1000, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("above the largest allowed id"), "{e}");
        assert!(e.contains("\"big\""), "{e}");
        let (_d, r) = with_groups(PASSWD, "huge:x:99999999999999999999:app\n");
        assert!(supplementary_gids(&r, "app", 1000, 1000, &[]).is_err());
    }

    #[test]
    fn etc_group_is_read_inside_the_root_and_bounded() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("img");
        std::fs::create_dir_all(img.join("etc")).unwrap();
        std::fs::write(img.join("etc/passwd"), PASSWD).unwrap();
        // a host group file the image links to by absolute path: the image's (missing) file
        let host = d.path().join("group");
        std::fs::write(&host, "hostonly:x:4242:app\n").unwrap();
        std::os::unix::fs::symlink(&host, img.join("etc/group")).unwrap();
        let r = Root::open(&img).unwrap();
        assert_eq!(
            supplementary_gids(&r, "app", 1000, 1000, &[]).unwrap(),
            [0u32; 0]
        );
        // `..` stops at the root
        std::fs::remove_file(img.join("etc/group")).unwrap();
        std::fs::write(img.join("group"), "inimg:x:77:app\n").unwrap();
        std::os::unix::fs::symlink("../../../../group", img.join("etc/group")).unwrap();
        assert_eq!(
            supplementary_gids(&r, "app", 1000, 1000, &[]).unwrap(),
            [77]
        );
        // a FIFO is refused, not read (it would block)
        std::fs::remove_file(img.join("etc/group")).unwrap();
        nix::unistd::mkfifo(&img.join("etc/group"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(supplementary_gids(&r, "app", 1000, 1000, &[]).is_err());
        // a file over the read bound is refused, not read whole
        std::fs::remove_file(img.join("etc/group")).unwrap();
        let f = std::fs::File::create(img.join("etc/group")).unwrap();
        f.set_len(crate::security::inroot::MAX_READ + 1).unwrap();
        let e = supplementary_gids(&r, "app", 1000, 1000, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/group"), "{e}");
    }
}
