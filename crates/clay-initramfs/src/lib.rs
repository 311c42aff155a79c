//! Lays out a tree as the kernel's initramfs: early microcode first and uncompressed, then the whole root
//! filesystem as one compressed cpio archive with `clay-init` as `/init`.
//!
//! The kernel unpacks concatenated archives in order (Documentation/driver-api/early-userspace/buffer-format.rst)
//! and its early microcode loader only looks at an uncompressed archive at the very start
//! (Documentation/arch/x86/microcode.rst). Entries are sorted bytewise by path, inode numbers are renumbered in
//! that order and times are clamped to `SOURCE_DATE_EPOCH`, so equal inputs give equal bytes.
//!
//! An uncompressed initramfs written with [`write_to_file`] is not copied whole: the data of its large files (the
//! squashfs image of a compressed root, ~100 MiB) stays where it already is, and the initramfs is handed out as the
//! pieces written around it with that data in between ([`Content::Concat`]). Whoever writes the UKI then copies it
//! once, instead of once into the initramfs and again into the UKI.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use clay_compress::{Compression, Encoder};
use clay_cpio::{CpioError, Header, NEWC_MAGIC};
use clay_manifest::XattrRecord;
use clay_tree::{lossy, Content, ContentError, Inode, InodeId, Kind, Metadata, Tree};

/// Where the init goes: the kernel runs `/init` from an initramfs (`rdinit=` default, init/main.c).
pub const INIT_PATH: &str = "init";
/// The console device the kernel opens for `/init` (init/main.c `console_on_rootfs`); character device 5:1.
const CONSOLE_PATH: &str = "dev/console";
const CONSOLE_MAJOR: u32 = 5;
const CONSOLE_MINOR: u32 = 1;
/// "070702": newc with checksums, as some microcode archives are written.
const CRC_MAGIC: &[u8; 6] = b"070702";

/// How to lay out the initramfs.
#[derive(Debug, Clone)]
pub struct Options {
    pub compression: Compression,
    /// Compression threads; output does not depend on it.
    pub threads: u32,
    /// `SOURCE_DATE_EPOCH`: later modification times are clamped to it.
    pub clamp_mtime: Option<i64>,
    /// The init program placed at `/init`.
    pub init: Content,
    /// Tree paths left out (besides the contents of `/boot`), e.g. the kernel when it lives in `/usr/lib/modules`.
    pub exclude: Vec<Vec<u8>>,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    /// Size of the root filesystem's cpio archive before compression.
    pub archive_bytes: u64,
    pub microcode_bytes: u64,
    /// Everything written: microcode plus the compressed archive.
    pub total_bytes: u64,
    /// Files carrying extended attributes, restored by `clay-init` at boot.
    pub xattr_files: u64,
    /// Lines worth showing the user (an image `/init` replaced, ...).
    pub notes: Vec<String>,
}

