//! The writing pass: the journal, then every inode in number order with its data (allocated in that order), then
//! the bitmaps, group descriptors and superblocks, which follow from what was allocated.

use std::io::{Read, Seek, SeekFrom, Write};

use clay_tree::{Content, Kind, Tree};
use zerocopy::{FromZeros, IntoBytes};

use crate::csum::{crc32c, fs_seed, high16, inode_seed, low16, set_inode_csum};
use crate::dir::DirBuilder;
use crate::extent::{self, Extents};
use crate::layout::{Allocator, Geometry};
use crate::ondisk::*;
use crate::plan::{Item, Plan, LOST_FOUND, LOST_FOUND_BLOCKS};
use crate::{xattr, Ext4Error, Options, Stats};

/// File data is read and written in chunks of this size.
const CHUNK: usize = 1 << 20;

pub(crate) fn write(
    tree: &Tree,
    plan: &Plan,
    geo: &Geometry,
    opts: &Options,
    out: &mut (impl Write + Seek),
) -> Result<Stats, Ext4Error> {
    let base = out.stream_position().map_err(Ext4Error::Write)?;
    let mut w = Writer {
        disk: Disk { out, base, pos: None, pending: Vec::new(), pending_at: 0 },
        geo,
        alloc: Allocator::new(geo),
        fs_seed: fs_seed(&opts.uuid),
        opts,
        itable: None,
        dirs: vec![0; usize::try_from(geo.groups).unwrap_or(0)],
        content_bytes: 0,
        buf: Vec::new(),
    };
    let journal = if geo.journal_blocks > 0 { Some(w.journal()?) } else { None };
    for (ino, item) in &plan.items {
        w.inode(tree, plan, *ino, item)?;
    }
    w.flush_itable()?;
    w.disk.flush()?;
    let (free_blocks, free_inodes) = w.groups(plan.last_ino)?;
    w.superblocks(journal.as_ref(), free_blocks, free_inodes)?;
    let end = base + geo.blocks * BLOCK;
    w.disk.out.seek(SeekFrom::Start(end)).map_err(Ext4Error::Write)?;
    Ok(Stats {
        size: geo.blocks * BLOCK,
        inodes: u64::from(plan.last_ino),
        used_blocks: geo.blocks - free_blocks,
        content_bytes: w.content_bytes,
        journal_bytes: geo.journal_blocks * BLOCK,
    })
}

/// The output, addressed in filesystem blocks; consecutive data blocks are gathered into one write.
struct Disk<'a, W> {
    out: &'a mut W,
    base: u64,
    /// Where `out` is, when known, to skip needless seeks.
    pos: Option<u64>,
    pending: Vec<u8>,
    pending_at: u64,
}

