//! The optional header's CheckSum, computed over a stream so a UKI with a large `.initrd` never sits in memory.
//!
//! The PE Format specification (3.4.2, CheckSum) only says the algorithm is "incorporated into IMAGHELP.DLL";
//! that algorithm (`CheckSumMappedFile`) sums the file as little-endian 16-bit words with the carry folded back in,
//! counting the 4-byte CheckSum field as zero, and adds the file length. UEFI firmware does not check it.
//!
//! [`write_uki`](crate::write_uki) writes CheckSum 0, as ukify does: it streams into a plain `Write`, so the sum is
//! not known when the header goes out. A caller that can seek (or re-read the output) may fill it in with this.

use crate::error::{PeError, IMAGE};
use crate::headers::Headers;

/// A streaming PE checksum. Feed the whole file in order through [`update`](Self::update).
#[derive(Debug, Clone)]
pub struct PeChecksum {
    field_offset: u64,
    position: u64,
    sum: u64,
    /// The low byte of a 16-bit word split across two `update` calls.
    pending: Option<u8>,
}

impl PeChecksum {
    /// A checksum that skips the CheckSum field at `field_offset` (see [`checksum_field_offset`]).
    pub fn new(field_offset: u64) -> Self {
        PeChecksum { field_offset, position: 0, sum: 0, pending: None }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let field = self.field_offset..self.field_offset.saturating_add(4);
        let mut rest = bytes;
        while let Some((&first, tail)) = rest.split_first() {
            if field.contains(&self.position) {
                self.push_byte(0);
                rest = tail;
                continue;
            }
            // Sum word by word up to the CheckSum field (or the end of what was given).
            let run = match field.start.checked_sub(self.position) {
                Some(gap) => usize::try_from(gap).unwrap_or(usize::MAX).min(rest.len()),
                None => rest.len(),
            };
            let (mut now, later) = rest.split_at(run);
            rest = later;
            if self.pending.is_some() {
                self.push_byte(first);
                now = &now[1..];
            }
            let mut pairs = now.chunks_exact(2);
            for pair in &mut pairs {
                // No fold per word: a u64 holds 2^48 words, far beyond any PE file, and folding at the end gives the
                // same ones'-complement sum.
                self.sum += u64::from(u16::from_le_bytes([pair[0], pair[1]]));
            }
            self.position += crate::headers::to_u64(now.len() - pairs.remainder().len());
            if let [last] = pairs.remainder() {
                self.push_byte(*last);
            }
        }
    }

    fn push_byte(&mut self, b: u8) {
        match self.pending.take() {
            None => self.pending = Some(b),
            Some(low) => self.sum += u64::from(u16::from_le_bytes([low, b])),
        }
        self.position += 1;
    }

    /// The CheckSum value for the bytes fed so far, taken as the whole file.
    pub fn finish(mut self) -> u32 {
        if let Some(low) = self.pending.take() {
            // An odd-sized file is summed as if padded with one zero byte.
            self.sum += u64::from(low);
        }
        let mut sum = self.sum;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        // PE files end below 4 GiB, so the length fits; beyond that the field wraps as Windows' implementation does.
        u32::try_from(sum.wrapping_add(self.position) & 0xffff_ffff).unwrap_or(0)
    }
}

/// File offset of the CheckSum field of the PE image whose first bytes are `header_bytes`.
pub fn checksum_field_offset(header_bytes: &[u8]) -> Result<u64, PeError> {
    let headers = Headers::parse(header_bytes, IMAGE)?;
    Ok(crate::headers::to_u64(headers.checksum_offset()))
}
