//! Hands freed heap memory back to the kernel (glibc's `malloc_trim`).
//!
//! sled allocates and frees a node copy for every change, and open builds
//! then drops large scan buffers. glibc keeps what was freed in its arenas,
//! so RSS stays at its high-water mark long after the work is done: in the
//! outbox benchmark a 1,000,000-record drain held 145 MiB resident while
//! 87 MiB was live. The writer trims after a group at most once per
//! [`TRIM_EVERY`] (a trim took 0.4-5 ms there), open trims after recovery
//! and close trims once sled is gone. A no-op on other C libraries.

use std::time::{Duration, Instant};

/// Least time between two trims by the writer.
pub(crate) const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Rate-limits [`trim`].
#[derive(Debug)]
pub(crate) struct Trimmer {
    last: Option<Instant>,
}

impl Trimmer {
    pub(crate) fn new() -> Trimmer {
        Trimmer { last: None }
    }

    /// Trims unless the last trim was less than [`TRIM_EVERY`] ago.
    pub(crate) fn maybe_trim(&mut self) {
        if self.last.is_some_and(|t| t.elapsed() < TRIM_EVERY) {
            return;
        }
        trim();
        self.last = Some(Instant::now());
    }
}

/// Returns free heap pages to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn trim() {
    // SAFETY: malloc_trim only walks glibc's own heap under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn trim() {}
