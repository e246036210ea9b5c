//! `--private-users`: which range of host ids a pod's user namespace maps, and the claims that
//! keep two pods from sharing one.
//!
//! A pod with private users maps its uids and gids `0..count` to the host's
//! `shift..shift+count` (stage1 writes the maps, stage0 idmaps the image layers with the same
//! mapping). `auto` takes the lowest free 65536 ids from the pool; `SHIFT:COUNT` asks for a range
//! as given. Either way the range is claimed by a `private-users` file in the pod dir, written
//! under the data dir's id-range lock after checking every other pod dir's claim: a range is
//! taken for as long as a pod dir holds it, in any phase, so it is released when gc (or
//! `rkt rm`) removes the pod — also for a pod whose `rkt run` was killed.
//!
//! The pool: the ranges of the `userns` config kind (`userns.d/*.json`,
//! `{"rktKind":"userns","rktVersion":"v1","ranges":["START:COUNT",…]}`; later config roots
//! replace earlier ones), else what `/etc/subuid` and `/etc/subgid` give the user `rkt` (the
//! ids both files give it, since a pod's uids and gids share one shift) — as podman's
//! `--userns=auto` takes the `containers` user's.

use nix::fcntl::Flock;
use stage1_abi::{paths, IdRange};
use std::fs;
use std::path::Path;

use crate::pods::{Phase, Pods};
use crate::{Error, Result};

/// How many ids `auto` gives a pod: 0..65535, every id an image's files normally use.
pub const POD_IDS: u32 = 65536;

/// The user whose `/etc/subuid` and `/etc/subgid` ranges form the default pool.
pub const SUBID_USER: &str = "rkt";

/// What `--private-users` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateUsers {
    /// A free range of [`POD_IDS`] from the pool.
    Auto,
    /// This range.
    Range(IdRange),
}

impl PrivateUsers {
    /// Parse the flag's value: empty or `auto`, or `SHIFT:COUNT`.
    pub fn parse(v: &str) -> Result<Self> {
        if v.is_empty() || v == "auto" {
            return Ok(PrivateUsers::Auto);
        }
        let r = parse_range(v).ok_or_else(|| {
            Error::usage(format!(
                "--private-users={v:?}: expected auto or SHIFT:COUNT (host id of the pod's root, \
                 number of ids)"
            ))
        })?;
        r.validate()
            .map_err(|e| Error::usage(format!("--private-users={v}: {e}")))?;
        Ok(PrivateUsers::Range(r))
    }
}

/// `START:COUNT` with both decimal.
fn parse_range(v: &str) -> Option<IdRange> {
    let (s, c) = v.split_once(':')?;
    Some(IdRange {
        shift: s.parse().ok()?,
        count: c.parse().ok()?,
    })
}

/// Where `auto` takes ranges from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The ranges, in the order they are tried.
    pub ranges: Vec<IdRange>,
    /// Where they came from, for messages.
    pub source: String,
}

impl Pool {
    /// The pool of this host: `configured` (the `userns` config kind) if given, else the
    /// subordinate ids of [`SUBID_USER`] in `/etc/subuid` ∩ `/etc/subgid`.
    pub fn load(configured: Option<&[String]>) -> Result<Pool> {
        if let Some(list) = configured {
            let mut ranges = Vec::new();
            for v in list {
                let r = parse_range(v).ok_or_else(|| {
                    Error::usage(format!("userns config: range {v:?} is not START:COUNT"))
                })?;
                r.validate()
                    .map_err(|e| Error::usage(format!("userns config: range {v}: {e}")))?;
                ranges.push(r);
            }
            return Ok(Pool {
                ranges,
                source: "the userns config".into(),
            });
        }
        Self::from_subid_files(Path::new("/etc/subuid"), Path::new("/etc/subgid"))
    }

