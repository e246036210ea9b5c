//! `rkt version`.

use super::Ctx;

pub fn run(_ctx: &Ctx) -> anyhow::Result<i32> {
    let f = stage0::host::features();
    println!("rkt Version: {}", env!("CARGO_PKG_VERSION"));
    println!(
        "OCI Runtime Spec Version: {}",
        stage0::host::OCI_RUNTIME_SPEC_VERSION
    );
    println!(
        "OCI Image Spec Version: {}",
        stage0::host::OCI_IMAGE_SPEC_VERSION
    );
    println!("appc Version: {} (ACI import)", stage0::host::APPC_VERSION);
    println!(
        "OS/Arch: {}/{}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!("Features: {}", f.render());
    Ok(0)
}
