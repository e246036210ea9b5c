//! The parts of OCI/Docker manifests, indexes and image configs (and appc manifests) the store
//! reads. Parsed from the exact bytes that were verified, so the digests stay meaningful.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const ACI_MANIFEST: &str = "application/vnd.appc.image.manifest.v0+json";
pub(crate) const ACI_LAYER: &str = "application/vnd.appc.image.v0.aci";

/// A content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// A platform in an index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (OCI or Docker schema2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An index / manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainerConfig {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    user: Option<String>,
    working_dir: Option<String>,
    volumes: Option<BTreeMap<String, serde_json::Value>>,
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    labels: Option<BTreeMap<String, String>>,
    stop_signal: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawRootfs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawConfig {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    config: Option<RawContainerConfig>,
    #[serde(default)]
    rootfs: RawRootfs,
}

/// What an app needs from an image's configuration (plain types).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// ENTRYPOINT (appc: `exec`).
    pub entrypoint: Vec<String>,
    /// CMD.
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// `user[:group]` (appc: `user:group`).
    pub user: String,
    /// Working directory (empty = `/`).
    pub working_dir: String,
    /// Volume mount points.
    pub volumes: Vec<String>,
    /// `port/proto` entries.
    pub exposed_ports: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// STOPSIGNAL, if any.
    pub stop_signal: Option<String>,
    /// Architecture (OCI `architecture`, appc `arch` label).
    pub architecture: String,
    /// OS.
    pub os: String,
}

fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// Parse a manifest or index from bytes; `Ok(Err(index))` when it is an index.
pub(crate) fn parse_manifest(bytes: &[u8]) -> Result<std::result::Result<Manifest, Index>> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| invalid("manifest", e))?;
    if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
        return Err(Error::Unsupported("docker schema1 manifest".into()));
    }
    let mt = v.get("mediaType").and_then(|s| s.as_str()).unwrap_or("");
    if mt == OCI_INDEX
        || mt == DOCKER_LIST
        || (v.get("manifests").is_some() && v.get("layers").is_none())
    {
        return Ok(Err(
            serde_json::from_value(v).map_err(|e| invalid("image index", e))?
        ));
    }
    Ok(Ok(
        serde_json::from_value(v).map_err(|e| invalid("manifest", e))?
    ))
}

/// An image config: the app-facing part and the diff ids.
pub(crate) fn parse_config(bytes: &[u8]) -> Result<(ImageConfig, Vec<String>)> {
    let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| invalid("image config", e))?;
    let c = raw.config.unwrap_or_default();
    let cfg = ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
        working_dir: c.working_dir.unwrap_or_default(),
        volumes: c.volumes.unwrap_or_default().into_keys().collect(),
        exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
        labels: c.labels.unwrap_or_default(),
        stop_signal: c.stop_signal,
        architecture: raw.architecture,
        os: raw.os,
    };
    Ok((cfg, raw.rootfs.diff_ids))
}

/// The host platform in OCI terms.
pub(crate) fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}

/// Pick the host platform's manifest from an index (or the only one).
pub(crate) fn pick_platform(index: &Index) -> Result<Descriptor> {
    let (os, arch) = host_platform();
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| d.media_type != "application/vnd.oci.image.index.v1+json")
        .collect();
    if let Some(d) = candidates.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == os && p.architecture == arch)
    }) {
        return Ok((*d).clone());
    }
    if candidates.len() == 1 && candidates[0].platform.is_none() {
        return Ok(candidates[0].clone());
    }
    Err(Error::Unsupported(format!(
        "image index: no manifest for platform {os}/{arch}"
    )))
}

// ---- appc ----

