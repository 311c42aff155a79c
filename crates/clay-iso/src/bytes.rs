//! Byte-level helpers shared by the descriptors and records: ECMA-119 both-byte-order numbers (7.2.3, 7.3.3) and
//! the two date formats (8.4.26.1 "dec-datetime", 9.1.5 "recording date and time").

use clay_time::{days_from_civil, Utc, SECONDS_PER_DAY};

/// A logical sector (ECMA-119 6.1.2: the logical block size we use, and the only one El Torito allows on CDs).
pub(crate) const SECTOR: usize = 2048;
/// [`SECTOR`] as a `u64`, for offsets.
pub(crate) const SECTOR_U64: u64 = 2048;

/// A 32-bit number recorded little-endian then big-endian (ECMA-119 7.3.3).
pub(crate) fn both_u32(v: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

/// A 16-bit number recorded little-endian then big-endian (ECMA-119 7.2.3).
pub(crate) fn both_u16(v: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[..2].copy_from_slice(&v.to_le_bytes());
    b[2..].copy_from_slice(&v.to_be_bytes());
    b
}

/// Sectors needed to hold `len` bytes.
pub(crate) fn sectors_for(len: u64) -> u64 {
    len.div_ceil(SECTOR_U64)
}

/// Puts `bytes` at `at` in `buf`; a no-op if it would not fit (callers size their buffers, so this never drops data).
pub(crate) fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// A UTC civil time, clamped to what a 7-byte recording date can hold (years 1900..=2155).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

const EARLIEST: i64 = days_from_civil(1900, 1, 1) * SECONDS_PER_DAY;
const LATEST: i64 = days_from_civil(2156, 1, 1) * SECONDS_PER_DAY - 1;

impl DateTime {
    /// The UTC time of a Unix timestamp, clamped to 1900-01-01..=2155-12-31 23:59:59.
    pub(crate) fn from_unix(ts: i64) -> Self {
        let t = Utc::from_unix(ts.clamp(EARLIEST, LATEST));
        // The clamp above keeps the year in range, so the fallback is never taken.
        DateTime {
            year: u16::try_from(t.year).unwrap_or(1900),
            month: t.month,
            day: t.day,
            hour: t.hour,
            minute: t.minute,
            second: t.second,
        }
    }

    /// ECMA-119 9.1.5: years since 1900, month, day, hour, minute, second, offset from GMT (0: we write UTC).
    pub(crate) fn recording(self) -> [u8; 7] {
        let years = u8::try_from(self.year.saturating_sub(1900)).unwrap_or(u8::MAX);
        [years, self.month, self.day, self.hour, self.minute, self.second, 0]
    }

    /// ECMA-119 8.4.26.1: "YYYYMMDDHHMMSScc" in ASCII digits, then the GMT offset (0).
    pub(crate) fn dec(self) -> [u8; 17] {
        let text = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        let mut b = [0u8; 17];
        put(&mut b, 0, text.as_bytes());
        b
    }
}

/// The "not specified" dec-datetime (ECMA-119 8.4.26.1): sixteen ASCII zeros and a zero offset.
pub(crate) const DEC_UNSPECIFIED: [u8; 17] = *b"0000000000000000\0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_the_calendar() {
        let d = DateTime::from_unix(1_700_000_000);
        assert_eq!(&d.dec()[..16], b"2023111422132000");
        assert_eq!(d.recording(), [123, 11, 14, 22, 13, 20, 0]);
        assert_eq!(DateTime::from_unix(0).recording(), [70, 1, 1, 0, 0, 0, 0]);
        assert_eq!(DateTime::from_unix(951_782_400).recording(), [100, 2, 29, 0, 0, 0, 0]);
        assert_eq!(DateTime::from_unix(i64::MIN).recording(), [0, 1, 1, 0, 0, 0, 0]);
        assert_eq!(DateTime::from_unix(i64::MAX).recording(), [255, 12, 31, 23, 59, 59, 0]);
        assert_eq!(both_u32(0x0102_0304), [4, 3, 2, 1, 1, 2, 3, 4]);
        assert_eq!(both_u16(0x0102), [2, 1, 1, 2]);
    }
}
