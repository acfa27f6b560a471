//! Turning a [`StateSnapshot`] into actors: which call actor each agent
//! and queue entry points to, the order of each queue's line, and the
//! repairs a snapshot may need (an agent reserved for a call whose record
//! is gone is freed; one talking on such a call is freed Not Ready with
//! [`SystemReason::Restart`], since its phone may still carry that call;
//! one whose record lags a call that ended is settled from that call's
//! trail, into the wrap-up the call gave it: see [`ended`]; an agent a
//! live call names is settled against that call, which owns who is on
//! it: see [`parties`]).
//! The PBX is not asked anything here: the reconcile does that. Desktops
//! awaited after the restart get their grace once the HTTP layer listens
//! ([`AwaitDesktops`]).
//!
//! [`SystemReason::Restart`]: crate::agent::SystemReason::Restart

use crate::agent::actor::AwaitDesktops;
use crate::agent::{Agent, AgentState, NotReadyReason, OfferOutcome, SystemReason};
use crate::call::actor::CallActor;
use crate::call::CallPhase;
use crate::durable::StateSnapshot;
use crate::env::SharedEnv;
use crate::ids::{AgentId, CallId, QueueId};
use crate::queue::actor::EnqueueCall;
use crate::queue::needs::CallNeeds;
use actix::prelude::*;
use std::collections::{HashMap, HashSet};
use tracing::warn;

mod ended;
mod parties;

/// A queue entry to rebuild: the call as it joins its restored queue.
pub(crate) type WaitingEntry = EnqueueCall;

/// A queued call seen in the snapshot: its place time, id, priority, tried
/// agents, caller number and needs (its own skills, when its stint began),
/// sorted into the line.
type QueuedCall = (u64, CallId, u8, Vec<AgentId>, String, CallNeeds);

/// The actors a snapshot rebuilds, not yet started.
#[derive(Default)]
pub(crate) struct Restored {
    /// Agents by id, repaired.
    pub agents: HashMap<AgentId, Agent>,
    /// Each restored call's address (agents and queues point to it).
    pub call_addrs: HashMap<CallId, Addr<CallActor>>,
    /// Call actors with their contexts, to start.
    pub calls: Vec<(Context<CallActor>, CallActor)>,
    /// Calls restored already ended (lingering for wrap-up codes).
    pub ended: HashSet<CallId>,
    /// Each queue's line in routing order.
    pub queues: HashMap<QueueId, Vec<WaitingEntry>>,
}

impl Restored {
    /// Builds the actors of `snapshot` on `env`.
    pub fn from_snapshot(env: &SharedEnv, snapshot: StateSnapshot) -> Self {
        let now = env.now_ms();
        let mut out = Self::default();
        let named = parties::named_by_calls(&snapshot.calls);
        let grace = env.config.timers.offer_lease_grace_ms;
        for (id, mut agent) in snapshot.agents {
            if let Some(call) = agent.state.call().and_then(|c| snapshot.calls.get(c)) {
                ended::settle(&mut agent, call, &env.config, now);
            }
            free_if_orphaned(&mut agent, &snapshot.calls, now);
            parties::settle(&mut agent, named.get(&id), grace, now);
            out.agents.insert(id, agent);
        }
        for (id, call) in snapshot.calls {
            let linger_ms = out
                .agents
                .values()
                .filter_map(|a| match &a.state {
                    AgentState::WrapUp {
                        call: c, until_ms, ..
                    } if *c == id => Some(until_ms.saturating_sub(now)),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            if call.is_ended() {
                out.ended.insert(id.clone());
            }
            let ctx: Context<CallActor> = Context::new();
            out.call_addrs.insert(id, ctx.address());
            out.calls
                .push((ctx, CallActor::restored(env.clone(), call, linger_ms)));
        }
        // Each queue's line: the persisted order of the calls still queued
        // there, then any queued call the order misses (by arrival).
        let mut queued: HashMap<QueueId, Vec<QueuedCall>> = HashMap::new();
        for (_, actor) in &out.calls {
            let c = actor.call();
            if let CallPhase::Queued { queue, since_ms } = &c.phase {
                queued.entry(queue.clone()).or_default().push((
                    *since_ms,
                    c.id.clone(),
                    c.priority,
                    c.tried.clone(),
                    c.ani.clone(),
                    c.needs(now),
                ));
            }
        }
        for (queue, mut entries) in queued {
            let order = snapshot.queues.get(&queue);
            let place = |id: &CallId| order.and_then(|o| o.iter().position(|c| c == id));
            entries.sort_by(|a, b| {
                let (pa, pb) = (place(&a.1), place(&b.1));
                match (pa, pb) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => (a.0, &a.1).cmp(&(b.0, &b.1)),
                }
            });
            let line = entries
                .into_iter()
                .filter_map(|(since_ms, call, priority, tried, ani, needs)| {
                    let addr = out.call_addrs.get(&call)?.clone();
                    Some(EnqueueCall {
                        call,
                        addr,
                        priority,
                        since_ms,
                        tried,
                        ani,
                        needs,
                    })
                })
                .collect();
            out.queues.insert(queue, line);
        }
        out
    }
}

/// The HTTP layer listens: each agent whose desktop was connected at the
/// kill now waits one grace for it (see [`crate::agent::presence`]).
impl Handler<AwaitDesktops> for super::Registry {
    type Result = ();

