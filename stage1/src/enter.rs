//! `rkt-stage1 enter --app=A -- CMD…`: run a command inside a running app.

use crate::Error;

/// Run `cmd` in `app`'s namespaces, confined like the app; returns its exit code.
pub fn enter(app: &str, cmd: &[String]) -> Result<i32, Error> {
    let _ = cmd;
    Err(Error::Invalid(format!(
        "enter app {app:?}: not implemented yet"
    )))
}
