//! Layer digests checked on background threads while the image is merged and built.
//!
//! A layer's stored bytes must match the digest its manifest gives, and its uncompressed tar the config's
//! `diff_id`. Hashing them is as long as inflating the layer, so it runs beside everything else, at the lowest
//! priority, and is awaited before anything is trusted: [`read_layout`](crate::read_layout) and its siblings
//! wait before they return, unless [`ReadOptions::defer_checks`](crate::ReadOptions) asks them to hand the
//! [`Checks`] to a caller that waits before committing its outputs (as containerd and podman verify a layer
//! while they unpack it and discard the unpack when it does not match).
//!
//! Whatever fails while unverified bytes are read, a digest that does not match is the error to report: it
//! explains the other one.

use std::io;
use std::thread::JoinHandle;

use crate::digest::{Digest, Hasher};
use crate::store::{read_up_to, Blob};
use crate::OciError;

/// One digest being computed, and what it must be.
#[derive(Debug)]
struct Check {
    job: JoinHandle<io::Result<Digest>>,
    expected: Digest,
    image: String,
    /// `layer` (the stored bytes) or `uncompressed layer` (the tar).
    what: &'static str,
    /// The layer as messages name it.
    label: String,
}

/// The digest checks of an image's layers, running. Dropping them without [`wait`](Self::wait) checks nothing.
#[derive(Debug, Default)]
#[must_use = "an image's digests are only checked when its checks are awaited"]
pub struct Checks(Vec<Check>);

impl Checks {
    /// Starts hashing `blob` on its own low-priority thread, to be compared with `expected`.
    pub(crate) fn spawn(&mut self, blob: &Blob, expected: &Digest, image: &str, what: &'static str, label: String) {
        let (blob, hasher) = (blob.clone(), expected.hasher());
        let job = std::thread::spawn(move || {
            lower_priority();
            hash(&blob, hasher)
        });
        self.0.push(Check { job, expected: expected.clone(), image: image.to_owned(), what, label });
    }

    /// Waits for every check; the first that fails (in layer order) is the error.
    pub fn wait(self) -> Result<(), OciError> {
        let mut first = None;
        for check in self.0 {
            let outcome = check.finish();
            if first.is_none() {
                first = outcome.err();
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// `err` arose while these checks were running: a digest that does not match is reported in its place.
    pub(crate) fn explain(self, err: OciError) -> OciError {
        match self.wait() {
            Err(mismatch) => mismatch,
            Ok(()) => err,
        }
    }

    pub(crate) fn append(&mut self, mut other: Checks) {
        self.0.append(&mut other.0);
    }

    /// Whether nothing is left to check.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Check {
    fn finish(self) -> Result<(), OciError> {
        let label = self.label;
        let found = self.job.join().unwrap_or_else(|_| Err(io::Error::other("a hashing thread panicked"))).map_err(
            |source| OciError::Decompress { what: format!("layer `{label}` of image `{}`", self.image), source },
        )?;
        if found == self.expected {
            return Ok(());
        }
        Err(OciError::DigestMismatch {
            image: self.image,
            what: self.what.to_owned(),
            digest: label,
            found: found.to_string(),
        })
    }
}

fn hash(blob: &Blob, mut hasher: Hasher) -> io::Result<Digest> {
    let mut reader = blob.section();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match read_up_to(&mut reader, &mut buf)? {
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
