//! A reload's changes to a running queue. Waiting calls keep their keys
//! (priority rank and arrival), so their place and age, and the skills they
//! joined with; only what the queue copied from its [`QueueConfig`] and its
//! members' skills are refreshed here. A field a queue copies from its
//! config at start-up belongs in [`Queue::reconfigure`] too, so a reload
//! carries it without a restart.

use super::skills::SkillIndex;
use super::Queue;
use crate::config::QueueConfig;

impl Queue {
    /// Takes the reloaded `config` of this queue and its members' `skills`.
    /// A new strategy applies to the next pick; the ready index is re-keyed
    /// as the members push their availability again (every Ready member
    /// does on its own `Reconfigure`, which the registry sends after the
    /// queues'); the Ready agents enter the new skill index at once with
    /// their current keys. New escalation steps and aging apply to calls
    /// joining from now on; a waiting call's next step is its old schedule's.
    pub fn reconfigure(&mut self, config: &QueueConfig, mut skills: SkillIndex) {
        self.strategy = config.strategy;
        self.policy = super::QueuePolicy::of(config);
        for (agent, key) in &self.ready {
            skills.insert(agent, *key);
        }
        self.skills = skills;
    }
}
