//! The disk as a KubeVirt containerDisk: an OCI image archive (`oci-archive`, OCI image spec image-layout.md in a
//! tar) whose one layer holds `disk/disk.qcow2`, owned by 107:107 (the `qemu` user of KubeVirt's launcher) as
//! KubeVirt's containerDisk documentation builds it (`FROM scratch`, `ADD --chown=107:107 disk.qcow2 /disk/`).
//!
//! The qcow2 can be gigabytes, so it is streamed straight into the archive file behind placeholder tar headers;
//! once its length is known the headers are patched, the layer is hashed back from the file (page cache, not RAM)
//! and the small JSON blobs are appended after it. The layer is an uncompressed tar: the qcow2 holds only the
//! disk's data clusters already, and KubeVirt (containerd, CRI-O) accepts uncompressed layers.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};
use clay_registry::manifest::{
    Descriptor, Index, Manifest, ANNOTATION_REF_NAME, OCI_CONFIG, OCI_INDEX, OCI_LAYER_TAR, OCI_MANIFEST,
};
use clay_registry::Digest;
use clay_vdisk::{VdiskOptions, VmFormat};
use sha2::Digest as _;

use super::vm::RawFile;
use crate::output::PendingOutput;

/// The extension of the archive: `.tar` alone is `--format tar`'s.
pub const EXTENSION: &str = "containerdisk.tar";
/// The name the image has in the archive's index.json (`oci-archive:FILE:latest`, or just `oci-archive:FILE`).
pub const REF_NAME: &str = "latest";
/// Where KubeVirt looks for the disk in a containerDisk image.
const DISK_DIR: &str = "disk/";
const DISK_PATH: &str = "disk/disk.qcow2";
/// KubeVirt runs QEMU as uid/gid 107 and asks for the disk to be owned by it, readable only (0440).
const KUBEVIRT_QEMU_ID: u32 = 107;
const DISK_MODE: u32 = 0o440;
const DISK_DIR_MODE: u32 = 0o555;
/// Modes of the layout's own entries in the archive.
const LAYOUT_DIR_MODE: u32 = 0o755;
const LAYOUT_FILE_MODE: u32 = 0o644;
/// `oci-layout` (image-layout.md).
const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// tar (POSIX ustar, pax(1) "ustar Interchange Format"): 512-byte blocks, an archive ends with two zero blocks.
const BLOCK: usize = 512;
const END_OF_ARCHIVE: usize = 2 * BLOCK;
const TYPE_FILE: u8 = b'0';
const TYPE_DIR: u8 = b'5';

/// Writes the containerDisk archive of the raw disk `raw` into `output`.
pub fn write(raw: &RawFile<'_>, seed: [u8; 16], epoch: Option<i64>, output: &mut PendingOutput) -> Result<()> {
    let target = output.target().display().to_string();
    let ctx = || format!("cannot write `{target}`");
    let mtime = epoch.and_then(|t| u64::try_from(t).ok()).unwrap_or(0);
    let file = output.file()?;

    // blobs/, blobs/sha256/, then the layer blob's header (patched below) and the layer itself: `disk/`, the
    // qcow2's header (patched below), the qcow2.
    let mut head = Vec::new();
    head.extend_from_slice(&header("blobs/", LAYOUT_DIR_MODE, 0, 0, mtime, TYPE_DIR)?);
    head.extend_from_slice(&header("blobs/sha256/", LAYOUT_DIR_MODE, 0, 0, mtime, TYPE_DIR)?);
    let blob_header_at = head.len() as u64;
    head.extend_from_slice(&[0; BLOCK]);
    let layer_at = head.len() as u64;
    head.extend_from_slice(&header(DISK_DIR, DISK_DIR_MODE, KUBEVIRT_QEMU_ID, 0, mtime, TYPE_DIR)?);
    let disk_header_at = head.len() as u64;
    head.extend_from_slice(&[0; BLOCK]);
    file.seek(SeekFrom::Start(0)).with_context(ctx)?;
    file.write_all(&head).with_context(ctx)?;

    let opts = VdiskOptions { seed, timestamp: epoch.and_then(|t| u32::try_from(t).ok()).unwrap_or(0) };
    let mut out = BufWriter::with_capacity(1 << 20, &mut *file);
    let qcow2_len = clay_vdisk::write_vm_disk(raw, VmFormat::Qcow2, &opts, &mut out).with_context(ctx)?;
    out.write_all(&vec![0; padding(qcow2_len)]).with_context(ctx)?;
    out.write_all(&[0; END_OF_ARCHIVE]).with_context(ctx)?;
    out.flush().with_context(ctx)?;
    drop(out);

    let disk_header = header(DISK_PATH, DISK_MODE, KUBEVIRT_QEMU_ID, qcow2_len, mtime, TYPE_FILE)?;
    file.write_all_at(&disk_header, disk_header_at).with_context(ctx)?;
    let layer_len = (2 * BLOCK + padding(qcow2_len) + END_OF_ARCHIVE) as u64 + qcow2_len;
    let layer_digest = hash_range(file, layer_at, layer_len).with_context(ctx)?;
    let blob_name = format!("blobs/sha256/{}", layer_digest.hex());
    let blob_header = header(&blob_name, LAYOUT_FILE_MODE, 0, layer_len, mtime, TYPE_FILE)?;
    file.write_all_at(&blob_header, blob_header_at).with_context(ctx)?;

    // The small blobs after the layer: config, manifest, then index.json and oci-layout.
    let config = config_json(&layer_digest, epoch)?;
    let config_desc = descriptor(OCI_CONFIG, &config);
    let manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        config: config_desc,
        layers: vec![Descriptor {
            media_type: OCI_LAYER_TAR.to_owned(),
            digest: layer_digest.to_string(),
            size: layer_len,
            ..Descriptor::default()
        }],
        ..Manifest::default()
    })?;
    let mut manifest_desc = descriptor(OCI_MANIFEST, &manifest);
    manifest_desc.annotations.insert(ANNOTATION_REF_NAME.to_owned(), REF_NAME.to_owned());
    let index = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_owned()),
        manifests: vec![manifest_desc],
        ..Index::default()
    })?;

    let mut tail = Vec::new();
    for (name, bytes) in [
        (format!("blobs/sha256/{}", Digest::sha256_of(&config).hex()), &config[..]),
        (format!("blobs/sha256/{}", Digest::sha256_of(&manifest).hex()), &manifest[..]),
        ("index.json".to_owned(), &index[..]),
        ("oci-layout".to_owned(), OCI_LAYOUT_CONTENT),
    ] {
        tail.extend_from_slice(&header(&name, LAYOUT_FILE_MODE, 0, bytes.len() as u64, mtime, TYPE_FILE)?);
        tail.extend_from_slice(bytes);
        tail.resize(tail.len() + padding(bytes.len() as u64), 0);
    }
    tail.resize(tail.len() + END_OF_ARCHIVE, 0);
    file.seek(SeekFrom::Start(layer_at + layer_len)).with_context(ctx)?;
    file.write_all(&tail).with_context(ctx)?;
    file.set_len(layer_at + layer_len + tail.len() as u64).with_context(ctx)?;
    super::status(&format!("containerDisk: one layer of {} ({layer_digest})", super::human(layer_len)));
    Ok(())
}

