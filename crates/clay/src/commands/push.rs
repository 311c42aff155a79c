//! `clay push FILE docker://REF`: puts what clay built into a container registry.
//!
//! An OCI image archive (a `.containerdisk.tar`, or any `oci-archive`) is pushed as the image it holds. A UKI, a
//! disk or an ISO is pushed as an OCI 1.1 artifact (OCI image spec manifest.md "Guidelines for Artifact Usage"): an
//! empty `{}` config, one layer that is the file, an `artifactType` and layer media type naming what it is, and
//! the file name as `org.opencontainers.image.title`, as ORAS writes it, so `oras pull` gives the file back.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use clay_registry::manifest::ANNOTATION_TITLE;
use clay_registry::{BlobPart, BlobSource, ImageParts, PushOptions, PushSource, Reference, TRANSPORT_PREFIX};

use crate::commands::build::{human, status};
use crate::commands::registry::RegistryArgs;
use crate::output::ScratchDir;

/// Artifact (and layer) media types of what clay builds.
pub const UKI_MEDIA_TYPE: &str = "application/vnd.claylinux.uki.v1+efi";
pub const ISO_MEDIA_TYPE: &str = "application/vnd.claylinux.iso.v1";
/// Followed by the disk format: `raw`, `qcow2`, `vmdk`, `vhdx`, `vdi`, `vhd`.
pub const DISK_MEDIA_TYPE_PREFIX: &str = "application/vnd.claylinux.disk.v1.";

/// tar (POSIX ustar): 512-byte blocks; the magic at offset 257 (`ustar\0` or GNU's `ustar  \0`).
const TAR_BLOCK: usize = 512;
const TAR_MAGIC: &[u8] = b"ustar";
const TAR_MAGIC_AT: usize = 257;
/// PAX and GNU long-name records are small; anything larger is not one we need.
const MAX_TAR_META: u64 = 1 << 20;
/// ISO 9660: the primary volume descriptor's `CD001` at the start of sector 16 (2048-byte sectors), after its type.
const ISO_MAGIC: &[u8] = b"CD001";
const ISO_MAGIC_AT: u64 = 16 * 2048 + 1;
/// A GPT header at LBA 1 (UEFI spec 5.3.2), else an MBR boot signature at 510 (UEFI spec 5.2.1).
const GPT_SIGNATURE: &[u8] = b"EFI PART";
const GPT_AT: usize = 512;
const MBR_SIGNATURE: [u8; 2] = [0x55, 0xaa];
const MBR_SIGNATURE_AT: usize = 510;
/// PE/COFF files start with the DOS `MZ`.
const MZ: &[u8] = b"MZ";

#[derive(Debug, Args)]
pub struct PushArgs {
    /// What to push: a .containerdisk.tar (or any OCI image archive), a UKI (.efi), a disk (.img, .qcow2, .vmdk,
    /// ...) or an ISO.
    pub file: PathBuf,
    /// Where to: docker://REGISTRY/REPOSITORY[:TAG].
    pub destination: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// What a file to push is.
#[derive(Debug, PartialEq, Eq)]
enum Payload {
    /// An OCI image layout in a tar.
    OciArchive,
    /// A single file, pushed as an artifact of this media type.
    Artifact(String),
}

pub fn run(args: PushArgs) -> Result<ExitCode> {
    let Some(dest) = args.destination.strip_prefix(TRANSPORT_PREFIX) else {
        bail!("the destination `{}` must be a registry reference: docker://REGISTRY/REPOSITORY[:TAG]", args.destination)
    };
    let reference = Reference::parse(dest)?;
    let access = args.registry.access()?;
    let file = &args.file;
    let payload = identify(file)?;
    let progress = crate::progress::blobs();
    let options: PushOptions<'_> =
        PushOptions { progress: progress.as_ref().map(|p| p as &dyn Fn(clay_registry::ProgressEvent)), ..access };

    let push = |source: &PushSource<'_>| {
        clay_registry::push_image(source, &reference, &options)
            .with_context(|| format!("cannot push `{}` to {reference}", file.display()))
    };
    let pushed = match &payload {
        Payload::OciArchive => {
            let dir = ScratchDir::create("clay-push-")?;
            extract_layout(file, dir.path())?;
            push(&PushSource::Layout { dir: dir.path(), ref_name: None })?
        }
        Payload::Artifact(media_type) => {
            let title = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let layer = BlobPart {
                media_type: media_type.clone(),
                source: BlobSource::File(file),
                annotations: BTreeMap::from([(ANNOTATION_TITLE.to_owned(), title)]),
            };
            let parts =
                ImageParts { artifact_type: Some(media_type.clone()), layers: vec![layer], ..ImageParts::default() };
            push(&PushSource::Parts(parts))?
        }
    };
    let what = match &payload {
        Payload::OciArchive => "image".to_owned(),
        Payload::Artifact(media_type) => format!("artifact {media_type}"),
    };
    let size = std::fs::metadata(file).map(|m| human(m.len())).unwrap_or_default();
    status(&format!("pushed {} ({size}) to {reference} as {what}", file.display()));
    println!("{}/{}@{}", reference.registry, reference.repository, pushed.manifest.digest);
    Ok(ExitCode::SUCCESS)
}

