//! Measurements, not assertions: `cargo test -p stage1 --test measure -- --ignored --nocapture`.
mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
#[ignore]
fn rss_and_start_time() {
    let mut times = Vec::new();
    for _ in 0..15 {
        let mut p = Pod::new(vec![app("a", &["/bin/true"])], vec![], runtime());
        let t0 = Instant::now();
        let (st, _o, e) = p.run(Duration::from_secs(10));
        times.push(t0.elapsed());
        assert_eq!(code(&st), 0, "{e}");
    }
    times.sort();
    if std::env::var("STAGE1_TEST_DEBUG").is_ok() {
        let mut p = Pod::new(vec![app("a", &["/bin/true"])], vec![], runtime());
        let (_st, _o, e) = p.run(Duration::from_secs(10));
        let keep = ["DEBUG", "INFO", "ERROR"];
        for l in e.lines().filter(|l| keep.iter().any(|k| l.contains(k))) {
            println!("{l}");
        }
    }
    println!(
        "/bin/true pod: median {:?} min {:?}",
        times[times.len() / 2],
        times[0]
    );

    let mut p = Pod::new(vec![app("a", &["/bin/sleep", "1000"])], vec![], runtime());
    p.spawn();
    p.wait_ready(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    let pid = p.child.as_ref().unwrap().id();
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for l in st
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("RssAnon") || l.starts_with("RssFile"))
    {
        println!("stage1 {l}");
    }
    if let Ok(script) = std::env::var("STAGE1_SMAPS") {
        let o = std::process::Command::new(script)
            .arg(pid.to_string())
            .output()
            .unwrap();
        println!("{}", String::from_utf8_lossy(&o.stdout));
    }
    let sb = std::fs::read_to_string(p.path().join("sandbox-pid")).unwrap();
    let st = std::fs::read_to_string(format!("/proc/{}/status", sb.trim())).unwrap();
    for l in st.lines().filter(|l| l.starts_with("VmRSS")) {
        println!("sandbox {l}");
    }
}
