//! End-to-end tests of `rkt-stage1 run` on hand-built pod dirs (run as root).
mod common;

use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn exit_code_zero() {
    let mut p = Pod::new(vec![app("a", &["/bin/true"])], vec![], runtime());
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    let s = p.status("a");
    assert_eq!(s.exit_code, Some(0));
    assert!(s.started_ns.is_some() && s.finished_ns.is_some());
}
