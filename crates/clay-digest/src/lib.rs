//! Content digests as the OCI image spec writes them (descriptor.md, "Digests"): `sha256:<64 hex>` or
//! `sha512:<128 hex>`, in lower case.
//!
//! A digest is validated before it is used anywhere, and in particular before it names a file (`blobs/sha256/HEX`):
//! what an image or a registry says is untrusted, and `sha256:../../x` must never become a path. The image readers
//! and the registry client share this one type, so a digest checked by one is the same value to the other.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::fmt;
use std::io::{self, Write};

use sha2::digest::DynDigest;
use sha2::{Digest as _, Sha256, Sha512};

/// A validated digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    /// `algorithm:hex`, as written.
    text: String,
    algorithm: Algorithm,
}

/// The hash functions the OCI image spec registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// A string that is not a digest, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{digest}` is not a valid digest: {reason}")]
pub struct BadDigest {
    pub digest: String,
    pub reason: String,
}

impl Digest {
    /// Parses `algorithm:hex`: `sha256` or `sha512`, with exactly as many lower-case hex characters as it has.
    pub fn parse(s: &str) -> Result<Self, BadDigest> {
        let bad = |reason: String| BadDigest { digest: s.to_owned(), reason };
        let Some((name, hex)) = s.split_once(':') else {
            return Err(bad("it has no `algorithm:` prefix".to_owned()));
        };
        let algorithm = match name {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(bad(format!("only sha256 and sha512 digests are supported, not `{other}`"))),
        };
        let len = algorithm.hex_len();
        if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad(format!("a {name} digest is {len} lower-case hex characters")));
        }
        Ok(Self { text: s.to_owned(), algorithm })
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        let mut hasher = Hasher::sha256();
        hasher.update(bytes);
        hasher.finish()
    }

    /// The algorithm's name, which also names the blob directory of an OCI layout (`blobs/sha256/`).
    pub fn algorithm(&self) -> &'static str {
        self.algorithm.name()
    }

    /// The hex part, which is also the blob's file name in an OCI layout.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.name().len() + 1..]
    }

    /// `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The digest of `bytes` by this digest's algorithm: equal to this one when they are the bytes it names.
    pub fn recompute(&self, bytes: &[u8]) -> Self {
        let mut hasher = self.hasher();
        hasher.update(bytes);
        hasher.finish()
    }

    /// A hasher of this digest's algorithm, whose [`Hasher::finish`] is compared with it.
    pub fn hasher(&self) -> Hasher {
        Hasher::new(self.algorithm)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Digest {
    type Err = BadDigest;
    fn from_str(s: &str) -> Result<Self, BadDigest> {
        Self::parse(s)
    }
}

/// An incremental hash of one algorithm, and a [`Write`] sink for it.
pub struct Hasher {
    algorithm: Algorithm,
    inner: Box<dyn DynDigest + Send>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl Hasher {
    /// A sha256 hasher, the algorithm of every digest clay computes for itself.
    pub fn sha256() -> Self {
        Self::new(Algorithm::Sha256)
    }

    fn new(algorithm: Algorithm) -> Self {
        let inner: Box<dyn DynDigest + Send> = match algorithm {
            Algorithm::Sha256 => Box::new(Sha256::new()),
            Algorithm::Sha512 => Box::new(Sha512::new()),
        };
        Self { algorithm, inner }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
    }

    /// The digest of everything hashed.
    pub fn finish(self) -> Digest {
        let name = self.algorithm.name();
        let hash = self.inner.finalize();
        let mut text = String::with_capacity(name.len() + 1 + hash.len() * 2);
        text.push_str(name);
        text.push(':');
        for b in hash.iter() {
            text.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
            text.push(char::from(HEX_DIGITS[usize::from(b & 0xf)]));
        }
        Digest { text, algorithm: self.algorithm }
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_SHA256: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    const HELLO_SHA512: &str = "sha512:9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c1\
                                1d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043";

    #[test]
    fn digests_of_both_algorithms_are_computed_and_read_back() {
        let d = Digest::sha256_of(b"hello");
        assert_eq!(d.as_str(), HELLO_SHA256);
        assert_eq!((d.algorithm(), d.hex()), ("sha256", &HELLO_SHA256[7..]));
        assert_eq!(Digest::parse(HELLO_SHA256).unwrap(), d);
        assert_eq!(HELLO_SHA256.parse::<Digest>().unwrap().to_string(), HELLO_SHA256);

        let expected = Digest::parse(HELLO_SHA512).unwrap();
        assert_eq!(expected.recompute(b"hello"), expected);
        assert_eq!(d.recompute(b"hello"), d);
        assert_ne!(expected.recompute(b"hellO"), expected);
        assert_eq!((expected.algorithm(), expected.hex().len()), ("sha512", 128));
        let mut hasher = expected.hasher();
        hasher.write_all(b"hel").unwrap();
        hasher.update(b"lo");
        assert_eq!(hasher.finish(), expected);
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        let hex = &HELLO_SHA256[7..];
        let cases = [
            ("", "has no `algorithm:` prefix"),
            ("sha256", "has no `algorithm:` prefix"),
            ("sha256:", "a sha256 digest is 64 lower-case hex characters"),
            ("sha256:../../../../etc/passwd", "64 lower-case hex characters"),
            ("sha512:abcd", "a sha512 digest is 128 lower-case hex characters"),
            (&format!("md5:{hex}"), "only sha256 and sha512 digests are supported, not `md5`"),
            (&format!("sha256:{}", hex.to_uppercase()), "lower-case"),
            (&format!("sha256:{hex}0"), "64 lower-case"),
            (&format!("sha256:{}", &hex[1..]), "64 lower-case"),
            (&format!("sha256:{}/", &hex[1..]), "64 lower-case"),
        ];
        for (input, reason) in cases {
            let err = Digest::parse(input).unwrap_err();
            assert_eq!(err.digest, input);
            assert!(err.to_string().starts_with(&format!("`{input}` is not a valid digest: ")), "{err}");
            assert!(err.reason.contains(reason), "{input}: {err}");
        }
    }
}
