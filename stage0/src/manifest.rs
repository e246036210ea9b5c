//! Pod manifest generation: images + flags → [`stage1_abi::PodManifest`], with rkt's rules for
//! app names, exec, environment precedence, user/group, volumes and ports, and Docker's
//! semantics for OCI images (Entrypoint+Cmd, implicit `VOLUME`s pre-populated from the image).

use stage1_abi::{
    App, ImageRef, Isolators, MountPoint, PodManifest, Port, Volume, VolumeKind, ABI_VERSION,
};

use crate::flags;
use crate::images::{ImageConfig, ImageMeta};
use crate::request::{AppRequest, PodRequest};
use crate::{Error, Result};
use std::collections::BTreeSet;

/// Environment every app starts from (rkt stage1's defaults); anything else overrides it.
pub const DEFAULT_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("SHELL", "/bin/sh"),
    ("USER", "root"),
    ("LOGNAME", "root"),
    ("HOME", "/root"),
];

/// An image resolved in the store.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Its id and name.
    pub meta: ImageMeta,
    /// Its config.
    pub config: ImageConfig,
}

/// An environment being built: variables in the order they were first set, each set again
/// in place (the last value wins). Linear: an index of key → position, not a scan per set
/// (100 000 image variables took ≈ 30 s with a scan).
#[derive(Default)]
struct EnvBuilder {
    vars: Vec<(String, String)>,
    index: std::collections::HashMap<String, usize>,
}

impl EnvBuilder {
    /// Set `k` to `v`, replacing an earlier value in place.
    fn set(&mut self, k: &str, v: &str) {
        match self.index.get(k) {
            Some(&i) => v.clone_into(&mut self.vars[i].1),
            None => {
                self.index.insert(k.to_string(), self.vars.len());
                self.vars.push((k.to_string(), v.to_string()));
            }
        }
    }
}

/// The environment of one app, with rkt's precedence (low → high): stage1 defaults <
/// inherited host env (`--inherit-env`) < image `Env` < `--set-env-file` < `--set-env` <
/// per-app `--environment`; `AC_APP_NAME` is always the app's name.
pub fn app_environment(
    req: &PodRequest,
    app: &AppRequest,
    app_name: &str,
    image: &ImageConfig,
    host_env: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env = EnvBuilder::default();
    for (k, v) in DEFAULT_ENV {
        env.set(k, v);
    }
    if req.inherit_env {
        for (k, v) in host_env {
            env.set(k, v);
        }
    }
    for kv in &image.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if !k.is_empty() {
            env.set(k, v);
        }
    }
    for (k, v) in req
        .set_env_file
        .iter()
        .chain(&req.set_env)
        .chain(&app.flags.environment)
    {
        env.set(k, v);
    }
    env.set("AC_APP_NAME", app_name);
    env.vars
}

/// argv with `docker run` semantics: `--exec` replaces Entrypoint and Cmd; arguments after `--`
/// replace Cmd.
pub fn app_exec(app: &AppRequest, app_name: &str, image: &ImageConfig) -> Result<Vec<String>> {
    let exec: Vec<String> = match &app.flags.exec {
        Some(e) => std::iter::once(e.clone())
            .chain(app.args.iter().flatten().cloned())
            .collect(),
        None => image
            .entrypoint
            .iter()
            .chain(app.args.as_ref().unwrap_or(&image.cmd))
            .cloned()
            .collect(),
    };
    if exec.is_empty() {
        return Err(Error::usage(format!(
            "app {app_name:?}: the image has no entrypoint or cmd; use --exec"
        )));
    }
    Ok(exec)
}

/// User and group: `--user`/`--group` override the image's `User` (`user[:group]`) field by
/// field; default root (docker2aci: a user without group gets group 0).
pub fn app_user_group(app: &AppRequest, image: &ImageConfig) -> (String, String) {
    let (iu, ig) = match image.user.split_once(':') {
        Some((u, g)) => (u, g),
        None => (image.user.as_str(), ""),
    };
    let or0 = |s: &str| {
        if s.is_empty() {
            "0".to_string()
        } else {
            s.to_string()
        }
    };
    (
        app.flags.user.clone().unwrap_or_else(|| or0(iu)),
        app.flags.group.clone().unwrap_or_else(|| or0(ig)),
    )
}