impl<W: Write + Seek> Disk<'_, W> {
    /// Writes `bytes` (whole blocks) at `block`, skipping blocks that are all zeros: the region already is.
    fn write(&mut self, block: u64, bytes: &[u8]) -> Result<(), Ext4Error> {
        for (i, chunk) in bytes.chunks(BLOCK_SIZE).enumerate() {
            if chunk.iter().any(|&b| b != 0) {
                self.write_at(block * BLOCK + i as u64 * BLOCK, chunk)?;
            }
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Ext4Error> {
        let at = self.base + offset;
        if self.pos != Some(at) {
            self.out.seek(SeekFrom::Start(at)).map_err(Ext4Error::Write)?;
        }
        self.out.write_all(bytes).map_err(Ext4Error::Write)?;
        self.pos = Some(at + bytes.len() as u64);
        Ok(())
    }

    /// Queues one data block, writing the queue out when `block` does not follow it or it is full.
    fn data(&mut self, block: u64, bytes: &[u8]) -> Result<(), Ext4Error> {
        let follows = self.pending_at + (self.pending.len() / BLOCK_SIZE) as u64 == block;
        if !follows || self.pending.len() >= CHUNK {
            self.flush()?;
            self.pending_at = block;
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Ext4Error> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.write_at(self.pending_at * BLOCK, &pending)?;
            self.pending = pending;
            self.pending.clear();
        }
        Ok(())
    }
}

struct Writer<'a, 'o, W> {
    disk: Disk<'o, W>,
    geo: &'a Geometry,
    alloc: Allocator<'a>,
    fs_seed: u32,
    opts: &'a Options,
    /// The inode table block being filled.
    itable: Option<(u64, Vec<u8>)>,
    /// Directories per group.
    dirs: Vec<u16>,
    content_bytes: u64,
    buf: Vec<u8>,
}

/// The allocator ran out: the caller turns this into a `TooSmall` with the real numbers.
fn full() -> Ext4Error {
    Ext4Error::TooSmall { needed: 0, given: 0 }
}

impl<W: Write + Seek> Writer<'_, '_, W> {
    /// Allocates and writes the journal: its superblock in the first block, the rest left zero. Returns its
    /// inode's `i_block` and size, for the superblock's backup copy.
    fn journal(&mut self) -> Result<Inode, Ext4Error> {
        let blocks = self.geo.journal_blocks;
        let extents = self.place(blocks)?;
        let first = extents_first_block(&extents);
        let jsb = JournalSuperBlock {
            h_magic: JBD2_MAGIC.into(),
            h_blocktype: JBD2_SUPERBLOCK_V2.into(),
            h_sequence: 0.into(),
            s_blocksize: u32::try_from(BLOCK_SIZE).unwrap_or(0).into(),
            s_maxlen: u32::try_from(blocks).unwrap_or(u32::MAX).into(),
            s_first: 1.into(),
            s_sequence: 1.into(),
            s_start: 0.into(),
            s_errno: 0.into(),
            s_feature_compat: 0.into(),
            s_feature_incompat: 0.into(),
            s_feature_ro_compat: 0.into(),
            s_uuid: self.opts.uuid,
            s_nr_users: 1.into(),
            s_dynsuper: 0.into(),
            s_max_transaction: 0.into(),
            s_max_trans_data: 0.into(),
            s_unused_0x50: [0; 0xB0],
            s_users: [0; 16 * 48],
        };
        self.disk.write(first, jsb.as_bytes())?;
        let mut inode = self.new_inode(libc_mode::S_IFREG | 0o600, 1, self.opts.timestamp, 0, 0);
        inode.i_flags = INODE_EXTENTS_FL.into();
        set_size(&mut inode, blocks * BLOCK);
        let seed = inode_seed(self.fs_seed, JOURNAL_INO, 0);
        let tree_blocks = self.extent_tree(&mut inode, &extents, seed)?;
        set_blocks(&mut inode, blocks + tree_blocks);
        set_inode_csum(&mut inode, seed);
        self.put_inode(JOURNAL_INO, &inode)?;
        Ok(inode)
    }

    fn inode(&mut self, tree: &Tree, plan: &Plan, ino: u32, item: &Item) -> Result<(), Ext4Error> {
        let seed = inode_seed(self.fs_seed, ino, 0);
        let Item::Tree { id, path } = item else {
            // lost+found: root's, 0700, as mke2fs makes it.
            let mut d = DirBuilder::new(ino, ROOT_INO);
            d.pad_to(LOST_FOUND_BLOCKS);
            let mut inode = self.new_inode(libc_mode::S_IFDIR | 0o700, 2, self.opts.timestamp, 0, 0);
            self.count_dir(ino);
            return self.finish_dir(ino, &mut inode, d, seed);
        };
        let node = tree.inode(*id);
        let meta = &node.meta;
        let mut links = plan.links.get(id).copied().unwrap_or(1);
        if *id == tree.root() && plan.lost_found {
            links += 1;
        }
        if node.kind.is_dir() {
            // dir_nlink: past the limit a directory counts 1, "many".
            if links > LINK_MAX {
                links = 1;
            }
        } else if links > LINK_MAX {
            return Err(Ext4Error::TooManyLinks { path: path.clone(), links });
        }
        let mtime = meta.mtime.min(self.opts.timestamp);
        let mode = node.st_mode();
        let mut inode = self.new_inode(mode, links, mtime, meta.uid, meta.gid);
        let placement = xattr::place(path, xattr::encode(path, &meta.xattrs)?)?;
        inode.xattrs = xattr::inode_area(&placement.in_inode);
        let mut extra_blocks = 0;
        if placement.needs_block() {
            let (at, _) = self.alloc.alloc(1).ok_or_else(full)?;
            self.disk.write(at, &xattr::block(&placement.in_block, at, self.fs_seed))?;
            set_file_acl(&mut inode, at);
            extra_blocks = 1;
        }
        match &node.kind {
            Kind::Directory(_) => {
                let parent = plan.parents.get(id).copied().unwrap_or(ROOT_INO);
                let mut d = DirBuilder::new(ino, parent);
                if *id == tree.root() && plan.lost_found {
                    d.push(LOST_FOUND, FIRST_INO, FT_DIR);
                }
                for (name, child) in tree.children(*id) {
                    let child_path = || format!("{}/{}", path.trim_end_matches('/'), String::from_utf8_lossy(name));
                    if name.len() > NAME_MAX {
                        return Err(Ext4Error::NameTooLong { path: child_path() });
                    }
                    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
                        return Err(Ext4Error::BadName { path: child_path() });
                    }
                    let child_ino = plan.inos.get(&child).copied().unwrap_or(0);
                    d.push(name, child_ino, file_type(&tree.inode(child).kind));
                }
                self.count_dir(ino);
                let mut inode = inode;
                set_blocks(&mut inode, extra_blocks);
                self.finish_dir(ino, &mut inode, d, seed)
            }
            Kind::File(content) => {
                let (extents, data_blocks) = self.file(path, content)?;
                inode.i_flags = INODE_EXTENTS_FL.into();
                set_size(&mut inode, content.len());
                let tree_blocks = self.extent_tree(&mut inode, &extents, seed)?;
                set_blocks(&mut inode, data_blocks + tree_blocks + extra_blocks);
                set_inode_csum(&mut inode, seed);
                self.put_inode(ino, &inode)
            }
            Kind::Symlink(target) => {
                if target.is_empty() || target.len() >= BLOCK_SIZE || target.contains(&0) {
                    return Err(Ext4Error::BadSymlink { path: path.clone(), len: target.len() });
                }
                set_size(&mut inode, target.len() as u64);
                if target.len() < inode.i_block.len() {
                    // A fast symlink: the target in i_block, no data block.
                    inode.i_block[..target.len()].copy_from_slice(target);
                    set_blocks(&mut inode, extra_blocks);
                } else {
                    let mut block = target.clone();
                    block.resize(BLOCK_SIZE, 0);
                    let extents = self.place(1)?;
                    self.disk.write(extents_first_block(&extents), &block)?;
                    inode.i_flags = INODE_EXTENTS_FL.into();
                    let tree_blocks = self.extent_tree(&mut inode, &extents, seed)?;
                    set_blocks(&mut inode, 1 + tree_blocks + extra_blocks);
                }
                set_inode_csum(&mut inode, seed);
                self.put_inode(ino, &inode)
            }
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                let (major, minor) = (*major, *minor);
                if major < 256 && minor < 256 {
                    inode.i_block[..4].copy_from_slice(&(major << 8 | minor).to_le_bytes());
                } else if major < 4096 && minor < 1 << 20 {
                    let dev = (minor & 0xFF) | (major << 8) | ((minor & !0xFF) << 12);
                    inode.i_block[4..8].copy_from_slice(&dev.to_le_bytes());
                } else {
                    return Err(Ext4Error::DeviceNumber { path: path.clone(), major, minor });
                }
                set_blocks(&mut inode, extra_blocks);
                set_inode_csum(&mut inode, seed);
                self.put_inode(ino, &inode)
            }
            Kind::Fifo => {
                set_blocks(&mut inode, extra_blocks);
                set_inode_csum(&mut inode, seed);
                self.put_inode(ino, &inode)
            }
        }
    }

    /// Writes a directory's blocks and its inode (whose `i_blocks` holds the attribute block so far).
    fn finish_dir(&mut self, ino: u32, inode: &mut Inode, d: DirBuilder, seed: u32) -> Result<(), Ext4Error> {
        let bytes = d.finish(seed);
        let blocks = (bytes.len() / BLOCK_SIZE) as u64;
        let extents = self.place(blocks)?;
        let mut written = 0;
        for &(_, start, len) in extents_list(&extents) {
            let n = usize::try_from(len).unwrap_or(0) * BLOCK_SIZE;
            self.disk.write(start, &bytes[written..written + n])?;
            written += n;
        }
        inode.i_flags = INODE_EXTENTS_FL.into();
        set_size(inode, bytes.len() as u64);
        let tree_blocks = self.extent_tree(inode, &extents, seed)?;
        let before = u64::from(inode.i_blocks_lo.get()) / 8;
        set_blocks(inode, before + blocks + tree_blocks);
        set_inode_csum(inode, seed);
        self.put_inode(ino, inode)
    }

    /// Streams a file's content into newly allocated blocks, leaving all-zero blocks as holes.
    fn file(&mut self, path: &str, content: &Content) -> Result<(Extents, u64), Ext4Error> {
        let len = content.len();
        if len.div_ceil(BLOCK) > u64::from(u32::MAX) {
            return Err(Ext4Error::FileTooLarge { path: path.to_owned(), size: len });
        }
        let mut reader = content.reader(path)?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(CHUNK, 0);
        let mut extents = Extents::default();
        let (mut lblk, mut used, mut left) = (0u32, 0u64, len);
        while left > 0 {
            let n = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            reader.read_exact(&mut buf[..n]).map_err(|source| Ext4Error::Read { path: path.to_owned(), source })?;
            let padded = n.next_multiple_of(BLOCK_SIZE);
            buf[n..padded].fill(0);
            for block in buf[..padded].chunks(BLOCK_SIZE) {
                if block.iter().any(|&b| b != 0) {
                    let (at, _) = self.alloc.alloc(1).ok_or_else(full)?;
                    extents.push(lblk, at, 1);
                    self.disk.data(at, block)?;
                    used += 1;
                }
                lblk = lblk.saturating_add(1);
            }
            left -= n as u64;
        }
        self.disk.flush()?;
        self.buf = buf;
        self.content_bytes += len;
        Ok((extents, used))
    }

    /// Allocates `blocks` blocks (in as few runs as the free space allows) as logical blocks 0.., unwritten.
    fn place(&mut self, blocks: u64) -> Result<Extents, Ext4Error> {
        let mut extents = Extents::default();
        let mut done = 0u64;
        while done < blocks {
            let (start, len) = self.alloc.alloc(blocks - done).ok_or_else(full)?;
            let lblk = u32::try_from(done).map_err(|_| full())?;
            extents.push(lblk, start, u32::try_from(len).map_err(|_| full())?);
            done += len;
        }
        Ok(extents)
    }

    /// Builds the extent tree into the inode and writes its blocks; returns how many there are.
    fn extent_tree(&mut self, inode: &mut Inode, extents: &Extents, seed: u32) -> Result<u64, Ext4Error> {
        let alloc = &mut self.alloc;
        let tree = extent::build(extents, seed, &mut || alloc.alloc(1).map(|(at, _)| at).ok_or_else(full))?;
        for (at, block) in &tree.blocks {
            self.disk.write(*at, block)?;
        }
        inode.i_block = tree.i_block;
        Ok(tree.blocks.len() as u64)
    }

    fn new_inode(&self, mode: u32, links: u32, mtime: i64, uid: u32, gid: u32) -> Inode {
        let mut inode = Inode::new_zeroed();
        inode.i_mode = u16::try_from(mode & 0xFFFF).unwrap_or(0).into();
        inode.i_uid = low16(uid).into();
        inode.i_uid_high = high16(uid).into();
        inode.i_gid = low16(gid).into();
        inode.i_gid_high = high16(gid).into();
        inode.i_links_count = u16::try_from(links).unwrap_or(1).into();
        let (secs, extra) = encode_time(mtime);
        for (t, x) in [
            (&mut inode.i_atime, &mut inode.i_atime_extra),
            (&mut inode.i_ctime, &mut inode.i_ctime_extra),
            (&mut inode.i_mtime, &mut inode.i_mtime_extra),
            (&mut inode.i_crtime, &mut inode.i_crtime_extra),
        ] {
            *t = secs.into();
            *x = extra.into();
        }
        inode.i_extra_isize = EXTRA_ISIZE.into();
        inode
    }

    fn count_dir(&mut self, ino: u32) {
        let g = usize::try_from((ino - 1) / self.geo.inodes_per_group).unwrap_or(0);
        if let Some(n) = self.dirs.get_mut(g) {
            *n = n.saturating_add(1);
        }
    }

    /// Puts an inode into its table block; blocks are written as inodes move past them (numbers only grow).
    fn put_inode(&mut self, ino: u32, inode: &Inode) -> Result<(), Ext4Error> {
        let (block, offset) = self.geo.inode_location(ino);
        if self.itable.as_ref().is_none_or(|(b, _)| *b != block) {
            self.flush_itable()?;
            self.itable = Some((block, vec![0; BLOCK_SIZE]));
        }
        if let Some((_, bytes)) = &mut self.itable {
            bytes[offset..offset + INODE_SIZE].copy_from_slice(inode.as_bytes());
        }
        Ok(())
    }

    fn flush_itable(&mut self) -> Result<(), Ext4Error> {
        if let Some((block, bytes)) = self.itable.take() {
            self.disk.write(block, &bytes)?;
        }
        Ok(())
    }

    /// Writes every group's bitmaps and the descriptor table (and its backups). Returns the free block and
    /// inode counts.
    fn groups(&mut self, last_ino: u32) -> Result<(u64, u64), Ext4Error> {
        let geo = self.geo;
        let ipg = geo.inodes_per_group;
        let cursor = self.alloc.cursor();
        let mut table = Vec::with_capacity(usize::try_from(geo.gdt_blocks).unwrap_or(0) * BLOCK_SIZE);
        let (mut free_blocks, mut free_inodes) = (0u64, 0u64);
        for g in 0..geo.groups {
            let (start, len) = geo.group_range(g);
            let mut bitmap = vec![0u8; BLOCK_SIZE];
            set_bits(&mut bitmap, 0, cursor.clamp(start, start + len) - start);
            for &(s, e) in &geo.reserved {
                let (s, e) = (s.max(start), e.min(start + len));
                if s < e {
                    set_bits(&mut bitmap, s - start, e - start);
                }
            }
            let used = count_bits(&bitmap);
            set_bits(&mut bitmap, len, BLOCKS_PER_GROUP);
            let free = len - used;
            free_blocks += free;

            let first = u64::from(ipg) * g;
            let used_inodes = u64::from(last_ino).saturating_sub(first).min(u64::from(ipg));
            let mut ibitmap = vec![0u8; BLOCK_SIZE];
            set_bits(&mut ibitmap, 0, used_inodes);
            set_bits(&mut ibitmap, u64::from(ipg), BLOCKS_PER_GROUP);
            let unused = u64::from(ipg) - used_inodes;
            free_inodes += unused;

            let bb_at = geo.block_bitmap_at(g);
            let ib_at = geo.inode_bitmap_at(g);
            let it_at = geo.inode_table_at(g);
            self.disk.write(bb_at, &bitmap)?;
            self.disk.write(ib_at, &ibitmap)?;
            let bb_csum = crc32c(self.fs_seed, &bitmap);
            let ib_csum = crc32c(self.fs_seed, &ibitmap[..usize::try_from(ipg / 8).unwrap_or(0)]);
            let dirs = self.dirs.get(usize::try_from(g).unwrap_or(0)).copied().unwrap_or(0);
            let mut desc = GroupDesc {
                bg_block_bitmap_lo: lo32(bb_at).into(),
                bg_inode_bitmap_lo: lo32(ib_at).into(),
                bg_inode_table_lo: lo32(it_at).into(),
                bg_free_blocks_count_lo: lo16(free).into(),
                bg_free_inodes_count_lo: lo16(unused).into(),
                bg_used_dirs_count_lo: dirs.into(),
                bg_flags: BG_INODE_ZEROED.into(),
                bg_exclude_bitmap_lo: 0.into(),
                bg_block_bitmap_csum_lo: low16(bb_csum).into(),
                bg_inode_bitmap_csum_lo: low16(ib_csum).into(),
                bg_itable_unused_lo: lo16(unused).into(),
                bg_checksum: 0.into(),
                bg_block_bitmap_hi: hi32(bb_at).into(),
                bg_inode_bitmap_hi: hi32(ib_at).into(),
                bg_inode_table_hi: hi32(it_at).into(),
                bg_free_blocks_count_hi: hi16(free).into(),
                bg_free_inodes_count_hi: hi16(unused).into(),
                bg_used_dirs_count_hi: 0.into(),
                bg_itable_unused_hi: hi16(unused).into(),
                bg_exclude_bitmap_hi: 0.into(),
                bg_block_bitmap_csum_hi: high16(bb_csum).into(),
                bg_inode_bitmap_csum_hi: high16(ib_csum).into(),
                bg_reserved: 0.into(),
            };
            let group = u32::try_from(g).unwrap_or(u32::MAX);
            let csum = crc32c(crc32c(self.fs_seed, &group.to_le_bytes()), desc.as_bytes());
            desc.bg_checksum = low16(csum).into();
            table.extend_from_slice(desc.as_bytes());
        }
        table.resize(usize::try_from(geo.gdt_blocks).unwrap_or(0) * BLOCK_SIZE, 0);
        for g in (0..geo.groups).filter(|&g| crate::layout::has_super(g)) {
            self.disk.write(g * BLOCKS_PER_GROUP + 1, &table)?;
        }
        Ok((free_blocks, free_inodes))
    }

    fn superblocks(&mut self, journal: Option<&Inode>, free_blocks: u64, free_inodes: u64) -> Result<(), Ext4Error> {
        let geo = self.geo;
        let opts = self.opts;
        let mut sb = SuperBlock::new_zeroed();
        let inodes = u32::try_from(geo.inodes()).unwrap_or(u32::MAX);
        sb.s_inodes_count = inodes.into();
        sb.s_blocks_count_lo = lo32(geo.blocks).into();
        sb.s_blocks_count_hi = hi32(geo.blocks).into();
        let reserved = geo.blocks / 20;
        sb.s_r_blocks_count_lo = lo32(reserved).into();
        sb.s_r_blocks_count_hi = hi32(reserved).into();
        sb.s_free_blocks_count_lo = lo32(free_blocks).into();
        sb.s_free_blocks_count_hi = hi32(free_blocks).into();
        sb.s_free_inodes_count = u32::try_from(free_inodes).unwrap_or(0).into();
        sb.s_first_data_block = 0.into();
        sb.s_log_block_size = LOG_BLOCK_SIZE.into();
        sb.s_log_cluster_size = LOG_BLOCK_SIZE.into();
        sb.s_blocks_per_group = lo32(BLOCKS_PER_GROUP).into();
        sb.s_clusters_per_group = lo32(BLOCKS_PER_GROUP).into();
        sb.s_inodes_per_group = geo.inodes_per_group.into();
        let time = opts.timestamp.clamp(0, (1 << 40) - 1);
        let (time_lo, time_hi) = (lo32(u64::try_from(time).unwrap_or(0)), u8::try_from(time >> 32).unwrap_or(0));
        sb.s_wtime = time_lo.into();
        sb.s_wtime_hi = time_hi;
        sb.s_mkfs_time = time_lo.into();
        sb.s_mkfs_time_hi = time_hi;
        sb.s_lastcheck = time_lo.into();
        sb.s_lastcheck_hi = time_hi;
        sb.s_max_mnt_count = u16::MAX.into();
        sb.s_magic = MAGIC.into();
        sb.s_state = STATE_CLEAN.into();
        sb.s_errors = ERRORS_CONTINUE.into();
        sb.s_creator_os = OS_LINUX.into();
        sb.s_rev_level = REV_DYNAMIC.into();
        sb.s_first_ino = FIRST_INO.into();
        sb.s_inode_size = u16::try_from(INODE_SIZE).unwrap_or(0).into();
        let mut compat = COMPAT_EXT_ATTR | COMPAT_DIR_INDEX;
        if journal.is_some() {
            compat |= COMPAT_HAS_JOURNAL;
        }
        sb.s_feature_compat = compat.into();
        sb.s_feature_incompat = (INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG).into();
        sb.s_feature_ro_compat = (RO_COMPAT_SPARSE_SUPER
            | RO_COMPAT_LARGE_FILE
            | RO_COMPAT_HUGE_FILE
            | RO_COMPAT_DIR_NLINK
            | RO_COMPAT_EXTRA_ISIZE
            | RO_COMPAT_METADATA_CSUM)
            .into();
        sb.s_uuid = opts.uuid;
        sb.s_volume_name[..opts.label.len()].copy_from_slice(opts.label.as_bytes());
        sb.s_hash_seed = opts.hash_seed;
        sb.s_def_hash_version = HASH_HALF_MD4;
        sb.s_desc_size = u16::try_from(DESC_SIZE).unwrap_or(0).into();
        sb.s_default_mount_opts = DEFM_XATTR_USER_ACL.into();
        if let Some(j) = journal {
            sb.s_journal_inum = JOURNAL_INO.into();
            sb.s_jnl_backup_type = JNL_BACKUP_BLOCKS;
            for (i, word) in j.i_block.chunks_exact(4).enumerate() {
                sb.s_jnl_blocks[i] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]).into();
            }
            sb.s_jnl_blocks[15] = j.i_size_high;
            sb.s_jnl_blocks[16] = j.i_size_lo;
        }
        sb.s_min_extra_isize = EXTRA_ISIZE.into();
        sb.s_want_extra_isize = EXTRA_ISIZE.into();
        sb.s_flags = FLAGS_SIGNED_HASH.into();
        sb.s_log_groups_per_flex = LOG_GROUPS_PER_FLEX;
        sb.s_checksum_type = CHECKSUM_CRC32C;
        for g in (0..geo.groups).filter(|&g| crate::layout::has_super(g)) {
            sb.s_block_group_nr = u16::try_from(g).unwrap_or(u16::MAX).into();
            sb.s_checksum = crc32c(!0, &sb.as_bytes()[..SUPERBLOCK_CSUM_OFFSET]).into();
            // The primary sits 1024 bytes into block 0; with 4 KiB blocks each backup starts its group's block.
            let offset = if g == 0 { SUPERBLOCK_OFFSET as u64 } else { g * BLOCKS_PER_GROUP * BLOCK };
            self.disk.write_at(offset, sb.as_bytes())?;
        }
        Ok(())
    }
}

