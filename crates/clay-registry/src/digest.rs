//! Content digests (OCI image spec, descriptor.md "Digests"): only `sha256`, the one every registry speaks.
//!
//! A digest is validated before it is used anywhere, and in particular before it becomes a file name in the layout:
//! what a registry sends is untrusted, and `sha256:../../x` must not name a path.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{RegistryError, Result};

/// The algorithm prefix.
pub const SHA256: &str = "sha256";
/// Hex characters of a SHA-256 digest.
const SHA256_HEX_LEN: usize = 64;

/// A validated `sha256:<64 lower-case hex>` digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses and validates `sha256:HEX`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| RegistryError::BadDigest { digest: s.to_owned(), reason: reason.to_owned() };
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(bad("it has no `algorithm:` prefix"));
        };
        if algorithm != SHA256 {
            return Err(bad(&format!("only {SHA256} digests are supported, not `{algorithm}`")));
        }
        if hex.len() != SHA256_HEX_LEN || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad(&format!("a {SHA256} digest is {SHA256_HEX_LEN} lower-case hex characters")));
        }
        Ok(Self(s.to_owned()))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Self {
        Self(format!("{SHA256}:{}", hex(&hasher.finalize())))
    }

    /// The hex part, which is also the blob's file name in an OCI layout.
    pub fn hex(&self) -> &str {
        &self.0[SHA256.len() + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Digest {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Hashes a file in chunks, returning its digest and length.
pub fn digest_file(path: &Path) -> Result<(Digest, u64)> {
    let mut file = File::open(path).map_err(|e| RegistryError::io("opening", path, e))?;
    let mut hasher = Sha256::new();
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
    Ok((Digest::from_hasher(hasher), len))
}

/// Whether the file at `path` exists with exactly `size` bytes hashing to `digest` (a missing file is `false`).
pub fn file_matches(path: &Path, digest: &Digest, size: u64) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == size => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(RegistryError::io("inspecting", path, e)),
    }
    let (actual, len) = digest_file(path)?;
    Ok(actual == *digest && len == size)
}
