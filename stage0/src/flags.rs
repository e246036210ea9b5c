//! Parsing of flag values: `--volume`, `--mount`, k8s quantities (`--memory`, `--cpu`),
//! `--seccomp`, capability lists, `K=V` environment entries and env files, app names.
//! Pure functions; no I/O except [`read_env_file`].

use stage1_abi::{
    MountPoint, NetConfig, NetRequest, PortForward, Seccomp, SeccompMode, Volume, VolumeKind,
};
use std::path::Path;

use crate::{Error, Result};

fn bad(flag: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::usage(format!("invalid {flag} {value:?}: {why}"))
}

fn parse_bool(flag: &str, value: &str, b: &str) -> Result<bool> {
    match b {
        "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(true),
        "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(false),
        _ => Err(bad(flag, value, format!("{b:?} is not a boolean"))),
    }
}

/// `--volume NAME,kind=host,source=PATH[,readOnly=B][,recursive=B]` or
/// `NAME,kind=empty[,mode=0755][,uid=0][,gid=0][,readOnly=B]` (the name may also be given as
/// `name=NAME`). The host source is checked later, at prepare time.
pub fn parse_volume(value: &str) -> Result<Volume> {
    let f = "--volume";
    let mut name = None;
    let mut kind = None;
    let mut source = None;
    let mut read_only = false;
    let mut recursive = true;
    let mut idmap = None;
    let (mut mode, mut uid, mut gid) = (0o755u32, 0u32, 0u32);
    for (i, part) in value.split(',').enumerate() {
        let Some((k, v)) = part.split_once('=') else {
            if i == 0 && !part.is_empty() {
                name = Some(part.to_string());
                continue;
            }
            return Err(bad(f, value, format!("{part:?} is not KEY=VALUE")));
        };
        match k {
            "name" => name = Some(v.to_string()),
            "kind" => kind = Some(v.to_string()),
            "source" => source = Some(v.to_string()),
            "readOnly" => read_only = parse_bool(f, value, v)?,
            "recursive" => recursive = parse_bool(f, value, v)?,
            "idmap" => idmap = Some(parse_bool(f, value, v)?),
            "mode" => {
                mode = u32::from_str_radix(v, 8)
                    .map_err(|_| bad(f, value, format!("mode {v:?} is not octal")))?
            }
            "uid" => {
                uid = v
                    .parse()
                    .map_err(|_| bad(f, value, format!("uid {v:?} is not a number")))?
            }
            "gid" => {
                gid = v
                    .parse()
                    .map_err(|_| bad(f, value, format!("gid {v:?} is not a number")))?
            }
            _ => return Err(bad(f, value, format!("unknown key {k:?}"))),
        }
    }
    let name = name.ok_or_else(|| bad(f, value, "missing volume name"))?;
    check_acname(&name).map_err(|e| bad(f, value, e))?;
    let kind = match kind.as_deref() {
        Some("host") => {
            let source = source.ok_or_else(|| bad(f, value, "kind=host needs source=PATH"))?;
            if !source.starts_with('/') {
                return Err(bad(f, value, "source must be an absolute path"));
            }
            VolumeKind::Host {
                source,
                recursive,
                idmap: idmap.unwrap_or(false),
                propagation: None,
                recursive_read_only: false,
            }
        }
        Some("empty") => {
            if source.is_some() {
                return Err(bad(f, value, "kind=empty takes no source"));
            }
            if idmap.is_some() {
                return Err(bad(
                    f,
                    value,
                    "kind=empty takes no idmap (it is the pod's own)",
                ));
            }
            VolumeKind::Empty {
                mode,
                uid,
                gid,
                populate_from: None,
            }
        }
        Some(k) => return Err(bad(f, value, format!("unknown kind {k:?} (host or empty)"))),
        None => return Err(bad(f, value, "missing kind=host|empty")),
    };
    Ok(Volume {
        name,
        kind,
        read_only,
    })
}

