//! The CRM contract in one place: the record kinds with their wire names, the
//! record envelope ([`CrmRecord`]), and the typed body of each kind. A call
//! builds its records from these types only ([`crate::call`]'s `crm` module);
//! each serializes to the JSON the CRM adapters map (webhook posts it as is,
//! ServiceNow maps its fields). `tests/crm_contract.rs` pins the exact JSON.
//!
//! | kind | body | when |
//! | --- | --- | --- |
//! | `interaction.create` | [`InteractionCreate`] | accept, queue timeout, abandon, missed direct call, outbound answer, caller lost by the PBX |
//! | `phone_log.create` | [`PhoneLogCreate`] | first accept (inbound) or customer answer (outbound) |
//! | `work_item.create` | [`WorkItemCreate`] | queue timeout (not one sent to an external number), abandon, missed direct call, caller lost by the PBX |
//! | `interaction.update` | [`InteractionUpdate`]: an [`UpdateEvent`] and its `seq` | everything after the create |
//!
//! Wire rules: an absent queue or agent is `null` (the key is present); the
//! one optional key that is omitted when absent is the `reason` of a
//! `transfer` and of a `conference` update.

use crate::call::{Direction, TerminalReason};
use crate::ids::{AgentId, CallId, QueueId};
use crate::ports::AttachedVar;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The kind of a CRM record, with the stable wire names the CRM sync uses:
/// one definition shared with the outbox (the `edgecc-record-kind` crate,
/// beside storage), so the daemon stores it as it is.
pub use edgecc_record_kind::RecordKind;

/// One record for the CRM, appended to the outbox and replayed until the CRM
/// has it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrmRecord {
    /// Stable and unique per record (`{site}:{call_id}:{kind}[:{n}]`), so a
    /// replay is idempotent at the CRM (Idempotency-Key / coalesce field).
    pub correlation_id: String,
    /// The interaction this record belongs to (the call id); the sync worker
    /// keeps records of one interaction in order.
    pub interaction_key: String,
    /// What the record does at the CRM.
    pub kind: RecordKind,
    /// The payload, already in the CRM's vocabulary: a [`CrmBody`] as JSON.
    pub body: serde_json::Value,
    /// Wall-clock time of the fact, from the injected clock.
    pub at_ms: u64,
}

impl CrmRecord {
    /// The record of `body` on `call` at `site`; `update_n` is the ordinal of
    /// the update within the interaction (used for updates only).
    pub fn new(site: &str, call: &CallId, update_n: u32, body: CrmBody, at_ms: u64) -> Self {
        let kind = body.kind();
        CrmRecord {
            correlation_id: Self::correlation_id(site, call, kind, update_n),
            interaction_key: call.0.clone(),
            kind,
            body: body.to_json(),
            at_ms,
        }
    }

    /// Builds the correlation id for `kind` on `call` (`update_n` only for
    /// updates, the ordinal of the update within the interaction).
    pub fn correlation_id(site: &str, call: &CallId, kind: RecordKind, update_n: u32) -> String {
        match kind {
            RecordKind::InteractionUpdate => {
                format!("{site}:{call}:{}:{update_n}", kind.as_str())
            }
            _ => format!("{site}:{call}:{}", kind.as_str()),
        }
    }
}

/// The typed body of a record; its variant decides the record's kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrmBody {
    /// `interaction.create`.
    InteractionCreate(InteractionCreate),
    /// `interaction.update`.
    InteractionUpdate(InteractionUpdate),
    /// `phone_log.create`.
    PhoneLogCreate(PhoneLogCreate),
    /// `work_item.create`.
    WorkItemCreate(WorkItemCreate),
}

impl CrmBody {
    /// The record kind this body belongs to.
    pub fn kind(&self) -> RecordKind {
        match self {
            Self::InteractionCreate(_) => RecordKind::InteractionCreate,
            Self::InteractionUpdate(_) => RecordKind::InteractionUpdate,
            Self::PhoneLogCreate(_) => RecordKind::PhoneLogCreate,
            Self::WorkItemCreate(_) => RecordKind::WorkItemCreate,
        }
    }

