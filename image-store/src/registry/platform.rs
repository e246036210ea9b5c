//! Platforms and picking one manifest out of an image index / manifest list.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An OCI platform (`os/architecture[/variant]`), GOOS/GOARCH spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on (linux/amd64, linux/arm64, …).
    pub fn host() -> Platform {
        let arch = normalise_arch(std::env::consts::ARCH);
        let variant = match arch.as_str() {
            "arm" => Some("v7".to_string()),
            _ => None,
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: arch,
            variant,
        }
    }

    /// Parse `os/arch[/variant]` or just `arch` (os = linux). Architecture aliases
    /// (`x86_64`, `aarch64`, …) are normalised.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some(*v)),
            _ => return Err(format!("invalid platform {s:?}: want os/arch[/variant]")),
        };
        if os.is_empty() || arch.is_empty() || variant.is_some_and(str::is_empty) {
            return Err(format!("invalid platform {s:?}: want os/arch[/variant]"));
        }
        Ok(Platform {
            os: os.to_ascii_lowercase(),
            architecture: normalise_arch(arch),
            variant: variant.map(str::to_ascii_lowercase),
        })
    }

    /// The variant as compared: `arm64/v8` ≡ `arm64`, `amd64/v1` ≡ `amd64`, `arm` ≡ `arm/v7`.
    fn norm_variant(&self) -> String {
        let v = self.variant.as_deref().unwrap_or("");
        match (self.architecture.as_str(), v) {
            ("arm64", "v8") | ("amd64", "v1") => String::new(),
            ("arm", "") => "v7".to_string(),
            _ => v.to_string(),
        }
    }

    fn normalised(&self) -> (String, String, String) {
        (
            self.os.to_ascii_lowercase(),
            normalise_arch(&self.architecture),
            Platform {
                variant: self.variant.clone(),
                architecture: normalise_arch(&self.architecture),
                os: String::new(),
            }
            .norm_variant(),
        )
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform::host()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn normalise_arch(a: &str) -> String {
    match a.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" | "amd64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "i386" | "i686" | "x86" | "386" => "386",
        "armhf" | "armel" | "arm" => "arm",
        "powerpc64le" | "ppc64le" => "ppc64le",
        "powerpc64" | "ppc64" => "ppc64",
        other => return other.to_string(),
    }
    .to_string()
}

/// One entry of an image index / manifest list.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IndexEntry {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct IndexDoc {
    pub manifests: Vec<IndexEntry>,
}

/// Pick the best entry for `want`: same os and architecture, then the exact variant, then
/// (for arm) the closest older variant the CPU can run. Entries without a platform
/// (attestations, artifacts) never match.
pub(crate) fn select<'a>(entries: &'a [IndexEntry], want: &Platform) -> Option<&'a IndexEntry> {
    let (os, arch, variant) = want.normalised();
    entries
        .iter()
        .filter_map(|e| {
            let p = e.platform.as_ref()?;
            let (eos, earch, evariant) = p.normalised();
            if eos != os || earch != arch {
                return None;
            }
            let score = if evariant == variant {
                0
            } else if arch == "arm" {
                // arm/v7 runs v6 and v5 code: prefer the newest that fits.
                let n = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u32>().ok());
                match (n(&variant), n(&evariant)) {
                    (Some(w), Some(h)) if h < w => w - h,
                    _ => return None,
                }
            } else {
                return None;
            };
            Some((score, e))
        })
        .min_by_key(|(score, _)| *score)
        .map(|(_, e)| e)
}

/// `linux/amd64, linux/arm64/v8` for error messages.
pub(crate) fn describe(entries: &[IndexEntry]) -> String {
    let v: Vec<String> = entries
        .iter()
        .filter_map(|e| e.platform.as_ref().map(ToString::to_string))
        .collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.index.v1+json",
      "manifests": [
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aaa","size":1,
         "platform":{"architecture":"amd64","os":"linux"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bbb","size":2,
         "platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:ccc","size":3,
         "platform":{"architecture":"arm","os":"linux","variant":"v6"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:ddd","size":4,
         "platform":{"architecture":"arm","os":"linux","variant":"v7"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:eee","size":5,
         "platform":{"architecture":"amd64","os":"windows","os.version":"10.0"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:fff","size":6,
         "platform":{"architecture":"unknown","os":"unknown"},
         "annotations":{"vnd.docker.reference.type":"attestation-manifest"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:ggg","size":7}
      ]}"#;

    fn pick(want: &str) -> Option<String> {
        let idx: IndexDoc = serde_json::from_str(INDEX).unwrap();
        select(&idx.manifests, &Platform::parse(want).unwrap()).map(|e| e.digest.clone())
    }

    #[test]
    fn selection() {
        assert_eq!(pick("linux/amd64").as_deref(), Some("sha256:aaa"));
        assert_eq!(pick("linux/x86_64").as_deref(), Some("sha256:aaa"));
        assert_eq!(pick("amd64").as_deref(), Some("sha256:aaa"));
        assert_eq!(pick("linux/arm64").as_deref(), Some("sha256:bbb"));
        assert_eq!(pick("linux/aarch64/v8").as_deref(), Some("sha256:bbb"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("sha256:ddd"));
        assert_eq!(pick("linux/arm").as_deref(), Some("sha256:ddd"));
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("sha256:ccc"));
        assert_eq!(pick("linux/arm/v8").as_deref(), Some("sha256:ddd"));
        assert_eq!(pick("linux/arm/v5"), None);
        assert_eq!(pick("windows/amd64").as_deref(), Some("sha256:eee"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("linux/amd64/v3"), None);
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("aarch64").unwrap().to_string(),
            "linux/arm64"
        );
        assert!(Platform::parse("").is_err());
        assert!(Platform::parse("linux/").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert!(!host.architecture.is_empty());
        let idx: IndexDoc = serde_json::from_str(INDEX).unwrap();
        assert!(describe(&idx.manifests).contains("linux/arm/v6"));
    }
}
