//! The agent state machine, pure: an enum and its transitions, tested without
//! a runtime. The actor glue lives in [`actor`].
//!
//! ```text
//! LoggedOut -login-> NotReady(login) <-> Ready -reserve-> Reserved(call)
//! Reserved -connected-> Talking(call) -left-> WrapUp(call, until) -> Ready
//! Reserved -rejected/missed/withdrawn-> Ready | NotReady(rona | reject delay)
//! Reserved -refused by the device (busy, rejected) N times in a row->
//!          NotReady(device unreachable)
//! Reserved -missed N times within a window-> NotReady(cooling off)
//! ```
//!
//! Routed offers feed the agent's [`score`] and may start a [`backoff`]
//! (Ready, but skipped by the queues for a while).
//!
//! Pending Not Ready and pending logout are kept beside the state and applied
//! when the call (and its wrap-up) ends.

pub mod actor;
pub mod backoff;
pub mod presence;
pub mod score;
pub mod since;

use crate::ids::{AgentId, CallId, OfferToken, QueueId};
use serde::{Deserialize, Serialize};

/// Reasons the system sets by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemReason {
    /// Just logged in.
    Login,
    /// Redirected on no answer.
    Rona,
    /// A supervisor changed the state.
    Supervisor,
    /// edgecc restarted and rebuilt the agent.
    Restart,
    /// Rejected an offer; Ready again after the reject delay.
    RejectDelay,
    /// The agent's device refused (busy, rejected) too many offers in a
    /// row: it is treated as unreachable, like a no-answer.
    DeviceUnreachable,
    /// Missed too many offers within a window ([`backoff`]): Ready again
    /// when the agent says so or after the configured cooling-off.
    CoolingOff,
    /// The agent's desktop stayed away past the disconnect grace (closed,
    /// network gone): not the supervisor's doing, and the desktop says so.
    DesktopGone,
}

/// Why an agent is Not Ready.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotReadyReason {
    /// Set by the system.
    System(SystemReason),
    /// A configured reason code chosen by the agent.
    Code(String),
}

/// Why the agent holds an offer or a call; decides which states may accept it
/// and whether wrap-up follows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferPurpose {
    /// A queue call: only Ready agents; wrap-up follows.
    Queue(QueueId),
    /// A call to the agent's extension: Ready or Not Ready.
    Direct,
    /// A blind transfer from a colleague: only Ready.
    Transfer,
    /// A consult from a colleague: Ready or Not Ready.
    Consult,
    /// Added to a conference: Ready or Not Ready.
    Conference,
    /// The agent's own outbound call: only Not Ready.
    Outbound,
}

impl OfferPurpose {
    /// Whether an unanswered offer of this purpose counts against the agent
    /// (RONA, reject delay, score, back-off): routed offers and calls to the
    /// extension do; a consult or conference leg a colleague rings does not.
    pub fn penalised(&self) -> bool {
        !matches!(self, Self::Consult | Self::Conference | Self::Outbound)
    }

    /// Whether an agent in `state` may take an offer of this purpose.
    pub fn allowed_in(&self, state: &AgentState) -> bool {
        match self {
            Self::Queue(_) | Self::Transfer => matches!(state, AgentState::Ready { .. }),
            Self::Direct | Self::Consult | Self::Conference => {
                matches!(
                    state,
                    AgentState::Ready { .. } | AgentState::NotReady { .. }
                )
            }
            Self::Outbound => matches!(state, AgentState::NotReady { .. }),
        }
    }
}

/// How an offer ended without a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferOutcome {
    /// The agent rejected it (from the desktop).
    Rejected,
    /// The agent's device refused it: busy (cause 17) or rejected (cause
    /// 21). A reject, and [`AgentSettings::device_refusals_max`] of them in
    /// a row make the device count as unreachable.
    Refused,
    /// No answer before the offer timeout (RONA), or the device failed.
    Missed,
    /// The call went elsewhere (caller hung up, another agent answered).
    Withdrawn,
}

/// The agent's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AgentState {
    /// Not logged in.
    LoggedOut,
    /// Logged in, not taking queue calls.
    NotReady {
        /// Why.
        reason: NotReadyReason,
    },
    /// Taking queue calls.
    Ready {
        /// Idle since (wall ms), for longest-idle routing.
        since_ms: u64,
    },
    /// An offer is alerting (a lease on the agent).
    Reserved {
        /// The call offered.
        call: CallId,
        /// The lease's fencing token.
        token: OfferToken,
        /// Why the offer was made.
        purpose: OfferPurpose,
        /// When the lease expires (offer deadline plus grace).
        lease_until_ms: u64,
    },
    /// On a call.
    Talking {
        /// The call.
        call: CallId,
        /// How the agent got it.
        purpose: OfferPurpose,
        /// Since (wall ms), for talk time.
        since_ms: u64,
    },
    /// After-call work.
    WrapUp {
        /// The call just ended.
        call: CallId,
        /// When wrap-up ends by itself.
        until_ms: u64,
        /// The codes that apply and whether one is still owed.
        #[serde(default)]
        coding: WrapUpCoding,
    },
}

