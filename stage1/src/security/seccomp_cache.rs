//! Built seccomp programs kept across pods, so that stage1 builds each distinct filter once
//! per host instead of once per pod.
//!
//! libseccomp needs ≈ 4–5 ms of CPU to build Docker's allow-list for x86_64 + x86. That is off
//! a single start's critical path ([`crate::security::seccomp`]), but pods started in bulk pay it on
//! every start. Entries live in `<data dir>/cache/seccomp/<key>.bpf` (stage0 names the cache
//! dir in `runtime.json`), as podman's easyseccomp helper keeps compiled filters by a hash of
//! their input.
//!
//! - **Key**: SHA-256 over everything that determines the program: the entry format, stage1's
//!   version, libseccomp's version, the kernel release, the CPU architecture and the filter's
//!   JSON. Bump [`FORMAT`] when [`crate::security::seccomp::compile`] changes what it builds.
//! - **Entry**: [`MAGIC`], the SHA-256 of the program, the program. A reader checks all three
//!   and that the file is a regular file of stage1's owner that nobody else may write; anything
//!   else is a miss, and the program is built and the entry replaced.
//! - **Writes** go to a temp file in the same dir, renamed into place: concurrent pods writing
//!   the same entry write the same bytes, and a reader never sees half an entry. No fsync: a
//!   torn entry after a crash fails its checksum and is rebuilt.
//! - **Size**: at most [`MAX_ENTRIES`] files; a write beyond that removes the oldest.
//! - The cache is an optimisation only: any error reading or writing it is logged at debug level
//!   and the program is built as if it were not there.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::security::seccomp;

/// First bytes of an entry.
const MAGIC: &[u8; 8] = b"rktbpf1\n";
/// Version of the key and of what `compile` builds; bump it when either changes.
const FORMAT: u32 = 3;
/// Entries kept at most.
pub const MAX_ENTRIES: usize = 64;
/// Name of the cache's dir inside the cache dir stage0 names.
pub const DIR: &str = "seccomp";

/// A dir of built programs.
#[derive(Debug, Clone)]
pub struct ProgramCache {
    dir: PathBuf,
}

impl ProgramCache {
    /// The seccomp cache inside `cache_dir` (which need not exist yet).
    pub fn new(cache_dir: &Path) -> Self {
        ProgramCache {
            dir: cache_dir.join(DIR),
        }
    }

    /// Filter `f`'s entry (its key is computed here, once).
    pub fn entry(&self, f: &Value) -> Entry {
        Entry {
            path: self.dir.join(format!("{}.bpf", key(f))),
        }
    }

    /// The program stored in `entry`, if it is sound.
    pub fn get(&self, entry: &Entry) -> Option<Vec<u8>> {
        let path = &entry.path;
        match read_entry(path) {
            Ok(p) => Some(p),
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::debug!(path = %path.display(), "seccomp cache entry ignored: {e}");
                }
                None
            }
        }
    }

    /// Store `prog` in `entry`, then trim the cache to [`MAX_ENTRIES`].
    pub fn put(&self, entry: &Entry, prog: &[u8]) -> std::io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let path = &entry.path;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = self.dir.join(format!(".tmp.{}.{name}", std::process::id()));
        let res = (|| {
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            out.write_all(MAGIC)?;
            out.write_all(&Sha256::digest(prog))?;
            out.write_all(prog)?;
            fs::rename(&tmp, path)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res?;
        self.trim(MAX_ENTRIES)
    }

    /// Remove the oldest files until at most `max` are left.
    fn trim(&self, max: usize) -> std::io::Result<()> {
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if entries.len() <= max {
            return Ok(());
        }
        entries.sort();
        let excess = entries.len() - max;
        for (_, p) in entries.into_iter().take(excess) {
            let _ = fs::remove_file(p);
        }
        Ok(())
    }
}

/// Where one filter's program is kept.
#[derive(Debug, Clone)]
pub struct Entry {
    path: PathBuf,
}

