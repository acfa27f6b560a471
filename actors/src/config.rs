//! Configuration of the contact center: queues, agents, reason codes and
//! timers, as serde structs the daemon parses from TOML, plus [`validate`]
//! that names the key path of every problem
//! (`agents[3].queues[0]: unknown queue "sales"`).
//!
//! [`validate`]: ContactCenterConfig::validate

use crate::sticky::{StickyCustomerConfig, StickyQueueConfig, STICKY_ANI_LEN_MAX};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;

pub mod overflow;
pub mod waiting;
pub mod wrap_up;
pub use waiting::{AnnounceConfig, CallbackConfig};
pub use wrap_up::WrapUpCodes;

/// Longest accepted wrap-up: an hour; longer is a typo.
pub const WRAP_UP_MS_MAX: u64 = 3_600_000;
/// Longest accepted offer timeout: five minutes.
pub const OFFER_TIMEOUT_MS_MAX: u64 = 300_000;
/// Longest accepted queue wait: a day.
pub const MAX_WAIT_MS_MAX: u64 = 86_400_000;
/// Lowest skill level (a beginner). Levels are 1..=5, as contact centers
/// rate them; 0 would mean "has not the skill", which is said by leaving the
/// skill out.
pub const SKILL_LEVEL_MIN: u8 = 1;
/// Highest skill level (an expert). Configs written before levels were
/// 1..=5 (they allowed 0..=10) are refused with the key named, not
/// rescaled silently: the installer decides what a 7 now is.
pub const SKILL_LEVEL_MAX: u8 = 5;
/// Refusals in a row that make a device unreachable, unless configured.
pub const DEVICE_REFUSALS_MAX_DEFAULT: u32 = 3;
/// Highest accepted `routing.device_refusals_max`: past it the rule would
/// never apply in practice (0 is the way to turn it off).
pub const DEVICE_REFUSALS_MAX_LIMIT: u32 = 100;

/// The whole contact-center configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactCenterConfig {
    /// Names this box in correlation ids (`{site}:{call}:...`), so two sites
    /// writing to one CRM never collide.
    #[serde(default = "default_site_id")]
    pub site_id: String,
    /// Timers that are not per queue or per agent.
    #[serde(default)]
    pub timers: TimersConfig,
    /// Routing options shared by all queues.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Not-ready reason codes agents may choose.
    #[serde(default)]
    pub reason_codes: Vec<ReasonCodeConfig>,
    /// The queues.
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    /// The agents.
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// Caller numbers pinned to their own agent ([`crate::sticky`]).
    #[serde(default)]
    pub sticky_customers: Vec<StickyCustomerConfig>,
}

fn default_site_id() -> String {
    "edge".into()
}

impl Default for ContactCenterConfig {
    fn default() -> Self {
        Self {
            site_id: default_site_id(),
            timers: TimersConfig::default(),
            routing: RoutingConfig::default(),
            reason_codes: Vec::new(),
            queues: Vec::new(),
            agents: Vec::new(),
            sticky_customers: Vec::new(),
        }
    }
}

/// Timers shared by all queues and agents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimersConfig {
    /// How long an offer rings before it counts as RONA (redirect on no
    /// answer).
    pub offer_timeout_ms: u64,
    /// How long an agent who rejected stays unavailable before Ready again.
    pub reject_delay_ms: u64,
    /// After the offer deadline, how long an agent waits for its call to
    /// settle the offer before freeing itself (the lease expires).
    pub offer_lease_grace_ms: u64,
    /// Longest wait for the CRM records to be durable before the accept is
    /// confirmed to the agent anyway (the call never waits for this).
    pub accept_confirm_wait_ms: u64,
    /// Whether a RONA puts the agent Not Ready.
    pub rona_sets_not_ready: bool,
    /// Reason code used for RONA instead of the system reason (must be one of
    /// `reason_codes`).
    pub rona_reason_code: Option<String>,
    /// Wrap-up after an outbound call the customer answered (an agent's
    /// own `wrap_up_ms` overrides it); 0: none.
    pub outbound_wrap_up_ms: u64,
}

