//! The call state machine, pure: phases, offers (leases), the connected
//! session (parties, hold, mute, consult, conference) and the CRM records each
//! step produces. Inputs are methods; outputs are [`CallEffect`]s the actor
//! glue in [`actor`] carries out. No runtime, no I/O: unit-tested directly.
//!
//! ```text
//! Routing -> Queued -> Offering(offers) -> Connected(session) -> Ended(reason)
//!              ^           |  reject / RONA: next agent  |
//!              +-----------+  (agent excluded)           +-> transfer: Offering / Queued
//! ```

pub mod actor;
pub mod supervision;

use crate::agent::{OfferOutcome, OfferPurpose};
use crate::config::FinalDestination;
use crate::ids::{AgentId, BridgeId, CallId, LegId, OfferToken, QueueId};
use crate::ports::{AttachedVar, CrmRecord, CrmRecordKind, HangupCause, PbxCommand};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Most hops through queue final destinations before a call is announced and
/// hung up (guards against overflow cycles).
pub const QUEUE_HOPS_MAX: u8 = 4;
/// Extra time the PBX rings beyond the offer timeout, so edgecc's RONA always
/// decides first.
pub const ORIGINATE_TIMEOUT_SLACK_MS: u64 = 5_000;
/// Prompt when a call exceeded [`QUEUE_HOPS_MAX`] or an extension is missed.
pub const PROMPT_UNAVAILABLE: &str = "all-agents-busy";

/// Direction of the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A customer called in.
    Inbound,
    /// An agent dialed out.
    Outbound,
}

/// How a call ended: exactly one per call (invariant 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum TerminalReason {
    /// Answered by an agent, then ended.
    Completed,
    /// The caller hung up before an agent answered.
    Abandoned,
    /// Sent to an external number.
    Overflowed {
        /// Where.
        number: String,
    },
    /// Waited too long (or missed its extension): a callback work item.
    TimedOut,
    /// A PBX error ended it (logged).
    Failed {
        /// The error.
        error: String,
    },
}

/// What a queue tells the call when it enters: its rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRules {
    /// The queue.
    pub queue: QueueId,
    /// Priority of its calls.
    pub priority: u8,
    /// Longest wait before the final destination.
    pub max_wait_ms: u64,
    /// Wrap-up after its calls.
    pub wrap_up_ms: u64,
    /// Where timed-out calls go.
    pub final_destination: FinalDestination,
    /// Whether it rings all agents.
    pub ring_all: bool,
}

/// What the call needs to know about an agent to ring it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentContact {
    /// The agent.
    pub agent: AgentId,
    /// Its extension (caller id of consults).
    pub extension: String,
    /// Its device's dial string.
    pub endpoint: String,
    /// Whether its device answers by itself.
    pub auto_accept: bool,
}

/// One offer (a lease on an agent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The agent rung.
    pub agent: AgentId,
    /// Fencing token.
    pub token: OfferToken,
    /// The agent leg (`{call}~{token}`).
    pub leg: LegId,
    /// RONA deadline.
    pub deadline_ms: u64,
    /// Why (queue, direct, transfer).
    pub purpose: OfferPurpose,
    /// The agent's extension (caller id of its later consults).
    pub extension: String,
}

/// An agent on the connected call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// The agent.
    pub agent: AgentId,
    /// Its leg.
    pub leg: LegId,
    /// Its extension.
    pub extension: String,
    /// Its microphone is muted.
    pub muted: bool,
    /// Wrap-up when it leaves (queue calls only).
    pub wrap_up_ms: Option<u64>,
    /// When it joined.
    pub joined_ms: u64,
}

/// What a pending extra leg is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingKind {
    /// A consult while the caller holds.
    Consult,
    /// Adding an agent to the conference.
    Conference,
}

/// A consult or conference leg being set up (one at a time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLeg {
    /// Consult or conference.
    pub kind: PendingKind,
    /// The agent who asked.
    pub from: AgentId,
    /// The agent rung.
    pub to: AgentContact,
    /// Fencing token of the offer to `to`.
    pub token: OfferToken,
    /// The new leg.
    pub leg: LegId,
    /// RONA deadline.
    pub deadline_ms: u64,
    /// Whether `to` answered.
    pub answered: bool,
}

/// The connected call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Agents on the call; more than one = conference.
    pub parties: Vec<Party>,
    /// The caller hears music on hold.
    pub held: bool,
    /// A consult or conference leg being set up.
    pub pending: Option<PendingLeg>,
}

/// The call's phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum CallPhase {
    /// Arrived; not yet queued or offered.
    Routing,
    /// Waiting in a queue.
    Queued {
        /// The queue.
        queue: QueueId,
        /// Since when.
        since_ms: u64,
    },
    /// Ringing one agent (several for ring-all).
    Offering {
        /// The offers.
        offers: Vec<Offer>,
        /// Several offers allowed.
        ring_all: bool,
    },
    /// Outbound: the customer is being dialed.
    Dialing {
        /// The agent who dials.
        party: Party,
    },
    /// Talking.
    Connected(Session),
    /// Over.
    Ended(TerminalReason),
}

impl CallPhase {
    /// Short name for views and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Routing => "routing",
            Self::Queued { .. } => "queued",
            Self::Offering { .. } => "offering",
            Self::Dialing { .. } => "dialing",
            Self::Connected(_) => "connected",
            Self::Ended(_) => "ended",
        }
    }
}

/// A message for an agent, produced by the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentNotice {
    /// The offer ended without a connection.
    OfferEnded {
        /// The offer.
        token: OfferToken,
        /// How.
        outcome: OfferOutcome,
    },
    /// The agent's part in the call ended.
    LeftCall {
        /// Wrap-up to apply (queue calls only).
        wrap_up_ms: Option<u64>,
    },
}

/// Something subscribers (desktops) are told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum CallNotice {
    /// An agent joined; every participant is told.
    ParticipantJoined {
        /// Who joined.
        agent: AgentId,
        /// Everyone on the call now.
        participants: Vec<AgentId>,
    },
    /// An agent dropped; every participant is told.
    ParticipantLeft {
        /// Who left.
        agent: AgentId,
        /// Everyone still on the call.
        participants: Vec<AgentId>,
    },
    /// A consult or conference leg failed; the call is back with `agent`.
    LegFailed {
        /// Who asked.
        agent: AgentId,
        /// Who did not join.
        target: AgentId,
        /// Why.
        reason: String,
    },
}

/// Timers the call owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallTimer {
    /// Offer timeout of `token` (RONA).
    Rona(OfferToken),
    /// Max wait of queue stint `n`.
    MaxWait(u32),
}

/// An effect for the glue to carry out, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum CallEffect {
    /// Send to the PBX.
    Pbx(PbxCommand),
    /// Tell an agent.
    Agent(AgentId, AgentNotice),
    /// Join a queue (glue: send to the queue with the call's address).
    Enqueue {
        /// The queue.
        queue: QueueId,
        /// Priority.
        priority: u8,
        /// Agents not to offer.
        excluded: Vec<AgentId>,
    },
    /// Leave a queue.
    Dequeue(QueueId),
    /// Move to another queue (glue looks up its rules and calls
    /// [`Call::enqueue`]).
    MoveToQueue(QueueId),
    /// Append to the outbox, in order.
    Records(Vec<CrmRecord>),
    /// Confirm the accept to the agent once every record so far is durable.
    ConfirmAccept {
        /// The agent.
        agent: AgentId,
        /// Its offer.
        token: OfferToken,
    },
    /// Start a timer.
    Timer(CallTimer, u64),
    /// Tell subscribers.
    Notice(CallNotice),
    /// The call is over.
    Ended(TerminalReason),
}

