//! FAT timestamps (FAT spec §6.3): local date and time in 16-bit fields, years 1980-2107, two-second resolution.
//! We store UTC, as reproducible builds want.

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
        let t = unix.clamp(FAT_EPOCH, FAT_END);
        let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        let field = |v: i64| u16::try_from(v).unwrap_or(0);
        FatTime {
            date: field(((year - 1980) << 9) | (month << 5) | day),
            time: field(((secs / 3600) << 11) | ((secs / 60 % 60) << 5) | (secs % 60 / 2)),
            tenths: if secs % 2 == 1 { 100 } else { 0 },
        }
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