/// File type bits (`S_IFMT` values), spelled out so the format does not depend on the host's libc.
mod libc_mode {
    pub const S_IFREG: u32 = 0o100_000;
    pub const S_IFDIR: u32 = 0o040_000;
}

fn file_type(kind: &Kind) -> u8 {
    match kind {
        Kind::Directory(_) => FT_DIR,
        Kind::File(_) => FT_REG_FILE,
        Kind::Symlink(_) => FT_SYMLINK,
        Kind::CharDevice { .. } => FT_CHRDEV,
        Kind::BlockDevice { .. } => FT_BLKDEV,
        Kind::Fifo => FT_FIFO,
    }
}

/// Seconds and the `_extra` word: the low 32 bits as a signed count, two epoch bits extending it to 2446
/// (Documentation/filesystems/ext4/inodes.rst, "Inode Timestamps"); nanoseconds are 0.
fn encode_time(t: i64) -> (u32, u32) {
    let t = t.clamp(-(1 << 31), (1 << 34) - (1 << 31) - 1);
    let lo = u32::try_from(t.rem_euclid(1 << 32)).unwrap_or(0);
    let signed = i64::from(i32::from_le_bytes(lo.to_le_bytes()));
    let epoch = u32::try_from((t - signed) >> 32).unwrap_or(0) & 3;
    (lo, epoch)
}