/// Errors of the call state machine. Never panics on outside input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CallError {
    /// The request does not fit the call's phase.
    #[error("call {call} cannot {action} while {phase}")]
    WrongPhase {
        /// The call.
        call: CallId,
        /// What was asked.
        action: &'static str,
        /// Its phase.
        phase: &'static str,
    },
    /// The agent is not on this call.
    #[error("agent {agent} is not on call {call}")]
    NotAParty {
        /// The agent.
        agent: AgentId,
        /// The call.
        call: CallId,
    },
    /// The offer is not current (redirected, answered elsewhere).
    #[error("offer {token} is not current on call {call}")]
    StaleOffer {
        /// The call.
        call: CallId,
        /// The token.
        token: OfferToken,
    },
    /// A consult or conference leg is already being set up.
    #[error("call {0} already has a consult or conference leg in progress")]
    LegInProgress(CallId),
    /// No consult in progress (or it is not answered yet).
    #[error("call {call} has no answered consult by {agent}")]
    NoConsult {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The call is on hold / not on hold.
    #[error("call {call} is {state}")]
    HoldState {
        /// The call.
        call: CallId,
        /// "already held" or "not held".
        state: &'static str,
    },
    /// Blind transfer or consult needs a one-agent call.
    #[error("call {0} is a conference; leave it instead")]
    InConference(CallId),
    /// The supervisor is not on this call.
    #[error("supervisor {supervisor} is not on call {call}")]
    NotSupervising {
        /// The call.
        call: CallId,
        /// The supervisor.
        supervisor: String,
    },
    /// No interaction exists yet for records.
    #[error("call {0} has no interaction yet")]
    NoInteraction(CallId),
}

/// Keeps at most [`crate::ATTACHED_VARS_MAX`] variables, keys truncated to
/// [`crate::ATTACHED_KEY_LEN_MAX`] characters.
pub fn normalize_attached(vars: Vec<AttachedVar>) -> Vec<AttachedVar> {
    vars.into_iter()
        .take(crate::ATTACHED_VARS_MAX)
        .map(|v| AttachedVar {
            key: v.key.chars().take(crate::ATTACHED_KEY_LEN_MAX).collect(),
            value: v
                .value
                .chars()
                .take(crate::ATTACHED_VALUE_LEN_MAX)
                .collect(),
        })
        .collect()
}

/// A call: everything needed to route it, control it and write its records.
/// Serializable, so it can be persisted and rebuilt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// The call and interaction id.
    pub id: CallId,
    /// Site prefix of correlation ids.
    pub site: String,
    /// In or out.
    pub direction: Direction,
    /// Caller number (customer number for outbound).
    pub ani: String,
    /// Dialed number.
    pub dnis: String,
    /// IVR variables, normalized.
    pub attached: Vec<AttachedVar>,
    /// The customer's leg.
    pub caller_leg: LegId,
    /// When it arrived.
    pub arrived_ms: u64,
    /// Where it is.
    pub phase: CallPhase,
    /// The queue it is or was in, and its rules.
    pub rules: Option<QueueRules>,
    /// Routing priority.
    pub priority: u8,
    /// Agents that rejected or missed it.
    pub excluded: Vec<AgentId>,
    /// `interaction.create` was emitted (never twice).
    pub interaction_created: bool,
    /// `phone_log.create` was emitted (never twice).
    pub phone_log_created: bool,
    /// Ordinal of the last `interaction.update`.
    pub update_seq: u32,
    /// First answer.
    pub answered_ms: Option<u64>,
    /// Max wait elapsed while an offer was ringing: time out when it fails.
    pub max_wait_elapsed: bool,
    /// Queue stints (fences max-wait timers).
    pub stint: u32,
    /// Queue final-destination hops.
    pub queue_hops: u8,
    /// The caller hears music.
    pub moh: bool,
    /// Offer timeout.
    pub offer_timeout_ms: u64,
    /// Supervisors monitoring, whispering or barged in.
    #[serde(default)]
    pub supervisions: Vec<supervision::Supervision>,
}

type Fx = Vec<CallEffect>;

impl Call {
    /// An inbound call that just arrived; answers the caller leg.
    pub fn inbound(
        site: &str,
        leg: LegId,
        ani: String,
        dnis: String,
        attached: Vec<AttachedVar>,
        now_ms: u64,
        offer_timeout_ms: u64,
    ) -> (Self, Fx) {
        let attached = normalize_attached(attached);
        let priority = attached
            .iter()
            .find(|v| v.key == "priority")
            .and_then(|v| v.value.parse().ok());
        let call = Self {
            id: leg.call_id(),
            site: site.to_owned(),
            direction: Direction::Inbound,
            ani,
            dnis,
            attached,
            caller_leg: leg.clone(),
            arrived_ms: now_ms,
            phase: CallPhase::Routing,
            rules: None,
            priority: priority.unwrap_or(0),
            excluded: Vec::new(),
            interaction_created: false,
            phone_log_created: false,
            update_seq: 0,
            answered_ms: None,
            max_wait_elapsed: false,
            stint: 0,
            queue_hops: 0,
            moh: false,
            offer_timeout_ms,
            supervisions: Vec::new(),
        };
        (
            call,
            vec![CallEffect::Pbx(PbxCommand::Answer { leg_id: leg })],
        )
    }

    /// An outbound call dialed by `agent` (already Talking).
    pub fn outbound(
        site: &str,
        id: CallId,
        agent: &AgentContact,
        token: OfferToken,
        number: String,
        now_ms: u64,
        offer_timeout_ms: u64,
    ) -> (Self, Fx) {
        let agent_leg = LegId::for_offer(&id, token);
        let customer = LegId::customer(&id);
        let party = Party {
            agent: agent.agent.clone(),
            leg: agent_leg.clone(),
            extension: agent.extension.clone(),
            muted: false,
            wrap_up_ms: None,
            joined_ms: now_ms,
        };
        let call = Self {
            id,
            site: site.to_owned(),
            direction: Direction::Outbound,
            ani: number.clone(),
            dnis: agent.extension.clone(),
            attached: Vec::new(),
            caller_leg: customer.clone(),
            arrived_ms: now_ms,
            phase: CallPhase::Dialing { party },
            rules: None,
            priority: 0,
            excluded: Vec::new(),
            interaction_created: false,
            phone_log_created: false,
            update_seq: 0,
            answered_ms: None,
            max_wait_elapsed: false,
            stint: 0,
            queue_hops: 0,
            moh: false,
            offer_timeout_ms,
            supervisions: Vec::new(),
        };
        let fx = vec![CallEffect::Pbx(PbxCommand::OutboundDial {
            agent_leg_id: agent_leg,
            endpoint: agent.endpoint.clone(),
            customer_leg_id: customer,
            number,
            timeout_ms: offer_timeout_ms + ORIGINATE_TIMEOUT_SLACK_MS,
        })];
        (call, fx)
    }

