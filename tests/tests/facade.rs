//! A second front end: a pod prepared, run, listed, stopped and removed through
//! `stage0::Runtime` alone, with no `rkt` binary involved (as the CRI server will drive pods).
//! The run happens in a child process — this test binary run again, which calls
//! `Runtime::run_prepared` and so becomes stage1 (same PID) — since a run replaces its caller.

use std::process::{Command, Stdio};
use std::time::Duration;

use rkt_tests::{images, TestCtx};
use stage0::gc::StopOutcome;
use stage0::pods::State;
use stage0::request::{AppFlags, AppRequest, NetConfig, PodRequest};
use stage0::{Dirs, Insecure, PodSource, PrepareRequest, RunRequest, Runtime, Wait};

/// Set in the child: `ROOT\nUUID` of the pod it is to run.
const CHILD: &str = "RKT_FACADE_TEST_CHILD";

fn runtime(root: &std::path::Path) -> Runtime {
    Runtime::open(Dirs {
        data: root.join("data"),
        system_config: root.join("system"),
        local_config: root.join("local"),
        user_config: None,
    })
    .expect("open the runtime")
    // signatures are the trust issue's; digests are always verified
    .with_insecure(Insecure {
        image: true,
        ..Default::default()
    })
    .with_stage1(&rkt_tests::bin_dir().join("rkt-stage1"))
    .expect("rkt-stage1 built by `make build`")
}

/// The child's half: become the pod. Does nothing in a normal test run.
#[test]
fn facade_child_runs_the_prepared_pod() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (root, uuid) = spec.split_once('\n').expect("ROOT\\nUUID");
    let rt = runtime(std::path::Path::new(root));
    let run = RunRequest {
        net: NetConfig::None,
        stop_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let e = rt.run_prepared(uuid, &run).unwrap_err();
    panic!("run_prepared returned: {e}");
}

#[test]
fn a_second_front_end_drives_a_pod_through_the_runtime_alone() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let ctx = TestCtx::new();
    let rt = runtime(ctx.root());

    // prepare
    let app = AppRequest {
        image: images::busybox().oci_ref(),
        flags: AppFlags {
            name: Some("sleeper".into()),
            exec: Some("/bin/sleep".into()),
            ..Default::default()
        },
        args: Some(vec!["300".into()]),
    };
    let pod = PodRequest {
        apps: vec![app],
        ..Default::default()
    };
    let uuid = rt
        .prepare(&PrepareRequest::new(PodSource::Apps(pod)))
        .expect("prepare");
    let listed = rt.list().unwrap();
    assert!(listed.unreadable.is_empty(), "{:?}", listed.unreadable);
    assert_eq!(listed.pods.len(), 1);
    assert_eq!(listed.pods[0].uuid, uuid);
    assert_eq!(listed.pods[0].state, State::Prepared);

    // run: the child becomes the pod's stage1
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "facade_child_runs_the_prepared_pod",
            "--nocapture",
        ])
        .env(CHILD, format!("{}\n{uuid}", ctx.root().display()))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let running = rt
        .status(&uuid[..8], Wait::For(Duration::from_secs(60)), Wait::No)
        .expect("the pod gets ready");
    assert_eq!(running.state, State::Running);
    assert_eq!(
        running.pid,
        Some(child.id() as i32),
        "the child itself is the pod"
    );
    let m = rt.manifest(&uuid).unwrap();
    assert_eq!(m.apps[0].name, "sleeper");

    // stop: SIGTERM to the pod; a requested stop exits 0 (docs/pod-lifecycle.md)
    assert_eq!(
        rt.stop(&uuid, false).unwrap(),
        (uuid.clone(), StopOutcome::Signalled)
    );
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0), "{st:?}");
    let exited = rt
        .status(&uuid, Wait::No, Wait::For(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(exited.state, State::Exited);
    assert!(exited.apps[0].finished(), "{:?}", exited.apps);

    // remove
    assert_eq!(rt.rm(&uuid[..8]).unwrap(), uuid);
    assert!(rt.list().unwrap().pods.is_empty());
    assert!(rt.status(&uuid, Wait::No, Wait::No).is_err());
    ctx.assert_nothing_left();
}