/// `--mount volume=NAME,target=PATH[,readOnly=B]`.
pub fn parse_mount(value: &str) -> Result<MountPoint> {
    let f = "--mount";
    let (mut volume, mut target, mut read_only) = (None, None, false);
    for part in value.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(f, value, format!("{part:?} is not KEY=VALUE")))?;
        match k {
            "volume" => volume = Some(v.to_string()),
            "target" => target = Some(v.to_string()),
            "readOnly" => read_only = parse_bool(f, value, v)?,
            _ => return Err(bad(f, value, format!("unknown key {k:?}"))),
        }
    }
    let volume = volume.ok_or_else(|| bad(f, value, "missing volume=NAME"))?;
    let target = target.ok_or_else(|| bad(f, value, "missing target=PATH"))?;
    if !target.starts_with('/') {
        return Err(bad(f, value, "target must be an absolute path"));
    }
    Ok(MountPoint {
        volume,
        target,
        read_only,
    })
}

/// A k8s resource quantity multiplied by `scale`, rounded up: `128M` (10^6), `1Gi` (2^30),
/// `500m` (10^-3), `1.5`, `2k`, `1e3`.
fn parse_quantity(value: &str, scale: u128) -> std::result::Result<u64, String> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, suffix) = v.split_at(split);
    if num.is_empty() || num == "." {
        return Err("not a quantity".into());
    }
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.contains('.') {
        return Err("not a quantity".into());
    }
    // value = mantissa / 10^frac.len() * mult_num / mult_den
    let digits = format!("{int}{frac}");
    let mantissa: u128 = digits.parse().map_err(|_| "number too large".to_string())?;
    let mut den: u128 = 10u128.pow(frac.len() as u32);
    let mut mul: u128 = match suffix {
        "" => 1,
        "m" => {
            den *= 1000;
            1
        }
        "k" | "K" => 1000,
        "M" => 1000u128.pow(2),
        "G" => 1000u128.pow(3),
        "T" => 1000u128.pow(4),
        "P" => 1000u128.pow(5),
        "E" => 1000u128.pow(6),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        s if s.starts_with(['e', 'E']) => {
            let exp: u32 = s[1..].parse().map_err(|_| format!("bad suffix {s:?}"))?;
            if exp > 18 {
                return Err("number too large".into());
            }
            10u128.pow(exp)
        }
        s => return Err(format!("unknown suffix {s:?}")),
    };
    mul *= scale;
    let n = mantissa
        .checked_mul(mul)
        .ok_or_else(|| "number too large".to_string())?;
    let r = n.div_ceil(den);
    u64::try_from(r).map_err(|_| "number too large".to_string())
}

/// `--memory` (k8s quantity) → bytes.
pub fn parse_memory(value: &str) -> Result<u64> {
    parse_quantity(value, 1).map_err(|e| bad("--memory", value, e))
}

/// `--cpu` (k8s quantity: `500m`, `1`, `1.5`) → millicores.
pub fn parse_cpu(value: &str) -> Result<u64> {
    parse_quantity(value, 1000).map_err(|e| bad("--cpu", value, e))
}

/// rkt's default `--pids-limit`: tasks (processes and threads) per pod, all apps together.
/// podman's default is 2048 per container; a pod holds several apps, so twice that. Enough for
/// any ordinary service (a JVM or a build runs a few hundred threads), and it stops a fork bomb
/// long before the kernel's `pid_max` (4M on 64-bit), which the whole host shares.
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;

/// `--pids-limit`: a positive number of tasks, or `0` / `-1` for no limit (as podman).
pub fn parse_pids_limit(value: &str) -> Result<Option<u64>> {
    match value.trim() {
        "0" | "-1" => Ok(None),
        v => match v.parse::<u64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(bad(
                "--pids-limit",
                value,
                "expected a number of tasks, or 0 or -1 for no limit",
            )),
        },
    }
}

