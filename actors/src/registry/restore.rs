//! Turning a [`StateSnapshot`] into actors: which call actor each agent
//! and queue entry points to, the order of each queue's line, and the
//! repairs a snapshot may need (an agent reserved for or talking on a call
//! whose record is gone is freed, with [`SystemReason::Restart`] in the
//! log). The PBX is not asked anything here: the reconcile does that.

use crate::agent::{Agent, AgentState, OfferOutcome};
use crate::call::actor::CallActor;
use crate::call::CallPhase;
use crate::durable::StateSnapshot;
use crate::env::SharedEnv;
use crate::ids::{AgentId, CallId, QueueId};
use actix::prelude::*;
use std::collections::{HashMap, HashSet};
use tracing::warn;

/// A queue entry to rebuild: the call, its actor, priority and exclusions.
pub(crate) type WaitingEntry = (CallId, Addr<CallActor>, u8, Vec<AgentId>);

/// A queued call seen in the snapshot: arrival in the queue, id, priority
/// and exclusions (sorted into the line).
type QueuedCall = (u64, CallId, u8, Vec<AgentId>);

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
        for (id, mut agent) in snapshot.agents {
            free_if_orphaned(&mut agent, &snapshot.calls, now);
            out.agents.insert(id, agent);
        }
        for (id, call) in snapshot.calls {
            let linger_ms = out
                .agents
                .values()
                .filter_map(|a| match &a.state {
                    AgentState::WrapUp { call: c, until_ms } if *c == id => {
                        Some(until_ms.saturating_sub(now))
                    }
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
                    c.excluded.clone(),
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
                .filter_map(|(_, id, priority, excluded)| {
                    let addr = out.call_addrs.get(&id)?.clone();
                    Some((id, addr, priority, excluded))
                })
                .collect();
            out.queues.insert(queue, line);
        }
        out
    }
}

/// An agent reserved for, or talking on, a call whose record is gone (or
/// ended) cannot be resolved by the PBX reconcile: its offer is withdrawn
/// or its part in the call ends, so no agent stays reserved for nothing.
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
            warn!(agent_id = %agent.id, call_id = %call, reason = "restart", "Agent freed from a call gone while edgecc was down.");
            let _ = agent.left_call(&call, None, now);
        }
        _ => {}
    }
}
