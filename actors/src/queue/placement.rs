//! A caller's place in line and the order agents are tried for one call.
//!
//! - **Place**: a waiting call is keyed by its priority rank (its priority
//!   aged from the start of its stint in this queue, see
//!   [`super::priority::rank`]), then by when it took its place in line
//!   ([`WaitKey`]); a call whose offer was missed, rejected or refused
//!   rejoins with the same key inputs (its original arrival, priority and
//!   stint start), so it goes back ahead of every later arrival. Calls that
//!   took their place in the same millisecond keep their join order.
//! - **Agents tried**: each call keeps the agents whose offer of it failed,
//!   oldest try first ([`note_tried`]). They are never banned: [`pick`]
//!   offers every untried eligible agent first and only then the tried ones,
//!   the one tried longest ago first. So a one-agent queue offers its call
//!   to that agent again instead of waiting out the whole max wait. How long
//!   an agent who missed stays out (its back-off) is the agent's business,
//!   not the queue's.

use crate::ids::AgentId;
use std::cmp::Reverse;

/// Most agents a call remembers as tried: past it the oldest try is
/// forgotten (that agent is then offered as if untried). Bounds the
/// per-call list and the index entries [`pick`] scans.
pub const TRIED_AGENTS_MAX: usize = 64;

/// Ordering key of waiting calls: higher priority rank first, then when
/// the call took its place (wall ms), then join order within that
/// millisecond.
pub type WaitKey = (Reverse<i64>, u64, u64);

/// The key of a call of priority `rank` ([`super::priority::rank`]) that
/// took its place at `since_ms`, the `seq`-th to join.
pub fn wait_key(rank: i64, since_ms: u64, seq: u64) -> WaitKey {
    (Reverse(rank), since_ms, seq)
}

/// Records that `agent` was offered the call and the offer failed: it moves
/// to the end of `tried` (the most recent try), and the oldest try is
/// forgotten past [`TRIED_AGENTS_MAX`].
pub fn note_tried(tried: &mut Vec<AgentId>, agent: &AgentId) {
    tried.retain(|a| a != agent);
    tried.push(agent.clone());
    if tried.len() > TRIED_AGENTS_MAX {
        let over = tried.len() - TRIED_AGENTS_MAX;
        tried.drain(..over);
    }
}

/// Up to `want` agents of the ready index entries `order` (best first, or
/// from a drawn start for the random strategy) for a call that already
/// tried `tried`: untried agents in index order first, then
/// tried ones, the one tried longest ago first. Scans at most
/// `tried.len() + want` entries, which always holds `want` untried agents
/// when the index has them.
pub fn pick<'a, K: Clone + 'a>(
    order: impl Iterator<Item = &'a (K, AgentId)>,
    tried: &[AgentId],
    want: usize,
) -> Vec<(K, AgentId)> {
    let mut fresh = Vec::with_capacity(want);
    let mut again: Vec<(usize, &(K, AgentId))> = Vec::new();
    for entry in order.take(tried.len().saturating_add(want)) {
        match tried.iter().position(|a| *a == entry.1) {
            None => {
                fresh.push(entry.clone());
                if fresh.len() == want {
                    return fresh;
                }
            }
            Some(rank) => again.push((rank, entry)),
        }
    }
    again.sort_by_key(|(rank, _)| *rank);
    let left = want - fresh.len();
    fresh.extend(again.into_iter().take(left).map(|(_, e)| e.clone()));
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn a(s: &str) -> AgentId {
        AgentId::new(s)
    }

    fn index(agents: &[&str]) -> BTreeSet<(u64, AgentId)> {
        agents
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u64, a(n)))
            .collect()
    }

    /// Untried agents come first in index order; tried ones follow, the
    /// one tried longest ago first; nobody is left out.
    #[test]
    fn tried_agents_go_last_not_never() {
        let order = index(&["x", "y", "z"]);
        let names = |v: Vec<(u64, AgentId)>| v.into_iter().map(|e| e.1).collect::<Vec<_>>();
        assert_eq!(names(pick(order.iter(), &[a("x")], 1)), vec![a("y")]);
        assert_eq!(
            names(pick(order.iter(), &[a("x"), a("y"), a("z")], 1)),
            vec![a("x")]
        );
        assert_eq!(
            names(pick(order.iter(), &[a("z"), a("x")], 3)),
            vec![a("y"), a("z"), a("x")]
        );
        let one = index(&["solo"]);
        assert_eq!(names(pick(one.iter(), &[a("solo")], 1)), vec![a("solo")]);
    }

    /// A repeated miss moves the agent to the most recent try; the list
    /// never holds an agent twice and never grows past its bound.
    #[test]
    fn note_tried_keeps_the_latest_try_bounded() {
        let mut tried = Vec::new();
        note_tried(&mut tried, &a("x"));
        note_tried(&mut tried, &a("y"));
        note_tried(&mut tried, &a("x"));
        assert_eq!(tried, vec![a("y"), a("x")]);
        for i in 0..(TRIED_AGENTS_MAX + 5) {
            note_tried(&mut tried, &a(&format!("n{i}")));
        }
        assert_eq!(tried.len(), TRIED_AGENTS_MAX);
        assert_eq!(
            tried.last(),
            Some(&a(&format!("n{}", TRIED_AGENTS_MAX + 4)))
        );
    }

    /// An untried agent past many tried ones at the front of the index is
    /// still found (the scan covers every tried entry plus the wanted ones).
    #[test]
    fn untried_agent_behind_tried_ones_is_found() {
        let names: Vec<String> = (0..TRIED_AGENTS_MAX).map(|i| format!("t{i}")).collect();
        let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
        all.push("fresh");
        let order = index(&all);
        let tried: Vec<AgentId> = names.iter().map(|n| a(n)).collect();
        assert_eq!(pick(order.iter(), &tried, 1)[0].1, a("fresh"));
    }
}
