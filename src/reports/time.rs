//! Report times: UTC instants written as RFC 3339 (`2026-12-06T09:00:00Z`),
//! a date (`2026-12-06`, midnight UTC) or ms since the Unix epoch, and the
//! report intervals (15 minutes, an hour, a day), aligned on UTC.

use jiff::fmt::strtime;
use jiff::tz::Offset;
use serde::{Deserialize, Serialize};

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// Length of a report interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Interval {
    /// 15 minutes (`15m`).
    #[serde(rename = "15m")]
    Min15,
    /// An hour (`1h`).
    #[serde(rename = "1h")]
    Hour,
    /// A day (`1d`), midnight to midnight UTC.
    #[serde(rename = "1d")]
    Day,
}

impl Interval {
    /// Its length in ms.
    pub fn ms(self) -> u64 {
        match self {
            Self::Min15 => 900_000,
            Self::Hour => 3_600_000,
            Self::Day => DAY_MS,
        }
    }

    /// Its name in the API and CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Min15 => "15m",
            Self::Hour => "1h",
            Self::Day => "1d",
        }
    }

    /// Parses `15m`, `1h` or `1d`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "15m" => Ok(Self::Min15),
            "1h" => Ok(Self::Hour),
            "1d" => Ok(Self::Day),
            other => Err(format!(
                "`{}` is not an interval: use 15m, 1h or 1d",
                shown(other)
            )),
        }
    }
}

fn shown(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The forms of a report time besides ms, for jiff's `strptime` (after a
/// space between date and time became `T`): a date, an instant with
/// seconds (a fraction is read and ignored), one without.
const TIME_FORMS: [&str; 3] = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%.fZ", "%Y-%m-%dT%H:%MZ"];

/// Parses a report time: RFC 3339 in UTC (`Z`, seconds optional
/// fractions ignored), a date (midnight UTC) or ms since the epoch, from
/// 1970 to jiff's last instant (`9999-12-30T22:00:00Z`), so that
/// `format_time` writes back what was parsed.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "`{}` is not a time: use 2026-12-06T09:00:00Z, 2026-12-06 or ms since the epoch",
            shown(s)
        )
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = s.parse().map_err(|_| bad())?;
        return Some(ms)
            .filter(|ms| *ms <= crate::clock::timestamp_ms_max())
            .ok_or_else(bad);
    }
    let t_form = s.replacen(' ', "T", 1);
    // jiff's strptime would also take blanks before a number, a signed
    // year and a leap second (read as :59); none is a report time.
    if !s.starts_with(|c: char| c.is_ascii_digit())
        || t_form.bytes().any(|b| b.is_ascii_whitespace())
        || t_form.contains(":60")
    {
        return Err(bad());
    }
    let tm = TIME_FORMS
        .iter()
        .find_map(|form| strtime::parse(form, &t_form).ok())
        .ok_or_else(bad)?;
    if !tm.year().is_some_and(|y| (1970..=9999).contains(&y)) {
        return Err(bad());
    }
    let at = tm
        .to_datetime()
        .and_then(|dt| Offset::UTC.to_timestamp(dt))
        .map_err(|_| bad())?;
    u64::try_from(at.as_second())
        .map(|secs| secs * 1_000)
        .map_err(|_| bad())
}

/// `ms` since the epoch as RFC 3339 UTC (`2026-12-06T09:15:00Z`).
pub fn format_time(ms: u64) -> String {
    crate::clock::timestamp(ms)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the three time forms parse to the right instant, a time
    /// formats back to what was parsed, and bad input is an error naming
    /// the accepted forms, never a panic.
    #[test]
    fn times_parse_and_format() {
        assert_eq!(parse_time("1970-01-01").unwrap(), 0);
        let t = parse_time("2026-12-06T09:15:30Z").unwrap();
        assert_eq!(t, 1_796_548_530_000);
        assert_eq!(format_time(t), "2026-12-06T09:15:30Z");
        assert_eq!(parse_time("2026-12-06T09:15Z").unwrap(), t - 30_000);
        assert_eq!(parse_time("1796548530000").unwrap(), t);
        assert_eq!(parse_time("2024-02-29").unwrap() % DAY_MS, 0);
        for bad in [
            "",
            "2026-02-30",
            "2026-13-01",
            "yesterday",
            "2026-12-06T25:00:00Z",
            "2026-12-06T09:00:00+01:00",
            "-5",
            "99999999999999999999999",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
        assert_eq!(Interval::parse("1h").unwrap().ms(), 3_600_000);
        assert!(Interval::parse("2h").is_err());
    }

    /// Goal: the calendar edges parse and format exactly, both ways: leap
    /// days only in leap years, year ends, the epoch, both separators, and
    /// the range ends (1970, jiff's last instant) refused past them.
    #[test]
    fn times_at_calendar_edges() {
        assert_eq!(parse_time("2024-02-29").unwrap(), 1_709_164_800_000);
        assert_eq!(format_time(1_709_164_800_000), "2024-02-29T00:00:00Z");
        let new_year = parse_time("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(new_year, 1_767_225_600_000);
        assert_eq!(parse_time("2026-01-01 00:00Z").unwrap(), new_year);
        assert_eq!(
            parse_time("2025-12-31T23:59:59.999Z").unwrap(),
            new_year - 1_000
        );
        assert_eq!(format_time(new_year - 1), "2025-12-31T23:59:59Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_time("0").unwrap(), 0);
        let last = parse_time("9999-12-30T22:00:00Z").unwrap();
        assert_eq!(format_time(last), "9999-12-30T22:00:00Z");
        assert_eq!(parse_time(&(last + 999).to_string()).unwrap(), last + 999);
        for bad in [
            "2026-02-29",
            "2023-02-29T12:00:00Z",
            "1969-12-31T23:59:59Z",
            "9999-12-31",
            &(last + 1_000).to_string(),
            "2026-12-06T23:59:60Z",
            "2026-12-06T09:00:00z",
            "2026-12-06T09:00:00",
            "2026-12-06  09:00Z",
            "2026-12- 06",
            "+2026-12-06",
            "2026-12-06T09Z",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }
}