impl Default for TimersConfig {
    fn default() -> Self {
        Self {
            offer_timeout_ms: 15_000,
            reject_delay_ms: 0,
            offer_lease_grace_ms: 5_000,
            accept_confirm_wait_ms: 2_000,
            rona_sets_not_ready: true,
            rona_reason_code: None,
            outbound_wrap_up_ms: 10_000,
        }
    }
}

/// Routing options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Queue for calls whose DNIS matches no queue and no extension; none
    /// means such calls hear `no_route_prompt` and are hung up.
    pub default_queue: Option<String>,
    /// Prompt played before hanging up an unroutable call.
    pub no_route_prompt: String,
    /// Seed of the random strategy, so routing is reproducible.
    pub random_seed: u64,
    /// Priorities of known callers (by exact caller number), used when the
    /// call's attached data gives none; the queue's priority comes last.
    pub caller_priorities: Vec<CallerPriority>,
    /// Offers in a row an agent's device refuses (busy, cause 17, or
    /// rejected, cause 21) before the device counts as unreachable: the
    /// agent goes Not Ready (system reason `device_unreachable`) as after a
    /// no-answer, until it says Ready again. A ring, an answer or Ready
    /// start the count over; 0 never takes the agent out.
    pub device_refusals_max: u32,
    /// `[routing.backoff]`: delays after a reject, a refusal or a
    /// no-answer, and the cooling-off after repeated no-answers
    /// ([`crate::agent::backoff`]).
    pub backoff: crate::agent::backoff::BackoffSettings,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            default_queue: None,
            no_route_prompt: "no-route".into(),
            random_seed: 0x5EED,
            caller_priorities: Vec::new(),
            device_refusals_max: DEVICE_REFUSALS_MAX_DEFAULT,
            backoff: Default::default(),
        }
    }
}

/// A not-ready reason code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonCodeConfig {
    /// The code agents and reports use (`break`, `lunch`).
    pub code: String,
    /// Shown on the desktop.
    #[serde(default)]
    pub label: String,
}

/// How a queue picks an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The agent ready the longest.
    #[default]
    LongestIdle,
    /// Rotate through the members.
    RoundRobin,
    /// The agent who handled the fewest calls.
    FewestCalls,
    /// The agent with the least talk time.
    LeastTalkTime,
    /// A random ready agent (seeded).
    Random,
    /// Ring every ready agent; the first to answer wins.
    RingAll,
}

/// Where a call goes when it waited longer than the queue's max wait.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FinalDestination {
    /// Play a prompt, then hang up.
    Announcement {
        /// The prompt.
        prompt: String,
    },
    /// Redirect to an external number.
    External {
        /// The number.
        number: String,
    },
    /// Move to another queue.
    Queue {
        /// The queue id.
        queue: String,
    },
}

impl Default for FinalDestination {
    fn default() -> Self {
        Self::Announcement {
            prompt: "queue-closed".into(),
        }
    }
}

/// A skill a queue requires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillRequirement {
    /// The skill name.
    pub skill: String,
    /// The lowest level that qualifies.
    pub level_min: u8,
}

/// A queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Unique id (`sales`).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Dialed numbers routed to this queue.
    #[serde(default)]
    pub dnis: Vec<String>,
    /// Agent selection.
    #[serde(default)]
    pub strategy: Strategy,
    /// Priority of its calls (higher first); an IVR variable `priority`
    /// overrides it per call.
    #[serde(default)]
    pub priority: u8,
    /// After this long waiting, the call times out to `final_destination`.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
    /// Wrap-up after a call of this queue.
    #[serde(default = "default_wrap_up_ms")]
    pub wrap_up_ms: u64,
    /// Where timed-out calls go.
    #[serde(default)]
    pub final_destination: FinalDestination,
    /// Skills an agent needs to take this queue's calls (besides listing
    /// the queue); escalation steps in `routing` may relax them.
    #[serde(default)]
    pub required_skills: Vec<SkillRequirement>,
    /// Escalation steps, priority aging, weight and overflow priority.
    #[serde(default)]
    pub routing: QueueRoutingConfig,
    /// Calls of sticky customers: how long they wait for their own agent,
    /// and whether a completed call makes the caller the agent's.
    #[serde(default)]
    pub sticky: StickyQueueConfig,
    /// Most calls waiting, and whether calls may join or stay while no
    /// member is logged in or Ready (`[queues.limits]`).
    #[serde(default)]
    pub limits: QueueLimits,
    /// Periodic place and wait announcements to waiting callers.
    #[serde(default)]
    pub announcements: AnnounceConfig,
    /// Callbacks (a digit, or a hang-up) and re-entry after abandoning.
    #[serde(default)]
    pub callback: CallbackConfig,
    /// The wrap-up codes its agents choose from, and whether one is
    /// required (`[queues.wrap_up_codes]`); no list: free text.
    #[serde(default)]
    pub wrap_up_codes: WrapUpCodes,
}

