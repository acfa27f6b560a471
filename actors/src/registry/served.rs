//! The queues one agent serves, with the calls waiting in each now and
//! since when the longest of them waits: the agent desktop's queue panel
//! (`GET /api/v1/me` and the desktop's WebSocket snapshot). Membership is
//! the directory's (the agent's `queues` in the config, replaced by a
//! reload; a queue's skills decide per call, not whether the agent serves
//! it). The calls waiting are each queue actor's, as the wallboard counts
//! them (not yet offered); when each began to wait is the registry's wait
//! figures' ([`crate::waits`]), so the desktop ticks the longest wait from
//! a start time rather than being sent a counter.

use super::Registry;
use crate::ids::{AgentId, QueueId};
use crate::queue::actor::{GetQueue, QueueActor};
use actix::prelude::*;
use serde::Serialize;

/// Ask for the queues `0` serves; empty for an unknown agent.
#[derive(Message)]
#[rtype(result = "Vec<ServedQueue>")]
pub struct QueuesServed(pub AgentId);

/// One queue an agent serves, as its desktop shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServedQueue {
    /// The queue.
    pub queue_id: QueueId,
    /// Its display name (the id when the config gives none).
    pub name: String,
    /// Calls waiting in it now (not yet offered).
    pub waiting: usize,
    /// When the longest-waiting of them began to wait (wall ms), the
    /// desktop's ticking "longest wait"; `None` when none waits.
    pub oldest_since_ms: Option<u64>,
}

impl Handler<QueuesServed> for Registry {
    type Result = ResponseActFuture<Self, Vec<ServedQueue>>;

    fn handle(&mut self, msg: QueuesServed, _ctx: &mut Self::Context) -> Self::Result {
        let env = self.env().clone();
        let served: Vec<(QueueId, String, Addr<QueueActor>)> = env
            .directory
            .agents
            .get(&msg.0)
            .map(|a| a.queues.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|q| {
                let addr = env.directory.queues.get(q)?.addr.clone();
                let name = env
                    .config
                    .queue(&q.0)
                    .map(|c| c.name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| q.0.clone());
                Some((q.clone(), name, addr))
            })
            .collect();
        let ask = async move {
            let mut views = Vec::with_capacity(served.len());
            for (queue, name, addr) in served {
                let waiting = addr
                    .send(GetQueue)
                    .await
                    .map(|v| v.waiting)
                    .unwrap_or_default();
                views.push((queue, name, waiting));
            }
            views
        };
        Box::pin(ask.into_actor(self).map(|views, act, _ctx| {
            let now_ms = act.env().now_ms();
            views
                .into_iter()
                .map(|(queue, name, waiting)| {
                    let longest = act.waits.waits(&queue, &waiting, now_ms).into_iter().max();
                    ServedQueue {
                        oldest_since_ms: longest.map(|w| now_ms.saturating_sub(w)),
                        waiting: waiting.len(),
                        queue_id: queue,
                        name,
                    }
                })
                .collect()
        }))
    }
}
