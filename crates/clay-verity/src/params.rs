//! The result of a hash tree build: everything the kernel's verity table, a kernel command line or a verifier needs.

use std::fmt::Write as _;

use zerocopy::{FromBytes, FromZeros, IntoBytes};

use crate::ondisk::{Superblock, ALGORITHM_LEN, SUPERBLOCK_LEN, SUPERBLOCK_SIGNATURE, SUPERBLOCK_VERSION};
use crate::options::{check_block_size, check_salt};
use crate::{Format, Result, VerityError, ALGORITHM, DIGEST_LEN};

/// Bytes per sector in device-mapper tables.
const SECTOR_SIZE: u64 = 512;

/// The parameters of one hash tree: what a dm-verity table and `veritysetup open` need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityParams {
    pub format: Format,
    pub data_block_size: u32,
    pub hash_block_size: u32,
    /// Data blocks the tree covers.
    pub data_blocks: u64,
    /// Where the tree's root block is, in hash blocks from the start of the hash device: 1 after a superblock,
    /// else 0.
    pub hash_start_block: u64,
    /// The digest of the tree's root block, or of the only data block when there is just one.
    pub root_hash: [u8; DIGEST_LEN],
    pub salt: Vec<u8>,
    /// The superblock's UUID; `None` when the hash device has no superblock.
    pub uuid: Option<[u8; 16]>,
}

impl VerityParams {
    /// Bytes of data the tree covers.
    pub fn data_size(&self) -> u64 {
        self.data_blocks * u64::from(self.data_block_size)
    }

    /// Where the tree starts on the hash device, in bytes (`veritysetup --hash-offset` when there is no
    /// superblock; the superblock is at byte 0).
    pub fn hash_offset(&self) -> u64 {
        self.hash_start_block * u64::from(self.hash_block_size)
    }

    /// Hash blocks the tree's levels take, without the superblock.
    pub fn tree_blocks(&self) -> u64 {
        crate::tree::level_sizes(self.data_blocks, self.hash_block_size).iter().sum()
    }

    /// Bytes of hash device `format` writes: the superblock's block, if any, and the tree.
    pub fn hash_device_size(&self) -> u64 {
        (self.hash_start_block + self.tree_blocks()) * u64::from(self.hash_block_size)
    }

    /// The root hash as lowercase hex, as `veritysetup` prints it and the `roothash=` kernel option takes it.
    pub fn root_hash_hex(&self) -> String {
        hex(&self.root_hash)
    }

    /// The salt as lowercase hex, or `-` when there is none (the kernel table's and `veritysetup`'s spelling).
    pub fn salt_hex(&self) -> String {
        if self.salt.is_empty() {
            "-".into()
        } else {
            hex(&self.salt)
        }
    }

    /// The superblock UUID in its usual text form.
    pub fn uuid_string(&self) -> Option<String> {
        self.uuid.as_ref().map(uuid_to_string)
    }

    /// One device-mapper table line (`dmsetup create --table`) for the verity target over `data_dev` and
    /// `hash_dev` (paths or `major:minor`), as verity.rst describes it:
    /// `0 <sectors> verity <version> <data_dev> <hash_dev> <data_block_size> <hash_block_size> <num_data_blocks>
    /// <hash_start_block> <algorithm> <digest> <salt>`.
    pub fn table(&self, data_dev: &str, hash_dev: &str) -> String {
        format!(
            "0 {} verity {} {data_dev} {hash_dev} {} {} {} {} {ALGORITHM} {} {}",
            self.data_size() / SECTOR_SIZE,
            self.format.number(),
            self.data_block_size,
            self.hash_block_size,
            self.data_blocks,
            self.hash_start_block,
            self.root_hash_hex(),
            self.salt_hex(),
        )
    }

    /// The options in veritytab(5) syntax, as systemd's `systemd.verity_root_options=` takes them; together with
    /// the root hash they describe the tree completely, superblock or not.
    pub fn options(&self) -> String {
        let mut s = format!(
            "format={},data-block-size={},hash-block-size={},data-blocks={},hash-offset={},hash={ALGORITHM},salt={}",
            self.format.number(),
            self.data_block_size,
            self.hash_block_size,
            self.data_blocks,
            self.hash_offset(),
            self.salt_hex(),
        );
        match self.uuid_string() {
            Some(uuid) => {
                let _ = write!(s, ",uuid={uuid}");
            }
            None => s.push_str(",superblock=false"),
        }
        s
    }

