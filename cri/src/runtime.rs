//! The runtime service on mutable pods: a pod sandbox is a pod of `rkt app sandbox`, a container
//! is one of its apps (`rkt app add/start/stop/rm`), both through [`stage0::Runtime`] — the same
//! calls `rkt` makes. The server holds nothing in memory: rkt's pod dirs and the CRI records
//! ([`crate::state`]) say everything, so a restarted server sees every pod and container.
//!
//! A sandbox's pod is started detached: the server runs `rkt-cri pod-start UUID`, which spawns
//! `rkt-cri pod-run UUID` (that process execs stage1 and *is* the pod) and exits once the pod
//! is ready; the pod is then nobody's child but init's, and outlives the server.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use stage0::apps::{AppAddRequest, AppInfo, AppState};
use stage0::request::{AppFlags, AppRequest, MountPoint, PodRequest, Volume, VolumeKind};
use stage0::{PodSource, PrepareRequest, Wait};
use tonic::{Request, Response, Status};

use crate::images::Images;
use crate::proto::runtime_service_server::RuntimeService;
use crate::proto::*;
use crate::state::{ContainerRecord, Meta, Port, Records, SandboxRecord};

/// The CRI API version this server speaks.
pub const RUNTIME_API_VERSION: &str = "v1";

/// The runtime service.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    dirs: stage0::Dirs,
    insecure: stage0::Insecure,
    records: Records,
    images: Images,
    /// This server's binary, for the detached pod starter and the exec helper.
    exe: PathBuf,
    /// The global flags of this server's helper processes ([`helper_args`]).
    helper_args: Vec<String>,
    /// The streaming server behind the URLs Exec/Attach/PortForward hand out, if one runs.
    streaming: Option<rkt_cri_streaming::Streaming>,
}

/// A stage0 error as a gRPC status.
pub fn status_of(e: stage0::Error) -> Status {
    use stage0::Error as E;
    let msg = e.to_string();
    match e {
        E::NoMatch(_) | E::NoApp { .. } => Status::not_found(msg),
        E::Usage(_) | E::Ambiguous(_) | E::EmptyUuid | E::Abi(_) => Status::invalid_argument(msg),
        E::Image(_) => Status::not_found(msg),
        E::PodState { .. } => Status::failed_precondition(msg),
        _ => Status::internal(msg),
    }
}

fn streaming_status(e: rkt_cri_streaming::Error) -> Status {
    match e {
        rkt_cri_streaming::Error::InvalidRequest(_) => Status::invalid_argument(e.to_string()),
        rkt_cri_streaming::Error::TooManyInFlight(_) => Status::resource_exhausted(e.to_string()),
        rkt_cri_streaming::Error::Random(_) => Status::internal(e.to_string()),
    }
}

