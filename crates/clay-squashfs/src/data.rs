//! File data: every regular file's full blocks, then its tail packed into a shared fragment block
//! (squashfs.rst, "Data and fragment blocks"). Blocks are compressed on worker threads and written in the order
//! they were read, so a file's blocks stay contiguous and the output does not depend on the thread count.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use clay_tree::{lossy, Content, Entry, ExactReader, InodeId, Kind, Tree};

use crate::ahead::AheadBlocks;
use crate::compress::BlockCompressor;
use crate::ondisk::DATA_UNCOMPRESSED;
use crate::{Options, SquashfsError};

/// Where one file's data went.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileData {
    /// Absolute offset of the first full block (0 when there is none).
    pub start: u64,
    /// Size words of the full blocks: compressed length, `DATA_UNCOMPRESSED` when stored, 0 for a hole.
    pub blocks: Vec<u32>,
    /// Fragment index and offset inside the fragment of the tail.
    pub fragment: Option<(u32, u32)>,
    /// Number of holes (all-zero full blocks, not stored).
    pub holes: u64,
}

/// Everything the data section produced.
#[derive(Debug, Default)]
pub(crate) struct DataSection {
    pub files: BTreeMap<InodeId, FileData>,
    /// Absolute offset and size word of each fragment block.
    pub fragments: Vec<(u64, u32)>,
    /// Absolute offset just past the data.
    pub end: u64,
    pub content_bytes: u64,
}

#[derive(Clone, Copy)]
enum Tag {
    File(usize),
    Fragment,
}

struct Job {
    seq: u64,
    tag: Tag,
    data: Vec<u8>,
}

pub(crate) enum Packed {
    Hole,
    Stored(Vec<u8>),
    Compressed(Vec<u8>),
}

impl Packed {
    /// A full block of a file as the image stores it: a hole when it is all zeros, else compressed when that
    /// makes it smaller, else as it is. Workers and [`crate::Precompressor`] both come here, so a block packed
    /// ahead of time is the same bytes as one packed while writing.
    pub(crate) fn file_block(comp: &mut BlockCompressor, data: Vec<u8>) -> io::Result<Packed> {
        if data.iter().all(|b| *b == 0) {
            return Ok(Packed::Hole);
        }
        Packed::compressed(comp, data)
    }

    fn compressed(comp: &mut BlockCompressor, data: Vec<u8>) -> io::Result<Packed> {
        Ok(match comp.compress(&data)? {
            Some(c) => Packed::Compressed(c),
            None => Packed::Stored(data),
        })
    }

    /// The bytes this block keeps in memory.
    pub(crate) fn held(&self) -> usize {
        match self {
            Packed::Hole => 0,
            Packed::Stored(b) | Packed::Compressed(b) => b.len(),
        }
    }
}

type Done = (u64, Tag, io::Result<Packed>);

/// Writes the data of every regular file in `entries` (once per inode, in path order) to `out`, which is at
/// absolute offset `at`. Blocks found in `ahead` are taken from there instead of being read and compressed.
pub(crate) fn write_data(
    tree: &Tree,
    entries: &[Entry],
    opts: &Options,
    block_log: u16,
    ahead: Option<&mut AheadBlocks>,
    out: &mut dyn Write,
    at: u64,
) -> Result<DataSection, SquashfsError> {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => usize::try_from(n).unwrap_or(1),
    };
    // Check the settings once here so the workers cannot fail on them.
    BlockCompressor::new(opts.compression, block_log).map_err(SquashfsError::Compress)?;
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads * 2);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let rx = Arc::clone(&job_rx);
            let tx = done_tx.clone();
            let compression = opts.compression;
            scope.spawn(move || worker(compression, block_log, &rx, &tx));
        }
        drop(done_tx);
        let mut sink = Sink {
            out,
            pos: at,
            next: 0,
            submitted: 0,
            waiting: BTreeMap::new(),
            limit: (threads * 4) as u64,
            files: Vec::new(),
            fragments: Vec::new(),
            done: done_rx,
        };
        let result = produce(tree, entries, block_log, ahead, &job_tx, &mut sink);
        // Closing the queue lets the workers finish; then every outstanding block is written.
        drop(job_tx);
        let content_bytes = result?;
        sink.drain_all()?;
        let Sink { pos, files, fragments, .. } = sink;
        Ok(DataSection { files: files.into_iter().collect(), fragments, end: pos, content_bytes })
    })
}