    fn handle(&mut self, msg: AwaitDesktops, _ctx: &mut Self::Context) {
        for handle in self.env().directory.agents.values() {
            handle.addr.do_send(msg);
        }
    }
}

/// An agent reserved for, or talking on, a call whose record is gone (or
/// ended) cannot be resolved by the PBX reconcile: its offer is withdrawn
/// or its part in the call ends, so no agent stays reserved for nothing.
/// The talking one comes back Not Ready ([`SystemReason::Restart`]; a
/// pending logout is kept): edgecc lost that call, but the agent's phone
/// may still carry it, so nothing is offered until the agent says Ready.
fn free_if_orphaned(
    agent: &mut Agent,
    calls: &std::collections::BTreeMap<CallId, crate::call::Call>,
    now: u64,
) {
    let live = |c: &CallId| calls.get(c).is_some_and(|c| !c.is_ended());
    match agent.state.clone() {
        AgentState::Reserved { call, token, .. } if !live(&call) => {
            warn!(agent_id = %agent.id, call_id = %call, reason = "restart", "Offer of a call gone while edgecc was down withdrawn.");
            let _ = agent.offer_ended(&call, token, OfferOutcome::Withdrawn, now);
        }
        AgentState::Talking { call, .. } if !live(&call) => {
            warn!(agent_id = %agent.id, call_id = %call, reason = "restart", "Agent freed, Not Ready, from a call whose state was lost.");
            let _ = agent.set_not_ready(NotReadyReason::System(SystemReason::Restart));
            let _ = agent.left_call(&call, None, now);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentSettings, OfferPurpose};
    use crate::ids::OfferToken;
    use std::collections::BTreeMap;

    /// A logged-in Ready agent `a1` (the restore's tests and its child
    /// modules' tests share it).
    pub(super) fn agent() -> Agent {
        let mut a = Agent::new(
            AgentId::new("a1"),
            AgentSettings {
                wrap_up_ms: None,
                reject_delay_ms: 0,
                rona_sets_not_ready: false,
                rona_reason: NotReadyReason::System(SystemReason::Rona),
                device_refusals_max: 0,
                backoff: Default::default(),
            },
        );
        a.login().unwrap();
        a.set_ready(1).unwrap();
        a
    }

    /// Goal: no agent is left on a call the snapshot lost, and the one
    /// that was talking is not offered a call while its phone may still
    /// carry the lost one. Method: a talking and a reserved agent whose
    /// call has no record; the talking one comes back Not Ready (restart),
    /// the reserved one Ready.
    #[test]
    fn agents_on_lost_calls_are_freed() {
        let no_calls = BTreeMap::new();
        let call = CallId::new("c1");
        let mut reserved = agent();
        reserved
            .reserve(call.clone(), OfferToken(3), OfferPurpose::Direct, 100)
            .unwrap();
        let mut talking = reserved.clone();
        talking.connected(&call, OfferToken(3), 20).unwrap();
        free_if_orphaned(&mut reserved, &no_calls, 50);
        free_if_orphaned(&mut talking, &no_calls, 50);
        assert!(reserved.is_ready(), "{:?}", reserved.state);
        assert_eq!(
            talking.state,
            AgentState::NotReady {
                reason: NotReadyReason::System(SystemReason::Restart)
            }
        );
    }
}