/// What a wrap-up asks of its wrap-up code: the call's queue with its
/// codes (the desktop's select; free text when it lists none), and whether
/// a code is still owed. A required code is owed until the call records
/// one: Finish and Ready are refused meanwhile and a logout waits for the
/// wrap-up's end; the wrap-up's timer still ends it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrapUpCoding {
    /// The call's queue (`None`: never queued, an outbound call).
    pub queue: Option<QueueId>,
    /// Its codes as configured when the wrap-up began; empty: free text.
    pub codes: Vec<crate::config::wrap_up::WrapUpCode>,
    /// The queue requires a code and none is recorded yet.
    pub owed: bool,
}

impl WrapUpCoding {
    /// A wrap-up after a call of `queue` as `config` lists its codes, a
    /// required one owed (no code recorded yet).
    pub fn for_queue(config: &crate::config::ContactCenterConfig, queue: Option<QueueId>) -> Self {
        let codes = queue.as_ref().and_then(|q| config.wrap_up_codes_of(q));
        Self {
            codes: codes.map(|c| c.codes.clone()).unwrap_or_default(),
            owed: codes.is_some_and(|c| c.required),
            queue,
        }
    }
}

impl AgentState {
    /// A short name for logs and views.
    pub fn name(&self) -> &'static str {
        match self {
            Self::LoggedOut => "logged_out",
            Self::NotReady { .. } => "not_ready",
            Self::Ready { .. } => "ready",
            Self::Reserved { .. } => "reserved",
            Self::Talking { .. } => "talking",
            Self::WrapUp { .. } => "wrap_up",
        }
    }

    /// The call the agent is busy with, if any.
    pub fn call(&self) -> Option<&CallId> {
        match self {
            Self::Reserved { call, .. }
            | Self::Talking { call, .. }
            | Self::WrapUp { call, .. } => Some(call),
            _ => None,
        }
    }

    /// When the state began, if the state itself records it (Ready, Talking).
    pub fn started_ms(&self) -> Option<u64> {
        match self {
            Self::Ready { since_ms } | Self::Talking { since_ms, .. } => Some(*since_ms),
            _ => None,
        }
    }

    /// What time in state is measured against: a new name, a new call or a
    /// new Not Ready reason (lunch after break is a new state on the
    /// desktop and the wallboard) restarts the clock.
    pub fn time_key(&self) -> (&'static str, Option<&CallId>, Option<&NotReadyReason>) {
        let reason = match self {
            Self::NotReady { reason } => Some(reason),
            _ => None,
        };
        (self.name(), self.call(), reason)
    }
}

/// Whether the agent has a desktop open, and since when (wall ms). The agent
/// actor keeps it from the desktop's WebSocket opening and closing; a desktop
/// gone past the grace takes the agent out of routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "desktop", rename_all = "snake_case")]
pub enum Presence {
    /// At least one desktop is connected (or, just after a restart, one
    /// was at the kill and is awaited within the grace).
    Connected {
        /// Since the first of them connected.
        since_ms: u64,
    },
    /// No desktop: never opened since start, or the last one closed.
    Disconnected {
        /// Since start, or since the last one closed.
        since_ms: u64,
    },
}

/// A state change requested while busy, applied when the call ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pending {
    /// Go Not Ready with this reason.
    NotReady(NotReadyReason),
    /// Log out.
    Logout,
}

/// Counters that feed routing and the supervisor view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStats {
    /// Calls connected (any purpose), for fewest-calls routing.
    pub calls_handled: u64,
    /// Total talk time, for least-talk-time routing.
    pub talk_ms_total: u64,
    /// Offers missed (RONA); a consult or conference leg does not count.
    pub rona_count: u64,
    /// Offers rejected (from the desktop or by the device); a consult or
    /// conference leg does not count.
    pub reject_count: u64,
    /// Offers the device refused (busy, rejected) since it last rang or
    /// took a call, or since the agent last said Ready.
    #[serde(default)]
    pub refusals_in_row: u32,
    /// The routing score (answer speed, unanswered routed offers).
    #[serde(default)]
    pub score: score::AgentScore,
    /// Back-off and cooling-off state.
    #[serde(default)]
    pub backoff: backoff::Backoff,
}

/// Errors of the agent state machine: wrong state, stale token. Never panics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AgentError {
    /// The agent is logged out.
    #[error("agent {0} is not logged in")]
    NotLoggedIn(AgentId),
    /// The agent is already logged in.
    #[error("agent {0} is already logged in")]
    AlreadyLoggedIn(AgentId),
    /// The request does not fit the agent's state.
    #[error("agent {agent} cannot {action} while {state}")]
    WrongState {
        /// The agent.
        agent: AgentId,
        /// What was asked.
        action: &'static str,
        /// Its state name.
        state: &'static str,
    },
    /// The offer is not (any more) the agent's current one.
    #[error("offer {token} of call {call} is not current for agent {agent}")]
    StaleOffer {
        /// The agent.
        agent: AgentId,
        /// The call named.
        call: CallId,
        /// The token named.
        token: OfferToken,
    },
    /// The reason code is not configured.
    #[error("unknown reason code {0:?}")]
    UnknownReasonCode(String),
    /// The agent is not available for this offer.
    #[error("agent {agent} is not available ({state})")]
    NotAvailable {
        /// The agent.
        agent: AgentId,
        /// Its state name.
        state: &'static str,
    },
    /// Finishing a wrap-up (or going Ready from it) before recording the
    /// code its queue requires.
    #[error(
        "choose a wrap-up code first: calls of queue {queue} need one before the wrap-up ends"
    )]
    WrapUpCodeRequired {
        /// The call's queue.
        queue: QueueId,
    },
}

