//! How callers join a group commit: the writer waits, briefly, for the
//! callers its last group answered to come back before it syncs the next
//! group, so that N callers in a loop share one `fdatasync` instead of
//! splitting into two alternating groups.
//!
//! Without the wait, N closed-loop callers settle into two groups: while
//! group A (k callers) is being synced the other N - k queue up and form
//! group B the moment A is answered, before A's callers have sent again;
//! those then queue behind B. Every sync carries about N / 2 records,
//! half of what one sync could carry (64 appenders reached 0.19-0.45x a raw
//! `fdatasync` of 64 records at a time).
//!
//! The rule (PostgreSQL's `commit_delay` and `commit_siblings` in spirit,
//! sized from what the writer saw instead of configured): the callers in
//! play are the last group's plus those already queued when it was answered
//! (they came while it was synced, so they are other callers). The next
//! group waits for up to that many operations, and at most
//! [`LINGER_MAX`] or half the last group's commit time, whichever is
//! shorter: never longer than the sync it may save. A caller alone, or
//! callers that do not come back, cost at most one such wait before the
//! estimate drops to what arrived. Durability is unchanged: every
//! operation is still answered only after the frame holding it is synced.

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// Longest wait for the callers of the last group.
pub(crate) const LINGER_MAX: Duration = Duration::from_millis(2);

/// What the writer remembers of its last group to size the next one.
#[derive(Debug, Default)]
pub(crate) struct Linger {
    /// Operations the last group committed (each answers one caller).
    last_group: usize,
    /// Operations already queued when the last group was answered.
    queued_then: usize,
    /// How long the last group took from its first op taken to its answers.
    last_commit: Duration,
    /// When the last group was answered: the wait is counted from here.
    answered_at: Option<Instant>,
}

impl Linger {
    /// Notes a group of `ops` operations answered now, that took `took`,
    /// with `queued` operations waiting in the channel.
    pub(crate) fn answered(&mut self, ops: usize, queued: usize, took: Duration) {
        self.last_group = ops;
        self.queued_then = queued;
        self.last_commit = took;
        self.answered_at = Some(Instant::now());
    }

    /// How many operations the next group waits for, at most `max`: the
    /// callers in play (see the module note). 0 or 1 means no wait.
    pub(crate) fn target(&self, max: usize) -> usize {
        if self.last_group < 2 && self.queued_then == 0 {
            return 0;
        }
        (self.last_group + self.queued_then).min(max)
    }

    /// Until when the next group may wait for its callers; `None` when
    /// it should not wait.
    pub(crate) fn deadline(&self, max: usize) -> Option<Instant> {
        if self.target(max) < 2 {
            return None;
        }
        let wait = (self.last_commit / 2).min(LINGER_MAX);
        self.answered_at.map(|at| at + wait)
    }
}

/// What a wait on the channel found.
pub(crate) enum Recv<T> {
    /// An operation.
    Op(T),
    /// Nothing by the deadline.
    TimedOut,
    /// Every sender is gone.
    Closed,
}

/// Wakes the writer thread parked in [`recv_until`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Receives from `rx` on this (non-async) thread, waiting until
/// `deadline` at most: the channel wakes the thread when an operation
/// arrives (no polling, no spinning).
pub(crate) fn recv_until<T>(rx: &mut mpsc::Receiver<T>, deadline: Instant) -> Recv<T> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match rx.poll_recv(&mut cx) {
            Poll::Ready(Some(op)) => return Recv::Op(op),
            Poll::Ready(None) => return Recv::Closed,
            Poll::Pending => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Recv::TimedOut;
        }
        // Woken by the channel, or spuriously: polled again either way.
        std::thread::park_timeout(deadline - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the next group waits for the callers in play, and a caller
    /// alone never waits. Method: the sizes the two alternating groups of
    /// 64 closed-loop callers had (10 answered, 54 queued meanwhile).
    #[test]
    fn the_next_group_waits_for_the_callers_in_play() {
        let mut linger = Linger::default();
        assert_eq!(linger.target(1024), 0);
        assert!(linger.deadline(1024).is_none());
        // One caller in a loop: nothing queued when it is answered.
        linger.answered(1, 0, Duration::from_millis(1));
        assert_eq!(linger.target(1024), 0);
        assert!(linger.deadline(1024).is_none());
        // 64 callers split 10 / 54: the next group waits for all 64.
        linger.answered(10, 54, Duration::from_millis(1));
        assert_eq!(linger.target(1024), 64);
        let deadline = linger.deadline(1024).expect("waits");
        // Half the last commit, from its answer.
        let answered = linger.answered_at.expect("answered");
        assert_eq!(deadline - answered, Duration::from_micros(500));
        // The merged group of 64: the same callers, still 64.
        linger.answered(64, 0, Duration::from_millis(1));
        assert_eq!(linger.target(1024), 64);
        // Never more than a group holds, never longer than LINGER_MAX.
        linger.answered(1000, 900, Duration::from_secs(1));
        assert_eq!(linger.target(1024), 1024);
        let answered = linger.answered_at.expect("answered");
        assert_eq!(linger.deadline(1024).expect("waits") - answered, LINGER_MAX);
    }

    /// Goal: the timed receive hands over what was sent from another
    /// thread, and gives up at its deadline when nothing comes (no timing
    /// asserted beyond "not before the deadline").
    #[test]
    fn recv_until_gets_what_is_sent_and_times_out_otherwise() {
        let (tx, mut rx) = mpsc::channel::<u32>(4);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.blocking_send(7).expect("send");
            tx
        });
        let far = Instant::now() + Duration::from_secs(60);
        assert!(matches!(recv_until(&mut rx, far), Recv::Op(7)));
        let tx = sender.join().expect("sender");
        let deadline = Instant::now() + Duration::from_millis(30);
        assert!(matches!(recv_until(&mut rx, deadline), Recv::TimedOut));
        assert!(Instant::now() >= deadline);
        drop(tx);
        assert!(matches!(recv_until(&mut rx, far), Recv::Closed));
    }
}
