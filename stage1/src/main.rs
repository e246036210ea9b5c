//! `rkt-stage1`: see the library. Parses argv, sets up logging, exits with the pod's code or 254.
#![deny(unsafe_code)]

fn main() {
    let debug = std::env::var(stage1_abi::env::DEBUG).is_ok_and(|v| v == "1");
    let filter = if debug {
        stage1::libcontainer_bypass::DEBUG_LOG_FILTER
    } else {
        stage1::libcontainer_bypass::LOG_FILTER
    };
    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter));
    if debug {
        fmt.with_timer(tracing_subscriber::fmt::time::uptime())
            .init();
    } else {
        fmt.without_time().init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `teardown` is exec'd by rkt-monitor, not by stage0, so it is not part of stage1-abi
    let res = match args.split_first() {
        Some((cmd, rest)) if cmd == stage1_monitor::handoff::TEARDOWN => {
            stage1::pod::supervisor::teardown(rest)
        }
        _ => stage1_abi::Stage1Command::from_args(&args)
            .map_err(stage1::Error::from)
            .and_then(|cmd| stage1::dispatch(&cmd)),
    };
    let code = res.unwrap_or_else(|e| {
        eprintln!("stage1: {e}");
        stage1_abi::exit::RKT_FAILURE
    });
    std::process::exit(code);
}
