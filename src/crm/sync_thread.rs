//! The CRM sync worker on a thread of its own, below routing in the OS
//! scheduler's order, so that replaying a backlog yields to routing and to
//! restart recovery.
//!
//! Why a thread and a nice value rather than pacing: on the actors'
//! thread, every request of a replay (encoding, the HTTP exchange, the
//! outbox reads, the settling) queues in the same event loop as the PBX
//! events, and a backlog drained at full concurrency puts routing behind
//! it (p99 arrival → offer 1.1 ms with the CRM down, 6.7 ms while the
//! backlog drained, before this). Pacing the replay by a guess of the
//! routing load needs a load signal and thresholds that hold on every box;
//! the kernel already has the signal. On its own thread, with its nice
//! value raised by [`SYNC_NICE_INCREMENT`] (on Linux a thread's nice value
//! is its own), the worker uses what CPU routing leaves: all of it when
//! the box is idle, about a tenth of a core when routing wants the same
//! core (CFS weights 110 against 1024). Delivery order and exactly-once
//! are untouched: it is the same worker on the same outbox.
//!
//! The worker's clock on that thread starts at the actors' clock's
//! reading and runs in real time. `EDGECC_CRM_SYNC_THREAD=shared` keeps
//! the worker on the actors' thread, as before (a comparison knob for
//! the figures in BENCHMARKS.md, not a setting).

use actix::prelude::*;
use edgecc_actors::TokioClock;
use edgecc_storage::{Outbox, StateTree};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::sync::{SyncConfig, SyncWorker};
use super::CrmAdapter;

/// How much the sync thread's nice value is raised above the daemon's.
pub const SYNC_NICE_INCREMENT: i32 = 10;

/// The environment variable that keeps the worker on the actors' thread
/// (`shared`); anything else, or unset: its own thread.
pub const SYNC_THREAD_ENV: &str = "EDGECC_CRM_SYNC_THREAD";

/// Whether the worker gets its own thread (see [`SYNC_THREAD_ENV`]).
pub fn own_thread_wanted() -> bool {
    !matches!(
        std::env::var(SYNC_THREAD_ENV).as_deref().map(str::trim),
        Ok("shared")
    )
}

/// The sync worker's thread; stopped and joined when dropped, so that no
/// delivery outlives the system that started it (a crash of the actors'
/// thread drops it too).
pub struct SyncThread {
    /// The worker's arbiter; `None` once stopped.
    arbiter: Option<Arbiter>,
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        if let Some(arbiter) = self.arbiter.take() {
            arbiter.stop();
            if arbiter.join().is_err() {
                warn!("The CRM sync thread panicked.");
            }
        }
    }
}

/// What the worker is built from on its thread.
pub struct SyncSetup<E> {
    /// Where records come from and are settled.
    pub outbox: Outbox,
    /// Builds the CRM adapter on the worker's thread (its HTTP client is
    /// single-threaded); its error is the start's error.
    pub adapter: Box<dyn FnOnce() -> Result<std::rc::Rc<dyn CrmAdapter>, E> + Send>,
    /// The actors' clock's reading now (ms): the worker's clock starts
    /// there.
    pub epoch_ms: u64,
    /// Limits and timings.
    pub config: SyncConfig,
    /// CRM links of delivered creates.
    pub links: Option<StateTree>,
    /// Retry jitter seed.
    pub seed: u64,
}

/// Why the worker could not start on its thread.
#[derive(Debug, thiserror::Error)]
pub enum SyncStartError<E> {
    /// The adapter could not be built.
    #[error(transparent)]
    Adapter(E),
    /// The thread ended before answering (a panic in the adapter's
    /// constructor).
    #[error("the CRM sync thread ended before starting its worker")]
    ThreadGone,
}

/// Starts the worker on a new thread with a raised nice value; answers its
/// address and the thread's guard, or why not.
pub async fn start<E: Send + 'static>(
    setup: SyncSetup<E>,
) -> Result<(Addr<SyncWorker>, SyncThread), SyncStartError<E>> {
    let arbiter = Arbiter::new();
    let (tx, rx) = oneshot::channel();
    let SyncSetup {
        outbox,
        adapter,
        epoch_ms,
        config,
        links,
        seed,
    } = setup;
    arbiter.spawn_fn(move || {
        lower_this_thread();
        let started = adapter().map(|adapter| {
            SyncWorker::new(
                outbox,
                adapter,
                TokioClock::shared(epoch_ms),
                config,
                links,
                seed,
            )
            .start()
        });
        let _ = tx.send(started);
    });
    let guard = SyncThread {
        arbiter: Some(arbiter),
    };
    match rx.await {
        Ok(Ok(addr)) => Ok((addr, guard)),
        Ok(Err(e)) => Err(SyncStartError::Adapter(e)),
        Err(_) => Err(SyncStartError::ThreadGone),
    }
}

/// Raises the calling thread's nice value by [`SYNC_NICE_INCREMENT`]
/// (Linux: `setpriority(PRIO_PROCESS, 0, …)` changes only the calling
/// thread). Logged, never fatal.
fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpriority/setpriority read and change only the calling
        // thread's nice value; errno is reset first because -1 is a valid
        // nice value.
        let (now, err) = unsafe {
            *libc::__errno_location() = 0;
            let now = libc::getpriority(libc::PRIO_PROCESS, 0);
            (now, *libc::__errno_location())
        };
        if err != 0 {
            warn!(
                errno = err,
                "CRM sync thread: cannot read its nice value; left as is."
            );
            return;
        }
        let nice = (now + SYNC_NICE_INCREMENT).min(19);
        // SAFETY: as above.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        if rc == 0 {
            info!(nice, "CRM sync on its own thread, below routing.");
        } else {
            warn!(
                error = %std::io::Error::last_os_error(),
                "CRM sync thread: cannot lower its priority; left as is."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread's nice value goes up by the increment, and only the
    /// calling thread's.
    #[cfg(target_os = "linux")]
    #[test]
    fn lowers_only_the_calling_thread() {
        // SAFETY: reading the calling thread's nice value.
        let read = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let mine = read();
        let theirs = std::thread::spawn(move || {
            lower_this_thread();
            read()
        })
        .join()
        .expect("thread");
        assert_eq!(theirs, (mine + SYNC_NICE_INCREMENT).min(19));
        assert_eq!(read(), mine, "the spawning thread keeps its nice value");
    }
}
