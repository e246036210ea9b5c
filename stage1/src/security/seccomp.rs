//! An app's seccomp filter, built by stage1 and loaded by the app's own process right before
//! exec.
//!
//! libcontainer builds a filter with libseccomp inside the container's init process, after the
//! mounts: for Docker's allow-list on x86_64 + x86 that is ≈ 4–5 ms of every app start, on its
//! critical path. stage1 instead builds the same filter with the same library from the same OCI
//! `linux.seccomp` object while libcontainer creates the container on the other core, and writes
//! the BPF program into a memfd that the app's init inherits from its helper
//! ([`crate::app::helper`]). libcontainer gets the spec without `linux.seccomp`; its executor hook,
//! which runs in the init after everything libcontainer does and right before exec, loads the
//! program ([`load_at_exec`]).
//!
//! Loading a filter needs no_new_privs or CAP_SYS_ADMIN. Non-root apps with a filter run with
//! no_new_privs (as in rkt), so they need nothing more. A root app whose capability set lacks
//! CAP_SYS_ADMIN gets it (and CAP_SETPCAP, to drop it) from libcontainer on top of its own set,
//! and the hook drops both from every set after loading the filter and before exec, checking
//! that they are gone. The spec records this in two annotations ([`ANN_FILTER`],
//! [`ANN_DROP_CAPS`]) so `rkt enter` confines like the app does ([`app_view`]).
//!
//! Argument conditions are built as libcontainer builds them (Docker's default profile has
//! them: `clone` without namespace flags). Whatever the fast path cannot mirror exactly stays
//! with libcontainer: filter flags, notify listeners, other actions or architectures, and a
//! root app's filter that blocks the syscalls of the capability drop (`prctl`, `capget`,
//! `capset`).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::sys::memfd::MemFdCreateFlag;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, LinuxSeccomp, Spec};
use serde_json::Value;

use crate::security::seccomp_cache::ProgramCache;
use crate::sys;

/// Spec annotation: the app's OCI `linux.seccomp` object (JSON), which stage1 loads itself.
pub const ANN_FILTER: &str = "io.rkt.stage1.seccomp";
/// Spec annotation: capabilities libcontainer gives the app only so that the filter can be
/// loaded, dropped before exec (comma-separated).
pub const ANN_DROP_CAPS: &str = "io.rkt.stage1.drop-caps-at-exec";

/// What a root app without no_new_privs needs to load a filter and then drop what it added.
const LOADER_CAPS: [&str; 2] = ["CAP_SYS_ADMIN", "CAP_SETPCAP"];
/// The kernel's limit on a classic-BPF program's length.
pub(crate) const BPF_MAXINSNS: usize = 4096;
/// The syscalls the capability drop after the filter makes.
const DROP_SYSCALLS: [&str; 3] = ["prctl", "capget", "capset"];

/// An OCI seccomp action the fast path mirrors, as libcontainer translates it.
fn action(name: &Value, errno: &Value) -> Option<ScmpAction> {
    let errno = errno
        .as_u64()
        .and_then(|e| i32::try_from(e).ok())
        .unwrap_or(libc::EPERM);
    Some(match name.as_str()? {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        _ => return None,
    })
}

fn arch(a: &Value) -> Option<ScmpArch> {
    Some(match a.as_str()? {
        "SCMP_ARCH_X86_64" => ScmpArch::X8664,
        "SCMP_ARCH_X86" => ScmpArch::X86,
        "SCMP_ARCH_X32" => ScmpArch::X32,
        "SCMP_ARCH_AARCH64" => ScmpArch::Aarch64,
        "SCMP_ARCH_ARM" => ScmpArch::Arm,
        _ => return None,
    })
}