/// `--oom-score-adj` (-1000..=1000).
pub fn parse_oom_score_adj(value: &str) -> Result<i32> {
    match value.trim().parse::<i32>() {
        Ok(v) if (-1000..=1000).contains(&v) => Ok(v),
        _ => Err(bad(
            "--oom-score-adj",
            value,
            "must be an integer in -1000..1000",
        )),
    }
}

/// Capability names the kernel knows (as of Linux 6.x).
pub const KNOWN_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// `--caps-retain` / `--caps-remove`: comma-separated capability names, `CAP_` prefix optional,
/// any case. Returns canonical `CAP_…` names.
pub fn parse_caps(flag: &str, value: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let up = c.to_ascii_uppercase();
        let name = if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        };
        if !KNOWN_CAPS.contains(&name.as_str()) {
            return Err(bad(flag, value, format!("unknown capability {c:?}")));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    if out.is_empty() {
        return Err(bad(flag, value, "no capabilities given"));
    }
    Ok(out)
}

/// `--seccomp=mode=retain|remove[,errno=ENAME],SYSCALL|@group,…`.
pub fn parse_seccomp(value: &str) -> Result<Seccomp> {
    let f = "--seccomp";
    let (mut mode, mut errno, mut syscalls) = (None, None, Vec::new());
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(m) = part.strip_prefix("mode=") {
            mode = Some(match m {
                "retain" => SeccompMode::Retain,
                "remove" => SeccompMode::Remove,
                _ => {
                    return Err(bad(
                        f,
                        value,
                        format!("unknown mode {m:?} (retain or remove)"),
                    ))
                }
            });
        } else if let Some(e) = part.strip_prefix("errno=") {
            if stage1_abi::errno::errno_from_name(e).is_none() {
                return Err(bad(f, value, format!("{e:?} is not an errno name")));
            }
            errno = Some(e.to_string());
        } else if part.contains('=') {
            return Err(bad(f, value, format!("unknown option {part:?}")));
        } else {
            let ok = part.starts_with('@')
                || part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(bad(
                    f,
                    value,
                    format!("{part:?} is not a syscall or @group"),
                ));
            }
            syscalls.push(part.to_string());
        }
    }
    let mode = mode.ok_or_else(|| bad(f, value, "missing mode=retain|remove"))?;
    if syscalls.is_empty() {
        return Err(bad(f, value, "no syscalls or groups given"));
    }
    Ok(Seccomp {
        mode,
        errno,
        syscalls,
    })
}

/// `--supplementary-gids=1,2,3`.
pub fn parse_gids(value: &str) -> Result<Vec<u32>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            check_id("--supplementary-gids", s)?;
            s.parse::<u32>()
                .map_err(|_| bad("--supplementary-gids", value, format!("{s:?} is not a gid")))
        })
        .collect()
}

/// The largest uid or gid an app may run as (2^31-1, as runc): 2^32-1 is `(uid_t)-1`, which
/// `setresuid` takes as "leave unchanged", i.e. root. stage1 checks again after resolving names.
pub const MAX_ID: u64 = i32::MAX as u64;

/// Refuse a numeric user or group id (all digits) above [`MAX_ID`]; `what` names its source
/// (`--user`, the image's `User`, …). Names and paths are left to stage1.
pub fn check_id<'a>(what: &str, value: &'a str) -> Result<&'a str> {
    if !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && value.parse::<u64>().map_or(true, |n| n > MAX_ID)
    {
        return Err(Error::usage(format!(
            "invalid {what} {value:?}: ids above {MAX_ID} are not allowed"
        )));
    }
    Ok(value)
}

/// `K=V` of `--set-env` / `--environment`.
pub fn parse_env_pair(flag: &str, value: &str) -> Result<(String, String)> {
    match value.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(bad(flag, value, "expected NAME=VALUE")),
    }
}

