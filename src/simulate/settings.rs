//! `[simulate]`: what the config file does not say about simulated agents
//! and how `edgecc simulate` counts. The daemon ignores the section.
//!
//! ```toml
//! [simulate]
//! answer_delay_ms = 1000    # how long an agent's phone rings before it answers
//! service_level_ms = 20000  # answered within this counts toward the service level
//! short_abandon_ms = 5000   # callers hanging up sooner are left out of it
//! [simulate.agents.a7]
//! answer_delay_ms = 3000    # one agent's own answer delay
//! [simulate.queues.sales]
//! service_level_ms = 30000  # one queue's own threshold
//! ```
//!
//! Members, skills and wrap-up come from the agents and queues themselves.
//! This module owns the raw section, its checks and defaults, like every
//! other section's module (see [`crate::config`]).

use std::collections::BTreeMap;

use edgecc_actors::ContactCenterConfig;
use serde::{Deserialize, Serialize};

/// Default answer delay, ms: the simulated PBX's own phones answer after 1 s.
pub const ANSWER_DELAY_MS_DEFAULT: u64 = 1_000;
/// Default service-level threshold, ms: the industry's usual 80/20's 20 s.
pub const SERVICE_LEVEL_MS_DEFAULT: u64 = 20_000;
/// Default short-abandon threshold, ms: a caller gone within 5 s never
/// really waited (a misdial), so it counts neither for nor against.
pub const SHORT_ABANDON_MS_DEFAULT: u64 = 5_000;
/// Largest value of any `[simulate]` duration, ms: an hour.
pub const SIMULATE_MS_MAX: u64 = 3_600_000;

/// `[simulate]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimulate {
    /// Answer delay of every agent's phone, ms.
    pub answer_delay_ms: Option<u64>,
    /// Service-level threshold of every queue, ms.
    pub service_level_ms: Option<u64>,
    /// Short-abandon threshold, ms.
    pub short_abandon_ms: Option<u64>,
    /// `[simulate.agents.<id>]`: one agent's own values.
    #[serde(default)]
    pub agents: BTreeMap<String, RawSimulateAgent>,
    /// `[simulate.queues.<id>]`: one queue's own values.
    #[serde(default)]
    pub queues: BTreeMap<String, RawSimulateQueue>,
}

/// `[simulate.agents.<id>]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimulateAgent {
    /// This agent's answer delay, ms.
    pub answer_delay_ms: Option<u64>,
}

/// `[simulate.queues.<id>]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimulateQueue {
    /// This queue's service-level threshold, ms.
    pub service_level_ms: Option<u64>,
}

/// The resolved `[simulate]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimulateSettings {
    /// Answer delay of agents without their own, ms.
    pub answer_delay_ms: u64,
    /// Service-level threshold of queues without their own, ms.
    pub service_level_ms: u64,
    /// Abandons within this wait leave the service level's denominator, ms.
    pub short_abandon_ms: u64,
    /// Agents' own answer delays, ms, by agent id.
    pub agent_answer_delay_ms: BTreeMap<String, u64>,
    /// Queues' own service-level thresholds, ms, by queue id.
    pub queue_service_level_ms: BTreeMap<String, u64>,
}

impl Default for SimulateSettings {
    fn default() -> Self {
        Self {
            answer_delay_ms: ANSWER_DELAY_MS_DEFAULT,
            service_level_ms: SERVICE_LEVEL_MS_DEFAULT,
            short_abandon_ms: SHORT_ABANDON_MS_DEFAULT,
            agent_answer_delay_ms: BTreeMap::new(),
            queue_service_level_ms: BTreeMap::new(),
        }
    }
}

impl SimulateSettings {
    /// The answer delay of `agent`, ms.
    pub fn answer_delay_ms_of(&self, agent: &str) -> u64 {
        self.agent_answer_delay_ms
            .get(agent)
            .copied()
            .unwrap_or(self.answer_delay_ms)
    }

    /// The service-level threshold of `queue`, ms.
    pub fn service_level_ms_of(&self, queue: &str) -> u64 {
        self.queue_service_level_ms
            .get(queue)
            .copied()
            .unwrap_or(self.service_level_ms)
    }
}

