//! Compressing file blocks before the tree is complete.
//!
//! Reading a container image leaves cores idle: one thread inflates a gzip layer while the others wait for it,
//! and only then can the image be written. A [`Precompressor`] uses that idle time. Whoever produces file data
//! (the layer reader) offers it full blocks, each named by the open file and offset the data will be read
//! from, and idle threads compress them. [`write_squashfs_with`](crate::write_squashfs_with) then takes those
//! blocks instead of reading and compressing them again.
//!
//! A block is packed exactly as the writer would pack it, and only ever stands for the same bytes of the same
//! open file, so the image is the same bytes with or without it. Offers are dropped rather than waited for when
//! the threads are busy or the memory budget is spent: the producer never slows down.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::compress::BlockCompressor;
use crate::data::Packed;
use crate::{block_log, Compression, Options, SquashfsError};

/// At most this many bytes of packed blocks are held; offers beyond it are dropped.
const BUDGET: usize = 64 << 20;
/// At most this many bytes of offered blocks wait for a thread. A producer hands over a whole decompressed chunk
/// (clay-oci's is 1 MiB, 8 blocks) at once; a queue shorter than that drops most of a chunk, and the threads then
/// sit idle until the next one arrives.
const QUEUED: usize = 4 << 20;

/// Where a block's bytes live: an open file (by identity) and an offset in it.
type Key = (usize, u64);
/// One offered block, on its way to a thread.
type Job = (Key, Vec<u8>);

/// Compresses offered blocks on idle threads. See the module documentation.
#[derive(Debug)]
pub struct Precompressor {
    shared: Arc<Shared>,
    queue: Mutex<Option<SyncSender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Blocks queued or being compressed; offers beyond the queue's length are dropped.
    capacity: usize,
    /// The compressor and block size the blocks are packed for.
    options: (Compression, u32),
}

#[derive(Debug, Default)]
struct Shared {
    blocks: Mutex<HashMap<Key, Packed>>,
    /// Every file a key names, held open so that no other file can take its identity.
    files: Mutex<HashSet<FileKey>>,
    in_flight: AtomicUsize,
    held: AtomicUsize,
}

/// An open file compared by identity.
#[derive(Debug, Clone)]
struct FileKey(Arc<File>);

impl PartialEq for FileKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for FileKey {}
impl std::hash::Hash for FileKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).hash(state);
    }
}

fn key(file: &Arc<File>, offset: u64) -> Key {
    (Arc::as_ptr(file) as usize, offset)
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Packed({} bytes)", self.held())
    }
}

impl Precompressor {
    /// Starts one thread per CPU but one (at least one), at a low scheduling priority so they only take time
    /// nothing else wants, for images written with `opts`.
    pub fn new(opts: &Options) -> Result<Precompressor, SquashfsError> {
        let log = block_log(opts.block_size)?;
        BlockCompressor::new(opts.compression, log).map_err(SquashfsError::Compress)?;
        let threads = std::thread::available_parallelism().map_or(1, usize::from).saturating_sub(1).max(1);
        let capacity = (QUEUED >> log).max(threads * 2);
        let (tx, rx) = mpsc::sync_channel(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared::default());
        let workers = (0..threads)
            .map(|_| {
                let (rx, shared, compression) = (Arc::clone(&rx), Arc::clone(&shared), opts.compression);
                std::thread::spawn(move || work(compression, log, &rx, &shared))
            })
            .collect();
        Ok(Precompressor {
            shared,
            queue: Mutex::new(Some(tx)),
            workers: Mutex::new(workers),
            capacity,
            options: (opts.compression, opts.block_size),
        })
    }

    /// The block size offers must have.
    pub fn block_size(&self) -> u64 {
        u64::from(self.options.1)
    }

    /// Offers one full block: `data` is `block_size` bytes of `file` at `offset`, which will not change. Returns
    /// at once, with whether the block was taken; it is not when the threads are busy or the budget is spent.
    pub fn offer(&self, file: &Arc<File>, offset: u64, data: &[u8]) -> bool {
        let shared = &self.shared;
        if data.len() as u64 != self.block_size()
            || shared.held.load(Ordering::Relaxed) >= BUDGET
            || shared.in_flight.load(Ordering::Acquire) >= self.capacity
        {
            return false;
        }
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = queue.as_ref() else { return false };
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        if tx.try_send((key(file, offset), data.to_vec())).is_err() {
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        drop(queue);
        shared.files.lock().unwrap_or_else(PoisonError::into_inner).insert(FileKey(Arc::clone(file)));
        true
    }

    /// Stops the threads (each finishes the block in its hands) and returns what they packed.
    pub fn finish(&self) -> AheadBlocks {
        drop(self.queue.lock().unwrap_or_else(PoisonError::into_inner).take());
        for worker in std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner)) {
            // A worker that panicked packed nothing more; what it packed before is still good.
            let _ = worker.join();
        }
        AheadBlocks {
            options: self.options,
            blocks: std::mem::take(&mut *self.shared.blocks.lock().unwrap_or_else(PoisonError::into_inner)),
            _files: std::mem::take(&mut *self.shared.files.lock().unwrap_or_else(PoisonError::into_inner)),
        }
    }
}

impl Drop for Precompressor {
    fn drop(&mut self) {
        self.finish();
    }
}

fn work(compression: Compression, log: u16, jobs: &Mutex<Receiver<Job>>, shared: &Shared) {
    lower_priority();
    let Ok(mut comp) = BlockCompressor::new(compression, log) else { return };
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((key, data)) = job else { return };
        if let Ok(packed) = Packed::file_block(&mut comp, data) {
            shared.held.fetch_add(packed.held(), Ordering::Relaxed);
            shared.blocks.lock().unwrap_or_else(PoisonError::into_inner).insert(key, packed);
        }
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Nice 15 for the calling thread (Linux applies `PRIO_PROCESS` to a thread ID): well below the work that
/// produces the blocks, a little above work that only has to be done by the end (clay-oci's digest checks, at
/// 19), since a block compressed now is time saved later. Failing only costs speed.
fn lower_priority() {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 15);
}

/// Blocks a [`Precompressor`] packed, for [`write_squashfs_with`](crate::write_squashfs_with).
#[derive(Debug)]
pub struct AheadBlocks {
    options: (Compression, u32),
    blocks: HashMap<Key, Packed>,
    /// Keeps every keyed file open (see [`Shared::files`]).
    _files: HashSet<FileKey>,
}

impl AheadBlocks {
    /// How many blocks are held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Whether these blocks were packed the way `opts` packs them.
    pub(crate) fn fits(&self, opts: &Options) -> bool {
        self.options == (opts.compression, opts.block_size)
    }

    /// The packed block of `file` at `offset`, if there is one; it is handed out once.
    pub(crate) fn take(&mut self, file: &Arc<File>, offset: u64) -> Option<Packed> {
        self.blocks.remove(&key(file, offset))
    }
}
