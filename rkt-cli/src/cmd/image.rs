//! `rkt fetch` and `rkt image …`: clap types and thin adapters to `image_store::Store`.

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use image_store::{FetchOptions, ImageId, ImageInfo, PullPolicy, RenderOptions, Store};
use serde::Serialize;
use std::path::PathBuf;

use super::Ctx;
use crate::output::{print_json, print_table, Format};

/// `--pull-policy` of fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FetchPullPolicy {
    /// fetch only if not in the store
    New,
    /// always check the remote (layers already stored are not downloaded again)
    Update,
    /// never fetch; the image must be in the store
    Never,
}

/// `rkt fetch` / `rkt image fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// images: docker://HOST/REPO[:TAG|@DIGEST], HOST/REPO[:TAG], oci:PATH[:TAG],
    /// oci-archive:FILE[:TAG], docker-archive:FILE, FILE.aci, file://FILE.aci
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// when to contact the remote: new, update or never
    #[arg(long = "pull-policy", value_enum, default_value = "update")]
    pub pull_policy: FetchPullPolicy,
    /// print the full image hash
    #[arg(long)]
    pub full: bool,
    /// detached signature (`.asc`) of an ACI, the first for the first image and so on
    /// (default: IMAGE.asc next to the file)
    #[arg(long, value_name = "FILE")]
    pub signature: Vec<PathBuf>,
    /// deprecated: use --pull-policy=never
    #[arg(long = "store-only", hide = true)]
    pub store_only: bool,
    /// deprecated: use --pull-policy=update
    #[arg(long = "no-store", hide = true)]
    pub no_store: bool,
}

/// `rkt image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// image subcommand
    #[command(subcommand)]
    pub command: ImageCommand,
}

/// `rkt image` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Fetch images into the store
    Fetch(FetchArgs),
    /// List images in the store
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Remove images from the store
    Rm(RmArgs),
    /// Garbage-collect images, layers and blobs nothing uses
    Gc(GcArgs),
    /// Print the manifest of an image
    #[command(name = "cat-manifest")]
    CatManifest(CatManifestArgs),
    /// Export an image to a file (OCI archive; appc images as their ACI)
    Export(ExportArgs),
    /// Extract an image's root filesystem to a directory
    Extract(ExtractArgs),
    /// Render an image to a directory, as a pod sees it
    Render(ExtractArgs),
    /// Re-hash an image's blobs and layers; repair damaged layers
    Verify(VerifyArgs),
}

/// `image list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// comma-separated fields: id,name,size,importtime,lastused,latest,verified
    #[arg(long, default_value = "id,name,size,importtime,lastused,verified")]
    pub fields: String,
    /// sort by: name, importtime, lastused, size (comma-separated)
    #[arg(long, default_value = "importtime")]
    pub sort: String,
    /// sort order: asc or desc
    #[arg(long, default_value = "asc")]
    pub order: String,
    /// print full ids, byte sizes and absolute times
    #[arg(long)]
    pub full: bool,
    /// do not print the header
    #[arg(long = "no-legend")]
    pub no_legend: bool,
    /// output format: json or json-pretty
    #[arg(long, value_enum, default_value = "")]
    pub format: Format,
}

/// `image rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// image ids (or unique prefixes) or names
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// output format: json or json-pretty
    #[arg(long, value_enum, default_value = "")]
    pub format: Format,
}

/// `image gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// remove images not used for this long (e.g. 24h, 30m, 0s)
    #[arg(long = "grace-period", default_value = "24h")]
    pub grace_period: String,
    /// output format: json or json-pretty
    #[arg(long, value_enum, default_value = "")]
    pub format: Format,
}

/// `image cat-manifest`.
#[derive(Debug, Args)]
pub struct CatManifestArgs {
    /// image id, prefix or name
    pub image: String,
    /// pretty-print the JSON
    #[arg(long = "pretty-print", default_value_t = true, action = clap::ArgAction::Set)]
    pub pretty_print: bool,
}

/// `image export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// image id, prefix or name
    pub image: String,
    /// output file
    pub output: PathBuf,
    /// overwrite the output file
    #[arg(long)]
    pub overwrite: bool,
}

/// `image extract` / `image render`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// image id, prefix or name
    pub image: String,
    /// output directory
    pub output: PathBuf,
    /// write only the root filesystem (no manifest, no rootfs/ level)
    #[arg(long = "rootfs-only")]
    pub rootfs_only: bool,
    /// replace a non-empty output directory
    #[arg(long)]
    pub overwrite: bool,
}

/// `image verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// image ids, prefixes or names
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

fn open(ctx: &Ctx) -> anyhow::Result<Store> {
    Store::open(&ctx.global.dir)
        .with_context(|| format!("cannot open store in {}", ctx.global.dir.display()))
}

