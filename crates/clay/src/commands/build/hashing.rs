//! Hashing the UKI while it is written, on another core.
//!
//! Disks and the ISO derive their identifiers from the UKI's SHA-256. Hashing ~100 MiB takes a tenth of a second,
//! and the UKI is written when the squashfs is done and one core is idle: so the writer only copies what it writes
//! into chunks, and a thread of its own hashes them.

use std::io::{self, Write};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

/// Bytes handed to the hashing thread at a time.
const CHUNK: usize = 1 << 20;
/// Chunks waiting for the thread before the writer waits: what the hash may lag behind, in memory.
const QUEUED: usize = 8;

/// A writer that passes everything to `inner` and, when asked, hashes it (SHA-256) on its own thread.
pub(super) struct Hashing<W> {
    inner: W,
    hasher: Option<Hasher>,
}

struct Hasher {
    pending: Vec<u8>,
    chunks: SyncSender<Vec<u8>>,
    thread: JoinHandle<[u8; 32]>,
}

impl<W: Write> Hashing<W> {
    pub(super) fn new(inner: W, hash: bool) -> Self {
        let hasher = hash.then(|| {
            let (chunks, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUED);
            let thread = std::thread::spawn(move || {
                let mut h = Sha256::new();
                for chunk in rx {
                    h.update(&chunk);
                }
                h.finalize().into()
            });
            Hasher { pending: Vec::with_capacity(CHUNK), chunks, thread }
        });
        Hashing { inner, hasher }
    }

    /// The writer back, and the hash of everything written when one was asked for.
    pub(super) fn finish(self) -> io::Result<(W, Option<[u8; 32]>)> {
        let Some(Hasher { pending, chunks, thread }) = self.hasher else { return Ok((self.inner, None)) };
        if !pending.is_empty() {
            chunks.send(pending).map_err(|_| stopped())?;
        }
        drop(chunks);
        let digest = thread.join().map_err(|_| stopped())?;
        Ok((self.inner, Some(digest)))
    }
}

fn stopped() -> io::Error {
    io::Error::other("the hashing thread stopped")
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.pending.extend_from_slice(&buf[..n]);
            if h.pending.len() >= CHUNK {
                let full = std::mem::replace(&mut h.pending, Vec::with_capacity(CHUNK));
                h.chunks.send(full).map_err(|_| stopped())?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_of_everything_written_in_any_pieces() {
        let data: Vec<u8> = (0..3 * CHUNK + 12_345).map(|i| u8::try_from(i * 7 % 251).unwrap()).collect();
        let expected: [u8; 32] = Sha256::digest(&data).into();
        for piece in [1, 4096, CHUNK - 1, CHUNK, 5 * CHUNK] {
            let mut w = Hashing::new(Vec::new(), true);
            for part in data.chunks(piece) {
                w.write_all(part).unwrap();
            }
            let (written, digest) = w.finish().unwrap();
            assert!(written == data, "pieces of {piece}");
            assert_eq!(digest, Some(expected), "pieces of {piece}");
        }
        let (written, digest) = Hashing::new(Vec::new(), false).finish().unwrap();
        assert!(written.is_empty() && digest.is_none());
        let (_, empty) = Hashing::new(Vec::new(), true).finish().unwrap();
        assert_eq!(empty, Some(<[u8; 32]>::from(Sha256::digest(b""))));
    }
}
