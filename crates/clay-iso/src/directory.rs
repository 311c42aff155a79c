//! Directory records (ECMA-119 9.1), directory extents (6.8.1) and path tables (9.4) for both trees: the primary
//! one with d-character identifiers and Rock Ridge entries, and the Joliet one with UCS-2 identifiers.

use crate::bytes::{both_u16, both_u32, SECTOR};
use crate::rockridge::{self, SystemUse};
use crate::tree::{Node, Tree, DIR_MODE, ROOT};
use crate::{joliet, names, IsoError};

/// ECMA-119 9.1: the fixed part of a directory record, before the file identifier.
const RECORD_FIXED: usize = 33;
/// A directory record's length is one byte; we keep records even-sized (9.1.13 pads to even), so at most 254.
const MAX_RECORD: usize = 254;
/// ECMA-119 9.1.6: file flag "Directory".
const FLAG_DIRECTORY: u8 = 0b10;
/// ECMA-119 6.8.2.2: the identifiers of the "." and ".." records.
const DOT: u8 = 0;
const DOTDOT: u8 = 1;
/// ECMA-119 9.4: the fixed part of a path table record.
const PATH_RECORD_FIXED: usize = 8;
/// The most directories a path table can number (its parent field is 16 bits).
const MAX_DIRS: usize = 65_535;

/// What a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Dir(usize),
    File(usize),
}

#[derive(Debug)]
pub(crate) struct Record {
    pub ident: Vec<u8>,
    pub target: Target,
    pub su: SystemUse,
    /// Where `su.overflow` lives once laid out: block and offset of the continuation area.
    pub ce: Option<(u32, u32)>,
}

impl Record {
    fn fixed_len(ident: &[u8]) -> usize {
        // 9.1.12: a padding byte follows an even-length identifier, so the system use field starts even.
        RECORD_FIXED + ident.len() + usize::from(ident.len() % 2 == 0)
    }

    fn new(ident: Vec<u8>, target: Target, entries: Vec<Vec<u8>>) -> Record {
        let room = MAX_RECORD - Self::fixed_len(&ident);
        Record { su: rockridge::split(entries, room), ident, target, ce: None }
    }

    pub(crate) fn len(&self) -> usize {
        let len = Self::fixed_len(&self.ident) + self.su.inline_len();
        len + len % 2
    }

    /// The record, given where its target lives.
    pub(crate) fn encode(&self, extent: u32, size: u32, date: [u8; 7]) -> Vec<u8> {
        let mut r = Vec::with_capacity(self.len());
        r.push(u8::try_from(self.len()).unwrap_or(u8::MAX));
        r.push(0); // 9.1.2: no extended attribute record
        r.extend_from_slice(&both_u32(extent));
        r.extend_from_slice(&both_u32(size));
        r.extend_from_slice(&date);
        r.push(if matches!(self.target, Target::Dir(_)) { FLAG_DIRECTORY } else { 0 });
        r.extend_from_slice(&[0, 0]); // 9.1.7, 9.1.8: not interleaved
        r.extend_from_slice(&both_u16(1)); // 9.1.9: volume sequence number
        r.push(u8::try_from(self.ident.len()).unwrap_or(u8::MAX));
        r.extend_from_slice(&self.ident);
        if self.ident.len() % 2 == 0 {
            r.push(0);
        }
        r.extend_from_slice(&self.su.inline);
        if let Some((block, offset)) = self.ce {
            let len = u32::try_from(self.su.overflow.len()).unwrap_or(u32::MAX);
            r.extend_from_slice(&rockridge::ce(block, offset, len));
        }
        r.resize(self.len(), 0);
        r
    }
}

/// One directory of one tree.
#[derive(Debug)]
pub(crate) struct DirExtent {
    /// Its identifier in its parent ([DOT] for the root), for the path table.
    pub ident: Vec<u8>,
    pub records: Vec<Record>,
    pub size: u32,
    pub lba: u32,
}