/// Short id as rkt printed it for `fetch` (32 hex digits) and `image list` (12).
fn shown_id(id: &ImageId, full: bool, hex: usize) -> String {
    if full {
        id.0.clone()
    } else {
        id.short(hex)
    }
}

/// `rkt fetch IMAGE…`: one id per image on stdout.
pub fn fetch(ctx: &Ctx, a: &FetchArgs) -> anyhow::Result<i32> {
    if a.signature.len() > a.images.len() {
        anyhow::bail!(
            "{} --signature files for {} images: give at most one per image, in order",
            a.signature.len(),
            a.images.len()
        );
    }
    let store = open(ctx)?;
    let pull_policy = if a.store_only {
        PullPolicy::Never
    } else {
        match a.pull_policy {
            FetchPullPolicy::New => PullPolicy::New,
            FetchPullPolicy::Update => PullPolicy::Update,
            FetchPullPolicy::Never => PullPolicy::Never,
        }
    };
    let mut opts = FetchOptions {
        pull_policy,
        insecure_image: ctx.insecure.image,
        insecure_tls: ctx.insecure.tls,
        allow_http: ctx.insecure.http,
        config_dirs: ctx.dirs().config_roots(),
        progress: crate::progress::terminal_bars(),
        credentials: None,
        signature: None,
        trust_keys_from_https: ctx.global.trust_keys_from_https,
    };
    for (i, img) in a.images.iter().enumerate() {
        opts.signature = a.signature.get(i).cloned();
        let id = store
            .fetch(img, &opts)
            .with_context(|| format!("unable to fetch image {img:?}"))?;
        println!("{}", shown_id(&id, a.full, 32));
    }
    Ok(0)
}

/// `rkt image …`.
pub fn run(ctx: &Ctx, a: &ImageArgs) -> anyhow::Result<i32> {
    match &a.command {
        ImageCommand::Fetch(f) => fetch(ctx, f),
        ImageCommand::List(l) => list(ctx, l),
        ImageCommand::Rm(r) => rm(ctx, r),
        ImageCommand::Gc(g) => gc(ctx, g),
        ImageCommand::CatManifest(c) => cat_manifest(ctx, c),
        ImageCommand::Export(e) => {
            let store = open(ctx)?;
            let id = store.image(&e.image)?.id;
            store.export(&id, &e.output, e.overwrite)?;
            Ok(0)
        }
        ImageCommand::Extract(e) | ImageCommand::Render(e) => {
            let store = open(ctx)?;
            let id = store.image(&e.image)?.id;
            store.render(
                &id,
                &e.output,
                RenderOptions {
                    rootfs_only: e.rootfs_only,
                    overwrite: e.overwrite,
                },
            )?;
            Ok(0)
        }
        ImageCommand::Verify(v) => {
            let store = open(ctx)?;
            for img in &v.images {
                let id = store.image(img)?.id;
                let r = store.verify(&id)?;
                for l in &r.layers_repaired {
                    eprintln!("repaired damaged layer {l}");
                }
                println!("successfully verified checksum for image: {:?}", id.0);
            }
            Ok(0)
        }
    }
}

/// `image list --format=json` entry (rkt's api/v1 shape; times in ns).
#[derive(Debug, Serialize)]
struct JsonImage {
    id: String,
    name: String,
    import_time: i64,
    last_used_time: i64,
    size: u64,
    /// How its signature was checked (`gpg:<fingerprint>`, `cosign:<key id>`, `accepted`,
    /// `insecure`).
    verification: String,
}

fn ns(t: &chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(0)
}

fn humanize_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[i])
    } else {
        format!("{v:.0} {}", UNITS[i])
    }
}