    /// Whether the call is over.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, CallPhase::Ended(_))
    }

    /// The offers currently ringing (invariant 2: at most one unless ring-all).
    pub fn offers(&self) -> Vec<(AgentId, OfferToken)> {
        let mut out = Vec::new();
        match &self.phase {
            CallPhase::Offering { offers, .. } => {
                out.extend(offers.iter().map(|o| (o.agent.clone(), o.token)));
            }
            CallPhase::Connected(s) => {
                if let Some(p) = s.pending.as_ref().filter(|p| !p.answered) {
                    out.push((p.to.agent.clone(), p.token));
                }
            }
            _ => {}
        }
        out
    }

    /// Agents on the call.
    pub fn parties(&self) -> Vec<AgentId> {
        match &self.phase {
            CallPhase::Connected(s) => {
                let mut v: Vec<AgentId> = s.parties.iter().map(|p| p.agent.clone()).collect();
                if let Some(p) = s.pending.as_ref().filter(|p| p.answered) {
                    v.push(p.to.agent.clone());
                }
                v
            }
            CallPhase::Dialing { party } => vec![party.agent.clone()],
            _ => Vec::new(),
        }
    }

    fn wrong(&self, action: &'static str) -> CallError {
        CallError::WrongPhase {
            call: self.id.clone(),
            action,
            phase: self.phase.name(),
        }
    }

    fn attached_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.attached
                .iter()
                .map(|v| (v.key.clone(), serde_json::Value::String(v.value.clone())))
                .collect(),
        )
    }

    fn queue_id(&self) -> Option<&QueueId> {
        self.rules.as_ref().map(|r| &r.queue)
    }

    fn record(&self, kind: CrmRecordKind, body: serde_json::Value, now_ms: u64) -> CrmRecord {
        CrmRecord {
            correlation_id: CrmRecord::correlation_id(&self.site, &self.id, kind, self.update_seq),
            interaction_key: self.id.0.clone(),
            kind,
            body,
            at_ms: now_ms,
        }
    }

    fn interaction_create(
        &mut self,
        reason: &str,
        agent: Option<&AgentId>,
        now_ms: u64,
    ) -> Option<CrmRecord> {
        if self.interaction_created {
            return None;
        }
        self.interaction_created = true;
        Some(self.record(
            CrmRecordKind::InteractionCreate,
            json!({
                "call_id": self.id, "direction": self.direction, "channel": "phone",
                "ani": self.ani, "dnis": self.dnis, "attached": self.attached_json(),
                "queue": self.queue_id(), "agent": agent, "reason": reason,
                "arrived_ms": self.arrived_ms,
            }),
            now_ms,
        ))
    }

    fn update(
        &mut self,
        event: &str,
        mut body: serde_json::Value,
        now_ms: u64,
    ) -> Option<CrmRecord> {
        if !self.interaction_created {
            return None;
        }
        self.update_seq += 1;
        if let Some(map) = body.as_object_mut() {
            map.insert("event".into(), json!(event));
            map.insert("seq".into(), json!(self.update_seq));
        }
        Some(self.record(CrmRecordKind::InteractionUpdate, body, now_ms))
    }

    fn work_item(&self, reason: &str, now_ms: u64) -> CrmRecord {
        self.record(
            CrmRecordKind::WorkItemCreate,
            json!({
                "call_id": self.id, "type": "callback", "reason": reason,
                "callback_number": self.ani, "dnis": self.dnis,
                "attached": self.attached_json(), "queue": self.queue_id(),
                "waited_ms": now_ms.saturating_sub(self.arrived_ms),
            }),
            now_ms,
        )
    }

    fn push_update(&mut self, fx: &mut Fx, event: &str, body: serde_json::Value, now_ms: u64) {
        if let Some(r) = self.update(event, body, now_ms) {
            fx.push(CallEffect::Records(vec![r]));
        }
    }

    fn moh_on(&mut self, fx: &mut Fx) {
        if !self.moh {
            self.moh = true;
            fx.push(CallEffect::Pbx(PbxCommand::Hold {
                leg_id: self.caller_leg.clone(),
            }));
        }
    }

    fn moh_off(&mut self, fx: &mut Fx) {
        if self.moh {
            self.moh = false;
            fx.push(CallEffect::Pbx(PbxCommand::Resume {
                leg_id: self.caller_leg.clone(),
            }));
        }
    }

    fn end(&mut self, reason: TerminalReason, fx: &mut Fx, now_ms: u64) {
        self.release_all_supervisions(fx);
        if self.answered_ms.is_some() {
            let talk_ms = now_ms.saturating_sub(self.answered_ms.unwrap_or(now_ms));
            self.push_update(
                fx,
                "ended",
                json!({ "terminal": reason, "duration_ms": now_ms.saturating_sub(self.arrived_ms),
                        "talk_ms": talk_ms }),
                now_ms,
            );
        }
        if self.answered_ms.is_some() {
            fx.push(CallEffect::Pbx(PbxCommand::DestroyBridge {
                bridge_id: BridgeId::main(&self.id),
            }));
        }
        self.phase = CallPhase::Ended(reason.clone());
        fx.push(CallEffect::Ended(reason));
    }

    // ----- queueing -------------------------------------------------------

    /// Join a queue: music on hold, max-wait timer, enqueue.
    pub fn enqueue(&mut self, rules: QueueRules, now_ms: u64) -> Result<Fx, CallError> {
        match &self.phase {
            CallPhase::Routing
            | CallPhase::Queued { .. }
            | CallPhase::Connected(_)
            | CallPhase::Offering { .. } => {}
            _ => return Err(self.wrong("join a queue")),
        }
        let mut fx = Vec::new();
        self.moh_on(&mut fx);
        self.stint += 1;
        self.max_wait_elapsed = false;
        if self.priority == 0 {
            self.priority = rules.priority;
        }
        fx.push(CallEffect::Timer(
            CallTimer::MaxWait(self.stint),
            now_ms + rules.max_wait_ms,
        ));
        fx.push(CallEffect::Enqueue {
            queue: rules.queue.clone(),
            priority: self.priority,
            excluded: self.excluded.clone(),
        });
        self.phase = CallPhase::Queued {
            queue: rules.queue.clone(),
            since_ms: now_ms,
        };
        self.rules = Some(rules);
        Ok(fx)
    }

    /// No route for this call: announce and hang up (logged as a failure).
    pub fn unroutable(&mut self, prompt: &str, now_ms: u64) -> Fx {
        let mut fx = vec![
            CallEffect::Pbx(PbxCommand::PlayAnnouncement {
                leg_id: self.caller_leg.clone(),
                prompt: prompt.to_owned(),
            }),
            CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: self.caller_leg.clone(),
                cause: HangupCause::Normal,
            }),
        ];
        self.end(
            TerminalReason::Failed {
                error: format!("no route for DNIS {}", self.dnis),
            },
            &mut fx,
            now_ms,
        );
        fx
    }

    /// The max-wait timer of `stint` fired.
    pub fn max_wait_elapsed(&mut self, stint: u32, now_ms: u64) -> Fx {
        if stint != self.stint {
            return Vec::new();
        }
        match &self.phase {
            CallPhase::Queued { queue, .. } => {
                let mut fx = vec![CallEffect::Dequeue(queue.clone())];
                self.time_out(&mut fx, now_ms);
                fx
            }
            CallPhase::Offering { offers, .. }
                if offers
                    .iter()
                    .all(|o| matches!(o.purpose, OfferPurpose::Queue(_))) =>
            {
                // Let the ringing offer finish; time out if it fails.
                self.max_wait_elapsed = true;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Queue timeout: interaction + callback work item, then the final
    /// destination. A move to another queue is not a timeout (no records).
    fn time_out(&mut self, fx: &mut Fx, now_ms: u64) {
        let dest = self
            .rules
            .as_ref()
            .map(|r| r.final_destination.clone())
            .unwrap_or_default();
        if let FinalDestination::Queue { queue } = &dest {
            if self.queue_hops < QUEUE_HOPS_MAX {
                self.queue_hops += 1;
                self.push_update(fx, "overflow", json!({ "to_queue": queue }), now_ms);
                fx.push(CallEffect::MoveToQueue(QueueId::new(queue.clone())));
                return;
            }
        }
        self.work_item_and_end(fx, "queue_timeout", now_ms, dest);
    }

    fn work_item_and_end(
        &mut self,
        fx: &mut Fx,
        reason: &str,
        now_ms: u64,
        dest: FinalDestination,
    ) {
        let mut records = Vec::new();
        records.extend(self.interaction_create(reason, None, now_ms));
        records.push(self.work_item(reason, now_ms));
        fx.push(CallEffect::Records(records));
        let leg = self.caller_leg.clone();
        match dest {
            FinalDestination::External { number } => {
                fx.push(CallEffect::Pbx(PbxCommand::RedirectExternal {
                    leg_id: leg,
                    number: number.clone(),
                }));
                self.end(TerminalReason::Overflowed { number }, fx, now_ms);
            }
            FinalDestination::Announcement { prompt } => {
                fx.push(CallEffect::Pbx(PbxCommand::PlayAnnouncement {
                    leg_id: leg.clone(),
                    prompt,
                }));
                fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                    leg_id: leg,
                    cause: HangupCause::Normal,
                }));
                self.end(TerminalReason::TimedOut, fx, now_ms);
            }
            FinalDestination::Queue { .. } => {
                fx.push(CallEffect::Pbx(PbxCommand::PlayAnnouncement {
                    leg_id: leg.clone(),
                    prompt: PROMPT_UNAVAILABLE.into(),
                }));
                fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                    leg_id: leg,
                    cause: HangupCause::Normal,
                }));
                self.end(TerminalReason::TimedOut, fx, now_ms);
            }
        }
    }

    // ----- offers ---------------------------------------------------------

    /// Ring `agent` (reserved by its queue or by the glue for `purpose`).
    /// When the call cannot take it, the agent is released.
    pub fn offer(
        &mut self,
        agent: &AgentContact,
        token: OfferToken,
        purpose: OfferPurpose,
        ring_all: bool,
        now_ms: u64,
    ) -> Fx {
        let takes = match (&self.phase, &purpose) {
            (CallPhase::Queued { queue, .. }, OfferPurpose::Queue(q)) => queue == q,
            (
                CallPhase::Offering {
                    ring_all: true,
                    offers,
                },
                OfferPurpose::Queue(_),
            ) => ring_all && offers.len() < crate::queue::RING_ALL_AGENTS_MAX,
            (CallPhase::Routing, OfferPurpose::Direct) => true,
            _ => false,
        };
        if !takes || self.excluded.contains(&agent.agent) {
            return vec![CallEffect::Agent(
                agent.agent.clone(),
                AgentNotice::OfferEnded {
                    token,
                    outcome: OfferOutcome::Withdrawn,
                },
            )];
        }
        let mut fx = Vec::new();
        self.moh_on(&mut fx);
        let offer = self.ring(agent, token, purpose, now_ms, &mut fx);
        match &mut self.phase {
            CallPhase::Offering { offers, .. } => offers.push(offer),
            _ => {
                self.phase = CallPhase::Offering {
                    offers: vec![offer],
                    ring_all,
                }
            }
        }
        fx
    }

    fn ring(
        &self,
        agent: &AgentContact,
        token: OfferToken,
        purpose: OfferPurpose,
        now_ms: u64,
        fx: &mut Fx,
    ) -> Offer {
        let leg = LegId::for_offer(&self.id, token);
        let deadline_ms = now_ms + self.offer_timeout_ms;
        fx.push(CallEffect::Pbx(PbxCommand::OriginateAgentLeg {
            leg_id: leg.clone(),
            endpoint: agent.endpoint.clone(),
            caller_id: self.ani.clone(),
            timeout_ms: self.offer_timeout_ms + ORIGINATE_TIMEOUT_SLACK_MS,
            auto_answer: agent.auto_accept,
        }));
        fx.push(CallEffect::Timer(CallTimer::Rona(token), deadline_ms));
        Offer {
            agent: agent.agent.clone(),
            token,
            leg,
            deadline_ms,
            purpose,
            extension: agent.extension.clone(),
        }
    }

    /// A direct call's agent could not be reserved, or its offer failed: the
    /// caller gets a callback work item.
    pub fn direct_missed(&mut self, now_ms: u64) -> Fx {
        let mut fx = Vec::new();
        if matches!(self.phase, CallPhase::Routing | CallPhase::Offering { .. }) {
            self.work_item_and_end(
                &mut fx,
                "missed_extension",
                now_ms,
                FinalDestination::Announcement {
                    prompt: PROMPT_UNAVAILABLE.into(),
                },
            );
        }
        fx
    }

    /// The agent accepted (its leg answered, or from the desktop).
    pub fn accept(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        from_desktop: bool,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let CallPhase::Offering { offers, .. } = &mut self.phase else {
            return self.pending_answered(token, now_ms);
        };
        let Some(i) = offers
            .iter()
            .position(|o| o.token == token && &o.agent == agent)
        else {
            return Err(CallError::StaleOffer {
                call: self.id.clone(),
                token,
            });
        };
        let won = offers.remove(i);
        let others = std::mem::take(offers);
        let mut fx = Vec::new();
        for o in others {
            fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: o.leg,
                cause: HangupCause::Normal,
            }));
            fx.push(CallEffect::Agent(
                o.agent,
                AgentNotice::OfferEnded {
                    token: o.token,
                    outcome: OfferOutcome::Withdrawn,
                },
            ));
        }
        if from_desktop {
            fx.push(CallEffect::Pbx(PbxCommand::Answer {
                leg_id: won.leg.clone(),
            }));
        }
        self.moh_off(&mut fx);
        let bridge = BridgeId::main(&self.id);
        fx.push(CallEffect::Pbx(PbxCommand::Bridge {
            bridge_id: bridge.clone(),
            leg_id: self.caller_leg.clone(),
        }));
        fx.push(CallEffect::Pbx(PbxCommand::Bridge {
            bridge_id: bridge,
            leg_id: won.leg.clone(),
        }));
        let first_answer = self.answered_ms.is_none();
        if first_answer {
            self.answered_ms = Some(now_ms);
        }
        let mut records = Vec::new();
        records.extend(self.interaction_create("accepted", Some(&won.agent), now_ms));
        if !self.phone_log_created {
            self.phone_log_created = true;
            records.push(self.record(
                CrmRecordKind::PhoneLogCreate,
                json!({
                    "call_id": self.id, "direction": self.direction, "ani": self.ani,
                    "dnis": self.dnis, "agent": won.agent, "queue": self.queue_id(),
                    "attached": self.attached_json(), "arrived_ms": self.arrived_ms,
                    "answered_ms": now_ms,
                }),
                now_ms,
            ));
        }
        if !first_answer {
            records.extend(self.update("agent_connected", json!({ "agent": won.agent }), now_ms));
        }
        fx.push(CallEffect::Records(records));
        fx.push(CallEffect::ConfirmAccept {
            agent: won.agent.clone(),
            token,
        });
        let wrap_up_ms = match &won.purpose {
            OfferPurpose::Queue(_) => self.rules.as_ref().map(|r| r.wrap_up_ms),
            _ => None,
        };
        let party = Party {
            agent: won.agent.clone(),
            leg: won.leg,
            extension: won.extension,
            muted: false,
            wrap_up_ms,
            joined_ms: now_ms,
        };
        fx.push(CallEffect::Notice(CallNotice::ParticipantJoined {
            agent: won.agent,
            participants: vec![party.agent.clone()],
        }));
        self.phase = CallPhase::Connected(Session {
            parties: vec![party],
            held: false,
            pending: None,
        });
        Ok(fx)
    }

    /// The agent rejected the offer (desktop, or its device refused).
    pub fn reject(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        self.offer_failed(
            agent,
            token,
            OfferOutcome::Rejected,
            HangupCause::Rejected,
            now_ms,
        )
    }

    /// The RONA timer of `token` fired.
    pub fn rona(&mut self, token: OfferToken, now_ms: u64) -> Fx {
        let agent = match &self.phase {
            CallPhase::Offering { offers, .. } => offers
                .iter()
                .find(|o| o.token == token && o.deadline_ms <= now_ms)
                .map(|o| o.agent.clone()),
            CallPhase::Connected(s) => s
                .pending
                .as_ref()
                .filter(|p| p.token == token && !p.answered && p.deadline_ms <= now_ms)
                .map(|p| p.to.agent.clone()),
            _ => None,
        };
        match agent {
            Some(agent) => self
                .offer_failed(
                    &agent,
                    token,
                    OfferOutcome::Missed,
                    HangupCause::NoAnswer,
                    now_ms,
                )
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    fn offer_failed(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        outcome: OfferOutcome,
        cause: HangupCause,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        self.offer_failed_with(agent, token, outcome, cause, true, now_ms)
    }

    /// An offer's originate never reached the PBX because the CTI link is
    /// down: not the agent's doing. The agent is released without penalty
    /// (withdrawn, not excluded, no RONA) and the call goes back where it
    /// came from; queues hold their calls until the link is back.
    pub fn offer_not_sent(&mut self, leg: &LegId, now_ms: u64) -> Fx {
        let found = match &self.phase {
            CallPhase::Offering { offers, .. } => offers
                .iter()
                .find(|o| &o.leg == leg)
                .map(|o| (o.agent.clone(), o.token, false)),
            CallPhase::Connected(s) => s
                .pending
                .as_ref()
                .filter(|p| &p.leg == leg && !p.answered)
                .map(|p| (p.to.agent.clone(), p.token, true)),
            _ => None,
        };
        match found {
            Some((agent, token, false)) => self
                .offer_failed_with(
                    &agent,
                    token,
                    OfferOutcome::Withdrawn,
                    HangupCause::Normal,
                    false,
                    now_ms,
                )
                .unwrap_or_default(),
            Some((_, token, true)) => self
                .pending_failed(token, OfferOutcome::Withdrawn, HangupCause::Normal, now_ms)
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    fn offer_failed_with(
        &mut self,
        agent: &AgentId,
        token: OfferToken,
        outcome: OfferOutcome,
        cause: HangupCause,
        exclude: bool,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let CallPhase::Offering { offers, .. } = &mut self.phase else {
            return self.pending_failed(token, outcome, cause, now_ms);
        };
        let Some(i) = offers
            .iter()
            .position(|o| o.token == token && &o.agent == agent)
        else {
            return Err(CallError::StaleOffer {
                call: self.id.clone(),
                token,
            });
        };
        let offer = offers.remove(i);
        let empty = offers.is_empty();
        let mut fx = vec![
            CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: offer.leg.clone(),
                cause,
            }),
            CallEffect::Agent(
                offer.agent.clone(),
                AgentNotice::OfferEnded { token, outcome },
            ),
        ];
        if exclude {
            self.excluded.push(offer.agent.clone());
        }
        if empty {
            self.redirect(&offer.purpose, &mut fx, now_ms);
        }
        Ok(fx)
    }

    /// Every offer failed: next agent (back to the queue), or the fallback.
    fn redirect(&mut self, purpose: &OfferPurpose, fx: &mut Fx, now_ms: u64) {
        match purpose {
            OfferPurpose::Queue(queue) => {
                if self.max_wait_elapsed {
                    self.time_out(fx, now_ms);
                } else {
                    self.phase = CallPhase::Queued {
                        queue: queue.clone(),
                        since_ms: now_ms,
                    };
                    fx.push(CallEffect::Enqueue {
                        queue: queue.clone(),
                        priority: self.priority,
                        excluded: self.excluded.clone(),
                    });
                }
            }
            OfferPurpose::Direct => {
                self.phase = CallPhase::Routing;
                fx.extend(self.direct_missed(now_ms));
            }
            _ => {
                // A failed blind transfer: back to the call's queue, else end.
                match self.rules.clone() {
                    Some(rules) => {
                        self.phase = CallPhase::Routing;
                        fx.extend(self.enqueue(rules, now_ms).unwrap_or_default());
                    }
                    None => {
                        fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                            leg_id: self.caller_leg.clone(),
                            cause: HangupCause::Normal,
                        }));
                        self.end(TerminalReason::Completed, fx, now_ms);
                    }
                }
            }
        }
    }

    // ----- leg events -----------------------------------------------------

    /// A leg was answered at the PBX.
    pub fn leg_answered(&mut self, leg: &LegId, now_ms: u64) -> Fx {
        let offer = match &self.phase {
            CallPhase::Offering { offers, .. } => offers
                .iter()
                .find(|o| &o.leg == leg)
                .map(|o| (o.agent.clone(), o.token)),
            CallPhase::Connected(s) => s
                .pending
                .as_ref()
                .filter(|p| &p.leg == leg && !p.answered)
                .map(|p| (p.to.agent.clone(), p.token)),
            CallPhase::Dialing { .. } if leg == &self.caller_leg => {
                return self.customer_answered(now_ms);
            }
            _ => None,
        };
        match offer {
            Some((agent, token)) => self
                .accept(&agent, token, false, now_ms)
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// A leg hung up at the PBX.
    pub fn leg_hung_up(&mut self, leg: &LegId, cause: HangupCause, now_ms: u64) -> Fx {
        if self.is_ended() {
            return Vec::new();
        }
        if leg == &self.caller_leg {
            return self.caller_hung_up(cause, now_ms);
        }
        if self.supervisor_leg_gone(leg) {
            return Vec::new();
        }
        match &self.phase {
            CallPhase::Offering { offers, .. } => {
                if let Some(o) = offers.iter().find(|o| &o.leg == leg) {
                    let (agent, token) = (o.agent.clone(), o.token);
                    let outcome = match cause {
                        HangupCause::Busy | HangupCause::Rejected => OfferOutcome::Rejected,
                        _ => OfferOutcome::Missed,
                    };
                    return self
                        .offer_failed(&agent, token, outcome, cause, now_ms)
                        .unwrap_or_default();
                }
                Vec::new()
            }
            CallPhase::Dialing { party } if &party.leg == leg => {
                let mut fx = vec![
                    CallEffect::Pbx(PbxCommand::Hangup {
                        leg_id: self.caller_leg.clone(),
                        cause: HangupCause::Normal,
                    }),
                    CallEffect::Agent(
                        party.agent.clone(),
                        AgentNotice::LeftCall { wrap_up_ms: None },
                    ),
                ];
                self.end(
                    TerminalReason::Failed {
                        error: "agent leg ended before the customer answered".into(),
                    },
                    &mut fx,
                    now_ms,
                );
                fx
            }
            CallPhase::Connected(s) => {
                if let Some(p) = s.parties.iter().find(|p| &p.leg == leg) {
                    let agent = p.agent.clone();
                    return self.party_leaves(&agent, false, now_ms).unwrap_or_default();
                }
                if let Some(p) = s.pending.as_ref().filter(|p| &p.leg == leg) {
                    if p.answered {
                        let agent = p.to.agent.clone();
                        return self.pending_left(&agent, now_ms);
                    }
                    let outcome = match cause {
                        HangupCause::Busy | HangupCause::Rejected => OfferOutcome::Rejected,
                        _ => OfferOutcome::Missed,
                    };
                    let token = p.token;
                    return self
                        .pending_failed(token, outcome, cause, now_ms)
                        .unwrap_or_default();
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn caller_hung_up(&mut self, cause: HangupCause, now_ms: u64) -> Fx {
        let mut fx = Vec::new();
        match std::mem::replace(&mut self.phase, CallPhase::Routing) {
            CallPhase::Routing => self.abandon(&mut fx, now_ms),
            CallPhase::Queued { queue, .. } => {
                fx.push(CallEffect::Dequeue(queue));
                self.abandon(&mut fx, now_ms);
            }
            CallPhase::Offering { offers, .. } => {
                for o in offers {
                    fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                        leg_id: o.leg,
                        cause: HangupCause::Normal,
                    }));
                    fx.push(CallEffect::Agent(
                        o.agent,
                        AgentNotice::OfferEnded {
                            token: o.token,
                            outcome: OfferOutcome::Withdrawn,
                        },
                    ));
                }
                self.abandon(&mut fx, now_ms);
            }
            CallPhase::Dialing { party } => {
                fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                    leg_id: party.leg,
                    cause: HangupCause::Normal,
                }));
                fx.push(CallEffect::Agent(
                    party.agent,
                    AgentNotice::LeftCall { wrap_up_ms: None },
                ));
                self.end(
                    TerminalReason::Failed {
                        error: format!("customer not reached: {cause:?}"),
                    },
                    &mut fx,
                    now_ms,
                );
            }
            CallPhase::Connected(s) => {
                self.release_session(s, &mut fx);
                self.end(TerminalReason::Completed, &mut fx, now_ms);
            }
            ended @ CallPhase::Ended(_) => self.phase = ended,
        }
        fx
    }

    fn release_session(&mut self, s: Session, fx: &mut Fx) {
        if let Some(p) = s.pending {
            fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: p.leg,
                cause: HangupCause::Normal,
            }));
            let notice = if p.answered {
                AgentNotice::LeftCall { wrap_up_ms: None }
            } else {
                AgentNotice::OfferEnded {
                    token: p.token,
                    outcome: OfferOutcome::Withdrawn,
                }
            };
            fx.push(CallEffect::Agent(p.to.agent, notice));
            fx.push(CallEffect::Pbx(PbxCommand::DestroyBridge {
                bridge_id: BridgeId::consult(&self.id),
            }));
        }
        for p in s.parties {
            fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: p.leg,
                cause: HangupCause::Normal,
            }));
            fx.push(CallEffect::Agent(
                p.agent,
                AgentNotice::LeftCall {
                    wrap_up_ms: p.wrap_up_ms,
                },
            ));
        }
    }

    /// The caller hung up before an agent answered.
    fn abandon(&mut self, fx: &mut Fx, now_ms: u64) {
        let mut records = Vec::new();
        records.extend(self.interaction_create("abandoned", None, now_ms));
        records.push(self.work_item("abandoned", now_ms));
        fx.push(CallEffect::Records(records));
        self.end(TerminalReason::Abandoned, fx, now_ms);
    }

    fn customer_answered(&mut self, now_ms: u64) -> Fx {
        let CallPhase::Dialing { party } = std::mem::replace(&mut self.phase, CallPhase::Routing)
        else {
            return Vec::new();
        };
        let bridge = BridgeId::main(&self.id);
        let mut fx = vec![
            CallEffect::Pbx(PbxCommand::Bridge {
                bridge_id: bridge.clone(),
                leg_id: party.leg.clone(),
            }),
            CallEffect::Pbx(PbxCommand::Bridge {
                bridge_id: bridge,
                leg_id: self.caller_leg.clone(),
            }),
        ];
        self.answered_ms = Some(now_ms);
        let mut records = Vec::new();
        records.extend(self.interaction_create("outbound", Some(&party.agent), now_ms));
        self.phone_log_created = true;
        records.push(self.record(
            CrmRecordKind::PhoneLogCreate,
            json!({ "call_id": self.id, "direction": self.direction, "number": self.ani,
                    "agent": party.agent, "answered_ms": now_ms }),
            now_ms,
        ));
        fx.push(CallEffect::Records(records));
        self.phase = CallPhase::Connected(Session {
            parties: vec![party],
            held: false,
            pending: None,
        });
        fx
    }

    // ----- controls on the connected call -----------------------------------

    fn session(
        &mut self,
        agent: &AgentId,
        action: &'static str,
    ) -> Result<&mut Session, CallError> {
        let id = self.id.clone();
        let phase = self.phase.name();
        match &mut self.phase {
            CallPhase::Connected(s) => {
                if s.parties.iter().any(|p| &p.agent == agent) {
                    Ok(s)
                } else {
                    Err(CallError::NotAParty {
                        agent: agent.clone(),
                        call: id,
                    })
                }
            }
            _ => Err(CallError::WrongPhase {
                call: id,
                action,
                phase,
            }),
        }
    }

    /// Put the caller on hold (music).
    pub fn hold(&mut self, agent: &AgentId, now_ms: u64) -> Result<Fx, CallError> {
        let id = self.id.clone();
        let s = self.session(agent, "hold")?;
        if s.held {
            return Err(CallError::HoldState {
                call: id,
                state: "already held",
            });
        }
        s.held = true;
        let mut fx = Vec::new();
        self.moh_on(&mut fx);
        self.push_update(&mut fx, "hold", json!({ "agent": agent }), now_ms);
        Ok(fx)
    }

    /// Take the caller off hold.
    pub fn resume(&mut self, agent: &AgentId, now_ms: u64) -> Result<Fx, CallError> {
        let id = self.id.clone();
        let s = self.session(agent, "resume")?;
        if !s.held {
            return Err(CallError::HoldState {
                call: id,
                state: "not held",
            });
        }
        if s.pending
            .as_ref()
            .is_some_and(|p| p.kind == PendingKind::Consult)
        {
            return Err(CallError::LegInProgress(id));
        }
        s.held = false;
        let mut fx = Vec::new();
        self.moh_off(&mut fx);
        self.push_update(&mut fx, "resume", json!({ "agent": agent }), now_ms);
        Ok(fx)
    }

    /// Mute or unmute the agent's microphone.
    pub fn mute(&mut self, agent: &AgentId, muted: bool, now_ms: u64) -> Result<Fx, CallError> {
        let s = self.session(agent, "mute")?;
        let p = s
            .parties
            .iter_mut()
            .find(|p| &p.agent == agent)
            .expect("session() checked the party");
        p.muted = muted;
        let leg_id = p.leg.clone();
        let mut fx = vec![CallEffect::Pbx(if muted {
            PbxCommand::Mute { leg_id }
        } else {
            PbxCommand::Unmute { leg_id }
        })];
        let event = if muted { "mute" } else { "unmute" };
        self.push_update(&mut fx, event, json!({ "agent": agent }), now_ms);
        Ok(fx)
    }

    /// The agent hangs up (desktop).
    pub fn hang_up(&mut self, agent: &AgentId, now_ms: u64) -> Result<Fx, CallError> {
        if let CallPhase::Dialing { party } = &self.phase {
            if &party.agent == agent {
                let leg = party.leg.clone();
                return Ok(self.leg_hung_up(&leg, HangupCause::Normal, now_ms));
            }
        }
        self.session(agent, "hang up")?;
        self.party_leaves(agent, true, now_ms)
    }

    /// An agent leaves the connected call (hang-up, transfer away).
    fn party_leaves(
        &mut self,
        agent: &AgentId,
        hang_up_leg: bool,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let s = self.session(agent, "leave")?;
        let i = s
            .parties
            .iter()
            .position(|p| &p.agent == agent)
            .expect("checked");
        let party = s.parties.remove(i);
        let mut fx = Vec::new();
        if hang_up_leg {
            fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: party.leg.clone(),
                cause: HangupCause::Normal,
            }));
        }
        fx.push(CallEffect::Agent(
            party.agent.clone(),
            AgentNotice::LeftCall {
                wrap_up_ms: party.wrap_up_ms,
            },
        ));
        // A consult by the leaving agent: answered -> the consulted agent
        // takes the call; still ringing -> cancelled.
        let pending_from_leaver = s.pending.as_ref().is_some_and(|p| &p.from == agent);
        if pending_from_leaver {
            let p = s.pending.take().expect("checked");
            if p.answered {
                let joined = Party {
                    agent: p.to.agent.clone(),
                    leg: p.leg.clone(),
                    extension: p.to.extension.clone(),
                    muted: false,
                    wrap_up_ms: None,
                    joined_ms: now_ms,
                };
                s.parties.push(joined);
                s.held = false;
                let main = BridgeId::main(&self.id);
                fx.push(CallEffect::Pbx(PbxCommand::Unbridge {
                    bridge_id: BridgeId::consult(&self.id),
                    leg_id: p.leg.clone(),
                }));
                fx.push(CallEffect::Pbx(PbxCommand::Bridge {
                    bridge_id: main,
                    leg_id: p.leg.clone(),
                }));
                fx.push(CallEffect::Pbx(PbxCommand::DestroyBridge {
                    bridge_id: BridgeId::consult(&self.id),
                }));
                self.moh_off(&mut fx);
                self.push_update(
                    &mut fx,
                    "transfer",
                    json!({ "from": agent, "to_agent": p.to.agent, "reason": "consult" }),
                    now_ms,
                );
            } else {
                fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                    leg_id: p.leg,
                    cause: HangupCause::Normal,
                }));
                fx.push(CallEffect::Agent(
                    p.to.agent.clone(),
                    AgentNotice::OfferEnded {
                        token: p.token,
                        outcome: OfferOutcome::Withdrawn,
                    },
                ));
                self.push_update(
                    &mut fx,
                    "consult_failed",
                    json!({ "agent": agent, "target": p.to.agent, "reason": "consulting agent left",
                            "customer_ani": self.ani }),
                    now_ms,
                );
            }
        }
        self.release_supervisions_of(&party.leg, &mut fx);
        let CallPhase::Connected(s) = &mut self.phase else {
            unreachable!("still connected")
        };
        if s.parties.is_empty() {
            let s = std::mem::replace(
                s,
                Session {
                    parties: vec![],
                    held: false,
                    pending: None,
                },
            );
            self.release_session(s, &mut fx);
            fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: self.caller_leg.clone(),
                cause: HangupCause::Normal,
            }));
            self.end(TerminalReason::Completed, &mut fx, now_ms);
        } else {
            let participants: Vec<AgentId> = s.parties.iter().map(|p| p.agent.clone()).collect();
            fx.push(CallEffect::Notice(CallNotice::ParticipantLeft {
                agent: agent.clone(),
                participants,
            }));
            self.push_update(
                &mut fx,
                "participant_left",
                json!({ "agent": agent }),
                now_ms,
            );
        }
        Ok(fx)
    }

    fn single_party(&mut self, agent: &AgentId, action: &'static str) -> Result<(), CallError> {
        let id = self.id.clone();
        let s = self.session(agent, action)?;
        if s.pending.is_some() {
            return Err(CallError::LegInProgress(id));
        }
        if s.parties.len() > 1 {
            return Err(CallError::InConference(id));
        }
        Ok(())
    }

    /// Whether `agent` may transfer, consult or add someone now (checked
    /// before the glue reserves the target).
    pub fn can_start_leg(&mut self, agent: &AgentId, conference: bool) -> Result<(), CallError> {
        if conference {
            let id = self.id.clone();
            let s = self.session(agent, "add to conference")?;
            if s.pending.is_some() {
                return Err(CallError::LegInProgress(id));
            }
            Ok(())
        } else {
            self.single_party(agent, "transfer or consult")
        }
    }

    /// Blind transfer to an agent the glue reserved (purpose Transfer).
    pub fn transfer_to_agent(
        &mut self,
        from: &AgentId,
        to: &AgentContact,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        self.single_party(from, "transfer")?;
        let mut fx = self.leave_for_transfer(from)?;
        self.push_update(
            &mut fx,
            "transfer",
            json!({ "from": from, "to_agent": to.agent }),
            now_ms,
        );
        self.moh_on(&mut fx);
        fx.push(CallEffect::Pbx(PbxCommand::Unbridge {
            bridge_id: BridgeId::main(&self.id),
            leg_id: self.caller_leg.clone(),
        }));
        let offer = self.ring(to, token, OfferPurpose::Transfer, now_ms, &mut fx);
        self.phase = CallPhase::Offering {
            offers: vec![offer],
            ring_all: false,
        };
        Ok(fx)
    }

    /// Blind transfer to a queue.
    pub fn transfer_to_queue(
        &mut self,
        from: &AgentId,
        rules: QueueRules,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        self.single_party(from, "transfer")?;
        let mut fx = self.leave_for_transfer(from)?;
        self.push_update(
            &mut fx,
            "transfer",
            json!({ "from": from, "to_queue": rules.queue }),
            now_ms,
        );
        fx.push(CallEffect::Pbx(PbxCommand::Unbridge {
            bridge_id: BridgeId::main(&self.id),
            leg_id: self.caller_leg.clone(),
        }));
        self.excluded.clear();
        self.phase = CallPhase::Routing;
        fx.extend(self.enqueue(rules, now_ms)?);
        Ok(fx)
    }

    fn leave_for_transfer(&mut self, from: &AgentId) -> Result<Fx, CallError> {
        let s = self.session(from, "transfer")?;
        let party = s.parties.remove(0);
        Ok(vec![
            CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: party.leg,
                cause: HangupCause::Normal,
            }),
            CallEffect::Agent(
                party.agent,
                AgentNotice::LeftCall {
                    wrap_up_ms: party.wrap_up_ms,
                },
            ),
        ])
    }

    /// Consult: the caller holds, `to` (reserved, purpose Consult) is dialed.
    pub fn consult(
        &mut self,
        from: &AgentId,
        to: &AgentContact,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        self.single_party(from, "consult")?;
        let leg = LegId::for_offer(&self.id, token);
        let deadline_ms = now_ms + self.offer_timeout_ms;
        let timeout_ms = self.offer_timeout_ms + ORIGINATE_TIMEOUT_SLACK_MS;
        let s = self.session(from, "consult")?;
        let extension = s.parties[0].extension.clone();
        s.held = true;
        s.pending = Some(PendingLeg {
            kind: PendingKind::Consult,
            from: from.clone(),
            to: to.clone(),
            token,
            leg: leg.clone(),
            deadline_ms,
            answered: false,
        });
        let mut fx = Vec::new();
        self.moh_on(&mut fx);
        fx.push(CallEffect::Pbx(PbxCommand::ConsultDial {
            leg_id: leg,
            endpoint: to.endpoint.clone(),
            caller_id: if extension.is_empty() {
                from.0.clone()
            } else {
                extension
            },
            timeout_ms,
        }));
        fx.push(CallEffect::Timer(CallTimer::Rona(token), deadline_ms));
        self.push_update(
            &mut fx,
            "consult_initiated",
            json!({ "agent": from, "target": to.agent }),
            now_ms,
        );
        Ok(fx)
    }

    /// Conference: ring `to` (reserved, purpose Conference) to join the call.
    pub fn add_to_conference(
        &mut self,
        from: &AgentId,
        to: &AgentContact,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        self.can_start_leg(from, true)?;
        let leg = LegId::for_offer(&self.id, token);
        let deadline_ms = now_ms + self.offer_timeout_ms;
        let s = self.session(from, "add to conference")?;
        s.pending = Some(PendingLeg {
            kind: PendingKind::Conference,
            from: from.clone(),
            to: to.clone(),
            token,
            leg: leg.clone(),
            deadline_ms,
            answered: false,
        });
        let mut fx = vec![
            CallEffect::Pbx(PbxCommand::OriginateAgentLeg {
                leg_id: leg,
                endpoint: to.endpoint.clone(),
                caller_id: self.ani.clone(),
                timeout_ms: self.offer_timeout_ms + ORIGINATE_TIMEOUT_SLACK_MS,
                auto_answer: to.auto_accept,
            }),
            CallEffect::Timer(CallTimer::Rona(token), deadline_ms),
        ];
        self.push_update(
            &mut fx,
            "conference_invite",
            json!({ "agent": from, "target": to.agent }),
            now_ms,
        );
        Ok(fx)
    }

    /// The pending consult/conference leg answered.
    fn pending_answered(&mut self, token: OfferToken, now_ms: u64) -> Result<Fx, CallError> {
        let id = self.id.clone();
        let ani = self.ani.clone();
        let CallPhase::Connected(s) = &mut self.phase else {
            return Err(CallError::StaleOffer { call: id, token });
        };
        let Some(p) = s
            .pending
            .as_mut()
            .filter(|p| p.token == token && !p.answered)
        else {
            return Err(CallError::StaleOffer { call: id, token });
        };
        let mut fx = Vec::new();
        match p.kind {
            PendingKind::Consult => {
                p.answered = true;
                let to = p.to.agent.clone();
                let leg = p.leg.clone();
                let from_leg = s
                    .parties
                    .iter()
                    .find(|x| x.agent == p.from)
                    .map(|x| x.leg.clone());
                let consult = BridgeId::consult(&id);
                if let Some(from_leg) = from_leg {
                    fx.push(CallEffect::Pbx(PbxCommand::Unbridge {
                        bridge_id: BridgeId::main(&id),
                        leg_id: from_leg.clone(),
                    }));
                    fx.push(CallEffect::Pbx(PbxCommand::Bridge {
                        bridge_id: consult.clone(),
                        leg_id: from_leg,
                    }));
                }
                fx.push(CallEffect::Pbx(PbxCommand::Bridge {
                    bridge_id: consult,
                    leg_id: leg,
                }));
                fx.push(CallEffect::ConfirmAccept {
                    agent: to.clone(),
                    token,
                });
                self.push_update(
                    &mut fx,
                    "leg_started",
                    json!({ "reason": "consult", "agent": to, "customer_ani": ani }),
                    now_ms,
                );
            }
            PendingKind::Conference => {
                let p = s.pending.take().expect("checked");
                s.parties.push(Party {
                    agent: p.to.agent.clone(),
                    leg: p.leg.clone(),
                    extension: p.to.extension.clone(),
                    muted: false,
                    wrap_up_ms: None,
                    joined_ms: now_ms,
                });
                let participants: Vec<AgentId> =
                    s.parties.iter().map(|x| x.agent.clone()).collect();
                fx.push(CallEffect::Pbx(PbxCommand::Bridge {
                    bridge_id: BridgeId::main(&id),
                    leg_id: p.leg,
                }));
                fx.push(CallEffect::ConfirmAccept {
                    agent: p.to.agent.clone(),
                    token,
                });
                fx.push(CallEffect::Notice(CallNotice::ParticipantJoined {
                    agent: p.to.agent.clone(),
                    participants,
                }));
                self.push_update(
                    &mut fx,
                    "conference",
                    json!({ "joined": p.to.agent }),
                    now_ms,
                );
            }
        }
        Ok(fx)
    }

    /// The pending leg failed before answer: the call is back with `from`.
    fn pending_failed(
        &mut self,
        token: OfferToken,
        outcome: OfferOutcome,
        cause: HangupCause,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        let id = self.id.clone();
        let CallPhase::Connected(s) = &mut self.phase else {
            return Err(CallError::StaleOffer { call: id, token });
        };
        if !s
            .pending
            .as_ref()
            .is_some_and(|p| p.token == token && !p.answered)
        {
            return Err(CallError::StaleOffer { call: id, token });
        }
        let p = s.pending.take().expect("checked");
        let was_consult = p.kind == PendingKind::Consult;
        if was_consult {
            s.held = false;
        }
        let mut fx = vec![
            CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: p.leg,
                cause,
            }),
            CallEffect::Agent(
                p.to.agent.clone(),
                AgentNotice::OfferEnded { token, outcome },
            ),
        ];
        if was_consult {
            self.moh_off(&mut fx);
        }
        let reason = match outcome {
            OfferOutcome::Missed => "rona",
            OfferOutcome::Rejected => "rejected",
            OfferOutcome::Withdrawn => "cancelled",
        };
        fx.push(CallEffect::Notice(CallNotice::LegFailed {
            agent: p.from.clone(),
            target: p.to.agent.clone(),
            reason: reason.into(),
        }));
        let event = if was_consult {
            "consult_failed"
        } else {
            "conference_add_failed"
        };
        self.push_update(
            &mut fx,
            event,
            json!({ "agent": p.from, "target": p.to.agent, "reason": reason, "customer_ani": self.ani }),
            now_ms,
        );
        Ok(fx)
    }

    /// The consulted agent hung up after answering: back to the consulter.
    fn pending_left(&mut self, agent: &AgentId, now_ms: u64) -> Fx {
        self.end_consult(agent, "consult_ended", false, now_ms)
    }

    fn end_consult(&mut self, _who: &AgentId, reason: &str, hang_up: bool, now_ms: u64) -> Fx {
        let id = self.id.clone();
        let ani = self.ani.clone();
        let CallPhase::Connected(s) = &mut self.phase else {
            return Vec::new();
        };
        let Some(p) = s.pending.take() else {
            return Vec::new();
        };
        s.held = false;
        let mut fx = Vec::new();
        if hang_up {
            fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                leg_id: p.leg.clone(),
                cause: HangupCause::Normal,
            }));
        }
        if p.answered {
            fx.push(CallEffect::Agent(
                p.to.agent.clone(),
                AgentNotice::LeftCall { wrap_up_ms: None },
            ));
            if let Some(from_leg) = s
                .parties
                .iter()
                .find(|x| x.agent == p.from)
                .map(|x| x.leg.clone())
            {
                fx.push(CallEffect::Pbx(PbxCommand::Unbridge {
                    bridge_id: BridgeId::consult(&id),
                    leg_id: from_leg.clone(),
                }));
                fx.push(CallEffect::Pbx(PbxCommand::Bridge {
                    bridge_id: BridgeId::main(&id),
                    leg_id: from_leg,
                }));
            }
            fx.push(CallEffect::Pbx(PbxCommand::DestroyBridge {
                bridge_id: BridgeId::consult(&id),
            }));
        } else {
            fx.push(CallEffect::Agent(
                p.to.agent.clone(),
                AgentNotice::OfferEnded {
                    token: p.token,
                    outcome: OfferOutcome::Withdrawn,
                },
            ));
        }
        self.moh_off(&mut fx);
        let event = if p.answered {
            "leg_ended"
        } else {
            "consult_cancelled"
        };
        self.push_update(
            &mut fx,
            event,
            json!({ "reason": reason, "agent": p.to.agent, "customer_ani": ani }),
            now_ms,
        );
        fx
    }

    fn answered_consult(&mut self, from: &AgentId) -> Result<PendingLeg, CallError> {
        let id = self.id.clone();
        let s = self.session(from, "finish a consult")?;
        match &s.pending {
            Some(p) if p.kind == PendingKind::Consult && &p.from == from && p.answered => {
                Ok(p.clone())
            }
            _ => Err(CallError::NoConsult {
                call: id,
                agent: from.clone(),
            }),
        }
    }

    /// Cancel the consult: the consulted leg drops, the caller is back.
    pub fn cancel_consult(&mut self, from: &AgentId, now_ms: u64) -> Result<Fx, CallError> {
        let id = self.id.clone();
        let s = self.session(from, "cancel a consult")?;
        if s.pending.as_ref().is_none_or(|p| &p.from != from) {
            return Err(CallError::NoConsult {
                call: id,
                agent: from.clone(),
            });
        }
        Ok(self.end_consult(from, "consult_ended", true, now_ms))
    }

    /// Complete the consult as a transfer: the consulted agent takes the
    /// caller; the consulter leaves.
    pub fn complete_consult(&mut self, from: &AgentId, now_ms: u64) -> Result<Fx, CallError> {
        self.answered_consult(from)?;
        self.party_leaves(from, true, now_ms)
    }

    /// Turn the consult into a 3-way conference.
    pub fn conference_consult(&mut self, from: &AgentId, now_ms: u64) -> Result<Fx, CallError> {
        let p = self.answered_consult(from)?;
        let id = self.id.clone();
        let caller = self.caller_leg.clone();
        let CallPhase::Connected(s) = &mut self.phase else {
            unreachable!("answered_consult checked")
        };
        s.pending = None;
        s.held = false;
        s.parties.push(Party {
            agent: p.to.agent.clone(),
            leg: p.leg.clone(),
            extension: p.to.extension.clone(),
            muted: false,
            wrap_up_ms: None,
            joined_ms: now_ms,
        });
        let legs: Vec<LegId> = std::iter::once(caller)
            .chain(s.parties.iter().map(|x| x.leg.clone()))
            .collect();
        let participants: Vec<AgentId> = s.parties.iter().map(|x| x.agent.clone()).collect();
        let mut fx = vec![
            CallEffect::Pbx(PbxCommand::Conference {
                bridge_id: BridgeId::main(&id),
                leg_ids: legs,
            }),
            CallEffect::Pbx(PbxCommand::DestroyBridge {
                bridge_id: BridgeId::consult(&id),
            }),
        ];
        self.moh_off(&mut fx);
        fx.push(CallEffect::Notice(CallNotice::ParticipantJoined {
            agent: p.to.agent.clone(),
            participants,
        }));
        self.push_update(
            &mut fx,
            "conference",
            json!({ "joined": p.to.agent, "reason": "consult" }),
            now_ms,
        );
        Ok(fx)
    }

    /// A wrap-up (disposition) code from an agent who was on the call.
    pub fn wrap_up_code(
        &mut self,
        agent: &AgentId,
        code: &str,
        now_ms: u64,
    ) -> Result<Fx, CallError> {
        if !self.interaction_created {
            return Err(CallError::NoInteraction(self.id.clone()));
        }
        let mut fx = Vec::new();
        self.push_update(
            &mut fx,
            "wrap_up_code",
            json!({ "agent": agent, "code": code }),
            now_ms,
        );
        Ok(fx)
    }

    /// A PBX command failed in a way that breaks the call: end it (logged).
    pub fn pbx_failed(&mut self, error: String, now_ms: u64) -> Fx {
        let mut fx = Vec::new();
        match std::mem::replace(&mut self.phase, CallPhase::Routing) {
            CallPhase::Queued { queue, .. } => fx.push(CallEffect::Dequeue(queue)),
            CallPhase::Offering { offers, .. } => {
                for o in offers {
                    fx.push(CallEffect::Pbx(PbxCommand::Hangup {
                        leg_id: o.leg,
                        cause: HangupCause::Normal,
                    }));
                    fx.push(CallEffect::Agent(
                        o.agent,
                        AgentNotice::OfferEnded {
                            token: o.token,
                            outcome: OfferOutcome::Withdrawn,
                        },
                    ));
                }
            }
            CallPhase::Dialing { party } => {
                fx.push(CallEffect::Agent(
                    party.agent,
                    AgentNotice::LeftCall { wrap_up_ms: None },
                ));
            }
            CallPhase::Connected(s) => self.release_session(s, &mut fx),
            ended @ CallPhase::Ended(_) => {
                self.phase = ended;
                return fx;
            }
            CallPhase::Routing => {}
        }
        fx.push(CallEffect::Pbx(PbxCommand::Hangup {
            leg_id: self.caller_leg.clone(),
            cause: HangupCause::Normal,
        }));
        self.end(TerminalReason::Failed { error }, &mut fx, now_ms);
        fx
    }
}

#[cfg(test)]
mod tests;