impl Entry {
    /// The entry's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The cache key of filter `f`: hex SHA-256 of everything the program depends on.
fn key(f: &Value) -> String {
    let v = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut h = Sha256::new();
    for part in [
        FORMAT.to_string().as_bytes(),
        env!("CARGO_PKG_VERSION").as_bytes(),
        v.as_bytes(),
        kernel.as_bytes(),
        std::env::consts::ARCH.as_bytes(),
        f.to_string().as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// Read and check one entry.
fn read_entry(path: &Path) -> std::io::Result<Vec<u8>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let md = file.metadata()?;
    if !md.is_file() {
        return Err(bad("not a regular file"));
    }
    if md.uid() != nix::unistd::geteuid().as_raw() || md.mode() & 0o022 != 0 {
        return Err(bad("owned by someone else or writable by others"));
    }
    let header = MAGIC.len() + 32;
    let len = md.len() as usize;
    if len < header + 8 || len > header + seccomp::BPF_MAXINSNS * 8 {
        return Err(bad("wrong size"));
    }
    let mut buf = Vec::with_capacity(len);
    file.read_to_end(&mut buf)?;
    let (head, prog) = buf.split_at(header.min(buf.len()));
    if !head.starts_with(MAGIC) {
        return Err(bad("not an entry"));
    }
    seccomp::parse_program(prog).map_err(|e| bad(&e))?;
    if head[MAGIC.len()..] != Sha256::digest(prog)[..] {
        return Err(bad("checksum mismatch"));
    }
    Ok(prog.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn filter(name: &str) -> Value {
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": [name], "action": "SCMP_ACT_ALLOW"}],
        })
    }

    const PROG: [u8; 16] = [6, 0, 0, 0, 0, 0, 0xff, 0x7f, 6, 0, 0, 0, 1, 0, 5, 0];

    #[test]
    fn entries_round_trip_per_filter() {
        let d = tempfile::tempdir().unwrap();
        let c = ProgramCache::new(d.path());
        let (read, write) = (c.entry(&filter("read")), c.entry(&filter("write")));
        assert_eq!(c.get(&read), None);
        c.put(&read, &PROG).unwrap();
        assert_eq!(c.get(&read).as_deref(), Some(&PROG[..]));
        assert_eq!(c.get(&write), None, "another filter, another key");
        let md = fs::metadata(read.path()).unwrap();
        assert_eq!(md.mode() & 0o777, 0o600);
        let dm = fs::metadata(d.path().join(DIR)).unwrap();
        assert_eq!(dm.mode() & 0o777, 0o700);
        // no temp file left
        assert_eq!(fs::read_dir(d.path().join(DIR)).unwrap().count(), 1);
    }

    #[test]
    fn damaged_or_foreign_entries_are_misses() {
        let d = tempfile::tempdir().unwrap();
        let c = ProgramCache::new(d.path());
        let f = c.entry(&filter("read"));
        let p = f.path();
        let good = || {
            c.put(&f, &PROG).unwrap();
            fs::read(p).unwrap()
        };
        // one program byte flipped
        let mut b = good();
        *b.last_mut().unwrap() ^= 1;
        fs::write(p, &b).unwrap();
        assert_eq!(c.get(&f), None);
        // truncated (a torn write)
        let b = good();
        fs::write(p, &b[..b.len() - 8]).unwrap();
        assert_eq!(c.get(&f), None);
        // empty
        fs::write(p, b"").unwrap();
        assert_eq!(c.get(&f), None);
        // writable by others
        good();
        fs::set_permissions(p, fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(c.get(&f), None);
        // a symlink to a sound entry elsewhere
        let other = d.path().join("elsewhere");
        fs::write(&other, good()).unwrap();
        fs::remove_file(p).unwrap();
        std::os::unix::fs::symlink(&other, p).unwrap();
        assert_eq!(c.get(&f), None);
        // and put repairs it
        fs::remove_file(p).unwrap();
        good();
        assert_eq!(c.get(&f).as_deref(), Some(&PROG[..]));
    }

    #[test]
    fn the_oldest_entries_go_beyond_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let c = ProgramCache::new(d.path());
        let entries: Vec<Entry> = (0..5).map(|i| c.entry(&filter(&format!("s{i}")))).collect();
        for (i, e) in entries.iter().enumerate() {
            c.put(e, &PROG).unwrap();
            // distinct mtimes, oldest first
            let t =
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            File::options()
                .write(true)
                .open(e.path())
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        c.trim(3).unwrap();
        let left: Vec<bool> = entries.iter().map(|e| c.get(e).is_some()).collect();
        assert_eq!(left, [false, false, true, true, true]);
    }
}