    /// The pool `/etc/subuid`-style files give [`SUBID_USER`]; missing files give none.
    pub fn from_subid_files(subuid: &Path, subgid: &Path) -> Result<Pool> {
        let read = |p: &Path| match fs::read_to_string(p) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(Error::io("reading", p, e)),
        };
        let uids = subid_ranges(&read(subuid)?, SUBID_USER);
        let gids = subid_ranges(&read(subgid)?, SUBID_USER);
        Ok(Pool {
            ranges: intersect(&uids, &gids),
            source: format!(
                "the ranges of user {SUBID_USER:?} in {} and {}",
                subuid.display(),
                subgid.display()
            ),
        })
    }
}

/// The ranges `subuid(5)` text gives `user` (lines `NAME:START:COUNT`; a numeric owner is
/// not matched by name).
pub fn subid_ranges(text: &str, user: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (name, start, count) = (f.next()?, f.next()?, f.next()?);
            if name != user || f.next().is_some() {
                return None;
            }
            let r = IdRange {
                shift: start.parse().ok()?,
                count: count.parse().ok()?,
            };
            r.validate().ok().map(|()| r)
        })
        .collect()
}

/// The ids in both lists, as ranges.
fn intersect(a: &[IdRange], b: &[IdRange]) -> Vec<IdRange> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            let start = x.shift.max(y.shift);
            let end = x.end().min(y.end());
            if u64::from(start) < end {
                out.push(IdRange {
                    shift: start,
                    count: (end - u64::from(start)) as u32,
                });
            }
        }
    }
    out.sort_by_key(|r| r.shift);
    out
}

/// The first `count` ids of `pool` that overlap no range of `taken`, lowest first.
pub fn first_free(pool: &[IdRange], taken: &[IdRange], count: u32) -> Option<IdRange> {
    let mut taken = taken.to_vec();
    taken.sort_by_key(|r| r.shift);
    for p in pool {
        let mut start = u64::from(p.shift);
        loop {
            if start + u64::from(count) > p.end() {
                break;
            }
            let want = IdRange {
                shift: start as u32,
                count,
            };
            match taken.iter().find(|t| t.overlaps(&want)) {
                None => return Some(want),
                Some(t) => start = t.end(),
            }
        }
    }
    None
}

/// The ranges claimed by pod dirs under `pods`, with the pod each belongs to.
fn claims(pods: &Pods) -> Result<Vec<(String, IdRange)>> {
    let mut out = Vec::new();
    for phase in Phase::ALL {
        for uuid in pods.list_phase(phase)? {
            let f = pods.path(phase, &uuid).join(paths::PRIVATE_USERS);
            match fs::read(&f) {
                Ok(b) => {
                    let r: IdRange = serde_json::from_slice(&b).map_err(|e| {
                        Error::usage(format!(
                            "pod {uuid}: unreadable id range claim {}: {e}",
                            f.display()
                        ))
                    })?;
                    out.push((uuid, r));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("reading", &f, e)),
            }
        }
    }
    Ok(out)
}

/// Claim the range `want` asks for, for the pod at `pod_dir` (which must not hold a claim
/// yet), and return it. `pool` is asked only for `auto`. Claims are made one at a time
/// (`<data>/locks/private-users`), so no two pods ever hold overlapping ranges.
pub fn claim(
    data_dir: &Path,
    pod_dir: &Path,
    want: PrivateUsers,
    pool: impl FnOnce() -> Result<Pool>,
) -> Result<IdRange> {
    let _lock = lock(data_dir)?;
    let pods = Pods::new(data_dir);
    let taken = claims(&pods)?;
    let range = match want {
        PrivateUsers::Range(r) => {
            if let Some((uuid, t)) = taken.iter().find(|(_, t)| t.overlaps(&r)) {
                return Err(Error::usage(format!(
                    "--private-users={}:{}: overlaps the ids {}:{} of pod {uuid}",
                    r.shift, r.count, t.shift, t.count
                )));
            }
            r
        }
        PrivateUsers::Auto => {
            let pool = pool()?;
            if pool.ranges.is_empty() {
                return Err(Error::usage(format!(
                    "--private-users=auto: no ids to take a range from ({} name none): give user \
                     {SUBID_USER:?} ids in /etc/subuid and /etc/subgid (e.g. \
                     {SUBID_USER}:2147483648:65536000) or list ranges in the userns config",
                    pool.source
                )));
            }
            let t: Vec<IdRange> = taken.iter().map(|(_, r)| *r).collect();
            first_free(&pool.ranges, &t, POD_IDS).ok_or_else(|| {
                Error::usage(format!(
                    "--private-users=auto: no free range of {POD_IDS} ids left in {} ({} taken by \
                     pods): remove pods ('rkt gc', 'rkt rm') or give the pool more ids",
                    pool.source,
                    taken.len()
                ))
            })?
        }
    };
    let f = pod_dir.join(paths::PRIVATE_USERS);
    stage1_abi::write_json_atomic(&f, &range)?;
    Ok(range)
}

