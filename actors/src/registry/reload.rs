//! Hot reload of the contact center: [`ApplyConfig`] takes a whole new
//! [`ContactCenterConfig`] and applies it to the running actors, or refuses
//! it as a whole (the running configuration stays).
//!
//! How a reload applies:
//!
//! 1. The new config is validated ([`ContactCenterConfig::validate`]), then
//!    checked against what runs: a queue may be removed only when no call
//!    waits or rings in it, an agent only when logged out. Errors name the
//!    key (`queues`, `agents`) and the id.
//! 2. A new directory is built ([`super::wiring`], as at start): existing
//!    queues and agents keep their actors, added ones get new actors.
//! 3. A new [`Env`] with the new config and directory replaces the
//!    registry's and is linked as the old one's successor; new calls use it
//!    at once.
//! 4. Every queue gets its `Reconfigure` (its whole [`QueueConfig`], or
//!    `None` when removed); once they all took it, every agent gets its
//!    `Reconfigure` (settings; a Ready agent pushes itself to its queues
//!    again, so new members join and a new strategy re-keys the index) and
//!    every live call its own (the queue's new rules: max wait, wrap-up,
//!    final destination). Waiting calls keep their priority, arrival and
//!    exclusions: their place and age.
//!
//! [`QueueConfig`]: crate::config::QueueConfig

use super::{wiring, Registry};
use crate::agent::actor::{AgentActor, Reconfigure as ReconfigureAgent};
use crate::agent::AgentState;
use crate::call::actor::Reconfigure as ReconfigureCall;
use crate::config::{ConfigError, ContactCenterConfig};
use crate::env::{Directory, QueueHandle};
use crate::ids::{AgentId, QueueId};
use crate::queue::actor::{PbxLinkChanged, QueueActor, Reconfigure as ReconfigureQueue};
use crate::queue::skills::SkillIndex;
use crate::queue::{Queue, QueuePolicy};
use actix::prelude::*;
use serde::Serialize;
use std::rc::Rc;
use tracing::info;

/// Apply a reloaded configuration to the running actors, all or nothing.
/// Answers what changed, or every reason it was refused.
#[derive(Message)]
#[rtype(result = "Result<ReloadSummary, Vec<ConfigError>>")]
pub struct ApplyConfig(pub ContactCenterConfig);

/// What a reload changed, for the log line and the API's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReloadSummary {
    /// Queues that started.
    pub queues_added: Vec<QueueId>,
    /// Queues that stopped.
    pub queues_removed: Vec<QueueId>,
    /// Queues whose settings changed (strategy, timers, destination, ...).
    pub queues_changed: Vec<QueueId>,
    /// Agents that started (logged out).
    pub agents_added: Vec<AgentId>,
    /// Agents that were removed (they were logged out).
    pub agents_removed: Vec<AgentId>,
}

/// Phases of a call that sits in a queue (waits, or rings an agent of it).
const IN_QUEUE_PHASES: [&str; 2] = ["queued", "offering"];

impl Registry {
    /// What in the running system forbids `new`: removed queues that hold
    /// calls, removed agents that are logged in.
    fn refuse_removals(
        &self,
        old: &ContactCenterConfig,
        new: &ContactCenterConfig,
    ) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        for q in old.queues.iter().filter(|q| new.queue(&q.id).is_none()) {
            let id = QueueId::new(q.id.clone());
            let holding = self
                .calls
                .values()
                .filter(|c| !c.finished)
                .filter_map(|c| c.view.as_ref())
                .filter(|v| v.queue.as_ref() == Some(&id) && IN_QUEUE_PHASES.contains(&v.phase))
                .count();
            if holding > 0 {
                errors.push(ConfigError {
                    path: "queues".into(),
                    message: format!(
                        "queue {:?} was removed while {holding} call(s) wait in it; \
                         remove its DNIS first, reload, and remove the queue once it is empty",
                        q.id
                    ),
                });
            }
        }
        for a in old
            .agents
            .iter()
            .filter(|a| !new.agents.iter().any(|n| n.id == a.id))
        {
            let id = AgentId::new(a.id.clone());
            match self.agents.get(&id).map(|v| &v.state) {
                None | Some(AgentState::LoggedOut) => {}
                Some(state) => errors.push(ConfigError {
                    path: "agents".into(),
                    message: format!(
                        "agent {:?} was removed while {}; log it out first",
                        a.id,
                        state.name()
                    ),
                }),
            }
        }
        errors
    }
}

impl Handler<ApplyConfig> for Registry {
    type Result = ResponseActFuture<Self, Result<ReloadSummary, Vec<ConfigError>>>;

