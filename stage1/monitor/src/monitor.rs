//! The monitor binary's whole life: read the handoff from argv, supervise the apps on one
//! signalfd (SIGCHLD, SIGTERM, SIGINT, SIGHUP, blocked: stage1 blocked them before exec already, so
//! none that arrived in between is lost), write each app's status record when it is reaped, and when every app has exited
//! exec `rkt-stage1 teardown`.

use core::ffi::CStr;
use core::fmt::{self, Write};

use crate::handoff::{AppSpec, MonitorArg, Teardown, MAX_APPS};
use crate::pod::{App, Exit, Os, Pod};
use crate::sys::{self, Clock, Errno, Process};
use crate::{status, Buf};

/// Where status records go, relative to the pod dir (stage1-abi's `paths::STATUS_DIR`).
pub const STATUS_DIR: &str = "status";
/// [`crate::handoff::TEARDOWN`] as a C string.
pub const TEARDOWN_C: &CStr = c"teardown";

const SIGHUP: u32 = 1;
const SIGINT: u32 = 2;
const SIGTERM: u32 = crate::pod::SIGTERM as u32;
const SIGCHLD: u32 = 17;
const ECHILD: Errno = Errno(10);

/// A one-line message on stderr.
pub fn warn(args: fmt::Arguments<'_>) {
    let mut b = Buf::<512>::default();
    // a message too long for the buffer is cut, not lost
    let _ = write!(b, "rkt-monitor: {args}");
    let _ = sys::write_all(2, b.as_bytes());
    let _ = sys::write_all(2, b"\n");
}

fn fail(args: fmt::Arguments<'_>) -> ! {
    warn(args);
    sys::exit(254)
}

fn now_ms() -> u64 {
    (sys::now_ns(Clock::Monotonic) / 1_000_000) as u64
}

struct RealOs;

impl Os for RealOs {
    fn kill(&mut self, pid: i32, signal: i32) {
        let _ = sys::kill(pid, signal);
    }

    fn realtime_ns(&self) -> i64 {
        sys::now_ns(Clock::Realtime)
    }

    fn record(&mut self, app: &App<'_>) {
        if let Err(Errno(e)) = write_status(app) {
            warn(format_args!(
                "writing {STATUS_DIR}/{}: errno {e}",
                app.spec.name
            ));
        }
    }
}

const ENAMETOOLONG: Errno = Errno(36);

/// `status/<app>` and its temp file, named as stage1-abi's `write_atomic` names them.
fn status_paths(name: &str) -> Result<(Buf<320>, Buf<320>), Errno> {
    let mut tmp = Buf::<320>::default();
    let mut dst = Buf::<320>::default();
    write!(tmp, "{STATUS_DIR}/.{name}.tmp.{}", sys::getpid()).map_err(|_| ENAMETOOLONG)?;
    write!(dst, "{STATUS_DIR}/{name}").map_err(|_| ENAMETOOLONG)?;
    Ok((tmp, dst))
}

/// Write `status/<app>` by stage1-abi's rule for pod-dir files (`write_atomic`: a temp file in
/// the same dir, then rename, no fsync), which it cannot link (no std here).
fn write_status(app: &App<'_>) -> Result<(), Errno> {
    let mut json = Buf::<1024>::default();
    status::write_json(&mut json, app).map_err(|_| ENAMETOOLONG)?;
    let (mut tmp, mut dst) = status_paths(app.spec.name)?;
    let (tmp, dst) = (
        tmp.as_cstr().ok_or(ENAMETOOLONG)?,
        dst.as_cstr().ok_or(ENAMETOOLONG)?,
    );
    let written = sys::create(tmp).and_then(|fd| sys::write_all(fd.raw(), json.as_bytes()));
    let r = written.and_then(|()| sys::rename(tmp, dst));
    if r.is_err() {
        let _ = sys::unlink(tmp);
    }
    r
}

