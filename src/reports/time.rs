//! Report times: UTC instants written as RFC 3339 (`2026-12-06T09:00:00Z`),
//! a date (`2026-12-06`, midnight UTC) or ms since the Unix epoch, and the
//! report intervals (15 minutes, an hour, a day), aligned on UTC.

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

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Parses a report time: RFC 3339 in UTC (`Z`, seconds optional
/// fractions ignored), a date (midnight UTC) or ms since the epoch.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "`{}` is not a time: use 2026-12-06T09:00:00Z, 2026-12-06 or ms since the epoch",
            shown(s)
        )
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| bad());
    }
    let num = |part: &str| -> Result<u32, String> {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut it = date.splitn(3, '-');
    let (y, m, d) = match (it.next(), it.next(), it.next()) {
        (Some(y), Some(m), Some(d)) if y.len() == 4 => (num(y)?, num(m)?, num(d)?),
        _ => return Err(bad()),
    };
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs: u64 = 0;
    if let Some(t) = time {
        let t = t.strip_suffix('Z').ok_or_else(bad)?;
        let t = t.split('.').next().unwrap_or(t);
        let parts: Vec<&str> = t.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(bad());
        }
        let hh = num(parts[0])?;
        let mm = num(parts[1])?;
        let ss = match parts.get(2) {
            Some(p) => num(p)?,
            None => 0,
        };
        if hh > 23 || mm > 59 || ss > 59 {
            return Err(bad());
        }
        secs = u64::from(hh) * 3_600 + u64::from(mm) * 60 + u64::from(ss);
    }
    let days = days_from_civil(i64::from(y), m, d);
    let (cy, cm, cd) = civil_from_days(days);
    if (cy, cm, cd) != (i64::from(y), m, d) {
        return Err(bad());
    }
    Ok(days as u64 * DAY_MS + secs * 1_000)
}

/// `ms` since the epoch as RFC 3339 UTC (`2026-12-06T09:15:00Z`).
pub fn format_time(ms: u64) -> String {
    let days = (ms / DAY_MS) as i64;
    let (y, m, d) = civil_from_days(days);
    let s = (ms % DAY_MS) / 1_000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3_600,
        (s / 60) % 60,
        s % 60
    )
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
}
