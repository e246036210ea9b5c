//! Overlay mounts of app root filesystems, behind a small trait so the pod state machine can be
//! unit-tested without root.

use stage1_abi::IdRange;
use std::io;
use std::path::{Path, PathBuf};

/// The mount operations stage0 needs.
pub trait Mounter {
    /// Mount an overlay at `target`: `lower` top first, `upper` and `work` on the same fs.
    /// With `idmap`, every lower dir is seen through an idmapped mount of that mapping
    /// (`--private-users`): its files, owned by N on disk, are owned by `shift + N` in the
    /// overlay, and nothing is copied or chowned.
    fn mount_overlay(
        &self,
        lower: &[PathBuf],
        upper: &Path,
        work: &Path,
        target: &Path,
        idmap: Option<IdRange>,
    ) -> io::Result<()>;
    /// Unmount `target` (lazily if it is busy). Not mounted is success.
    fn unmount(&self, target: &Path) -> io::Result<()>;
    /// Whether something is mounted exactly at `target`.
    fn is_mounted(&self, target: &Path) -> io::Result<bool>;
}

/// Mount data must fit in one page.
const MAX_MOUNT_DATA: usize = 4096;

/// Overlay mount data for the given dirs. Paths containing `,` or `:` cannot be passed to
/// overlayfs; they are rejected.
pub fn overlay_options(lower: &[PathBuf], upper: &Path, work: &Path) -> io::Result<String> {
    let check = |p: &Path| -> io::Result<String> {
        let s = p.to_str().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not UTF-8", p.display()),
            )
        })?;
        if s.contains([',', ':']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{s}: overlayfs cannot use a path with ',' or ':'"),
            ));
        }
        Ok(s.to_string())
    };
    let lower = lower
        .iter()
        .map(|p| check(p))
        .collect::<io::Result<Vec<_>>>()?
        .join(":");
    Ok(format!(
        "lowerdir={lower},upperdir={},workdir={},{VOLATILE}",
        check(upper)?,
        check(work)?
    ))
}

/// The overlay option that skips syncing the upper file system (Linux ≥ 5.10). Without it, the
/// unmount at every pod's teardown runs `syncfs` on the whole file system under the data dir and
/// waits for everything dirty there, the host's writes included (tens to hundreds of ms on a
/// busy host). An app's writable layer is ephemeral: a pod never runs again and gc deletes it,
/// so rkt mounts it volatile, as podman does for `--rm` containers. Data that must survive a
/// crash goes to a volume, which is not on the overlay.
pub const VOLATILE: &str = "volatile";

/// Where overlayfs marks a work dir that was mounted [`VOLATILE`]; it refuses to mount that
/// work dir again while the mark exists.
pub fn volatile_mark(work: &Path) -> PathBuf {
    work.join("work/incompat/volatile")
}

/// Before mounting an app's overlay again (`rkt run-prepared` after a reboot, `rkt export` of an
/// exited pod): drop overlayfs' scratch dir `work/work`, which holds the volatile mark. Returns
/// whether the mark predates the current boot (`booted_at`, asked only when there is a mark):
/// then the host restarted after the layer was mounted, and if that was a crash, what the apps
/// wrote last may be incomplete.
pub fn clear_volatile_mark(
    work: &Path,
    booted_at: impl FnOnce() -> Option<std::time::SystemTime>,
) -> io::Result<bool> {
    let mark = volatile_mark(work);
    let made = match std::fs::symlink_metadata(&mark) {
        Ok(m) => m.modified().ok(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    std::fs::remove_dir_all(work.join("work"))?;
    Ok(matches!((made, booted_at()), (Some(m), Some(b)) if m < b))
}

/// When the host booted (`btime` of `/proc/stat`).
pub fn booted_at() -> Option<std::time::SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let secs = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// One line of `/proc/self/mountinfo` (proc(5)): the fields stage0 reads, octal escapes
/// (`\040` for a space, …) decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Field 4: the root of the mount within its filesystem.
    pub root: PathBuf,
    /// Field 5: the mount point.
    pub mount_point: PathBuf,
    /// The filesystem type (first field after ` - `).
    pub fstype: String,
}

/// Parse `/proc/self/mountinfo` content: the one parser of stage0. Lines that are not
/// mountinfo lines are skipped.
pub fn parse_mountinfo(mountinfo: &str) -> Vec<MountEntry> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut f = pre.split(' ');
            let root = f.nth(3)?;
            let mount_point = f.next()?;
            Some(MountEntry {
                root: unescape(root),
                mount_point: unescape(mount_point),
                fstype: post.split(' ').next()?.to_string(),
            })
        })
        .collect()
}