    fn handle(&mut self, msg: ApplyConfig, _ctx: &mut Self::Context) -> Self::Result {
        let config = msg.0;
        let old = self.env().clone();
        let refused = match config.validate() {
            Err(errors) => errors,
            Ok(()) => self.refuse_removals(&old.config, &config),
        };
        if !refused.is_empty() {
            return Box::pin(fut::ready(Err(refused)));
        }
        let mut summary = ReloadSummary::default();

        let mut directory = Directory::default();
        let mut queues_started = Vec::new();
        let mut queues_told = Vec::new();
        for (i, q) in config.queues.iter().enumerate() {
            let id = QueueId::new(q.id.clone());
            let addr = match old.directory.queues.get(&id) {
                Some(h) => {
                    if old.config.queue(&q.id) != Some(q) {
                        summary.queues_changed.push(id.clone());
                    }
                    let skills = wiring::skill_index(&config, q);
                    queues_told.push((h.addr.clone(), Some((q.clone(), skills))));
                    h.addr.clone()
                }
                None => {
                    let ctx: Context<QueueActor> = Context::new();
                    let addr = ctx.address();
                    let seed = config.routing.random_seed.wrapping_add(i as u64);
                    let queue = Queue::new(id.clone(), q.strategy, seed)
                        .with_policy(QueuePolicy::of(q), wiring::skill_index(&config, q));
                    queues_started.push((ctx, queue));
                    summary.queues_added.push(id.clone());
                    addr
                }
            };
            for d in &q.dnis {
                directory.by_dnis.insert(d.clone(), id.clone());
            }
            let rules = wiring::queue_rules(q);
            let weight = q.routing.weight;
            directory.queues.insert(
                id,
                QueueHandle {
                    rules,
                    addr,
                    weight,
                },
            );
        }
        for (id, h) in &old.directory.queues {
            if !directory.queues.contains_key(id) {
                summary.queues_removed.push(id.clone());
                queues_told.push((h.addr.clone(), None));
            }
        }

        let mut agents_told = Vec::new();
        let mut agents_started = Vec::new();
        for a in &config.agents {
            let id = AgentId::new(a.id.clone());
            let settings = wiring::agent_settings(&config, a);
            let addr = match old.directory.agents.get(&id) {
                Some(h) => {
                    agents_told.push((h.addr.clone(), settings));
                    h.addr.clone()
                }
                None => {
                    let ctx: Context<AgentActor> = Context::new();
                    let addr = ctx.address();
                    agents_started.push((ctx, id.clone(), settings));
                    summary.agents_added.push(id.clone());
                    addr
                }
            };
            directory
                .by_extension
                .insert(a.extension.clone(), id.clone());
            directory
                .agents
                .insert(id, wiring::agent_handle(&config, a, addr));
        }
        for id in old.directory.agents.keys() {
            if !directory.agents.contains_key(id) {
                summary.agents_removed.push(id.clone());
                self.agents.remove(id);
            }
        }
        for list in [
            &mut summary.queues_added,
            &mut summary.queues_removed,
            &mut summary.queues_changed,
        ] {
            list.sort();
        }
        summary.agents_added.sort();
        summary.agents_removed.sort();

        let env = Rc::new(old.reconfigured(config, directory));
        *old.successor.borrow_mut() = Some(Rc::clone(&env));
        self.env = Some(Rc::clone(&env));

        let link_up = self.pbx_link_up && !self.awaiting_reconcile;
        for (ctx, queue) in queues_started {
            let addr = ctx.address();
            actix::spawn(ctx.into_future(QueueActor::new(Rc::clone(&env), queue)));
            if !link_up {
                addr.do_send(PbxLinkChanged { up: false });
            }
        }
        for (ctx, id, settings) in agents_started {
            let actor = AgentActor::new(Rc::clone(&env), id.clone(), settings);
            self.agents.insert(id, actor.view());
            actix::spawn(ctx.into_future(actor));
        }
        let queue_replies: Vec<_> = queues_told
            .into_iter()
            .map(|(addr, change)| {
                let (config, skills) = match change {
                    Some((config, skills)) => (Some(config), skills),
                    None => (None, SkillIndex::default()),
                };
                addr.send(ReconfigureQueue { config, skills })
            })
            .collect();
        Box::pin(
            async move {
                // Agents re-push only after every queue took its new
                // strategy, so the index is keyed by the new one.
                for reply in queue_replies {
                    let _ = reply.await;
                }
            }
            .into_actor(self)
            .map(move |(), act, _ctx| {
                for (addr, settings) in agents_told {
                    addr.do_send(ReconfigureAgent { settings });
                }
                for call in act.calls.values().filter(|c| !c.finished) {
                    call.addr.do_send(ReconfigureCall);
                }
                // Membership may have changed: every queue hears its counts.
                let env = act.env().clone();
                act.staffing.recount(act.agents.values(), &env.directory);
                info!(
                    queues_added = ?summary.queues_added,
                    queues_removed = ?summary.queues_removed,
                    queues_changed = ?summary.queues_changed,
                    agents_added = ?summary.agents_added,
                    agents_removed = ?summary.agents_removed,
                    "Contact center reconfigured."
                );
                Ok(summary)
            }),
        )
    }
}
