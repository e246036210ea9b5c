//! Generates the CRI v1 types and service traits from the vendored `proto/api.proto` with a
//! pure-Rust proto compiler (protox), so building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    let fds = protox::compile(["api.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        // the integration tests drive the server as the kubelet would, through a client
        .build_client(true)
        // RPCs this server does not serve yet answer UNIMPLEMENTED
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
