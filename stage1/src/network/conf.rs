//! Network configurations: rkt's built-in `default` and `default-restricted`, and the user's
//! `net.d/*.conf|*.conflist|*.json` files; resolving a `--net` list into the networks to attach.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use stage1_abi::NetRequest;

use super::NetError;
use crate::Error;

/// Name of the built-in network with masquerade and a default route.
pub const DEFAULT: &str = "default";
/// Name of the built-in host-only network.
pub const DEFAULT_RESTRICTED: &str = "default-restricted";
/// `source` of the built-in networks.
pub const BUILT_IN: &str = "built-in";
/// The `--net` value that means every configured network.
pub const ALL: &str = "all";

/// CNI spec version given to configurations that do not name one. rkt's own files had none
/// (CNI 0.1.0); today's plugins speak 0.4.0 and 1.0.0, and 0.4.0 results carry what DEL needs.
const DEFAULT_CNI_VERSION: &str = "0.4.0";

/// One network: a CNI configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConf {
    /// Network name.
    pub name: String,
    /// File it came from, or `built-in`.
    pub source: String,
    /// `cniVersion`.
    pub cni_version: String,
    /// The plugin configurations of the chain, in order.
    pub plugins: Vec<Value>,
    /// rkt itself masquerades traffic leaving this network (the built-in `default`: one
    /// iptables-restore instead of the plugin's dozen iptables runs).
    pub rkt_masquerade: bool,
}

impl NetworkConf {
    /// The configuration list as JSON (what is saved for DEL).
    pub fn to_json(&self) -> Value {
        json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "plugins": self.plugins,
            "rktMasquerade": self.rkt_masquerade,
        })
    }

    /// Read back what [`NetworkConf::to_json`] wrote.
    pub fn from_json(v: &Value, source: &str) -> Result<Self, Error> {
        let mut c = parse(v, source)?;
        c.rkt_masquerade = v["rktMasquerade"].as_bool().unwrap_or(false);
        Ok(c)
    }

    /// Whether traffic leaving the pod on this network is masqueraded (by rkt or the plugin).
    pub fn masquerades(&self) -> bool {
        self.rkt_masquerade
            || self
                .plugins
                .iter()
                .any(|p| p["ipMasq"].as_bool() == Some(true))
    }

    /// Whether the chain's main plugin is `ptp`: the pod's link is a veth whose host end routes
    /// only the pod's own addresses, so strict reverse-path filtering there drops every packet
    /// whose source the pod forged (another pod's address among them).
    pub fn point_to_point(&self) -> bool {
        self.plugins
            .first()
            .is_some_and(|p| p["type"].as_str() == Some("ptp"))
    }

    /// The IPAM subnet of the first plugin, if it names one (`ipam.subnet` or the first range).
    pub fn subnet(&self) -> Option<String> {
        let ipam = &self.plugins.first()?["ipam"];
        ipam["subnet"]
            .as_str()
            .or_else(|| ipam["ranges"][0][0]["subnet"].as_str())
            .map(str::to_string)
    }
}

/// rkt's built-in networks (stage1/net/rootfs/etc/rkt/net.d in rkt).
pub fn builtin(name: &str) -> Option<NetworkConf> {
    let (subnet, routes, masq) = match name {
        DEFAULT => ("172.16.28.0/24", json!([{"dst": "0.0.0.0/0"}]), true),
        DEFAULT_RESTRICTED => ("172.31.0.0/16", json!([]), false),
        _ => return None,
    };
    Some(NetworkConf {
        name: name.to_string(),
        source: BUILT_IN.into(),
        cni_version: "1.0.0".into(),
        plugins: vec![json!({
            "type": "ptp",
            "ipMasq": false,
            "ipam": {"type": "host-local", "subnet": subnet, "routes": routes},
        })],
        rkt_masquerade: masq,
    })
}

