//! Unix timestamps as UTC calendar dates and times, shared by the crates that write timestamps into on-disk
//! formats (FAT directory entries, ISO 9660 dates, UEFI EFI_TIME, OCI image configs).
//!
//! [`Utc::from_unix`] turns seconds since 1970-01-01 00:00:00 UTC into a year, month, day, hour, minute and
//! second in the proleptic Gregorian calendar, and [`days_from_civil`] goes the other way for whole days. Both
//! are Howard Hinnant's algorithms `civil_from_days` and `days_from_civil`
//! (<https://howardhinnant.github.io/date_algorithms.html>): they count in 400-year eras of 146,097 days, with
//! years starting on 1 March so that the leap day is the last day of the year. Leap seconds do not exist here,
//! as in Unix time itself: every day is 86,400 seconds.
//!
//! The conversion is total: every `i64` timestamp, including negative ones (before 1970) and ones far beyond
//! the year 9999, gives a date without overflow or panic. Each caller clamps or rejects the dates its own format
//! cannot hold; this crate does no clamping.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

/// The number of seconds in a day (Unix time has no leap seconds).
pub const SECONDS_PER_DAY: i64 = 86_400;

/// Days in a 400-year era of the Gregorian calendar.
const DAYS_PER_ERA: i64 = 146_097;
/// Days from 0000-03-01, the start of Hinnant's era 0, to 1970-01-01.
const EPOCH_FROM_ERA_START: i64 = 719_468;

/// A UTC calendar date and time of day, to the second, in the proleptic Gregorian calendar.
///
/// Years are astronomical: the year before 1 is 0, and the one before that is -1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utc {
    /// The year, e.g. 2024; 0 and negative years come before 1 AD.
    pub year: i64,
    /// The month, 1 (January) to 12 (December).
    pub month: u8,
    /// The day of the month, 1 to 31.
    pub day: u8,
    /// The hour, 0 to 23.
    pub hour: u8,
    /// The minute, 0 to 59.
    pub minute: u8,
    /// The second, 0 to 59.
    pub second: u8,
}

impl Utc {
    /// Returns the UTC date and time `secs` seconds after 1970-01-01 00:00:00 (before it, for negative `secs`).
    ///
    /// Every `i64` is accepted; the year is not clamped to any range.
    ///
    /// ```
    /// let t = clay_time::Utc::from_unix(1_700_000_000);
    /// assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second), (2023, 11, 14, 22, 13, 20));
    /// assert_eq!(t.rfc3339(), "2023-11-14T22:13:20Z");
    /// ```
    pub fn from_unix(secs: i64) -> Utc {
        let days = secs.div_euclid(SECONDS_PER_DAY);
        let in_day = secs.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        // `in_day` is in 0..86_400, so hours are below 24 and minutes and seconds below 60: the fallbacks are
        // never taken.
        let field = |v: i64| u8::try_from(v).unwrap_or(0);
        Utc {
            year,
            month,
            day,
            hour: field(in_day / 3600),
            minute: field(in_day / 60 % 60),
            second: field(in_day % 60),
        }
    }

