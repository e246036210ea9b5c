//! The CRI runtime service driven as the kubelet drives it (a gRPC client on the socket): pod
//! sandboxes and containers on mutable pods, logs in the CRI format, ExecSync, idempotent stop
//! and remove, the server killed and restarted under running pods, and pods of `rkt` beside
//! pods of the CRI on one data dir. The whole conformance suite is `make critest`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rkt_cri::proto::image_service_client::ImageServiceClient;
use rkt_cri::proto::runtime_service_client::RuntimeServiceClient;
use rkt_cri::proto::*;
use rkt_tests::{images, stdout, TestCtx};
use tonic::transport::Channel;

mod cri_common;
use cri_common::accept_unsigned;

/// The server these tests run: pods with no network but their own loopback.
fn start(ctx: &TestCtx, socket: &Path) -> Child {
    cri_common::start(ctx, socket, &["--net=none"])
}

async fn clients(socket: PathBuf) -> (RuntimeServiceClient<Channel>, ImageServiceClient<Channel>) {
    let ch = cri_common::channel(socket).await;
    (
        RuntimeServiceClient::new(ch.clone()),
        ImageServiceClient::new(ch),
    )
}

/// Pull `image` and run a sandbox `name`; its id.
async fn pull_and_run_sandbox(
    run: &mut RuntimeServiceClient<Channel>,
    img: &mut ImageServiceClient<Channel>,
    image: &str,
    name: &str,
    logs: &Path,
) -> String {
    img.pull_image(PullImageRequest {
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    run.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(sandbox_config(name, logs)),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .pod_sandbox_id
}

fn sandbox_config(name: &str, logs: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "test".into(),
            attempt: 1,
        }),
        hostname: format!("{name}-host"),
        log_directory: logs.display().to_string(),
        labels: [("app".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

fn container_config(name: &str, image: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}.log"),
        labels: [("c".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

/// Poll `f` until it is true (10 s at most).
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn state_of(run: &mut RuntimeServiceClient<Channel>, id: &str) -> ContainerStatus {
    run.container_status(ContainerStatusRequest {
        container_id: id.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .status
    .unwrap()
}

#[test]
fn pods_and_containers_live_through_a_server_restart_and_leave_nothing() {
    let ctx = TestCtx::new();
    let reg = rkt_tests::registry::shared();
    images::push(images::busybox(), reg.http_addr(), "cri/runtime:1");
    let image = format!("{}/cri/runtime:1", reg.http_addr());
    accept_unsigned(&ctx, &[reg.http_addr()]);
    let logs = ctx.root().join("logs");
    let socket = ctx.root().join("cri.sock");
    let mut srv = start(&ctx, &socket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let (pod, ctr, ticker) = rt.block_on(async {
        let (mut run, mut img) = clients(socket.clone()).await;
        let pod = pull_and_run_sandbox(&mut run, &mut img, &image, "web", &logs).await;
        let st = run
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
        assert_eq!(st.metadata.unwrap().name, "web");

        // a container: created, then running, its output in the CRI log format
        let create = |name: &str, script: &str| CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container_config(name, &image, script)),
            sandbox_config: Some(sandbox_config("web", &logs)),
        };
        let ctr = run
            .create_container(create(
                "main",
                "echo hello; hostname; echo oops >&2; exec sleep 300",
            ))
            .await
            .unwrap()
            .into_inner()
            .container_id;
        assert_eq!(
            state_of(&mut run, &ctr).await.state,
            ContainerState::ContainerCreated as i32
        );
        // the same name and attempt twice is refused
        let e = run
            .create_container(create("main", "true"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e}");
        run.start_container(StartContainerRequest {
            container_id: ctr.clone(),
        })
        .await
        .unwrap();
        let log = logs.join("main.log");
        eventually("the log has the container's output", async || {
            std::fs::read_to_string(&log).is_ok_and(|s| s.lines().count() >= 3)
        })
        .await;
        let text = std::fs::read_to_string(&log).unwrap();
        let records: Vec<(&str, &str, &str)> = text
            .lines()
            .map(|l| {
                let mut p = l.splitn(4, ' ');
                let ts = p.next().unwrap();
                assert!(ts.ends_with('Z') && ts.contains('T'), "{l}");
                (p.next().unwrap(), p.next().unwrap(), p.next().unwrap_or(""))
            })
            .collect();
        assert!(records.contains(&("stdout", "F", "hello")), "{text}");
        assert!(records.contains(&("stdout", "F", "web-host")), "{text}");
        assert!(records.contains(&("stderr", "F", "oops")), "{text}");

        // ExecSync: output and exit code; a missing container is NotFound
        let exec = |cmd: &[&str]| ExecSyncRequest {
            container_id: ctr.clone(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 10,
        };
        let r = run
            .exec_sync(exec(&["hostname"]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r.exit_code, r.stdout.as_slice()), (0, &b"web-host\n"[..]));
        let r = run
            .exec_sync(exec(&["sh", "-c", "echo err >&2; exit 3"]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r.exit_code, r.stderr.as_slice()), (3, &b"err\n"[..]));
        let e = run
            .exec_sync(ExecSyncRequest {
                container_id: "nope".into(),
                cmd: vec!["true".into()],
                timeout: 1,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);

        // a container that keeps writing, for the log rotation after the restart
        let ticker = run
            .create_container(create(
                "ticker",
                "while true; do echo tick; sleep 0.05; done",
            ))
            .await
            .unwrap()
            .into_inner()
            .container_id;
        run.start_container(StartContainerRequest {
            container_id: ticker.clone(),
        })
        .await
        .unwrap();
        (pod, ctr, ticker)
    });

    // the server dies hard: its pods are not its children and go on
    let pod_pid: i32 = std::fs::read_to_string(ctx.dir().join("pods/run").join(&pod).join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ppid = std::fs::read_to_string(format!("/proc/{pod_pid}/stat")).unwrap();
    let ppid: i32 = ppid
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid as u32, srv.id(), "the pod is the server's child");
    srv.kill().unwrap();
    srv.wait().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pod_pid}")).exists());
    // a pod of rkt beside it on the same data dir
    let (mut cli_pod, cli_uuid) = ctx.spawn_pod(
        &[],
        &[
            &images::busybox().oci_ref(),
            "--exec=/bin/sleep",
            "--",
            "300",
        ],
        Stdio::null(),
    );
    let mut srv = start(&ctx, &socket);
    rt.block_on(async {
        let (mut run, _) = clients(socket.clone()).await;
        let pods = run
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(pods.len(), 1, "only the CRI's pod: {pods:?}");
        assert_eq!(pods[0].id, pod);
        assert_eq!(pods[0].state, PodSandboxState::SandboxReady as i32);
        let list = run
            .list_containers(ListContainersRequest {
                filter: Some(ContainerFilter {
                    label_selector: [("c".to_string(), "main".to_string())].into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, ctr);
        assert_eq!(list[0].state, ContainerState::ContainerRunning as i32);
        let r = run
            .exec_sync(ExecSyncRequest {
                container_id: ctr.clone(),
                cmd: vec!["echo".into(), "still here".into()],
                timeout: 10,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.stdout, b"still here\n");

        // log rotation: the kubelet renames the file, then asks for a reopen
        let tick_log = logs.join("ticker.log");
        std::fs::rename(&tick_log, logs.join("ticker.log.1")).unwrap();
        run.reopen_container_log(ReopenContainerLogRequest {
            container_id: ticker.clone(),
        })
        .await
        .unwrap();
        eventually("the reopened log fills", async || {
            std::fs::read_to_string(&tick_log).is_ok_and(|s| s.contains("stdout F tick"))
        })
        .await;

        // stop: the container's end is on record, its code the signal's
        run.stop_container(StopContainerRequest {
            container_id: ctr.clone(),
            timeout: 2,
        })
        .await
        .unwrap();
        let st = state_of(&mut run, &ctr).await;
        assert_eq!(st.state, ContainerState::ContainerExited as i32);
        assert_eq!((st.exit_code, st.reason.as_str()), (143, "Error"));
        assert!(st.finished_at >= st.started_at && st.started_at > st.created_at);

        // idempotent: stop and remove twice, unknown ids too
        for _ in 0..2 {
            run.stop_container(StopContainerRequest {
                container_id: ctr.clone(),
                timeout: 0,
            })
            .await
            .unwrap();
            run.remove_container(RemoveContainerRequest {
                container_id: ctr.clone(),
            })
            .await
            .unwrap();
        }
        let e = run
            .container_status(ContainerStatusRequest {
                container_id: ctr.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        for _ in 0..2 {
            run.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .unwrap();
        }
        let st = run
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        assert_eq!(st.state, PodSandboxState::SandboxNotready as i32);
        for _ in 0..2 {
            run.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .unwrap();
        }
        run.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: "no-such-pod".into(),
        })
        .await
        .unwrap();
        let e = run
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
    });
    // the pod of rkt was never the CRI's business
    let list = stdout(&ctx.rkt_output(&["list", "--no-legend"]));
    assert!(
        list.contains(&cli_uuid[..8]) && list.contains("running"),
        "{list}"
    );
    assert!(!list.contains(&pod[..8]), "{list}");
    ctx.rkt_output(&["stop", &cli_uuid]);
    cli_pod.wait().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(srv.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    srv.wait().unwrap();
    ctx.rkt_output(&["gc", "--grace-period=0s"]);
    ctx.assert_nothing_left();
}

#[test]
fn bad_requests_get_grpc_codes_and_leave_nothing() {
    let ctx = TestCtx::new();
    let socket = ctx.root().join("cri.sock");
    let mut srv = start(&ctx, &socket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut run, _) = clients(socket.clone()).await;
        let e = run
            .run_pod_sandbox(RunPodSandboxRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        // a user namespace mode rkt does not have
        let mut cfg = sandbox_config("userns", &ctx.root().join("logs"));
        cfg.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    userns_options: Some(UserNamespace {
                        mode: NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let e = run
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(cfg),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        // a container in a pod that does not exist, of an image that is not there
        let e = run
            .create_container(CreateContainerRequest {
                pod_sandbox_id: "nope".into(),
                config: Some(container_config("x", "nowhere/nothing:1", "true")),
                sandbox_config: None,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
        let e = run
            .start_container(StartContainerRequest {
                container_id: "nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    });
    srv.kill().unwrap();
    srv.wait().unwrap();
    ctx.assert_nothing_left();
}

/// crictl from cri-tools (`../shared/cri-tools`), if this machine has it.
fn crictl() -> Option<PathBuf> {
    let root = rkt_tests::workspace_root();
    [
        std::env::var_os("CRITEST_DIR").map(PathBuf::from),
        Some(root.join("../shared/cri-tools")),
        Some(PathBuf::from("/work/shared/cri-tools")),
    ]
    .into_iter()
    .flatten()
    .map(|d| d.join("bin/crictl"))
    .find(|p| p.is_file())
}

#[test]
fn port_forward_reaches_a_port_in_the_pods_network_namespace() {
    let Some(crictl) = crictl() else {
        eprintln!("no crictl (../shared/cri-tools): port-forward is covered by make critest only");
        return;
    };
    let ctx = TestCtx::new();
    let reg = rkt_tests::registry::shared();
    images::push(images::busybox(), reg.http_addr(), "cri/pf:1");
    let image = format!("{}/cri/pf:1", reg.http_addr());
    accept_unsigned(&ctx, &[reg.http_addr()]);
    let logs = ctx.root().join("logs");
    let socket = ctx.root().join("cri.sock");
    let mut srv = start(&ctx, &socket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pod = rt.block_on(async {
        let (mut run, mut img) = clients(socket.clone()).await;
        let pod = pull_and_run_sandbox(&mut run, &mut img, &image, "pf", &logs).await;
        // a server on the pod's loopback only: nothing on the host's can answer for it
        let ctr = run
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(container_config(
                    "srv",
                    &image,
                    "exec nc -ll -p 8080 -e /bin/echo answer-from-the-pod",
                )),
                sandbox_config: Some(sandbox_config("pf", &logs)),
            })
            .await
            .unwrap()
            .into_inner()
            .container_id;
        run.start_container(StartContainerRequest { container_id: ctr })
            .await
            .unwrap();
        pod
    });
    let port = 20000 + (std::process::id() % 20000) as u16;
    let sock = format!("unix://{}", socket.display());
    let mut fwd = Command::new(&crictl)
        .args(["--config=/dev/null", "-r", &sock, "port-forward", &pod])
        .arg(format!("{port}:8080"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let answer = loop {
        use std::io::Read;
        let got = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                let mut b = String::new();
                s.read_to_string(&mut b).ok()?;
                (!b.is_empty()).then_some(b)
            });
        if let Some(a) = got {
            break a;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "port-forward never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(answer.trim(), "answer-from-the-pod");
    let _ = fwd.kill();
    let _ = fwd.wait();
    rt.block_on(async {
        let (mut run, _) = clients(socket.clone()).await;
        run.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    });
    srv.kill().unwrap();
    srv.wait().unwrap();
    ctx.rkt_output(&["gc", "--grace-period=0s"]);
    ctx.assert_nothing_left();
}