/// Per-agent settings the state machine needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSettings {
    /// Agent-level wrap-up override (else the queue's).
    pub wrap_up_ms: Option<u64>,
    /// Delay after a reject before Ready again.
    pub reject_delay_ms: u64,
    /// Whether a RONA sets Not Ready.
    pub rona_sets_not_ready: bool,
    /// The reason used for RONA.
    pub rona_reason: NotReadyReason,
    /// Offers refused by the device in a row after which the agent goes Not
    /// Ready ([`SystemReason::DeviceUnreachable`]); 0 never.
    #[serde(default)]
    pub device_refusals_max: u32,
    /// Back-off delays and the cooling-off rule (`[routing.backoff]`).
    #[serde(default)]
    pub backoff: backoff::BackoffSettings,
}

/// An agent: state, pending change, counters. Serializable, so it can be
/// persisted and rebuilt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// Who.
    pub id: AgentId,
    /// The current state.
    pub state: AgentState,
    /// A Not Ready or logout asked for while busy.
    pub pending: Option<Pending>,
    /// Where to return after an offer or call taken from Not Ready (a direct
    /// call must not make a Not Ready agent Ready). `None` = Ready.
    pub resume_not_ready: Option<NotReadyReason>,
    /// Counters.
    pub stats: AgentStats,
    /// Bumped on every state change; timers carry it so a stale timer
    /// (wrap-up ended early, reject delay overridden) does nothing.
    pub epoch: u64,
    /// Settings from the configuration.
    pub settings: AgentSettings,
    /// When the agent last logged out (wall ms, as its actor timed it):
    /// persisted with the agent, so the time since logout survives a
    /// restart; `None` until the first logout.
    #[serde(default)]
    pub logged_out_ms: Option<u64>,
    /// When the current state began, as its actor timed it: persisted so
    /// time in state and the state's history interval run on across a
    /// restart (see [`since`]); `None` in older records.
    #[serde(default)]
    pub state_since: Option<since::StateSince>,
    /// The desktop's presence as the actor last saw it: persisted so a
    /// restart is not read as every desktop closing (see [`presence`]);
    /// `None` in older records.
    #[serde(default)]
    pub desktop: Option<presence::SavedPresence>,
}

impl Agent {
    /// A logged-out agent.
    pub fn new(id: AgentId, settings: AgentSettings) -> Self {
        Self {
            id,
            state: AgentState::LoggedOut,
            pending: None,
            resume_not_ready: None,
            stats: AgentStats::default(),
            epoch: 0,
            settings,
            logged_out_ms: None,
            state_since: None,
            desktop: None,
        }
    }

    fn set(&mut self, state: AgentState) {
        self.state = state;
        self.epoch += 1;
    }

    fn wrong(&self, action: &'static str) -> AgentError {
        AgentError::WrongState {
            agent: self.id.clone(),
            action,
            state: self.state.name(),
        }
    }

