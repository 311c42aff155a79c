//! qcow2 version 3, as specified by qemu's `docs/interop/qcow2.txt` and read by `block/qcow2.c`.
//!
//! Layout (in 64 KiB clusters): the header, the L1 table, the refcount table, the refcount blocks, the L2 tables
//! that map any data, then the data clusters in disk order. Every cluster used has refcount 1, so every L1 and L2
//! entry carries the COPIED flag (`qemu-img check` reports its absence). All fields are big-endian.

use crate::source::{blocks_of, copy_blocks, get, get_be32, get_be64, put_table, to_usize, Put, Ranks};
use crate::source::{Sink, Source, GRANULE_BITS};
use crate::{VdiskError, VmFormat};

/// "QFI\xfb" (qcow2.txt, header byte 0-3).
pub(crate) const MAGIC: [u8; 4] = *b"QFI\xfb";
/// Version 3: zero-cluster flags and the refcount_order field exist.
const VERSION: u32 = 3;
/// 64 KiB clusters, qemu's default (header byte 20-23, `cluster_bits`).
const CLUSTER_BITS: u32 = 16;
const CLUSTER_SIZE: u64 = 1 << CLUSTER_BITS;
const CLUSTER_BYTES: usize = 1 << CLUSTER_BITS;
/// Refcounts are 2^4 = 16 bits wide, qemu's default (header byte 96-99, `refcount_order`).
const REFCOUNT_ORDER: u32 = 4;
/// A refcount block holds `cluster_size * 8 / refcount_bits` entries.
const REFCOUNTS_PER_BLOCK: u64 = CLUSTER_SIZE * 8 / (1 << REFCOUNT_ORDER);
/// An L2 table is one cluster of 8-byte entries.
const L2_ENTRIES: u64 = CLUSTER_SIZE / 8;
/// A version 3 header without the optional compression-type field (header byte 100-103, `header_length`).
const HEADER_LENGTH: u32 = 104;
/// L1/L2 entry bit 63: the cluster's refcount is exactly one.
const OFLAG_COPIED: u64 = 1 << 63;
/// Host offsets occupy bits 9-55 of L1/L2 entries, so the file must stay below 2^56 bytes.
const MAX_HOST_OFFSET: u64 = 1 << 56;
/// qemu refuses L1 tables over 32 MiB (`QCOW_MAX_L1_SIZE`).
const MAX_L1_ENTRIES: u64 = (32 << 20) / 8;

// Header field offsets (qcow2.txt, "Header").
const H_VERSION: usize = 4;
const H_CLUSTER_BITS: usize = 20;
const H_SIZE: usize = 24;
const H_L1_SIZE: usize = 36;
const H_L1_TABLE_OFFSET: usize = 40;
const H_REFCOUNT_TABLE_OFFSET: usize = 48;
const H_REFCOUNT_TABLE_CLUSTERS: usize = 56;
const H_REFCOUNT_ORDER: usize = 96;
const H_HEADER_LENGTH: usize = 100;

// qcow2 clusters are the scan's granules, so the non-zero granules are the data clusters.
const _: () = assert!(CLUSTER_BITS == GRANULE_BITS);