fn parse(v: &Value, source: &str) -> Result<NetworkConf, Error> {
    let bad = |what: &str| NetError::Conf {
        source_name: source.to_string(),
        msg: what.to_string(),
    };
    let name = v["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("missing \"name\""))?
        .to_string();
    let cni_version = v["cniVersion"]
        .as_str()
        .unwrap_or(DEFAULT_CNI_VERSION)
        .to_string();
    let plugins: Vec<Value> = match v.get("plugins") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|p| {
                let mut p = p.clone();
                if let Some(o) = p.as_object_mut() {
                    o.remove("name");
                    o.remove("cniVersion");
                }
                p
            })
            .collect(),
        Some(_) => return Err(bad("\"plugins\" is not a list").into()),
        None => {
            let mut p = v.clone();
            if let Some(o) = p.as_object_mut() {
                o.remove("name");
                o.remove("cniVersion");
            }
            vec![p]
        }
    };
    if plugins.is_empty() {
        return Err(bad("no plugins").into());
    }
    for p in &plugins {
        if p["type"].as_str().is_none_or(|t| t.is_empty()) {
            return Err(bad("a plugin has no \"type\"").into());
        }
    }
    Ok(NetworkConf {
        name,
        source: source.to_string(),
        cni_version,
        plugins,
        rkt_masquerade: false,
    })
}

/// Read one configuration file (`.conf`/`.json`: one plugin; `.conflist`: a chain).
pub fn load_file(path: &Path) -> Result<NetworkConf, Error> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let v: Value = serde_json::from_slice(&data).map_err(|e| NetError::Conf {
        source_name: path.display().to_string(),
        msg: e.to_string(),
    })?;
    parse(&v, &path.display().to_string())
}

/// Every user network in `dirs` (each a `net.d`), in lexical file order per dir; a later dir's
/// network of the same name replaces an earlier one. Missing dirs are fine.
pub fn load_user(dirs: &[PathBuf]) -> Result<Vec<NetworkConf>, Error> {
    let mut out: Vec<NetworkConf> = Vec::new();
    for d in dirs {
        let rd = match std::fs::read_dir(d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(d, e)),
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("conf" | "conflist" | "json")
                    )
            })
            .collect();
        files.sort();
        for f in files {
            let c = load_file(&f)?;
            out.retain(|o| o.name != c.name);
            out.push(c);
        }
    }
    Ok(out)
}

/// A network to attach: its configuration and `CNI_ARGS`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attach {
    /// The configuration.
    pub conf: NetworkConf,
    /// `K=V;K=V` from `--net=NAME:K=V;…` (empty when none).
    pub args: String,
}