    /// Returns this time as an RFC 3339 UTC timestamp, such as `2023-11-14T22:13:20Z`.
    ///
    /// RFC 3339 only has four-digit years 0000 to 9999. Later years are written with as many digits as they
    /// need, and years before 0 with a minus sign and at least three digits (`-001`), as `date -u` does.
    pub fn rfc3339(self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Returns the number of days from 1970-01-01 to the given proleptic Gregorian date (negative before it).
///
/// This is Howard Hinnant's `days_from_civil`, the inverse of the date part of [`Utc::from_unix`]; multiply by
/// [`SECONDS_PER_DAY`] for the Unix timestamp of the date's midnight. It is a `const fn`, so format limits can be
/// written as constants. `month` must be 1 to 12 and `day` 1 to the length of that month; other values give a
/// meaningless result, but never overflow.
pub const fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    // Lossless widenings (`i64::from` is not usable in a `const fn`).
    let (month, day) = (month as i64, day as i64);
    // Years start on 1 March, so January and February belong to the previous one.
    let year = year as i64 - if month <= 2 { 1 } else { 0 };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - EPOCH_FROM_ERA_START
}

/// Howard Hinnant's `civil_from_days`: the (year, month 1-12, day 1-31) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + EPOCH_FROM_ERA_START;
    let era = z.div_euclid(DAYS_PER_ERA);
    let day_of_era = z.rem_euclid(DAYS_PER_ERA);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / (DAYS_PER_ERA - 1)) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // The arithmetic keeps the month in 1..=12 and the day in 1..=31: the fallbacks are never taken.
    (year, u8::try_from(month).unwrap_or(1), u8::try_from(day).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `YYYY-MM-DD HH:MM:SS`, the format of `date -u -d @SECS '+%Y-%m-%d %H:%M:%S'`.
    fn text(secs: i64) -> String {
        let t = Utc::from_unix(secs);
        format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", t.year, t.month, t.day, t.hour, t.minute, t.second)
    }

    /// Checks each (timestamp, expected) pair, and that `days_from_civil` maps the date back to its midnight.
    fn check(cases: &[(i64, &str)]) {
        for &(secs, expected) in cases {
            assert_eq!(text(secs), expected, "{secs}");
            let t = Utc::from_unix(secs);
            let midnight = secs - secs.rem_euclid(SECONDS_PER_DAY);
            let year = i32::try_from(t.year).unwrap();
            assert_eq!(days_from_civil(year, t.month, t.day) * SECONDS_PER_DAY, midnight, "{secs}");
        }
    }

    // Every expected value in the tests below came from GNU date (coreutils 9.1):
    // `date -u -d @SECS '+%Y-%m-%d %H:%M:%S'`.

    #[test]
    fn the_epoch_and_its_neighbours() {
        check(&[
            (0, "1970-01-01 00:00:00"),
            (86_399, "1970-01-01 23:59:59"),
            (86_400, "1970-01-02 00:00:00"),
            (1_700_000_000, "2023-11-14 22:13:20"),
        ]);
        assert_eq!(Utc::from_unix(0), Utc { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0 });
    }

    #[test]
    fn leap_days() {
        check(&[
            // 2000 is a leap year although divisible by 100, because it is divisible by 400.
            (951_782_400, "2000-02-29 00:00:00"),
            (951_868_799, "2000-02-29 23:59:59"),
            (951_868_800, "2000-03-01 00:00:00"),
            (1_709_164_800, "2024-02-29 00:00:00"),
            (1_709_251_199, "2024-02-29 23:59:59"),
            // 1900 is not a leap year: 1 March follows 28 February.
            (-2_203_977_600, "1900-02-28 00:00:00"),
            (-2_203_891_200, "1900-03-01 00:00:00"),
            // Nor is 2100.
            (4_107_542_399, "2100-02-28 23:59:59"),
            (4_107_542_400, "2100-03-01 00:00:00"),
        ]);
    }

    #[test]
    fn ends_of_years() {
        check(&[
            (978_307_199, "2000-12-31 23:59:59"),
            (1_704_067_199, "2023-12-31 23:59:59"),
            (1_735_689_599, "2024-12-31 23:59:59"),
            (1_735_689_600, "2025-01-01 00:00:00"),
        ]);
    }

    #[test]
    fn negative_timestamps() {
        check(&[
            (-1, "1969-12-31 23:59:59"),
            (-86_401, "1969-12-30 23:59:59"),
            (-2_208_988_800, "1900-01-01 00:00:00"),
            (-62_135_596_800, "0001-01-01 00:00:00"),
            (-62_167_219_200, "0000-01-01 00:00:00"),
            (-62_167_219_201, "-001-12-31 23:59:59"),
        ]);
    }

    #[test]
    fn large_timestamps() {
        check(&[
            (4_102_444_800, "2100-01-01 00:00:00"),
            (4_133_980_799, "2100-12-31 23:59:59"),
            (32_503_680_000, "3000-01-01 00:00:00"),
            (253_402_300_799, "9999-12-31 23:59:59"),
            (253_402_300_800, "10000-01-01 00:00:00"),
        ]);
    }

    #[test]
    fn extremes_do_not_overflow() {
        for secs in [i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX] {
            let t = Utc::from_unix(secs);
            assert!((1..=12).contains(&t.month) && (1..=31).contains(&t.day), "{secs}: {t:?}");
            assert!(t.hour < 24 && t.minute < 60 && t.second < 60, "{secs}: {t:?}");
        }
        assert!(Utc::from_unix(i64::MIN).year < -292_000_000_000);
        assert!(Utc::from_unix(i64::MAX).year > 292_000_000_000);
        // i32 years cover the whole domain of `days_from_civil` without overflow.
        assert!(days_from_civil(i32::MIN, 1, 1) < days_from_civil(i32::MAX, 12, 31));
    }

    #[test]
    fn every_day_follows_the_one_before() {
        // Walks day by day from 1599-01-01 to 2501-01-01, checking each date against the previous one and that
        // `days_from_civil` inverts `from_unix`.
        let first = days_from_civil(1599, 1, 1);
        let mut prev = Utc::from_unix(first * SECONDS_PER_DAY);
        assert_eq!((prev.year, prev.month, prev.day), (1599, 1, 1));
        for days in first + 1..=days_from_civil(2501, 1, 1) {
            let t = Utc::from_unix(days * SECONDS_PER_DAY);
            let leap = (t.year % 4 == 0 && t.year % 100 != 0) || t.year % 400 == 0;
            let month_len = match prev.month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expected = if prev.day < month_len {
                (prev.year, prev.month, prev.day + 1)
            } else if prev.month < 12 {
                (prev.year, prev.month + 1, 1)
            } else {
                (prev.year + 1, 1, 1)
            };
            assert_eq!((t.year, t.month, t.day), expected, "day {days}");
            assert_eq!(days_from_civil(i32::try_from(t.year).unwrap(), t.month, t.day), days);
            prev = t;
        }
    }

    #[test]
    fn rfc3339_text() {
        assert_eq!(Utc::from_unix(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Utc::from_unix(1_700_000_000).rfc3339(), "2023-11-14T22:13:20Z");
        assert_eq!(Utc::from_unix(951_782_400).rfc3339(), "2000-02-29T00:00:00Z");
        assert_eq!(Utc::from_unix(-62_135_596_800).rfc3339(), "0001-01-01T00:00:00Z");
        assert_eq!(Utc::from_unix(-62_167_219_201).rfc3339(), "-001-12-31T23:59:59Z");
        assert_eq!(Utc::from_unix(253_402_300_800).rfc3339(), "10000-01-01T00:00:00Z");
    }
}