/// Mount points listed in `/proc/self/mountinfo` content.
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    parse_mountinfo(mountinfo)
        .into_iter()
        .map(|e| e.mount_point)
        .collect()
}

/// Decode mountinfo's octal escapes; the bytes are kept as they are (a path need not be UTF-8).
fn unescape(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The host's mount table through nix.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostMounter;

impl Mounter for HostMounter {
    fn mount_overlay(
        &self,
        lower: &[PathBuf],
        upper: &Path,
        work: &Path,
        target: &Path,
        idmap: Option<IdRange>,
    ) -> io::Result<()> {
        match idmap {
            None => mount_overlay(lower, upper, work, target),
            Some(r) => mount_overlay_idmapped(lower, upper, work, target, r),
        }
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        use nix::errno::Errno;
        use nix::mount::{umount2, MntFlags};
        match umount2(target, MntFlags::empty()) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EBUSY) => match umount2(target, MntFlags::MNT_DETACH) {
                Ok(()) | Err(Errno::EINVAL) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    fn is_mounted(&self, target: &Path) -> io::Result<bool> {
        let mi = std::fs::read_to_string("/proc/self/mountinfo")?;
        let t = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
        Ok(mount_points(&mi).contains(&t))
    }
}

/// [`Mounter::mount_overlay`] with idmapped lower layers. Each layer dir gets a detached,
/// read-only clone mapped through a user namespace of `range`'s mapping, attached at
/// `<target's dir>/idmapped/<n>` while the overlay is mounted over them; overlayfs takes its own
/// private clones of its layers (idmap included), so the attached copies are detached again
/// right after, and the dir is left empty. Linux ≥ 5.19 (idmapped lower layers) and a store
/// on a file system that supports idmapped mounts.
fn mount_overlay_idmapped(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    range: IdRange,
) -> io::Result<()> {
    use nix::mount::{umount2, MntFlags};
    let what = |step: &str, e: io::Error| {
        io::Error::new(
            e.kind(),
            format!(
                "{step}: {e} (--private-users needs Linux 5.19 or later and an image store on a                  file system that supports idmapped mounts, such as ext4, xfs, btrfs or tmpfs)"
            ),
        )
    };
    let userns = crate::sys::userns_fd(&range.map_line()).map_err(|e| what("user namespace", e))?;
    let stage = target
        .parent()
        .unwrap_or(Path::new("/"))
        .join(stage1_abi::paths::APP_IDMAPPED);
    std::fs::create_dir_all(&stage)?;
    let mut staged = Vec::with_capacity(lower.len());
    let res = (|| {
        for (i, l) in lower.iter().enumerate() {
            let d = stage.join(i.to_string());
            std::fs::create_dir_all(&d)?;
            let tree = crate::sys::idmapped_tree(l, &userns)
                .map_err(|e| what(&format!("idmapping layer {}", l.display()), e))?;
            crate::sys::attach_mount(&tree, &d)?;
            staged.push(d);
        }
        mount_overlay(&staged, upper, work, target)
    })();
    for d in staged.iter().rev() {
        if let Err(e) = umount2(d, MntFlags::MNT_DETACH) {
            tracing::warn!("detaching idmapped layer {}: {e}", d.display());
        }
    }
    for i in 0..lower.len() {
        let _ = std::fs::remove_dir(stage.join(i.to_string()));
    }
    let _ = std::fs::remove_dir(&stage);
    res
}

/// Mount an overlay with plain (not idmapped) lower dirs.
fn mount_overlay(lower: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> io::Result<()> {
    use nix::mount::{mount, MsFlags};
    let mount_with = |data: &str| {
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(data),
        )
        .map_err(io::Error::from)
    };
    // Kernels before 5.10 do not know `volatile` (EINVAL): mount without it there.
    let mount_with = |data: &str| match mount_with(data) {
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EINVAL as i32) => {
            match data.strip_suffix(&format!(",{VOLATILE}")) {
                Some(plain) => mount_with(plain).map_err(|_| e),
                None => Err(e),
            }
        }
        r => r,
    };
    let data = overlay_options(lower, upper, work)?;
    if data.len() < MAX_MOUNT_DATA {
        return mount_with(&data);
    }
    // The kernel takes at most one page of mount data: name the layers through short
    // symlinks `l/<n>` next to the upper dir (as Docker's overlay2 does) and mount from
    // there with relative paths.
    let base = upper.parent().unwrap_or(Path::new("/")).to_path_buf();
    let links = base.join("l");
    if links.exists() {
        std::fs::remove_dir_all(&links)?;
    }
    std::fs::create_dir(&links)?;
    let mut rel = Vec::with_capacity(lower.len());
    for (i, l) in lower.iter().enumerate() {
        std::os::unix::fs::symlink(std::path::absolute(l)?, links.join(i.to_string()))?;
        rel.push(PathBuf::from(format!("l/{i}")));
    }
    let abs = |p: &Path| std::path::absolute(p);
    let short = overlay_options(&rel, &abs(upper)?, &abs(work)?)?;
    if short.len() >= MAX_MOUNT_DATA {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("overlay options too long ({} layers)", lower.len()),
        ));
    }
    let parent = base;
    let cwd = std::env::current_dir()?;
    std::env::set_current_dir(&parent)?;
    let res = mount_with(&short);
    std::env::set_current_dir(cwd)?;
    res
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::cell::RefCell;

    /// Records mounts; fails mounting any target whose path contains `fail_on`.
    #[derive(Default)]
    pub struct FakeMounter {
        pub mounted: RefCell<Vec<PathBuf>>,
        pub fail_on: Option<String>,
    }

    impl Mounter for FakeMounter {
        fn mount_overlay(
            &self,
            lower: &[PathBuf],
            upper: &Path,
            work: &Path,
            target: &Path,
            _idmap: Option<IdRange>,
        ) -> io::Result<()> {
            overlay_options(lower, upper, work)?;
            if let Some(f) = &self.fail_on {
                if target.to_string_lossy().contains(f.as_str()) {
                    return Err(io::Error::other("fake mount failure"));
                }
            }
            assert!(target.is_dir() && upper.is_dir() && work.is_dir());
            self.mounted.borrow_mut().push(target.to_path_buf());
            Ok(())
        }
        fn unmount(&self, target: &Path) -> io::Result<()> {
            self.mounted.borrow_mut().retain(|p| p != target);
            Ok(())
        }
        fn is_mounted(&self, target: &Path) -> io::Result<bool> {
            Ok(self.mounted.borrow().iter().any(|p| p == target))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_join_lower_dirs_top_first() {
        let o = overlay_options(
            &["/l/top".into(), "/l/base".into()],
            Path::new("/p/upper"),
            Path::new("/p/work"),
        )
        .unwrap();
        assert_eq!(
            o,
            "lowerdir=/l/top:/l/base,upperdir=/p/upper,workdir=/p/work,volatile"
        );
        assert!(overlay_options(&["/a:b".into()], Path::new("/u"), Path::new("/w")).is_err());
    }

    #[test]
    fn mountinfo_is_decoded() {
        let mi =
            "36 35 98:0 / /mnt/a\\040b rw - ext3 /dev/root rw\n37 35 0:1 / /x rw - tmpfs t rw\n";
        assert_eq!(
            mount_points(mi),
            vec![PathBuf::from("/mnt/a b"), PathBuf::from("/x")]
        );
        // optional fields, a tab, a backslash, a non-UTF-8 byte, a root that is not /
        let mi = "40 1 0:2 /sub\\134d /m\\011t\\377 rw shared:1 master:2 - cgroup2 c rw\n\
                  garbage line\n";
        let e = parse_mountinfo(mi);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].root, PathBuf::from("/sub\\d"));
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(e[0].mount_point.as_os_str().as_bytes(), b"/m\tt\xff");
        assert_eq!(e[0].fstype, "cgroup2");
    }
    /// Root only: an image with more layers than fit in one page of absolute paths mounts.
    #[test]
    fn many_layers_mount() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let layers_dir = d.path().join("cas/layers");
        let mut lower = Vec::new();
        for i in 0..200 {
            let l = layers_dir.join(format!("{i:0>64}"));
            std::fs::create_dir_all(&l).unwrap();
            std::fs::write(l.join(format!("f{i}")), "x").unwrap();
            lower.push(l);
        }
        let app = d.path().join("apps/a");
        let (up, wk, mnt) = (app.join("upper"), app.join("work"), app.join("rootfs"));
        for x in [&up, &wk, &mnt] {
            std::fs::create_dir_all(x).unwrap();
        }
        assert!(overlay_options(&lower, &up, &wk).unwrap().len() > MAX_MOUNT_DATA);
        let cwd = std::env::current_dir().unwrap();
        HostMounter
            .mount_overlay(&lower, &up, &wk, &mnt, None)
            .unwrap();
        assert_eq!(std::env::current_dir().unwrap(), cwd);
        assert!(mnt.join("f0").exists() && mnt.join("f199").exists());
        assert!(HostMounter.is_mounted(&mnt).unwrap());
        HostMounter.unmount(&mnt).unwrap();
        assert!(!HostMounter.is_mounted(&mnt).unwrap());
    }

    #[test]
    fn volatile_mark_is_cleared_and_dated() {
        use std::time::{Duration, SystemTime};
        let d = tempfile::tempdir().unwrap();
        let work = d.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        // never mounted volatile: nothing to do
        let no_boot_time_needed = || -> Option<SystemTime> { panic!("no mark, no question") };
        assert!(!clear_volatile_mark(&work, no_boot_time_needed).unwrap());
        assert!(work.is_dir());
        let mark = volatile_mark(&work);
        let plant = || std::fs::create_dir_all(&mark).unwrap();
        // marked in this boot
        plant();
        let boot = SystemTime::now() - Duration::from_secs(3600);
        assert!(!clear_volatile_mark(&work, || Some(boot)).unwrap());
        assert!(!work.join("work").exists() && work.is_dir());
        // marked before this boot
        plant();
        let boot = SystemTime::now() + Duration::from_secs(3600);
        assert!(clear_volatile_mark(&work, || Some(boot)).unwrap());
        assert!(!work.join("work").exists());
        assert!(booted_at().unwrap() < SystemTime::now());
    }

    /// Root only: overlayfs refuses a volatile layer's work dir until the mark is cleared.
    #[test]
    fn volatile_layer_mounts_again_after_clearing() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let [low, up, wk, mnt] = ["lower", "upper", "work", "rootfs"].map(|n| d.path().join(n));
        for x in [&low, &up, &wk, &mnt] {
            std::fs::create_dir_all(x).unwrap();
        }
        let m = HostMounter;
        m.mount_overlay(std::slice::from_ref(&low), &up, &wk, &mnt, None)
            .unwrap();
        std::fs::write(mnt.join("f"), "kept").unwrap();
        m.unmount(&mnt).unwrap();
        assert!(volatile_mark(&wk).exists());
        assert!(m
            .mount_overlay(std::slice::from_ref(&low), &up, &wk, &mnt, None)
            .is_err());
        assert!(!clear_volatile_mark(&wk, booted_at).unwrap());
        m.mount_overlay(std::slice::from_ref(&low), &up, &wk, &mnt, None)
            .unwrap();
        assert_eq!(std::fs::read_to_string(mnt.join("f")).unwrap(), "kept");
        m.unmount(&mnt).unwrap();
    }
}