fn set_size(inode: &mut Inode, size: u64) {
    inode.i_size_lo = lo32(size).into();
    inode.i_size_high = hi32(size).into();
}

/// `i_blocks` in 512-byte sectors (`huge_file` without `EXT4_HUGE_FILE_FL`: 48 bits of them).
fn set_blocks(inode: &mut Inode, fs_blocks: u64) {
    let sectors = fs_blocks * (BLOCK / 512);
    inode.i_blocks_lo = lo32(sectors).into();
    inode.i_blocks_high = hi16(sectors >> 16).into();
}

fn set_file_acl(inode: &mut Inode, block: u64) {
    inode.i_file_acl_lo = lo32(block).into();
    inode.i_file_acl_high = lo16(block >> 32).into();
}

fn extents_list(extents: &Extents) -> &[(u32, u64, u32)] {
    extents.as_slice()
}

fn extents_first_block(extents: &Extents) -> u64 {
    extents.as_slice().first().map_or(0, |e| e.1)
}

fn lo32(v: u64) -> u32 {
    u32::try_from(v & 0xFFFF_FFFF).unwrap_or(0)
}

fn hi32(v: u64) -> u32 {
    u32::try_from(v >> 32).unwrap_or(u32::MAX)
}

fn lo16(v: u64) -> u16 {
    u16::try_from(v & 0xFFFF).unwrap_or(0)
}

fn hi16(v: u64) -> u16 {
    u16::try_from((v >> 16) & 0xFFFF).unwrap_or(0)
}

/// Sets bits `from..to` of a bitmap (bit 0 is the low bit of byte 0).
fn set_bits(bitmap: &mut [u8], from: u64, to: u64) {
    let (mut i, to) = (from, to.min(bitmap.len() as u64 * 8));
    while i < to {
        let byte = usize::try_from(i / 8).unwrap_or(0);
        if i % 8 == 0 && i + 8 <= to {
            bitmap[byte] = 0xFF;
            i += 8;
        } else {
            bitmap[byte] |= 1 << (i % 8);
            i += 1;
        }
    }
}

fn count_bits(bitmap: &[u8]) -> u64 {
    bitmap.iter().map(|b| u64::from(b.count_ones())).sum()
}