/// One tree: its directories (indexed like [`Tree::dirs`]) and their path table order.
#[derive(Debug)]
pub(crate) struct Namespace {
    pub dirs: Vec<DirExtent>,
    /// Directories in path table order (9.4.4: by level, then parent number, then identifier).
    pub order: Vec<usize>,
    pub path_table_len: u32,
    /// Locations of the little- and big-endian path tables.
    pub path_tables: (u32, u32),
}

/// Packs records into sectors; none may cross a sector boundary (6.8.1.1). Returns the extent's size.
fn extent_size(records: &[Record]) -> u64 {
    let mut at = 0usize;
    for r in records {
        if at % SECTOR + r.len() > SECTOR {
            at = at.next_multiple_of(SECTOR);
        }
        at += r.len();
    }
    crate::bytes::sectors_for(at as u64) * SECTOR as u64
}

impl Namespace {
    fn new(tree: &Tree, mut records: Vec<Vec<Record>>, own_ident: Vec<Vec<u8>>) -> Result<Namespace, IsoError> {
        if tree.dirs.len() > MAX_DIRS {
            return Err(IsoError::TooManyDirectories { count: tree.dirs.len() });
        }
        let mut order = vec![ROOT];
        let mut i = 0;
        while let Some(&d) = order.get(i) {
            let subdirs = records[d].iter().skip(2).filter_map(|r| match r.target {
                Target::Dir(sub) => Some(sub),
                Target::File(_) => None,
            });
            order.extend(subdirs.collect::<Vec<_>>());
            i += 1;
        }
        let mut dirs = Vec::with_capacity(records.len());
        for (recs, ident) in records.drain(..).zip(own_ident) {
            let size = extent_size(&recs);
            let size = u32::try_from(size).map_err(|_| IsoError::ImageTooLarge { sectors: size / 2048 })?;
            dirs.push(DirExtent { ident, records: recs, size, lba: 0 });
        }
        let path_table_len: usize = dirs.iter().map(|d| PATH_RECORD_FIXED + d.ident.len() + d.ident.len() % 2).sum();
        let path_table_len =
            u32::try_from(path_table_len).map_err(|_| IsoError::TooManyDirectories { count: tree.dirs.len() })?;
        Ok(Namespace { dirs, order, path_table_len, path_tables: (0, 0) })
    }

    /// The directory's extent: records packed into sectors, exactly `size` bytes.
    pub(crate) fn encode_dir(&self, d: usize, file_extent: &dyn Fn(usize) -> (u32, u32), date: [u8; 7]) -> Vec<u8> {
        let dir = &self.dirs[d];
        let mut out = Vec::with_capacity(usize::try_from(dir.size).unwrap_or(0));
        for r in &dir.records {
            if out.len() % SECTOR + r.len() > SECTOR {
                out.resize(out.len().next_multiple_of(SECTOR), 0);
            }
            let (extent, size) = match r.target {
                Target::Dir(t) => self.dirs.get(t).map_or((0, 0), |t| (t.lba, t.size)),
                Target::File(f) => file_extent(f),
            };
            out.extend_from_slice(&r.encode(extent, size, date));
        }
        out.resize(usize::try_from(dir.size).unwrap_or(out.len()), 0);
        out
    }

    /// The path table (9.4) in little-endian (type L) or big-endian (type M) form.
    pub(crate) fn path_table(&self, tree: &Tree, big_endian: bool) -> Vec<u8> {
        let mut number = vec![0u16; self.dirs.len()];
        for (n, &d) in (1u16..).zip(&self.order) {
            number[d] = n;
        }
        let mut t = Vec::new();
        for &d in &self.order {
            let dir = &self.dirs[d];
            let parent = number[tree.dirs[d].parent];
            t.push(u8::try_from(dir.ident.len()).unwrap_or(u8::MAX));
            t.push(0);
            t.extend_from_slice(&if big_endian { dir.lba.to_be_bytes() } else { dir.lba.to_le_bytes() });
            t.extend_from_slice(&if big_endian { parent.to_be_bytes() } else { parent.to_le_bytes() });
            t.extend_from_slice(&dir.ident);
            if dir.ident.len() % 2 == 1 {
                t.push(0);
            }
        }
        t
    }
}

