//! Wall-clock time at the daemon's edge, and its UTC text form (by jiff,
//! the daemon's one calendar crate).
//!
//! Domain logic never reads the clock itself (the actors take an injected
//! clock, storage takes `now_ms` arguments); the daemon's adapters read it
//! here, in one place.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;

/// Milliseconds since the Unix epoch (0 if the system clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Wall-clock microseconds since the Unix epoch (event stamps on the
/// WebSocket, so a client on the same host can measure delivery latency).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The instant `ms` after the Unix epoch. Past jiff's last instant
/// (`9999-12-30T22:00:00.999999999Z`, thousands of years past any clock it
/// is fed from) it is that last instant: formatting never panics.
pub fn timestamp(ms: u64) -> Timestamp {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The largest ms since the Unix epoch that `timestamp` keeps exactly.
pub fn timestamp_ms_max() -> u64 {
    Timestamp::MAX.as_millisecond().unsigned_abs()
}

/// Formats ms since the Unix epoch as UTC `YYYY-MM-DDTHH:MM:SS.mmm`
/// followed by `zone` (`"Z"` for RFC 3339, `"+0000"` as Asterisk writes it).
pub fn utc_ms(ms: u64, zone: &str) -> String {
    format!("{}{zone}", timestamp(ms).strftime("%Y-%m-%dT%H:%M:%S%.3f"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: known instants format exactly in both zones' spellings: the
    /// epoch, leap days, the last ms of a year and of a day, and the
    /// instants past jiff's range are its last one, not a panic.
    #[test]
    fn utc_ms_formats_known_instants() {
        assert_eq!(utc_ms(0, "Z"), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_ms(7, "+0000"), "1970-01-01T00:00:00.007+0000");
        // 2024-02-29T12:00:00Z, a leap day.
        assert_eq!(utc_ms(1_709_208_000_000, "Z"), "2024-02-29T12:00:00.000Z");
        // 2000 is a leap year (divisible by 400).
        assert_eq!(utc_ms(951_782_400_000, "Z"), "2000-02-29T00:00:00.000Z");
        // The last ms of 2025 and the first of 2026.
        assert_eq!(
            utc_ms(1_767_225_599_999, "+0000"),
            "2025-12-31T23:59:59.999+0000"
        );
        assert_eq!(
            utc_ms(1_767_225_600_000, "+0000"),
            "2026-01-01T00:00:00.000+0000"
        );
        assert_eq!(
            utc_ms(1_795_278_919_394, "+0000"),
            "2026-11-21T16:35:19.394+0000"
        );
        let last = "9999-12-30T22:00:00.999Z";
        assert_eq!(utc_ms(timestamp_ms_max(), "Z"), last);
        assert_eq!(utc_ms(timestamp_ms_max() + 1, "Z"), last);
        assert_eq!(utc_ms(u64::MAX, "Z"), last);
    }
}
