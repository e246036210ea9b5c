//! `rkt config`: the merged configuration as JSON — stage0's kinds (paths, stage1) and the image
//! store's (auth without secrets, registry mirrors, the effective signature policy).

use super::Ctx;
use crate::args::ConfigArgs;

pub fn run(ctx: &Ctx, a: &ConfigArgs) -> anyhow::Result<i32> {
    let rt = ctx.runtime()?;
    let roots = rt.dirs().config_roots();
    let auth = image_store::config::load_auth(&roots)?;
    let mirrors = image_store::config::load_mirrors(&roots)?;
    let mut v = serde_json::to_value(rt.config())?;
    v["auth"] = serde_json::to_value(auth.view())?;
    v["mirrors"] = serde_json::to_value(&mirrors)?;
    let trust = image_store::trust::Trust::load(&roots)?;
    v["policy"] = serde_json::to_value(trust.policy())?;
    v["policyFile"] = serde_json::to_value(trust.origin())?;
    crate::output::print_json(&v, a.pretty_print)?;
    Ok(0)
}