    /// The body as JSON. These types hold only strings, numbers and
    /// string-keyed maps, so serializing cannot fail; `null` stands in if it
    /// ever did (and a debug build stops there).
    pub fn to_json(&self) -> serde_json::Value {
        let json = match self {
            Self::InteractionCreate(b) => serde_json::to_value(b),
            Self::InteractionUpdate(b) => serde_json::to_value(b),
            Self::PhoneLogCreate(b) => serde_json::to_value(b),
            Self::WorkItemCreate(b) => serde_json::to_value(b),
        };
        debug_assert!(json.is_ok(), "CRM bodies always serialize: {json:?}");
        json.unwrap_or(serde_json::Value::Null)
    }
}

/// The IVR's attached data as the CRM sees it: one JSON object, key to value
/// (a later duplicate key wins).
pub type Attached = BTreeMap<String, String>;

/// The CRM's view of a call's attached variables.
pub fn attached(vars: &[AttachedVar]) -> Attached {
    vars.iter()
        .map(|v| (v.key.clone(), v.value.clone()))
        .collect()
}

/// The channel of an interaction (always a phone call today).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A phone call.
    Phone,
}

/// Why the interaction was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateReason {
    /// An agent accepted the call.
    Accepted,
    /// The customer answered an agent's outbound call.
    Outbound,
    /// The caller hung up before an agent answered.
    Abandoned,
    /// The call waited too long in its queue.
    QueueTimeout,
    /// The agent dialed directly could not take the call.
    MissedExtension,
    /// The PBX lost the call (restarted or died) before an agent answered.
    PbxLost,
    /// The queue was full (`limits.waiting_max`) when the call came.
    QueueFull,
    /// The queue had no member its limits require (`limits.join_requires`
    /// when the call came, `limits.stay_requires` while it waited).
    QueueUnstaffed,
}

impl From<CallbackReason> for CreateReason {
    fn from(r: CallbackReason) -> Self {
        match r {
            CallbackReason::Abandoned => Self::Abandoned,
            CallbackReason::QueueTimeout => Self::QueueTimeout,
            CallbackReason::MissedExtension => Self::MissedExtension,
            CallbackReason::PbxLost => Self::PbxLost,
            CallbackReason::QueueFull => Self::QueueFull,
            CallbackReason::QueueUnstaffed => Self::QueueUnstaffed,
        }
    }
}

/// `interaction.create`: the CRM's case for this call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractionCreate {
    /// The call (and interaction) id.
    pub call_id: CallId,
    /// In or out.
    pub direction: Direction,
    /// Always `phone`.
    pub channel: Channel,
    /// Caller number (customer number for outbound).
    pub ani: String,
    /// Dialed number.
    pub dnis: String,
    /// IVR variables.
    pub attached: Attached,
    /// The call's queue; `null` when it never joined one.
    pub queue: Option<QueueId>,
    /// The agent who took it; `null` when nobody did.
    pub agent: Option<AgentId>,
    /// Why the interaction exists.
    pub reason: CreateReason,
    /// When the call arrived (wall ms).
    pub arrived_ms: u64,
}

/// `phone_log.create`: the phone log of a connected call. Untagged: the two
/// shapes differ by their keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PhoneLogCreate {
    /// An inbound call an agent accepted.
    Inbound(InboundPhoneLog),
    /// An outbound call the customer answered.
    Outbound(OutboundPhoneLog),
}

/// The phone log of an accepted inbound call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundPhoneLog {
    /// The call id.
    pub call_id: CallId,
    /// In or out (inbound here, unless an outbound call was re-offered).
    pub direction: Direction,
    /// Caller number.
    pub ani: String,
    /// Dialed number.
    pub dnis: String,
    /// The agent who accepted.
    pub agent: AgentId,
    /// The call's queue; `null` for a direct call.
    pub queue: Option<QueueId>,
    /// IVR variables.
    pub attached: Attached,
    /// When the call arrived (wall ms).
    pub arrived_ms: u64,
    /// When the agent answered (wall ms).
    pub answered_ms: u64,
}

/// The phone log of an outbound call the customer answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundPhoneLog {
    /// The call id.
    pub call_id: CallId,
    /// Outbound.
    pub direction: Direction,
    /// The number dialed.
    pub number: String,
    /// The agent who dialed.
    pub agent: AgentId,
    /// When the customer answered (wall ms).
    pub answered_ms: u64,
}