/// The OCI image config (OCI image spec config.md): linux/amd64, one layer, created at `SOURCE_DATE_EPOCH` when set.
fn config_json(layer: &Digest, epoch: Option<i64>) -> Result<Vec<u8>> {
    let mut config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [layer.to_string()] },
    });
    if let (Some(t), Some(map)) = (epoch, config.as_object_mut()) {
        map.insert("created".to_owned(), rfc3339(t).into());
    }
    Ok(serde_json::to_vec(&config)?)
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: Digest::sha256_of(bytes).to_string(),
        size: bytes.len() as u64,
        ..Descriptor::default()
    }
}

/// SHA-256 of `len` bytes of `file` from `offset`, read back positionally in 1 MiB pieces.
fn hash_range(file: &File, offset: u64, len: u64) -> Result<Digest> {
    let mut hasher = sha2::Sha256::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = usize::try_from((len - done).min(buf.len() as u64))?;
        file.read_exact_at(&mut buf[..n], offset + done)?;
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Digest::parse(&format!("sha256:{hex}"))?)
}

/// Zero bytes after `len` bytes of content to the end of its tar block.
fn padding(len: u64) -> usize {
    let block = BLOCK as u64;
    usize::try_from((block - len % block) % block).unwrap_or(0)
}

/// A ustar header block. Sizes beyond the 11 octal digits of the field (8 GiB) use the base-256 form GNU tar and
/// every modern reader accept.
fn header(name: &str, mode: u32, id: u32, size: u64, mtime: u64, kind: u8) -> Result<[u8; BLOCK]> {
    let mut h = [0u8; BLOCK];
    if name.len() > 100 {
        bail!("internal error: the tar name `{name}` is longer than 100 bytes");
    }
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], u64::from(id));
    octal(&mut h[116..124], u64::from(id));
    if size < 1 << 33 {
        octal(&mut h[124..136], size);
    } else {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    octal(&mut h[136..148], mtime.min(0o777_7777_7777));
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as spaces.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    Ok(h)
}

/// A zero-padded octal number ending in NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    let start = digits.len().saturating_sub(width);
    field[..width].copy_from_slice(&digits.as_bytes()[start..]);
    field[width] = 0;
}

/// `2023-11-14T22:13:20Z` for a Unix time (proleptic Gregorian, UTC).
fn rfc3339(t: i64) -> String {
    clay_time::Utc::from_unix(t).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn headers_carry_size_and_checksum() {
        let h = header("disk/disk.qcow2", 0o440, 107, 12345, 1, TYPE_FILE).unwrap_or([0; 512]);
        assert_eq!(&h[124..136], b"00000030071\0");
        assert_eq!(&h[108..116], b"0000153\0");
        let big = header("x", 0o644, 0, 1 << 34, 1, TYPE_FILE).unwrap_or([0; 512]);
        assert_eq!(big[124], 0x80);
        assert_eq!(&big[128..136], &(1u64 << 34).to_be_bytes());
    }
}
