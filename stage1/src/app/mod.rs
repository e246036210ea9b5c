//! One app of the pod: its OCI spec, user, volumes and terminal, and the helper that creates
//! its container.

pub mod console;
pub mod helper;
pub mod spec;
pub mod start;
pub mod user;
pub mod volumes;