/// Why the initramfs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("microcode image `{0}` is not an uncompressed cpio archive; the kernel's early loader could not read it")]
    BadMicrocode(String),
    #[error(transparent)]
    Cpio(#[from] CpioError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Tree(#[from] clay_tree::TreeError),
    #[error(transparent)]
    Path(#[from] clay_tree::PathError),
    #[error("cannot write the initramfs: {0}")]
    Io(#[from] io::Error),
}

/// The smallest file whose data an uncompressed archive from [`write_to_file`] takes by reference.
const BY_REFERENCE_MIN: u64 = 1 << 20;

/// Writes the initramfs for `tree` to `out`: the `microcode` archives verbatim, then the compressed root.
pub fn write<W: Write + Send>(
    tree: &Tree,
    microcode: &[(String, Content)],
    opts: &Options,
    out: W,
) -> Result<Stats, InitramfsError> {
    write_into(tree, microcode, opts, &mut Counting { inner: out, count: 0 })
}

/// Writes the initramfs for `tree` into `file` (from its start) and returns it as content, with the same bytes
/// [`write`] gives. Compressed, that is `file`'s range. Uncompressed, the data of files of 1 MiB and more stays in
/// the files it is in already, and `file` holds only what goes around it (see the crate documentation).
pub fn write_to_file(
    tree: &Tree,
    microcode: &[(String, Content)],
    opts: &Options,
    file: File,
) -> Result<(Content, Stats), InitramfsError> {
    if opts.compression != Compression::None {
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        let stats = write(tree, microcode, opts, &mut out)?;
        out.flush()?;
        drop(out);
        return Ok((Content::Range { file: Arc::new(file), offset: 0, len: stats.total_bytes }, stats));
    }
    let mut out = Pieces::new(file)?;
    let stats = write_into(tree, microcode, opts, &mut out)?;
    Ok((out.finish()?, stats))
}

/// [`write`], into a sink that may take large files' data by reference when the archive is uncompressed.
fn write_into<S: Sink + Counted + Send>(
    tree: &Tree,
    microcode: &[(String, Content)],
    opts: &Options,
    out: &mut S,
) -> Result<Stats, InitramfsError> {
    let mut stats = Stats::default();
    write_microcode(microcode, out)?;
    stats.microcode_bytes = out.count();
    let prepared = prepare(tree, opts, &mut stats)?;
    if opts.compression == Compression::None {
        // Straight into the sink, which sees each file's content.
        archive(&prepared, opts, &mut *out, &mut stats)?.flush()?;
    } else {
        let encoder = clay_compress::encoder(opts.compression, &mut *out, opts.threads)?;
        archive(&prepared, opts, encoder, &mut stats)?.finish()?;
    }
    stats.total_bytes = out.count();
    Ok(stats)
}

/// The root's cpio archive, written into `out`, which it returns.
fn archive<W: Sink>(tree: &Tree, opts: &Options, out: W, stats: &mut Stats) -> Result<W, InitramfsError> {
    let mut cpio = clay_cpio::Writer::new(out);
    write_archive(tree, opts, &mut cpio, stats)?;
    stats.archive_bytes = cpio.offset();
    Ok(cpio.finish()?)
}

/// The `microcode` archives verbatim, each padded to four bytes.
fn write_microcode(microcode: &[(String, Content)], out: &mut dyn Write) -> Result<(), InitramfsError> {
    for (name, content) in microcode {
        let bytes = content.read_all(name)?;
        if !(bytes.starts_with(NEWC_MAGIC) || bytes.starts_with(CRC_MAGIC)) {
            return Err(InitramfsError::BadMicrocode(name.clone()));
        }
        out.write_all(&bytes)?;
        // The next archive must start 4-byte aligned; the kernel skips the zero padding between archives.
        let pad = (4 - bytes.len() % 4) % 4;
        out.write_all(&[0u8; 3][..pad])?;
    }
    Ok(())
}

/// Where an archive goes: bytes, and for an uncompressed one from [`write_to_file`], file data by reference.
trait Sink: Write {
    /// Whether `content` is taken by reference instead of written.
    fn by_reference(&self, _content: &Content) -> bool {
        false
    }

    /// Takes `content` by reference, in place of its bytes.
    fn take(&mut self, _content: &Content) {}
}

/// An output that knows how many bytes it holds, those taken by reference included.
trait Counted {
    fn count(&self) -> u64;
}

impl<W: Write> Sink for Counting<W> {}

impl<W> Counted for Counting<W> {
    fn count(&self) -> u64 {
        self.count
    }
}

impl Sink for Box<dyn Encoder + '_> {}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn by_reference(&self, content: &Content) -> bool {
        (**self).by_reference(content)
    }

    fn take(&mut self, content: &Content) {
        (**self).take(content);
    }
}

/// An uncompressed initramfs being assembled: written bytes go to a file, large file data is kept by reference.
struct Pieces {
    out: BufWriter<File>,
    /// The file `out` writes, as the written parts refer to it.
    file: Arc<File>,
    /// Bytes written to `file`.
    written: u64,
    /// Bytes taken by reference.
    taken: u64,
    /// Where the written bytes not yet in `parts` start.
    run_start: u64,
    parts: Vec<Content>,
}

impl Pieces {
    fn new(file: File) -> io::Result<Self> {
        let out = BufWriter::with_capacity(1 << 20, file.try_clone()?);
        Ok(Pieces { out, file: Arc::new(file), written: 0, taken: 0, run_start: 0, parts: Vec::new() })
    }

    /// Ends the written run so far as one part.
    fn close_run(&mut self) {
        if self.written > self.run_start {
            let (offset, len) = (self.run_start, self.written - self.run_start);
            self.parts.push(Content::Range { file: Arc::clone(&self.file), offset, len });
            self.run_start = self.written;
        }
    }

    fn finish(mut self) -> io::Result<Content> {
        self.out.flush()?;
        self.close_run();
        Ok(Content::concat(self.parts))
    }
}

impl Write for Pieces {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Counted for Pieces {
    fn count(&self) -> u64 {
        self.written + self.taken
    }
}

impl Sink for Pieces {
    fn by_reference(&self, content: &Content) -> bool {
        matches!(content, Content::Range { .. } | Content::Host { .. }) && content.len() >= BY_REFERENCE_MIN
    }

