//! An independent EROFS reader for the tests, written from erofs_fs.h: it turns an image back into a [`Tree`]
//! (xattrs, hard links and all) and checks what the kernel relies on (names sorted, `.` and `..` right, dirent
//! types matching inodes). It is itself checked against images mkfs.erofs writes.

use std::collections::BTreeMap;

use clay_tree::{Content, Inode, Kind, Metadata, Tree};

const BLOCK: usize = 4096;
const S_IFMT: u32 = 0o170000;
const S_IFSOCK: u32 = 0o140000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;
const S_IFBLK: u32 = 0o060000;
const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;
const S_IFIFO: u32 = 0o010000;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// What the reader learnt about one inode besides the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub nid: u64,
    pub nlink: u32,
    pub extended: bool,
    pub layout: u16,
}

struct Raw {
    mode: u16,
    meta: Metadata,
    size: u64,
    nlink: u32,
    u: u32,
    info: Info,
    data: Vec<u8>,
}

pub struct Reader<'a> {
    img: &'a [u8],
    meta_start: usize,
    xattr_start: usize,
    build_time: i64,
    root_nid: u64,
}

impl<'a> Reader<'a> {
    pub fn new(img: &'a [u8]) -> Self {
        let sb = &img[1024..1024 + 128];
        assert_eq!(u32_at(sb, 0), 0xE0F5_E1E2, "magic");
        assert_eq!(sb[12], 12, "block size bits");
        assert_eq!(img.len() % BLOCK, 0, "image is whole blocks");
        assert_eq!(u32_at(sb, 36) as usize * BLOCK, img.len(), "superblock block count");
        Reader {
            img,
            meta_start: u32_at(sb, 40) as usize * BLOCK,
            xattr_start: u32_at(sb, 44) as usize * BLOCK,
            build_time: u64_at(sb, 24) as i64,
            root_nid: u64::from(u16_at(sb, 14)),
        }
    }