/// Run blocking work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("task: {e}")))?
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// 32 random bytes as hex (container ids).
fn random_id() -> Result<String, Status> {
    let mut b = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Status::internal(format!("/dev/urandom: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn labels_match(labels: &BTreeMap<String, String>, sel: &HashMap<String, String>) -> bool {
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn hm(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn bm(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl Runtime {
    /// The service for `dirs`, pulling and resolving images through `images`.
    pub fn new(
        dirs: stage0::Dirs,
        insecure: stage0::Insecure,
        images: Images,
        exe: PathBuf,
        helper_args: Vec<String>,
        streaming: Option<rkt_cri_streaming::Streaming>,
    ) -> Self {
        Runtime {
            inner: Arc::new(Inner {
                records: Records::new(&dirs.data),
                dirs,
                insecure,
                images,
                exe,
                helper_args,
                streaming,
            }),
        }
    }
}

impl Runtime {
    /// Run `f` on the service's state off the async threads (every stage0 call blocks).
    async fn on<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let inner = self.inner.clone();
        blocking(move || f(&inner)).await
    }
}

impl Inner {
    fn rt(&self) -> Result<stage0::Runtime, Status> {
        Ok(stage0::Runtime::open(self.dirs.clone())
            .map_err(status_of)?
            .with_insecure(self.insecure))
    }

    fn global_args(&self) -> Vec<String> {
        self.helper_args.clone()
    }

    /// Whether the pod `id` runs (its stage1 holds it).
    fn pod_info(&self, rt: &stage0::Runtime, id: &str) -> Option<stage0::status::PodInfo> {
        rt.status(id, Wait::No, Wait::No).ok()
    }

    fn sandbox_state(info: Option<&stage0::status::PodInfo>) -> i32 {
        match info {
            Some(i) if i.state == stage0::pods::State::Running && i.ready => {
                PodSandboxState::SandboxReady as i32
            }
            _ => PodSandboxState::SandboxNotready as i32,
        }
    }

    fn run_sandbox(&self, cfg: PodSandboxConfig, handler: String) -> Result<String, Status> {
        let meta = cfg.metadata.clone().unwrap_or_default();
        let linux = cfg.linux.clone().unwrap_or_default();
        let sc = linux.security_context.clone().unwrap_or_default();
        let ns = sc.namespace_options.unwrap_or_default();
        let private_users = match &ns.userns_options {
            None => None,
            Some(u) => userns_range(u)?,
        };
        let mut ports = Vec::new();
        for p in &cfg.port_mappings {
            if p.host_port <= 0 {
                continue; // nothing to forward: the pod's address is reachable
            }
            let protocol = match Protocol::try_from(p.protocol) {
                Ok(Protocol::Tcp) => "tcp",
                Ok(Protocol::Udp) => "udp",
                _ => {
                    return Err(Status::invalid_argument(format!(
                        "port mapping {}: only tcp and udp are supported",
                        p.container_port
                    )))
                }
            };
            let (Ok(cp), Ok(hp)) = (u16::try_from(p.container_port), u16::try_from(p.host_port))
            else {
                return Err(Status::invalid_argument("port out of range"));
            };
            ports.push(Port {
                protocol: protocol.into(),
                container_port: cp,
                host_port: hp,
                host_ip: p.host_ip.clone(),
            });
        }
        let dns = cfg.dns_config.clone().unwrap_or_default();
        let mut rec = SandboxRecord {
            id: String::new(),
            meta: Meta {
                name: meta.name,
                uid: meta.uid,
                namespace: meta.namespace,
                attempt: meta.attempt,
            },
            labels: bm(&cfg.labels),
            annotations: bm(&cfg.annotations),
            created_at: now_ns(),
            log_directory: cfg.log_directory.clone(),
            runtime_handler: handler,
            hostname: cfg.hostname.clone(),
            host_network: ns.network == NamespaceMode::Node as i32,
            host_pid: ns.pid == NamespaceMode::Node as i32,
            host_ipc: ns.ipc == NamespaceMode::Node as i32,
            dns: (dns.servers, dns.searches, dns.options),
            ports,
            sysctls: bm(&linux.sysctls),
        };
        let rt = self.rt()?;
        let pod = PodRequest {
            mutable: true,
            ..Default::default()
        };
        let mut prep = PrepareRequest::new(PodSource::Apps(pod));
        prep.private_users = private_users.map(stage0::userns::PrivateUsers::Range);
        let uuid = rt.prepare(&prep).map_err(status_of)?;
        rec.id = uuid.clone();
        let started = self
            .records
            .save_sandbox(&rec)
            .map_err(|e| Status::internal(e.to_string()))
            .and_then(|()| {
                let out = std::process::Command::new(&self.exe)
                    .args(self.global_args())
                    .arg("pod-start")
                    .arg(&uuid)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .output()
                    .map_err(|e| Status::internal(format!("{}: {e}", self.exe.display())))?;
                if out.status.success() {
                    Ok(())
                } else {
                    let err = String::from_utf8_lossy(&out.stderr);
                    let line = err.lines().last().unwrap_or("the pod did not start").trim();
                    Err(Status::internal(format!("pod sandbox {uuid}: {line}")))
                }
            });
        if let Err(e) = started {
            // nothing half-made stays: the pod (prepared or exited) and its record go
            let _ = rt.stop(&uuid, true);
            let _ = rt.rm(&uuid);
            self.records.delete_sandbox(&uuid);
            return Err(e);
        }
        Ok(uuid)
    }

    fn stop_sandbox(&self, id: &str) -> Result<(), Status> {
        let rt = self.rt()?;
        let Some(rec) = self.records.find_sandbox(id) else {
            return Ok(()); // idempotent: gone is stopped
        };
        let Some(info) = self.pod_info(&rt, &rec.id) else {
            return Ok(());
        };
        if info.state == stage0::pods::State::Running {
            rt.stop(&rec.id, false).map_err(status_of)?;
            // apps get their stop timeout (the kubelet stopped them first), then SIGKILL
            if rt
                .status(&rec.id, Wait::No, Wait::For(Duration::from_secs(20)))
                .is_err()
            {
                rt.stop(&rec.id, true).map_err(status_of)?;
            }
        }
        Ok(())
    }

    fn remove_sandbox(&self, id: &str) -> Result<(), Status> {
        let Some(rec) = self.records.find_sandbox(id) else {
            return Ok(());
        };
        self.stop_sandbox(&rec.id)?;
        let rt = self.rt()?;
        match rt.rm(&rec.id) {
            Ok(_) | Err(stage0::Error::NoMatch(_)) => {}
            Err(e) => return Err(status_of(e)),
        }
        for c in self.records.containers() {
            if c.sandbox_id == rec.id {
                let _ = std::fs::remove_file(own_log_path(&self.dirs.data, &c.id));
                self.records.delete_container(&c.id);
            }
        }
        let _ = std::fs::remove_file(sandbox_log(&self.dirs.data, &rec.id));
        self.records.delete_sandbox(&rec.id);
        Ok(())
    }

    fn sandbox_status(&self, id: &str) -> Result<PodSandboxStatus, Status> {
        let rec = self
            .records
            .find_sandbox(id)
            .ok_or_else(|| Status::not_found(format!("pod sandbox {id:?} not found")))?;
        let rt = self.rt()?;
        let info = self.pod_info(&rt, &rec.id);
        let ip = info
            .as_ref()
            .and_then(|i| i.networks.iter().find_map(|n| n.ip.clone()))
            .filter(|_| !rec.host_network)
            .unwrap_or_default();
        let mode = |host: bool| {
            if host {
                NamespaceMode::Node as i32
            } else {
                NamespaceMode::Pod as i32
            }
        };
        Ok(PodSandboxStatus {
            id: rec.id.clone(),
            metadata: Some(sandbox_meta(&rec.meta)),
            state: Self::sandbox_state(info.as_ref()),
            created_at: rec.created_at,
            network: Some(PodSandboxNetworkStatus {
                ip,
                additional_ips: vec![],
            }),
            linux: Some(LinuxPodSandboxStatus {
                namespaces: Some(Namespace {
                    options: Some(NamespaceOption {
                        network: mode(rec.host_network),
                        pid: mode(rec.host_pid),
                        ipc: mode(rec.host_ipc),
                        target_id: String::new(),
                        userns_options: None,
                    }),
                }),
            }),
            labels: hm(&rec.labels),
            annotations: hm(&rec.annotations),
            runtime_handler: rec.runtime_handler.clone(),
        })
    }

    fn list_sandboxes(&self, f: Option<PodSandboxFilter>) -> Result<Vec<PodSandbox>, Status> {
        let rt = self.rt()?;
        let f = f.unwrap_or_default();
        let mut out = Vec::new();
        for rec in self.records.sandboxes() {
            if !f.id.is_empty() && !rec.id.starts_with(&f.id) {
                continue;
            }
            if !labels_match(&rec.labels, &f.label_selector) {
                continue;
            }
            let state = Self::sandbox_state(self.pod_info(&rt, &rec.id).as_ref());
            if f.state.as_ref().is_some_and(|s| s.state != state) {
                continue;
            }
            out.push(PodSandbox {
                id: rec.id.clone(),
                metadata: Some(sandbox_meta(&rec.meta)),
                state,
                created_at: rec.created_at,
                labels: hm(&rec.labels),
                annotations: hm(&rec.annotations),
                runtime_handler: rec.runtime_handler.clone(),
            });
        }
        Ok(out)
    }

    fn create_container(
        &self,
        sandbox_id: &str,
        cfg: ContainerConfig,
        image_id: String,
    ) -> Result<String, Status> {
        let sb = self
            .records
            .find_sandbox(sandbox_id)
            .ok_or_else(|| Status::not_found(format!("pod sandbox {sandbox_id:?} not found")))?;
        let meta = cfg.metadata.clone().unwrap_or_default();
        if meta.name.is_empty() {
            return Err(Status::invalid_argument("container metadata has no name"));
        }
        if self.records.containers().iter().any(|c| {
            c.sandbox_id == sb.id && c.meta.name == meta.name && c.meta.attempt == meta.attempt
        }) {
            return Err(Status::already_exists(format!(
                "container {:?} attempt {} exists in pod sandbox {}",
                meta.name, meta.attempt, sb.id
            )));
        }
        let id = random_id()?;
        let app_name = format!("c{}", &id[..16]);
        // a container the kubelet gave no log still gets one: Attach reads its output there
        let own_log = own_log_path(&self.dirs.data, &id);
        let (req, mounts) = app_request(&cfg, &own_log, &app_name, &image_id, &sb)?;
        let log_path = req
            .cri
            .as_ref()
            .and_then(|c| c.log_path.clone())
            .unwrap_or_default();
        let rt = self.rt()?;
        rt.app_add(&sb.id, &req, stage0::images::PullPolicy::Never)
            .map_err(status_of)?;
        let rec = ContainerRecord {
            id: id.clone(),
            sandbox_id: sb.id.clone(),
            app: app_name.clone(),
            meta: Meta {
                name: meta.name,
                attempt: meta.attempt,
                ..Default::default()
            },
            image: cfg
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
            image_ref: image_id,
            labels: bm(&cfg.labels),
            annotations: bm(&cfg.annotations),
            created_at: now_ns(),
            log_path,
            mounts,
            stdin_once: cfg.stdin && cfg.stdin_once,
        };
        if let Err(e) = self.records.save_container(&rec) {
            let _ = rt.app_rm(&sb.id, &app_name);
            return Err(Status::internal(e.to_string()));
        }
        Ok(id)
    }

    fn container(&self, id: &str) -> Result<ContainerRecord, Status> {
        self.records
            .find_container(id)
            .ok_or_else(|| Status::not_found(format!("container {id:?} not found")))
    }

    fn start_container(&self, id: &str) -> Result<(), Status> {
        let c = self.container(id)?;
        let rt = self.rt()?;
        let info = rt.app_status(&c.sandbox_id, &c.app).map_err(status_of)?;
        if info.state != AppState::Created {
            return Err(Status::failed_precondition(format!(
                "container {} is {}, not created",
                c.id,
                info.state.as_str()
            )));
        }
        rt.app_start(&c.sandbox_id, &c.app).map_err(status_of)
    }

    fn stop_container(&self, id: &str, timeout: i64) -> Result<(), Status> {
        let Some(c) = self.records.find_container(id) else {
            return Ok(());
        };
        let rt = self.rt()?;
        match rt.app_stop(
            &c.sandbox_id,
            &c.app,
            Duration::from_secs(timeout.max(0) as u64),
        ) {
            Ok(_) => Ok(()),
            // the pod is not running: nothing of the container runs either
            Err(stage0::Error::PodState { .. } | stage0::Error::NoMatch(_)) => Ok(()),
            Err(e) => Err(status_of(e)),
        }
    }

    fn remove_container(&self, id: &str) -> Result<(), Status> {
        let Some(c) = self.records.find_container(id) else {
            return Ok(());
        };
        let rt = self.rt()?;
        match rt.app_rm(&c.sandbox_id, &c.app) {
            Ok(()) | Err(stage0::Error::NoApp { .. }) => {}
            // a pod that is not running keeps its apps until the sandbox is removed
            Err(stage0::Error::PodState { .. } | stage0::Error::NoMatch(_)) => {}
            Err(e) => return Err(status_of(e)),
        }
        let _ = std::fs::remove_file(own_log_path(&self.dirs.data, &c.id));
        self.records.delete_container(&c.id);
        Ok(())
    }

    fn app_info(&self, rt: &stage0::Runtime, c: &ContainerRecord) -> Option<AppInfo> {
        rt.app_status(&c.sandbox_id, &c.app).ok()
    }

    /// The containers whose id and pod id start with `id` and `pod` and whose labels have
    /// `labels` (the CRI's container filters), each with its app as its pod has it: every pod
    /// is read once, not once per container.
    fn filtered_containers(
        &self,
        rt: &stage0::Runtime,
        id: &str,
        pod: &str,
        labels: &HashMap<String, String>,
    ) -> Vec<(ContainerRecord, Option<AppInfo>)> {
        let mut pods: HashMap<String, Vec<AppInfo>> = HashMap::new();
        self.records
            .containers()
            .into_iter()
            .filter(|c| {
                c.id.starts_with(id)
                    && c.sandbox_id.starts_with(pod)
                    && labels_match(&c.labels, labels)
            })
            .map(|c| {
                let apps = pods
                    .entry(c.sandbox_id.clone())
                    .or_insert_with(|| rt.apps(&c.sandbox_id).map(|(_, a)| a).unwrap_or_default());
                let info = apps.iter().find(|a| a.app.name == c.app).cloned();
                (c, info)
            })
            .collect()
    }

    fn container_state(info: Option<&AppInfo>) -> i32 {
        match info.map(|i| i.state) {
            Some(AppState::Created) => ContainerState::ContainerCreated as i32,
            Some(AppState::Running) => ContainerState::ContainerRunning as i32,
            Some(AppState::Exited) => ContainerState::ContainerExited as i32,
            None => ContainerState::ContainerUnknown as i32,
        }
    }

    fn list_containers(&self, f: Option<ContainerFilter>) -> Result<Vec<Container>, Status> {
        let rt = self.rt()?;
        let f = f.unwrap_or_default();
        let mut out = Vec::new();
        for (c, info) in self.filtered_containers(&rt, &f.id, &f.pod_sandbox_id, &f.label_selector)
        {
            let state = Self::container_state(info.as_ref());
            if f.state.as_ref().is_some_and(|s| s.state != state) {
                continue;
            }
            out.push(Container {
                id: c.id.clone(),
                pod_sandbox_id: c.sandbox_id.clone(),
                metadata: Some(container_meta(&c.meta)),
                image: Some(ImageSpec {
                    image: c.image.clone(),
                    ..Default::default()
                }),
                image_ref: c.image_ref.clone(),
                state,
                created_at: c.created_at,
                labels: hm(&c.labels),
                annotations: hm(&c.annotations),
                image_id: c.image_ref.clone(),
            });
        }
        Ok(out)
    }

    fn container_status(&self, id: &str) -> Result<ContainerStatus, Status> {
        let c = self.container(id)?;
        let rt = self.rt()?;
        let info = self.app_info(&rt, &c);
        let st = info
            .as_ref()
            .and_then(|i| i.status.clone())
            .unwrap_or_default();
        let state = Self::container_state(info.as_ref());
        let exited = state == ContainerState::ContainerExited as i32;
        let exit_code = if exited {
            st.exit_code.unwrap_or(255)
        } else {
            0
        };
        let reason = if !exited {
            String::new()
        } else if st.oom_killed {
            "OOMKilled".into()
        } else if exit_code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        };
        // a pod that ended under a running app: its end is the pod's
        let finished = st.finished_ns.unwrap_or(if exited { now_ns() } else { 0 });
        Ok(ContainerStatus {
            id: c.id.clone(),
            metadata: Some(container_meta(&c.meta)),
            state,
            created_at: c.created_at,
            started_at: st.started_ns.unwrap_or(0),
            finished_at: if exited { finished } else { 0 },
            exit_code,
            image: Some(ImageSpec {
                image: c.image.clone(),
                ..Default::default()
            }),
            image_ref: c.image_ref.clone(),
            reason,
            message: String::new(),
            labels: hm(&c.labels),
            annotations: hm(&c.annotations),
            mounts: c
                .mounts
                .iter()
                .map(|(h, ct, ro, prop)| crate::proto::Mount {
                    container_path: ct.clone(),
                    host_path: h.clone(),
                    readonly: *ro,
                    propagation: *prop,
                    ..Default::default()
                })
                .collect(),
            log_path: c.log_path.clone(),
            resources: None,
            image_id: c.image_ref.clone(),
            user: st.user.as_ref().map(|(uid, gid, groups)| ContainerUser {
                linux: Some(LinuxContainerUser {
                    uid: i64::from(*uid),
                    gid: i64::from(*gid),
                    supplemental_groups: std::iter::once(*gid)
                        .chain(groups.iter().copied())
                        .map(i64::from)
                        .collect(),
                }),
            }),
            stop_signal: 0,
        })
    }

    /// Run `cmd` in the container (as `rkt app exec`), collecting its output.
    async fn exec_sync(
        self: Arc<Self>,
        id: String,
        cmd: Vec<String>,
        timeout: i64,
    ) -> Result<ExecSyncResponse, Status> {
        let c = self.container(&id)?;
        if cmd.is_empty() {
            return Err(Status::invalid_argument("no command"));
        }
        let mut child = tokio::process::Command::new(&self.exe)
            .args(self.global_args())
            .arg("exec")
            .arg(&c.sandbox_id)
            .arg(&c.app)
            .arg("--")
            .args(&cmd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Status::internal(format!("{}: {e}", self.exe.display())))?;
        let (mut so, mut se) = (child.stdout.take(), child.stderr.take());
        let pid = child.id();
        let run = async {
            let (mut o, mut e) = (Vec::new(), Vec::new());
            tokio::join!(
                read_capped(so.as_mut(), &mut o),
                read_capped(se.as_mut(), &mut e)
            );
            let st = child.wait().await;
            (st, o, e)
        };
        let (st, stdout, stderr) = if timeout > 0 {
            match tokio::time::timeout(Duration::from_secs(timeout as u64), run).await {
                Ok(r) => r,
                Err(_) => {
                    // the exec process relays SIGTERM to the command; SIGKILL ends the relay
                    if let Some(p) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                    }
                    return Err(Status::deadline_exceeded(format!(
                        "command {cmd:?} timed out after {timeout}s"
                    )));
                }
            }
        } else {
            run.await
        };
        let st = st.map_err(|e| Status::internal(e.to_string()))?;
        let exit_code = st.code().unwrap_or(255);
        if exit_code == 254 && stdout.is_empty() {
            let msg = String::from_utf8_lossy(&stderr);
            if let Some(l) = msg.lines().last().filter(|l| l.starts_with("rkt-cri: ")) {
                return Err(Status::unknown(l.to_string()));
            }
        }
        Ok(ExecSyncResponse {
            stdout,
            stderr,
            exit_code,
        })
    }

    fn reopen_log(&self, id: &str) -> Result<(), Status> {
        let c = self.container(id)?;
        let rt = self.rt()?;
        let info = rt.app_status(&c.sandbox_id, &c.app).map_err(status_of)?;
        if info.state != AppState::Running {
            return Err(Status::failed_precondition(format!(
                "container {} is not running",
                c.id
            )));
        }
        rt.app_reopen_log(&c.sandbox_id, &c.app).map_err(status_of)
    }

    fn container_stats(&self, c: &ContainerRecord) -> ContainerStats {
        crate::stats::container(&self.dirs.data, c)
    }
}

/// The global flags that make a helper process (`rkt-cri pod-start|exec`) open the same
/// runtime as the server.
pub fn helper_args(
    dirs: &stage0::Dirs,
    insecure: stage0::Insecure,
    net: &str,
    cni_conf_dir: &Path,
) -> Vec<String> {
    vec![
        format!("--dir={}", dirs.data.display()),
        format!("--local-config={}", dirs.local_config.display()),
        format!("--system-config={}", dirs.system_config.display()),
        format!("--insecure-options={insecure}"),
        format!("--net={net}"),
        format!("--cni-conf-dir={}", cni_conf_dir.display()),
    ]
}

/// Most of an ExecSync's stdout or stderr the server keeps (the rest is read and dropped): a
/// command in a hostile container cannot make the server hold more.
const EXEC_SYNC_MAX_OUTPUT: usize = 16 << 20;

/// Read `from` to its end, keeping at most [`EXEC_SYNC_MAX_OUTPUT`] bytes in `into`.
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(from: Option<&mut R>, into: &mut Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let Some(from) = from else {
        return;
    };
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = EXEC_SYNC_MAX_OUTPUT.saturating_sub(into.len());
        into.extend_from_slice(&buf[..n.min(room)]);
    }
}

/// The log of a container the kubelet gave none.
fn own_log_path(data: &Path, id: &str) -> PathBuf {
    data.join("cri").join("logs").join(format!("{id}.log"))
}

/// Where the detached pod's own output goes (stage1's warnings), per sandbox.
pub fn sandbox_log(data: &Path, uuid: &str) -> PathBuf {
    data.join("cri")
        .join("sandboxes")
        .join(format!("{uuid}.log"))
}

fn sandbox_meta(m: &Meta) -> PodSandboxMetadata {
    PodSandboxMetadata {
        name: m.name.clone(),
        uid: m.uid.clone(),
        namespace: m.namespace.clone(),
        attempt: m.attempt,
    }
}

fn container_meta(m: &Meta) -> ContainerMetadata {
    ContainerMetadata {
        name: m.name.clone(),
        attempt: m.attempt,
    }
}

/// The pod's user namespace as the kubelet asks for it: `NODE` none; `POD` with one mapping
/// from container id 0, the same for uids and gids (rkt maps one range for both, as the kubelet
/// does); anything else is refused.
fn userns_range(u: &UserNamespace) -> Result<Option<stage0::request::IdRange>, Status> {
    match NamespaceMode::try_from(u.mode) {
        Ok(NamespaceMode::Node) => Ok(None),
        Ok(NamespaceMode::Pod) => {
            let (uids, gids) = (&u.uids, &u.gids);
            if uids.len() != 1 || gids.len() != 1 {
                return Err(Status::invalid_argument(format!(
                    "user namespace: exactly one uid and one gid mapping are supported ({} and {} given)",
                    uids.len(),
                    gids.len()
                )));
            }
            let (m, g) = (&uids[0], &gids[0]);
            if m.container_id != 0 || g.container_id != 0 {
                return Err(Status::invalid_argument(
                    "user namespace: the mapping must start at container id 0",
                ));
            }
            if m.host_id != g.host_id || m.length != g.length {
                return Err(Status::invalid_argument(
                    "user namespace: uid and gid mappings must be the same",
                ));
            }
            let r = stage0::request::IdRange {
                shift: m.host_id,
                count: m.length,
            };
            r.validate()
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            Ok(Some(r))
        }
        _ => Err(Status::invalid_argument(
            "user namespace: only the POD and NODE modes are supported",
        )),
    }
}

/// A CRI seccomp profile as the manifest's `CriApp::seccomp`: `Ok(None)` rkt's default
/// filter, `Ok(Some(Null))` none (unconfined), else the profile.
fn seccomp_of(
    sp: Option<&SecurityProfile>,
    path: &str,
) -> Result<Option<serde_json::Value>, Status> {
    let localhost = |p: &str| -> Result<Option<serde_json::Value>, Status> {
        let data = std::fs::read(p)
            .map_err(|e| Status::invalid_argument(format!("seccomp profile {p:?}: {e}")))?;
        let v: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| Status::invalid_argument(format!("seccomp profile {p:?}: {e}")))?;
        Ok(Some(v))
    };
    if let Some(sp) = sp {
        return match security_profile::ProfileType::try_from(sp.profile_type) {
            Ok(security_profile::ProfileType::RuntimeDefault) => Ok(None),
            Ok(security_profile::ProfileType::Unconfined) => Ok(Some(serde_json::Value::Null)),
            Ok(security_profile::ProfileType::Localhost) => localhost(&sp.localhost_ref),
            Err(_) => Err(Status::invalid_argument("unknown seccomp profile type")),
        };
    }
    match path {
        "" | "unconfined" => Ok(Some(serde_json::Value::Null)),
        "runtime/default" | "docker/default" => Ok(None),
        p => match p.strip_prefix("localhost/") {
            Some(f) => localhost(f),
            None => Err(Status::invalid_argument(format!(
                "seccomp profile path {p:?}: want runtime/default, unconfined or localhost/PATH"
            ))),
        },
    }
}

