//! `rkt config`: the merged configuration as JSON.

use super::Ctx;
use crate::args::ConfigArgs;

pub fn run(ctx: &Ctx, a: &ConfigArgs) -> anyhow::Result<i32> {
    let dirs = stage0::config::ConfigDirs {
        system: ctx.global.system_config.clone(),
        local: ctx.global.local_config.clone(),
        user: ctx.global.user_config.clone(),
    };
    let cfg = stage0::config::load(&dirs)?;
    crate::output::print_json(&cfg, a.pretty_print)?;
    Ok(0)
}