fn worker(
    compression: crate::Compression,
    block_log: u16,
    jobs: &Mutex<mpsc::Receiver<Job>>,
    done: &mpsc::Sender<Done>,
) {
    let mut comp = match BlockCompressor::new(compression, block_log) {
        Ok(c) => c,
        Err(_) => return,
    };
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let packed = match job.tag {
            Tag::File(_) => Packed::file_block(&mut comp, job.data),
            Tag::Fragment => Packed::compressed(&mut comp, job.data),
        };
        if done.send((job.seq, job.tag, packed)).is_err() {
            return;
        }
    }
}

/// Reads every file and queues its blocks; returns the number of content bytes read.
fn produce(
    tree: &Tree,
    entries: &[Entry],
    block_log: u16,
    mut ahead: Option<&mut AheadBlocks>,
    jobs: &mpsc::SyncSender<Job>,
    sink: &mut Sink<'_>,
) -> Result<u64, SquashfsError> {
    let block_size = 1usize << block_log;
    let mut fragment: Vec<u8> = Vec::with_capacity(block_size);
    let mut fragment_count = 0usize;
    let mut total = 0u64;
    let mut seen = std::collections::BTreeSet::new();
    for e in entries {
        let Kind::File(content) = &tree.inode(e.inode).kind else { continue };
        if !seen.insert(e.inode) {
            continue;
        }
        let index = sink.files.len();
        sink.files.push((e.inode, FileData::default()));
        let name = lossy(&e.path);
        let len = content.len();
        total += len;
        let mut reader = match content {
            Content::Range { file, offset, .. } => Blocks::At { file, pos: *offset },
            other => Blocks::Stream(other.reader(&name)?),
        };
        let mut left = len;
        while left >= block_size as u64 {
            left -= block_size as u64;
            // A block packed ahead of time is the one at the same offset of the same open file: the same bytes.
            if let (Some(ahead), Blocks::At { file, pos }) = (ahead.as_deref_mut(), &mut reader) {
                if let Some(packed) = ahead.take(file, *pos) {
                    *pos += block_size as u64;
                    sink.submit_packed(Tag::File(index), packed)?;
                    continue;
                }
            }
            let mut buf = vec![0u8; block_size];
            reader.read(&mut buf, &name)?;
            sink.submit(jobs, Tag::File(index), buf)?;
        }
        // `left` is below the block size here.
        let tail = usize::try_from(left).unwrap_or(block_size);
        if tail > 0 {
            if fragment.len() + tail > block_size {
                let full = std::mem::replace(&mut fragment, Vec::with_capacity(block_size));
                sink.submit(jobs, Tag::Fragment, full)?;
                fragment_count += 1;
            }
            let offset = fragment.len();
            fragment.resize(offset + tail, 0);
            reader.read(&mut fragment[offset..], &name)?;
            let index_u32 = u32::try_from(fragment_count).map_err(|_| SquashfsError::TooLarge("fragment table"))?;
            let offset_u32 = u32::try_from(offset).map_err(|_| SquashfsError::TooLarge("fragment"))?;
            sink.files[index].1.fragment = Some((index_u32, offset_u32));
        }
    }
    if !fragment.is_empty() {
        sink.submit(jobs, Tag::Fragment, fragment)?;
    }
    Ok(total)
}

