//! What a call writes to the CRM: the one interaction create, the one phone
//! log, callback work items and the ordered updates, each built from the
//! typed bodies of [`crate::crm`]. Invariants 4 and 5 live here: a create is
//! emitted at most once (flags on [`Call`]), and updates exist only after the
//! create, numbered 1, 2, 3... by `update_seq`.

use super::{Call, CallEffect, Fx};
use crate::crm::{
    self, CallbackReason, Channel, CreateReason, CrmBody, CrmRecord, InboundPhoneLog,
    InteractionCreate, InteractionUpdate, OutboundPhoneLog, PhoneLogCreate, UpdateEvent,
    WorkItemCreate, WorkItemType,
};
use crate::ids::{AgentId, QueueId};

impl Call {
    fn queue_id(&self) -> Option<QueueId> {
        self.rules.as_ref().map(|r| r.queue.clone())
    }

    fn record(&self, body: CrmBody, now_ms: u64) -> CrmRecord {
        CrmRecord::new(&self.site, &self.id, self.update_seq, body, now_ms)
    }

    /// The interaction's create, unless it was emitted already.
    pub(super) fn interaction_create(
        &mut self,
        reason: CreateReason,
        agent: Option<&AgentId>,
        now_ms: u64,
    ) -> Option<CrmRecord> {
        if self.interaction_created {
            return None;
        }
        self.interaction_created = true;
        let body = InteractionCreate {
            call_id: self.id.clone(),
            direction: self.direction,
            channel: Channel::Phone,
            ani: self.ani.clone(),
            dnis: self.dnis.clone(),
            attached: crm::attached(&self.attached),
            queue: self.queue_id(),
            agent: agent.cloned(),
            reason,
            arrived_ms: self.arrived_ms,
        };
        Some(self.record(CrmBody::InteractionCreate(body), now_ms))
    }

    /// The phone log of an inbound call `agent` accepted, unless the call
    /// has one already.
    pub(super) fn inbound_phone_log(&mut self, agent: &AgentId, now_ms: u64) -> Option<CrmRecord> {
        if self.phone_log_created {
            return None;
        }
        self.phone_log_created = true;
        let body = PhoneLogCreate::Inbound(InboundPhoneLog {
            call_id: self.id.clone(),
            direction: self.direction,
            ani: self.ani.clone(),
            dnis: self.dnis.clone(),
            agent: agent.clone(),
            queue: self.queue_id(),
            attached: crm::attached(&self.attached),
            arrived_ms: self.arrived_ms,
            answered_ms: now_ms,
        });
        Some(self.record(CrmBody::PhoneLogCreate(body), now_ms))
    }

    /// The phone log of an outbound call the customer answered (an outbound
    /// call is answered once).
    pub(super) fn outbound_phone_log(&mut self, agent: &AgentId, now_ms: u64) -> CrmRecord {
        debug_assert!(!self.phone_log_created, "call {} logged twice", self.id);
        self.phone_log_created = true;
        let body = PhoneLogCreate::Outbound(OutboundPhoneLog {
            call_id: self.id.clone(),
            direction: self.direction,
            number: self.ani.clone(),
            agent: agent.clone(),
            answered_ms: now_ms,
        });
        self.record(CrmBody::PhoneLogCreate(body), now_ms)
    }

    /// The next update of the interaction; `None` before its create (a call
    /// nobody answered has no interaction to update).
    pub(super) fn update(&mut self, event: UpdateEvent, now_ms: u64) -> Option<CrmRecord> {
        if !self.interaction_created {
            return None;
        }
        self.update_seq += 1;
        let body = InteractionUpdate {
            event,
            seq: self.update_seq,
        };
        Some(self.record(CrmBody::InteractionUpdate(body), now_ms))
    }

    /// A callback work item for a call nobody took.
    pub(super) fn work_item(&self, reason: CallbackReason, now_ms: u64) -> CrmRecord {
        let body = WorkItemCreate {
            call_id: self.id.clone(),
            item_type: WorkItemType::Callback,
            reason,
            callback_number: self.ani.clone(),
            dnis: self.dnis.clone(),
            attached: crm::attached(&self.attached),
            queue: self.queue_id(),
            waited_ms: now_ms.saturating_sub(self.arrived_ms),
        };
        self.record(CrmBody::WorkItemCreate(body), now_ms)
    }

    /// Appends the next update, as its own records effect, when the
    /// interaction exists.
    pub(super) fn push_update(&mut self, fx: &mut Fx, event: UpdateEvent, now_ms: u64) {
        if let Some(r) = self.update(event, now_ms) {
            fx.push(CallEffect::Records(vec![r]));
        }
    }
}
