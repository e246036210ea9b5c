//! `rkt-stage1`: see the library. Parses argv, sets up logging, exits with the pod's code or 254.
#![deny(unsafe_code)]

fn main() {
    let debug = std::env::var(stage1_abi::env::DEBUG).is_ok_and(|v| v == "1");
    // libcontainer logs every failure on its way up at error level, several lines per error;
    // stage1 reports the one-line cause itself, so it is only shown with --debug
    let filter = if debug {
        "debug"
    } else {
        "warn,libcontainer=off,libcgroups=off"
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
    let code = match stage1_abi::Stage1Command::from_args(&args) {
        Ok(cmd) => match stage1::dispatch(&cmd) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("stage1: {e}");
                stage1_abi::exit::RKT_FAILURE
            }
        },
        Err(e) => {
            eprintln!("stage1: {e}");
            stage1_abi::exit::RKT_FAILURE
        }
    };
    std::process::exit(code);
}