/// Highest accepted `queues[].limits.waiting_max`.
pub const WAITING_MAX_LIMIT: u32 = 100_000;

/// A queue's limits, like Asterisk app_queue's `maxlen`, `joinempty` and
/// `leavewhenempty`. A call the queue turns away goes where a timed-out
/// call goes (`final_destination`), and its records say why
/// (`queue_full`, `queue_unstaffed`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueLimits {
    /// Most calls waiting at once; a new call arriving when this many wait
    /// is turned away (`queue_full`). None: no limit.
    pub waiting_max: Option<u32>,
    /// Who must be there for a new call to join; otherwise it is turned
    /// away (`queue_unstaffed`). `stay_requires` is checked at the join
    /// too: a call is not let in only to be sent away.
    pub join_requires: Staffing,
    /// Who must be there for waiting calls to stay; when the last such
    /// member leaves, every waiting call is turned away
    /// (`queue_unstaffed`).
    pub stay_requires: Staffing,
}

/// Members a queue needs (see [`QueueLimits`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Staffing {
    /// Nobody: calls join and stay regardless.
    #[default]
    Nobody,
    /// A member logged in (any state but logged out).
    LoggedIn,
    /// A member who takes calls without a manual step: Ready, or busy with
    /// an offer, a call or its wrap-up (not Not Ready, not logged out).
    Available,
}

fn default_max_wait_ms() -> u64 {
    300_000
}

fn default_wrap_up_ms() -> u64 {
    10_000
}

/// One skill of an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillLevel {
    /// The skill name.
    pub skill: String,
    /// 1..=5 (5 is an expert): the best match for a call is the agent
    /// with the most levels above the call's minimums.
    pub level: u8,
}

/// A known caller's priority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerPriority {
    /// The caller number, exactly as the PBX reports it.
    pub ani: String,
    /// Its priority (higher first).
    pub priority: u8,
}

/// How a queue widens, ages and weighs its calls beyond its strategy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueRoutingConfig {
    /// Escalation steps, by rising `after_ms`: each widens who may take a
    /// call that has waited that long in this queue.
    pub steps: Vec<EscalationStep>,
    /// Priority points a call gains per second it waits (0: none), so a
    /// long wait overtakes a higher priority that came later.
    pub aging_per_s: u32,
    /// For an agent in several queues: requests reaching it together are
    /// answered heaviest queue first (0..=100; equal weights: first come).
    pub weight: u32,
    /// A call moved here by an overflow keeps the priority it had; by
    /// default it starts over from its own (attached data, caller) or
    /// this queue's.
    pub keep_priority_on_overflow: bool,
    /// Other queues and spare numbers tried, with caps and hours, before
    /// `final_destination` (`[queues.routing.overflow]`).
    pub overflow: overflow::OverflowConfig,
}

/// One escalation step: after `after_ms` in the queue, exactly one of
/// `level_min`, `any_member` or `overflow`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    /// Wait in this queue after which the step applies, also to calls
    /// already waiting then.
    pub after_ms: u64,
    /// Lowers every required minimum level to at most this (1..=5).
    #[serde(default)]
    pub level_min: Option<u8>,
    /// Any member may take the call: skills are no longer required.
    #[serde(default)]
    pub any_member: bool,
    /// The call leaves now as at `max_wait_ms` (the overflow rules, then
    /// the final destination); must be the last step.
    #[serde(default)]
    pub overflow: bool,
}

