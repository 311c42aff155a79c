//! `metadata_csum` checksums: crc32c as the kernel's `ext4_chksum` computes it, seeded and without the final
//! inversion (Documentation/filesystems/ext4/checksums.rst).

use zerocopy::IntoBytes;

use crate::ondisk::{Inode, DIR_TAIL_SIZE};

/// crc32c continuing from `seed`, raw: no inversion on the way in or out (the kernel's `crc32c_le`).
pub(crate) fn crc32c(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// The per-filesystem seed every other checksum starts from: crc32c of the UUID.
pub(crate) fn fs_seed(uuid: &[u8; 16]) -> u32 {
    crc32c(!0, uuid)
}

/// The per-inode seed (`ei->i_csum_seed`): the filesystem seed, then the inode number and generation.
pub(crate) fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    crc32c(crc32c(fs_seed, &ino.to_le_bytes()), &generation.to_le_bytes())
}

/// Fills `i_checksum_lo`/`_hi`: crc32c of the whole inode with both fields zero.
pub(crate) fn set_inode_csum(inode: &mut Inode, inode_seed: u32) {
    inode.i_checksum_lo = 0.into();
    inode.i_checksum_hi = 0.into();
    let csum = crc32c(inode_seed, inode.as_bytes());
    inode.i_checksum_lo = low16(csum).into();
    inode.i_checksum_hi = high16(csum).into();
}

/// Fills the checksum of a directory leaf block's tail (`struct ext4_dir_entry_tail`).
pub(crate) fn set_dir_block_csum(block: &mut [u8], inode_seed: u32) {
    let tail = block.len() - DIR_TAIL_SIZE;
    let csum = crc32c(inode_seed, &block[..tail]);
    block[tail + 8..tail + 12].copy_from_slice(&csum.to_le_bytes());
}

/// Fills the `ext4_extent_tail` of an extent tree block: the 4 bytes after the last possible entry.
pub(crate) fn set_extent_block_csum(block: &mut [u8], tail: usize, inode_seed: u32) {
    let csum = crc32c(inode_seed, &block[..tail]);
    block[tail..tail + 4].copy_from_slice(&csum.to_le_bytes());
}

pub(crate) fn low16(v: u32) -> u16 {
    let b = v.to_le_bytes();
    u16::from_le_bytes([b[0], b[1]])
}

pub(crate) fn high16(v: u32) -> u16 {
    let b = v.to_le_bytes();
    u16::from_le_bytes([b[2], b[3]])
}

#[cfg(test)]
mod tests {
    #[test]
    fn raw_crc32c_matches_the_kernel_convention() {
        // crc32c("123456789") is 0xE3069283 with the standard pre- and post-inversion.
        assert_eq!(!super::crc32c(!0, b"123456789"), 0xE306_9283);
    }
}
