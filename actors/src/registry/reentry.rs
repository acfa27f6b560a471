//! Re-entry: the places kept by callers who left a queue (a callback, or a
//! re-entry window), by caller number, so a new call from that number to
//! that queue within the window takes the old place back instead of
//! joining at the end. The registry owns the table (it sees every
//! arrival); the kept call's actor says when a place is kept
//! ([`PlaceKept`]) and decides whether it can still be taken
//! ([`Reenter`]). A taken place keeps its call id: later events of the
//! new caller leg reach the old call through an alias. Nothing here is
//! persisted of its own: after a restart both the kept places and the
//! aliases are rebuilt from the restored calls ([`Reentries::restore`]),
//! whose records carry the callback entry and the caller leg.

use super::{LiveCall, Registry};
use crate::call::actor::{CallActor, Reenter};
use crate::call::Call;
use crate::env::SharedEnv;
use crate::ids::{CallId, LegId, QueueId};
use crate::ports::AttachedVar;
use actix::prelude::*;
use std::collections::HashMap;
use tracing::{debug, info};

/// Most places kept for re-entry at once; past it the oldest window is
/// dropped (the call itself keeps its place, only re-entry is lost).
pub const KEPT_PLACES_MAX: usize = 10_000;

/// A waiting call's caller left and its place is kept (from the call).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PlaceKept {
    /// The call keeping the place.
    pub call: CallId,
    /// The caller's number.
    pub ani: String,
    /// The queue.
    pub queue: QueueId,
    /// End of the re-entry window.
    pub until_ms: u64,
}

/// One kept place.
#[derive(Clone, Debug)]
struct Kept {
    /// The caller's number.
    ani: String,
    /// The call keeping it.
    call: CallId,
    /// Its queue.
    queue: QueueId,
    /// End of the window.
    until_ms: u64,
}

/// The kept places and the aliases of taken ones.
#[derive(Debug, Default)]
pub(crate) struct Reentries {
    /// Kept places, oldest first.
    kept: Vec<Kept>,
    /// New caller leg's call id → the call whose place it took.
    aliases: HashMap<CallId, CallId>,
}

impl Reentries {
    /// Records a kept place (a later one of the same call replaces it).
    pub fn keep(&mut self, call: CallId, ani: String, queue: QueueId, until_ms: u64) {
        self.kept.retain(|k| k.call != call);
        if self.kept.len() >= KEPT_PLACES_MAX {
            self.kept.remove(0);
        }
        self.kept.push(Kept {
            ani,
            call,
            queue,
            until_ms,
        });
    }

    /// The call whose place `ani` may take in `queue` at `now_ms` (the
    /// entry is used up); expired windows are dropped on the way.
    pub fn claim(&mut self, ani: &str, queue: &QueueId, now_ms: u64) -> Option<CallId> {
        self.kept.retain(|k| k.until_ms >= now_ms);
        let i = self
            .kept
            .iter()
            .position(|k| !ani.is_empty() && k.ani == ani && &k.queue == queue)?;
        Some(self.kept.remove(i).call)
    }

    /// `new` (a caller leg's call id) now reaches `old`.
    pub fn alias(&mut self, new: CallId, old: CallId) {
        self.aliases.insert(new, old);
    }

    /// The call an aliased id reaches.
    pub fn resolve(&self, id: &CallId) -> Option<&CallId> {
        self.aliases.get(id)
    }

    /// What a call restored after a restart says about re-entry: the place
    /// it still keeps (its callback entry's window), and the alias of a
    /// caller who took its place back (its caller leg is not its own: the
    /// `Call` record, durable through the state port, carries it), so the
    /// returning caller's events and legs reach it again.
    pub fn restore(&mut self, call: &Call) {
        if let (Some(e), Some(r)) = (&call.callback, &call.rules) {
            if e.reentry_until_ms > 0 {
                self.keep(
                    call.id.clone(),
                    call.ani.clone(),
                    r.queue.clone(),
                    e.reentry_until_ms,
                );
            }
        }
        let leg_call = call.caller_leg.call_id();
        if leg_call != call.id {
            self.alias(leg_call, call.id.clone());
        }
    }

