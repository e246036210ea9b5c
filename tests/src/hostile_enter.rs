//! Hostile images for the `rkt enter` hardening tests (`tests/tests/hardening_enter.rs`).

use crate::images::{busybox_entries, scratch};
use crate::tarball::{tar_bytes, write_image, Entry, ImageSpec, OciImage};
use std::sync::OnceLock;

/// What the hostile shell injects (then a newline): the script path the kernel passes it.
pub const SHELL_MARKER: &str = "/bin/sh";

/// `/evil`: a script whose interpreter is `/proc/self/exe`, so that exec'ing it runs again
/// whatever binary the exec'ing process was (CVE-2019-5736's way to make the runtime run as a
/// pod process).
fn self_exe_script() -> Entry {
    Entry::file("evil", "#!/proc/self/exe\n").mode(0o755)
}

/// busybox whose `/bin/sh` — what `rkt enter` runs by default — is the verifier's
/// `tty-attack`: it pushes `/bin/sh\n` with TIOCSTI into fds 0-2 and `/dev/tty`, and reports
/// which terminals it had; with `/evil` ([`self_exe_script`]). Built once per process, in a
/// layout of its own.
pub fn hostile_shell() -> &'static OciImage {
    static I: OnceLock<OciImage> = OnceLock::new();
    I.get_or_init(|| {
        let sh = Entry::file("bin/sh", "#!/usr/bin/rkt-verifier tty-attack\n").mode(0o755);
        write_image(
            &scratch().join("oci-hostile-enter"),
            "hostile-shell",
            &[
                tar_bytes(&busybox_entries()),
                tar_bytes(&[sh, self_exe_script()]),
            ],
            &ImageSpec::default(),
        )
    })
}