/// Why a callback work item was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackReason {
    /// The caller hung up before an agent answered.
    Abandoned,
    /// The call waited too long in its queue.
    QueueTimeout,
    /// The agent dialed directly could not take the call.
    MissedExtension,
    /// The PBX lost the caller (restarted or died) before an agent
    /// answered: the caller did not give up, so the back office calls back.
    PbxLost,
    /// The queue was full when the call came (`limits.waiting_max`).
    QueueFull,
    /// The queue had no member its limits require.
    QueueUnstaffed,
}

/// What kind of work item (always a callback today).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkItemType {
    /// Call the customer back.
    Callback,
}

/// `work_item.create`: a callback task for a call nobody took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItemCreate {
    /// The call id.
    pub call_id: CallId,
    /// Always `callback` (wire key `type`).
    #[serde(rename = "type")]
    pub item_type: WorkItemType,
    /// Why.
    pub reason: CallbackReason,
    /// The number to call back (the caller's ANI).
    pub callback_number: String,
    /// Dialed number.
    pub dnis: String,
    /// IVR variables.
    pub attached: Attached,
    /// The call's queue; `null` when it never joined one.
    pub queue: Option<QueueId>,
    /// How long the caller waited (ms).
    pub waited_ms: u64,
}

/// `interaction.update`: one event and its ordinal within the interaction
/// (`seq` starts at 1 and increases by one per update).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractionUpdate {
    /// What happened; its name is the wire key `event`.
    #[serde(flatten)]
    pub event: UpdateEvent,
    /// The ordinal of this update (also the last part of its correlation id).
    pub seq: u32,
}

/// Who a blind or consult transfer went to (wire key `to_agent` or
/// `to_queue`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    /// An agent.
    ToAgent(AgentId),
    /// A queue.
    ToQueue(QueueId),
}

/// Marks a transfer or conference that came out of a consult.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViaConsult {
    /// It came out of a consult.
    Consult,
}

/// Why a consult leg ended after it was answered or cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsultEnd {
    /// The consult ended (cancelled by the consulter, or the consulted
    /// agent hung up).
    ConsultEnded,
}

/// Why a consult or conference leg failed before it was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegFailure {
    /// No answer before the offer timeout.
    #[serde(rename = "rona")]
    Rona,
    /// The invited agent rejected it.
    #[serde(rename = "rejected")]
    Rejected,
    /// It was withdrawn (its originate never left: the PBX link was down).
    #[serde(rename = "cancelled")]
    Cancelled,
    /// The consulting agent left the call while it rang.
    #[serde(rename = "consulting agent left")]
    ConsultingAgentLeft,
}

impl LegFailure {
    /// The wire name (also told to desktops).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rona => "rona",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
            Self::ConsultingAgentLeft => "consulting agent left",
        }
    }
}

