//! The overflow rules at run time: which rule of a queue's
//! [`OverflowConfig`] takes a call now (within its hours, under its cap),
//! and the book of the calls each target holds from overflow rules, so the
//! caps count across queues and calls. One book per contact center, shared
//! by every reconfigured `Env` (a reload changes caps and hours, never the
//! count). A queue target counts a call from its move until it ends; a
//! number counts it for the rule's `busy_ms` (edgecc hands the caller to
//! the PBX and does not see that call end). The call decides with the book
//! ([`crate::call::Call::overflow`]); after a restart the queue targets'
//! counts come back from the restored calls, the numbers' do not.

use crate::config::overflow::{OverflowConfig, OverflowRule, EXTERNAL_BUSY_MS_DEFAULT};
use crate::ids::{CallId, QueueId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// How often a call no rule took, staying in line (`stay_ms`), tries the
/// rules again.
pub const RETRY_MS: u64 = 5_000;

/// Where an overflow rule sends a call.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "to", rename_all = "snake_case")]
pub enum OverflowTarget {
    /// Another queue.
    Queue(QueueId),
    /// An external number through the PBX.
    Number(String),
}

impl OverflowTarget {
    /// The target of `rule`, if it names exactly one (validated configs do).
    pub fn of(rule: &OverflowRule) -> Option<Self> {
        match (&rule.queue, &rule.number) {
            (Some(q), None) => Some(Self::Queue(QueueId::new(q.clone()))),
            (None, Some(n)) => Some(Self::Number(n.clone())),
            _ => None,
        }
    }
}

/// The calls every target holds from overflow rules.
#[derive(Debug, Default)]
pub struct OverflowBook {
    /// Calls moved to a queue by a rule and not ended, by call.
    in_queues: HashMap<CallId, QueueId>,
    /// Until when each call sent to a number counts, by number (oldest
    /// first).
    sent: HashMap<String, VecDeque<u64>>,
}

impl OverflowBook {
    /// How many calls `target` holds from overflow rules at `now_ms`.
    pub fn holding(&mut self, target: &OverflowTarget, now_ms: u64) -> usize {
        match target {
            OverflowTarget::Queue(q) => self.in_queues.values().filter(|t| *t == q).count(),
            OverflowTarget::Number(n) => {
                let Some(until) = self.sent.get_mut(n) else {
                    return 0;
                };
                while until.front().is_some_and(|u| *u <= now_ms) {
                    until.pop_front();
                }
                until.len()
            }
        }
    }

    /// The first rule of `cfg` that may take a call at `now_ms`, with its
    /// index and target (taking nothing yet); rules whose target the call
    /// cannot go to (`usable` says no) are passed over.
    pub fn pick(
        &mut self,
        cfg: &OverflowConfig,
        now_ms: u64,
        usable: impl Fn(&OverflowTarget) -> bool,
    ) -> Option<(usize, OverflowTarget)> {
        let offset = cfg.offset_minutes();
        cfg.rules.iter().enumerate().find_map(|(i, rule)| {
            let target = OverflowTarget::of(rule)?;
            if !usable(&target) || !rule.open_at(now_ms, offset) {
                return None;
            }
            let cap = rule.max_calls.map(|m| m as usize).unwrap_or(usize::MAX);
            (self.holding(&target, now_ms) < cap).then_some((i, target))
        })
    }

    /// `call` goes to `target` by `rule`: it counts against the target
    /// from `now_ms` (a call counts against one queue at a time).
    pub fn take(
        &mut self,
        call: &CallId,
        rule: &OverflowRule,
        target: &OverflowTarget,
        now_ms: u64,
    ) {
        match target {
            OverflowTarget::Queue(q) => {
                self.in_queues.insert(call.clone(), q.clone());
            }
            OverflowTarget::Number(n) => {
                self.in_queues.remove(call);
                let busy = rule.busy_ms.unwrap_or(EXTERNAL_BUSY_MS_DEFAULT);
                self.sent
                    .entry(n.clone())
                    .or_default()
                    .push_back(now_ms.saturating_add(busy));
            }
        }
    }

    /// A restored call that a rule had moved to `queue` counts again.
    pub fn restore(&mut self, call: &CallId, queue: &QueueId) {
        self.in_queues.insert(call.clone(), queue.clone());
    }

    /// `call` ended: it no longer counts against its queue target.
    pub fn release(&mut self, call: &CallId) {
        self.in_queues.remove(call);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(queue: Option<&str>, number: Option<&str>, max_calls: Option<u32>) -> OverflowRule {
        OverflowRule {
            queue: queue.map(Into::into),
            number: number.map(Into::into),
            max_calls,
            busy_ms: number.map(|_| 1_000),
            hours: Vec::new(),
        }
    }

    /// Rules are taken in order while under their cap; a queue's calls
    /// count until released, a number's for its busy time.
    #[test]
    fn caps_count_per_target() {
        let cfg = OverflowConfig {
            rules: vec![
                rule(Some("spare"), None, Some(1)),
                rule(None, Some("+100"), Some(1)),
            ],
            ..OverflowConfig::default()
        };
        let any = |_: &OverflowTarget| true;
        let mut book = OverflowBook::default();
        let (c1, c2, c3) = (CallId::new("c1"), CallId::new("c2"), CallId::new("c3"));
        let (i, t) = book.pick(&cfg, 0, any).unwrap();
        assert_eq!((i, &t), (0, &OverflowTarget::Queue(QueueId::new("spare"))));
        book.take(&c1, &cfg.rules[i], &t, 0);
        let (i, t) = book.pick(&cfg, 0, any).unwrap();
        assert_eq!((i, &t), (1, &OverflowTarget::Number("+100".into())));
        book.take(&c2, &cfg.rules[i], &t, 0);
        assert_eq!(book.pick(&cfg, 999, any), None, "both full");
        assert_eq!(
            book.pick(&cfg, 1_000, any).map(|p| p.0),
            Some(1),
            "the number's busy time is over"
        );
        book.release(&c1);
        assert_eq!(book.pick(&cfg, 0, any).map(|p| p.0), Some(0));
        book.restore(&c3, &QueueId::new("spare"));
        assert_eq!(
            book.pick(&cfg, 1_000, any).map(|p| p.0),
            Some(1),
            "a restored call fills spare again"
        );
    }
}