/// Resolve the `--net` list into networks in interface order. A user network shadows a
/// built-in one of the same name; `all` is every user network plus the built-in `default`
/// unless a user one replaces it; a list without `default` gets `default-restricted` appended
/// (as rkt, so the pod can still reach the host).
pub fn resolve(requests: &[NetRequest], user: &[NetworkConf]) -> Result<Vec<Attach>, Error> {
    let find = |name: &str| -> Option<NetworkConf> {
        user.iter()
            .find(|c| c.name == name)
            .cloned()
            .or_else(|| builtin(name))
    };
    let mut out: Vec<Attach> = Vec::new();
    for r in requests {
        if r.name == ALL {
            for c in user {
                if !out.iter().any(|a| a.conf.name == c.name) {
                    out.push(Attach {
                        conf: c.clone(),
                        args: String::new(),
                    });
                }
            }
            if !out.iter().any(|a| a.conf.name == DEFAULT) {
                out.push(Attach {
                    conf: find(DEFAULT).expect("built-in default"),
                    args: String::new(),
                });
            }
            continue;
        }
        let conf = find(&r.name).ok_or_else(|| NetError::UnknownNetwork(r.name.clone()))?;
        let args = r
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        out.retain(|a| a.conf.name != conf.name);
        out.push(Attach { conf, args });
    }
    if !out
        .iter()
        .any(|a| a.conf.name == DEFAULT || a.conf.name == DEFAULT_RESTRICTED)
    {
        out.push(Attach {
            conf: find(DEFAULT_RESTRICTED).expect("built-in default-restricted"),
            args: String::new(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> NetRequest {
        NetRequest {
            name: name.into(),
            args: vec![],
        }
    }

    #[test]
    fn only_ptp_chains_are_point_to_point() {
        assert!(builtin("default").unwrap().point_to_point());
        assert!(builtin("default-restricted").unwrap().point_to_point());
        let bridge = json!({"cniVersion": "1.0.0", "name": "b", "type": "bridge"});
        assert!(!NetworkConf::from_json(&bridge, "t")
            .unwrap()
            .point_to_point());
        let list = json!({"cniVersion": "1.0.0", "name": "l",
            "plugins": [{"type": "ptp"}, {"type": "tuning"}]});
        assert!(NetworkConf::from_json(&list, "t").unwrap().point_to_point());
    }

    #[test]
    fn builtins_are_rkts() {
        let d = builtin(DEFAULT).unwrap();
        assert_eq!(d.subnet().as_deref(), Some("172.16.28.0/24"));
        assert!(d.masquerades());
        assert_eq!(d.plugins[0]["type"], "ptp");
        let r = builtin(DEFAULT_RESTRICTED).unwrap();
        assert_eq!(r.subnet().as_deref(), Some("172.31.0.0/16"));
        assert!(!r.masquerades());
        assert_eq!(r.plugins[0]["ipam"]["routes"], json!([]));
        assert!(builtin("x").is_none());
        let back = NetworkConf::from_json(&d.to_json(), "built-in").unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn conf_and_conflist_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("10-a.conf"),
            r#"{"name":"a","type":"bridge","ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.9.0.0/24"}]]}}"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("20-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"ptp"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .unwrap();
        std::fs::write(d.path().join("README"), "not a conf").unwrap();
        let user = load_user(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(user.len(), 2);
        assert_eq!(user[0].name, "a");
        assert_eq!(user[0].cni_version, DEFAULT_CNI_VERSION);
        assert!(user[0].masquerades());
        assert_eq!(user[0].subnet().as_deref(), Some("10.9.0.0/24"));
        assert!(user[0].plugins[0].get("name").is_none());
        assert_eq!(user[1].plugins.len(), 2);
        assert_eq!(user[1].cni_version, "1.0.0");

        std::fs::write(d.path().join("30-bad.conf"), r#"{"type":"ptp"}"#).unwrap();
        let e = load_user(&[d.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("30-bad.conf") && e.contains("name"), "{e}");
    }

    #[test]
    fn resolving_lists() {
        let user = vec![NetworkConf {
            name: "mine".into(),
            source: "x".into(),
            cni_version: "0.4.0".into(),
            plugins: vec![json!({"type": "bridge"})],
            rkt_masquerade: false,
        }];
        let names = |v: Vec<Attach>| v.into_iter().map(|a| a.conf.name).collect::<Vec<_>>();
        assert_eq!(
            names(resolve(&[req("default")], &user).unwrap()),
            ["default"]
        );
        assert_eq!(
            names(resolve(&[req("mine")], &user).unwrap()),
            ["mine", "default-restricted"]
        );
        assert_eq!(
            names(resolve(&[req("default"), req("mine")], &user).unwrap()),
            ["default", "mine"]
        );
        assert_eq!(
            names(resolve(&[req("all")], &user).unwrap()),
            ["mine", "default"]
        );
        let e = resolve(&[req("nope")], &user).unwrap_err().to_string();
        assert!(e.contains("\"nope\""), "{e}");
        let a = resolve(
            &[NetRequest {
                name: "default".into(),
                args: vec![
                    ("IP".into(), "172.16.28.9".into()),
                    ("k".into(), "v".into()),
                ],
            }],
            &[],
        )
        .unwrap();
        assert_eq!(a[0].args, "IP=172.16.28.9;k=v");
        // a user `default` replaces the built-in one
        let mut mine = user[0].clone();
        mine.name = "default".into();
        let a = resolve(&[req("default")], &[mine]).unwrap();
        assert_eq!(a[0].conf.plugins[0]["type"], "bridge");
        assert!(!a[0].conf.rkt_masquerade);
    }
}