fn list(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// An OCI argument condition as libcontainer translates it (`translate_op`): a missing
/// `valueTwo` is 0.
fn arg_compare(a: &Value) -> Option<(u32, ScmpArgCompare)> {
    let index = u32::try_from(a["index"].as_u64()?)
        .ok()
        .filter(|i| *i < 6)?;
    let value = a["value"].as_u64()?;
    let two = match &a["valueTwo"] {
        Value::Null => 0,
        v => v.as_u64()?,
    };
    let op = match a["op"].as_str()? {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        "SCMP_CMP_MASKED_EQ" => ScmpCompareOp::MaskedEqual(two),
        _ => return None,
    };
    Some((index, ScmpArgCompare::new(index, op, value)))
}

/// A rule's argument conditions (empty: unconditional), or None when one is not understood.
fn arg_compares(r: &Value) -> Option<Vec<(u32, ScmpArgCompare)>> {
    match &r["args"] {
        Value::Null => Some(Vec::new()),
        v => v.as_array()?.iter().map(arg_compare).collect(),
    }
}

/// Whether the fast path builds exactly what libcontainer would from `f`.
fn mirrorable(f: &Value) -> bool {
    let none = |v: &Value| v.is_null() || v.as_array().is_some_and(Vec::is_empty);
    ["flags", "listenerPath", "listenerMetadata"]
        .iter()
        .all(|k| f.get(*k).is_none_or(none))
        && action(&f["defaultAction"], &f["defaultErrnoRet"]).is_some()
        && list(&f["architectures"]).all(|a| arch(a).is_some())
        && list(&f["syscalls"]).all(|r| {
            arg_compares(r).is_some()
                && action(&r["action"], &r["errnoRet"]).is_some()
                && list(&r["names"]).all(Value::is_string)
        })
}

/// Whether filter `f` lets syscall `name` through whatever its arguments.
fn allows(f: &Value, name: &str) -> bool {
    let rule = f["syscalls"].as_array().into_iter().flatten().find(|r| {
        r["names"]
            .as_array()
            .is_some_and(|n| n.iter().any(|x| x == name))
    });
    if rule.is_some_and(|r| !arg_compares(r).is_some_and(|a| a.is_empty())) {
        return false; // conditional
    }
    let act = rule.map_or(&f["defaultAction"], |r| &r["action"]);
    act == "SCMP_ACT_ALLOW"
}

/// Take `spec`'s filter over for stage1 when that is exact (see the module docs): remove
/// `linux.seccomp`, record it in [`ANN_FILTER`], give a root app the capabilities it needs to
/// load it ([`ANN_DROP_CAPS`]). Returns the filter (as its spec JSON) to build and deliver, or
/// None (libcontainer keeps it, or there is none).
pub fn take_over(spec: &mut Spec) -> Option<Value> {
    let typed = spec.linux().as_ref()?.seccomp().as_ref()?;
    let f = serde_json::to_value(typed).ok()?;
    if !mirrorable(&f) {
        return None;
    }
    let process = spec.process().as_ref()?;
    let nnp = process.no_new_privileges() == Some(true);
    let root = process.user().uid() == 0;
    let caps = process.capabilities().clone().unwrap_or_default();
    let sets = [caps.bounding(), caps.effective(), caps.permitted()];
    let loader = loader_caps();
    let extra: Vec<(&str, Capability)> = if nnp {
        Vec::new()
    } else if root {
        loader
            .into_iter()
            .filter(|(_, c)| {
                !sets
                    .iter()
                    .all(|s| s.as_ref().is_some_and(|s| s.contains(c)))
            })
            .collect()
    } else {
        return None; // no way to load it without no_new_privs
    };
    if !extra.is_empty() && !DROP_SYSCALLS.iter().all(|s| allows(&f, s)) {
        return None;
    }
    let add = |set: &Option<Capabilities>| {
        let mut set = set.clone().unwrap_or_default();
        set.extend(extra.iter().map(|(_, c)| *c));
        Some(set)
    };
    let mut caps = caps.clone();
    if !extra.is_empty() {
        let (b, e, p) = (
            add(caps.bounding()),
            add(caps.effective()),
            add(caps.permitted()),
        );
        caps.set_bounding(b).set_effective(e).set_permitted(p);
    }
    if let Some(p) = spec.process_mut() {
        p.set_capabilities(Some(caps));
    }
    if let Some(l) = spec.linux_mut() {
        l.set_seccomp(None);
    }
    let ann = spec.annotations_mut().get_or_insert_with(Default::default);
    ann.insert(ANN_FILTER.to_string(), f.to_string());
    if !extra.is_empty() {
        let names: Vec<&str> = extra.iter().map(|(n, _)| *n).collect();
        ann.insert(ANN_DROP_CAPS.to_string(), names.join(","));
    }
    Some(f)
}

/// [`LOADER_CAPS`] with their OCI values.
fn loader_caps() -> Vec<(&'static str, Capability)> {
    LOADER_CAPS
        .iter()
        .filter_map(|n| Some((*n, crate::security::isolation::oci_capability(n)?)))
        .collect()
}

/// Build filter `f` (as [`take_over`] returned it) into its BPF program, as libcontainer's
/// `initialize_seccomp` would before loading it.
pub fn compile(f: &Value) -> Result<Vec<u8>, String> {
    if !mirrorable(f) {
        return Err("filter not supported by the fast path".into());
    }
    let err = |what: &str, e: libseccomp::error::SeccompError| format!("{what}: {e}");
    let default = action(&f["defaultAction"], &f["defaultErrnoRet"]).unwrap_or(ScmpAction::Allow);
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| err("new filter", e))?;
    for a in list(&f["architectures"]).filter_map(arch) {
        ctx.add_arch(a)
            .map_err(|e| err("adding an architecture", e))?;
    }
    // as libcontainer: no_new_privs is the spec's business, not libseccomp's
    ctx.set_ctl_nnp(false)
        .map_err(|e| err("clearing the nnp attribute", e))?;
    // The same rules as libcontainer's, laid out as a binary tree over the syscall numbers
    // instead of a list (libseccomp ≥ 2.5): the kernel's load of the program, which runs it
    // for every syscall number to build its allow cache, took 0.8 ms for Docker's
    // allow-list as a list and 0.3 ms as a tree, on the app's path to exec; each of the app's
    // syscalls then runs O(log n) comparisons instead of O(n).
    ctx.set_ctl_optimize(2)
        .map_err(|e| err("asking for a binary-tree program", e))?;
    for r in list(&f["syscalls"]) {
        let Some(act) = action(&r["action"], &r["errnoRet"]) else {
            continue;
        };
        if act == default {
            continue; // redundant, as libcontainer skips it
        }
        let (mut indexes, cmps): (Vec<u32>, Vec<ScmpArgCompare>) =
            arg_compares(r).unwrap_or_default().into_iter().unzip();
        // as libcontainer: conditions on distinct arguments make one rule (all must hold);
        // with an argument named twice, each condition makes a rule of its own
        indexes.sort_unstable();
        indexes.dedup();
        let separate = indexes.len() < cmps.len();
        for name in list(&r["names"]).filter_map(Value::as_str) {
            // a name this libseccomp does not know is skipped, as libcontainer does
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let res = if cmps.is_empty() {
                ctx.add_rule(act, sc).map(drop)
            } else if separate {
                cmps.iter().try_for_each(|c| {
                    ctx.add_rule_conditional(act, sc, std::slice::from_ref(c))
                        .map(drop)
                })
            } else {
                ctx.add_rule_conditional(act, sc, &cmps).map(drop)
            };
            res.map_err(|e| err(&format!("adding a rule for {name}"), e))?;
        }
    }
    let tmp = memfd().map_err(|e| format!("memfd: {e}"))?;
    ctx.export_bpf(tmp.as_fd())
        .map_err(|e| err("exporting the program", e))?;
    read_all(&tmp).map_err(|e| format!("reading the program back: {e}"))
}

