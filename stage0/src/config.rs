//! rkt's configuration directories and the config kinds stage0 owns (`paths`, `stage1`,
//! `userns`).
//!
//! Files are JSON `{"rktKind": "...", "rktVersion": "v1", ...}` under
//! `{system,local,user}/{paths.d,stage1.d,userns.d}/*.json`; later directories override earlier ones
//! field by field (system < local < user), as rkt did. Registry-related kinds (`auth`,
//! `dockerAuth`, `certs.d`, `registries.d`) belong to the image store.

use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// The three configuration roots.
#[derive(Debug, Clone)]
pub struct ConfigDirs {
    /// `--system-config` (vendor defaults, `/usr/lib/rkt`).
    pub system: PathBuf,
    /// `--local-config` (admin, `/etc/rkt`).
    pub local: PathBuf,
    /// `--user-config` (optional).
    pub user: Option<PathBuf>,
}

impl ConfigDirs {
    /// The roots in increasing precedence.
    pub fn in_order(&self) -> Vec<&Path> {
        let mut v = vec![self.system.as_path(), self.local.as_path()];
        if let Some(u) = &self.user {
            v.push(u.as_path());
        }
        v
    }
}

/// Errors loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A config file is not valid.
    #[error("invalid config file {path}: {reason}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The merged configuration stage0 owns, printed by `rkt config`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// `paths` kind.
    pub paths: Paths,
    /// `stage1` kind.
    pub stage1: Stage1Config,
    /// `userns` kind.
    pub userns: UsernsConfig,
}

/// `rktKind: userns` (`userns.d`): the pool `--private-users=auto` takes id ranges from
/// (`crate::userns`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsernsConfig {
    /// `START:COUNT` ranges of host ids; unset: the `rkt` user's in `/etc/subuid` and
    /// `/etc/subgid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Vec<String>>,
}

/// `rktKind: paths`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Paths {
    /// Data directory override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Directory of stage1 binaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage1_images: Option<String>,
}

/// `rktKind: stage1`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Stage1Config {
    /// Stage1 name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Stage1 version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Path of the stage1 binary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    rkt_kind: String,
    rkt_version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PathsFile {
    data: Option<String>,
    stage1_images: Option<String>,
}

#[derive(Deserialize)]
struct Stage1File {
    name: Option<String>,
    version: Option<String>,
    location: Option<String>,
}

/// Load and merge `paths.d` and `stage1.d` from every root.
pub fn load(dirs: &ConfigDirs) -> Result<Config, ConfigError> {
    let mut cfg = Config::default();
    for root in dirs.in_order() {
        for path in json_files(&root.join("paths.d"))? {
            let f: PathsFile = parse(&path, "paths")?;
            cfg.paths.data = f.data.or(cfg.paths.data);
            cfg.paths.stage1_images = f.stage1_images.or(cfg.paths.stage1_images);
        }
        for path in json_files(&root.join("userns.d"))? {
            let f: UsernsConfig = parse(&path, "userns")?;
            cfg.userns.ranges = f.ranges.or(cfg.userns.ranges);
        }
        for path in json_files(&root.join("stage1.d"))? {
            let f: Stage1File = parse(&path, "stage1")?;
            cfg.stage1.name = f.name.or(cfg.stage1.name);
            cfg.stage1.version = f.version.or(cfg.stage1.version);
            cfg.stage1.location = f.location.or(cfg.stage1.location);
        }
    }
    Ok(cfg)
}

/// `*.json` files of a directory in name order; a missing directory is empty.
pub fn json_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => {
            return Err(ConfigError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    Ok(v)
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, kind: &str) -> Result<T, ConfigError> {
    let data = fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |reason: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let h: Header = serde_json::from_slice(&data).map_err(|e| invalid(e.to_string()))?;
    if h.rkt_kind != kind {
        return Err(invalid(format!(
            "rktKind {:?} does not belong in {kind}.d",
            h.rkt_kind
        )));
    }
    if h.rkt_version != "v1" {
        return Err(invalid(format!(
            "unsupported rktVersion {:?}",
            h.rkt_version
        )));
    }
    serde_json::from_slice(&data).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_roots_override_field_by_field() {
        let sys = tempfile::tempdir().unwrap();
        let loc = tempfile::tempdir().unwrap();
        fs::create_dir_all(sys.path().join("paths.d")).unwrap();
        fs::create_dir_all(loc.path().join("paths.d")).unwrap();
        fs::write(
            sys.path().join("paths.d/a.json"),
            r#"{"rktKind":"paths","rktVersion":"v1","data":"/sys","stage1-images":"/s1"}"#,
        )
        .unwrap();
        fs::write(
            loc.path().join("paths.d/a.json"),
            r#"{"rktKind":"paths","rktVersion":"v1","data":"/loc"}"#,
        )
        .unwrap();
        let cfg = load(&ConfigDirs {
            system: sys.path().into(),
            local: loc.path().into(),
            user: None,
        })
        .unwrap();
        assert_eq!(cfg.paths.data.as_deref(), Some("/loc"));
        assert_eq!(cfg.paths.stage1_images.as_deref(), Some("/s1"));
    }

    #[test]
    fn wrong_kind_is_an_error_naming_the_file() {
        let sys = tempfile::tempdir().unwrap();
        fs::create_dir_all(sys.path().join("stage1.d")).unwrap();
        fs::write(
            sys.path().join("stage1.d/x.json"),
            r#"{"rktKind":"paths","rktVersion":"v1"}"#,
        )
        .unwrap();
        let e = load(&ConfigDirs {
            system: sys.path().into(),
            local: "/nonexistent".into(),
            user: None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("x.json"));
    }
}
