//! The monitor binary brings its own entry point (`_start`) and links nothing: no C runtime, no
//! libc, no dynamic loader, so its resident set is a few pages.
fn main() {
    for arg in ["-nostartfiles", "-nodefaultlibs", "-static", "-no-pie"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