fn humanize_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    let secs = (chrono::Utc::now() - *t).num_seconds();
    let (n, unit) = match secs {
        s if s < 1 => return "now".into(),
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86400 => (s / 3600, "hour"),
        s if s < 86400 * 7 => (s / 86400, "day"),
        s if s < 86400 * 30 => (s / (86400 * 7), "week"),
        s if s < 86400 * 365 => (s / (86400 * 30), "month"),
        s => (s / (86400 * 365), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn full_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f %z UTC").to_string()
}

fn list(ctx: &Ctx, a: &ListArgs) -> anyhow::Result<i32> {
    let store = open(ctx)?;
    let mut images = store.list()?;
    let latest = |i: &ImageInfo| store.image(&i.name).map(|x| x.id == i.id).unwrap_or(false);
    for key in a.sort.split(',').map(str::trim).rev() {
        match key {
            "name" => images.sort_by(|x, y| x.name.cmp(&y.name)),
            "importtime" => images.sort_by_key(|x| x.import_time),
            "lastused" => images.sort_by_key(|x| x.last_used),
            "size" => images.sort_by_key(|x| x.size),
            "id" => images.sort_by(|x, y| x.id.cmp(&y.id)),
            other => anyhow::bail!(
                "unknown sort field {other:?} (valid: name, importtime, lastused, size)"
            ),
        }
    }
    match a.order.as_str() {
        "asc" => {}
        "desc" => images.reverse(),
        other => anyhow::bail!("unknown order {other:?} (valid: asc, desc)"),
    }
    if a.format != Format::Table {
        let v: Vec<JsonImage> = images
            .iter()
            .map(|i| JsonImage {
                id: i.id.0.clone(),
                name: i.name.clone(),
                import_time: ns(&i.import_time),
                last_used_time: ns(&i.last_used),
                size: i.size,
                verification: i.verification.clone(),
            })
            .collect();
        print_json(&v, a.format == Format::JsonPretty)?;
        return Ok(0);
    }
    let fields: Vec<&str> = a
        .fields
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    let mut header = Vec::new();
    for f in &fields {
        header.push(match *f {
            "id" => "ID",
            "name" => "NAME",
            "size" => "SIZE",
            "importtime" => "IMPORT TIME",
            "lastused" => "LAST USED",
            "latest" => "LATEST",
            "verified" => "VERIFIED",
            other => anyhow::bail!(
                "unknown field {other:?} (valid: id, name, size, importtime, lastused, latest, verified)"
            ),
        });
    }
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            fields
                .iter()
                .map(|f| match *f {
                    "id" => shown_id(&i.id, a.full, 12),
                    "name" => i.name.clone(),
                    "size" if a.full => i.size.to_string(),
                    "size" => humanize_bytes(i.size),
                    "importtime" if a.full => full_time(&i.import_time),
                    "importtime" => humanize_time(&i.import_time),
                    "lastused" if a.full => full_time(&i.last_used),
                    "lastused" => humanize_time(&i.last_used),
                    "verified" => i.verification.clone(),
                    _ => latest(i).to_string(),
                })
                .collect()
        })
        .collect();
    print_table(if a.no_legend { None } else { Some(&header) }, &rows);
    Ok(0)
}

#[derive(Debug, Serialize)]
struct RmReport {
    removed: Vec<String>,
    errors: Vec<String>,
}

fn rm(ctx: &Ctx, a: &RmArgs) -> anyhow::Result<i32> {
    let store = open(ctx)?;
    let mut rep = RmReport {
        removed: Vec::new(),
        errors: Vec::new(),
    };
    for img in &a.images {
        match store.remove(img) {
            Ok(id) => {
                if a.format == Format::Table {
                    println!("successfully removed aci for image: {:?}", id.0);
                }
                rep.removed.push(id.0);
            }
            Err(e) => {
                if a.format == Format::Table {
                    eprintln!("rkt: {e}");
                }
                rep.errors.push(e.to_string());
            }
        }
    }
    if a.format == Format::Table {
        if !rep.removed.is_empty() {
            eprintln!("{} image(s) successfully removed", rep.removed.len());
        }
    } else {
        print_json(&rep, a.format == Format::JsonPretty)?;
    }
    // Unlike rkt (which exited 0), a name that could not be removed is a failure.
    Ok(if rep.errors.is_empty() {
        0
    } else {
        stage0::exit::RKT_FAILURE
    })
}

fn gc(ctx: &Ctx, a: &GcArgs) -> anyhow::Result<i32> {
    let grace = stage0::flags::parse_duration("--grace-period", &a.grace_period)?;
    let store = open(ctx)?;
    let r = store.gc(grace)?;
    if a.format != Format::Table {
        print_json(&r, a.format == Format::JsonPretty)?;
        return Ok(0);
    }
    for id in &r.removed_images {
        println!("successfully removed aci for image: {:?}", id.0);
    }
    eprintln!(
        "{} image(s), {} layer(s), {} blob(s) and {} temporary file(s) removed",
        r.removed_images.len(),
        r.removed_layers,
        r.removed_blobs,
        r.removed_tmp
    );
    Ok(0)
}

fn cat_manifest(ctx: &Ctx, a: &CatManifestArgs) -> anyhow::Result<i32> {
    let store = open(ctx)?;
    let id = store.image(&a.image)?.id;
    let bytes = store.manifest_bytes(&id)?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).context("stored manifest is not JSON")?;
    print_json(&v, a.pretty_print)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(humanize_bytes(512), "512 B");
        assert_eq!(humanize_bytes(1536), "1.5 KiB");
        assert_eq!(humanize_bytes(50 * 1024 * 1024), "50 MiB");
    }
}
