//! The boot plan: what clay-init must do before handing over, written by the image builder into the initramfs.
//!
//! The initramfs is part of the signed UKI, so the plan is as trusted as the kernel; only the verity root hash
//! travels on the kernel command line (`roothash=`), where systemd and users expect it and where `clay inspect`
//! can show it.
//!
//! A plain-text file, one directive per line, read in full before anything is done:
//!
//! ```text
//! clay-boot 1
//! module .clay/modules/loop.ko          load, in this order (paths in the initramfs)
//! module .clay/modules/nvme.ko optional a driver for hardware that may be absent: a failure is not fatal
//! root ram                              the initramfs is the root
//! root compressed squashfs .clay/root.img   a filesystem image in the initramfs, on a loop device
//! root verity squashfs                  a partition checked by dm-verity against `roothash=`
//! data 0fc63daf-…  ext4 /var            a partition (by PARTUUID) mounted read-write at /var
//! ```

use std::fmt::Write as _;
use std::str::FromStr;

use clay_gpt::Guid;

/// Where the plan lives, relative to the initramfs root.
pub const BOOT_PLAN_PATH: &str = ".clay/boot";
/// The first line; the number is the format version.
const HEADER: &str = "clay-boot 1";

/// Where the root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// The initramfs itself.
    Ram,
    /// A read-only filesystem image inside the initramfs, mounted through a loop device under a tmpfs overlay.
    Compressed { fstype: String, image: String },
    /// A read-only filesystem on the disk's root partition, checked by dm-verity against the command line's
    /// `roothash=`, under a tmpfs overlay. The partitions are found by the UUIDs [`verity_partition_uuids`] gives.
    Verity { fstype: String },
}

impl Root {
    /// The model's name as `--root` spells it.
    pub fn model(&self) -> &'static str {
        match self {
            Root::Ram => "ram",
            Root::Compressed { .. } => "compressed",
            Root::Verity { .. } => "verity",
        }
    }
}

/// One kernel module to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Path in the initramfs.
    pub path: String,
    /// Whether the boot fails without it. Drivers for hardware that may be absent are optional: their
    /// initialisation can fail (`ENODEV` from a Hyper-V driver outside Hyper-V) without harm.
    pub required: bool,
}

/// A partition mounted read-write into the booted system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMount {
    pub partuuid: Guid,
    pub fstype: String,
    /// Absolute path in the booted system, e.g. `/var`.
    pub target: String,
}

/// Everything clay-init does besides the fixed steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootPlan {
    /// Kernel modules to load, in order.
    pub modules: Vec<Module>,
    pub root: Root,
    pub data: Option<DataMount>,
}

impl Default for BootPlan {
    /// What an initramfs without a plan means: the whole OS is the initramfs.
    fn default() -> Self {
        BootPlan { modules: Vec::new(), root: Root::Ram, data: None }
    }
}

/// A plan that cannot be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BootPlanError {
    #[error("the boot plan does not start with `{HEADER}`")]
    BadHeader,
    #[error("line {line} of the boot plan is not understood: `{text}`")]
    BadLine { line: usize, text: String },
    #[error("the boot plan names no root (a `root` line)")]
    NoRoot,
    #[error("the boot plan names more than one {0}")]
    Repeated(&'static str),
}

/// A value must be one word: paths and names with spaces cannot be spelled in the plan.
fn word(s: &str) -> bool {
    !s.is_empty() && !s.contains(char::is_whitespace)
}

impl BootPlan {
    /// Whether every value can be written as one word, so [`decode`](Self::decode) reads back the same plan.
    pub fn is_encodable(&self) -> bool {
        let root_words = match &self.root {
            Root::Ram => true,
            Root::Compressed { fstype, image } => word(fstype) && word(image),
            Root::Verity { fstype } => word(fstype),
        };
        root_words
            && self.modules.iter().all(|m| word(&m.path))
            && self.data.as_ref().is_none_or(|d| word(&d.fstype) && word(&d.target))
    }

    pub fn encode(&self) -> String {
        let mut s = format!("{HEADER}\n");
        for m in &self.modules {
            let _ = writeln!(s, "module {}{}", m.path, if m.required { "" } else { " optional" });
        }
        let _ = match &self.root {
            Root::Ram => writeln!(s, "root ram"),
            Root::Compressed { fstype, image } => writeln!(s, "root compressed {fstype} {image}"),
            Root::Verity { fstype } => writeln!(s, "root verity {fstype}"),
        };
        if let Some(d) = &self.data {
            let _ = writeln!(s, "data {} {} {}", d.partuuid, d.fstype, d.target);
        }
        s
    }