/// Filter `f`'s program: from `cache` when it holds a sound entry, else built with
/// [`compile`] and stored there (a failure to store is only logged).
pub fn build(f: &Value, cache: Option<&ProgramCache>) -> Result<Vec<u8>, String> {
    let entry = cache.map(|c| (c, c.entry(f)));
    if let Some(p) = entry.as_ref().and_then(|(c, e)| c.get(e)) {
        return Ok(p);
    }
    let p = compile(f)?;
    if let Some((c, e)) = &entry {
        if let Err(e) = c.put(e, &p) {
            tracing::debug!("storing the seccomp program in the cache: {e}");
        }
    }
    Ok(p)
}

fn memfd() -> nix::Result<File> {
    nix::sys::memfd::memfd_create(c"rkt-seccomp", MemFdCreateFlag::MFD_CLOEXEC).map(File::from)
}

/// A memfd for an app's program: its helper, and so the app's init, inherit it.
pub fn program_file() -> Result<File, crate::Error> {
    memfd().map_err(|e| crate::Error::Sys("creating the seccomp program memfd".into(), e))
}

/// The whole content of a memfd, whatever its file offset.
fn read_all(f: &File) -> std::io::Result<Vec<u8>> {
    let mut v = vec![0; f.metadata()?.len() as usize];
    f.read_exact_at(&mut v, 0)?;
    Ok(v)
}

/// Write a built program into the memfd an app's init will load it from.
pub fn deliver(prog: &[u8], to: &File) -> Result<(), String> {
    to.write_all_at(prog, 0)
        .map_err(|e| format!("delivering the filter: {e}"))
}