    fn take(&mut self, content: &Content) {
        self.close_run();
        self.parts.push(content.clone());
        self.taken += content.len();
    }
}

/// A copy of the tree as it will boot: `/boot` emptied, `/init`, `/dev/console` and the xattr manifest added.
fn prepare(tree: &Tree, opts: &Options, stats: &mut Stats) -> Result<Tree, InitramfsError> {
    let mut t = tree.clone();
    let mtime = opts.clamp_mtime.unwrap_or(0);
    let dir_meta = Metadata::root_owned(0o755, mtime);
    if let Some(boot) = t.lookup(b"boot").ok().flatten() {
        let names: Vec<Vec<u8>> = t.children(boot).map(|(n, _)| n.to_vec()).collect();
        for name in names {
            t.remove(&[b"boot/".as_slice(), &name].concat())?;
        }
    }
    for path in &opts.exclude {
        t.remove(path)?;
    }
    if t.lookup(INIT_PATH.as_bytes())?.is_some() {
        stats.notes.push("the image's own /init is replaced by clay-init, which starts /sbin/init".into());
    }
    let init = Inode { meta: Metadata::root_owned(0o755, mtime), kind: Kind::File(opts.init.clone()) };
    t.insert(INIT_PATH.as_bytes(), init, &dir_meta)?;
    if t.lookup(CONSOLE_PATH.as_bytes())?.is_none() {
        let console = Inode {
            meta: Metadata::root_owned(0o600, mtime),
            kind: Kind::CharDevice { major: CONSOLE_MAJOR, minor: CONSOLE_MINOR },
        };
        t.insert(CONSOLE_PATH.as_bytes(), console, &dir_meta)?;
    }
    let records = xattr_records(&t);
    if !records.is_empty() {
        stats.xattr_files = records.iter().map(|r| &r.path).collect::<std::collections::BTreeSet<_>>().len() as u64;
        let manifest = Inode {
            meta: Metadata::root_owned(0o600, mtime),
            kind: Kind::File(Content::from_bytes(clay_manifest::encode(&records))),
        };
        t.insert(clay_manifest::XATTR_MANIFEST_PATH.as_bytes(), manifest, &Metadata::root_owned(0o700, mtime))?;
    }
    Ok(t)
}

/// Extended attributes of every inode, once per inode (under its first name): newc cannot carry them, so
/// `clay-init` sets them at boot from this list.
fn xattr_records(tree: &Tree) -> Vec<XattrRecord> {
    let mut seen = std::collections::BTreeSet::new();
    let mut records = Vec::new();
    for e in tree.walk() {
        let inode = tree.inode(e.inode);
        if inode.meta.xattrs.is_empty() || !seen.insert(e.inode) {
            continue;
        }
        for (name, value) in &inode.meta.xattrs {
            records.push(XattrRecord { path: e.path.clone(), name: name.clone(), value: value.clone() });
        }
    }
    records
}

fn write_archive<W: Sink>(
    tree: &Tree,
    opts: &Options,
    cpio: &mut clay_cpio::Writer<W>,
    stats: &mut Stats,
) -> Result<(), InitramfsError> {
    let entries = tree.walk();
    let nlinks = tree.link_counts(&entries);
    // newc convention (GNU cpio, honoured by the kernel's maybe_link): a hard-linked file's data goes with its
    // last name; earlier names are written empty.
    let mut last_name: BTreeMap<InodeId, usize> = BTreeMap::new();
    let mut inos: BTreeMap<InodeId, u32> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        last_name.insert(e.inode, i);
        let next = u32::try_from(inos.len() + 1).unwrap_or(u32::MAX);
        inos.entry(e.inode).or_insert(next);
    }
    for (i, e) in entries.iter().enumerate() {
        let inode = tree.inode(e.inode);
        let name = if e.path.is_empty() { b".".to_vec() } else { e.path.clone() };
        let display = lossy(&name);
        let mtime = opts.clamp_mtime.map_or(inode.meta.mtime, |c| inode.meta.mtime.min(c));
        let (size, rdev) = match &inode.kind {
            Kind::File(c) if last_name.get(&e.inode) == Some(&i) => (c.len(), (0, 0)),
            Kind::Symlink(target) => (target.len() as u64, (0, 0)),
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => (0, (*major, *minor)),
            _ => (0, (0, 0)),
        };
        let filesize = u32::try_from(size).map_err(|_| CpioError::TooLarge { name: display.clone(), size })?;
        cpio.entry(&Header {
            name: &name,
            ino: inos.get(&e.inode).copied().unwrap_or(0),
            mode: inode.st_mode(),
            uid: inode.meta.uid,
            gid: inode.meta.gid,
            nlink: nlinks.get(&e.inode).copied().unwrap_or(1),
            mtime: u32::try_from(mtime.max(0)).unwrap_or(u32::MAX),
            filesize,
            rdev_major: rdev.0,
            rdev_minor: rdev.1,
        })?;
        match &inode.kind {
            Kind::File(c) if size > 0 => {
                if cpio.get_ref().by_reference(c) {
                    cpio.data_by_reference(size)?.take(c);
                } else {
                    c.copy_to(&display, &mut cpio.data())?;
                }
            }
            Kind::Symlink(target) => cpio.data().write_all(target)?,
            _ => {}
        }
        stats.entries += 1;
    }
    Ok(())
}

/// Counts bytes on their way to the output.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
