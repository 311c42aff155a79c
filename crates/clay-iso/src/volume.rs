//! Volume descriptors (ECMA-119 8): the primary one, the Joliet supplementary one and the set terminator.

use crate::bytes::{both_u16, both_u32, put, DateTime, DEC_UNSPECIFIED, SECTOR};
use crate::directory::{Namespace, Record, Target};
use crate::joliet;
use crate::tree::ROOT;

/// ECMA-119 8.1: the standard identifier of every volume descriptor.
pub(crate) const STANDARD_ID: &[u8; 5] = b"CD001";
/// ECMA-119 8.1.1: volume descriptor types.
pub(crate) const TYPE_BOOT_RECORD: u8 = 0;
pub(crate) const TYPE_PRIMARY: u8 = 1;
pub(crate) const TYPE_SUPPLEMENTARY: u8 = 2;
pub(crate) const TYPE_TERMINATOR: u8 = 255;
/// Offsets in a primary/supplementary descriptor (ECMA-119 8.4, 8.5).
pub(crate) const VOLUME_ID: usize = 40;
pub(crate) const VOLUME_SPACE_SIZE: usize = 80;
pub(crate) const ESCAPE_SEQUENCES: usize = 88;
const VOLUME_SET_SIZE: usize = 120;
const VOLUME_SEQUENCE_NUMBER: usize = 124;
const LOGICAL_BLOCK_SIZE: usize = 128;
const PATH_TABLE_SIZE: usize = 132;
const L_PATH_TABLE: usize = 140;
const M_PATH_TABLE: usize = 148;
pub(crate) const ROOT_RECORD: usize = 156;
const VOLUME_SET_ID: usize = 190;
const PUBLISHER_ID: usize = 318;
const PREPARER_ID: usize = 446;
const APPLICATION_ID: usize = 574;
const COPYRIGHT_FILE_ID: usize = 702;
const ABSTRACT_FILE_ID: usize = 739;
const BIBLIOGRAPHIC_FILE_ID: usize = 776;
const CREATION_DATE: usize = 813;
const MODIFICATION_DATE: usize = 830;
const EXPIRATION_DATE: usize = 847;
const EFFECTIVE_DATE: usize = 864;
const FILE_STRUCTURE_VERSION: usize = 881;
/// What we put in the application identifier.
const APPLICATION: &str = "CLAYLINUX";
/// The volume id is at most 32 d-characters (ECMA-119 8.4.6).
pub(crate) const MAX_VOLUME_ID: usize = 32;

/// Whether `id` is a valid volume identifier: 1 to 32 d-characters.
pub(crate) fn valid_volume_id(id: &str) -> bool {
    (1..=MAX_VOLUME_ID).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn header(kind: u8) -> Vec<u8> {
    let mut d = vec![0u8; SECTOR];
    d[0] = kind;
    put(&mut d, 1, STANDARD_ID);
    d[6] = 1; // 8.1.3: version
    d
}

/// A string field padded with spaces (a- and d-character fields, ECMA-119 7.4.3).
fn ascii(d: &mut [u8], at: usize, len: usize, s: &str) {
    let mut field = vec![b' '; len];
    let n = s.len().min(len);
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
    put(d, at, &field);
}

/// The primary (8.4) or Joliet supplementary (8.5, Joliet 3) volume descriptor for `ns`.
pub(crate) fn descriptor(ns: &Namespace, is_joliet: bool, volume_id: &str, total: u32, date: DateTime) -> Vec<u8> {
    let mut d = header(if is_joliet { TYPE_SUPPLEMENTARY } else { TYPE_PRIMARY });
    let text = |d: &mut Vec<u8>, at: usize, len: usize, s: &str| {
        if is_joliet {
            put(d, at, &joliet::ucs2_field(s, len));
        } else {
            ascii(d, at, len, s);
        }
    };
    text(&mut d, 8, 32, ""); // system identifier
    text(&mut d, VOLUME_ID, 32, volume_id);
    put(&mut d, VOLUME_SPACE_SIZE, &both_u32(total));
    if is_joliet {
        put(&mut d, ESCAPE_SEQUENCES, joliet::ESCAPE_UCS2_LEVEL3);
    }
    put(&mut d, VOLUME_SET_SIZE, &both_u16(1));
    put(&mut d, VOLUME_SEQUENCE_NUMBER, &both_u16(1));
    put(&mut d, LOGICAL_BLOCK_SIZE, &both_u16(2048));
    put(&mut d, PATH_TABLE_SIZE, &both_u32(ns.path_table_len));
    put(&mut d, L_PATH_TABLE, &ns.path_tables.0.to_le_bytes());
    put(&mut d, M_PATH_TABLE, &ns.path_tables.1.to_be_bytes());
    let root = &ns.dirs[ROOT];
    // 8.4.18: the root's record, 34 bytes with identifier 0 and no system use field.
    let record = Record { ident: vec![0], target: Target::Dir(ROOT), su: Default::default(), ce: None };
    put(&mut d, ROOT_RECORD, &record.encode(root.lba, root.size, date.recording()));
    for (at, len) in [(VOLUME_SET_ID, 128), (PUBLISHER_ID, 128), (PREPARER_ID, 128)] {
        text(&mut d, at, len, "");
    }
    text(&mut d, APPLICATION_ID, 128, APPLICATION);
    for at in [COPYRIGHT_FILE_ID, ABSTRACT_FILE_ID, BIBLIOGRAPHIC_FILE_ID] {
        text(&mut d, at, 37, "");
    }
    for at in [CREATION_DATE, MODIFICATION_DATE, EFFECTIVE_DATE] {
        put(&mut d, at, &date.dec());
    }
    put(&mut d, EXPIRATION_DATE, &DEC_UNSPECIFIED);
    d[FILE_STRUCTURE_VERSION] = 1;
    d
}

/// ECMA-119 8.3: the volume descriptor set terminator.
pub(crate) fn terminator() -> Vec<u8> {
    header(TYPE_TERMINATOR)
}

/// El Torito 2.0: the boot record volume descriptor, pointing at the boot catalog.
pub(crate) fn boot_record(catalog: u32) -> Vec<u8> {
    let mut d = header(TYPE_BOOT_RECORD);
    put(&mut d, 7, crate::eltorito::BOOT_SYSTEM_ID);
    put(&mut d, crate::eltorito::CATALOG_POINTER, &catalog.to_le_bytes());
    d
}