/// The app a CRI container is, and its mounts as the status reports them.
#[allow(clippy::type_complexity)]
fn app_request(
    cfg: &ContainerConfig,
    own_log: &Path,
    app_name: &str,
    image_id: &str,
    sb: &SandboxRecord,
) -> Result<(AppAddRequest, Vec<(String, String, bool, i32)>), Status> {
    let linux = cfg.linux.clone().unwrap_or_default();
    let sc = linux.security_context.unwrap_or_default();
    let res = linux.resources.unwrap_or_default();
    let mut flags = AppFlags {
        name: Some(app_name.to_string()),
        ..Default::default()
    };
    let mut args = None;
    if let Some((first, rest)) = cfg.command.split_first() {
        flags.exec = Some(first.clone());
        let mut a = rest.to_vec();
        a.extend(cfg.args.iter().cloned());
        args = Some(a);
    } else if !cfg.args.is_empty() {
        args = Some(cfg.args.clone());
    }
    if !cfg.working_dir.is_empty() {
        flags.working_dir = Some(cfg.working_dir.clone());
    }
    flags.environment = cfg
        .envs
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect();
    if sc.run_as_group.is_some() && sc.run_as_user.is_none() && sc.run_as_username.is_empty() {
        return Err(Status::invalid_argument(
            "run_as_group is set without run_as_user or run_as_username",
        ));
    }
    if let Some(u) = &sc.run_as_user {
        flags.user = Some(u.value.to_string());
    } else if !sc.run_as_username.is_empty() {
        flags.user = Some(sc.run_as_username.clone());
    }
    match &sc.run_as_group {
        Some(g) => flags.group = Some(g.value.to_string()),
        // the user's primary group in the image (stage1 looks it up), as the kubelet expects
        None if flags.user.is_some() => flags.group = Some(String::new()),
        None => {}
    }
    if !sc.supplemental_groups.is_empty() {
        let mut gids = Vec::new();
        for g in &sc.supplemental_groups {
            gids.push(
                u32::try_from(*g)
                    .map_err(|_| Status::invalid_argument(format!("supplemental group {g}")))?,
            );
        }
        flags.supplementary_gids = Some(gids);
    }
    flags.readonly_rootfs = sc.readonly_rootfs;
    if res.memory_limit_in_bytes > 0 {
        flags.memory = Some(res.memory_limit_in_bytes as u64);
    }
    if res.cpu_quota > 0 {
        let period = if res.cpu_period > 0 {
            res.cpu_period
        } else {
            100_000
        };
        flags.cpu_millis = Some(((res.cpu_quota * 1000) / period).max(1) as u64);
    }
    if res.cpu_shares > 0 {
        flags.cpu_shares = Some(res.cpu_shares as u64);
    }
    if res.oom_score_adj != 0 {
        flags.oom_score_adj = Some(res.oom_score_adj.clamp(-1000, 1000) as i32);
    }
    let mut volumes = Vec::new();
    let mut shown = Vec::new();
    for (i, m) in cfg.mounts.iter().enumerate() {
        if m.container_path.is_empty() || m.host_path.is_empty() {
            return Err(Status::invalid_argument(
                "a mount needs a host and a container path",
            ));
        }
        if m.recursive_read_only && !m.readonly {
            return Err(Status::invalid_argument(
                "recursive read-only mount must be read-only",
            ));
        }
        if m.recursive_read_only && m.propagation != MountPropagation::PropagationPrivate as i32 {
            return Err(Status::invalid_argument(
                "recursive read-only mount needs private propagation",
            ));
        }
        let propagation = match MountPropagation::try_from(m.propagation) {
            Ok(MountPropagation::PropagationHostToContainer) => "rslave",
            // what the container mounts there reaches the host: the kubelet allows it only to
            // privileged containers, and so does rkt
            Ok(MountPropagation::PropagationBidirectional) if !sc.privileged => {
                return Err(Status::invalid_argument(format!(
                    "mount {:?}: bidirectional propagation needs a privileged container",
                    m.container_path
                )))
            }
            Ok(MountPropagation::PropagationBidirectional) => "rshared",
            _ => "rprivate",
        };
        let vname = format!("{app_name}-m{i}");
        volumes.push(Volume {
            name: vname.clone(),
            kind: VolumeKind::Host {
                source: m.host_path.clone(),
                recursive: true,
                idmap: false,
                propagation: Some(propagation.into()),
                recursive_read_only: m.recursive_read_only,
            },
            read_only: m.readonly,
        });
        flags.mounts.push(MountPoint {
            volume: vname,
            target: m.container_path.clone(),
            read_only: m.readonly,
        });
        shown.push((
            m.host_path.clone(),
            m.container_path.clone(),
            m.readonly,
            m.propagation,
        ));
    }
    let caps = sc.capabilities.clone().unwrap_or_default();
    let ns = sc.namespace_options.clone().unwrap_or_default();
    let log_path = Some(
        if !cfg.log_path.is_empty() && !sb.log_directory.is_empty() {
            Path::new(&sb.log_directory)
                .join(&cfg.log_path)
                .display()
                .to_string()
        } else {
            own_log.display().to_string()
        },
    );
    // the deprecated path is what older kubelets send
    #[allow(deprecated)]
    let seccomp = seccomp_of(sc.seccomp.as_ref(), &sc.seccomp_profile_path)?;
    let cri = stage1_abi::CriApp {
        log_path,
        privileged: sc.privileged,
        caps_add: caps.add_capabilities,
        caps_drop: caps.drop_capabilities,
        no_new_privs: Some(sc.no_new_privs),
        masked_paths: (!sc.masked_paths.is_empty()).then(|| sc.masked_paths.clone()),
        readonly_paths: (!sc.readonly_paths.is_empty()).then(|| sc.readonly_paths.clone()),
        seccomp: seccomp.clone().filter(|v| !v.is_null()),
        seccomp_unconfined: seccomp.as_ref().is_some_and(serde_json::Value::is_null),
        strict_supplemental_groups: sc.supplemental_groups_policy
            == SupplementalGroupsPolicy::Strict as i32,
        own_pid_namespace: ns.pid == NamespaceMode::Container as i32,
        devices: cfg
            .devices
            .iter()
            .map(|d| stage1_abi::Device {
                host_path: d.host_path.clone(),
                container_path: d.container_path.clone(),
                permissions: d.permissions.clone(),
            })
            .collect(),
        clamp_oom_score_adj: true,
        stdin: cfg.stdin,
    };
    Ok((
        AppAddRequest {
            app: AppRequest {
                image: image_id.to_string(),
                flags,
                args,
            },
            volumes,
            cri: Some(cri),
        },
        shown,
    ))
}

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn version(
        &self,
        _req: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "rkt".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: RUNTIME_API_VERSION.into(),
        }))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let cond = |t: &str| RuntimeCondition {
            r#type: t.into(),
            status: true,
            reason: String::new(),
            message: String::new(),
        };
        Ok(Response::new(StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![cond("RuntimeReady"), cond("NetworkReady")],
            }),
            info: HashMap::new(),
            runtime_handlers: vec![RuntimeHandler {
                name: String::new(),
                features: Some(RuntimeHandlerFeatures {
                    recursive_read_only_mounts: true,
                    user_namespaces: true,
                }),
            }],
            features: Some(RuntimeFeatures {
                supplemental_groups_policy: true,
                ..Default::default()
            }),
        }))
    }

    async fn runtime_config(
        &self,
        _req: Request<RuntimeConfigRequest>,
    ) -> Result<Response<RuntimeConfigResponse>, Status> {
        Ok(Response::new(RuntimeConfigResponse {
            linux: Some(LinuxRuntimeConfiguration {
                cgroup_driver: CgroupDriver::Cgroupfs as i32,
            }),
        }))
    }

    async fn update_runtime_config(
        &self,
        _req: Request<UpdateRuntimeConfigRequest>,
    ) -> Result<Response<UpdateRuntimeConfigResponse>, Status> {
        // the pod CIDR is the CNI network's business (docs/cri.md)
        Ok(Response::new(UpdateRuntimeConfigResponse {}))
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<RunPodSandboxRequest>,
    ) -> Result<Response<RunPodSandboxResponse>, Status> {
        let r = req.into_inner();
        let cfg = r
            .config
            .ok_or_else(|| Status::invalid_argument("no pod sandbox config"))?;
        let id = self
            .on(move |inner| inner.run_sandbox(cfg, r.runtime_handler))
            .await?;
        Ok(Response::new(RunPodSandboxResponse { pod_sandbox_id: id }))
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<StopPodSandboxRequest>,
    ) -> Result<Response<StopPodSandboxResponse>, Status> {
        let id = req.into_inner().pod_sandbox_id;
        self.on(move |inner| inner.stop_sandbox(&id)).await?;
        Ok(Response::new(StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<RemovePodSandboxRequest>,
    ) -> Result<Response<RemovePodSandboxResponse>, Status> {
        let id = req.into_inner().pod_sandbox_id;
        self.on(move |inner| inner.remove_sandbox(&id)).await?;
        Ok(Response::new(RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        let id = req.into_inner().pod_sandbox_id;
        let st = self.on(move |inner| inner.sandbox_status(&id)).await?;
        Ok(Response::new(PodSandboxStatusResponse {
            status: Some(st),
            ..Default::default()
        }))
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<ListPodSandboxRequest>,
    ) -> Result<Response<ListPodSandboxResponse>, Status> {
        let f = req.into_inner().filter;
        let items = self.on(move |inner| inner.list_sandboxes(f)).await?;
        Ok(Response::new(ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        req: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        let r = req.into_inner();
        let cfg = r
            .config
            .ok_or_else(|| Status::invalid_argument("no container config"))?;
        let name = cfg
            .image
            .as_ref()
            .map(|i| i.image.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Status::invalid_argument("no image named in the container config"))?;
        let image_id = self
            .inner
            .images
            .resolve_id(&name)
            .await?
            .ok_or_else(|| Status::not_found(format!("image {name:?} is not in the store")))?;
        let id = self
            .on(move |inner| inner.create_container(&r.pod_sandbox_id, cfg, image_id))
            .await?;
        Ok(Response::new(CreateContainerResponse { container_id: id }))
    }

    async fn start_container(
        &self,
        req: Request<StartContainerRequest>,
    ) -> Result<Response<StartContainerResponse>, Status> {
        let id = req.into_inner().container_id;
        self.on(move |inner| inner.start_container(&id)).await?;
        Ok(Response::new(StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        req: Request<StopContainerRequest>,
    ) -> Result<Response<StopContainerResponse>, Status> {
        let r = req.into_inner();
        self.on(move |inner| inner.stop_container(&r.container_id, r.timeout))
            .await?;
        Ok(Response::new(StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        req: Request<RemoveContainerRequest>,
    ) -> Result<Response<RemoveContainerResponse>, Status> {
        let id = req.into_inner().container_id;
        self.on(move |inner| inner.remove_container(&id)).await?;
        Ok(Response::new(RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        req: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        let f = req.into_inner().filter;
        let containers = self.on(move |inner| inner.list_containers(f)).await?;
        Ok(Response::new(ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        req: Request<ContainerStatusRequest>,
    ) -> Result<Response<ContainerStatusResponse>, Status> {
        let id = req.into_inner().container_id;
        let st = self.on(move |inner| inner.container_status(&id)).await?;
        Ok(Response::new(ContainerStatusResponse {
            status: Some(st),
            ..Default::default()
        }))
    }

    async fn update_container_resources(
        &self,
        req: Request<UpdateContainerResourcesRequest>,
    ) -> Result<Response<UpdateContainerResourcesResponse>, Status> {
        let r = req.into_inner();
        self.on(move |inner| {
            let c = inner.container(&r.container_id)?;
            crate::stats::update_resources(&inner.dirs.data, &c, r.linux.as_ref())
        })
        .await?;
        Ok(Response::new(UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        req: Request<ReopenContainerLogRequest>,
    ) -> Result<Response<ReopenContainerLogResponse>, Status> {
        let id = req.into_inner().container_id;
        self.on(move |inner| inner.reopen_log(&id)).await?;
        Ok(Response::new(ReopenContainerLogResponse {}))
    }

    async fn exec_sync(
        &self,
        req: Request<ExecSyncRequest>,
    ) -> Result<Response<ExecSyncResponse>, Status> {
        let r = req.into_inner();
        let resp = self
            .inner
            .clone()
            .exec_sync(r.container_id, r.cmd, r.timeout)
            .await?;
        Ok(Response::new(resp))
    }

    async fn exec(&self, req: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        let r = req.into_inner();
        let Some(s) = &self.inner.streaming else {
            return Err(Status::unimplemented("no streaming server"));
        };
        let c = self.inner.container(&r.container_id)?;
        if r.cmd.is_empty() {
            return Err(Status::invalid_argument("no command"));
        }
        if !(r.stdin || r.stdout || r.stderr) {
            return Err(Status::invalid_argument(
                "one of stdin, stdout and stderr must be set",
            ));
        }
        let url = s
            .register_exec(rkt_cri_streaming::ExecRequest {
                container_id: c.id,
                cmd: r.cmd,
                tty: r.tty,
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
            })
            .map_err(streaming_status)?;
        Ok(Response::new(ExecResponse { url }))
    }

    async fn attach(
        &self,
        req: Request<AttachRequest>,
    ) -> Result<Response<AttachResponse>, Status> {
        let r = req.into_inner();
        let Some(s) = &self.inner.streaming else {
            return Err(Status::unimplemented("no streaming server"));
        };
        let c = self.inner.container(&r.container_id)?;
        let url = s
            .register_attach(rkt_cri_streaming::AttachRequest {
                container_id: c.id,
                tty: r.tty,
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
            })
            .map_err(streaming_status)?;
        Ok(Response::new(AttachResponse { url }))
    }

    async fn port_forward(
        &self,
        req: Request<PortForwardRequest>,
    ) -> Result<Response<PortForwardResponse>, Status> {
        let r = req.into_inner();
        let Some(s) = &self.inner.streaming else {
            return Err(Status::unimplemented("no streaming server"));
        };
        let sb = self
            .inner
            .records
            .find_sandbox(&r.pod_sandbox_id)
            .ok_or_else(|| Status::not_found(format!("pod sandbox {:?}", r.pod_sandbox_id)))?;
        let url = s.register_port_forward(&sb.id).map_err(streaming_status)?;
        Ok(Response::new(PortForwardResponse { url }))
    }

    async fn container_stats(
        &self,
        req: Request<ContainerStatsRequest>,
    ) -> Result<Response<ContainerStatsResponse>, Status> {
        let id = req.into_inner().container_id;
        let stats = self
            .on(move |inner| {
                let c = inner.container(&id)?;
                Ok(inner.container_stats(&c))
            })
            .await?;
        Ok(Response::new(ContainerStatsResponse { stats: Some(stats) }))
    }

    async fn list_container_stats(
        &self,
        req: Request<ListContainerStatsRequest>,
    ) -> Result<Response<ListContainerStatsResponse>, Status> {
        let f = req.into_inner().filter.unwrap_or_default();
        let stats = self
            .on(move |inner| {
                let rt = inner.rt()?;
                let mut out = Vec::new();
                let found =
                    inner.filtered_containers(&rt, &f.id, &f.pod_sandbox_id, &f.label_selector);
                // stats are for containers whose app exists in their pod
                for (c, _) in found.iter().filter(|(_, info)| info.is_some()) {
                    out.push(inner.container_stats(c));
                }
                Ok(out)
            })
            .await?;
        Ok(Response::new(ListContainerStatsResponse { stats }))
    }

    async fn pod_sandbox_stats(
        &self,
        req: Request<PodSandboxStatsRequest>,
    ) -> Result<Response<PodSandboxStatsResponse>, Status> {
        let id = req.into_inner().pod_sandbox_id;
        let stats = self
            .on(move |inner| {
                let sb = inner
                    .records
                    .find_sandbox(&id)
                    .ok_or_else(|| Status::not_found(format!("pod sandbox {id:?} not found")))?;
                let cs: Vec<ContainerStats> = inner
                    .records
                    .containers()
                    .iter()
                    .filter(|c| c.sandbox_id == sb.id)
                    .map(|c| inner.container_stats(c))
                    .collect();
                Ok(crate::stats::sandbox(&inner.dirs.data, &sb, cs))
            })
            .await?;
        Ok(Response::new(PodSandboxStatsResponse {
            stats: Some(stats),
        }))
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<ListPodSandboxStatsRequest>,
    ) -> Result<Response<ListPodSandboxStatsResponse>, Status> {
        let f = req.into_inner().filter.unwrap_or_default();
        let stats = self
            .on(move |inner| {
                let mut out = Vec::new();
                let containers = inner.records.containers();
                for sb in inner.records.sandboxes() {
                    if !f.id.is_empty() && !sb.id.starts_with(&f.id) {
                        continue;
                    }
                    if !labels_match(&sb.labels, &f.label_selector) {
                        continue;
                    }
                    let cs = containers
                        .iter()
                        .filter(|c| c.sandbox_id == sb.id)
                        .map(|c| inner.container_stats(c))
                        .collect();
                    out.push(crate::stats::sandbox(&inner.dirs.data, &sb, cs));
                }
                Ok(out)
            })
            .await?;
        Ok(Response::new(ListPodSandboxStatsResponse { stats }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb() -> SandboxRecord {
        SandboxRecord {
            id: "pod".into(),
            log_directory: "/var/log/pods/x".into(),
            ..Default::default()
        }
    }

    fn ctr() -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "c".into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: "busybox".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sc(f: impl FnOnce(&mut LinuxContainerSecurityContext)) -> ContainerConfig {
        let mut s = LinuxContainerSecurityContext::default();
        f(&mut s);
        let mut c = ctr();
        c.linux = Some(LinuxContainerConfig {
            security_context: Some(s),
            ..Default::default()
        });
        c
    }

    fn req(c: &ContainerConfig) -> Result<AppAddRequest, Status> {
        app_request(c, Path::new("/own.log"), "capp", "sha256:1", &sb()).map(|(r, _)| r)
    }

    #[test]
    fn command_and_args_follow_dockers_rules() {
        let mut c = ctr();
        let r = req(&c).unwrap();
        assert_eq!((r.app.flags.exec, r.app.args), (None, None));
        c.args = vec!["a".into()];
        let r = req(&c).unwrap();
        assert_eq!(
            (r.app.flags.exec, r.app.args),
            (None, Some(vec!["a".into()]))
        );
        c.command = vec!["/bin/sh".into(), "-c".into()];
        let r = req(&c).unwrap();
        assert_eq!(r.app.flags.exec.as_deref(), Some("/bin/sh"));
        assert_eq!(r.app.args, Some(vec!["-c".to_string(), "a".to_string()]));
        assert_eq!(r.app.image, "sha256:1");
    }

    #[test]
    fn users_groups_and_policies() {
        let r = req(&sc(|s| s.run_as_user = Some(Int64Value { value: 1000 }))).unwrap();
        // no group: the user's primary group in the image (stage1 looks it up)
        assert_eq!(
            (r.app.flags.user.as_deref(), r.app.flags.group.as_deref()),
            (Some("1000"), Some(""))
        );
        let e = req(&sc(|s| s.run_as_group = Some(Int64Value { value: 5 }))).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let r = req(&sc(|s| {
            s.run_as_username = "www".into();
            s.run_as_group = Some(Int64Value { value: 5 });
            s.supplemental_groups = vec![7, 8];
            s.supplemental_groups_policy = SupplementalGroupsPolicy::Strict as i32;
        }))
        .unwrap();
        assert_eq!(r.app.flags.user.as_deref(), Some("www"));
        assert_eq!(r.app.flags.group.as_deref(), Some("5"));
        assert_eq!(r.app.flags.supplementary_gids, Some(vec![7, 8]));
        assert!(r.cri.unwrap().strict_supplemental_groups);
        let e = req(&sc(|s| s.supplemental_groups = vec![-1])).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn logs_default_to_the_servers_own_file() {
        let mut c = ctr();
        let r = req(&c).unwrap();
        assert_eq!(r.cri.unwrap().log_path.as_deref(), Some("/own.log"));
        c.log_path = "c/0.log".into();
        let r = req(&c).unwrap();
        assert_eq!(
            r.cri.unwrap().log_path.as_deref(),
            Some("/var/log/pods/x/c/0.log")
        );
    }

    #[test]
    fn mounts_become_host_volumes_and_bad_ones_are_refused() {
        let mut c = ctr();
        c.mounts = vec![crate::proto::Mount {
            container_path: "/data".into(),
            host_path: "/srv".into(),
            readonly: true,
            recursive_read_only: true,
            ..Default::default()
        }];
        let r = req(&c).unwrap();
        assert_eq!(r.volumes.len(), 1);
        assert!(matches!(
            &r.volumes[0].kind,
            VolumeKind::Host { source, recursive_read_only: true, propagation: Some(p), .. }
                if source == "/srv" && p == "rprivate"
        ));
        assert_eq!(r.app.flags.mounts[0].target, "/data");
        // recursive read-only needs read-only and private propagation
        c.mounts[0].readonly = false;
        assert_eq!(req(&c).unwrap_err().code(), tonic::Code::InvalidArgument);
        c.mounts[0].readonly = true;
        c.mounts[0].propagation = MountPropagation::PropagationBidirectional as i32;
        assert_eq!(req(&c).unwrap_err().code(), tonic::Code::InvalidArgument);
        c.mounts[0].recursive_read_only = false;
        // bidirectional: privileged containers only
        assert_eq!(req(&c).unwrap_err().code(), tonic::Code::InvalidArgument);
        c.linux = Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                privileged: true,
                ..Default::default()
            }),
            ..Default::default()
        });
        let r = req(&c).unwrap();
        assert!(matches!(
            &r.volumes[0].kind,
            VolumeKind::Host { propagation: Some(p), .. } if p == "rshared"
        ));
    }

    #[test]
    fn seccomp_profiles() {
        let none = seccomp_of(None, "").unwrap();
        assert_eq!(
            none,
            Some(serde_json::Value::Null),
            "nil profile is unconfined"
        );
        assert_eq!(seccomp_of(None, "runtime/default").unwrap(), None);
        let sp = |t: security_profile::ProfileType, r: &str| SecurityProfile {
            profile_type: t as i32,
            localhost_ref: r.into(),
        };
        assert_eq!(
            seccomp_of(
                Some(&sp(security_profile::ProfileType::RuntimeDefault, "")),
                ""
            )
            .unwrap(),
            None
        );
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("p.json");
        std::fs::write(&f, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let p = f.display().to_string();
        let v = seccomp_of(Some(&sp(security_profile::ProfileType::Localhost, &p)), "").unwrap();
        assert_eq!(v.unwrap()["defaultAction"], "SCMP_ACT_ALLOW");
        let e = seccomp_of(
            Some(&sp(
                security_profile::ProfileType::Localhost,
                "/nonexistent",
            )),
            "",
        )
        .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(seccomp_of(None, "bogus").is_err());
    }

    #[test]
    fn user_namespaces_take_one_mapping_from_zero() {
        let m = |c: u32, h: u32, l: u32| IdMapping {
            container_id: c,
            host_id: h,
            length: l,
        };
        let u = |mode: NamespaceMode, uids: Vec<IdMapping>, gids: Vec<IdMapping>| UserNamespace {
            mode: mode as i32,
            uids,
            gids,
        };
        assert_eq!(
            userns_range(&u(NamespaceMode::Node, vec![], vec![])).unwrap(),
            None
        );
        let r = userns_range(&u(
            NamespaceMode::Pod,
            vec![m(0, 1000, 100000)],
            vec![m(0, 1000, 100000)],
        ))
        .unwrap()
        .unwrap();
        assert_eq!((r.shift, r.count), (1000, 100000));
        for bad in [
            u(
                NamespaceMode::Pod,
                vec![m(0, 1000, 10), m(0, 2000, 10)],
                vec![m(0, 1000, 10)],
            ),
            u(
                NamespaceMode::Pod,
                vec![m(1, 1000, 10)],
                vec![m(1, 1000, 10)],
            ),
            u(
                NamespaceMode::Pod,
                vec![m(0, 1000, 10)],
                vec![m(0, 2000, 10)],
            ),
            u(NamespaceMode::Pod, vec![m(0, 0, 10)], vec![m(0, 0, 10)]),
            u(NamespaceMode::Container, vec![], vec![]),
            u(NamespaceMode::Target, vec![], vec![]),
        ] {
            let e = userns_range(&bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
    }
}
