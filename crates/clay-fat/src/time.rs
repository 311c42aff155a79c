//! FAT timestamps (FAT spec §6.3): local date and time in 16-bit fields, years 1980-2107, two-second resolution.
//! We store UTC, as reproducible builds want.

use clay_time::Utc;

/// 1980-01-01 00:00:00 UTC, the first FAT timestamp.
pub const FAT_EPOCH: i64 = 315_532_800;
/// 2107-12-31 23:59:58 UTC, the last FAT timestamp.
pub const FAT_END: i64 = 4_354_819_198;

/// A FAT date, time and 10-ms creation-time refinement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FatTime {
    pub date: u16,
    pub time: u16,
    /// DIR_CrtTimeTenth: the odd second FAT time cannot hold, in units of 10 ms (0 or 100).
    pub tenths: u8,
}

impl FatTime {
    /// `unix` seconds clamped to the FAT range.
    pub fn from_unix(unix: i64) -> FatTime {
        let t = Utc::from_unix(unix.clamp(FAT_EPOCH, FAT_END));
        // The clamp keeps the year in 1980..=2107, so the year field fits its 7 bits and the fallback is never taken.
        let years = u16::try_from(t.year - 1980).unwrap_or(0);
        FatTime {
            date: (years << 9) | (u16::from(t.month) << 5) | u16::from(t.day),
            time: (u16::from(t.hour) << 11) | (u16::from(t.minute) << 5) | u16::from(t.second / 2),
            tenths: if t.second % 2 == 1 { 100 } else { 0 },
        }
    }
}
