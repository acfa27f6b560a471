//! Time, injected: wall-clock milliseconds for records, derived from a start
//! epoch plus tokio's (pausable) `Instant`, so paused-time tests are exact.

use std::rc::Rc;
use tokio::time::Instant;

/// The source of "now" for domain logic. Nothing else in the crate reads the
/// system clock.
pub trait Clock {
    /// Milliseconds since the Unix epoch (for records and wall-clock views).
    fn now_ms(&self) -> u64;
}

/// Shared clock handle handed to every actor.
pub type SharedClock = Rc<dyn Clock>;

/// `epoch_ms` at construction plus the tokio time elapsed since. Under
/// `tokio::time::pause()` it moves only when the test's clock moves.
#[derive(Debug, Clone)]
pub struct TokioClock {
    /// Wall-clock milliseconds that correspond to `start`.
    epoch_ms: u64,
    /// The tokio instant taken when the clock was built.
    start: Instant,
}

impl TokioClock {
    /// A clock that reads `epoch_ms` now. The daemon passes the real wall
    /// clock once at start; tests pass a fixed value.
    pub fn new(epoch_ms: u64) -> Self {
        Self {
            epoch_ms,
            start: Instant::now(),
        }
    }

    /// The same clock as a [`SharedClock`].
    pub fn shared(epoch_ms: u64) -> SharedClock {
        Rc::new(Self::new(epoch_ms))
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.start);
        self.epoch_ms
            .saturating_add(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
    }
}