/// Tells what `path` holds from its first bytes (and, for VHD, its last).
fn identify(path: &Path) -> Result<Payload> {
    let file = File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
    let len = file.metadata().with_context(|| format!("cannot read `{}`", path.display()))?.len();
    let read = |offset: u64, n: usize| -> Result<Vec<u8>> {
        let n = usize::try_from(len.saturating_sub(offset)).unwrap_or(usize::MAX).min(n);
        let mut buf = vec![0; n];
        file.read_exact_at(&mut buf, offset).with_context(|| format!("cannot read `{}`", path.display()))?;
        Ok(buf)
    };
    let head = read(0, clay_vdisk::IDENTIFY_HEAD_LEN)?;
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(TAR_MAGIC_AT, TAR_MAGIC) {
        return Ok(Payload::OciArchive);
    }
    if at(0, MZ) {
        return Ok(Payload::Artifact(UKI_MEDIA_TYPE.to_owned()));
    }
    let tail = read(len.saturating_sub(clay_vdisk::IDENTIFY_TAIL_LEN as u64), clay_vdisk::IDENTIFY_TAIL_LEN)?;
    if let Some((format, _)) = clay_vdisk::identify(&head, &tail, len) {
        return Ok(Payload::Artifact(format!("{DISK_MEDIA_TYPE_PREFIX}{}", format.name())));
    }
    if read(ISO_MAGIC_AT, ISO_MAGIC.len())? == ISO_MAGIC {
        return Ok(Payload::Artifact(ISO_MEDIA_TYPE.to_owned()));
    }
    if at(GPT_AT, GPT_SIGNATURE) || at(MBR_SIGNATURE_AT, &MBR_SIGNATURE) {
        return Ok(Payload::Artifact(format!("{DISK_MEDIA_TYPE_PREFIX}raw")));
    }
    bail!(
        "`{}` is neither an OCI image archive, a UKI, a disk image nor an ISO, so clay does not know how to push it",
        path.display()
    )
}

/// Unpacks the OCI image layout in the tar `archive` into `dir`: only `oci-layout`, `index.json` and
/// `blobs/ALGORITHM/HEX` regular files are taken, so no name in the archive can write anywhere else.
fn extract_layout(archive: &Path, dir: &Path) -> Result<()> {
    let name_of = || archive.display().to_string();
    let bad = |reason: &str| anyhow::anyhow!("`{}` is not a usable OCI image archive: {reason}", name_of());
    let file = File::open(archive).with_context(|| format!("cannot open `{}`", name_of()))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let (mut long_name, mut pax_path, mut pax_size) = (None::<String>, None::<String>, None::<u64>);
    let (mut has_layout, mut has_index) = (false, false);
    loop {
        let mut h = [0u8; TAR_BLOCK];
        match r.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", name_of())),
        }
        if h.iter().all(|&b| b == 0) {
            break;
        }
        if !checksum_ok(&h) {
            return Err(bad("a tar header is damaged (bad checksum)"));
        }
        let size = match pax_size.take() {
            Some(s) => s,
            None => tar_number(&h[124..136]).ok_or_else(|| bad("a tar header has an invalid size"))?,
        };
        let name = pax_path.take().or(long_name.take()).unwrap_or_else(|| ustar_name(&h));
        let padded = size.div_ceil(TAR_BLOCK as u64) * TAR_BLOCK as u64;
        match h[156] {
            b'x' | b'L' => {
                if size > MAX_TAR_META {
                    return Err(bad("a tar extended header is too large"));
                }
                let mut meta = vec![0; usize::try_from(padded)?];
                r.read_exact(&mut meta).map_err(|_| bad("it ends in the middle of an entry"))?;
                meta.truncate(usize::try_from(size)?);
                if h[156] == b'L' {
                    long_name = Some(String::from_utf8_lossy(&meta).trim_end_matches('\0').to_owned());
                } else {
                    for (key, value) in pax_records(&meta) {
                        match key.as_str() {
                            "path" => pax_path = Some(value),
                            "size" => pax_size = value.parse().ok(),
                            _ => {}
                        }
                    }
                }
                continue;
            }
            b'0' | 0 | b'7' => {
                if let Some(rel) = layout_member(&name) {
                    has_layout |= rel == "oci-layout";
                    has_index |= rel == "index.json";
                    let path = dir.join(&rel);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)
                            .with_context(|| format!("cannot create `{}`", parent.display()))?;
                    }
                    let mut out = File::create(&path).with_context(|| format!("cannot create `{}`", path.display()))?;
                    let copied = std::io::copy(&mut (&mut r).take(size), &mut out)
                        .with_context(|| format!("cannot unpack `{}`", name_of()))?;
                    if copied != size {
                        return Err(bad("it ends in the middle of an entry"));
                    }
                    skip(&mut r, padded - size).map_err(|_| bad("it ends in the middle of an entry"))?;
                    continue;
                }
            }
            _ => {}
        }
        skip(&mut r, padded).map_err(|_| bad("it ends in the middle of an entry"))?;
    }
    if !has_layout || !has_index {
        return Err(bad("it has no oci-layout or index.json (push a .containerdisk.tar or an oci-archive)"));
    }
    Ok(())
}