/// A file's content read in order: streamed, or, for a byte range of an open file, by position, so that blocks
/// taken from [`AheadBlocks`] are never read at all.
enum Blocks<'a> {
    Stream(ExactReader<'a>),
    At { file: &'a Arc<File>, pos: u64 },
}

impl Blocks<'_> {
    fn read(&mut self, buf: &mut [u8], name: &str) -> Result<(), SquashfsError> {
        let read = match self {
            Blocks::Stream(reader) => reader.read_exact(buf),
            Blocks::At { file, pos } => file.read_exact_at(buf, *pos).map(|()| *pos += buf.len() as u64),
        };
        read.map_err(|source| SquashfsError::Read { path: name.to_owned(), source })
    }
}

/// Writes finished blocks in submission order and records where they went.
struct Sink<'a> {
    out: &'a mut dyn Write,
    pos: u64,
    next: u64,
    submitted: u64,
    waiting: BTreeMap<u64, (Tag, Packed)>,
    /// Blocks in flight (queued, compressing or waiting to be written) before reading more waits.
    limit: u64,
    files: Vec<(InodeId, FileData)>,
    fragments: Vec<(u64, u32)>,
    done: mpsc::Receiver<Done>,
}

impl Sink<'_> {
    fn submit(&mut self, jobs: &mpsc::SyncSender<Job>, tag: Tag, data: Vec<u8>) -> Result<(), SquashfsError> {
        let seq = self.submitted;
        self.submitted += 1;
        jobs.send(Job { seq, tag, data }).map_err(|_| SquashfsError::Compress(io::Error::other("workers stopped")))?;
        while let Ok(done) = self.done.try_recv() {
            self.accept(done)?;
        }
        while self.submitted - self.next > self.limit {
            self.wait_one()?;
        }
        Ok(())
    }

    /// Queues a block packed ahead of time, in order with the others.
    fn submit_packed(&mut self, tag: Tag, packed: Packed) -> Result<(), SquashfsError> {
        let seq = self.submitted;
        self.submitted += 1;
        self.waiting.insert(seq, (tag, packed));
        self.write_ready()
    }

    fn drain_all(&mut self) -> Result<(), SquashfsError> {
        while self.next < self.submitted {
            self.wait_one()?;
        }
        Ok(())
    }

    fn wait_one(&mut self) -> Result<(), SquashfsError> {
        let done =
            self.done.recv().map_err(|_| SquashfsError::Compress(io::Error::other("compression workers stopped")))?;
        self.accept(done)
    }

    fn accept(&mut self, (seq, tag, packed): Done) -> Result<(), SquashfsError> {
        self.waiting.insert(seq, (tag, packed.map_err(SquashfsError::Compress)?));
        self.write_ready()
    }

    /// Writes every block whose turn has come.
    fn write_ready(&mut self) -> Result<(), SquashfsError> {
        while let Some((tag, packed)) = self.waiting.remove(&self.next) {
            self.next += 1;
            self.write(tag, packed)?;
        }
        Ok(())
    }

    fn write(&mut self, tag: Tag, packed: Packed) -> Result<(), SquashfsError> {
        let start = self.pos;
        let word = match &packed {
            Packed::Hole => 0,
            Packed::Stored(b) => size_word(b.len())? | DATA_UNCOMPRESSED,
            Packed::Compressed(b) => size_word(b.len())?,
        };
        if let Packed::Stored(b) | Packed::Compressed(b) = &packed {
            self.out.write_all(b).map_err(SquashfsError::Write)?;
            self.pos += b.len() as u64;
        }
        match tag {
            Tag::File(i) => {
                let Some((_, file)) = self.files.get_mut(i) else { return Ok(()) };
                if file.blocks.is_empty() {
                    file.start = start;
                }
                if word == 0 {
                    file.holes += 1;
                }
                file.blocks.push(word);
            }
            Tag::Fragment => self.fragments.push((start, word)),
        }
        Ok(())
    }
}

fn size_word(len: usize) -> Result<u32, SquashfsError> {
    u32::try_from(len).ok().filter(|n| *n < DATA_UNCOMPRESSED).ok_or(SquashfsError::TooLarge("data block"))
}