/// The monitor's main: never returns (execs teardown, or exits 254 on a broken handoff).
pub fn main(p: &Process) -> ! {
    // the pod sandbox's PID 1 (stage1's sandbox::confine execs it so)
    if p.arg(1) == Some(crate::pause::PAUSE_ARG) {
        crate::pause::main(p)
    }
    let Some(stage1) = p.arg(1) else {
        fail(format_args!(
            "usage: rkt-monitor STAGE1 --stop-timeout=S --sandbox=PID --app=NAME,PID,CREATED,STARTED…"
        ))
    };
    let blank = App::new(AppSpec {
        name: "",
        pid: 0,
        created_ns: 0,
        started_ns: 0,
    });
    let mut apps = [blank; MAX_APPS];
    let (mut n, mut stop_timeout, mut sandbox) = (0, 10, 0);
    for i in 2..p.argc() {
        let arg = p.arg(i).and_then(|a| a.to_str().ok()).unwrap_or("");
        match MonitorArg::parse(arg) {
            Ok(MonitorArg::StopTimeout(s)) => stop_timeout = s,
            Ok(MonitorArg::Sandbox(pid)) => sandbox = pid,
            Ok(MonitorArg::App(spec)) => {
                let Some(slot) = apps.get_mut(n) else {
                    fail(format_args!("more than {MAX_APPS} apps"))
                };
                *slot = App::new(spec);
                n += 1;
            }
            Err(e) => fail(format_args!("argument {arg:?}: {e}")),
        }
    }
    if n == 0 {
        fail(format_args!("no --app given"));
    }
    let mask = [SIGCHLD, SIGTERM, SIGINT, SIGHUP]
        .iter()
        .fold(0u64, |m, s| m | 1 << (s - 1));
    // stage1 blocked them already; a monitor started by hand must not lose SIGCHLD either
    if let Err(Errno(e)) = sys::block_signals(mask) {
        fail(format_args!("blocking signals: errno {e}"));
    }
    let sfd = match sys::signalfd(mask) {
        Ok(fd) => fd,
        Err(Errno(e)) => fail(format_args!("signalfd: errno {e}")),
    };
    let mut pod = Pod::new(&mut apps[..n], sandbox, stop_timeout);
    let mut os = RealOs;
    loop {
        // ECHILD with apps still recorded running cannot happen to children; if it did, waiting
        // for SIGCHLD would be forever
        let mut no_children = false;
        loop {
            match sys::wait_any_nohang() {
                Ok(Some((pid, st))) => {
                    if let Some(exit) = Exit::from_wait_status(st) {
                        pod.exited(&mut os, pid, exit, now_ms());
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    no_children = e == ECHILD;
                    break;
                }
            }
        }
        if pod.done() {
            break;
        }
        if no_children {
            warn(format_args!(
                "no child processes left while apps are recorded running"
            ));
            break;
        }
        let now = now_ms();
        pod.tick(&mut os, now);
        if let Err(Errno(e)) = sys::wait_readable(&sfd, pod.timeout_ms(now)) {
            fail(format_args!("ppoll: errno {e}"));
        }
        while let Some(sig) = sys::read_signal(&sfd) {
            if matches!(sig, SIGTERM | SIGINT | SIGHUP) {
                pod.stop_requested(&mut os, now_ms());
            }
        }
    }
    drop(sfd);
    let t = Teardown {
        exit_code: pod.exit_code(),
        sandbox_pid: pod.sandbox_pid(),
    };
    let [a, b] = t.args();
    let (mut ba, mut bb) = (Buf::<32>::default(), Buf::<32>::default());
    let _ = write!(ba, "{a}");
    let _ = write!(bb, "{b}");
    let (Some(ca), Some(cb)) = (ba.as_cstr(), bb.as_cstr()) else {
        fail(format_args!("teardown arguments too long"))
    };
    let Errno(e) = p.exec(stage1, &[stage1, TEARDOWN_C, ca, cb]);
    fail(format_args!(
        "exec {}: errno {e}; the pod's cgroups and network are left for `rkt gc`",
        stage1.to_str().unwrap_or("rkt-stage1")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_their_twins() {
        assert_eq!(TEARDOWN_C.to_str().unwrap(), crate::handoff::TEARDOWN);
        assert_eq!(STATUS_DIR, stage1_abi::paths::STATUS_DIR);
    }

    #[test]
    fn status_files_are_written_by_the_abi_rule() {
        let (mut tmp, mut dst) = status_paths("web").unwrap();
        let want = stage1_abi::paths::app_status("web");
        assert_eq!(
            dst.as_cstr().unwrap().to_str().unwrap(),
            want.to_str().unwrap()
        );
        let want_tmp = stage1_abi::temp_path(&want);
        assert_eq!(
            tmp.as_cstr().unwrap().to_str().unwrap(),
            want_tmp.to_str().unwrap()
        );
    }
}
