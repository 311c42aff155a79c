//! Hashing files for the registry client. The digest type itself is clay-digest's, shared with the image readers:
//! validated before it is used anywhere, in particular before it becomes a file name in the layout, since what a
//! registry sends is untrusted and `sha256:../../x` must not name a path.

use std::fs::File;
use std::io::Read;
use std::path::Path;

pub use clay_digest::{Digest, Hasher};

use crate::error::{RegistryError, Result};

/// The sha256 digest of a file and its length, read in chunks.
pub fn digest_file(path: &Path) -> Result<(Digest, u64)> {
    hash_file(path, Hasher::sha256())
}

fn hash_file(path: &Path, mut hasher: Hasher) -> Result<(Digest, u64)> {
    let mut file = File::open(path).map_err(|e| RegistryError::io("opening", path, e))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| RegistryError::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len = len.saturating_add(n as u64);
    }
    Ok((hasher.finish(), len))
}

/// Whether the file at `path` exists with exactly `size` bytes hashing to `digest` (a missing file is `false`).
pub fn file_matches(path: &Path, digest: &Digest, size: u64) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == size => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(RegistryError::io("inspecting", path, e)),
    }
    let (actual, len) = hash_file(path, digest.hasher())?;
    Ok(actual == *digest && len == size)
}
