//! The root model of an image: the boot plan clay-init follows (read from the UKI's initramfs), and for a verity
//! root whether the disk's partitions and the UKI's command line agree on the root hash.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};

use clay_manifest::boot::{BootPlan, Root, BOOT_PLAN_PATH};
use serde::Serialize;

/// The largest boot plan read (it is a few lines).
const MAX_PLAN: u32 = 1 << 20;

#[derive(Debug, Serialize)]
pub struct RootReport {
    /// `ram`, `compressed` or `verity`.
    pub model: &'static str,
    /// The filesystem of a compressed or verity root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fstype: Option<String>,
    /// Kernel modules clay-init loads before it mounts anything.
    pub modules: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<DataReport>,
    /// A verity root's hash, from the command line's `roothash=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_hash: Option<String>,
    /// For a disk: whether the root and verity partitions' UUIDs are the halves of the command line's root hash, as
    /// clay-init looks them up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions_match: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct DataReport {
    pub partuuid: String,
    pub fstype: String,
    pub target: String,
}

/// The boot plan in an initramfs read from `initrd`: archives one after the other, each plain or compressed. An
/// initramfs without a plan (not made by clay, or by an older one) boots like the `ram` model.
pub fn read_plan(initrd: impl Read) -> Option<BootPlan> {
    let mut input: Box<dyn BufRead + '_> = Box::new(BufReader::new(initrd));
    loop {
        // Archives are 4-byte aligned, with zeros between them.
        let head = input.fill_buf().ok()?;
        if head.is_empty() {
            return None;
        }
        if let Some(zeros) = head.iter().position(|&b| b != 0).or(Some(head.len())).filter(|&n| n > 0) {
            input.consume(zeros);
            continue;
        }
        if head.starts_with(b"0707") {
            let mut reader = clay_cpio::Reader::new(input);
            if let Some(plan) = find_plan(&mut reader)? {
                return Some(plan);
            }
            input = reader.into_inner();
            continue;
        }
        // A compressed archive is the last one the builder writes: look in it and stop.
        let algorithm = clay_compress::detect(head)?;
        let decoded = clay_compress::decoder(algorithm, input).ok()?;
        return find_plan(&mut clay_cpio::Reader::new(decoded))?;
    }
}

/// Scans one archive: `Some(Some(plan))` when it holds one, `Some(None)` when it ends without, `None` on damage.
fn find_plan(reader: &mut clay_cpio::Reader<impl Read>) -> Option<Option<BootPlan>> {
    while let Some(entry) = reader.next_entry().ok()? {
        if entry.name == BOOT_PLAN_PATH.as_bytes() && entry.filesize <= MAX_PLAN {
            let text = reader.read_data(&entry).ok()?;
            return Some(BootPlan::decode(&String::from_utf8_lossy(&text)).ok());
        }
    }
    Some(None)
}

/// The report for a plan and the command line it boots with.
pub fn report(plan: Option<BootPlan>, cmdline: Option<&str>) -> RootReport {
    let plan = plan.unwrap_or_default();
    let fstype = match &plan.root {
        Root::Ram => None,
        Root::Compressed { fstype, .. } | Root::Verity { fstype } => Some(fstype.clone()),
    };
    let root_hash = match plan.root {
        Root::Verity { .. } => {
            cmdline.and_then(|c| c.split_whitespace().find_map(|w| w.strip_prefix("roothash="))).map(str::to_owned)
        }
        _ => None,
    };
    RootReport {
        model: plan.root.model(),
        fstype,
        modules: plan.modules.len(),
        data: plan.data.map(|d| DataReport { partuuid: d.partuuid.to_string(), fstype: d.fstype, target: d.target }),
        root_hash,
        partitions_match: None,
    }
}

/// For a disk: whether its root and verity partitions carry the UUIDs the root hash gives.
pub fn check_partitions(r: &mut RootReport, partitions: &[(clay_gpt::Guid, clay_gpt::Guid)]) {
    let Some(hash) = r.root_hash.as_deref() else { return };
    let bytes: Option<Vec<u8>> =
        (0..hash.len()).step_by(2).map(|i| u8::from_str_radix(hash.get(i..i + 2)?, 16).ok()).collect();
    let wanted = bytes.as_deref().and_then(clay_manifest::boot::verity_partition_uuids);
    let found = partitions.iter().find(|(t, _)| *t == clay_gpt::types::ROOT_X86_64).map(|(_, g)| *g);
    let found_verity = partitions.iter().find(|(t, _)| *t == clay_gpt::types::ROOT_VERITY_X86_64).map(|(_, g)| *g);
    r.partitions_match = Some(wanted.is_some_and(|(root, verity)| Some(root) == found && Some(verity) == found_verity));
}

/// The text lines of a report, indented for `clay inspect`.
pub fn print(r: &RootReport) {
    let fs = r.fstype.as_deref().map(|f| format!(" ({f})")).unwrap_or_default();
    println!("  root model: {}{fs}, {} kernel modules for the init", r.model, r.modules);
    if let Some(hash) = &r.root_hash {
        println!("  root hash: {hash}");
        println!("    on the command line: yes");
        if let Some(ok) = r.partitions_match {
            println!("    root and verity partitions: {}", if ok { "match it" } else { "do NOT match it" });
        }
    } else if r.model == "verity" {
        println!("  root hash: none on the command line: clay-init cannot set up this root");
    }
    if let Some(d) = &r.data {
        println!("  data partition: {} ({}) mounted on {}", d.partuuid, d.fstype, d.target);
    }
}

/// The plan inside the UKI whose `.initrd` section lies at `offset`, `len` bytes, in `file`.
pub fn plan_in(file: &File, offset: u64, len: u64) -> Option<BootPlan> {
    let window = clay_fat::Window::new(file, offset, len).ok()?;
    read_plan(window)
}
