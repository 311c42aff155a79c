//! Layer digests checked on background threads while the image is merged and built.
//!
//! A layer's stored bytes must match the digest its manifest gives, and its uncompressed tar the config's
//! `diff_id`. Hashing them is as long as inflating the layer, so it runs beside everything else, on one thread
//! at the lowest priority, and is awaited before anything is trusted: [`read_layout`](crate::read_layout) and
//! its siblings wait before they return, unless [`ReadOptions::defer_checks`](crate::ReadOptions) asks them to
//! hand the [`Checks`] to a caller that waits before committing its outputs (as containerd and podman verify a
//! layer while they unpack it and discard the unpack when it does not match).
//!
//! Whatever fails while unverified bytes are read, a digest that does not match is the error to report: it
//! explains the other one.

use std::io;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use crate::store::{read_up_to, Blob};
use crate::OciError;
use clay_digest::{Digest, Hasher};

/// What one hash must come to, and how a mismatch is named.
#[derive(Debug)]
struct Expected {
    digest: Digest,
    image: String,
    /// `layer` (the stored bytes) or `uncompressed layer` (the tar).
    what: &'static str,
    /// The layer as messages name it.
    label: String,
}

/// The digest checks of an image's layers, running on one low-priority thread that hashes the blobs in the order
/// they were queued (one thread and one buffer however many layers there are). Dropping them without
/// [`wait`](Self::wait) checks nothing.
#[derive(Debug, Default)]
#[must_use = "an image's digests are only checked when its checks are awaited"]
pub struct Checks {
    queue: Option<Sender<(Blob, Hasher)>>,
    worker: Option<JoinHandle<Vec<io::Result<Digest>>>>,
    expected: Vec<Expected>,
}

impl Checks {
    /// Queues `blob` to be hashed and compared with `expected`; the thread starts with the first one.
    pub(crate) fn push(&mut self, blob: &Blob, expected: &Digest, image: &str, what: &'static str, label: String) {
        let queue = self.queue.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<(Blob, Hasher)>();
            self.worker = Some(std::thread::spawn(move || {
                lower_priority();
                let mut buf = vec![0u8; 1 << 20];
                rx.into_iter().map(|(blob, hasher)| hash(&blob, hasher, &mut buf)).collect()
            }));
            tx
        });
        // A send fails only when the thread is gone (it panicked); waiting then reports that.
        let _ = queue.send((blob.clone(), expected.hasher()));
        self.expected.push(Expected { digest: expected.clone(), image: image.to_owned(), what, label });
    }

    /// Waits for every check; the first that fails (in layer order) is the error.
    pub fn wait(mut self) -> Result<(), OciError> {
        drop(self.queue.take());
        let found = match self.worker.take() {
            Some(worker) => worker.join().unwrap_or_default(),
            None => Vec::new(),
        };
        let mut found = found.into_iter();
        for expected in self.expected {
            let hashed = found.next().unwrap_or_else(|| Err(io::Error::other("the digest-checking thread panicked")));
            expected.compare(hashed)?;
        }
        Ok(())
    }

    /// `err` arose while these checks were running: a digest that does not match is reported in its place.
    pub(crate) fn explain(self, err: OciError) -> OciError {
        match self.wait() {
            Err(mismatch) => mismatch,
            Ok(()) => err,
        }
    }

    /// Whether nothing is left to check.
    pub fn is_empty(&self) -> bool {
        self.expected.is_empty()
    }
}

impl Expected {
    fn compare(self, hashed: io::Result<Digest>) -> Result<(), OciError> {
        let Expected { digest, image, what, label } = self;
        let found = hashed
            .map_err(|source| OciError::Decompress { what: format!("layer `{label}` of image `{image}`"), source })?;
        if found == digest {
            return Ok(());
        }
        Err(OciError::DigestMismatch { image, what: what.to_owned(), digest: label, found: found.to_string() })
    }
}

fn hash(blob: &Blob, mut hasher: Hasher, buf: &mut [u8]) -> io::Result<Digest> {
    let mut reader = blob.section();
    loop {
        match read_up_to(&mut reader, buf)? {
            0 => return Ok(hasher.finish()),
            n => hasher.update(&buf[..n]),
        }
    }
}

/// Nice 19 for the calling thread (Linux applies `PRIO_PROCESS` to a thread ID): checks take the time nothing
/// else wants, and are waited for at the end. Failing only costs speed.
fn lower_priority() {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
}
