//! Escalation steps, pure: which requirements a waiting call has after the
//! steps its wait has reached, and when its next step is due.
//!
//! A queue's steps (`queues[].routing.steps`) come by rising `after_ms`,
//! counted from when the call joined the queue. `level_min` lowers every
//! required minimum to at most that level, `any_member` drops the skill
//! requirements (the strategy alone chooses), `overflow` sends the call to
//! the final destination: that one is the call's own timer (its max wait is
//! the earlier of `max_wait_ms` and the overflow step, see
//! [`max_wait_ms`]), the others are the queue's (see [`super::Queue`]'s
//! step schedule). A step applies to the calls already waiting when its
//! time comes, and after a restart to the calls whose wait reached it.

use crate::config::{EscalationStep, QueueConfig, SkillRequirement};

/// The requirements after the first `reached` steps of `steps`.
pub fn relax(
    base: &[SkillRequirement],
    steps: &[EscalationStep],
    reached: usize,
) -> Vec<SkillRequirement> {
    let mut needs = base.to_vec();
    for step in steps.iter().take(reached) {
        if step.any_member {
            needs.clear();
        }
        if let Some(cap) = step.level_min {
            for n in &mut needs {
                n.level_min = n.level_min.min(cap);
            }
        }
    }
    needs
}

/// How many widening steps (not the overflow) a wait of `waited_ms` reached.
pub fn reached(steps: &[EscalationStep], waited_ms: u64) -> usize {
    steps
        .iter()
        .take_while(|s| !s.overflow && s.after_ms <= waited_ms)
        .count()
}

/// When the widening step after the first `reached` is due for a call
/// waiting since `since_ms`; `None` when no widening step is left.
pub fn next_due_ms(steps: &[EscalationStep], since_ms: u64, reached: usize) -> Option<u64> {
    steps
        .get(reached)
        .filter(|s| !s.overflow)
        .map(|s| since_ms.saturating_add(s.after_ms))
}

/// The queue's effective max wait: `max_wait_ms`, or its overflow step if
/// that comes first.
pub fn max_wait_ms(queue: &QueueConfig) -> u64 {
    queue
        .routing
        .steps
        .iter()
        .find(|s| s.overflow)
        .map_or(queue.max_wait_ms, |s| s.after_ms.min(queue.max_wait_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(
        after_ms: u64,
        level_min: Option<u8>,
        any_member: bool,
        overflow: bool,
    ) -> EscalationStep {
        EscalationStep {
            after_ms,
            level_min,
            any_member,
            overflow,
        }
    }

    /// Steps widen in order; the overflow step is not a widening step.
    #[test]
    fn steps_widen_in_order() {
        let steps = vec![
            step(20_000, Some(2), false, false),
            step(60_000, None, true, false),
            step(90_000, None, false, true),
        ];
        let base = vec![
            SkillRequirement {
                skill: "en".into(),
                level_min: 4,
            },
            SkillRequirement {
                skill: "fr".into(),
                level_min: 1,
            },
        ];
        assert_eq!(reached(&steps, 19_999), 0);
        assert_eq!(reached(&steps, 20_000), 1);
        assert_eq!(reached(&steps, 1_000_000), 2);
        assert_eq!(relax(&base, &steps, 0), base);
        let one = relax(&base, &steps, 1);
        assert_eq!((one[0].level_min, one[1].level_min), (2, 1));
        assert!(relax(&base, &steps, 2).is_empty());
        assert_eq!(next_due_ms(&steps, 1_000, 0), Some(21_000));
        assert_eq!(next_due_ms(&steps, 1_000, 1), Some(61_000));
        assert_eq!(next_due_ms(&steps, 1_000, 2), None);
    }
}