/// Rock Ridge serial numbers: directories first, then files, counting from 1.
fn serial(tree: &Tree, target: Target) -> u32 {
    let n = match target {
        Target::Dir(d) => d + 1,
        Target::File(f) => tree.dirs.len() + f + 1,
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// PX and TF for a record's target.
fn posix(tree: &Tree, target: Target, date: [u8; 7]) -> Vec<Vec<u8>> {
    let (mode, nlink) = match target {
        Target::Dir(d) => (DIR_MODE, u32::try_from(2 + tree.dirs[d].subdirs()).unwrap_or(u32::MAX)),
        Target::File(f) => (tree.files[f].mode, 1),
    };
    vec![rockridge::px(mode, nlink, serial(tree, target)), rockridge::tf(date)]
}

fn target(node: Node) -> Target {
    match node {
        Node::Dir(d) => Target::Dir(d),
        Node::File(f) => Target::File(f),
    }
}

/// The primary tree: d-character identifiers, Rock Ridge names and attributes.
pub(crate) fn primary(tree: &Tree, date: [u8; 7]) -> Result<Namespace, IsoError> {
    let mut all = Vec::with_capacity(tree.dirs.len());
    let mut own = vec![vec![DOT]; tree.dirs.len()];
    for (d, dir) in tree.dirs.iter().enumerate() {
        let mut dot_entries = Vec::new();
        if d == ROOT {
            // SUSP 5.3: SP first in the root's "." record; 5.5: the ER there (or in its continuation area).
            dot_entries.push(rockridge::sp());
        }
        dot_entries.extend(posix(tree, Target::Dir(d), date));
        if d == ROOT {
            dot_entries.push(rockridge::er());
        }
        let mut recs = vec![
            Record::new(vec![DOT], Target::Dir(d), dot_entries),
            Record::new(vec![DOTDOT], Target::Dir(dir.parent), posix(tree, Target::Dir(dir.parent), date)),
        ];
        let idents =
            names::identifiers(dir.children.iter().map(|(n, node)| (n.as_str(), matches!(node, Node::Dir(_)))));
        let mut children: Vec<Record> = dir
            .children
            .iter()
            .zip(idents)
            .map(|((name, &node), ident)| {
                let mut entries = posix(tree, target(node), date);
                entries.extend(rockridge::nm(name.as_bytes()));
                Record::new(ident, target(node), entries)
            })
            .collect();
        children.sort_by(|a, b| names::compare(&a.ident, &b.ident));
        for r in &children {
            if let Target::Dir(sub) = r.target {
                own[sub] = r.ident.clone();
            }
        }
        recs.extend(children);
        all.push(recs);
    }
    Namespace::new(tree, all, own)
}

/// The Joliet tree: UCS-2 identifiers, no system use entries.
pub(crate) fn joliet(tree: &Tree) -> Result<Namespace, IsoError> {
    let mut all = Vec::with_capacity(tree.dirs.len());
    let mut own = vec![vec![DOT]; tree.dirs.len()];
    for (d, dir) in tree.dirs.iter().enumerate() {
        let mut recs = vec![
            Record::new(vec![DOT], Target::Dir(d), Vec::new()),
            Record::new(vec![DOTDOT], Target::Dir(dir.parent), Vec::new()),
        ];
        let idents =
            joliet::identifiers(dir.children.iter().map(|(n, node)| (n.as_str(), matches!(node, Node::Dir(_)))));
        let mut children: Vec<Record> = dir
            .children
            .values()
            .zip(idents)
            .map(|(&node, ident)| Record::new(ident, target(node), Vec::new()))
            .collect();
        children.sort_by(|a, b| a.ident.cmp(&b.ident));
        for r in &children {
            if let Target::Dir(sub) = r.target {
                own[sub] = r.ident.clone();
            }
        }
        recs.extend(children);
        all.push(recs);
    }
    Namespace::new(tree, all, own)
}
