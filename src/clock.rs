//! Wall-clock time at the daemon's edge.
//!
//! Domain logic never reads the clock itself (the actors take an injected
//! clock, storage takes `now_ms` arguments); the daemon's adapters read it
//! here, in one place.

use std::time::{SystemTime, UNIX_EPOCH};

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
