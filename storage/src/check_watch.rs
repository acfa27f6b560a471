//! The bound on the background check of sled: each pass of the check runs
//! on a thread of its own (`edgecc-storage-check-pass`), watched by the
//! check thread. A pass that makes no progress (no batch of keys compared)
//! within `StorageConfig::check_stall_ms` is abandoned: sled 0.34.7 can
//! spin on a damaged tree for minutes (it retries a lookup up to a million
//! times before it panics, and its iterator as often; the FUSE power-cut
//! test's "open did not finish within 60000 ms"), and the check then
//! treats that sled exactly as one that panicked: moved aside, rebuilt
//! from the log.
//!
//! A thread inside sled cannot be killed. The abandoned one keeps the
//! sled it started with (the old one: it never asks for the new one), is
//! never joined (close waits only for the check thread), and carries a
//! [`Watch`], this pass's token: once marked abandoned, the pass stops at
//! its next step and writes nothing (checked again under the apply lock
//! before any repair), the apply lock it may hold counts as free
//! (`apply_lock`), and whatever it returns or panics with late goes to a
//! channel nobody reads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::Shared;

/// One pass's token: its progress, and whether the check gave up on it.
#[derive(Default)]
pub(crate) struct Watch {
    /// Steps (batches of keys compared) the pass made; the check thread
    /// sees a pass that stopped counting as stuck.
    progress: AtomicU64,
    /// Set once the check thread abandoned this pass: it must then touch
    /// nothing (another sled may be in place by now).
    abandoned: AtomicBool,
}

impl Watch {
    /// Counts one step of the pass.
    pub(crate) fn step(&self) {
        self.progress.fetch_add(1, Ordering::Release);
    }

    /// Whether the check thread abandoned this pass.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Gives up on this pass (also frees the apply lock it may hold, see
    /// `apply_lock`).
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }
}

/// How a watched pass ended.
pub(crate) enum Watched<T> {
    /// It returned (or its panic was turned into a result by `f`).
    Done(T),
    /// It made no progress within the bound and was abandoned.
    Stalled(Duration),
    /// The storage is closing: the pass was left to stop on its own.
    Closing,
}

/// Runs `f` on a thread of its own and waits for it, giving up on it when
/// its [`Watch`] shows no step for `stall`, or when the storage closes.
/// A thread that cannot be started runs `f` here, unwatched.
pub(crate) fn watched<T: Send + 'static>(
    shared: &Arc<Shared>,
    stall: Duration,
    f: impl FnOnce(&Shared, &Arc<Watch>) -> T + Send + 'static,
) -> Watched<T> {
    let watch = Arc::new(Watch::default());
    let (tx, rx) = mpsc::channel();
    let spawned = {
        let (shared, watch) = (Arc::clone(shared), Arc::clone(&watch));
        std::thread::Builder::new()
            .name("edgecc-storage-check-pass".into())
            .spawn(move || {
                let result = f(&shared, &watch);
                // Nobody listens once the pass was abandoned: dropped.
                let _ = tx.send(result);
            })
    };
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "Could not start a thread for the check's pass; it runs unwatched.");
        return match rx.recv() {
            Ok(result) => Watched::Done(result),
            Err(_) => Watched::Closing,
        };
    }
    let poll = (stall / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let mut seen = watch.progress.load(Ordering::Acquire);
    let mut since = Instant::now();
    loop {
        match rx.recv_timeout(poll) {
            Ok(result) => return Watched::Done(result),
            // The thread ended without a result: `f` panicked (it should
            // catch sled's panics itself); taken for a stuck pass.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                watch.abandon();
                return Watched::Stalled(since.elapsed());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if shared.stopping.load(Ordering::Relaxed) {
            watch.abandon();
            return Watched::Closing;
        }
        let now = watch.progress.load(Ordering::Acquire);
        if now != seen {
            seen = now;
            since = Instant::now();
        } else if since.elapsed() >= stall {
            watch.abandon();
            return Watched::Stalled(since.elapsed());
        }
    }
}
