//! rkt's per-app argument grammar (rkt/cli_apps.go):
//!
//! ```text
//! rkt run [pod flags] IMG1 [per-app flags] [-- app args… [---]] IMG2 [per-app flags] …
//! ```
//!
//! Per-app flags after an image apply to that image; `--` starts the app's arguments and `---`
//! ends them (the end of argv ends them too). clap cannot express this, so `rkt run` and `rkt
//! prepare` hand the tail of argv (from the first image on) to [`parse_apps`], which produces
//! stage0's typed [`AppRequest`]s. Flag values are parsed by `stage0::flags`.

use stage0::flags;
use stage0::request::{AppFlags, AppRequest};
use stage0::{Error, Result};

/// Names of the per-app flags, for help text and error messages.
pub const APP_FLAGS: &[&str] = &[
    "name",
    "exec",
    "user",
    "group",
    "supplementary-gids",
    "working-dir",
    "environment",
    "mount",
    "readonly-rootfs",
    "memory",
    "cpu",
    "cpu-shares",
    "oom-score-adj",
    "caps-retain",
    "caps-remove",
    "seccomp",
];

/// Parse the tail of `rkt run`/`rkt prepare` argv (from the first image on).
pub fn parse_apps(tail: &[String]) -> Result<Vec<AppRequest>> {
    let mut apps: Vec<AppRequest> = Vec::new();
    let mut i = 0;
    while i < tail.len() {
        let a = tail[i].as_str();
        i += 1;
        if a == "--" {
            let Some(app) = apps.last_mut() else {
                return Err(Error::usage(
                    "an image is required before any app arguments",
                ));
            };
            if app.args.is_some() {
                return Err(Error::usage(
                    "only one set of app arguments allowed per image",
                ));
            }
            let mut args = Vec::new();
            while i < tail.len() && tail[i] != "---" {
                args.push(tail[i].clone());
                i += 1;
            }
            i += 1; // skip the `---` (or step past the end)
            app.args = Some(args);
        } else if a == "---" {
            return Err(Error::usage("\"---\" without app arguments to end"));
        } else if let Some(flag) = a.strip_prefix("--") {
            let Some(app) = apps.last_mut() else {
                return Err(Error::usage(format!("unknown flag {a:?}")));
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            if !APP_FLAGS.contains(&name) {
                return Err(Error::usage(format!(
                    "unknown flag \"--{name}\" for image {:?}",
                    app.image
                )));
            }
            let value = if name == "readonly-rootfs" {
                inline.unwrap_or_else(|| "true".into())
            } else if let Some(v) = inline {
                v
            } else if i < tail.len() {
                i += 1;
                tail[i - 1].clone()
            } else {
                return Err(Error::usage(format!("flag needs an argument: --{name}")));
            };
            set_flag(&mut app.flags, name, &value)?;
        } else if a.starts_with('-') && a.len() > 1 {
            return Err(Error::usage(format!("unknown shorthand flag {a:?}")));
        } else {
            apps.push(AppRequest {
                image: a.to_string(),
                ..Default::default()
            });
        }
    }
    Ok(apps)
}

/// Apply one per-app flag to `f` (also used by the CLI for flags given before any image).
pub fn set_flag(f: &mut AppFlags, name: &str, value: &str) -> Result<()> {
    let nonempty = |v: &str| -> Result<String> {
        if v.is_empty() {
            Err(Error::usage(format!("--{name} cannot be empty")))
        } else {
            Ok(v.to_string())
        }
    };
    match name {
        "name" => {
            flags::check_acname(value).map_err(|e| Error::usage(format!("invalid --name: {e}")))?;
            f.name = Some(value.to_string());
        }
        "exec" => f.exec = Some(nonempty(value)?),
        "user" => f.user = Some(nonempty(flags::check_id("--user", value)?)?),
        "group" => f.group = Some(nonempty(flags::check_id("--group", value)?)?),
        "supplementary-gids" => f.supplementary_gids = Some(flags::parse_gids(value)?),
        "working-dir" => {
            if !value.starts_with('/') {
                return Err(Error::usage(format!(
                    "invalid --working-dir {value:?}: must be an absolute path"
                )));
            }
            f.working_dir = Some(value.to_string());
        }
        "environment" => f
            .environment
            .push(flags::parse_env_pair("--environment", value)?),
        "mount" => f.mounts.push(flags::parse_mount(value)?),
        "readonly-rootfs" => {
            f.readonly_rootfs = match value {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(Error::usage(format!(
                        "invalid --readonly-rootfs {value:?}: not a boolean"
                    )))
                }
            }
        }
        "memory" => f.memory = Some(flags::parse_memory(value)?),
        "cpu" => f.cpu_millis = Some(flags::parse_cpu(value)?),
        "cpu-shares" => {
            f.cpu_shares = Some(value.parse().map_err(|_| {
                Error::usage(format!("invalid --cpu-shares {value:?}: not a number"))
            })?)
        }
        "oom-score-adj" => f.oom_score_adj = Some(flags::parse_oom_score_adj(value)?),
        "caps-retain" => f.caps_retain = Some(flags::parse_caps("--caps-retain", value)?),
        "caps-remove" => f.caps_remove = Some(flags::parse_caps("--caps-remove", value)?),
        "seccomp" => f.seccomp = Some(flags::parse_seccomp(value)?),
        _ => return Err(Error::usage(format!("unknown flag \"--{name}\""))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn images_flags_and_args() {
        let apps = parse_apps(&v(
            "img1 --name=a --exec /bin/sh -- -c echo --- img2 --memory 1Gi --readonly-rootfs img3 -- x",
        ))
        .unwrap();
        assert_eq!(apps.len(), 3);
        assert_eq!(apps[0].image, "img1");
        assert_eq!(apps[0].flags.name.as_deref(), Some("a"));
        assert_eq!(apps[0].flags.exec.as_deref(), Some("/bin/sh"));
        assert_eq!(apps[0].args, Some(v("-c echo")));
        assert_eq!(apps[1].flags.memory, Some(1 << 30));
        assert!(apps[1].flags.readonly_rootfs);
        assert_eq!(apps[1].args, None);
        assert_eq!(apps[2].args, Some(v("x")));
    }

    #[test]
    fn args_run_to_the_end_without_terminator() {
        let apps = parse_apps(&v("img -- --name=x img2")).unwrap();
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].args, Some(v("--name=x img2")));
        let apps = parse_apps(&v("img -- ---")).unwrap();
        assert_eq!(apps[0].args, Some(vec![]));
    }

    #[test]
    fn grammar_errors_have_rkts_words() {
        let e = parse_apps(&v("-- x")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "an image is required before any app arguments"
        );
        let e = parse_apps(&v("img -- a --- -- b")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "only one set of app arguments allowed per image"
        );
        let e = parse_apps(&v("img --bogus=1")).unwrap_err();
        assert!(e.to_string().contains("unknown flag \"--bogus\""));
        assert!(parse_apps(&v("img --name")).is_err());
        assert!(parse_apps(&v("img -x")).is_err());
        assert!(parse_apps(&v("img --name=Bad")).is_err());
        assert!(parse_apps(&v("--name=a img")).is_err());
    }

    #[test]
    fn repeatable_and_isolator_flags() {
        let apps = parse_apps(&v(
            "img --environment=A=1 --environment B=2 --mount volume=d,target=/d --cpu=500m \
             --cpu-shares=512 --oom-score-adj=-100 --caps-retain=CAP_NET_ADMIN \
             --seccomp=mode=retain,@docker/default-whitelist --user=1000 --group=100 \
             --supplementary-gids=5,6 --working-dir=/tmp --readonly-rootfs=false",
        ))
        .unwrap();
        let f = &apps[0].flags;
        assert_eq!(f.environment.len(), 2);
        assert_eq!(f.mounts[0].target, "/d");
        assert_eq!(f.cpu_millis, Some(500));
        assert_eq!(f.cpu_shares, Some(512));
        assert_eq!(f.oom_score_adj, Some(-100));
        assert_eq!(f.caps_retain, Some(vec!["CAP_NET_ADMIN".to_string()]));
        assert!(f.seccomp.is_some());
        assert_eq!(f.user.as_deref(), Some("1000"));
        assert_eq!(f.group.as_deref(), Some("100"));
        assert_eq!(f.supplementary_gids, Some(vec![5, 6]));
        assert_eq!(f.working_dir.as_deref(), Some("/tmp"));
        assert!(!f.readonly_rootfs);
        assert!(parse_apps(&v("img --working-dir=rel")).is_err());
    }
}
