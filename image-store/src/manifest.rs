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

// ---- limits on an image's configuration ----
//
// The same for every source (registries, `oci:` layouts, oci-archive, docker-archive, ACIs):
// every config and ACI manifest is parsed here, and the lists are capped while they are
// parsed, so a hostile config is refused after reading at most the limit, not after building
// millions of strings. Each limit is far above what real images use:
// - [`MAX_CONFIG_SIZE`]: what registries already allowed (containerd's limit too);
// - [`MAX_ENV`], [`MAX_ARGS`]: no `execve` could take more: it takes at most 6 MiB of strings
//   and pointers (3/4 of the kernel's 8 MiB `_STK_LIM`, whatever the stack limit), and each
//   variable costs at least 11 bytes (`k=\0` and a pointer): 6 MiB / 11 > 2^19;
// - [`MAX_VOLUMES`], [`MAX_PORTS`], [`MAX_LABELS`]: each volume is a mount in the pod and each
//   port a forwarding candidate; thousands is already absurd.

/// Largest image config (or ACI manifest) accepted, from any source.
pub const MAX_CONFIG_SIZE: u64 = 32 << 20;
/// Most `Env` entries (ACI: `environment`) in one image.
pub const MAX_ENV: usize = 1 << 19;
/// Most entries in each of `Entrypoint` and `Cmd` (ACI: `exec`).
pub const MAX_ARGS: usize = 1 << 19;
/// Most `Volumes` (ACI: `mountPoints`).
pub const MAX_VOLUMES: usize = 4096;
/// Most `ExposedPorts` (ACI: `ports`).
pub const MAX_PORTS: usize = 4096;
/// Most `Labels`.
pub const MAX_LABELS: usize = 1 << 16;

/// Refuse a config of `size` bytes over [`MAX_CONFIG_SIZE`].
pub(crate) fn check_config_size(size: u64) -> Result<()> {
    if size > MAX_CONFIG_SIZE {
        return Err(invalid(
            "image config",
            format!(
                "{size} bytes, over the limit of {MAX_CONFIG_SIZE} bytes (32 MiB) for image \
                 configs"
            ),
        ));
    }
    Ok(())
}

/// A list or map capped while it is parsed: what it holds and its limit.
trait Cap {
    const WHAT: &'static str;
    const MAX: usize;
}

macro_rules! caps {
    ($($name:ident: $what:literal, $max:expr;)*) => {$(
        #[derive(Debug, Clone, Default)]
        struct $name;
        impl Cap for $name {
            const WHAT: &'static str = $what;
            const MAX: usize = $max;
        }
    )*};
}

caps! {
    EnvCap: "environment variables", MAX_ENV;
    ArgsCap: "arguments in Entrypoint, Cmd or exec", MAX_ARGS;
    VolumesCap: "volumes", MAX_VOLUMES;
    PortsCap: "exposed ports", MAX_PORTS;
    LabelsCap: "labels", MAX_LABELS;
}

fn over<E: serde::de::Error, C: Cap>() -> E {
    E::custom(format!(
        "more than {} {} (the limit on image configs)",
        C::MAX,
        C::WHAT
    ))
}

/// A JSON array of at most `C::MAX` items.
#[derive(Debug, Clone)]
struct Capped<T, C>(Vec<T>, std::marker::PhantomData<C>);

impl<T, C> Default for Capped<T, C> {
    fn default() -> Self {
        Capped(Vec::new(), std::marker::PhantomData)
    }
}

impl<'de, T: Deserialize<'de>, C: Cap> Deserialize<'de> for Capped<T, C> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<T, C>(std::marker::PhantomData<(T, C)>);
        impl<'de, T: Deserialize<'de>, C: Cap> serde::de::Visitor<'de> for V<T, C> {
            type Value = Capped<T, C>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a list of {}", C::WHAT)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(x) = seq.next_element()? {
                    if v.len() == C::MAX {
                        return Err(over::<A::Error, C>());
                    }
                    v.push(x);
                }
                Ok(Capped(v, std::marker::PhantomData))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// A JSON object of at most `C::MAX` members (later duplicates replace earlier ones).
#[derive(Debug, Clone)]
struct CappedMap<V, C>(BTreeMap<String, V>, std::marker::PhantomData<C>);

impl<V, C> Default for CappedMap<V, C> {
    fn default() -> Self {
        CappedMap(BTreeMap::new(), std::marker::PhantomData)
    }
}