    /// Whether the agent can be offered queue calls right now.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, AgentState::Ready { .. })
    }

    /// Whether queues may offer the agent calls at `now_ms`: Ready and not
    /// backing off.
    pub fn routable(&self, now_ms: u64) -> bool {
        self.is_ready() && !self.stats.backoff.holds(now_ms)
    }

    /// Log in: Not Ready with the system login reason.
    pub fn login(&mut self) -> Result<(), AgentError> {
        if self.state != AgentState::LoggedOut {
            return Err(AgentError::AlreadyLoggedIn(self.id.clone()));
        }
        self.pending = None;
        self.resume_not_ready = None;
        self.set(AgentState::NotReady {
            reason: NotReadyReason::System(SystemReason::Login),
        });
        Ok(())
    }

    /// Ask for Ready. In wrap-up this ends wrap-up early; while reserved or
    /// talking it cancels a pending change.
    pub fn set_ready(&mut self, now_ms: u64) -> Result<(), AgentError> {
        match &self.state {
            AgentState::LoggedOut => Err(AgentError::NotLoggedIn(self.id.clone())),
            AgentState::NotReady { .. } | AgentState::WrapUp { .. } => {
                self.code_owed()?;
                self.pending = None;
                self.resume_not_ready = None;
                // The agent vouches for its device again, and is back.
                self.stats.refusals_in_row = 0;
                self.stats.backoff.agent_back();
                self.set(AgentState::Ready { since_ms: now_ms });
                Ok(())
            }
            AgentState::Ready { .. } => Ok(()),
            AgentState::Reserved { .. } | AgentState::Talking { .. } => {
                self.pending = None;
                self.resume_not_ready = None;
                Ok(())
            }
        }
    }

    /// Ask for Not Ready. Busy (reserved, talking, wrap-up): becomes pending.
    pub fn set_not_ready(&mut self, reason: NotReadyReason) -> Result<(), AgentError> {
        match &self.state {
            AgentState::LoggedOut => Err(AgentError::NotLoggedIn(self.id.clone())),
            AgentState::Ready { .. } | AgentState::NotReady { .. } => {
                self.set(AgentState::NotReady { reason });
                Ok(())
            }
            AgentState::Reserved { .. }
            | AgentState::Talking { .. }
            | AgentState::WrapUp { .. } => {
                if self.pending != Some(Pending::Logout) {
                    self.pending = Some(Pending::NotReady(reason));
                }
                Ok(())
            }
        }
    }

    /// The desktop stayed away past the grace: an agent that would still get
    /// calls goes Not Ready with the desktop-gone reason (pending while busy,
    /// so a call in progress continues). Logged out, already Not Ready, or a
    /// change already pending: nothing. True when something changed.
    pub fn desktop_gone(&mut self) -> bool {
        if matches!(
            self.state,
            AgentState::LoggedOut | AgentState::NotReady { .. }
        ) || self.pending.is_some()
        {
            return false;
        }
        self.set_not_ready(NotReadyReason::System(SystemReason::DesktopGone))
            .is_ok()
    }

    /// Log out. During an offer or a call it becomes pending.
    pub fn logout(&mut self) -> Result<(), AgentError> {
        match &self.state {
            AgentState::LoggedOut => Err(AgentError::NotLoggedIn(self.id.clone())),
            AgentState::Reserved { .. } | AgentState::Talking { .. } => {
                self.pending = Some(Pending::Logout);
                Ok(())
            }
            // The code is still owed: out once the wrap-up ends.
            AgentState::WrapUp { coding, .. } if coding.owed => {
                self.pending = Some(Pending::Logout);
                Ok(())
            }
            _ => {
                self.pending = None;
                self.resume_not_ready = None;
                self.set(AgentState::LoggedOut);
                Ok(())
            }
        }
    }

    /// Take a reservation (the agent arbitrates: the first asker wins).
    pub fn reserve(
        &mut self,
        call: CallId,
        token: OfferToken,
        purpose: OfferPurpose,
        lease_until_ms: u64,
    ) -> Result<(), AgentError> {
        if self.state == AgentState::LoggedOut || !purpose.allowed_in(&self.state) {
            return Err(AgentError::NotAvailable {
                agent: self.id.clone(),
                state: self.state.name(),
            });
        }
        self.resume_not_ready = match &self.state {
            AgentState::NotReady { reason } => Some(reason.clone()),
            _ => None,
        };
        self.set(AgentState::Reserved {
            call,
            token,
            purpose,
            lease_until_ms,
        });
        Ok(())
    }

    fn check_offer(&self, call: &CallId, token: OfferToken) -> Result<OfferPurpose, AgentError> {
        match &self.state {
            AgentState::Reserved {
                call: c,
                token: t,
                purpose,
                ..
            } if c == call && *t == token => Ok(purpose.clone()),
            _ => Err(AgentError::StaleOffer {
                agent: self.id.clone(),
                call: call.clone(),
                token,
            }),
        }
    }

    /// The offer just reserved starts alerting at `now_ms`: a routed one is
    /// timed for the answer-time average.
    pub fn offer_alerting(&mut self, now_ms: u64) {
        if let AgentState::Reserved { purpose, .. } = &self.state {
            if purpose.penalised() {
                self.stats.score.offered(now_ms);
            }
        }
    }

    /// Checks that `token` is the agent's current offer (before forwarding an
    /// accept or reject to the call).
    pub fn current_offer(&self, call: &CallId, token: OfferToken) -> Result<(), AgentError> {
        self.check_offer(call, token).map(|_| ())
    }

    /// The offer was accepted and the call connected.
    pub fn connected(
        &mut self,
        call: &CallId,
        token: OfferToken,
        now_ms: u64,
    ) -> Result<(), AgentError> {
        let purpose = self.check_offer(call, token)?;
        self.stats.calls_handled += 1;
        self.stats.refusals_in_row = 0;
        if purpose.penalised() {
            self.stats.score.answered(now_ms);
        }
        self.set(AgentState::Talking {
            call: call.clone(),
            purpose,
            since_ms: now_ms,
        });
        Ok(())
    }

    /// Start an outbound call (only from Not Ready).
    pub fn start_outbound(&mut self, call: CallId, now_ms: u64) -> Result<(), AgentError> {
        match &self.state {
            AgentState::NotReady { reason } => {
                self.resume_not_ready = Some(reason.clone());
                self.stats.calls_handled += 1;
                self.set(AgentState::Talking {
                    call,
                    purpose: OfferPurpose::Outbound,
                    since_ms: now_ms,
                });
                Ok(())
            }
            _ => Err(self.wrong("dial out (only Not Ready may)")),
        }
    }

    /// After an offer or call: apply a pending change, or go back where the
    /// agent came from (Ready, or the Not Ready it was in).
    fn settle(&mut self, now_ms: u64) {
        match self.pending.take() {
            Some(Pending::Logout) => {
                self.resume_not_ready = None;
                self.set(AgentState::LoggedOut);
            }
            Some(Pending::NotReady(reason)) => {
                self.resume_not_ready = None;
                self.set(AgentState::NotReady { reason });
            }
            None => match self.resume_not_ready.take() {
                Some(reason) => self.set(AgentState::NotReady { reason }),
                None => self.set(AgentState::Ready { since_ms: now_ms }),
            },
        }
    }

    /// The offer ended without a connection. Returns the reject delay to
    /// schedule, if any. An offer that is not [`OfferPurpose::penalised`]
    /// (a consult or conference leg) ends without RONA, reject delay,
    /// score or back-off; a refusal by its device still counts towards
    /// [`AgentSettings::device_refusals_max`] (that is about the device).
    pub fn offer_ended(
        &mut self,
        call: &CallId,
        token: OfferToken,
        outcome: OfferOutcome,
        now_ms: u64,
    ) -> Result<Option<u64>, AgentError> {
        let penalised = self.check_offer(call, token)?.penalised();
        if penalised {
            self.stats.score.unanswered(outcome);
        }
        match outcome {
            OfferOutcome::Withdrawn => {
                self.settle(now_ms);
                Ok(None)
            }
            OfferOutcome::Missed => {
                // It rang: the device is reachable.
                self.stats.refusals_in_row = 0;
                if !penalised {
                    self.settle(now_ms);
                    return Ok(None);
                }
                self.stats.rona_count += 1;
                let cooling_off = self.stats.backoff.no_answer(&self.settings.backoff, now_ms);
                let free = self.pending.is_none() && self.resume_not_ready.is_none();
                if cooling_off && free {
                    let reason = NotReadyReason::System(SystemReason::CoolingOff);
                    self.pending = Some(Pending::NotReady(reason));
                } else if free && self.settings.rona_sets_not_ready {
                    self.pending = Some(Pending::NotReady(self.settings.rona_reason.clone()));
                }
                if cooling_off && !free {
                    // A Not Ready of the agent's own stays: no end to time.
                    self.stats.backoff.cooling_off_until_ms = None;
                }
                self.settle_backing_off(outcome, now_ms);
                Ok(None)
            }
            OfferOutcome::Rejected | OfferOutcome::Refused => {
                if penalised {
                    self.stats.reject_count += 1;
                }
                if outcome == OfferOutcome::Refused && self.device_unreachable() {
                    // Out of routing as after a no-answer (a Not Ready the
                    // agent was in, or asked for, stays as it is).
                    if self.pending.is_none() && self.resume_not_ready.is_none() {
                        let reason = NotReadyReason::System(SystemReason::DeviceUnreachable);
                        self.pending = Some(Pending::NotReady(reason));
                    }
                    self.settle(now_ms);
                    return Ok(None);
                }
                let delay = self.settings.reject_delay_ms;
                if penalised
                    && delay > 0
                    && self.pending.is_none()
                    && self.resume_not_ready.is_none()
                {
                    self.set(AgentState::NotReady {
                        reason: NotReadyReason::System(SystemReason::RejectDelay),
                    });
                    Ok(Some(delay))
                } else if penalised {
                    self.settle_backing_off(outcome, now_ms);
                    Ok(None)
                } else {
                    self.settle(now_ms);
                    Ok(None)
                }
            }
        }
    }

    /// Settles after a routed offer ended with `outcome`: back to Ready
    /// starts the back-off `outcome` calls for.
    fn settle_backing_off(&mut self, outcome: OfferOutcome, now_ms: u64) {
        self.settle(now_ms);
        if self.is_ready() {
            self.stats
                .backoff
                .start(&self.settings.backoff, outcome, now_ms);
        }
    }

    /// The back-off ended (its timer, at `now_ms`): true when the agent is
    /// routable again.
    pub fn backoff_elapsed(&mut self, now_ms: u64) -> bool {
        if self.stats.backoff.until_ms == 0 || self.stats.backoff.holds(now_ms) {
            return false;
        }
        self.stats.backoff.until_ms = 0;
        self.is_ready()
    }

    /// The cooling-off timer fired (`epoch` from when it was armed): Ready
    /// again unless the agent moved on meanwhile.
    pub fn cooling_off_elapsed(&mut self, epoch: u64, now_ms: u64) -> bool {
        let cooling = self.state
            == AgentState::NotReady {
                reason: NotReadyReason::System(SystemReason::CoolingOff),
            };
        if cooling && self.epoch == epoch {
            self.stats.backoff.cooling_off_until_ms = None;
            self.set(AgentState::Ready { since_ms: now_ms });
            true
        } else {
            false
        }
    }

    /// Counts one more refusal by the device; true when that makes
    /// [`AgentSettings::device_refusals_max`] in a row (the device is
    /// unreachable: the agent leaves routing as after a no-answer).
    fn device_unreachable(&mut self) -> bool {
        self.stats.refusals_in_row = self.stats.refusals_in_row.saturating_add(1);
        let max = self.settings.device_refusals_max;
        max > 0 && self.stats.refusals_in_row >= max
    }

    /// The reject delay elapsed (`epoch` from when it was scheduled).
    pub fn reject_delay_elapsed(&mut self, epoch: u64, now_ms: u64) -> bool {
        let delayed = self.state
            == AgentState::NotReady {
                reason: NotReadyReason::System(SystemReason::RejectDelay),
            };
        if delayed && self.epoch == epoch {
            self.set(AgentState::Ready { since_ms: now_ms });
            true
        } else {
            false
        }
    }

    /// The lease expired without the call settling the offer: free the agent.
    pub fn lease_expired(&mut self, token: OfferToken, now_ms: u64) -> bool {
        match &self.state {
            AgentState::Reserved {
                token: t,
                lease_until_ms,
                ..
            } if *t == token && *lease_until_ms <= now_ms => {
                self.settle(now_ms);
                true
            }
            _ => false,
        }
    }

    /// The agent's part in `call` ended; `wrap_up_ms` is the queue's wrap-up
    /// when wrap-up applies (an inbound queue call), else `None`. Returns the
    /// wrap-up end to schedule, if any.
    pub fn left_call(
        &mut self,
        call: &CallId,
        wrap_up_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<Option<u64>, AgentError> {
        let since = match &self.state {
            AgentState::Talking {
                call: c, since_ms, ..
            } if c == call => *since_ms,
            // The call ended before the accept was confirmed to the agent.
            AgentState::Reserved { call: c, .. } if c == call => now_ms,
            _ => return Err(self.wrong("leave a call it is not on")),
        };
        self.stats.talk_ms_total += now_ms.saturating_sub(since);
        let wrap = self
            .settings
            .wrap_up_ms
            .or(wrap_up_ms)
            .filter(|_| wrap_up_ms.is_some());
        match wrap {
            // A pending logout waits for the wrap-up's end.
            Some(ms) if ms > 0 => {
                let until_ms = now_ms + ms;
                self.set(AgentState::WrapUp {
                    call: call.clone(),
                    until_ms,
                    coding: WrapUpCoding::default(),
                });
                Ok(Some(until_ms))
            }
            _ => {
                self.settle(now_ms);
                Ok(None)
            }
        }
    }

    /// Wrap-up ends (the agent's request): refused while a required code
    /// is owed.
    pub fn end_wrap_up(&mut self, now_ms: u64) -> Result<(), AgentError> {
        match &self.state {
            AgentState::WrapUp { .. } => {
                self.code_owed()?;
                self.settle(now_ms);
                Ok(())
            }
            _ => Err(self.wrong("end wrap-up")),
        }
    }

    /// The wrap-up of `call` takes `coding` (the call's queue, its codes,
    /// whether one is owed). False when the agent is not wrapping `call` up.
    pub fn wrap_up_coding(&mut self, call: &CallId, coding: WrapUpCoding) -> bool {
        match &mut self.state {
            AgentState::WrapUp {
                call: c,
                coding: now,
                ..
            } if c == call => {
                *now = coding;
                true
            }
            _ => false,
        }
    }

    /// The call recorded a wrap-up code of the agent's: nothing is owed
    /// any more. True when that changed the wrap-up.
    pub fn wrap_up_code_recorded(&mut self, call: &CallId) -> bool {
        match &mut self.state {
            AgentState::WrapUp {
                call: c, coding, ..
            } if c == call && coding.owed => {
                coding.owed = false;
                true
            }
            _ => false,
        }
    }

    /// Refuses leaving the wrap-up by hand while its required code is owed.
    fn code_owed(&self) -> Result<(), AgentError> {
        match &self.state {
            AgentState::WrapUp { coding, .. } if coding.owed => {
                Err(AgentError::WrapUpCodeRequired {
                    queue: coding.queue.clone().unwrap_or_else(|| QueueId::new("")),
                })
            }
            _ => Ok(()),
        }
    }

    /// The wrap-up timer fired for `call` with `epoch`.
    pub fn wrap_up_elapsed(&mut self, epoch: u64, now_ms: u64) -> bool {
        if matches!(self.state, AgentState::WrapUp { .. }) && self.epoch == epoch {
            self.settle(now_ms);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Agent {
        Agent::new(
            AgentId::new("a1"),
            AgentSettings {
                wrap_up_ms: None,
                reject_delay_ms: 0,
                rona_sets_not_ready: true,
                rona_reason: NotReadyReason::System(SystemReason::Rona),
                device_refusals_max: 0,
                backoff: Default::default(),
            },
        )
    }

    fn q() -> OfferPurpose {
        OfferPurpose::Queue(QueueId::new("q"))
    }

    fn ready_agent() -> Agent {
        let mut a = agent();
        a.login().unwrap();
        a.set_ready(0).unwrap();
        a
    }

    /// Queue offers need Ready; direct calls reach Not Ready; outbound needs Not Ready.
    #[test]
    fn offer_rules_by_state() {
        let mut a = agent();
        a.login().unwrap();
        let c = CallId::new("c");
        assert!(a.reserve(c.clone(), OfferToken(1), q(), 10).is_err());
        a.reserve(c.clone(), OfferToken(1), OfferPurpose::Direct, 10)
            .unwrap();
        // A second offer is refused: never two offers.
        assert!(a
            .reserve(CallId::new("d"), OfferToken(2), OfferPurpose::Direct, 10)
            .is_err());
        a.offer_ended(&c, OfferToken(1), OfferOutcome::Withdrawn, 5)
            .unwrap();
        assert!(matches!(a.state, AgentState::NotReady { .. }));
        a.start_outbound(CallId::new("o"), 6).unwrap();
        let mut r = ready_agent();
        assert!(r.start_outbound(CallId::new("o"), 6).is_err());
    }

    /// Wrap-up after a queue call; Not Ready during wrap-up is pending.
    #[test]
    fn wrap_up_and_pending_not_ready() {
        let mut a = ready_agent();
        let c = CallId::new("c");
        a.reserve(c.clone(), OfferToken(1), q(), 100).unwrap();
        a.connected(&c, OfferToken(1), 10).unwrap();
        assert_eq!(a.left_call(&c, Some(30), 20).unwrap(), Some(50));
        a.set_not_ready(NotReadyReason::Code("break".into()))
            .unwrap();
        assert!(matches!(a.state, AgentState::WrapUp { .. }));
        assert!(a.wrap_up_elapsed(a.epoch, 50));
        assert_eq!(
            a.state,
            AgentState::NotReady {
                reason: NotReadyReason::Code("break".into())
            }
        );
    }

    /// A desktop gone past the grace: Ready becomes Not Ready, a call in
    /// progress gets it pending, Not Ready and logged out stay as they are.
    #[test]
    fn desktop_gone_takes_the_agent_out_of_routing() {
        let mut a = ready_agent();
        assert!(a.desktop_gone());
        let supervisor = NotReadyReason::System(SystemReason::DesktopGone);
        assert_eq!(
            a.state,
            AgentState::NotReady {
                reason: supervisor.clone()
            }
        );
        assert!(!a.desktop_gone(), "already Not Ready");
        let mut b = ready_agent();
        let c = CallId::new("c");
        b.reserve(c.clone(), OfferToken(1), q(), 100).unwrap();
        b.connected(&c, OfferToken(1), 10).unwrap();
        assert!(b.desktop_gone());
        assert!(matches!(b.state, AgentState::Talking { .. }));
        assert_eq!(b.pending, Some(Pending::NotReady(supervisor)));
        assert!(!b.desktop_gone(), "a change is already pending");
        assert!(!agent().desktop_gone(), "logged out");
    }

    /// Logout during a call is pending: the agent still gets its wrap-up
    /// (the call's notes are part of the call), and the logout applies
    /// when the wrap-up ends, by its timer or by Finish.
    #[test]
    fn pending_logout_after_the_wrap_up() {
        let mut a = ready_agent();
        let c = CallId::new("c");
        a.reserve(c.clone(), OfferToken(1), q(), 100).unwrap();
        a.connected(&c, OfferToken(1), 10).unwrap();
        a.logout().unwrap();
        assert!(matches!(a.state, AgentState::Talking { .. }));
        assert_eq!(a.left_call(&c, Some(30), 20).unwrap(), Some(50));
        assert!(matches!(a.state, AgentState::WrapUp { .. }));
        assert_eq!(a.pending, Some(Pending::Logout));
        assert!(a.wrap_up_elapsed(a.epoch, 50));
        assert_eq!(a.state, AgentState::LoggedOut);

        let mut b = ready_agent();
        b.reserve(c.clone(), OfferToken(2), q(), 100).unwrap();
        b.connected(&c, OfferToken(2), 10).unwrap();
        b.logout().unwrap();
        b.left_call(&c, Some(30), 20).unwrap();
        b.end_wrap_up(25).unwrap();
        assert_eq!(b.state, AgentState::LoggedOut);
    }

    /// A required code is owed: Finish and Ready are refused with the
    /// queue named, a logout waits; once the call records a code, Finish
    /// works. The timer ends an owed wrap-up anyway.
    #[test]
    fn a_required_code_must_be_recorded_before_finishing() {
        let mut a = ready_agent();
        let c = CallId::new("c");
        a.reserve(c.clone(), OfferToken(1), q(), 100).unwrap();
        a.connected(&c, OfferToken(1), 10).unwrap();
        a.left_call(&c, Some(30), 20).unwrap();
        let owed = WrapUpCoding {
            queue: Some(QueueId::new("q")),
            codes: vec![],
            owed: true,
        };
        assert!(!a.wrap_up_coding(&CallId::new("other"), owed.clone()));
        assert!(a.wrap_up_coding(&c, owed.clone()));
        let refused = AgentError::WrapUpCodeRequired {
            queue: QueueId::new("q"),
        };
        assert_eq!(a.end_wrap_up(21), Err(refused.clone()));
        assert_eq!(a.set_ready(21), Err(refused));
        assert_eq!(
            refused_text(),
            "choose a wrap-up code first: calls of queue q need one before the wrap-up ends"
        );
        a.logout().unwrap();
        assert!(matches!(a.state, AgentState::WrapUp { .. }), "logout waits");
        assert!(a.wrap_up_code_recorded(&c));
        a.end_wrap_up(22).unwrap();
        assert_eq!(a.state, AgentState::LoggedOut, "then the logout applies");

        let mut b = ready_agent();
        b.reserve(c.clone(), OfferToken(2), q(), 100).unwrap();
        b.connected(&c, OfferToken(2), 10).unwrap();
        b.left_call(&c, Some(30), 20).unwrap();
        b.wrap_up_coding(&c, owed);
        assert!(b.wrap_up_elapsed(b.epoch, 50), "the timer still ends it");
        assert!(b.is_ready());
    }

    fn refused_text() -> String {
        AgentError::WrapUpCodeRequired {
            queue: QueueId::new("q"),
        }
        .to_string()
    }

    /// RONA sets Not Ready(RONA) and counts; stale tokens are refused.
    #[test]
    fn rona_and_stale_tokens() {
        let mut a = ready_agent();
        let c = CallId::new("c");
        a.reserve(c.clone(), OfferToken(7), q(), 100).unwrap();
        assert!(a.connected(&c, OfferToken(6), 1).is_err());
        a.offer_ended(&c, OfferToken(7), OfferOutcome::Missed, 2)
            .unwrap();
        assert_eq!(
            a.state,
            AgentState::NotReady {
                reason: NotReadyReason::System(SystemReason::Rona)
            }
        );
        assert_eq!(a.stats.rona_count, 1);
        assert!(a
            .offer_ended(&c, OfferToken(7), OfferOutcome::Missed, 3)
            .is_err());
    }

    /// A reject with a delay returns to Ready only when the delay elapses.
    #[test]
    fn reject_delay() {
        let mut a = ready_agent();
        a.settings.reject_delay_ms = 5;
        let c = CallId::new("c");
        a.reserve(c.clone(), OfferToken(1), q(), 100).unwrap();
        assert_eq!(
            a.offer_ended(&c, OfferToken(1), OfferOutcome::Rejected, 2)
                .unwrap(),
            Some(5)
        );
        let epoch = a.epoch;
        assert!(!a.reject_delay_elapsed(epoch - 1, 7));
        assert!(a.reject_delay_elapsed(epoch, 7));
        assert!(a.is_ready());
    }

    /// Refusals by the device count in a row: a desktop reject does not
    /// count, a ring (missed offer) or an answer starts over, and the
    /// `device_refusals_max`-th takes the agent out as device unreachable.
    #[test]
    fn device_refusals_count_in_a_row() {
        let mut a = ready_agent();
        a.settings.device_refusals_max = 2;
        a.settings.rona_sets_not_ready = false;
        let c = CallId::new("c");
        let offer = |a: &mut Agent, t: u64, outcome: OfferOutcome| {
            a.reserve(c.clone(), OfferToken(t), q(), 100).unwrap();
            a.offer_ended(&c, OfferToken(t), outcome, t).unwrap();
        };
        offer(&mut a, 1, OfferOutcome::Refused);
        offer(&mut a, 2, OfferOutcome::Rejected);
        assert_eq!(
            a.stats.refusals_in_row, 1,
            "a desktop reject is not the device"
        );
        offer(&mut a, 3, OfferOutcome::Missed);
        assert_eq!(a.stats.refusals_in_row, 0, "it rang");
        offer(&mut a, 4, OfferOutcome::Refused);
        a.reserve(c.clone(), OfferToken(5), q(), 100).unwrap();
        a.connected(&c, OfferToken(5), 5).unwrap();
        assert_eq!(a.stats.refusals_in_row, 0, "it answered");
        a.left_call(&c, None, 6).unwrap();
        offer(&mut a, 7, OfferOutcome::Refused);
        assert!(a.is_ready());
        offer(&mut a, 8, OfferOutcome::Refused);
        assert_eq!(
            a.state,
            AgentState::NotReady {
                reason: NotReadyReason::System(SystemReason::DeviceUnreachable)
            }
        );
    }

    /// No wrap-up after outbound or transferred calls (`None` from the call).
    #[test]
    fn no_wrap_up_without_queue() {
        let mut a = agent();
        a.login().unwrap();
        a.start_outbound(CallId::new("o"), 0).unwrap();
        assert_eq!(a.left_call(&CallId::new("o"), None, 5).unwrap(), None);
        assert!(matches!(a.state, AgentState::NotReady { .. }));
    }
}