/// `ExposedPorts` → ports named `<port>-<proto>`.
pub fn image_ports(app_name: &str, image: &ImageConfig) -> Result<Vec<Port>> {
    let mut ports: Vec<Port> = Vec::new();
    let mut seen = BTreeSet::new();
    for p in &image.exposed_ports {
        let (num, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
        let proto = proto.to_ascii_lowercase();
        let port: u16 = num.parse().map_err(|_| {
            Error::Image(format!(
                "app {app_name:?}: invalid exposed port {p:?} in image config"
            ))
        })?;
        let name = format!("{port}-{proto}");
        if seen.insert(name.clone()) {
            ports.push(Port {
                name,
                port,
                protocol: proto,
            });
        }
    }
    ports.sort_by(|a, b| (a.port, &a.protocol).cmp(&(b.port, &b.protocol)));
    Ok(ports)
}

fn clean_path(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        t.to_string()
    }
}

/// Name of the mount point an image `VOLUME` path gets (docker2aci: `volume-<path>`); a
/// `--volume` of that name fills it instead of the implicit empty volume.
pub fn image_volume_name(path: &str) -> String {
    format!("volume-{}", flags::sanitize_acname(path))
}

/// Build the pod manifest. `resolved[i]` belongs to `req.apps[i]`; `host_env` is the caller's
/// environment (used with `--inherit-env`).
pub fn build(
    uuid: &str,
    req: &PodRequest,
    resolved: &[ResolvedImage],
    host_env: &[(String, String)],
) -> Result<PodManifest> {
    req.check()?;
    let names = req.app_names()?;
    let arg_space = crate::exec_limits::arg_space(crate::exec_limits::stack_limit());
    let mut volumes = req.volumes.clone();
    let mut apps = Vec::new();
    for ((app, name), img) in req.apps.iter().zip(&names).zip(resolved) {
        let cfg = &img.config;
        // Mounts: pod-wide --mount, then the app's own (same target: the app's wins).
        let mut mounts: Vec<MountPoint> = Vec::new();
        for m in req.default_mounts.iter().chain(&app.flags.mounts) {
            let t = clean_path(&m.target);
            mounts.retain(|x| clean_path(&x.target) != t);
            mounts.push(m.clone());
        }
        // Image VOLUMEs not covered by a --mount: the --volume of the same name, else an
        // implicit empty volume populated from the image (Docker semantics).
        let mut image_vols: Vec<String> = cfg.volumes.iter().map(|v| clean_path(v)).collect();
        image_vols.sort();
        image_vols.dedup();
        // sets, not scans: an image may list thousands of volumes
        let targets: BTreeSet<String> = mounts.iter().map(|m| clean_path(&m.target)).collect();
        let vol_names: BTreeSet<&str> = req.volumes.iter().map(|v| v.name.as_str()).collect();
        for path in image_vols {
            if targets.contains(&path) {
                continue;
            }
            let mp_name = image_volume_name(&path);
            let vol_name = if vol_names.contains(mp_name.as_str()) {
                mp_name
            } else {
                let implicit = format!("{name}-{mp_name}");
                volumes.push(Volume {
                    name: implicit.clone(),
                    kind: VolumeKind::Empty {
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                        populate_from: Some((name.clone(), path.clone())),
                    },
                    read_only: false,
                });
                implicit
            };
            mounts.push(MountPoint {
                volume: vol_name,
                target: path,
                read_only: false,
            });
        }
        let (user, group) = app_user_group(app, cfg);
        for (what, id) in [("user", &user), ("group", &group)] {
            crate::flags::check_id(&format!("app {name:?}: {what}"), id)?;
        }
        let working_dir = app
            .flags
            .working_dir
            .clone()
            .or_else(|| Some(cfg.working_dir.clone()).filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into());
        let f = &app.flags;
        let built = App {
            name: name.clone(),
            image: ImageRef {
                id: img.meta.id.clone(),
                name: img.meta.name.clone(),
            },
            exec: app_exec(app, name, cfg)?,
            user,
            group,
            supplementary_gids: f.supplementary_gids.clone().unwrap_or_default(),
            working_dir,
            environment: app_environment(req, app, name, cfg, host_env),
            mounts,
            readonly_rootfs: f.readonly_rootfs,
            isolators: Isolators {
                memory_limit: f.memory,
                cpu_millis: f.cpu_millis,
                cpu_shares: f.cpu_shares,
                oom_score_adj: f.oom_score_adj,
                caps_retain: f.caps_retain.clone(),
                caps_remove: f.caps_remove.clone(),
                seccomp: f.seccomp.clone(),
            },
            ports: image_ports(name, cfg)?,
            cri: None,
        };
        crate::exec_limits::check_app(&built, arg_space)?;
        apps.push(built);
    }
    let m = PodManifest {
        abi_version: ABI_VERSION,
        uuid: uuid.to_string(),
        apps,
        volumes,
        annotations: vec![],
        private_users: None,
        mutable: req.mutable,
    };
    m.validate()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::AppFlags;

    /// A pod of these images, no flags.
    fn req(images: &[&str]) -> PodRequest {
        pod(images.iter().map(|i| app(i, |_| {})).collect())
    }

    fn pod(apps: Vec<AppRequest>) -> PodRequest {
        PodRequest {
            apps,
            ..Default::default()
        }
    }

    fn app(image: &str, set: impl FnOnce(&mut AppFlags)) -> AppRequest {
        let mut a = AppRequest {
            image: image.into(),
            ..Default::default()
        };
        set(&mut a.flags);
        a
    }

    fn img(name: &str, cfg: ImageConfig) -> ResolvedImage {
        ResolvedImage {
            meta: ImageMeta {
                id: "sha256:ab".into(),
                name: name.into(),
            },
            config: cfg,
        }
    }

    fn busybox() -> ImageConfig {
        ImageConfig {
            entrypoint: vec![],
            cmd: vec!["sh".into()],
            env: vec!["PATH=/bin".into(), "A=image".into(), "B=image".into()],
            ..Default::default()
        }
    }

    fn env_of(m: &PodManifest, i: usize, k: &str) -> Option<String> {
        m.apps[i]
            .environment
            .iter()
            .find(|(ek, _)| ek == k)
            .map(|e| e.1.clone())
    }

    #[test]
    fn exec_follows_docker_run() {
        let cfg = ImageConfig {
            entrypoint: vec!["/ep".into(), "x".into()],
            cmd: vec!["c1".into(), "c2".into()],
            ..Default::default()
        };
        let exec = |exec: Option<&str>, args: Option<&[&str]>| {
            let mut a = app("img", |f| f.exec = exec.map(String::from));
            a.args = args.map(|v| v.iter().map(|s| s.to_string()).collect());
            app_exec(&a, "a", &cfg).unwrap()
        };
        assert_eq!(exec(None, None), vec!["/ep", "x", "c1", "c2"]);
        assert_eq!(exec(None, Some(&["y", "z"])), vec!["/ep", "x", "y", "z"]);
        assert_eq!(exec(Some("/bin/true"), None), vec!["/bin/true"]);
        assert_eq!(
            exec(Some("/bin/echo"), Some(&["hi"])),
            vec!["/bin/echo", "hi"]
        );
        let empty = ImageConfig::default();
        let r = req(&["img"]);
        assert!(app_exec(&r.apps[0], "a", &empty).is_err());
    }

    #[test]
    fn env_of_100k_image_variables_is_linear_ordered_and_last_wins() {
        let mut cfg = busybox();
        cfg.env = (0..100_000).map(|i| format!("V{i}={i}")).collect();
        cfg.env.push("V7=again".into());
        cfg.volumes = (0..4096).map(|i| format!("/v{i}/")).collect();
        cfg.exposed_ports = (0..4096).map(|i| format!("{}/tcp", i % 2048 + 1)).collect();
        let mut r = req(&["img"]);
        r.set_env = vec![("V9".into(), "flag".into())];
        let t = std::time::Instant::now();
        let m = build("u", &r, &[img("img", cfg)], &[]).unwrap();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(3),
            "{:?}",
            t.elapsed()
        );
        let env = &m.apps[0].environment;
        assert_eq!(env.len(), DEFAULT_ENV.len() + 100_000 + 1);
        // first position kept, last value wins, flags over the image
        let pos = |k: &str| env.iter().position(|(ek, _)| ek == k).unwrap();
        assert!(pos("V6") < pos("V7") && pos("V7") < pos("V8"));
        assert_eq!(env_of(&m, 0, "V7").as_deref(), Some("again"));
        assert_eq!(env_of(&m, 0, "V9").as_deref(), Some("flag"));
        assert_eq!(m.apps[0].ports.len(), 2048);
        assert_eq!(m.apps[0].mounts.len(), 4096);
    }

    #[test]
    fn an_environment_execve_would_refuse_is_refused_at_prepare() {
        let mut cfg = busybox();
        cfg.env = vec![format!("BIG={}", "x".repeat(200_000))];
        let e = build("u", &req(&["img"]), &[img("img", cfg)], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("MAX_ARG_STRLEN"), "{e}");
    }

    #[test]
    fn env_precedence_is_rkts() {
        let mut r = pod(vec![app("img", |f| {
            f.environment.push(("E".into(), "app".into()))
        })]);
        r.inherit_env = true;
        r.set_env_file = vec![("C".into(), "file".into()), ("D".into(), "file".into())];
        r.set_env = vec![("D".into(), "setenv".into()), ("E".into(), "setenv".into())];
        let host = vec![
            ("A".to_string(), "host".to_string()),
            ("H".to_string(), "host".to_string()),
            ("AC_APP_NAME".to_string(), "evil".to_string()),
        ];
        let m = build("u", &r, &[img("img", busybox())], &host).unwrap();
        assert_eq!(env_of(&m, 0, "H").as_deref(), Some("host"));
        assert_eq!(env_of(&m, 0, "A").as_deref(), Some("image"));
        assert_eq!(env_of(&m, 0, "C").as_deref(), Some("file"));
        assert_eq!(env_of(&m, 0, "D").as_deref(), Some("setenv"));
        assert_eq!(env_of(&m, 0, "E").as_deref(), Some("app"));
        assert_eq!(env_of(&m, 0, "PATH").as_deref(), Some("/bin"));
        assert_eq!(env_of(&m, 0, "HOME").as_deref(), Some("/root"));
        assert_eq!(env_of(&m, 0, "AC_APP_NAME").as_deref(), Some("img"));
        // without --inherit-env the host's variables stay out
        let mut r2 = r.clone();
        r2.inherit_env = false;
        let m = build("u", &r2, &[img("img", busybox())], &host).unwrap();
        assert_eq!(env_of(&m, 0, "H"), None);
    }

    #[test]
    fn user_group_and_workdir() {
        let mut cfg = busybox();
        cfg.user = "1000:100".into();
        cfg.working_dir = "/srv".into();
        let m = build("u", &req(&["img"]), &[img("img", cfg.clone())], &[]).unwrap();
        assert_eq!(
            (m.apps[0].user.as_str(), m.apps[0].group.as_str()),
            ("1000", "100")
        );
        assert_eq!(m.apps[0].working_dir, "/srv");
        let m = build(
            "u",
            &pod(vec![app("img", |f| {
                f.group = Some("5".into());
                f.working_dir = Some("/tmp".into());
            })]),
            &[img("img", cfg.clone())],
            &[],
        )
        .unwrap();
        assert_eq!(
            (m.apps[0].user.as_str(), m.apps[0].group.as_str()),
            ("1000", "5")
        );
        assert_eq!(m.apps[0].working_dir, "/tmp");
        cfg.user = "nobody".into();
        cfg.working_dir.clear();
        let m = build("u", &req(&["img"]), &[img("img", cfg)], &[]).unwrap();
        assert_eq!(
            (m.apps[0].user.as_str(), m.apps[0].group.as_str()),
            ("nobody", "0")
        );
        assert_eq!(m.apps[0].working_dir, "/");
        let m = build("u", &req(&["img"]), &[img("img", busybox())], &[]).unwrap();
        assert_eq!(
            (m.apps[0].user.as_str(), m.apps[0].group.as_str()),
            ("0", "0")
        );
    }

    #[test]
    fn ids_above_2_31_from_the_image_are_refused() {
        for user in [
            "4294967295",
            "0:4294967295",
            "2147483648:0",
            "99999999999999999999",
        ] {
            let mut cfg = busybox();
            cfg.user = user.into();
            let e = build("u", &req(&["img"]), &[img("img", cfg)], &[])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("ids above 2147483647 are not allowed"),
                "{user}: {e}"
            );
        }
        let mut cfg = busybox();
        cfg.user = "2147483647:2147483647".into();
        assert!(build("u", &req(&["img"]), &[img("img", cfg)], &[]).is_ok());
    }

    #[test]
    fn names_volumes_and_mounts_are_checked() {
        let e = req(&["a/busybox", "b/busybox:2"]).check().unwrap_err();
        assert_eq!(e.to_string(), "multiple apps with name busybox");
        assert!(pod(vec![
            app("a/busybox", |_| {}),
            app("b/busybox", |f| f.name = Some("b2".into()))
        ])
        .check()
        .is_ok());
        let e = pod(vec![app("img", |f| {
            f.mounts
                .push(flags::parse_mount("volume=nope,target=/x").unwrap())
        })])
        .check()
        .unwrap_err();
        assert!(e.to_string().starts_with("dangling mount point \"/x\""));
        let mut r = req(&["img"]);
        r.volumes = vec![flags::parse_volume("v,kind=host,source=/nonexistent/x").unwrap()];
        let e = r.check().unwrap_err();
        assert!(e.to_string().contains("No such file or directory"), "{e}");
        assert!(PodRequest::default().check().is_err());
        let e = pod(vec![app("img", |f| {
            f.caps_retain = Some(vec!["CAP_CHOWN".into()]);
            f.caps_remove = Some(vec!["CAP_KILL".into()]);
        })])
        .check()
        .unwrap_err();
        assert!(e.to_string().contains("cannot be used together"));
    }

    #[test]
    fn image_volumes_become_populated_empty_volumes() {
        let mut cfg = busybox();
        cfg.volumes = vec!["/data/".into(), "/var/cache".into(), "/covered".into()];
        let mut r = pod(vec![app("img", |f| {
            f.mounts
                .push(flags::parse_mount("volume=mine,target=/covered").unwrap())
        })]);
        r.volumes = vec![
            flags::parse_volume("mine,kind=empty").unwrap(),
            flags::parse_volume("volume-var-cache,kind=host,source=/tmp").unwrap(),
        ];
        let m = build("u", &r, &[img("img", cfg)], &[]).unwrap();
        let mounts = &m.apps[0].mounts;
        assert_eq!(mounts.len(), 3);
        let data = mounts.iter().find(|m| m.target == "/data").unwrap();
        assert_eq!(data.volume, "img-volume-data");
        let v = m
            .volumes
            .iter()
            .find(|v| v.name == "img-volume-data")
            .unwrap();
        assert!(matches!(
            &v.kind,
            VolumeKind::Empty { populate_from: Some((a, p)), .. } if a == "img" && p == "/data"
        ));
        let cache = mounts.iter().find(|m| m.target == "/var/cache").unwrap();
        assert_eq!(cache.volume, "volume-var-cache");
        let cov = mounts.iter().find(|m| m.target == "/covered").unwrap();
        assert_eq!(cov.volume, "mine");
    }

    #[test]
    fn default_mounts_apply_to_all_apps_and_ports_are_named() {
        let mut cfg = busybox();
        cfg.exposed_ports = vec!["80/tcp".into(), "53/udp".into(), "8080".into()];
        let mut r = req(&["a", "b"]);
        r.volumes = vec![flags::parse_volume("v,kind=empty").unwrap()];
        r.default_mounts = vec![flags::parse_mount("volume=v,target=/v").unwrap()];
        let m = build("u", &r, &[img("a", cfg.clone()), img("b", cfg)], &[]).unwrap();
        assert_eq!(m.apps[1].mounts[0].volume, "v");
        let names: Vec<_> = m.apps[0].ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["53-udp", "80-tcp", "8080-tcp"]);
        m.validate().unwrap();
    }

    #[test]
    fn isolators_are_carried() {
        let m = build(
            "u",
            &pod(vec![app("img", |f| {
                f.memory = Some(128_000_000);
                f.cpu_millis = Some(500);
                f.readonly_rootfs = true;
                f.seccomp = Some(flags::parse_seccomp("mode=remove,reboot").unwrap());
            })]),
            &[img("img", busybox())],
            &[],
        )
        .unwrap();
        let a = &m.apps[0];
        assert_eq!(a.isolators.memory_limit, Some(128_000_000));
        assert_eq!(a.isolators.cpu_millis, Some(500));
        assert!(a.readonly_rootfs);
        assert!(a.isolators.seccomp.is_some());
    }
}
