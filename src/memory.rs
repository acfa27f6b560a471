//! Process-wide memory settings, applied first thing in `main` (before any
//! thread starts).
//!
//! glibc's malloc serves blocks above its mmap threshold (128 KiB at start)
//! with `mmap`, and returns them to the kernel on `free`. By default the
//! threshold is *dynamic*: freeing such a block raises the threshold to the
//! block's size, so later blocks of that size come from the per-thread
//! arenas instead and stay resident after `free`. argon2 (every password
//! check) allocates 19 MiB: on glibc's default, 8 logins left an idle
//! daemon at 126 MiB RSS instead of 12 MiB (BENCHMARKS.md, "Footprint").
//! Setting the threshold explicitly turns the dynamic adjustment off.

/// The mmap threshold we fix: glibc's own starting value, 128 KiB.
pub const MMAP_THRESHOLD_BYTES: i32 = 128 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD_BYTES`], unless the
/// operator chose one with glibc's `MALLOC_MMAP_THRESHOLD_` variable.
/// A no-op on other C libraries. Returns whether the setting was applied.
pub fn tune_allocator() -> bool {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return false;
    }
    apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    // SAFETY: mallopt only changes malloc's parameters; it is called before
    // any other thread exists.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}