    pub fn decode(text: &str) -> Result<BootPlan, BootPlanError> {
        let mut lines = text.lines().enumerate();
        if lines.next().map(|(_, l)| l.trim()) != Some(HEADER) {
            return Err(BootPlanError::BadHeader);
        }
        let mut plan = BootPlan::default();
        let mut root = None;
        for (i, line) in lines {
            let bad = || BootPlanError::BadLine { line: i + 1, text: line.to_owned() };
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["module", path] => plan.modules.push(Module { path: (*path).to_owned(), required: true }),
                ["module", path, "optional"] => plan.modules.push(Module { path: (*path).to_owned(), required: false }),
                ["root", rest @ ..] => {
                    let r = match rest {
                        ["ram"] => Root::Ram,
                        ["compressed", fstype, image] => {
                            Root::Compressed { fstype: (*fstype).to_owned(), image: (*image).to_owned() }
                        }
                        ["verity", fstype] => Root::Verity { fstype: (*fstype).to_owned() },
                        _ => return Err(bad()),
                    };
                    if root.replace(r).is_some() {
                        return Err(BootPlanError::Repeated("root"));
                    }
                }
                ["data", uuid, fstype, target] if target.starts_with('/') => {
                    let partuuid = Guid::from_str(uuid).map_err(|_| bad())?;
                    let d = DataMount { partuuid, fstype: (*fstype).to_owned(), target: (*target).to_owned() };
                    if plan.data.replace(d).is_some() {
                        return Err(BootPlanError::Repeated("data partition"));
                    }
                }
                _ => return Err(bad()),
            }
        }
        plan.root = root.ok_or(BootPlanError::NoRoot)?;
        Ok(plan)
    }
}

/// The PARTUUIDs of the verity root's data and hash partitions for a root hash, as systemd-repart derives them: the
/// first and the last 128 bits of the hash, read as UUID text. The signed command line carries the hash, so it also
/// pins which partitions are used. `None` for hashes shorter than 32 bytes.
pub fn verity_partition_uuids(root_hash: &[u8]) -> Option<(Guid, Guid)> {
    let n = root_hash.len();
    if n < 32 {
        return None;
    }
    let first: [u8; 16] = root_hash[..16].try_into().ok()?;
    let last: [u8; 16] = root_hash[n - 16..].try_into().ok()?;
    Some((Guid::from_u128(u128::from_be_bytes(first)), Guid::from_u128(u128::from_be_bytes(last))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> BootPlan {
        BootPlan {
            modules: vec![
                Module { path: ".clay/modules/loop.ko".into(), required: true },
                Module { path: ".clay/modules/nvme.ko".into(), required: false },
            ],
            root: Root::Compressed { fstype: "squashfs".into(), image: ".clay/root.img".into() },
            data: Some(DataMount {
                partuuid: Guid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
                fstype: "ext4".into(),
                target: "/var".into(),
            }),
        }
    }

    #[test]
    fn plans_read_back_as_written() {
        let p = plan();
        assert!(p.is_encodable());
        let text = p.encode();
        assert_eq!(
            text,
            "clay-boot 1\nmodule .clay/modules/loop.ko\nmodule .clay/modules/nvme.ko optional\n\
             root compressed squashfs .clay/root.img\ndata 01020304-0506-0708-090a-0b0c0d0e0f10 ext4 /var\n"
        );
        assert_eq!(BootPlan::decode(&text).unwrap(), p);
        for root in [Root::Ram, Root::Verity { fstype: "erofs".into() }] {
            let p = BootPlan { root, ..BootPlan::default() };
            assert_eq!(BootPlan::decode(&p.encode()).unwrap(), p);
        }
    }

    #[test]
    fn bad_plans_are_refused_with_the_line() {
        assert_eq!(BootPlan::decode("clay-boot 2\nroot ram\n"), Err(BootPlanError::BadHeader));
        assert_eq!(BootPlan::decode("clay-boot 1\n"), Err(BootPlanError::NoRoot));
        assert_eq!(BootPlan::decode("clay-boot 1\nroot ram\nroot ram\n"), Err(BootPlanError::Repeated("root")));
        let err = BootPlan::decode("clay-boot 1\nroot floppy\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2 of the boot plan is not understood: `root floppy`");
        assert!(BootPlan::decode("clay-boot 1\nroot ram\ndata nope ext4 /var\n").is_err());
        assert!(
            BootPlan::decode("clay-boot 1\nroot ram\ndata 01020304-0506-0708-090a-0b0c0d0e0f10 ext4 var\n").is_err()
        );
        let spaced = BootPlan { modules: vec![Module { path: "a b".into(), required: true }], ..BootPlan::default() };
        assert!(!spaced.is_encodable());
    }

    #[test]
    fn verity_uuids_are_the_halves_of_the_root_hash() {
        let hash: Vec<u8> = (0u8..32).collect();
        let (data, hash_part) = verity_partition_uuids(&hash).unwrap();
        assert_eq!(data.to_string(), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        assert_eq!(hash_part.to_string(), "10111213-1415-1617-1819-1a1b1c1d1e1f");
        assert_eq!(verity_partition_uuids(&hash[..20]), None);
    }
}