/// An agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Unique id (login name).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// The agent's extension; a call to it reaches the agent directly.
    pub extension: String,
    /// Dial string of the agent's device; defaults to `sim/{extension}`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Skills with levels.
    #[serde(default)]
    pub skills: Vec<SkillLevel>,
    /// Queues the agent serves.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Accept offers automatically (the device answers by itself).
    #[serde(default)]
    pub auto_accept: bool,
    /// Overrides the queue's wrap-up time.
    #[serde(default)]
    pub wrap_up_ms: Option<u64>,
    /// Overrides the global reject delay.
    #[serde(default)]
    pub reject_delay_ms: Option<u64>,
}

impl AgentConfig {
    /// The dial string of the agent's device.
    pub fn endpoint(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("sim/{}", self.extension))
    }
}

/// One configuration problem, naming the key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path (`agents[3].queues[0]`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ContactCenterConfig {
    /// Checks cross references and limits; returns every problem found.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut err = |path: String, message: String| errors.push(ConfigError { path, message });

        if self.site_id.is_empty() || self.site_id.contains(':') {
            err(
                "site_id".into(),
                "must be non-empty and contain no ':'".into(),
            );
        }
        let t = &self.timers;
        if t.offer_timeout_ms == 0 || t.offer_timeout_ms > OFFER_TIMEOUT_MS_MAX {
            err(
                "timers.offer_timeout_ms".into(),
                format!("must be in 1..={OFFER_TIMEOUT_MS_MAX}"),
            );
        }
        if t.outbound_wrap_up_ms > WRAP_UP_MS_MAX {
            err(
                "timers.outbound_wrap_up_ms".into(),
                format!("must be at most {WRAP_UP_MS_MAX}"),
            );
        }
        if t.reject_delay_ms > WRAP_UP_MS_MAX {
            err(
                "timers.reject_delay_ms".into(),
                format!("must be at most {WRAP_UP_MS_MAX}"),
            );
        }

        let mut codes = HashSet::new();
        for (i, rc) in self.reason_codes.iter().enumerate() {
            if rc.code.is_empty() || rc.code.starts_with("system:") {
                err(
                    format!("reason_codes[{i}].code"),
                    "must be non-empty and not start with \"system:\"".into(),
                );
            }
            if !codes.insert(rc.code.as_str()) {
                err(
                    format!("reason_codes[{i}].code"),
                    format!("duplicate code {:?}", rc.code),
                );
            }
        }
        if let Some(code) = &t.rona_reason_code {
            if !codes.contains(code.as_str()) {
                err(
                    "timers.rona_reason_code".into(),
                    format!("unknown reason code {code:?}"),
                );
            }
        }

        let queue_ids: HashMap<&str, usize> = self
            .queues
            .iter()
            .enumerate()
            .map(|(i, q)| (q.id.as_str(), i))
            .collect();
        let mut seen_queues = HashSet::new();
        let mut dnis_seen: HashMap<&str, String> = HashMap::new();
        for (i, q) in self.queues.iter().enumerate() {
            let p = format!("queues[{i}]");
            if q.id.is_empty() {
                err(format!("{p}.id"), "must be non-empty".into());
            }
            if !seen_queues.insert(q.id.as_str()) {
                err(format!("{p}.id"), format!("duplicate queue id {:?}", q.id));
            }
            for (j, d) in q.dnis.iter().enumerate() {
                if let Some(other) = dnis_seen.insert(d.as_str(), p.clone()) {
                    err(
                        format!("{p}.dnis[{j}]"),
                        format!("DNIS {d:?} already used by {other}"),
                    );
                }
            }
            if q.max_wait_ms == 0 || q.max_wait_ms > MAX_WAIT_MS_MAX {
                err(
                    format!("{p}.max_wait_ms"),
                    format!("must be in 1..={MAX_WAIT_MS_MAX}"),
                );
            }
            if q.wrap_up_ms > WRAP_UP_MS_MAX {
                err(
                    format!("{p}.wrap_up_ms"),
                    format!("must be at most {WRAP_UP_MS_MAX}"),
                );
            }
            match &q.final_destination {
                FinalDestination::Queue { queue } => {
                    if !queue_ids.contains_key(queue.as_str()) {
                        err(
                            format!("{p}.final_destination.queue"),
                            format!("unknown queue {queue:?}"),
                        );
                    } else if queue == &q.id {
                        err(
                            format!("{p}.final_destination.queue"),
                            "a queue cannot overflow to itself".into(),
                        );
                    }
                }
                FinalDestination::External { number } if number.is_empty() => {
                    err(
                        format!("{p}.final_destination.number"),
                        "must be non-empty".into(),
                    );
                }
                FinalDestination::Announcement { prompt } if prompt.is_empty() => {
                    err(
                        format!("{p}.final_destination.prompt"),
                        "must be non-empty".into(),
                    );
                }
                _ => {}
            }
            if q.sticky.wait_ms > q.max_wait_ms {
                err(
                    format!("{p}.sticky.wait_ms"),
                    "must be at most max_wait_ms (the call leaves the queue then)".into(),
                );
            }
            if q.limits
                .waiting_max
                .is_some_and(|m| m == 0 || m > WAITING_MAX_LIMIT)
            {
                err(
                    format!("{p}.limits.waiting_max"),
                    format!("must be in 1..={WAITING_MAX_LIMIT} (leave it out for no limit)"),
                );
            }
            waiting::validate(&p, &q.announcements, &q.callback, &mut err);
            wrap_up::validate(&p, &q.wrap_up_codes, &mut err);
            let known = |id: &str| queue_ids.contains_key(id);
            overflow::validate(&p, &q.id, &q.routing.overflow, known, &mut err);
            for (j, s) in q.required_skills.iter().enumerate() {
                if !(SKILL_LEVEL_MIN..=SKILL_LEVEL_MAX).contains(&s.level_min) {
                    err(
                        format!("{p}.required_skills[{j}].level_min"),
                        skill_level_message(s.level_min),
                    );
                }
            }
            for (path, message) in queue_routing_errors(&p, q) {
                err(path, message);
            }
        }
        if self.routing.device_refusals_max > DEVICE_REFUSALS_MAX_LIMIT {
            err(
                "routing.device_refusals_max".into(),
                format!("must be at most {DEVICE_REFUSALS_MAX_LIMIT} (0 turns it off)"),
            );
        }
        let mut callers = HashSet::new();
        for (i, c) in self.routing.caller_priorities.iter().enumerate() {
            if c.ani.is_empty() {
                err(
                    format!("routing.caller_priorities[{i}].ani"),
                    "must be non-empty".into(),
                );
            } else if !callers.insert(c.ani.as_str()) {
                err(
                    format!("routing.caller_priorities[{i}].ani"),
                    format!("duplicate caller {:?}", c.ani),
                );
            }
        }
        for (key, message) in self
            .routing
            .backoff
            .check("routing.backoff", t.reject_delay_ms)
        {
            err(key, message);
        }
        if let Some(q) = &self.routing.default_queue {
            if !queue_ids.contains_key(q.as_str()) {
                err(
                    "routing.default_queue".into(),
                    format!("unknown queue {q:?}"),
                );
            }
        }

        let mut agent_ids = HashSet::new();
        let mut extensions: HashMap<&str, usize> = HashMap::new();
        for (i, a) in self.agents.iter().enumerate() {
            let p = format!("agents[{i}]");
            if a.id.is_empty() {
                err(format!("{p}.id"), "must be non-empty".into());
            }
            if !agent_ids.insert(a.id.as_str()) {
                err(format!("{p}.id"), format!("duplicate agent id {:?}", a.id));
            }
            if a.extension.is_empty() {
                err(format!("{p}.extension"), "must be non-empty".into());
            } else if let Some(other) = extensions.insert(a.extension.as_str(), i) {
                err(
                    format!("{p}.extension"),
                    format!(
                        "extension {:?} already used by agents[{other}]",
                        a.extension
                    ),
                );
            }
            if let Some(owner) = dnis_seen.get(a.extension.as_str()) {
                err(
                    format!("{p}.extension"),
                    format!("extension {:?} is also a DNIS of {owner}", a.extension),
                );
            }
            for (j, qid) in a.queues.iter().enumerate() {
                if !queue_ids.contains_key(qid.as_str()) {
                    err(format!("{p}.queues[{j}]"), format!("unknown queue {qid:?}"));
                }
            }
            for (j, s) in a.skills.iter().enumerate() {
                if !(SKILL_LEVEL_MIN..=SKILL_LEVEL_MAX).contains(&s.level) {
                    err(
                        format!("{p}.skills[{j}].level"),
                        skill_level_message(s.level),
                    );
                }
            }
            if a.wrap_up_ms.is_some_and(|w| w > WRAP_UP_MS_MAX) {
                err(
                    format!("{p}.wrap_up_ms"),
                    format!("must be at most {WRAP_UP_MS_MAX}"),
                );
            }
            if a.reject_delay_ms.is_some_and(|w| w > WRAP_UP_MS_MAX) {
                err(
                    format!("{p}.reject_delay_ms"),
                    format!("must be at most {WRAP_UP_MS_MAX}"),
                );
            }
        }

        let mut sticky_anis = HashSet::new();
        for (i, s) in self.sticky_customers.iter().enumerate() {
            let p = format!("sticky_customers[{i}]");
            if s.ani.is_empty() || s.ani.chars().count() > STICKY_ANI_LEN_MAX {
                err(
                    format!("{p}.ani"),
                    format!("must be non-empty and at most {STICKY_ANI_LEN_MAX} characters"),
                );
            }
            if !sticky_anis.insert(s.ani.as_str()) {
                err(format!("{p}.ani"), format!("duplicate number {:?}", s.ani));
            }
            if !agent_ids.contains(s.agent.as_str()) {
                err(format!("{p}.agent"), format!("unknown agent {:?}", s.agent));
            }
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The queue with `id`.
    pub fn queue(&self, id: &str) -> Option<&QueueConfig> {
        self.queues.iter().find(|q| q.id == id)
    }

    /// Whether `code` is a configured reason code.
    pub fn has_reason_code(&self, code: &str) -> bool {
        self.reason_codes.iter().any(|r| r.code == code)
    }

    /// The wrap-up codes of `queue` (none for an unknown queue).
    pub fn wrap_up_codes_of(&self, queue: &crate::ids::QueueId) -> Option<&WrapUpCodes> {
        self.queues
            .iter()
            .find(|q| q.id == queue.0)
            .map(|q| &q.wrap_up_codes)
    }
}