impl<'de, V: Deserialize<'de>, C: Cap> Deserialize<'de> for CappedMap<V, C> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Vis<V, C>(std::marker::PhantomData<(V, C)>);
        impl<'de, V: Deserialize<'de>, C: Cap> serde::de::Visitor<'de> for Vis<V, C> {
            type Value = CappedMap<V, C>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "an object of {}", C::WHAT)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut m = BTreeMap::new();
                let mut n = 0usize;
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    n += 1;
                    if n > C::MAX {
                        return Err(over::<A::Error, C>());
                    }
                    m.insert(k, v);
                }
                Ok(CappedMap(m, std::marker::PhantomData))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainerConfig {
    entrypoint: Option<Capped<String, ArgsCap>>,
    cmd: Option<Capped<String, ArgsCap>>,
    env: Option<Capped<String, EnvCap>>,
    user: Option<String>,
    working_dir: Option<String>,
    volumes: Option<CappedMap<serde::de::IgnoredAny, VolumesCap>>,
    exposed_ports: Option<CappedMap<serde::de::IgnoredAny, PortsCap>>,
    labels: Option<CappedMap<String, LabelsCap>>,
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
/// Every source's config goes through here: [`MAX_CONFIG_SIZE`] and the other limits apply.
pub(crate) fn parse_config(bytes: &[u8]) -> Result<(ImageConfig, Vec<String>)> {
    check_config_size(bytes.len() as u64)?;
    let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| invalid("image config", e))?;
    let c = raw.config.unwrap_or_default();
    let cfg = ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default().0,
        cmd: c.cmd.unwrap_or_default().0,
        env: c.env.unwrap_or_default().0,
        user: c.user.unwrap_or_default(),
        working_dir: c.working_dir.unwrap_or_default(),
        volumes: c.volumes.unwrap_or_default().0.into_keys().collect(),
        exposed_ports: c.exposed_ports.unwrap_or_default().0.into_keys().collect(),
        labels: c.labels.unwrap_or_default().0,
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
    exec: Capped<String, ArgsCap>,
    #[serde(default)]
    user: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    working_directory: String,
    #[serde(default)]
    environment: Capped<AciNameValue, EnvCap>,
    #[serde(default)]
    mount_points: Capped<AciMountPoint, VolumesCap>,
    #[serde(default)]
    ports: Capped<AciPort, PortsCap>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AciManifest {
    ac_kind: String,
    name: String,
    #[serde(default)]
    labels: Capped<AciNameValue, LabelsCap>,
    #[serde(default)]
    app: Option<AciApp>,
    #[serde(default)]
    dependencies: Vec<serde_json::Value>,
}

/// Parse an appc image manifest: `(name with version, config)`.
pub(crate) fn parse_aci_manifest(bytes: &[u8]) -> Result<(String, ImageConfig)> {
    check_config_size(bytes.len() as u64)?;
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
        m.labels.0.into_iter().map(|l| (l.name, l.value)).collect();
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
        entrypoint: app.exec.0,
        cmd: Vec::new(),
        env: app
            .environment
            .0
            .into_iter()
            .map(|e| format!("{}={}", e.name, e.value))
            .collect(),
        user,
        working_dir: app.working_directory,
        volumes: app.mount_points.0.into_iter().map(|m| m.path).collect(),
        exposed_ports: app
            .ports
            .0
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

    fn config_with(field: &str, items: String) -> Vec<u8> {
        format!(r#"{{"architecture":"amd64","os":"linux","config":{{"{field}":{items}}},"rootfs":{{"diff_ids":[]}}}}"#)
            .into_bytes()
    }

    fn list(n: usize) -> String {
        let v: Vec<String> = (0..n).map(|i| format!("\"V{i}=1\"")).collect();
        format!("[{}]", v.join(","))
    }

    fn object(n: usize) -> String {
        let v: Vec<String> = (0..n).map(|i| format!("\"{i}/tcp\":{{}}")).collect();
        format!("{{{}}}", v.join(","))
    }

    #[test]
    fn config_limits_hold_while_parsing() {
        // at the limit: fine
        let (cfg, _) = parse_config(&config_with("Env", list(MAX_ENV))).unwrap();
        assert_eq!(cfg.env.len(), MAX_ENV);
        // one over: refused, naming the limit, for every capped field
        for (field, items, what) in [
            (
                "Env",
                list(MAX_ENV + 1),
                "more than 524288 environment variables",
            ),
            ("Cmd", list(MAX_ARGS + 1), "more than 524288 arguments"),
            (
                "Entrypoint",
                list(MAX_ARGS + 1),
                "more than 524288 arguments",
            ),
            (
                "ExposedPorts",
                object(MAX_PORTS + 1),
                "more than 4096 exposed ports",
            ),
            ("Volumes", object(MAX_VOLUMES + 1), "more than 4096 volumes"),
        ] {
            let e = parse_config(&config_with(field, items))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("invalid image config: "), "{e}");
            assert!(e.contains(what) && e.contains("the limit"), "{field}: {e}");
            assert_eq!(e.lines().count(), 1);
        }
        // 2.3 million entries (26 MB) are refused after reading the first 2^19
        let huge = config_with("Env", list(2_300_000));
        assert!(huge.len() > 25 << 20);
        let t = std::time::Instant::now();
        assert!(parse_config(&huge).is_err());
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        // the size limit, before any parsing
        let big = vec![b' '; (MAX_CONFIG_SIZE + 1) as usize];
        let e = parse_config(&big).unwrap_err().to_string();
        assert!(
            e.contains("over the limit of 33554432 bytes (32 MiB)"),
            "{e}"
        );
        let e = parse_aci_manifest(&big).unwrap_err().to_string();
        assert!(e.contains("33554432"), "{e}");
    }

    #[test]
    fn aci_manifests_have_the_same_limits() {
        let env: Vec<String> = (0..=MAX_ENV)
            .map(|i| format!(r#"{{"name":"V{i}","value":"1"}}"#))
            .collect();
        let m = format!(
            r#"{{"acKind":"ImageManifest","name":"x","labels":[{{"name":"os","value":"linux"}},
            {{"name":"arch","value":"amd64"}}],"app":{{"exec":["/x"],"environment":[{}]}}}}"#,
            env.join(",")
        );
        let e = parse_aci_manifest(m.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("more than 524288 environment variables"), "{e}");
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