/// The layout-relative path of an archive member clay takes, or `None` for anything else.
fn layout_member(name: &str) -> Option<String> {
    let name = name.trim_start_matches("./");
    if name == "oci-layout" || name == "index.json" {
        return Some(name.to_owned());
    }
    let mut parts = name.split('/');
    let (Some("blobs"), Some(algorithm), Some(hex), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let ok_alg = !algorithm.is_empty() && algorithm.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok_hex = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (ok_alg && ok_hex).then(|| format!("blobs/{algorithm}/{hex}"))
}

fn skip(r: &mut BufReader<File>, n: u64) -> std::io::Result<()> {
    let copied = std::io::copy(&mut r.take(n), &mut std::io::sink())?;
    if copied == n {
        Ok(())
    } else {
        Err(std::io::ErrorKind::UnexpectedEof.into())
    }
}

/// The ustar name: `prefix/name` when the prefix field (345..500) is set.
fn ustar_name(h: &[u8; TAR_BLOCK]) -> String {
    let field = |b: &[u8]| String::from_utf8_lossy(b.split(|&c| c == 0).next().unwrap_or_default()).into_owned();
    let (name, prefix) = (field(&h[..100]), field(&h[345..500]));
    if prefix.is_empty() || h[257..263] != *b"ustar\0" {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// A numeric tar field: octal text, or GNU base-256 when the first byte has its high bit set.
fn tar_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(value);
    }
    let text = std::str::from_utf8(field).ok()?.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn checksum_ok(h: &[u8; TAR_BLOCK]) -> bool {
    let stored = tar_number(&h[148..156]);
    let sum: u64 = h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) }).sum();
    stored == Some(sum)
}

/// `LEN KEY=VALUE\n` records of a PAX extended header.
fn pax_records(data: &[u8]) -> Vec<(String, String)> {
    let mut records = Vec::new();
    let mut rest = data;
    while let Some(space) = rest.iter().position(|&b| b == b' ') {
        let Some(len) = std::str::from_utf8(&rest[..space]).ok().and_then(|l| l.parse::<usize>().ok()) else { break };
        let Some(record) = rest.get(space + 1..len) else { break };
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            let key = String::from_utf8_lossy(&record[..eq]).into_owned();
            records.push((key, String::from_utf8_lossy(&record[eq + 1..]).into_owned()));
        }
        rest = &rest[len..];
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_layout_members_are_taken() {
        let hex = "a".repeat(64);
        assert_eq!(layout_member("./index.json").as_deref(), Some("index.json"));
        assert_eq!(layout_member(&format!("blobs/sha256/{hex}")), Some(format!("blobs/sha256/{hex}")));
        assert_eq!(layout_member("blobs/sha256/../../etc/passwd"), None);
        assert_eq!(layout_member(&format!("blobs/../{hex}")), None);
        assert_eq!(layout_member("/index.json"), None);
        assert_eq!(layout_member("manifest.json"), None);
    }

    #[test]
    fn pax_records_parse() {
        let records = pax_records(b"30 path=blobs/sha256/abcdefgh\n12 size=123\n");
        assert_eq!(records, vec![("path".into(), "blobs/sha256/abcdefgh".into()), ("size".into(), "123".into())]);
    }

    #[test]
    fn tar_numbers_octal_and_base256() {
        assert_eq!(tar_number(b"00000001750\0"), Some(1000));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4..].copy_from_slice(&(1u64 << 34).to_be_bytes());
        assert_eq!(tar_number(&big), Some(1 << 34));
    }
}
