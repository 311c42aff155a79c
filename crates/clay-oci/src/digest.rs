//! Content digests (OCI image-spec "Descriptors", Digests): `sha256:<64 hex>` or `sha512:<128 hex>`.

use std::fmt;
use std::io::{self, Write};

use sha2::digest::DynDigest;
use sha2::{Digest as _, Sha256, Sha512};

/// A parsed, validated digest. Only lowercase hex is accepted, so a digest can never name a path like `../x`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl Digest {
    /// Parses `alg:hex`; `None` for anything else (another algorithm, wrong length, upper case, other characters).
    pub fn parse(s: &str) -> Option<Digest> {
        let (alg, hex) = s.split_once(':')?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return None,
        };
        let valid =
            hex.len() == algorithm.hex_len() && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Digest { algorithm, hex: hex.to_owned() })
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest { algorithm: Algorithm::Sha256, hex: to_hex(&Sha256::digest(bytes)) }
    }

    /// The algorithm's name, as the blob directory is named (`blobs/sha256/...`).
    pub fn algorithm(&self) -> &'static str {
        self.algorithm.name()
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A hasher of this digest's algorithm, for [`Hasher::finish`] to compare against.
    pub(crate) fn hasher(&self) -> Hasher {
        let inner: Box<dyn DynDigest + Send> = match self.algorithm {
            Algorithm::Sha256 => Box::new(Sha256::new()),
            Algorithm::Sha512 => Box::new(Sha512::new()),
        };
        Hasher { algorithm: self.algorithm, inner }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// An incremental hash that is also a [`Write`] sink.
pub(crate) struct Hasher {
    algorithm: Algorithm,
    inner: Box<dyn DynDigest + Send>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
    }

    pub fn finish(self) -> Digest {
        Digest { algorithm: self.algorithm, hex: to_hex(&self.inner.finalize()) }
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