/// Let the pod's root (host ids `range.shift`), which sets up the app's mounts from inside the
/// pod's user namespace, reach the pod dir `pod_dir` under `data_dir`: the phase dirs and
/// `pods/` get search permission for others (`o+x`, no listing), the pod dir itself keeps
/// others out and gives the pod's root group search permission (`0750`, group `shift`).
/// Every dir above `pods/` must already be searchable by others; one that is not is named in
/// the error (`chmod o+x`), before anything fails deep inside the container set-up.
pub fn open_path_to_pod(data_dir: &Path, pod_dir: &Path, range: IdRange) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let pods = Pods::new(data_dir);
    let mut dirs = vec![pods.root().to_path_buf()];
    dirs.extend(Phase::ALL.iter().map(|p| pods.phase_dir(*p)));
    for d in dirs {
        let m = fs::metadata(&d).map_err(|e| Error::io("reading", &d, e))?;
        let mode = m.permissions().mode();
        if mode & 0o001 == 0 {
            fs::set_permissions(&d, fs::Permissions::from_mode((mode | 0o001) & 0o7777))
                .map_err(|e| Error::io("opening for private users", &d, e))?;
        }
    }
    let abs = std::path::absolute(data_dir).map_err(|e| Error::io("resolving", data_dir, e))?;
    for d in abs.ancestors() {
        let m = fs::metadata(d).map_err(|e| Error::io("reading", d, e))?;
        if m.permissions().mode() & 0o001 == 0 {
            return Err(Error::usage(format!(
                "--private-users: the pod's root (host uid {}) cannot reach its files: {dir} is \
                 mode {:04o}, which others cannot search (chmod o+x {dir})",
                range.shift,
                m.permissions().mode() & 0o7777,
                dir = d.display(),
            )));
        }
    }
    nix::unistd::chown(pod_dir, None, Some(nix::unistd::Gid::from_raw(range.shift)))
        .map_err(|e| Error::io("giving the pod's root access to", pod_dir, e.into()))?;
    Ok(())
}

