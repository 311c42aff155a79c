//! Where everything goes, decided before a byte is written: volume descriptors, boot catalog, path tables,
//! directory extents, Rock Ridge continuation areas, file extents, and the tail a hybrid image needs.
//!
//! Sectors (ECMA-119 6.2): 0-15 system area (MBR and GPT when hybrid), 16 the primary volume descriptor, then the
//! El Torito boot record (17, as El Torito 2.0 requires), the Joliet descriptor and the terminator; then the boot
//! catalog, the four path tables, the primary directories, their continuation areas, the Joliet directories and
//! the files in the primary tree's order.

use crate::bytes::{sectors_for, SECTOR, SECTOR_U64};
use crate::directory::{self, Namespace, Target};
use crate::tree::{Tree, ROOT};
use crate::{hybrid, IsoError};

/// ECMA-119 6.2.1: the system area is sectors 0-15; the volume descriptor set starts at 16.
pub(crate) const FIRST_DESCRIPTOR: u32 = 16;

#[derive(Debug)]
pub(crate) struct Layout {
    pub primary: Namespace,
    pub joliet: Namespace,
    pub boot_record: Option<u32>,
    pub joliet_descriptor: u32,
    pub terminator: u32,
    pub catalog: Option<u32>,
    /// Continuation areas, packed so none crosses a sector, and their first sector.
    pub ce_area: Vec<u8>,
    pub ce_lba: u32,
    /// Per file (caller's index): first sector. Empty files point at the next free sector, as xorriso does.
    pub file_lba: Vec<u32>,
    /// Files in the order their extents follow each other.
    pub file_order: Vec<usize>,
    /// The image's size in sectors, tail included; also the volume space size.
    pub total_sectors: u32,
}

/// A cursor over sectors that refuses to pass what a 32-bit LBA can address.
struct Cursor(u64);

impl Cursor {
    fn take(&mut self, sectors: u64) -> Result<u32, IsoError> {
        let at = self.0;
        self.0 += sectors;
        u32::try_from(self.0).map_err(|_| IsoError::ImageTooLarge { sectors: self.0 })?;
        u32::try_from(at).map_err(|_| IsoError::ImageTooLarge { sectors: at })
    }
}

/// Lays out `tree`. `boot`: an El Torito boot record and catalog are needed. `hybrid`: pad the image for the
/// isohybrid MBR, and leave room for a backup GPT when `gpt`.
pub(crate) fn plan(tree: &Tree, date: [u8; 7], boot: bool, hybrid: bool, gpt: bool) -> Result<Layout, IsoError> {
    let mut primary = directory::primary(tree, date)?;
    let mut joliet = directory::joliet(tree)?;
    let mut cur = Cursor(u64::from(FIRST_DESCRIPTOR) + 1);
    let boot_record = if boot { Some(cur.take(1)?) } else { None };
    let joliet_descriptor = cur.take(1)?;
    let terminator = cur.take(1)?;
    let catalog = if boot { Some(cur.take(1)?) } else { None };

    for ns in [&mut primary, &mut joliet] {
        let sectors = sectors_for(u64::from(ns.path_table_len));
        ns.path_tables = (cur.take(sectors)?, cur.take(sectors)?);
    }
    place_dirs(&mut primary, &mut cur)?;

    // Continuation areas, in directory order; SUSP 5.1 wants each inside one logical block.
    let mut ce_area = Vec::new();
    let ce_lba = u32::try_from(cur.0).map_err(|_| IsoError::ImageTooLarge { sectors: cur.0 })?;
    for &d in &primary.order {
        for r in &mut primary.dirs[d].records {
            if r.su.overflow.is_empty() {
                continue;
            }
            if ce_area.len() % SECTOR + r.su.overflow.len() > SECTOR {
                ce_area.resize(ce_area.len().next_multiple_of(SECTOR), 0);
            }
            let block = ce_lba + u32::try_from(ce_area.len() / SECTOR).unwrap_or(u32::MAX);
            let offset = u32::try_from(ce_area.len() % SECTOR).unwrap_or(0);
            r.ce = Some((block, offset));
            ce_area.extend_from_slice(&r.su.overflow);
        }
    }
    ce_area.resize(ce_area.len().next_multiple_of(SECTOR), 0);
    cur.take(ce_area.len() as u64 / SECTOR_U64)?;

    place_dirs(&mut joliet, &mut cur)?;

    let file_order = files_in_order(&primary);
    let mut file_lba = vec![0u32; tree.files.len()];
    for &f in &file_order {
        file_lba[f] = cur.take(sectors_for(tree.files[f].len))?;
    }

    let end = cur.0;
    let total = if hybrid { hybrid::padded_sectors(end, gpt) } else { end };
    let total_sectors = u32::try_from(total).map_err(|_| IsoError::ImageTooLarge { sectors: total })?;
    Ok(Layout {
        primary,
        joliet,
        boot_record,
        joliet_descriptor,
        terminator,
        catalog,
        ce_area,
        ce_lba,
        file_lba,
        file_order,
        total_sectors,
    })
}

fn place_dirs(ns: &mut Namespace, cur: &mut Cursor) -> Result<(), IsoError> {
    for i in 0..ns.order.len() {
        let d = ns.order[i];
        ns.dirs[d].lba = cur.take(u64::from(ns.dirs[d].size) / SECTOR_U64)?;
    }
    Ok(())
}

/// Files in the primary tree's order: each directory's files as recorded, then its subdirectories, depth first.
fn files_in_order(ns: &Namespace) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack = vec![ROOT];
    while let Some(d) = stack.pop() {
        let mut subdirs = Vec::new();
        for r in ns.dirs[d].records.iter().skip(2) {
            match r.target {
                Target::File(f) => out.push(f),
                Target::Dir(sub) => subdirs.push(sub),
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    out
}
