//! `--insecure-options` parsing, with rkt's values and aliases.

use std::fmt;

/// The set of disabled security features.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsecureOptions {
    /// Skip image signature verification.
    pub image: bool,
    /// Skip TLS certificate verification.
    pub tls: bool,
    /// Allow plain-HTTP registries.
    pub http: bool,
    /// Allow fetching public keys over insecure channels.
    pub pubkey: bool,
    /// Keep all capabilities in apps.
    pub capabilities: bool,
    /// Do not mask or read-only-mount sensitive paths.
    pub paths: bool,
    /// No seccomp filter.
    pub seccomp: bool,
}

/// An `--insecure-options` value rkt does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownInsecureOption(pub String);

impl fmt::Display for UnknownInsecureOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown --insecure-options value {:?} (valid: none, image, tls, ondisk, http, pubkey, capabilities, paths, seccomp, all-fetch, all-run, all)",
            self.0
        )
    }
}

impl std::error::Error for UnknownInsecureOption {}

impl InsecureOptions {
    /// Parse a comma-separated list as rkt does.
    pub fn parse(list: &str) -> Result<Self, UnknownInsecureOption> {
        let mut o = InsecureOptions::default();
        for v in list.split(',').map(str::trim) {
            match v {
                "" | "none" | "ondisk" => {}
                "image" => o.image = true,
                "tls" => o.tls = true,
                "http" => o.http = true,
                "pubkey" => o.pubkey = true,
                "capabilities" => o.capabilities = true,
                "paths" => o.paths = true,
                "seccomp" => o.seccomp = true,
                "all-fetch" => {
                    o.image = true;
                    o.tls = true;
                    o.http = true;
                    o.pubkey = true;
                }
                "all-run" => {
                    o.capabilities = true;
                    o.paths = true;
                    o.seccomp = true;
                }
                "all" => {
                    o = InsecureOptions {
                        image: true,
                        tls: true,
                        http: true,
                        pubkey: true,
                        capabilities: true,
                        paths: true,
                        seccomp: true,
                    }
                }
                other => return Err(UnknownInsecureOption(other.to_string())),
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_expand() {
        let o = InsecureOptions::parse("all-fetch").unwrap();
        assert!(o.image && o.tls && o.http && o.pubkey && !o.seccomp);
        let o = InsecureOptions::parse("all-run,image").unwrap();
        assert!(o.capabilities && o.paths && o.seccomp && o.image && !o.tls);
        assert_eq!(
            InsecureOptions::parse("none").unwrap(),
            InsecureOptions::default()
        );
        assert!(InsecureOptions::parse("all").unwrap().seccomp);
    }

    #[test]
    fn unknown_value_is_named() {
        let e = InsecureOptions::parse("image,bogus").unwrap_err();
        assert!(e.to_string().contains("\"bogus\""));
    }
}
