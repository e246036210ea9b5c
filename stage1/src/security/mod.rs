//! What confines an app: capabilities and paths, its seccomp filter (built ahead, cached), and
//! the file operations that stay inside its rootfs.

pub mod inroot;
pub mod isolation;
pub mod seccomp;
pub mod seccomp_cache;