    fn xattr_entry(&self, at: usize, out: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> usize {
        let b = self.img;
        let (name_len, index, value_size) = (b[at] as usize, b[at + 1], u16_at(b, at + 2) as usize);
        let prefix: &[u8] = match index {
            1 => b"user.",
            2 => b"system.posix_acl_access",
            3 => b"system.posix_acl_default",
            4 => b"trusted.",
            5 => b"lustre.",
            6 => b"security.",
            i => panic!("unknown xattr index {i}"),
        };
        let mut name = prefix.to_vec();
        name.extend_from_slice(&b[at + 4..at + 4 + name_len]);
        let value = b[at + 4 + name_len..at + 4 + name_len + value_size].to_vec();
        assert!(out.insert(name, value).is_none(), "duplicate xattr");
        (4 + name_len + value_size).next_multiple_of(4)
    }

    fn inode(&self, nid: u64) -> Raw {
        let b = self.img;
        let at = self.meta_start + nid as usize * 32;
        let format = u16_at(b, at);
        let extended = format & 1 == 1;
        let layout = (format >> 1) & 7;
        let icount = u16_at(b, at + 2) as usize;
        let mode = u16_at(b, at + 4);
        let (isize, size, u, uid, gid, mtime, nlink) = if extended {
            (
                64,
                u64_at(b, at + 8),
                u32_at(b, at + 16),
                u32_at(b, at + 24),
                u32_at(b, at + 28),
                u64_at(b, at + 32) as i64,
                u32_at(b, at + 44),
            )
        } else {
            let (uid, gid) = (u32::from(u16_at(b, at + 24)), u32::from(u16_at(b, at + 26)));
            (
                32,
                u64::from(u32_at(b, at + 8)),
                u32_at(b, at + 16),
                uid,
                gid,
                self.build_time,
                u32::from(u16_at(b, at + 6)),
            )
        };
        let mut xattrs = BTreeMap::new();
        let xsize = if icount == 0 { 0 } else { 12 + 4 * (icount - 1) };
        if xsize > 0 {
            let h = at + isize;
            let shared = b[h + 4] as usize;
            for i in 0..shared {
                let id = u32_at(b, h + 12 + 4 * i) as usize;
                self.xattr_entry(self.xattr_start + id * 4, &mut xattrs);
            }
            let mut p = h + 12 + 4 * shared;
            while p < h + xsize {
                p += self.xattr_entry(p, &mut xattrs);
            }
            assert_eq!(p, h + xsize, "xattrs end where i_xattr_icount says");
        }
        let is_data = matches!(u32::from(mode) & S_IFMT, S_IFREG | S_IFDIR | S_IFLNK);
        let data = if !is_data {
            assert_eq!(size, 0);
            Vec::new()
        } else {
            let size = size as usize;
            let (blocks_len, tail_len) = match layout {
                0 => (size, 0),
                2 => {
                    let last = size.div_ceil(BLOCK).saturating_sub(1) * BLOCK;
                    (last, size - last)
                }
                l => panic!("unexpected data layout {l}"),
            };
            let mut data = if blocks_len == 0 { Vec::new() } else { b[u as usize * BLOCK..][..blocks_len].to_vec() };
            let tail_at = at + isize + xsize;
            assert!(tail_len == 0 || tail_at % BLOCK + tail_len <= BLOCK, "inline data crosses a block at nid {nid}");
            data.extend_from_slice(&b[tail_at..tail_at + tail_len]);
            data
        };
        let meta = Metadata { mode: u32::from(mode) & 0o7777, uid, gid, mtime, xattrs };
        Raw { mode, meta, size, nlink, u, info: Info { nid, nlink, extended, layout }, data }
    }

    /// The directory's entries in on-disk order: name, nid, file type.
    fn entries(&self, data: &[u8]) -> Vec<(Vec<u8>, u64, u8)> {
        let mut out = Vec::new();
        for chunk in data.chunks(BLOCK) {
            let count = u16_at(chunk, 8) as usize / 12;
            for i in 0..count {
                let d = i * 12;
                let start = u16_at(chunk, d + 8) as usize;
                let end = if i + 1 < count {
                    u16_at(chunk, d + 12 + 8) as usize
                } else {
                    start + chunk[start..].iter().position(|&c| c == 0).unwrap_or(chunk.len() - start)
                };
                out.push((chunk[start..end].to_vec(), u64_at(chunk, d), chunk[d + 10]));
            }
        }
        out
    }

    /// The image as a tree, with what it said about each path.
    pub fn read(&self) -> (Tree, BTreeMap<String, Info>) {
        let root = self.inode(self.root_nid);
        let mut tree = Tree::new(root.meta.clone());
        let mut infos = BTreeMap::from([(".".to_owned(), root.info.clone())]);
        let mut first: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut stack = vec![(Vec::new(), self.root_nid, self.root_nid, root)];
        while let Some((path, nid, parent, dir)) = stack.pop() {
            assert_eq!(dir.size as usize, dir.data.len());
            let entries = self.entries(&dir.data);
            assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "names of `{path:?}` are not sorted bytewise");
            let mut subdirs = 0;
            for (name, child_nid, ft) in entries {
                if name == b"." || name == b".." {
                    assert_eq!((child_nid, ft), (if name == b"." { nid } else { parent }, 2), "`.`/`..` of {path:?}");
                    continue;
                }
                let mut child_path = path.clone();
                if !child_path.is_empty() {
                    child_path.push(b'/');
                }
                child_path.extend_from_slice(&name);
                let dirs = Metadata::root_owned(0o755, 0);
                let raw = self.inode(child_nid);
                let ty = u32::from(raw.mode) & S_IFMT;
                let want_ft = match ty {
                    S_IFREG => 1,
                    S_IFDIR => 2,
                    S_IFCHR => 3,
                    S_IFBLK => 4,
                    S_IFIFO => 5,
                    S_IFSOCK => 6,
                    S_IFLNK => 7,
                    _ => panic!("bad mode {:o}", raw.mode),
                };
                assert_eq!(ft, want_ft, "dirent type of {child_path:?}");
                infos.insert(String::from_utf8_lossy(&child_path).into_owned(), raw.info.clone());
                if let Some(target) = first.get(&child_nid) {
                    tree.link(&child_path, target, &dirs).unwrap();
                    continue;
                }
                let dev = || (((raw.u & 0xfff00) >> 8), ((raw.u & 0xff) | ((raw.u >> 12) & 0xfff00)));
                let kind = match ty {
                    S_IFREG => Kind::File(Content::from_bytes(raw.data.clone())),
                    S_IFDIR => Kind::Directory(BTreeMap::new()),
                    S_IFLNK => Kind::Symlink(raw.data.clone()),
                    S_IFCHR => Kind::CharDevice { major: dev().0, minor: dev().1 },
                    S_IFBLK => Kind::BlockDevice { major: dev().0, minor: dev().1 },
                    S_IFIFO => Kind::Fifo,
                    _ => panic!("unsupported type"),
                };
                tree.insert(&child_path, Inode { meta: raw.meta.clone(), kind }, &dirs).unwrap();
                if ty == S_IFDIR {
                    subdirs += 1;
                    stack.push((child_path, child_nid, nid, raw));
                } else {
                    first.insert(child_nid, child_path);
                }
            }
            assert_eq!(dir.nlink, 2 + subdirs, "link count of directory {path:?}");
        }
        (tree, infos)
    }
}
