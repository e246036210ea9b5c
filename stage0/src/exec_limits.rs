//! What `execve(2)` will take, checked when a pod is prepared: an app whose arguments and
//! environment the kernel would refuse (E2BIG) is refused with one line naming the limit
//! before any pod dir exists, instead of failing in the pod's init at start.
//!
//! The kernel's rules (`fs/exec.c`): every string, NUL included, at most `MAX_ARG_STRLEN`
//! (32 pages = 128 KiB); all of them plus one pointer each at most a quarter of the stack
//! limit (`RLIMIT_STACK`, which the app inherits from `rkt` through stage1), capped at 3/4 of
//! `_STK_LIM` (6 MiB) and never under `ARG_MAX` (32 pages). stage1 may add a few short
//! variables (`TERM`, libcontainer's `HOME`) and the kernel copies the program's path too,
//! so [`SLACK`] bytes are kept free for them.

use stage1_abi::App;

use crate::{Error, Result};

/// The kernel's limit on one argument or environment string, NUL included (MAX_ARG_STRLEN).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;
/// The least the kernel allows for all of them (ARG_MAX).
pub const ARG_MAX: usize = 32 * 4096;
/// The most the kernel allows for all of them whatever the stack limit (3/4 of _STK_LIM).
pub const MAX_ARG_SPACE: usize = 6 << 20;
/// Room kept for what stage1 and the kernel add (TERM, HOME, the program's path).
pub const SLACK: usize = 8 << 10;

/// How many bytes of strings and pointers execve takes with stack limit `stack` (bytes; None
/// = unlimited).
pub fn arg_space(stack: Option<u64>) -> usize {
    let quarter = stack.map_or(usize::MAX, |s| usize::try_from(s / 4).unwrap_or(usize::MAX));
    quarter.clamp(ARG_MAX, MAX_ARG_SPACE)
}

/// The calling process's soft stack limit (None = unlimited).
pub fn stack_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
    match getrlimit(Resource::RLIMIT_STACK) {
        Ok((soft, _)) if soft != RLIM_INFINITY => Some(soft),
        Ok(_) => None,
        Err(_) => Some(8 << 20),
    }
}

/// Check that `app`'s argv and environment fit in `space` bytes ([`arg_space`]) and that no
/// string is over [`MAX_ARG_STRLEN`]. Linear in their size.
pub fn check_app(app: &App, space: usize) -> Result<()> {
    let ptr = std::mem::size_of::<usize>();
    let mut total = SLACK;
    let mut count = 0usize;
    for a in &app.exec {
        let n = a.len() + 1;
        if n > MAX_ARG_STRLEN {
            return Err(Error::usage(format!(
                "app {:?}: an argument is {} bytes, over the kernel's limit of {MAX_ARG_STRLEN} \
                 bytes per argument (MAX_ARG_STRLEN)",
                app.name,
                a.len()
            )));
        }
        total += n + ptr;
        count += 1;
    }
    for (k, v) in &app.environment {
        let n = k.len() + 1 + v.len() + 1;
        if n > MAX_ARG_STRLEN {
            return Err(Error::usage(format!(
                "app {:?}: environment variable {:?} is {} bytes, over the kernel's limit of \
                 {MAX_ARG_STRLEN} bytes per variable (MAX_ARG_STRLEN)",
                app.name,
                k.chars().take(64).collect::<String>(),
                n - 1
            )));
        }
        total += n + ptr;
        count += 1;
    }
    if total > space {
        return Err(Error::usage(format!(
            "app {:?}: arguments and environment take {} bytes in {count} strings, over the \
             {space} bytes execve accepts (a quarter of the stack limit, at most 6 MiB; \
             {SLACK} bytes are kept for stage1)",
            app.name,
            total - SLACK
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stage1_abi::ImageRef;

    fn app(exec: Vec<String>, env: Vec<(String, String)>) -> App {
        App {
            environment: env,
            ..App::new(
                "a",
                ImageRef {
                    id: "sha256:00".into(),
                    name: "i".into(),
                },
                exec,
            )
        }
    }

    #[test]
    fn space_follows_the_kernel() {
        assert_eq!(arg_space(Some(8 << 20)), 2 << 20);
        assert_eq!(arg_space(None), 6 << 20);
        assert_eq!(arg_space(Some(64 << 20)), 6 << 20);
        assert_eq!(arg_space(Some(4096)), ARG_MAX);
    }

    #[test]
    fn too_long_strings_and_too_much_in_all_are_refused() {
        let sh = vec!["/bin/sh".to_string()];
        let ok = app(sh.clone(), vec![("A".into(), "x".repeat(1000))]);
        assert!(check_app(&ok, 2 << 20).is_ok());
        let long = app(sh.clone(), vec![("A".into(), "x".repeat(MAX_ARG_STRLEN))]);
        let e = check_app(&long, 6 << 20).unwrap_err().to_string();
        assert!(e.contains("MAX_ARG_STRLEN") && e.contains("\"A\""), "{e}");
        let arg = app(vec!["x".repeat(MAX_ARG_STRLEN)], vec![]);
        assert!(check_app(&arg, 6 << 20).is_err());
        // 100 000 short variables fit the default 2 MiB; 200 000 do not
        let many = |n: usize| {
            app(
                sh.clone(),
                (0..n).map(|i| (format!("V{i}"), "1".into())).collect(),
            )
        };
        assert!(check_app(&many(100_000), 2 << 20).is_ok());
        let e = check_app(&many(200_000), 2 << 20).unwrap_err().to_string();
        assert!(e.contains("over the 2097152 bytes execve accepts"), "{e}");
        assert_eq!(e.lines().count(), 1);
    }
}
