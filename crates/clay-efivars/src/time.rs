//! EFI_TIME (UEFI 2.10 §8.3), the timestamp of time-based authenticated variables (§8.2.2).

use std::fmt;

use clay_time::Utc;
use zerocopy::little_endian::{I16, U16, U32};

use crate::ondisk::RawTime;
use crate::{EfiVarsError, Result};

/// UEFI 2.10 §8.3: the last year an EFI_TIME may hold.
const MAX_YEAR: u16 = 9999;
/// UEFI 2.10 §8.3: the first.
const MIN_YEAR: u16 = 1900;
/// UEFI 2.10 §8.3: TimeZone value meaning "local time, offset unknown".
const UNSPECIFIED_TIMEZONE: i16 = 0x07FF;

/// A calendar time as UEFI stores it. Authenticated variables use UTC with `nanosecond`, `time_zone` and
/// `daylight` all zero (UEFI 2.10 §8.2.2), which is what [`EfiTime::utc`] and [`EfiTime::from_unix_seconds`]
/// make; the all-zero value is what non-authenticated variables carry in a variable store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EfiTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub nanosecond: u32,
    /// Minutes from UTC, or 0x07FF for unspecified.
    pub time_zone: i16,
    pub daylight: u8,
}

impl EfiTime {
    /// The all-zero EFI_TIME.
    pub const ZERO: EfiTime =
        EfiTime { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, nanosecond: 0, time_zone: 0, daylight: 0 };

    /// A UTC time with whole seconds, checked against the ranges of UEFI 2.10 §8.3.
    pub fn utc(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Result<EfiTime> {
        let time = EfiTime { year, month, day, hour, minute, second, ..EfiTime::ZERO };
        time.check_authenticated()?;
        Ok(time)
    }

    /// The UTC time `seconds` after 1970-01-01 00:00:00 (e.g. `SOURCE_DATE_EPOCH`).
    pub fn from_unix_seconds(seconds: u64) -> Result<EfiTime> {
        let out_of_range = || EfiVarsError::TimeOutOfRange { seconds };
        // Seconds beyond i64::MAX are some 292 billion years on, far past MAX_YEAR.
        let t = Utc::from_unix(i64::try_from(seconds).map_err(|_| out_of_range())?);
        let year = u16::try_from(t.year).ok().filter(|y| *y <= MAX_YEAR).ok_or_else(out_of_range)?;
        EfiTime::utc(year, t.month, t.day, t.hour, t.minute, t.second)
    }

    /// Checks what UEFI 2.10 §8.2.2 requires of the TimeStamp of an authenticated update: a valid date and time,
    /// and Nanosecond, TimeZone and Daylight zero.
    pub fn check_authenticated(&self) -> Result<()> {
        let bad = |reason| Err(EfiVarsError::BadTime { time: self.to_string(), reason });
        if !(MIN_YEAR..=MAX_YEAR).contains(&self.year) {
            return bad("the year must be 1900 to 9999");
        }
        if !(1..=12).contains(&self.month) {
            return bad("the month must be 1 to 12");
        }
        if self.day == 0 || self.day > days_in_month(self.year, self.month) {
            return bad("the day does not exist in that month");
        }
        if self.hour > 23 || self.minute > 59 || self.second > 59 {
            return bad("the time of day must be 00:00:00 to 23:59:59");
        }
        if self.nanosecond != 0 || self.time_zone != 0 || self.daylight != 0 {
            return bad("an authenticated variable's timestamp has Nanosecond, TimeZone and Daylight zero");
        }
        Ok(())
    }

    pub(crate) fn from_raw(raw: &RawTime) -> EfiTime {
        EfiTime {
            year: raw.year.get(),
            month: raw.month,
            day: raw.day,
            hour: raw.hour,
            minute: raw.minute,
            second: raw.second,
            nanosecond: raw.nanosecond.get(),
            time_zone: raw.time_zone.get(),
            daylight: raw.daylight,
        }
    }

    pub(crate) fn to_raw(self) -> RawTime {
        RawTime {
            year: U16::new(self.year),
            month: self.month,
            day: self.day,
            hour: self.hour,
            minute: self.minute,
            second: self.second,
            pad1: 0,
            nanosecond: U32::new(self.nanosecond),
            time_zone: I16::new(self.time_zone),
            daylight: self.daylight,
            pad2: 0,
        }
    }
}

impl fmt::Display for EfiTime {
    /// `2023-01-01 00:00:00`, with `.NNNNNNNNN`, a `+HH:MM` zone and ` DST` when those are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.nanosecond != 0 {
            write!(f, ".{:09}", self.nanosecond)?;
        }
        if self.time_zone != 0 && self.time_zone != UNSPECIFIED_TIMEZONE {
            let sign = if self.time_zone < 0 { '-' } else { '+' };
            let minutes = self.time_zone.unsigned_abs();
            write!(f, " {sign}{:02}:{:02}", minutes / 60, minutes % 60)?;
        }
        if self.daylight != 0 {
            write!(f, " DST")?;
        }
        Ok(())
    }
}

fn is_leap(year: u16) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}