pub(crate) fn write(src: &Source<'_>, granules: &[u64], sink: &mut Sink<'_>) -> Result<(), VdiskError> {
    let too_large = || VdiskError::TooLarge { format: VmFormat::Qcow2, size: src.size };
    let data = blocks_of(granules, CLUSTER_BITS - GRANULE_BITS);
    let l1_entries = src.size.div_ceil(CLUSTER_SIZE * L2_ENTRIES);
    if l1_entries > MAX_L1_ENTRIES {
        return Err(too_large());
    }
    let l1_clusters = (l1_entries * 8).div_ceil(CLUSTER_SIZE);
    let l2_tables = blocks_of(&data, L2_ENTRIES.trailing_zeros());
    let fixed = 1 + l1_clusters + l2_tables.len() as u64 + data.len() as u64;
    // The refcount structures count themselves: iterate to the fixed point (two rounds in practice).
    let (mut rt_clusters, mut rb_count) = (1, 1);
    loop {
        let total = fixed + rt_clusters + rb_count;
        let rb = total.div_ceil(REFCOUNTS_PER_BLOCK);
        let rt = (rb * 8).div_ceil(CLUSTER_SIZE);
        if (rb, rt) == (rb_count, rt_clusters) {
            break;
        }
        (rb_count, rt_clusters) = (rb, rt);
    }
    let total = fixed + rt_clusters + rb_count;
    if total.checked_mul(CLUSTER_SIZE).is_none_or(|end| end >= MAX_HOST_OFFSET) {
        return Err(too_large());
    }
    let l1_at = CLUSTER_SIZE;
    let rt_at = l1_at + l1_clusters * CLUSTER_SIZE;
    let rb_at = rt_at + rt_clusters * CLUSTER_SIZE;
    let l2_at = rb_at + rb_count * CLUSTER_SIZE;
    let data_at = l2_at + l2_tables.len() as u64 * CLUSTER_SIZE;

    let mut header = [0u8; HEADER_LENGTH as usize];
    header.bytes(0, &MAGIC);
    header.be32(H_VERSION, VERSION);
    header.be32(H_CLUSTER_BITS, CLUSTER_BITS);
    header.be64(H_SIZE, src.size);
    header.be32(H_L1_SIZE, u32::try_from(l1_entries).map_err(|_| too_large())?);
    header.be64(H_L1_TABLE_OFFSET, l1_at);
    header.be64(H_REFCOUNT_TABLE_OFFSET, rt_at);
    header.be32(H_REFCOUNT_TABLE_CLUSTERS, u32::try_from(rt_clusters).map_err(|_| too_large())?);
    header.be32(H_REFCOUNT_ORDER, REFCOUNT_ORDER);
    header.be32(H_HEADER_LENGTH, HEADER_LENGTH);
    // Backing file, encryption, snapshots and feature bits stay zero; the zero bytes that follow the header
    // read as the end-of-extensions marker.
    sink.put(&header)?;

    sink.pad_to(l1_at)?;
    let mut l2_ranks = Ranks::new(&l2_tables);
    put_table(sink, l1_entries, |index| {
        let entry = l2_ranks.of(index).map_or(0, |rank| (l2_at + rank * CLUSTER_SIZE) | OFLAG_COPIED);
        Ok(entry.to_be_bytes())
    })?;
    sink.pad_to(rt_at)?;
    put_table(sink, rb_count, |b| Ok((rb_at + b * CLUSTER_SIZE).to_be_bytes()))?;
    sink.pad_to(rb_at)?;
    let mut table = vec![0u8; CLUSTER_BYTES];
    // Clusters 0..total are in use, each exactly once.
    let mut in_use = total;
    for _ in 0..rb_count {
        table.fill(0);
        for entry in table.chunks_exact_mut(2).take(to_usize(in_use)) {
            entry.copy_from_slice(&1u16.to_be_bytes());
        }
        in_use = in_use.saturating_sub(REFCOUNTS_PER_BLOCK);
        sink.put(&table)?;
    }
    let mut rank = 0usize;
    for &index in &l2_tables {
        table.fill(0);
        for &cluster in data[rank..].iter().take_while(|&&c| c / L2_ENTRIES == index) {
            let slot = cluster % L2_ENTRIES;
            table.be64(to_usize(slot) * 8, (data_at + rank as u64 * CLUSTER_SIZE) | OFLAG_COPIED);
            rank += 1;
        }
        sink.put(&table)?;
    }
    copy_blocks(src, sink, &data, CLUSTER_SIZE, &[])?;
    sink.expect_pos(total * CLUSTER_SIZE)
}

/// The virtual size, if `head` starts with a qcow2 header (version 2 or 3).
pub(crate) fn identify(head: &[u8]) -> Option<u64> {
    if get::<4>(head, 0)? != MAGIC || !matches!(get_be32(head, H_VERSION)?, 2 | 3) {
        return None;
    }
    get_be64(head, H_SIZE)
}