/// Everything that can happen on an interaction after its create; the wire
/// key `event` carries the variant's snake_case name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum UpdateEvent {
    /// The call ended: an answered call, or one a queue sent to an
    /// external number (terminal `overflowed` with the number, `talk_ms` 0).
    Ended {
        /// The terminal reason.
        terminal: TerminalReason,
        /// Arrival to end (ms).
        duration_ms: u64,
        /// First answer to end (ms); 0 when never answered.
        talk_ms: u64,
    },
    /// The queue's max wait sent the call to another queue.
    Overflow {
        /// The queue it moved to.
        to_queue: QueueId,
    },
    /// Another agent took the call after a transfer.
    AgentConnected {
        /// The agent.
        agent: AgentId,
    },
    /// The caller was put on hold.
    Hold {
        /// Who held.
        agent: AgentId,
    },
    /// The caller was taken off hold.
    Resume {
        /// Who resumed.
        agent: AgentId,
    },
    /// An agent muted its microphone.
    Mute {
        /// The agent.
        agent: AgentId,
    },
    /// An agent unmuted.
    Unmute {
        /// The agent.
        agent: AgentId,
    },
    /// The call was handed to an agent or a queue.
    Transfer {
        /// The agent who transferred.
        from: AgentId,
        /// Where to.
        #[serde(flatten)]
        to: TransferTarget,
        /// `consult` when a consult was completed; omitted for a blind one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<ViaConsult>,
    },
    /// A consult leg is ringing.
    ConsultInitiated {
        /// The consulting agent.
        agent: AgentId,
        /// The consulted agent.
        target: AgentId,
    },
    /// An agent is being rung into the conference.
    ConferenceInvite {
        /// The inviting agent.
        agent: AgentId,
        /// The invited agent.
        target: AgentId,
    },
    /// The consulted agent answered.
    LegStarted {
        /// Always `consult`.
        reason: ViaConsult,
        /// The consulted agent.
        agent: AgentId,
        /// The caller's number.
        customer_ani: String,
    },
    /// An answered consult ended; the caller is back with the consulter.
    LegEnded {
        /// Why.
        reason: ConsultEnd,
        /// The consulted agent.
        agent: AgentId,
        /// The caller's number.
        customer_ani: String,
    },
    /// A consult was cancelled while it rang.
    ConsultCancelled {
        /// Why.
        reason: ConsultEnd,
        /// The consulted agent.
        agent: AgentId,
        /// The caller's number.
        customer_ani: String,
    },
    /// A consult leg failed before it was answered.
    ConsultFailed {
        /// The consulting agent.
        agent: AgentId,
        /// The consulted agent.
        target: AgentId,
        /// Why.
        reason: LegFailure,
        /// The caller's number.
        customer_ani: String,
    },
    /// A conference invite failed before it was answered.
    ConferenceAddFailed {
        /// The inviting agent.
        agent: AgentId,
        /// The invited agent.
        target: AgentId,
        /// Why.
        reason: LegFailure,
        /// The caller's number.
        customer_ani: String,
    },
    /// An agent joined the conference.
    Conference {
        /// Who joined.
        joined: AgentId,
        /// `consult` when a consult became the conference; omitted for an
        /// invite.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<ViaConsult>,
    },
    /// An agent left a call that goes on.
    ParticipantLeft {
        /// Who left.
        agent: AgentId,
    },
    /// An agent recorded a wrap-up (disposition) code.
    WrapUpCode {
        /// The agent.
        agent: AgentId,
        /// The code.
        code: String,
    },
}

impl UpdateEvent {
    /// The wire name (`event` key), for logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ended { .. } => "ended",
            Self::Overflow { .. } => "overflow",
            Self::AgentConnected { .. } => "agent_connected",
            Self::Hold { .. } => "hold",
            Self::Resume { .. } => "resume",
            Self::Mute { .. } => "mute",
            Self::Unmute { .. } => "unmute",
            Self::Transfer { .. } => "transfer",
            Self::ConsultInitiated { .. } => "consult_initiated",
            Self::ConferenceInvite { .. } => "conference_invite",
            Self::LegStarted { .. } => "leg_started",
            Self::LegEnded { .. } => "leg_ended",
            Self::ConsultCancelled { .. } => "consult_cancelled",
            Self::ConsultFailed { .. } => "consult_failed",
            Self::ConferenceAddFailed { .. } => "conference_add_failed",
            Self::Conference { .. } => "conference",
            Self::ParticipantLeft { .. } => "participant_left",
            Self::WrapUpCode { .. } => "wrap_up_code",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `event` key is the name `name()` gives, and an update reads back.
    #[test]
    fn update_events_carry_their_name_and_read_back() {
        let a = AgentId::new("a");
        let events = [
            UpdateEvent::Transfer {
                from: a.clone(),
                to: TransferTarget::ToQueue(QueueId::new("q")),
                reason: None,
            },
            UpdateEvent::Transfer {
                from: a.clone(),
                to: TransferTarget::ToAgent(AgentId::new("b")),
                reason: Some(ViaConsult::Consult),
            },
            UpdateEvent::ConsultFailed {
                agent: a.clone(),
                target: AgentId::new("b"),
                reason: LegFailure::ConsultingAgentLeft,
                customer_ani: "+1".into(),
            },
            UpdateEvent::Ended {
                terminal: TerminalReason::Overflowed { number: "9".into() },
                duration_ms: 5,
                talk_ms: 3,
            },
        ];
        for event in events {
            let update = InteractionUpdate {
                event: event.clone(),
                seq: 4,
            };
            let json = serde_json::to_value(&update).unwrap();
            assert_eq!(json["event"], serde_json::json!(event.name()));
            assert_eq!(json["seq"], serde_json::json!(4));
            let back: InteractionUpdate = serde_json::from_value(json).unwrap();
            assert_eq!(back, update);
        }
    }
}