/// Checks `raw` against the agents and queues of `center`; an error is
/// (dotted key, message).
pub fn resolve(
    raw: &RawSimulate,
    center: &ContactCenterConfig,
) -> Result<SimulateSettings, (String, String)> {
    let bounded = |key: String, value: Option<u64>, default: u64| match value {
        Some(v) if v > SIMULATE_MS_MAX => Err((
            key,
            format!("{v} is longer than an hour ({SIMULATE_MS_MAX} ms)"),
        )),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    let defaults = SimulateSettings::default();
    let mut settings = SimulateSettings {
        answer_delay_ms: bounded(
            "simulate.answer_delay_ms".into(),
            raw.answer_delay_ms,
            defaults.answer_delay_ms,
        )?,
        service_level_ms: bounded(
            "simulate.service_level_ms".into(),
            raw.service_level_ms,
            defaults.service_level_ms,
        )?,
        short_abandon_ms: bounded(
            "simulate.short_abandon_ms".into(),
            raw.short_abandon_ms,
            defaults.short_abandon_ms,
        )?,
        ..defaults
    };
    for (id, agent) in &raw.agents {
        let key = format!("simulate.agents.{id}");
        if !center.agents.iter().any(|a| &a.id == id) {
            return Err((key, format!("no agent {id:?} in [[agents]]")));
        }
        if let Some(v) = agent.answer_delay_ms {
            let v = bounded(format!("{key}.answer_delay_ms"), Some(v), 0)?;
            settings.agent_answer_delay_ms.insert(id.clone(), v);
        }
    }
    for (id, queue) in &raw.queues {
        let key = format!("simulate.queues.{id}");
        if !center.queues.iter().any(|q| &q.id == id) {
            return Err((key, format!("no queue {id:?} in [[queues]]")));
        }
        if let Some(v) = queue.service_level_ms {
            let v = bounded(format!("{key}.service_level_ms"), Some(v), 0)?;
            settings.queue_service_level_ms.insert(id.clone(), v);
        }
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecc_actors::config::{AgentConfig, QueueConfig};

    fn center() -> ContactCenterConfig {
        let mut c = ContactCenterConfig::default();
        let queue: QueueConfig =
            serde_json::from_value(serde_json::json!({"id": "sales", "dnis": ["800"]})).unwrap();
        c.queues.push(queue);
        let agent: AgentConfig =
            serde_json::from_value(serde_json::json!({"id": "a1", "extension": "101"})).unwrap();
        c.agents.push(agent);
        c
    }

    /// Defaults apply where nothing is written; per-agent and per-queue
    /// values override them for that one agent or queue.
    #[test]
    fn overrides_apply_to_their_own_agent_and_queue() {
        let raw: RawSimulate = toml::from_str(
            "answer_delay_ms = 2000\n[agents.a1]\nanswer_delay_ms = 0\n[queues.sales]\nservice_level_ms = 30000\n",
        )
        .unwrap();
        let s = resolve(&raw, &center()).unwrap();
        assert_eq!(s.answer_delay_ms_of("a1"), 0);
        assert_eq!(s.answer_delay_ms_of("a2"), 2_000);
        assert_eq!(s.service_level_ms_of("sales"), 30_000);
        assert_eq!(s.service_level_ms_of("other"), SERVICE_LEVEL_MS_DEFAULT);
        assert_eq!(s.short_abandon_ms, SHORT_ABANDON_MS_DEFAULT);
    }

    /// Unknown agents and queues, and values over the bound, name the key.
    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("[agents.zz]\nanswer_delay_ms = 1\n", "simulate.agents.zz"),
            ("[queues.zz]\nservice_level_ms = 1\n", "simulate.queues.zz"),
            ("service_level_ms = 3600001\n", "simulate.service_level_ms"),
            (
                "[agents.a1]\nanswer_delay_ms = 3600001\n",
                "simulate.agents.a1.answer_delay_ms",
            ),
        ];
        for (text, key) in cases {
            let raw: RawSimulate = toml::from_str(text).unwrap();
            let (k, _) = resolve(&raw, &center()).unwrap_err();
            assert_eq!(k, key, "{text}");
        }
    }
}
