//! One module per command group; each is a short adapter from args to a library call.

pub mod app;
mod config;
mod docs;
pub mod generate;
pub mod image;
pub mod pods;
pub mod run;
pub mod trust;
mod version;

use crate::args::{Cli, Command, GlobalArgs};

/// Everything a command needs from the global flags, validated once.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The raw global flags.
    pub global: GlobalArgs,
    /// Parsed `--insecure-options`.
    pub insecure: stage0::Insecure,
    /// The command line as given (clap hides a `--` before the first image).
    pub argv: Vec<String>,
}

impl Ctx {
    /// The directories of the global flags.
    pub fn dirs(&self) -> stage0::Dirs {
        stage0::Dirs {
            data: self.global.dir.clone(),
            system_config: self.global.system_config.clone(),
            local_config: self.global.local_config.clone(),
            user_config: self.global.user_config.clone(),
        }
    }

    /// The pod runtime of the global flags: every pod command is one call on it.
    pub fn runtime(&self) -> anyhow::Result<stage0::Runtime> {
        Ok(stage0::Runtime::open(self.dirs())?
            .with_insecure(self.insecure)
            .with_trust_keys_from_https(self.global.trust_keys_from_https)
            .with_debug(self.global.debug))
    }
}

/// Run the parsed command; returns the exit code (errors become 254 in `main`).
pub fn dispatch(cli: Cli, argv: Vec<String>) -> anyhow::Result<i32> {
    let insecure = stage0::Insecure::parse(&cli.global.insecure_options)?;
    let ctx = Ctx {
        global: cli.global,
        insecure,
        argv,
    };
    match cli.command {
        Command::Version => version::run(&ctx),
        Command::Config(a) => config::run(&ctx, &a),
        Command::Docs(a) => docs::run(&a),
        Command::Fetch(a) => image::fetch(&ctx, &a),
        Command::Image(a) => image::run(&ctx, &a),
        Command::Run(a) => run::run(&ctx, &a),
        Command::Prepare(a) => run::prepare(&ctx, &a),
        Command::RunPrepared(a) => run::run_prepared(&ctx, &a),
        Command::List(a) => pods::list(&ctx, &a),
        Command::Status(a) => pods::status(&ctx, &a),
        Command::Stop(a) => pods::stop(&ctx, &a),
        Command::Rm(a) => pods::rm(&ctx, &a),
        Command::Gc(a) => pods::gc(&ctx, &a),
        Command::CatManifest(a) => pods::cat_manifest(&ctx, &a),
        Command::Enter(a) => pods::enter(&ctx, &a),
        Command::Export(a) => pods::export(&ctx, &a),
        Command::Trust(a) => trust::run(&ctx, &a),
        Command::Generate(a) => generate::run(&ctx, &a),
        Command::App(a) => app::run(&ctx, &a),
    }
}
