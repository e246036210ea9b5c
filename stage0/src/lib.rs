//! rkt stage0: pod preparation, the pod state machine on disk, and the hand-off (`execve`) to
//! stage1. No namespaces, no cgroups here — those belong to stage1.
#![deny(unsafe_code)]

pub mod config;
pub mod host;