#[derive(Debug, Clone, Deserialize)]
struct AciNameValue {
    name: String,
    value: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AciPort {
    #[serde(default)]
    protocol: String,
    port: u32,
}

#[derive(Debug, Clone, Deserialize)]
struct AciMountPoint {
    path: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AciApp {
    #[serde(default)]
    exec: Vec<String>,
    #[serde(default)]
    user: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    working_directory: String,
    #[serde(default)]
    environment: Vec<AciNameValue>,
    #[serde(default)]
    mount_points: Vec<AciMountPoint>,
    #[serde(default)]
    ports: Vec<AciPort>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AciManifest {
    ac_kind: String,
    name: String,
    #[serde(default)]
    labels: Vec<AciNameValue>,
    #[serde(default)]
    app: Option<AciApp>,
    #[serde(default)]
    dependencies: Vec<serde_json::Value>,
}

/// Parse an appc image manifest: `(name with version, config)`.
pub(crate) fn parse_aci_manifest(bytes: &[u8]) -> Result<(String, ImageConfig)> {
    let m: AciManifest = serde_json::from_slice(bytes).map_err(|e| invalid("aci manifest", e))?;
    if m.ac_kind != "ImageManifest" {
        return Err(invalid(
            "aci manifest",
            format!("acKind is {:?}, not \"ImageManifest\"", m.ac_kind),
        ));
    }
    if !m.dependencies.is_empty() {
        return Err(Error::Unsupported(format!(
            "aci {:?} with dependencies (appc discovery is not supported)",
            m.name
        )));
    }
    let labels: BTreeMap<String, String> =
        m.labels.into_iter().map(|l| (l.name, l.value)).collect();
    let os = labels
        .get("os")
        .cloned()
        .ok_or_else(|| invalid("aci manifest", "missing os label in the image manifest"))?;
    let arch = labels
        .get("arch")
        .cloned()
        .ok_or_else(|| invalid("aci manifest", "missing arch label in the image manifest"))?;
    if os != "linux" {
        return Err(invalid("aci manifest", format!("bad os {os:?}")));
    }
    let app = m.app.unwrap_or_default();
    let user = match (app.user.as_str(), app.group.as_str()) {
        ("", _) => String::new(),
        (u, "") => u.to_string(),
        (u, g) => format!("{u}:{g}"),
    };
    let name = match labels.get("version") {
        Some(v) => format!("{}:{v}", m.name),
        None => m.name.clone(),
    };
    let cfg = ImageConfig {
        entrypoint: app.exec,
        cmd: Vec::new(),
        env: app
            .environment
            .into_iter()
            .map(|e| format!("{}={}", e.name, e.value))
            .collect(),
        user,
        working_dir: app.working_directory,
        volumes: app.mount_points.into_iter().map(|m| m.path).collect(),
        exposed_ports: app
            .ports
            .into_iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.port,
                    if p.protocol.is_empty() {
                        "tcp"
                    } else {
                        &p.protocol
                    }
                )
            })
            .collect(),
        architecture: arch,
        os,
        labels,
        stop_signal: None,
    };
    Ok((name, cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_fields() {
        let c = br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/sh"],"Cmd":["-c","x"],
            "Env":["A=1"],"User":"1:2","WorkingDir":"/w","Volumes":{"/data":{}},"ExposedPorts":{"80/tcp":{}},
            "Labels":{"k":"v"}},"rootfs":{"type":"layers","diff_ids":["sha256:1"]}}"#;
        let (cfg, ids) = parse_config(c).unwrap();
        assert_eq!(cfg.entrypoint, vec!["/bin/sh"]);
        assert_eq!(cfg.volumes, vec!["/data"]);
        assert_eq!(cfg.exposed_ports, vec!["80/tcp"]);
        assert_eq!(ids, vec!["sha256:1"]);
    }

    #[test]
    fn schema1_and_index() {
        assert!(parse_manifest(br#"{"schemaVersion":1,"fsLayers":[]}"#).is_err());
        let (os, arch) = host_platform();
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:a","size":1,"platform":{{"os":"linux","architecture":"s390x"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:b","size":1,"platform":{{"os":"{os}","architecture":"{arch}"}}}}]}}"#
        );
        let i = parse_manifest(idx.as_bytes()).unwrap().unwrap_err();
        assert_eq!(pick_platform(&i).unwrap().digest, "sha256:b");
    }

    #[test]
    fn aci_manifest() {
        let m = br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/hello",
            "labels":[{"name":"version","value":"0.0.1"},{"name":"arch","value":"amd64"},{"name":"os","value":"linux"}],
            "app":{"exec":["/hello"],"user":"0","group":"0","ports":[{"name":"www","protocol":"tcp","port":5000}]}}"#;
        let (name, cfg) = parse_aci_manifest(m).unwrap();
        assert_eq!(name, "example.com/hello:0.0.1");
        assert_eq!(cfg.entrypoint, vec!["/hello"]);
        assert_eq!(cfg.user, "0:0");
        assert_eq!(cfg.exposed_ports, vec!["5000/tcp"]);
        let bad =
            br#"{"acKind":"ImageManifest","name":"x","labels":[{"name":"arch","value":"amd64"}]}"#;
        let deps = br#"{"acKind":"ImageManifest","name":"x","labels":[{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],
            "dependencies":[{"imageName":"example.com/base"}]}"#;
        assert!(parse_aci_manifest(deps)
            .unwrap_err()
            .to_string()
            .contains("dependencies"));
        assert!(parse_aci_manifest(bad)
            .unwrap_err()
            .to_string()
            .contains("missing os label"));
    }
}