/// The content of a `--set-env-file`: `K=V` lines; blank lines and lines starting with `#` or
/// `;` are skipped.
pub fn parse_env_file(path: &Path, text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        match l.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => out.push((k.trim().to_string(), v.to_string())),
            _ => {
                return Err(Error::usage(format!(
                    "invalid line {} in env file {}: expected NAME=VALUE",
                    i + 1,
                    path.display()
                )))
            }
        }
    }
    Ok(out)
}

/// Read and parse a `--set-env-file`.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading env file", path, e))?;
    parse_env_file(path, &text)
}

/// Check an appc ACName: `^[a-z0-9]+(-[a-z0-9]+)*$`.
pub fn check_acname(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.split('-').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name (lower-case letters, digits and single dashes)"
        ))
    }
}

/// rkt's `SanitizeACName`: lower-case, every run of invalid characters becomes one `-`, no
/// leading or trailing dash.
pub fn sanitize_acname(s: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    out
}

/// rkt's default app name: the sanitized last path component of the image name, without
/// transport prefix, tag or digest (`docker://busybox:1.36` → `busybox`,
/// `127.0.0.1:5000/x/redis@sha256:…` → `redis`). For OCI layouts and archives
/// (`oci:PATH[:REF]`), a reference that names something (`busybox`, `x/redis:7`) gives the
/// name; a bare version (`latest`, `1.36`, `v2`) or none falls back to the file name.
pub fn default_app_name(image: &str) -> Result<String> {
    let last_component = |s: &str| -> String {
        let s = s.split('@').next().unwrap_or(s).trim_end_matches('/');
        let last = s.rsplit('/').next().unwrap_or(s);
        let last = last.split(':').next().unwrap_or(last);
        let last = [".aci", ".tar.gz", ".tgz", ".tar"]
            .iter()
            .find_map(|ext| last.strip_suffix(ext))
            .unwrap_or(last);
        sanitize_acname(last)
    };
    let layout = ["oci:", "oci-archive:"]
        .iter()
        .find_map(|p| image.strip_prefix(p));
    let name = if let Some(rest) = layout {
        let (path, reference) = match rest.split_once(':') {
            Some((p, r)) => (p, Some(r)),
            None => (rest, None),
        };
        let versionish = |r: &str| {
            r == "latest"
                || r.starts_with(|c: char| c.is_ascii_digit())
                || (r.starts_with('v') && r[1..].starts_with(|c: char| c.is_ascii_digit()))
        };
        match reference {
            Some(r) if !r.is_empty() && !versionish(r) => last_component(r),
            _ => last_component(path),
        }
    } else {
        let mut s = image;
        for p in ["docker://", "docker-archive:", "file://"] {
            if let Some(rest) = s.strip_prefix(p) {
                s = rest;
                break;
            }
        }
        last_component(s)
    };
    if name.is_empty() {
        return Err(Error::usage(format!(
            "cannot derive an app name from image {image:?}; use --name"
        )));
    }
    Ok(name)
}

/// `--net`: `host`, `none`, or `NAME[:K=V;K=V],…` CNI networks (bare `--net` = `default`).
pub fn parse_net(value: &str) -> Result<NetConfig> {
    match value {
        "host" => return Ok(NetConfig::Host),
        "none" => return Ok(NetConfig::None),
        _ => {}
    }
    let mut nets = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, args) = item.split_once(':').unwrap_or((item, ""));
        if name == "host" || name == "none" {
            return Err(bad(
                "--net",
                value,
                format!("{name:?} cannot be combined with other networks"),
            ));
        }
        check_acname(name).map_err(|e| bad("--net", value, e))?;
        let mut pairs = Vec::new();
        for kv in args.split(';').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad("--net", value, format!("{kv:?} is not KEY=VALUE")))?;
            pairs.push((k.to_string(), v.to_string()));
        }
        if nets.iter().any(|n: &NetRequest| n.name == name) {
            return Err(bad("--net", value, format!("network {name:?} given twice")));
        }
        nets.push(NetRequest {
            name: name.to_string(),
            args: pairs,
        });
    }
    if nets.is_empty() {
        return Err(bad("--net", value, "no network given"));
    }
    Ok(NetConfig::Cni(nets))
}