    /// Kernel command line arguments in systemd's spelling (`roothash=`, `systemd.verity_root_data=`,
    /// `systemd.verity_root_hash=`, `systemd.verity_root_options=`), for the UKI's signed command line.
    pub fn kernel_cmdline(&self, data_dev: &str, hash_dev: &str) -> String {
        format!(
            "roothash={} systemd.verity_root_data={data_dev} systemd.verity_root_hash={hash_dev} \
             systemd.verity_root_options={}",
            self.root_hash_hex(),
            self.options()
        )
    }

    /// The 512-byte superblock for these parameters (with `uuid`, all zero when there is none).
    pub fn superblock(&self) -> [u8; SUPERBLOCK_LEN] {
        let mut sb = Superblock::new_zeroed();
        sb.signature = SUPERBLOCK_SIGNATURE;
        sb.version = SUPERBLOCK_VERSION.into();
        sb.hash_type = self.format.number().into();
        sb.uuid = self.uuid.unwrap_or_default();
        sb.algorithm[..ALGORITHM.len()].copy_from_slice(ALGORITHM.as_bytes());
        sb.data_block_size = self.data_block_size.into();
        sb.hash_block_size = self.hash_block_size.into();
        sb.data_blocks = self.data_blocks.into();
        // Validated to fit: at most MAX_SALT_LEN bytes.
        sb.salt_size = u16::try_from(self.salt.len()).unwrap_or(u16::MAX).into();
        let salt_len = self.salt.len().min(sb.salt.len());
        sb.salt[..salt_len].copy_from_slice(&self.salt[..salt_len]);
        let mut out = [0u8; SUPERBLOCK_LEN];
        out.copy_from_slice(sb.as_bytes());
        out
    }

    /// The parameters a hash device's superblock records, with the root hash the caller trusts (it is never on the
    /// hash device).
    pub fn from_superblock(hash_device: &[u8], root_hash: [u8; DIGEST_LEN]) -> Result<VerityParams> {
        let bad = |why: String| VerityError::BadSuperblock(why);
        let (sb, _) = Superblock::read_from_prefix(hash_device)
            .map_err(|_| bad(format!("the hash device is {} bytes, shorter than a superblock", hash_device.len())))?;
        if sb.signature != SUPERBLOCK_SIGNATURE {
            return Err(bad("the signature is not \"verity\"".into()));
        }
        if sb.version.get() != SUPERBLOCK_VERSION {
            return Err(bad(format!("superblock version {} is not {SUPERBLOCK_VERSION}", sb.version.get())));
        }
        let format = Format::from_number(sb.hash_type.get())
            .ok_or_else(|| bad(format!("hash type {} is neither 0 nor 1", sb.hash_type.get())))?;
        let name_len = sb.algorithm.iter().position(|&b| b == 0).unwrap_or(ALGORITHM_LEN);
        let algorithm = &sb.algorithm[..name_len];
        if !algorithm.eq_ignore_ascii_case(ALGORITHM.as_bytes()) {
            return Err(bad(format!("hash algorithm `{}` is not {ALGORITHM}", String::from_utf8_lossy(algorithm))));
        }
        check_block_size("data", sb.data_block_size.get())?;
        check_block_size("hash", sb.hash_block_size.get())?;
        let salt_len = usize::from(sb.salt_size.get());
        check_salt(&vec![0; salt_len])?;
        if sb.data_blocks.get() == 0 {
            return Err(VerityError::EmptyData);
        }
        let hash_block_size = sb.hash_block_size.get();
        Ok(VerityParams {
            format,
            data_block_size: sb.data_block_size.get(),
            hash_block_size,
            data_blocks: sb.data_blocks.get(),
            hash_start_block: superblock_blocks(hash_block_size),
            root_hash,
            salt: sb.salt[..salt_len].to_vec(),
            uuid: Some(sb.uuid),
        })
    }
}

/// Hash blocks the superblock takes: the tree starts at the first hash block boundary after its 512 bytes.
pub(crate) fn superblock_blocks(hash_block_size: u32) -> u64 {
    (SUPERBLOCK_LEN as u64).div_ceil(u64::from(hash_block_size))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A UUID's 16 bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, bytes in text order (as the verity superblock stores
/// them; unlike a GPT GUID, no field is little-endian).
pub fn uuid_to_string(uuid: &[u8; 16]) -> String {
    let h = hex(uuid);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The 16 bytes of a UUID in text form (hyphens as in [`uuid_to_string`], either case).
pub fn parse_uuid(text: &str) -> Result<[u8; 16]> {
    let bad = || VerityError::BadUuid(text.into());
    let groups: Vec<&str> = text.split('-').collect();
    if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return Err(bad());
    }
    let digits = groups.concat();
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = digits.get(2 * i..2 * i + 2).ok_or_else(bad)?;
        if !pair.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}
