//! Supervisors on a connected call: silent monitor and whisper (a snoop leg on
//! one agent's leg) and barge-in (the supervisor's leg joins the call's main
//! bridge). Pure, like the rest of [`super::Call`]: each step returns the PBX
//! commands the glue sends. A supervision never outlives what it watches: the
//! call's end, or the watched agent leaving, hangs its leg up.

use super::effects::hang_up;
use super::{Call, CallEffect, CallError, CallPhase};
use crate::ids::{AgentId, BridgeId, LegId, OfferToken};
use crate::ports::PbxCommand;
use serde::{Deserialize, Serialize};

/// How a supervisor joins a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuperviseMode {
    /// Listen to both sides; nobody hears the supervisor.
    Monitor,
    /// Listen, and speak to the agent only.
    Whisper,
    /// Join the conversation: caller and agents hear the supervisor.
    Barge,
}

impl SuperviseMode {
    /// The stable name (API paths, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monitor => "monitor",
            Self::Whisper => "whisper",
            Self::Barge => "barge",
        }
    }

    /// Parses a name given by [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "monitor" => Some(Self::Monitor),
            "whisper" => Some(Self::Whisper),
            "barge" => Some(Self::Barge),
            _ => None,
        }
    }
}

/// One supervisor on the call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervision {
    /// The supervisor's user id.
    pub supervisor: String,
    /// How it joined.
    pub mode: SuperviseMode,
    /// The supervisor's leg (edgecc-minted, `{call}~{token}`).
    pub leg: LegId,
    /// The agent whose leg is snooped (monitor, whisper) or who was on the
    /// call when the supervisor barged in.
    pub agent: AgentId,
    /// The snooped leg; `None` for a barge (the bridge, not one leg).
    pub snooped: Option<LegId>,
    /// Since when.
    pub since_ms: u64,
}

impl Call {
    /// `supervisor` starts `mode` on `agent`'s leg from its device `endpoint`.
    /// A supervisor already on the call switches mode: its old leg is hung up
    /// first, so one supervisor never holds two legs on a call.
    pub fn supervise(
        &mut self,
        supervisor: &str,
        endpoint: &str,
        agent: &AgentId,
        mode: SuperviseMode,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<Vec<CallEffect>, CallError> {
        let target = match &self.phase {
            CallPhase::Connected(s) => s
                .parties
                .iter()
                .find(|p| &p.agent == agent)
                .map(|p| p.leg.clone())
                .ok_or_else(|| CallError::NotAParty {
                    agent: agent.clone(),
                    call: self.id.clone(),
                })?,
            other => {
                return Err(CallError::WrongPhase {
                    call: self.id.clone(),
                    action: "be supervised",
                    phase: other.name(),
                })
            }
        };
        let mut fx = self.end_supervision(supervisor).unwrap_or_default();
        let leg = LegId::for_offer(&self.id, token);
        let (cmd, snooped) = match mode {
            SuperviseMode::Monitor | SuperviseMode::Whisper => (
                PbxCommand::Snoop {
                    snoop_leg_id: leg.clone(),
                    leg_id: target.clone(),
                    whisper: mode == SuperviseMode::Whisper,
                    endpoint: endpoint.to_owned(),
                },
                Some(target),
            ),
            SuperviseMode::Barge => (
                PbxCommand::Barge {
                    leg_id: leg.clone(),
                    bridge_id: BridgeId::main(&self.id),
                    endpoint: endpoint.to_owned(),
                },
                None,
            ),
        };
        fx.push(CallEffect::Pbx(cmd));
        self.supervisions.push(Supervision {
            supervisor: supervisor.to_owned(),
            mode,
            leg,
            agent: agent.clone(),
            snooped,
            since_ms: now_ms,
        });
        Ok(fx)
    }

    /// `supervisor` leaves the call: its leg is hung up.
    pub fn end_supervision(&mut self, supervisor: &str) -> Result<Vec<CallEffect>, CallError> {
        let i = self
            .supervisions
            .iter()
            .position(|s| s.supervisor == supervisor)
            .ok_or_else(|| CallError::NotSupervising {
                call: self.id.clone(),
                supervisor: supervisor.to_owned(),
            })?;
        let s = self.supervisions.remove(i);
        Ok(vec![hang_up(s.leg)])
    }

    /// A supervisor's leg hung up at the PBX (the supervisor put the phone
    /// down, or the PBX ended the snoop). True if `leg` was one.
    pub(super) fn supervisor_leg_gone(&mut self, leg: &LegId) -> bool {
        let before = self.supervisions.len();
        self.supervisions.retain(|s| &s.leg != leg);
        self.supervisions.len() != before
    }

    /// Hangs up the supervisions that watch `leg` (its agent left the call).
    pub(super) fn release_supervisions_of(&mut self, leg: &LegId, fx: &mut Vec<CallEffect>) {
        let (gone, kept) = std::mem::take(&mut self.supervisions)
            .into_iter()
            .partition(|s| s.snooped.as_ref() == Some(leg));
        self.supervisions = kept;
        fx.extend(gone.into_iter().map(|s: Supervision| hang_up(s.leg)));
    }

    /// Hangs up every supervision (the call is over).
    pub(super) fn release_all_supervisions(&mut self, fx: &mut Vec<CallEffect>) {
        fx.extend(
            std::mem::take(&mut self.supervisions)
                .into_iter()
                .map(|s| hang_up(s.leg)),
        );
    }
}
