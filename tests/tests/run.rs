//! `rkt run` / `rkt prepare` / `rkt run-prepared` end to end: the stage0 half (pod dirs,
//! manifest, overlay mounts, exec of stage1) with the real store and stage1.

use rkt_tests::{cleanup, images, stderr, stdout, TestCtx};
use std::process::Output;

fn bb() -> String {
    images::busybox().oci_ref()
}

fn one_line_254(o: &Output, want: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(254), "stderr: {err}");
    assert!(err.contains(want), "want {want:?} in {err:?}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}

#[test]
fn run_true_exits_0_and_false_exits_1() {
    let ctx = TestCtx::new();
    let o = ctx.rkt_output(&["run", "--net=host", &bb(), "--exec", "/bin/true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = ctx.rkt_output(&["run", "--net=host", &bb(), "--exec", "/bin/false"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // the exited pods stay in run/ (for status/gc) and are unlocked
    assert_eq!(ctx.pods_in("run").len(), 2);
    // ... with their files but not their rootfs mounts, also when the app could not start
    let o = ctx.rkt_output(&["run", "--net=host", &bb(), "--exec", "/bin/nope"]);
    assert_eq!(o.status.code(), Some(254), "{}", stderr(&o));
    // one line that names the cause, not libcontainer's chain of wrappers
    let e = stderr(&o);
    assert!(e.contains("executable \"/bin/nope\" not found"), "{e}");
    assert!(!e.contains("error in executing process"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    cleanup::assert_no_mounts_under(&ctx.dir(), "mounts left by exited pods");
}

#[test]
fn app_args_reach_the_app_and_env_precedence_holds() {
    let ctx = TestCtx::new();
    let envfile = ctx.root().join("env");
    std::fs::write(&envfile, "# comment\nFROM_FILE=file\nOVER=file\n").unwrap();
    let o = ctx
        .rkt()
        .arg("--insecure-options=image")
        .env("HOST_ONLY", "host")
        .args([
            "run",
            "--inherit-env",
            "--set-env-file",
            envfile.to_str().unwrap(),
            "--set-env=OVER=setenv",
            "--set-env=APPOVER=setenv",
            &bb(),
            "--environment=APPOVER=app",
            "--exec=/bin/sh",
            "--",
            "-c",
            "echo $HOST_ONLY $FROM_FILE $OVER $APPOVER $AC_APP_NAME; exit 5",
            "---",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "host file setenv app busybox");
}

#[test]
fn uuid_file_and_pod_dir_contents() {
    let ctx = TestCtx::new();
    let uf = ctx.root().join("uuid");
    let o = ctx.rkt_output(&[
        "run",
        "--uuid-file-save",
        uf.to_str().unwrap(),
        &bb(),
        "--name=first",
        "--exec=/bin/true",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let uuid = std::fs::read_to_string(&uf).unwrap();
    let pod = ctx.dir().join("pods/run").join(uuid.trim());
    for f in ["pod", "pod-created", "runtime.json", "apps/first/image"] {
        assert!(pod.join(f).exists(), "{f} missing in {}", pod.display());
    }
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pod.join("pod")).unwrap()).unwrap();
    assert_eq!(m["apps"][0]["name"], "first");
    let rc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pod.join("runtime.json")).unwrap()).unwrap();
    assert_eq!(rc["hostname"], format!("rkt-{}", uuid.trim()));
    // the overlay was released when the pod exited (nothing to collect but files); what the
    // app wrote stays in its upper dir until gc
    cleanup::assert_no_mounts_under(&ctx.dir(), "mounts left after the pod exited");
    assert!(pod.join("apps/first/upper").is_dir());
    assert!(!pod.join("apps/first/rootfs/bin/busybox").exists());
}

#[test]
fn bad_input_exits_254_and_leaves_nothing() {
    let ctx = TestCtx::new();
    let b = bb();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run"], "must provide at least one image"),
        (
            vec!["run", "--", "x"],
            "an image is required before any app arguments",
        ),
        (
            vec!["run", &b, "--", "a", "---", "--", "b"],
            "only one set of app arguments allowed per image",
        ),
        (vec!["run", &b, &b], "multiple apps with name busybox"),
        (
            vec!["run", &b, "--mount", "volume=nope,target=/x"],
            "dangling mount point",
        ),
        (
            vec!["run", "--volume=v,kind=host,source=/nonexistent/src", &b],
            "No such file or directory",
        ),
        (
            vec!["run", "--interactive", &b, &b, "--name=two"],
            "interactive option only supports one image",
        ),
        (vec!["run", "docker://127.0.0.1:1/nope:latest"], ""),
        (vec!["run", &b, "--memory=lots"], "invalid --memory"),
        (
            vec!["run-prepared", "ffffffff"],
            "no matches found for \"ffffffff\"",
        ),
    ];
    for (args, want) in cases {
        let o = ctx.rkt_output(&args);
        one_line_254(&o, want);
        ctx.assert_nothing_left();
    }
}

#[test]
fn missing_stage1_fails_before_creating_a_pod() {
    let ctx = TestCtx::new();
    let o = ctx.rkt_output(&["run", "--stage1-path=/nonexistent/rkt-stage1", &bb()]);
    one_line_254(&o, "/nonexistent/rkt-stage1");
    ctx.assert_nothing_left();
}

#[test]
fn prepare_then_run_prepared_once() {
    let ctx = TestCtx::new();
    let o = ctx.rkt_output(&[
        "prepare",
        "--quiet",
        &bb(),
        "--exec=/bin/sh",
        "--",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let uuid = stdout(&o).trim().to_string();
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert_eq!(ctx.pods_in("prepared"), vec![uuid.clone()]);
    // a prepared pod holds no mounts
    cleanup::assert_no_mounts_under(&ctx.dir(), "mounts held by a prepared pod");
    let o = ctx.rkt_output(&["run-prepared", &uuid[..8]]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(ctx.pods_in("run"), vec![uuid.clone()]);
    let o = ctx.rkt_output(&["run-prepared", &uuid]);
    one_line_254(&o, &format!("pod \"{uuid}\" is not prepared"));
}

#[test]
fn only_one_of_two_racing_run_prepared_wins() {
    let ctx = TestCtx::new();
    let o = ctx.rkt_output(&["prepare", "--quiet", &bb(), "--exec=/bin/sleep", "--", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let uuid = stdout(&o).trim().to_string();
    let spawn = || {
        ctx.rkt()
            .arg("--insecure-options=image")
            .args(["run-prepared", &uuid])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    assert!(codes.contains(&Some(0)), "{codes:?}");
    assert!(codes.contains(&Some(254)), "{codes:?}");
    let loser = if a.status.code() == Some(254) { &a } else { &b };
    assert!(
        stderr(loser).contains("is not prepared"),
        "{}",
        stderr(loser)
    );
}

#[test]
fn image_volume_and_host_volume_mounts() {
    let ctx = TestCtx::new();
    let host = ctx.root().join("hostvol");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("hello"), "from host\n").unwrap();
    let vol = format!("data,kind=host,source={}", host.display());
    let o = ctx.rkt_output(&[
        "run",
        "--volume",
        &vol,
        &bb(),
        "--mount=volume=data,target=/mnt/data",
        "--exec=/bin/cat",
        "--",
        "/mnt/data/hello",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from host\n");
}

/// An image with Entrypoint/Cmd/Env/User/WorkingDir/Volumes/ExposedPorts, built once.
fn configured_image() -> String {
    use rkt_tests::tarball::{tar_bytes, write_image, Entry, ImageSpec};
    static IMG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IMG.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("rkt-run-img-")
            .tempdir_in(images::scratch())
            .unwrap()
            .keep();
        let mut entries = images::busybox_entries();
        entries.push(Entry::dir("srv"));
        entries.push(Entry::dir("data").owner(1000, 1000).mode(0o750));
        entries.push(Entry::file("data/seed", "seeded\n"));
        let spec = ImageSpec {
            env: vec![
                "PATH=/bin:/sbin".into(),
                "IMG=image".into(),
                "OVER=image".into(),
            ],
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: vec!["echo $IMG $OVER $(pwd) $(id -u):$(id -g)".into()],
            working_dir: "/srv".into(),
            user: Some("1000:1000".into()),
            volumes: vec!["/data".into()],
            exposed_ports: vec!["80/tcp".into()],
        };
        let img = write_image(
            &dir.join("oci"),
            "configured",
            &[tar_bytes(&entries)],
            &spec,
        );
        img.oci_ref()
    })
    .clone()
}

#[test]
fn oci_config_maps_like_docker_run() {
    let ctx = TestCtx::new();
    let img = configured_image();
    let uf = ctx.root().join("u");
    let o = ctx.rkt_output(&[
        "run",
        "--set-env=OVER=setenv",
        &format!("--uuid-file-save={}", uf.display()),
        &img,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "image setenv /srv 1000:1000\n");
    // the manifest carries the implicit volume and the named port
    let uuid = std::fs::read_to_string(&uf).unwrap();
    let m: serde_json::Value =
        serde_json::from_str(&stdout(&ctx.rkt_output(&["cat-manifest", uuid.trim()]))).unwrap();
    assert_eq!(m["apps"][0]["ports"][0]["name"], "80-tcp");
    assert_eq!(m["apps"][0]["mounts"][0]["target"], "/data");
    // args after -- replace Cmd, keep Entrypoint; the image VOLUME is pre-populated
    let o = ctx.rkt_output(&[
        "run",
        &img,
        "--",
        "cat /data/seed; stat -c '%u:%g %a' /data; touch /data/new && echo rw",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "seeded\n1000:1000 750\nrw\n");
    // --user/--group/--supplementary-gids/--working-dir override the image
    let o = ctx.rkt_output(&[
        "run",
        &img,
        "--user=0",
        "--group=0",
        "--supplementary-gids=5,6",
        "--working-dir=/tmp",
        "--",
        "echo $(pwd) $(id -u) $(id -G)",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "/tmp 0 0 5 6\n");
}

#[test]
fn volumes_readonly_rootfs_and_hostname() {
    let ctx = TestCtx::new();
    let host = ctx.root().join("ro");
    std::fs::create_dir_all(&host).unwrap();
    let ro = format!("ro,kind=host,source={},readOnly=true", host.display());
    let script = "stat -c %a /e; touch /ro/x 2>/dev/null && echo ro-writable; \
                  touch /rootfile 2>/dev/null && echo rootfs-writable; \
                  touch /e/ok && echo empty-writable; hostname";
    let o = ctx.rkt_output(&[
        "run",
        "--hostname=podhost",
        "--volume=e,kind=empty,mode=0700",
        "--volume",
        &ro,
        "--mount=volume=e,target=/e",
        &bb(),
        "--mount=volume=ro,target=/ro",
        "--readonly-rootfs",
        "--exec=/bin/sh",
        "--",
        "-c",
        script,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "700\nempty-writable\npodhost\n");
}

#[test]
fn caps_and_seccomp_flags_reach_the_app() {
    let ctx = TestCtx::new();
    let o = ctx.rkt_output(&[
        "run",
        &bb(),
        "--caps-retain=CAP_NET_ADMIN,CAP_KILL",
        "--exec=/bin/sh",
        "--",
        "-c",
        "grep CapBnd /proc/self/status",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // CAP_KILL = 5, CAP_NET_ADMIN = 12
    assert_eq!(
        stdout(&o).split_whitespace().nth(1),
        Some("0000000000001020")
    );
    assert_mkdir_denied(&ctx);
}

/// Run a pod whose `--seccomp` filter makes mkdir fail with EPERM; check the app saw exactly
/// that and made no dir.
fn assert_mkdir_denied(ctx: &TestCtx) {
    let o = ctx.rkt_output(&[
        "run",
        &bb(),
        "--seccomp=mode=remove,errno=EPERM,mkdir,mkdirat",
        "--exec=/bin/sh",
        "--",
        "-c",
        "mkdir /tmp/x 2>&1; test ! -e /tmp/x",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Operation not permitted"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn seccomp_programs_are_built_once_and_checked_before_use() {
    let ctx = TestCtx::new();
    let cache = ctx.dir().join("cache/seccomp");
    let entries = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    assert_mkdir_denied(&ctx);
    let first = entries();
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        first[0].extension().is_some_and(|e| e == "bpf"),
        "{first:?}"
    );
    let built = std::fs::read(&first[0]).unwrap();
    let mtime = std::fs::metadata(&first[0]).unwrap().modified().unwrap();
    // the second pod is served from the entry and is confined the same
    assert_mkdir_denied(&ctx);
    assert_eq!(entries(), first);
    assert_eq!(
        std::fs::metadata(&first[0]).unwrap().modified().unwrap(),
        mtime
    );
    // a damaged entry is not loaded: the pod gets a freshly built filter, the entry is repaired
    let mut bad = built.clone();
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    std::fs::write(&first[0], &bad).unwrap();
    assert_mkdir_denied(&ctx);
    assert_eq!(std::fs::read(&first[0]).unwrap(), built);
    // another filter, another entry
    let o = ctx.rkt_output(&["run", &bb(), "--exec=/bin/true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(entries().len(), 2);
}

#[test]
fn writable_layer_is_volatile_and_kept_after_exit() {
    let ctx = TestCtx::new();
    let (o, uuid) = ctx.run_sh(
        &bb(),
        "echo kept > /written; grep ' / / ' /proc/self/mountinfo",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // the pod's exit does not sync the host's file system
    assert!(stdout(&o).contains("fsync=volatile"), "{}", stdout(&o));
    let upper = ctx
        .dir()
        .join("pods/run")
        .join(&uuid)
        .join("apps/busybox/upper/written");
    assert_eq!(std::fs::read_to_string(&upper).unwrap(), "kept\n");
    cleanup::assert_no_mounts_under(&ctx.dir(), "overlay left mounted");
}

#[test]
fn exit_codes_pass_through_including_signals() {
    let ctx = TestCtx::new();
    for (script, want) in [
        ("exit 0", 0),
        ("exit 5", 5),
        ("kill -9 $$", 137),
        ("kill -15 $$", 143),
    ] {
        let o = ctx.rkt_output(&["run", &bb(), "--exec=/bin/sh", "--", "-c", script]);
        assert_eq!(o.status.code(), Some(want), "{script}: {}", stderr(&o));
    }
}

#[test]
fn one_failing_app_stops_the_pod_with_its_code() {
    let ctx = TestCtx::new();
    let uf = ctx.root().join("u");
    let start = std::time::Instant::now();
    let o = ctx.rkt_output(&[
        "run",
        &format!("--uuid-file-save={}", uf.display()),
        &bb(),
        "--name=sleeper",
        "--exec=/bin/sleep",
        "--",
        "300",
        "---",
        &bb(),
        "--name=failer",
        "--exec=/bin/sh",
        "--",
        "-c",
        "sleep 0.3; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    let uuid = std::fs::read_to_string(&uf).unwrap();
    let st = stdout(&ctx.rkt_output(&["status", uuid.trim()]));
    assert!(st.contains("app-failer=3"), "{st}");
    assert!(st.contains("app-sleeper=0"), "{st}");
}

/// An app that fails after stage1 handed the pod to rkt-monitor: the monitor stops the others
/// and its teardown exits with that code; the app that had exited before the handoff keeps its
/// record.
#[test]
fn app_failing_after_the_monitor_took_over() {
    let ctx = TestCtx::new();
    let uf = ctx.root().join("u");
    let child = ctx
        .rkt()
        .arg("--insecure-options=image")
        .args([
            "run",
            &format!("--uuid-file-save={}", uf.display()),
            &bb(),
            "--name=quick",
            "--exec=/bin/true",
            &bb(),
            "--name=late",
            "--exec=/bin/sh",
            "--",
            "-c",
            "sleep 2.5; exit 7",
            "---",
            &bb(),
            "--name=sleeper",
            "--exec=/bin/sleep",
            "--",
            "300",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let t = std::time::Instant::now();
    let exe = || std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    while !exe().ends_with("rkt-monitor") {
        assert!(
            t.elapsed() < std::time::Duration::from_millis(2400),
            "no handoff to rkt-monitor: {}",
            exe().display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let uuid = std::fs::read_to_string(&uf).unwrap();
    let st = stdout(&ctx.rkt_output(&["status", uuid.trim()]));
    for want in ["app-quick=0", "app-late=7", "app-sleeper=0"] {
        assert!(st.lines().any(|l| l == want), "{want}: {st}");
    }
}

/// Pure cgroup v2 as far as stage1 can see: a private mount namespace whose /sys/fs/cgroup is
/// the unified hierarchy only (on this hybrid host it holds just hugetlb). The pod runs in its own
/// v2 cgroups, which are gone afterwards; a limit whose controller v2 does not have here is a
/// one-line error naming the controller.
#[test]
fn pods_run_on_a_cgroup_v2_only_view() {
    let unified = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|p| std::path::Path::new(p).join("cgroup.controllers").exists())
        .expect("a cgroup2 mount");
    let ctx = TestCtx::new();
    let v2 = |args: &[&str]| {
        let script = "umount -R /sys/fs/cgroup 2>/dev/null || umount -l /sys/fs/cgroup; \
                      mount -t cgroup2 none /sys/fs/cgroup && exec \"$@\"";
        ctx.rkt_under(&[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg("--insecure-options=image")
        .args(args)
        .output()
        .unwrap()
    };
    let uf = ctx.root().join("u");
    let o = v2(&[
        "run",
        "--net=host",
        &format!("--uuid-file-save={}", uf.display()),
        &bb(),
        "--exec=/bin/sh",
        "--",
        "-c",
        "cat /proc/self/cgroup; exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stdout(&o).lines().any(|l| l == "0::/"),
        "the app sees its own cgroup namespace: {}",
        stdout(&o)
    );
    let uuid = std::fs::read_to_string(&uf).unwrap();
    let left = std::path::Path::new(unified).join("rkt").join(uuid.trim());
    assert!(!left.exists(), "cgroup left: {}", left.display());
    let o = v2(&[
        "run",
        "--net=host",
        &bb(),
        "--memory=64M",
        "--exec=/bin/true",
    ]);
    let have_memory =
        std::fs::read_to_string(std::path::Path::new(unified).join("cgroup.controllers"))
            .unwrap()
            .split_whitespace()
            .any(|c| c == "memory");
    if have_memory {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    } else {
        assert_eq!(o.status.code(), Some(254), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("\"memory\" controller") && e.lines().count() == 1,
            "{e}"
        );
    }
}

#[test]
fn sigterm_to_rkt_run_stops_the_pod_within_the_timeout() {
    let ctx = TestCtx::new();
    let mut child = rkt_tests::spawn_until_line(
        ctx.rkt().arg("--insecure-options=image").args([
            "run",
            "--stop-timeout=2",
            &bb(),
            "--exec=/bin/sh",
            "--",
            "-c",
            "trap '' TERM; echo up; sleep 300",
        ]),
        "up\n",
    );
    let t = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = child.wait().unwrap();
    let took = t.elapsed();
    assert!(st.code().is_some(), "{st:?}");
    assert!(
        took >= std::time::Duration::from_millis(1500) && took < std::time::Duration::from_secs(8),
        "stopped after {took:?}"
    );
}

#[test]
fn run_from_a_registry_then_from_the_store() {
    let ctx = TestCtx::new();
    let reg = rkt_tests::registry::shared();
    images::push(images::busybox(), reg.http_addr(), "stage0/busybox:run");
    let img = format!("docker://{}/stage0/busybox:run", reg.http_addr());
    let run = |extra: &[&str]| {
        ctx.rkt()
            .arg("--insecure-options=image,http")
            .arg("run")
            .args(extra)
            .args([
                img.as_str(),
                "--exec=/bin/sh",
                "--",
                "-c",
                "echo $AC_APP_NAME",
            ])
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "busybox\n");
    // now cached: --pull-policy=never works
    let o = run(&["--pull-policy=never"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn pod_manifest_round_trips_through_cat_manifest() {
    let ctx = TestCtx::new();
    let uf = ctx.root().join("u");
    let o = ctx.rkt_output(&[
        "prepare",
        "--quiet",
        &format!("--uuid-file-save={}", uf.display()),
        &bb(),
        "--name=again",
        "--exec=/bin/sh",
        "--",
        "-c",
        "echo from-manifest $AC_APP_NAME; exit 6",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let uuid = std::fs::read_to_string(&uf).unwrap();
    let man = ctx.root().join("pod.json");
    let o = ctx.rkt_output(&["cat-manifest", uuid.trim()]);
    std::fs::write(&man, &o.stdout).unwrap();
    let pm = format!("--pod-manifest={}", man.display());
    let o = ctx.rkt_output(&["run", &pm]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from-manifest again\n");
    let o = ctx.rkt_output(&["prepare", &pm]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = ctx.rkt_output(&["run", &pm, &bb()]);
    one_line_254(&o, "conflicting flags set with --pod-manifest (see --help)");
    let o = ctx.rkt_output(&["run", &pm, "--set-env=A=b"]);
    one_line_254(&o, "conflicting flags set with --pod-manifest");
}

/// Single-quote `s` for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `rkt` arguments of the interactive tests: a busybox shell as the pod's one app.
fn interactive_sh() -> Vec<String> {
    [
        "--insecure-options=image",
        "run",
        "--interactive",
        "--net=host",
        &bb(),
        "--exec",
        "/bin/sh",
    ]
    .map(str::to_string)
    .to_vec()
}

#[test]
fn interactive_app_gets_a_controlling_terminal() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let ctx = TestCtx::new();
    let rkt = ctx.rkt();
    let mut words: Vec<String> = vec![rkt.get_program().to_string_lossy().into_owned()];
    words.extend(rkt.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.extend(interactive_sh());
    let cmd = words
        .iter()
        .map(|w| sh_quote(w))
        .collect::<Vec<_>>()
        .join(" ");
    // afterwards the terminal must have left raw mode
    let cmd = format!("{cmd}; rc=$?; echo STTY=$(stty -a | grep -o -- '-*icanon'); exit $rc");
    // script(1) runs rkt on a fresh pty as its controlling terminal and relays our pipes
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    stdin
        .write_all(b"tty; echo CTTY=$(cut -d' ' -f7 /proc/self/stat); exit 3\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "rkt run --interactive did not exit: {}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    let text = reader.join().unwrap();
    assert_eq!(status.code(), Some(3), "output: {text:?}");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("/dev/pts/") || *l == "/dev/console"),
        "the app's stdin is no terminal: {text:?}"
    );
    assert!(!text.contains("not a tty"), "{text:?}");
    let tty_nr: Vec<i64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("CTTY=")?.parse().ok())
        .collect();
    assert_eq!(tty_nr.len(), 1, "no tty_nr in {text:?}");
    assert_ne!(tty_nr[0], 0, "no controlling terminal: {text:?}");
    assert!(
        lines.contains(&"STTY=icanon"),
        "the terminal stayed raw: {text:?}"
    );
}

#[test]
fn interactive_without_a_terminal_passes_stdio() {
    let ctx = TestCtx::new();
    let o =
        rkt_tests::output_with_stdin(ctx.rkt().args(interactive_sh()), b"tty; echo hi; exit 4\n");
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("not a tty"), "{out:?}");
    assert!(out.contains("hi"), "{out:?}");
}

/// On the caller's own terminal (a pty whose controlling process is `rkt run`): Ctrl-C reaches
/// the interactive app — rkt relays the terminal raw, so it is not rkt that gets SIGINT — and a
/// window size change of the caller's terminal reaches the app's.
#[test]
fn interactive_app_gets_ctrl_c_and_window_size_changes() {
    let ctx = TestCtx::new();
    // -c: the pty (stdin) becomes rkt's controlling terminal; -w: wait for it
    let mut rkt = ctx.rkt_under(&["setsid", "-c", "-w"]);
    rkt.args(interactive_sh());
    assert_eq!(rkt_tests::terminal::drive_shell(&mut rkt, 33, 77), Some(3));
}

/// The CPUs each `/proc/<pid>/status` in `out` allows, from their `Cpus_allowed_list` lines.
fn cpus_allowed(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
        .collect()
}

/// stage1 starts each app's helper and the sandbox on another CPU than its own
/// (docs/performance.md); the app and the pod's PID 1 still get the caller's CPU affinity,
/// whole or restricted (`taskset`).
#[test]
fn app_gets_the_callers_cpu_affinity() {
    let ctx = TestCtx::new();
    // the app's own and the pause process's (PID 1 of the pod's pid namespace)
    let pod_cpus = |taskset: Option<&str>| {
        let mut cmd = match taskset {
            Some(list) => ctx.rkt_under(&["taskset", "-c", list]),
            None => ctx.rkt(),
        };
        let o = cmd
            .arg("--insecure-options=image")
            .args([
                "run",
                "--net=host",
                &bb(),
                "--exec=/bin/cat",
                "--",
                "/proc/self/status",
                "/proc/1/status",
            ])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        cpus_allowed(&stdout(&o))
    };
    let mine = cpus_allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    assert_eq!(mine.len(), 1);
    assert_eq!(pod_cpus(None), [mine[0].clone(), mine[0].clone()]);
    let first = mine[0].split([',', '-']).next().unwrap().trim().to_string();
    assert_eq!(pod_cpus(Some(&first)), [first.clone(), first]);
}