/// Most escalation steps per queue.
pub const ESCALATION_STEPS_MAX: usize = 8;
/// Highest `aging_per_s`: at 100 points a second a call reaches the top
/// priority (255) in under three seconds; more is a typo.
pub const AGING_PER_S_MAX: u32 = 100;

/// Highest queue weight: a scale of 0..=100 is plenty to rank queues.
pub const QUEUE_WEIGHT_MAX: u32 = 100;

/// Why a skill level is refused; says what changed for old configs.
fn skill_level_message(level: u8) -> String {
    let mut m = format!("must be in {SKILL_LEVEL_MIN}..={SKILL_LEVEL_MAX}, not {level}");
    if level > SKILL_LEVEL_MAX {
        m.push_str(" (levels were 0..=10 before; rate skills 1..=5 now)");
    } else if level == 0 {
        m.push_str(" (leave the skill out instead of level 0)");
    }
    m
}

/// The problems of a queue's `routing` section: steps by rising
/// `after_ms` within `max_wait_ms`, each doing one thing, only widening,
/// an overflow last; aging within [`AGING_PER_S_MAX`].
fn queue_routing_errors(p: &str, q: &QueueConfig) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let r = &q.routing;
    if r.aging_per_s > AGING_PER_S_MAX {
        errors.push((
            format!("{p}.routing.aging_per_s"),
            format!("must be at most {AGING_PER_S_MAX}"),
        ));
    }
    if r.weight > QUEUE_WEIGHT_MAX {
        errors.push((
            format!("{p}.routing.weight"),
            format!("must be at most {QUEUE_WEIGHT_MAX}"),
        ));
    }
    if r.steps.len() > ESCALATION_STEPS_MAX {
        errors.push((
            format!("{p}.routing.steps"),
            format!("at most {ESCALATION_STEPS_MAX} steps"),
        ));
    }
    let mut after_prev = 0u64;
    let mut level_prev = SKILL_LEVEL_MAX;
    let mut any_member = false;
    for (k, step) in r.steps.iter().enumerate() {
        let sp = format!("{p}.routing.steps[{k}]");
        let actions = usize::from(step.level_min.is_some())
            + usize::from(step.any_member)
            + usize::from(step.overflow);
        if actions != 1 {
            errors.push((
                sp.clone(),
                "must set exactly one of level_min, any_member, overflow".into(),
            ));
        }
        if step.after_ms == 0 || step.after_ms >= q.max_wait_ms {
            errors.push((
                format!("{sp}.after_ms"),
                format!(
                    "must be in 1..{} (below the queue's max_wait_ms)",
                    q.max_wait_ms
                ),
            ));
        }
        if k > 0 && step.after_ms <= after_prev {
            errors.push((
                format!("{sp}.after_ms"),
                "steps must come by rising after_ms".into(),
            ));
        }
        after_prev = step.after_ms;
        if let Some(level) = step.level_min {
            if !(SKILL_LEVEL_MIN..=SKILL_LEVEL_MAX).contains(&level) {
                errors.push((format!("{sp}.level_min"), skill_level_message(level)));
            } else if any_member || level > level_prev {
                errors.push((
                    format!("{sp}.level_min"),
                    "steps only widen: a later step cannot ask for a higher level".into(),
                ));
            } else {
                level_prev = level;
            }
        }
        any_member |= step.any_member;
        if step.overflow && k + 1 != r.steps.len() {
            errors.push((
                format!("{sp}.overflow"),
                "an overflow step must be the last step".into(),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, ext: &str, queues: &[&str]) -> AgentConfig {
        AgentConfig {
            id: id.into(),
            name: String::new(),
            extension: ext.into(),
            endpoint: None,
            skills: vec![],
            queues: queues.iter().map(|q| q.to_string()).collect(),
            auto_accept: false,
            wrap_up_ms: None,
            reject_delay_ms: None,
        }
    }

    fn queue(id: &str) -> QueueConfig {
        QueueConfig {
            id: id.into(),
            name: String::new(),
            dnis: vec![],
            strategy: Strategy::LongestIdle,
            priority: 0,
            max_wait_ms: 1000,
            wrap_up_ms: 0,
            final_destination: FinalDestination::default(),
            required_skills: vec![],
            routing: QueueRoutingConfig::default(),
            sticky: Default::default(),
            limits: Default::default(),
            announcements: AnnounceConfig::default(),
            callback: CallbackConfig::default(),
            wrap_up_codes: Default::default(),
        }
    }

    /// Errors name the key path of the offending entry.
    #[test]
    fn validate_names_key_paths() {
        let mut cfg = ContactCenterConfig::default();
        cfg.queues.push(queue("support"));
        for i in 0..3 {
            cfg.agents
                .push(agent(&format!("a{i}"), &format!("10{i}"), &["support"]));
        }
        cfg.agents.push(agent("a3", "103", &["sales"]));
        cfg.agents.push(agent("a3", "100", &[]));
        cfg.timers.rona_reason_code = Some("missed".into());
        cfg.routing.device_refusals_max = DEVICE_REFUSALS_MAX_LIMIT + 1;
        cfg.queues[0].sticky.wait_ms = 1_001;
        for agent in ["a1", "nobody"] {
            cfg.sticky_customers.push(StickyCustomerConfig {
                ani: "+1555".into(),
                agent: agent.into(),
            });
        }
        let errors = cfg.validate().unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(text.contains(&"agents[3].queues[0]: unknown queue \"sales\"".to_string()));
        assert!(text
            .iter()
            .any(|t| t.starts_with("agents[4].id: duplicate")));
        assert!(text.iter().any(|t| t.starts_with("agents[4].extension:")));
        assert!(text
            .iter()
            .any(|t| t.starts_with("timers.rona_reason_code:")));
        assert!(text
            .iter()
            .any(|t| t.starts_with("routing.device_refusals_max: must be at most 100")));
        assert!(text
            .iter()
            .any(|t| t.starts_with("queues[0].sticky.wait_ms: must be at most max_wait_ms")));
        assert!(text.contains(&"sticky_customers[1].ani: duplicate number \"+1555\"".to_string()));
        assert!(text.contains(&"sticky_customers[1].agent: unknown agent \"nobody\"".to_string()));
        assert!(!text.iter().any(|t| t.starts_with("sticky_customers[0]")));
    }

    /// Goal: a config from before levels were 1..=5, and escalation steps
    /// that would not widen or never apply, are refused naming each key.
    /// Method: one mistake per key, every message checked.
    #[test]
    fn skill_levels_and_steps_are_checked() {
        let mut cfg = ContactCenterConfig::default();
        let mut q = queue("q");
        q.max_wait_ms = 60_000;
        q.required_skills = vec![SkillRequirement {
            skill: "en".into(),
            level_min: 0,
        }];
        let step = |after_ms, level_min, any_member, overflow| EscalationStep {
            after_ms,
            level_min,
            any_member,
            overflow,
        };
        q.routing.steps = vec![
            step(10_000, Some(3), false, false),
            step(10_000, Some(4), false, false),
            step(20_000, None, true, true),
            step(70_000, None, false, true),
        ];
        q.routing.aging_per_s = AGING_PER_S_MAX + 1;
        q.routing.weight = QUEUE_WEIGHT_MAX + 1;
        cfg.queues.push(q);
        let mut a = agent("a", "100", &["q"]);
        a.skills = vec![SkillLevel {
            skill: "en".into(),
            level: 7,
        }];
        cfg.agents.push(a);
        cfg.routing.caller_priorities = vec![
            CallerPriority {
                ani: "+1".into(),
                priority: 1,
            },
            CallerPriority {
                ani: "+1".into(),
                priority: 2,
            },
        ];
        let text: Vec<String> = cfg
            .validate()
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        let expected = [
            "queues[0].required_skills[0].level_min: must be in 1..=5, not 0 (leave the skill out instead of level 0)",
            "queues[0].routing.aging_per_s: must be at most 100",
            "queues[0].routing.weight: must be at most 100",
            "queues[0].routing.steps[1].after_ms: steps must come by rising after_ms",
            "queues[0].routing.steps[1].level_min: steps only widen: a later step cannot ask for a higher level",
            "queues[0].routing.steps[2]: must set exactly one of level_min, any_member, overflow",
            "queues[0].routing.steps[2].overflow: an overflow step must be the last step",
            "queues[0].routing.steps[3].after_ms: must be in 1..60000 (below the queue's max_wait_ms)",
            "agents[0].skills[0].level: must be in 1..=5, not 7 (levels were 0..=10 before; rate skills 1..=5 now)",
            "routing.caller_priorities[1].ani: duplicate caller \"+1\"",
        ];
        for e in expected {
            assert!(text.contains(&e.to_string()), "{e}\nnot in {text:#?}");
        }
        assert_eq!(text.len(), expected.len(), "{text:#?}");
    }

    /// A valid configuration passes; unknown keys are refused by serde.
    #[test]
    fn valid_config_and_unknown_keys() {
        let cfg: ContactCenterConfig = serde_json::from_value(serde_json::json!({
            "site_id": "s1",
            "timers": { "offer_timeout_ms": 1000 },
            "reason_codes": [{ "code": "break" }],
            "queues": [{ "id": "q", "dnis": ["100"], "strategy": "ring-all",
                          "final_destination": { "kind": "external", "number": "+1555" } }],
            "agents": [{ "id": "a", "extension": "200", "queues": ["q"] }]
        }))
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.queues[0].strategy, Strategy::RingAll);
        let bad = serde_json::from_value::<ContactCenterConfig>(serde_json::json!({
            "agents": [{ "id": "a", "extension": "1", "colour": "red" }]
        }));
        assert!(bad.is_err());
    }
}
