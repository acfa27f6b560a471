//! A reload's changes to a running queue. Waiting calls keep their keys
//! (priority and arrival), so their place and age; only what the queue
//! copied from its [`QueueConfig`] is refreshed here. A field a queue copies
//! from its config at start-up belongs in [`Queue::reconfigure`] too, so a
//! reload carries it without a restart.

use super::Queue;
use crate::config::QueueConfig;

impl Queue {
    /// Takes the reloaded `config` of this queue. A new strategy applies to
    /// the next pick; the ready index is re-keyed as the members push their
    /// availability again (every Ready member does on its own
    /// `Reconfigure`, which the registry sends after the queues').
    pub fn reconfigure(&mut self, config: &QueueConfig) {
        self.strategy = config.strategy;
    }
}
