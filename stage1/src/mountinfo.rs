//! The one reader of `/proc/<pid>/mountinfo` in stage1 (proc(5)): one [`Mount`] per line, its
//! paths unescaped (the kernel writes a space, tab, newline and backslash in a path as `\040`,
//! `\011`, `\012`, `\134`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::Error;

/// One line of a mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Mount id.
    pub id: u32,
    /// Parent mount's id.
    pub parent: u32,
    /// The dir of the file system mounted here (`/` for a whole file system).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,nosuid,…`).
    pub options: String,
    /// File system type (`cgroup`, `cgroup2`, `tmpfs`, …).
    pub fs_type: String,
    /// Mount source.
    pub source: String,
    /// Per-superblock options (for a v1 cgroup hierarchy: its controllers).
    pub super_options: String,
}

/// The mount table `text` (a mountinfo file's content); a malformed line is skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

/// The mount table of the calling process.
pub fn read_self() -> Result<Vec<Mount>, Error> {
    read(Path::new("/proc/self/mountinfo"))
}

/// The mount table in `path` (`/proc/<pid>/mountinfo`).
pub fn read(path: &Path) -> Result<Vec<Mount>, Error> {
    std::fs::read_to_string(path)
        .map(|t| parse(&t))
        .map_err(|e| Error::io(path, e))
}

fn parse_line(line: &str) -> Option<Mount> {
    // optional fields (shared:N, master:N, …) end at the lone "-"
    let (pre, post) = line.split_once(" - ")?;
    let mut f = pre.split(' ');
    let id = f.next()?.parse().ok()?;
    let parent = f.next()?.parse().ok()?;
    let _major_minor = f.next()?;
    let root = unescape(f.next()?);
    let mount_point = unescape(f.next()?);
    let options = f.next()?.to_string();
    let mut g = post.split(' ');
    let fs_type = g.next()?.to_string();
    let source = String::from_utf8_lossy(&unescape_bytes(g.next()?)).into_owned();
    let super_options = g.next().unwrap_or_default().to_string();
    Some(Mount {
        id,
        parent,
        root,
        mount_point,
        options,
        fs_type,
        source,
        super_options,
    })
}

/// A path field with the kernel's octal escapes (`\NNN`) decoded.
pub fn unescape(s: &str) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&unescape_bytes(s)))
}

fn unescape_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).filter(|d| {
            b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match oct {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_optional_fields_and_escapes() {
        let t = "36 35 98:0 /mnt1 /mnt/with\\040space\\011tab rw,noatime master:1 shared:2 - ext3 \
                 /dev/root rw,errors=continue\n\
                 25 1 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup \
                 rw,cpu,cpuacct\n\
                 30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n\
                 garbage\n\
                 40 1 0:50 /a\\134b /back\\134slash\\012nl rw - tmpfs my\\040src rw\n";
        let m = parse(t);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].id, 36);
        assert_eq!(m[0].parent, 35);
        assert_eq!(m[0].root, Path::new("/mnt1"));
        assert_eq!(m[0].mount_point, Path::new("/mnt/with space\ttab"));
        assert_eq!(m[0].options, "rw,noatime");
        assert_eq!(m[0].fs_type, "ext3");
        assert_eq!(m[0].source, "/dev/root");
        assert_eq!(m[0].super_options, "rw,errors=continue");
        assert_eq!(m[1].fs_type, "cgroup");
        assert_eq!(m[1].super_options, "rw,cpu,cpuacct");
        assert_eq!(m[2].fs_type, "cgroup2");
        assert_eq!(m[3].root, Path::new("/a\\b"));
        assert_eq!(m[3].mount_point, Path::new("/back\\slash\nnl"));
        assert_eq!(m[3].source, "my src");
        // what is not an escape stays as it is
        assert_eq!(
            unescape("a\\b\\0x\\400\\12"),
            Path::new("a\\b\\0x\\400\\12")
        );
    }

    #[test]
    fn this_process_has_a_root_mount() {
        let m = read_self().unwrap();
        assert!(m.iter().any(|m| m.mount_point == Path::new("/")));
    }
}
