//! The apply lock: the order in which sled is written (a group the writer
//! notes in the live map and applies, a batch of the background check,
//! the swap of a quarantined sled), and the bound on a check stuck inside
//! sled while it holds that order.
//!
//! A pass of the check holds the lock with its [`Watch`]: it may read a
//! page of sled again, and repair entries, under it. sled 0.34.7 can spin
//! in a read of a damaged tree for minutes (`check_watch`); a plain mutex
//! held by such a pass would stall the writer (no commit for anyone) and
//! the check itself (its quarantine takes the lock) for as long. Once the
//! check abandoned that pass, the lock counts as free: the next one to ask
//! takes it over. The stuck thread, when sled lets it go, sees its pass
//! abandoned and writes nothing more (and the sled it holds is the old,
//! failed one, which the check moves aside).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::check_watch::Watch;

/// How often a waiter looks again whether a check pass holding the lock
/// was abandoned (abandoning does not wake the waiters).
const ABANDONED_POLL: Duration = Duration::from_millis(20);

/// Who holds the lock.
#[derive(Default)]
struct Holder {
    /// Which hold this is (a taken-over guard must not release its
    /// successor's hold); 0 when free.
    ticket: u64,
    /// The pass of the check that holds it, if the check does.
    pass: Option<Arc<Watch>>,
    /// The last ticket handed out.
    issued: u64,
}

/// See the module doc.
#[derive(Default)]
pub(crate) struct ApplyLock {
    /// The current holder.
    holder: Mutex<Holder>,
    /// Notified when a hold ends.
    released: Condvar,
}

/// One hold of the [`ApplyLock`]; released on drop.
pub(crate) struct ApplyGuard<'a> {
    /// The lock held.
    lock: &'a ApplyLock,
    /// This hold's ticket.
    ticket: u64,
}

impl ApplyLock {
    /// Waits for the lock (the writer, the check's own thread).
    pub(crate) fn lock(&self) -> ApplyGuard<'_> {
        self.acquire(None)
    }

    /// Waits for the lock for a pass of the check: given up on (`pass`
    /// abandoned), its hold no longer keeps anyone out.
    pub(crate) fn lock_for_pass(&self, pass: &Arc<Watch>) -> ApplyGuard<'_> {
        self.acquire(Some(Arc::clone(pass)))
    }

    fn acquire(&self, pass: Option<Arc<Watch>>) -> ApplyGuard<'_> {
        let mut holder = self.holder.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let free = holder.ticket == 0 || holder.pass.as_ref().is_some_and(|p| p.is_abandoned());
            if free {
                holder.issued += 1;
                holder.ticket = holder.issued;
                holder.pass = pass;
                return ApplyGuard {
                    lock: self,
                    ticket: holder.ticket,
                };
            }
            holder = if holder.pass.is_some() {
                self.released
                    .wait_timeout(holder, ABANDONED_POLL)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            } else {
                self.released
                    .wait(holder)
                    .unwrap_or_else(|p| p.into_inner())
            };
        }
    }
}

impl Drop for ApplyGuard<'_> {
    fn drop(&mut self) {
        let mut holder = self.lock.holder.lock().unwrap_or_else(|p| p.into_inner());
        // Taken over meanwhile (this was an abandoned pass): not ours to end.
        if holder.ticket == self.ticket {
            holder.ticket = 0;
            holder.pass = None;
            drop(holder);
            self.lock.released.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// Goal: a check pass stuck while it holds the lock keeps others out
    /// only until it is abandoned, and its late release does not end the
    /// hold of whoever took over. Method: a pass holds the lock on another
    /// thread; a writer is still out after 100 ms; the pass is abandoned:
    /// the writer gets in; the pass's guard dropped meanwhile leaves the
    /// writer's hold in place until the writer drops it.
    #[test]
    fn an_abandoned_pass_no_longer_holds_the_lock() {
        let lock = Arc::new(ApplyLock::default());
        let pass = Arc::new(Watch::default());
        let (held_tx, held_rx) = mpsc::channel();
        let (stuck_end_tx, stuck_end_rx) = mpsc::channel::<()>();
        let stuck = {
            let (lock, pass) = (Arc::clone(&lock), Arc::clone(&pass));
            std::thread::spawn(move || {
                let _guard = lock.lock_for_pass(&pass);
                held_tx.send(()).expect("send");
                let _ = stuck_end_rx.recv();
            })
        };
        held_rx.recv().expect("the pass holds the lock");
        let (in_tx, in_rx) = mpsc::channel();
        let (writer_end_tx, writer_end_rx) = mpsc::channel::<()>();
        let writer = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || {
                let _guard = lock.lock();
                in_tx.send(Instant::now()).expect("send");
                let _ = writer_end_rx.recv();
            })
        };
        assert!(
            in_rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "a live pass's hold keeps the writer out"
        );
        pass.abandon();
        in_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer takes the lock over");
        // The stuck pass returns late and drops its guard.
        stuck_end_tx.send(()).expect("send");
        stuck.join().expect("join");
        assert_ne!(
            lock.holder.lock().expect("holder").ticket,
            0,
            "the late release ended the writer's hold"
        );
        writer_end_tx.send(()).expect("send");
        writer.join().expect("join");
        assert_eq!(lock.holder.lock().expect("holder").ticket, 0);
    }
}