    /// A call is gone: its kept place and its aliases too.
    pub fn forget(&mut self, call: &CallId) {
        self.kept.retain(|k| &k.call != call);
        self.aliases.retain(|_, old| old != call);
    }
}

impl Registry {
    /// An inbound call arrived: a caller who kept a place in the queue its
    /// DNIS reaches takes it back (asked of the kept call, which may have
    /// moved on); any other caller gets a new call.
    pub(super) fn call_arrived(
        &mut self,
        leg: LegId,
        ani: String,
        dnis: String,
        attached: Vec<AttachedVar>,
        ctx: &mut Context<Self>,
    ) {
        let env = self.env().clone();
        let queue = env
            .directory
            .by_dnis
            .get(&dnis)
            .cloned()
            .or_else(|| env.config.routing.default_queue.clone().map(QueueId::new));
        let now = env.now_ms();
        let kept = queue
            .and_then(|q| self.reentry.claim(&ani, &q, now))
            .and_then(|old| {
                let live = self.calls.get(&old).filter(|c| !c.finished)?;
                Some((old, live.addr.clone()))
            });
        let Some((old, addr)) = kept else {
            return self.start_inbound(&env, leg, ani, dnis, attached);
        };
        let ask = addr.send(Reenter { leg: leg.clone() });
        ctx.spawn(ask.into_actor(self).map(move |res, act, _ctx| match res {
            Ok(Ok(())) => {
                info!(call_id = %old, leg_id = %leg, ani = %ani, "Returning caller resumes the kept place.");
                act.reentry.alias(leg.call_id(), old);
            }
            _ => {
                debug!(call_id = %old, leg_id = %leg, "Kept place no longer open; a new call.");
                let env = act.env().clone();
                act.start_inbound(&env, leg, ani, dnis, attached);
            }
        }));
    }

    /// Starts the actor of a new inbound call.
    pub(super) fn start_inbound(
        &mut self,
        env: &SharedEnv,
        leg: LegId,
        ani: String,
        dnis: String,
        attached: Vec<AttachedVar>,
    ) {
        let id = leg.call_id();
        let caller_priority = crate::queue::priority::for_caller(&env.config.routing, &ani);
        let (mut call, fx) = Call::inbound(
            &env.config.site_id,
            leg,
            ani,
            dnis,
            attached,
            env.now_ms(),
            env.config.timers.offer_timeout_ms,
        );
        // A known caller's priority, unless the attached data gave one.
        if let (0, Some(p)) = (call.own_priority, caller_priority) {
            call.priority = p;
            call.own_priority = p;
        }
        let addr: Addr<CallActor> = CallActor::start_with(env.clone(), call, fx);
        self.calls.insert(
            id,
            LiveCall {
                addr,
                view: None,
                finished: false,
            },
        );
    }
}

impl Handler<PlaceKept> for Registry {
    type Result = ();

    fn handle(&mut self, msg: PlaceKept, _ctx: &mut Self::Context) {
        self.reentry
            .keep(msg.call, msg.ani, msg.queue, msg.until_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A place is claimed once, by the same number in the same queue,
    /// within its window; a gone call takes its place and aliases along.
    #[test]
    fn places_are_claimed_once_within_the_window() {
        let (q, other) = (QueueId::new("q"), QueueId::new("r"));
        let mut r = Reentries::default();
        r.keep(CallId::new("c1"), "+1".into(), q.clone(), 100);
        assert_eq!(r.claim("+2", &q, 10), None);
        assert_eq!(r.claim("+1", &other, 10), None);
        assert_eq!(r.claim("+1", &q, 10), Some(CallId::new("c1")));
        assert_eq!(r.claim("+1", &q, 10), None, "used up");
        r.keep(CallId::new("c2"), "+1".into(), q.clone(), 100);
        assert_eq!(r.claim("+1", &q, 101), None, "window over");
        r.keep(CallId::new("c3"), "+3".into(), q.clone(), 100);
        r.alias(CallId::new("n3"), CallId::new("c3"));
        assert_eq!(r.resolve(&CallId::new("n3")), Some(&CallId::new("c3")));
        r.forget(&CallId::new("c3"));
        assert_eq!(r.resolve(&CallId::new("n3")), None);
        assert_eq!(r.claim("+3", &q, 10), None);
    }
}
