//! `rkt-systemd-generator`: systemd units from `/etc/rkt/pods/*.pod` and `/run/rkt/pods/*.pod`
//! (systemd.generator(7); see `rkt_cli::cmd::generate` and docs/systemd.md).
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dirs: Vec<std::path::PathBuf> = rkt_cli::cmd::generate::POD_DIRS
        .iter()
        .map(std::path::PathBuf::from)
        .collect();
    std::process::exit(rkt_cli::cmd::generate::generator_main(&args, &dirs));
}