/// `--port NAME:[HOSTIP:]HOSTPORT`.
pub fn parse_port(value: &str) -> Result<PortForward> {
    let parts: Vec<&str> = value.split(':').collect();
    let (name, host_ip, port) = match parts.as_slice() {
        [n, p] => (*n, None, *p),
        [n, ip, p] => (*n, Some(ip.to_string()), *p),
        _ => return Err(bad("--port", value, "expected NAME:[HOSTIP:]HOSTPORT")),
    };
    if name.is_empty() {
        return Err(bad("--port", value, "missing port name"));
    }
    if let Some(ip) = &host_ip {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| bad("--port", value, format!("{ip:?} is not an IP address")))?;
    }
    let host_port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("--port", value, format!("{port:?} is not a port number")))?;
    Ok(PortForward {
        name: name.to_string(),
        host_ip,
        host_port,
    })
}

/// A Go-style duration (`30m`, `1h30m`, `10s`, `500ms`, `1.5h`, `0`), as rkt's flags took.
pub fn parse_duration(flag: &str, value: &str) -> Result<std::time::Duration> {
    let v = value.trim();
    if v == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = v;
    if rest.is_empty() {
        return Err(bad(flag, value, "empty duration"));
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad(flag, value, "missing unit (h, m, s, ms)"))?;
        let num: f64 = rest[..n]
            .parse()
            .map_err(|_| bad(flag, value, "not a duration"))?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            other => return Err(bad(flag, value, format!("unknown unit {other:?}"))),
        };
        total += num * secs;
        rest = &rest[u..];
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_parse_as_rkt() {
        let v = parse_volume("data,kind=host,source=/srv,readOnly=true").unwrap();
        assert_eq!(v.name, "data");
        assert!(v.read_only);
        assert_eq!(
            v.kind,
            VolumeKind::Host {
                source: "/srv".into(),
                recursive: true,
                idmap: false,
                propagation: None,
                recursive_read_only: false,
            }
        );
        let v = parse_volume("d,kind=host,source=/srv,idmap=true").unwrap();
        assert!(matches!(v.kind, VolumeKind::Host { idmap: true, .. }));
        assert!(parse_volume("d,kind=empty,idmap=true").is_err());
        let v = parse_volume("name=d,kind=host,source=/x,recursive=false").unwrap();
        assert!(matches!(
            v.kind,
            VolumeKind::Host {
                recursive: false,
                ..
            }
        ));
        let v = parse_volume("e,kind=empty,mode=0700,uid=5,gid=6").unwrap();
        assert_eq!(
            v.kind,
            VolumeKind::Empty {
                mode: 0o700,
                uid: 5,
                gid: 6,
                populate_from: None
            }
        );
        for bad in [
            "kind=host,source=/x",
            "d,kind=host",
            "d,kind=host,source=rel",
            "d,kind=nfs",
            "d",
            "d,kind=empty,mode=9",
            "d,kind=host,source=/x,readOnly=maybe",
            "D_,kind=empty",
        ] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts_parse() {
        let m = parse_mount("volume=data,target=/var/data").unwrap();
        assert_eq!(
            (m.volume.as_str(), m.target.as_str()),
            ("data", "/var/data")
        );
        assert!(parse_mount("volume=data").is_err());
        assert!(parse_mount("target=/x").is_err());
        assert!(parse_mount("volume=d,target=rel").is_err());
        assert!(parse_mount("volume=d,target=/x,foo=1").is_err());
    }

    #[test]
    fn quantities_as_k8s() {
        assert_eq!(parse_memory("128M").unwrap(), 128_000_000);
        assert_eq!(parse_memory("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse_memory("512Ki").unwrap(), 512 * 1024);
        assert_eq!(parse_memory("42Mi").unwrap(), 42 << 20);
        assert_eq!(parse_memory("1.5Gi").unwrap(), 3 << 29);
        assert_eq!(parse_memory("1000").unwrap(), 1000);
        assert_eq!(parse_memory("1e3").unwrap(), 1000);
        assert_eq!(parse_memory("2k").unwrap(), 2000);
        for b in ["", "M", "12X", "1.2.3", "-5", "99999999999999999999Ei"] {
            assert!(parse_memory(b).is_err(), "{b}");
        }
        assert_eq!(parse_cpu("500m").unwrap(), 500);
        assert_eq!(parse_cpu("1").unwrap(), 1000);
        assert_eq!(parse_cpu("1.5").unwrap(), 1500);
        assert_eq!(parse_cpu("0.1").unwrap(), 100);
        assert_eq!(parse_cpu("900m").unwrap(), 900);
        assert!(parse_cpu("abc").is_err());
    }

    #[test]
    fn pids_limit() {
        assert_eq!(parse_pids_limit("100").unwrap(), Some(100));
        assert_eq!(parse_pids_limit("0").unwrap(), None);
        assert_eq!(parse_pids_limit("-1").unwrap(), None);
        for b in ["-2", "abc", "", "1.5", "10k"] {
            let e = parse_pids_limit(b).unwrap_err().to_string();
            assert!(e.contains("--pids-limit"), "{b}: {e}");
        }
    }

    #[test]
    fn oom_caps_gids() {
        assert_eq!(parse_oom_score_adj("-500").unwrap(), -500);
        assert!(parse_oom_score_adj("1001").is_err());
        assert_eq!(
            parse_caps("--caps-retain", "CAP_NET_ADMIN,sys_admin,cap_net_admin").unwrap(),
            vec!["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
        );
        let e = parse_caps("--caps-remove", "CAP_FLY").unwrap_err();
        assert!(e.to_string().contains("unknown capability \"CAP_FLY\""));
        assert_eq!(parse_gids("1, 2,3").unwrap(), vec![1, 2, 3]);
        assert!(parse_gids("1,x").is_err());
        assert_eq!(parse_gids("2147483647").unwrap(), vec![2147483647]);
        for v in ["4294967295", "2147483648", "1,99999999999999999999"] {
            let e = parse_gids(v).unwrap_err().to_string();
            assert!(e.contains("ids above 2147483647 are not allowed"), "{e}");
        }
        assert!(check_id("--user", "4294967295").is_err());
        assert!(check_id("--user", "2147483647").is_ok());
        assert!(check_id("--user", "nobody").is_ok());
        assert!(check_id("--user", "/etc/passwd").is_ok());
    }

    #[test]
    fn seccomp_parses() {
        let s = parse_seccomp("mode=remove,errno=ENOTSUP,reboot,@rkt/default-blacklist").unwrap();
        assert_eq!(s.mode, SeccompMode::Remove);
        assert_eq!(s.errno.as_deref(), Some("ENOTSUP"));
        assert_eq!(s.syscalls, vec!["reboot", "@rkt/default-blacklist"]);
        let s = parse_seccomp("mode=retain,@docker/default-whitelist").unwrap();
        assert_eq!(s.errno, None);
        // every name of the kernel's errno headers, not only the common ones
        let s = parse_seccomp("mode=remove,errno=EXFULL,reboot").unwrap();
        assert_eq!(s.errno.as_deref(), Some("EXFULL"));
        for b in [
            "mode=remove,errno=ENOTANERRNO,reboot",
            "reboot",
            "mode=keep,reboot",
            "mode=retain",
            "mode=retain,errno=eperm,read",
            "mode=retain,foo=bar,read",
            "mode=retain,Read",
        ] {
            assert!(parse_seccomp(b).is_err(), "{b}");
        }
    }

    #[test]
    fn env_pairs_and_files() {
        assert_eq!(
            parse_env_pair("--set-env", "A=b=c").unwrap(),
            ("A".to_string(), "b=c".to_string())
        );
        assert!(parse_env_pair("--set-env", "=x").is_err());
        assert!(parse_env_pair("--set-env", "x").is_err());
        let p = Path::new("/f");
        let v = parse_env_file(p, "# c\n; c\n\nA=1\n B = 2\nC=\n").unwrap();
        assert_eq!(
            v,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), " 2".into()),
                ("C".into(), "".into())
            ]
        );
        let e = parse_env_file(p, "A=1\nbogus\n").unwrap_err();
        assert!(e.to_string().contains("line 2"));
    }

    #[test]
    fn app_names() {
        assert_eq!(default_app_name("docker://busybox").unwrap(), "busybox");
        assert_eq!(default_app_name("coreos.com/etcd").unwrap(), "etcd");
        assert_eq!(
            default_app_name("127.0.0.1:5000/library/busybox:1.36").unwrap(),
            "busybox"
        );
        assert_eq!(
            default_app_name("quay.io/x/My_App@sha256:abcd").unwrap(),
            "my-app"
        );
        assert_eq!(
            default_app_name("oci:/tmp/layouts/bb-layout:latest").unwrap(),
            "bb-layout"
        );
        assert_eq!(default_app_name("/tmp/etcd.aci").unwrap(), "etcd");
        assert_eq!(default_app_name("oci:/tmp/oci:busybox").unwrap(), "busybox");
        assert_eq!(default_app_name("oci:/tmp/bb:v1.2").unwrap(), "bb");
        assert_eq!(default_app_name("oci:/tmp/bb").unwrap(), "bb");
        assert_eq!(
            default_app_name("oci-archive:/a/redis.tar:docker.io/library/redis:7").unwrap(),
            "redis"
        );
        assert_eq!(
            default_app_name("oci-archive:/a/b.tar:latest").unwrap(),
            "b"
        );
        assert_eq!(
            default_app_name("docker-archive:/a/nginx.tar").unwrap(),
            "nginx"
        );
        assert!(default_app_name("docker://___").is_err());
        assert!(check_acname("web-1").is_ok());
        assert!(check_acname("Web").is_err());
        assert!(check_acname("a--b").is_err());
        assert!(check_acname("-a").is_err());
    }
    #[test]
    fn nets_and_ports() {
        assert_eq!(parse_net("host").unwrap(), NetConfig::Host);
        assert_eq!(parse_net("none").unwrap(), NetConfig::None);
        let NetConfig::Cni(n) = parse_net("default,mynet:IP=10.1.2.3;X=y").unwrap() else {
            panic!()
        };
        assert_eq!(n.len(), 2);
        assert_eq!(
            n[1].args,
            vec![("IP".into(), "10.1.2.3".into()), ("X".into(), "y".into())]
        );
        assert!(parse_net("host,default").is_err());
        assert!(parse_net("a,a").is_err());
        let p = parse_port("80-tcp:127.0.0.1:8080").unwrap();
        assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p.host_port, 8080);
        assert_eq!(parse_port("http:80").unwrap().host_port, 80);
        assert!(parse_port("http").is_err());
        assert!(parse_port("http:x:80").is_err());
        assert!(parse_port("http:0").is_err());
    }

    #[test]
    fn durations_go_style() {
        use std::time::Duration;
        let d = |v| parse_duration("--grace-period", v).unwrap();
        assert_eq!(d("30m"), Duration::from_secs(1800));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(d("0s"), Duration::ZERO);
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        for b in ["", "10", "5x", "m"] {
            assert!(parse_duration("--x", b).is_err(), "{b}");
        }
    }
}
