//! `rkt docs OUT`: man pages and shell completions generated from the clap definitions.

use crate::args::{Cli, DocsArgs};
use anyhow::Context;
use clap::CommandFactory;
use std::fs;

pub fn run(a: &DocsArgs) -> anyhow::Result<i32> {
    let man = a.out.join("man");
    let comp = a.out.join("completions");
    fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    fs::create_dir_all(&comp).with_context(|| format!("creating {}", comp.display()))?;
    let cmd = Cli::command();
    write_man(&cmd, "rkt", &man)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        let mut c = Cli::command();
        clap_complete::generate_to(shell, &mut c, "rkt", &comp)
            .with_context(|| format!("writing {shell} completions"))?;
    }
    println!("{}", a.out.display());
    Ok(0)
}

fn write_man(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone().name(name.to_string()))
        .render(&mut buf)
        .context("rendering man page")?;
    let path = dir.join(format!("{name}.1"));
    fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
