//! rkt stage1: the pod supervisor. Creates the pod sandbox and its apps with libcontainer,
//! reaps them and exits with the pod's exit code. Single-threaded by design.
#![deny(unsafe_code)]
