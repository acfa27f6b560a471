//! What the configuration says each actor is: a queue's rules, an agent's
//! handle (contact, membership) and settings. One copy, used by the start
//! ([`super::ContactCenter`]) and by a reload ([`super::reload`]), so the
//! two never disagree on who is a member of what.

use crate::agent::actor::AgentActor;
use crate::agent::{AgentSettings, NotReadyReason, SystemReason};
use crate::call::{AgentContact, QueueRules};
use crate::config::{AgentConfig, ContactCenterConfig, QueueConfig, Strategy};
use crate::env::AgentHandle;
use crate::ids::{AgentId, QueueId};
use crate::queue::skills::SkillIndex;
use crate::shared::Shared;
use actix::Addr;

/// The rules a call takes (shares) when it joins `q`.
pub(super) fn queue_rules(q: &QueueConfig) -> Shared<QueueRules> {
    Shared::new(QueueRules {
        queue: QueueId::new(q.id.clone()),
        priority: q.priority,
        max_wait_ms: crate::queue::escalation::max_wait_ms(q),
        wrap_up_ms: q.wrap_up_ms,
        final_destination: q.final_destination.clone(),
        ring_all: q.strategy == Strategy::RingAll,
        announce: q.announcements.clone(),
        callback: q.callback.clone(),
        keep_priority_on_overflow: q.routing.keep_priority_on_overflow,
        overflow: q.routing.overflow.clone(),
    })
}

/// The skills of queue `q`'s members (every agent listing it).
pub(super) fn skill_index(config: &ContactCenterConfig, q: &QueueConfig) -> SkillIndex {
    SkillIndex::new(
        config
            .agents
            .iter()
            .filter(|a| a.queues.contains(&q.id))
            .map(|a| (AgentId::new(a.id.clone()), a.skills.as_slice())),
    )
}

/// How other actors see agent `a`: its contact and the queues it is a
/// member of (every listed queue: skills decide per call).
pub(super) fn agent_handle(
    config: &ContactCenterConfig,
    a: &AgentConfig,
    addr: Addr<AgentActor>,
) -> AgentHandle {
    let id = AgentId::new(a.id.clone());
    let queues = a
        .queues
        .iter()
        .filter(|q| config.queue(q).is_some())
        .map(|q| QueueId::new(q.clone()))
        .collect();
    AgentHandle {
        contact: AgentContact {
            agent: id,
            extension: a.extension.clone(),
            endpoint: a.endpoint(),
            auto_accept: a.auto_accept,
        },
        addr,
        queues,
        wrap_up_ms_override: a.wrap_up_ms,
    }
}

/// Agent `a`'s timers and rules, from its own keys and the shared ones.
pub(super) fn agent_settings(config: &ContactCenterConfig, a: &AgentConfig) -> AgentSettings {
    let rona_reason = match &config.timers.rona_reason_code {
        Some(code) => NotReadyReason::Code(code.clone()),
        None => NotReadyReason::System(SystemReason::Rona),
    };
    AgentSettings {
        wrap_up_ms: a.wrap_up_ms,
        reject_delay_ms: a.reject_delay_ms.unwrap_or(config.timers.reject_delay_ms),
        rona_sets_not_ready: config.timers.rona_sets_not_ready,
        rona_reason,
        device_refusals_max: config.routing.device_refusals_max,
        backoff: config.routing.backoff.clone(),
    }
}