/// The data dir's id-range lock, held while a claim is checked and written.
fn lock(data_dir: &Path) -> Result<Flock<fs::File>> {
    let dir = data_dir.join("locks");
    fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    crate::pods::lock_file(&dir.join("private-users"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(shift: u32, count: u32) -> IdRange {
        IdRange { shift, count }
    }

    #[test]
    fn flag_values() {
        assert_eq!(PrivateUsers::parse("").unwrap(), PrivateUsers::Auto);
        assert_eq!(PrivateUsers::parse("auto").unwrap(), PrivateUsers::Auto);
        assert_eq!(
            PrivateUsers::parse("100000:65536").unwrap(),
            PrivateUsers::Range(r(100000, 65536))
        );
        for bad in [
            "0:65536",
            "1:0",
            "x",
            "1:",
            ":2",
            "-1:5",
            "4294967295:2",
            "1:2:3",
        ] {
            let e = PrivateUsers::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--private-users"), "{bad}: {e}");
        }
        assert!(PrivateUsers::parse("0:65536")
            .unwrap_err()
            .to_string()
            .contains("host's root"));
    }

    #[test]
    fn subid_files_give_the_ids_of_rkt_in_both() {
        let u = "root:100000:65536\nrkt:200000:200000\n# x\nrkt:bad:1\nrkt:500000:10\n";
        let g = "rkt:300000:200000\nrkt:500000:10\n";
        assert_eq!(
            subid_ranges(u, "rkt"),
            vec![r(200000, 200000), r(500000, 10)]
        );
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("u"), u).unwrap();
        fs::write(t.path().join("g"), g).unwrap();
        let p = Pool::from_subid_files(&t.path().join("u"), &t.path().join("g")).unwrap();
        assert_eq!(p.ranges, vec![r(300000, 100000), r(500000, 10)]);
        let none = Pool::from_subid_files(&t.path().join("nx"), &t.path().join("g")).unwrap();
        assert!(none.ranges.is_empty());
    }

    #[test]
    fn first_free_skips_taken_ranges() {
        let pool = [r(100000, 200000)];
        assert_eq!(first_free(&pool, &[], 65536), Some(r(100000, 65536)));
        let taken = [r(100000, 65536), r(170000, 10)];
        assert_eq!(first_free(&pool, &taken, 65536), Some(r(170010, 65536)));
        let taken = [r(100000, 65536), r(165536, 65536), r(231072, 65536)];
        assert_eq!(first_free(&pool, &taken, 65536), None);
        // the next pool range is tried
        let pool = [r(1000, 10), r(100000, 65536)];
        assert_eq!(first_free(&pool, &[], 65536), Some(r(100000, 65536)));
    }

    #[test]
    fn claims_are_exclusive_until_the_pod_dir_goes() {
        let t = tempfile::tempdir().unwrap();
        let pods = Pods::new(t.path());
        pods.ensure_dirs().unwrap();
        let pool = || {
            Ok(Pool {
                ranges: vec![r(100000, 131072)],
                source: "test".into(),
            })
        };
        let mk = |phase, uuid: &str| {
            let d = pods.path(phase, uuid);
            fs::create_dir_all(&d).unwrap();
            d
        };
        let a = mk(Phase::Run, "6a1e1c6e-0000-4000-8000-000000000001");
        let b = mk(Phase::Prepared, "6a1e1c6e-0000-4000-8000-000000000002");
        let c = mk(Phase::Prepare, "6a1e1c6e-0000-4000-8000-000000000003");
        let ra = claim(t.path(), &a, PrivateUsers::Auto, pool).unwrap();
        let rb = claim(t.path(), &b, PrivateUsers::Auto, pool).unwrap();
        assert_eq!((ra, rb), (r(100000, 65536), r(165536, 65536)));
        let e = claim(t.path(), &c, PrivateUsers::Auto, pool).unwrap_err();
        assert!(e.to_string().contains("no free range"), "{e}");
        assert!(!c.join(paths::PRIVATE_USERS).exists());
        let e = claim(t.path(), &c, PrivateUsers::Range(r(165000, 1000)), pool).unwrap_err();
        assert!(e.to_string().contains("000000000002"), "{e}");
        // the first pod goes (gc): its range is free again
        fs::remove_dir_all(&a).unwrap();
        assert_eq!(
            claim(t.path(), &c, PrivateUsers::Auto, pool).unwrap(),
            r(100000, 65536)
        );
        let empty = || {
            Ok(Pool {
                ranges: vec![],
                source: "nothing".into(),
            })
        };
        let d = mk(Phase::Prepare, "6a1e1c6e-0000-4000-8000-000000000004");
        let e = claim(t.path(), &d, PrivateUsers::Auto, empty).unwrap_err();
        assert!(e.to_string().contains("/etc/subuid"), "{e}");
    }
}
