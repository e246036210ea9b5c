//! Writing an OCI image layout as a tar archive (`oci-archive:`): the entries every writer
//! needs, with fixed owner, mode and mtime so the same content gives the same bytes. Used by
//! `rkt image export` and by stage0's pod export.

use std::io::{self, Read, Write};

/// Append a regular file `name` of `size` bytes read from `data` (root-owned, 0644, mtime 0).
pub fn append_entry<W: Write, R: Read>(
    b: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: R,
) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data)
}

/// Append the `oci-layout` marker and an `index.json` naming one manifest, tagged `tag`.
pub fn append_layout_and_index<W: Write>(
    b: &mut tar::Builder<W>,
    manifest_media_type: &str,
    manifest_digest: &str,
    manifest_size: u64,
    tag: &str,
) -> io::Result<()> {
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    append_entry(b, "oci-layout", layout.len() as u64, &layout[..])?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": manifest_media_type,
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    })
    .to_string();
    append_entry(b, "index.json", index.len() as u64, index.as_bytes())
}
