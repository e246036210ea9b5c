//! rkt-devtool: the test harness from the shell, for `make demo` and `make bench`.
//!
//!   rkt-devtool image busybox|whiteout|large DIR   build test image(s) into the OCI layout DIR
//!   rkt-devtool registry DIR                       run a local registry (http + TLS) until
//!                                                  stdin closes or SIGTERM; writes DIR/env with
//!                                                  HTTP_ADDR, TLS_ADDR, CA_FILE
//!   rkt-devtool verifier                           print the path of the static verifier

use anyhow::{bail, Context};
use rkt_tests::{images, registry};
use std::io::Read;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["image", kind, dir] => {
            let dir = PathBuf::from(dir);
            let imgs = match *kind {
                "busybox" => vec![images::build_busybox(&dir)],
                "whiteout" => vec![images::build_whiteout(&dir)],
                "large" => {
                    let (a, b) = images::build_large(&dir);
                    vec![a, b]
                }
                other => bail!("unknown image kind {other:?} (busybox, whiteout, large)"),
            };
            for i in imgs {
                println!("{} {}", i.tag, i.manifest_digest);
            }
        }
        ["registry", dir] => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let reg = registry::Registry::start(registry::RegistryOptions::default());
            let ca = dir.join("ca.crt");
            std::fs::copy(reg.ca_file(), &ca).context("copying CA")?;
            std::fs::write(
                dir.join("env"),
                format!(
                    "HTTP_ADDR={}\nTLS_ADDR={}\nCA_FILE={}\n",
                    reg.http_addr(),
                    reg.tls_addr(),
                    ca.display()
                ),
            )?;
            println!(
                "registry up: http {} tls {}",
                reg.http_addr(),
                reg.tls_addr()
            );
            // Serve until stdin reaches EOF (the caller closes it or dies).
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            drop(reg);
        }
        ["verifier"] => println!("{}", rkt_tests::verifier_path().display()),
        _ => bail!("usage: rkt-devtool image busybox|whiteout|large DIR | registry DIR | verifier"),
    }
    Ok(())
}