/// Runs in the app's init right before exec (libcontainer's executor hook): load the program
/// stage1 delivered into `prog` if the spec says stage1 took the filter over, then drop the
/// capabilities that were only there to load it.
pub fn load_at_exec(spec: &Spec, prog: &File) -> Result<(), String> {
    let Some(ann) = spec
        .annotations()
        .as_ref()
        .filter(|a| a.contains_key(ANN_FILTER))
    else {
        return Ok(());
    };
    let bytes = read_all(prog).map_err(|e| format!("reading the filter: {e}"))?;
    let insns = parse_program(&bytes)?;
    sys::seccomp_set_filter(&insns).map_err(|e| format!("loading the seccomp filter: {e}"))?;
    let extra: Vec<caps::Capability> = lent_caps(ann, |s| s.parse().ok())?;
    drop_caps(&extra)
}

/// A BPF program as exported by libseccomp: native-endian `sock_filter`s.
pub(crate) fn parse_program(b: &[u8]) -> Result<Vec<libc::sock_filter>, String> {
    if b.is_empty() || !b.len().is_multiple_of(8) || b.len() / 8 > BPF_MAXINSNS {
        return Err(format!("malformed seccomp program ({} bytes)", b.len()));
    }
    Ok(b.chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// The capabilities [`ANN_DROP_CAPS`] lists, each parsed by `parse` (into the `caps` crate's
/// type in the app's init, oci-spec's for `rkt enter`).
fn lent_caps<C, T: FromIterator<C>>(
    ann: &HashMap<String, String>,
    parse: impl Fn(&str) -> Option<C>,
) -> Result<T, String> {
    ann.get(ANN_DROP_CAPS)
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| parse(s).ok_or_else(|| format!("unknown capability {s:?} in {ANN_DROP_CAPS}")))
        .collect()
}

/// Drop `extra` from every set (the bounding set first, while CAP_SETPCAP is still effective),
/// then check it is gone: an app never runs with a capability it was not given.
fn drop_caps(extra: &[caps::Capability]) -> Result<(), String> {
    use caps::CapSet;
    for set in [
        CapSet::Bounding,
        CapSet::Ambient,
        CapSet::Effective,
        CapSet::Permitted,
        CapSet::Inheritable,
    ] {
        for c in extra {
            caps::drop(None, set, *c).map_err(|e| format!("dropping {c} from {set:?}: {e}"))?;
        }
    }
    for set in [CapSet::Bounding, CapSet::Effective, CapSet::Permitted] {
        for c in extra {
            if caps::has_cap(None, set, *c).unwrap_or(true) {
                return Err(format!("{c} still in the {set:?} set"));
            }
        }
    }
    Ok(())
}

/// The filter and capability sets an app runs with, from its spec: what `rkt enter` applies.
pub fn app_view(spec: &Spec) -> Result<(Option<LinuxSeccomp>, Option<LinuxCapabilities>), String> {
    let no_annotations = HashMap::new();
    let ann = spec.annotations().as_ref().unwrap_or(&no_annotations);
    let filter = match ann.get(ANN_FILTER) {
        Some(j) => Some(
            serde_json::from_str::<LinuxSeccomp>(j).map_err(|e| format!("{ANN_FILTER}: {e}"))?,
        ),
        None => spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
    };
    let mut caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().clone());
    let extra: HashSet<Capability> = lent_caps(ann, crate::security::isolation::oci_capability)?;
    if let (Some(c), false) = (caps.as_mut(), extra.is_empty()) {
        let strip = |s: &Option<HashSet<Capability>>| {
            s.as_ref()
                .map(|s| s.difference(&extra).copied().collect::<HashSet<_>>())
        };
        let (b, e, p) = (
            strip(c.bounding()),
            strip(c.effective()),
            strip(c.permitted()),
        );
        c.set_bounding(b).set_effective(e).set_permitted(p);
    }
    Ok((filter, caps))
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    /// [`super::take_over`] on a spec given as JSON, which it rewrites.
    fn take_over(s: &mut Value) -> Option<Value> {
        let mut spec: Spec = serde_json::from_value(s.clone()).unwrap();
        let f = super::take_over(&mut spec);
        *s = serde_json::to_value(spec).unwrap();
        f
    }

    fn spec(uid: u32, caps: &[&str], nnp: bool, filter: Value) -> Value {
        let mut p = json!({
            "user": {"uid": uid, "gid": uid},
            "args": ["/bin/true"],
            "cwd": "/",
            "capabilities": {"bounding": caps},
        });
        if uid == 0 {
            p["capabilities"]["effective"] = json!(caps);
            p["capabilities"]["permitted"] = json!(caps);
        }
        if nnp {
            p["noNewPrivileges"] = json!(true);
        }
        json!({
            "ociVersion": "1.0.2",
            "root": {"path": "/r"},
            "process": p,
            "linux": {"seccomp": filter},
            "annotations": {"rkt.app": "a"},
        })
    }

    fn allow_list(names: &[&str]) -> Value {
        json!({
            "defaultAction": "SCMP_ACT_KILL_PROCESS",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
        })
    }

    #[test]
    fn root_app_gets_loader_caps_recorded_for_the_drop() {
        let f = allow_list(&["read", "prctl", "capget", "capset", "execve"]);
        let mut s = spec(0, &["CAP_KILL", "CAP_SETPCAP"], false, f.clone());
        assert_eq!(take_over(&mut s), Some(f.clone()));
        assert!(s["linux"].get("seccomp").is_none());
        for set in ["bounding", "effective", "permitted"] {
            let v = s["process"]["capabilities"][set].as_array().unwrap();
            assert!(v.contains(&json!("CAP_SYS_ADMIN")), "{set}");
            assert_eq!(v.iter().filter(|c| *c == "CAP_SETPCAP").count(), 1);
        }
        assert_eq!(s["annotations"][ANN_DROP_CAPS], "CAP_SYS_ADMIN");
        assert_eq!(s["annotations"]["rkt.app"], "a");
        // enter sees the app's own view again
        let spec: Spec = serde_json::from_value(s).unwrap();
        let (filter, caps) = app_view(&spec).unwrap();
        assert_eq!(
            serde_json::to_value(filter.unwrap()).unwrap()["defaultAction"],
            f["defaultAction"]
        );
        let caps = caps.unwrap();
        for set in [caps.bounding(), caps.effective(), caps.permitted()] {
            let set = set.as_ref().unwrap();
            assert!(set.contains(&Capability::Kill) && set.contains(&Capability::Setpcap));
            assert!(!set.contains(&Capability::SysAdmin));
        }
    }

    #[test]
    fn which_filters_stay_with_libcontainer() {
        // a root app whose filter blocks the drop
        let f = allow_list(&["read", "execve"]);
        let mut s = spec(0, &["CAP_KILL"], false, f.clone());
        assert_eq!(take_over(&mut s), None);
        assert!(s["linux"].get("seccomp").is_some());
        assert!(s["annotations"].get(ANN_FILTER).is_none());
        // ... unless it needs no extra capability
        let mut s = spec(0, &["CAP_SYS_ADMIN", "CAP_SETPCAP"], false, f.clone());
        assert!(take_over(&mut s).is_some());
        assert!(s["annotations"].get(ANN_DROP_CAPS).is_none());
        // no_new_privs: nothing to add
        let mut s = spec(1000, &["CAP_KILL"], true, f.clone());
        assert!(take_over(&mut s).is_some());
        assert_eq!(
            s["process"]["capabilities"]["bounding"],
            json!(["CAP_KILL"])
        );
        // non-root without no_new_privs could not load it
        let mut s = spec(1000, &["CAP_KILL"], false, f.clone());
        assert_eq!(take_over(&mut s), None);
        // argument conditions are mirrored (Docker's profile has them) unless not understood
        let mut g = f.clone();
        g["syscalls"][0]["args"] = json!([{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]);
        assert!(mirrorable(&g));
        g["syscalls"][0]["args"][0]["op"] = json!("SCMP_CMP_SOMETIMES");
        assert!(!mirrorable(&g));
        g["syscalls"][0]["args"][0] = json!({"index": 6, "value": 1, "op": "SCMP_CMP_EQ"});
        assert!(!mirrorable(&g));
        // the default profile goes the fast path, for a root app too
        let d = default_filter(&[]);
        assert!(mirrorable(&d));
        let mut s = spec(0, &["CAP_KILL"], false, d);
        assert!(take_over(&mut s).is_some());
        // flags, other actions, architectures
        let mut g = f.clone();
        g["flags"] = json!(["SECCOMP_FILTER_FLAG_LOG"]);
        assert!(!mirrorable(&g));
        let mut g = f.clone();
        g["syscalls"][0]["action"] = json!("SCMP_ACT_NOTIFY");
        assert!(!mirrorable(&g));
        let mut g = f;
        g["architectures"] = json!(["SCMP_ARCH_MIPS"]);
        assert!(!mirrorable(&g));
    }

    #[test]
    fn deny_list_filters_allow_the_drop_unless_they_name_it() {
        let f = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}],
        });
        assert!(allows(&f, "capset") && !allows(&f, "mkdir"));
        let mut s = spec(0, &["CAP_KILL"], false, f);
        assert!(take_over(&mut s).is_some());
        let f = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["capset"], "action": "SCMP_ACT_ERRNO"}],
        });
        let mut s = spec(0, &["CAP_KILL"], false, f);
        assert_eq!(take_over(&mut s), None);
    }

    #[test]
    fn load_at_exec_needs_the_delivered_program() {
        let f = allow_list(&["read", "prctl", "capget", "capset"]);
        let mut with = spec(1000, &["CAP_KILL"], true, f);
        take_over(&mut with).unwrap();
        let with: Spec = serde_json::from_value(with).unwrap();
        let without: Spec = serde_json::from_value(spec(0, &[], false, json!(null))).unwrap();
        let fd = program_file().unwrap();
        // no filter taken over: nothing to load
        assert_eq!(load_at_exec(&without, &fd), Ok(()));
        // taken over but never delivered: the app must not run
        let e = load_at_exec(&with, &fd).unwrap_err();
        assert!(e.contains("malformed seccomp program (0 bytes)"), "{e}");
        // delivered: read back whole
        let prog: Vec<u8> = (0..64u8).collect();
        deliver(&prog, &fd).unwrap();
        assert_eq!(read_all(&fd).unwrap(), prog);
    }

    #[test]
    fn compiled_program_is_whole_instructions() {
        let names: Vec<&str> = crate::security::isolation::DOCKER_DEFAULT_WHITELIST.to_vec();
        let prog = compile(&allow_list(&names)).unwrap();
        let insns = parse_program(&prog).unwrap();
        assert!(insns.len() > names.len(), "{} instructions", insns.len());
        // the last instruction returns: BPF_RET | BPF_K
        assert_eq!(insns.last().unwrap().code, 0x06);
        assert!(parse_program(&prog[..prog.len() - 3]).is_err());
        assert!(parse_program(&[]).is_err());
    }

    #[test]
    fn build_takes_sound_cache_entries_and_repairs_others() {
        let d = tempfile::tempdir().unwrap();
        let cache = ProgramCache::new(d.path());
        let (a, b) = (
            allow_list(&["read", "exit"]),
            allow_list(&["write", "exit"]),
        );
        let (pa, pb) = (compile(&a).unwrap(), compile(&b).unwrap());
        assert_ne!(pa, pb);
        // a miss builds and stores
        assert_eq!(build(&b, Some(&cache)).unwrap(), pb);
        let eb = cache.entry(&b);
        assert_eq!(cache.get(&eb).unwrap(), pb);
        // a hit is served as stored, without building: plant a's program under b's key
        cache.put(&eb, &pa).unwrap();
        assert_eq!(build(&b, Some(&cache)).unwrap(), pa);
        // a damaged entry is rebuilt and replaced
        let mut bytes = std::fs::read(eb.path()).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(eb.path(), &bytes).unwrap();
        assert_eq!(build(&b, Some(&cache)).unwrap(), pb);
        assert_eq!(cache.get(&eb).unwrap(), pb);
        // an unusable cache dir only costs the build
        let file = d.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert_eq!(build(&a, Some(&ProgramCache::new(&file))).unwrap(), pa);
        assert_eq!(build(&a, None).unwrap(), pa);
    }

    /// Run `f` on a new thread under filter `f` as stage1 builds and loads it (`libcontainer`
    /// false) or as libcontainer does for `rkt enter` (true); other threads stay unfiltered.
    fn under<T: Send + 'static>(
        filter: Value,
        libcontainer: bool,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        std::thread::spawn(move || {
            if libcontainer {
                let s: LinuxSeccomp = serde_json::from_value(filter).unwrap();
                crate::libcontainer_bypass::load_seccomp(&s).unwrap();
            } else {
                let prog = compile(&filter).unwrap();
                sys::seccomp_set_filter(&parse_program(&prog).unwrap()).unwrap();
            }
            f()
        })
        .join()
        .unwrap()
    }

    fn default_filter(caps: &[&str]) -> Value {
        let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        let rc = stage1_abi::RuntimeConfig::new(stage1_abi::NetConfig::Host, "h");
        let f = crate::security::isolation::seccomp_filter(
            &stage1_abi::Isolators::default(),
            &rc,
            &caps,
        )
        .unwrap()
        .unwrap();
        serde_json::to_value(f).unwrap()
    }

    const NEWUSER: u64 = libc::CLONE_NEWUSER as u64;
    const NEWNET: u64 = libc::CLONE_NEWNET as u64;
    const NEWNS: u64 = libc::CLONE_NEWNS as u64;
    const NEWCGROUP: u64 = libc::CLONE_NEWCGROUP as u64;
    const NEWPID: u64 = libc::CLONE_NEWPID as u64;

    /// What the probes get under a filter: clone with each namespace flag, plain clone,
    /// clone3, io_uring_setup; then whether busybox `unshare -U`, a shell's background job and
    /// a thread work.
    fn probes(
        filter: Value,
        libcontainer: bool,
    ) -> (Vec<Result<(), nix::errno::Errno>>, [bool; 3]) {
        use crate::sys::{probe, Probe};
        under(filter, libcontainer, || {
            let r = [
                Probe::Clone(NEWUSER),
                Probe::Clone(NEWNET | NEWNS),
                Probe::Clone(NEWCGROUP),
                Probe::Clone(NEWPID | libc::CLONE_FILES as u64),
                Probe::Clone(0),
                Probe::Clone3,
                Probe::IoUringSetup,
            ]
            .map(probe)
            .to_vec();
            let ok = |args: &[&str]| {
                std::process::Command::new("/bin/busybox")
                    .args(args)
                    .stderr(std::process::Stdio::null())
                    .status()
                    .unwrap()
                    .success()
            };
            let unshare = ok(&["unshare", "-U", "true"]);
            let job = ok(&["sh", "-c", "true & wait"]);
            let thread = std::thread::spawn(|| 7).join().unwrap() == 7;
            (r, [unshare, job, thread])
        })
    }

    #[test]
    fn default_filter_refuses_namespaces_clone3_and_io_uring_in_the_kernel() {
        use nix::errno::Errno::{ENOSYS, EPERM};
        for libcontainer in [false, true] {
            let (r, [unshare, job, thread]) = probes(default_filter(&[]), libcontainer);
            assert_eq!(
                r,
                [
                    Err(EPERM),
                    Err(EPERM),
                    Err(EPERM),
                    Err(EPERM),
                    Ok(()),
                    Err(ENOSYS),
                    Err(EPERM)
                ],
                "loaded by libcontainer: {libcontainer}"
            );
            assert!(!unshare, "unshare -U worked");
            assert!(job && thread, "fork/threads broken: {job} {thread}");
        }
    }

    #[test]
    fn cache_keys_follow_the_profile() {
        let d = tempfile::tempdir().unwrap();
        let cache = ProgramCache::new(d.path());
        let key = |f: &Value| cache.entry(f).path().to_path_buf();
        let (plain, admin) = (default_filter(&[]), default_filter(&["CAP_SYS_ADMIN"]));
        assert_eq!(key(&plain), key(&default_filter(&[])));
        assert_ne!(key(&plain), key(&admin));
        // the profile before the namespace conditions: clone allowed outright
        let mut old = plain.clone();
        old["syscalls"].as_array_mut().unwrap().truncate(1);
        old["syscalls"][0]["names"]
            .as_array_mut()
            .unwrap()
            .push(json!("clone"));
        assert_ne!(key(&plain), key(&old));
    }

    #[test]
    fn cap_sys_admin_gets_namespaces_as_in_docker() {
        for libcontainer in [false, true] {
            let (r, [unshare, job, thread]) =
                probes(default_filter(&["CAP_SYS_ADMIN"]), libcontainer);
            // io_uring stays refused
            assert_eq!(
                r,
                [
                    Ok(()),
                    Ok(()),
                    Ok(()),
                    Ok(()),
                    Ok(()),
                    Ok(()),
                    Err(nix::errno::Errno::EPERM)
                ],
                "loaded by libcontainer: {libcontainer}"
            );
            assert!(unshare && job && thread);
        }
    }
}
