//! The `rkt` command line: argument types, output formatting and exit codes. No logic lives
//! here: every subcommand is a short adapter from its arguments to one library call in
//! `stage0` or `image-store`.
#![deny(unsafe_code)]

pub mod args;
pub mod cmd;
pub mod output;
mod progress;
mod sys;

use clap::Parser;
use stage0::exit;

/// Entry point of the `rkt` binary; returns the process exit code.
pub fn main() -> i32 {
    sys::default_sigpipe();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.len() == 1 {
        // rkt with no subcommand: help on stderr, usage error.
        let mut cmd = <args::Cli as clap::CommandFactory>::command();
        let _ = cmd.write_help(&mut std::io::stderr());
        return exit::USAGE;
    }
    let cli = match args::Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    0
                }
                // only global flags: as bare `rkt`
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                | ErrorKind::MissingSubcommand
                    if cli_has_no_subcommand(&argv) =>
                {
                    let mut cmd = <args::Cli as clap::CommandFactory>::command();
                    let _ = cmd.write_help(&mut std::io::stderr());
                    exit::USAGE
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    exit::USAGE
                }
                _ => {
                    // One line naming what is wrong, as for every other rkt-side error.
                    let text = e.to_string();
                    let first = text.lines().next().unwrap_or("invalid arguments");
                    eprintln!("rkt: {}", first.trim_start_matches("error: "));
                    exit::RKT_FAILURE
                }
            };
        }
    };
    init_logging(cli.global.debug);
    let argv = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match cmd::dispatch(cli, argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rkt: {}", output::one_line(&e));
            exit::RKT_FAILURE
        }
    }
}

/// Whether `argv` names no subcommand (only global flags and their values).
fn cli_has_no_subcommand(argv: &[std::ffi::OsString]) -> bool {
    // clap itself says so: the same grammar with the subcommand optional
    <args::Cli as clap::CommandFactory>::command()
        .subcommand_required(false)
        .arg_required_else_help(false)
        .try_get_matches_from(argv)
        .is_ok_and(|m| m.subcommand().is_none())
}

fn init_logging(debug: bool) {
    let filter = if debug { "debug" } else { "warn" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RKT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `--help` works on every command and subcommand.
    #[test]
    fn help_on_every_command() {
        fn walk(cmd: &clap::Command, path: &mut Vec<String>) {
            let mut argv = vec!["rkt".to_string()];
            argv.extend(path.iter().cloned());
            argv.push("--help".into());
            let e = crate::args::Cli::command()
                .try_get_matches_from(&argv)
                .expect_err("--help exits");
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{argv:?}");
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                path.push(sub.get_name().to_string());
                walk(sub, path);
                path.pop();
            }
        }
        crate::args::Cli::command().debug_assert();
        walk(&crate::args::Cli::command(), &mut vec![]);
    }
}
