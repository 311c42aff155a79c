//! GUIDs as GPT stores them (UEFI 2.10 Appendix A, "EFI_GUID"): the first three fields little-endian, the last
//! eight bytes in order, so `c12a7328-f81f-11d2-…` is stored as `28 73 2a c1 1f f8 d2 11 …`.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::GptError;

/// A GUID in its on-disk (mixed-endian) byte layout.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(transparent)]
pub struct Guid(pub [u8; 16]);

/// RFC 9562 §5.8: version 8 ("custom") in the high nibble of octet 6.
const VERSION_8: u128 = 0x8 << 76;
const VERSION_MASK: u128 = 0xf << 76;
/// RFC 9562 §4.1: variant `10` in the two high bits of octet 8.
const VARIANT_RFC: u128 = 0b10 << 62;
const VARIANT_MASK: u128 = 0b11 << 62;

impl Guid {
    /// The nil GUID; as a partition type it marks an unused entry (UEFI 2.10 §5.3.3).
    pub const NIL: Guid = Guid([0; 16]);

    /// The GUID whose text form is the 32 hex digits of `v`, e.g. `from_u128(0xc12a7328_f81f_11d2_ba4b_00a0c93ec93b)`.
    pub const fn from_u128(v: u128) -> Guid {
        let b = v.to_be_bytes();
        Guid([b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]])
    }

    /// The inverse of [`from_u128`](Self::from_u128).
    pub const fn to_u128(self) -> u128 {
        let b = self.0;
        u128::from_be_bytes([
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15],
        ])
    }

    /// A GUID derived from `seed` (e.g. the image digest and SOURCE_DATE_EPOCH) and a `label` naming its use
    /// (`"disk"`, `"esp"`, …): the first 16 bytes of SHA-256(seed ‖ 0x00 ‖ label), marked as an RFC 9562 version 8
    /// UUID. The same inputs always give the same GUID; nothing random is involved.
    pub fn from_seed(seed: &[u8], label: &str) -> Guid {
        let digest = Sha256::new().chain_update(seed).chain_update([0u8]).chain_update(label.as_bytes()).finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        let v = u128::from_be_bytes(first);
        Guid::from_u128((v & !VERSION_MASK & !VARIANT_MASK) | VERSION_8 | VARIANT_RFC)
    }

    pub fn is_nil(self) -> bool {
        self == Guid::NIL
    }
}

impl fmt::Display for Guid {
    /// The canonical lowercase `8-4-4-4-12` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.to_u128();
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            v >> 96,
            (v >> 80) & 0xffff,
            (v >> 64) & 0xffff,
            (v >> 48) & 0xffff,
            v & 0xffff_ffff_ffff
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

impl FromStr for Guid {
    type Err = GptError;

    /// Parses the `8-4-4-4-12` form, in either case, optionally in braces.
    fn from_str(s: &str) -> Result<Guid, GptError> {
        let bad = || GptError::BadGuid(s.to_owned());
        let inner = s.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(s);
        let groups: Vec<&str> = inner.split('-').collect();
        if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
            return Err(bad());
        }
        let mut v: u128 = 0;
        for c in groups.concat().chars() {
            let digit = c.to_digit(16).ok_or_else(bad)?;
            v = (v << 4) | u128::from(digit);
        }
        Ok(Guid::from_u128(v))
    }
}
