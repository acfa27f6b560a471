//! After a restart the call owns who is on it. An agent's record and the
//! record of the call it is on are two records: edgecc may die between
//! them, so a restored agent may lag the call that names it. This module
//! settles each restored agent against the live restored calls before any
//! actor starts: an agent a call names as a party comes back talking on
//! it (its stale offer lease gone, so it can never free the agent while
//! the phone talks); one saved talking on a live call that names it only
//! as an offer comes back reserved for that offer (the PBX reconcile then
//! resolves it once); one saved talking on a live call that does not name
//! it at all is freed Not Ready, once, as from a lost call. An agent saved
//! reserved for an offer the live call no longer lists is freed at once
//! (not when its lease runs out), and an agent a live call offers is
//! reserved for that offer, so it is never offered a second call while
//! its phone rings.

use crate::agent::{Agent, AgentState, NotReadyReason, OfferOutcome, OfferPurpose, SystemReason};
use crate::call::{Call, CallPhase, PendingKind};
use crate::ids::{AgentId, CallId, OfferToken};
use std::collections::{BTreeMap, HashMap};
use tracing::{info, warn};

/// How a live call names an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Named {
    /// On the call (a party, an answered consult or conference leg, the
    /// agent dialing out).
    Party {
        /// The call.
        call: CallId,
        /// When the agent joined (talk time counts from it), if known.
        joined_ms: Option<u64>,
    },
    /// Offered the call and not answered yet.
    Offered {
        /// The call.
        call: CallId,
        /// The offer's fencing token.
        token: OfferToken,
        /// Why the offer was made.
        purpose: OfferPurpose,
        /// The offer's RONA deadline.
        deadline_ms: u64,
    },
}

impl Named {
    /// The call that names the agent.
    fn call(&self) -> &CallId {
        match self {
            Self::Party { call, .. } | Self::Offered { call, .. } => call,
        }
    }
}

/// Which agent each live call names, and how (a party wins over an offer
/// should two calls name the same agent).
pub(super) fn named_by_calls(calls: &BTreeMap<CallId, Call>) -> HashMap<AgentId, Named> {
    let mut named: HashMap<AgentId, Named> = HashMap::new();
    let mut name = |agent: &AgentId, how: Named| {
        let keep = matches!(named.get(agent), Some(Named::Party { .. }));
        if !keep {
            named.insert(agent.clone(), how);
        }
    };
    for (id, call) in calls {
        match &call.phase {
            CallPhase::Connected(s) => {
                for p in &s.parties {
                    let how = Named::Party {
                        call: id.clone(),
                        joined_ms: Some(p.joined_ms),
                    };
                    name(&p.agent, how);
                }
                if let Some(leg) = &s.pending {
                    let how = if leg.answered {
                        Named::Party {
                            call: id.clone(),
                            joined_ms: None,
                        }
                    } else {
                        Named::Offered {
                            call: id.clone(),
                            token: leg.token,
                            purpose: match leg.kind {
                                PendingKind::Consult => OfferPurpose::Consult,
                                PendingKind::Conference => OfferPurpose::Conference,
                            },
                            deadline_ms: leg.deadline_ms,
                        }
                    };
                    name(&leg.to.agent, how);
                }
            }
            CallPhase::Dialing { party } => {
                let how = Named::Party {
                    call: id.clone(),
                    joined_ms: Some(party.joined_ms),
                };
                name(&party.agent, how);
            }
            CallPhase::Offering { offers, .. } => {
                for o in offers {
                    let how = Named::Offered {
                        call: id.clone(),
                        token: o.token,
                        purpose: o.purpose.clone(),
                        deadline_ms: o.deadline_ms,
                    };
                    name(&o.agent, how);
                }
            }
            CallPhase::Routing | CallPhase::Queued { .. } | CallPhase::Ended(_) => {}
        }
    }
    named
}

/// Settles `agent` against how the live calls name it (`named`, from
/// [`named_by_calls`]); `lease_grace_ms` is added to an offer's deadline
/// for the lease of an agent put back on that offer.
pub(super) fn settle(agent: &mut Agent, named: Option<&Named>, lease_grace_ms: u64, now: u64) {
    match (agent.state.clone(), named) {
        // The call connected it; the agent's own change was not durable.
        (
            AgentState::Reserved { call, token, .. },
            Some(Named::Party {
                call: on,
                joined_ms,
            }),
        ) if call == *on => {
            let since = joined_ms.unwrap_or(now);
            if agent.connected(&call, token, since).is_ok() {
                info!(agent_id = %agent.id, call_id = %call, reason = "restart", "Agent the restored call has on it put back talking on it.");
            }
        }
        // Already on the call that has it on it.
        (AgentState::Talking { call, .. }, Some(Named::Party { call: on, .. })) if call == *on => {}
        // On a call its own record does not know of yet (held by another
        // offer, or free): whatever lease it holds must not free it while
        // the call has it on it.
        (
            state,
            Some(Named::Party {
                call: on,
                joined_ms,
            }),
        ) if state != AgentState::LoggedOut => {
            warn!(agent_id = %agent.id, call_id = %on, state = state.name(), reason = "restart", "Agent the restored call has on it put on it from a stale state.");
            if let AgentState::Reserved { call, token, .. } = &state {
                let _ = agent.offer_ended(call, *token, OfferOutcome::Withdrawn, now);
            }
            if let AgentState::NotReady { reason } = &agent.state {
                agent.resume_not_ready = Some(reason.clone());
            }
            agent.stats.calls_handled += 1;
            agent.state = AgentState::Talking {
                call: on.clone(),
                purpose: OfferPurpose::Direct,
                since_ms: joined_ms.unwrap_or(now),
            };
            agent.epoch += 1;
        }
        // Saved talking on a call that has not connected it (yet): the
        // offer is its state, for the reconcile to resolve once.
        (
            AgentState::Talking { call, .. },
            Some(Named::Offered {
                call: offered,
                token,
                purpose,
                deadline_ms,
            }),
        ) if call == *offered => {
            warn!(agent_id = %agent.id, call_id = %call, reason = "restart", "Agent saved talking on a call that only offers it put back on the offer.");
            agent.stats.calls_handled = agent.stats.calls_handled.saturating_sub(1);
            agent.state = AgentState::Reserved {
                call,
                token: *token,
                purpose: purpose.clone(),
                lease_until_ms: deadline_ms.saturating_add(lease_grace_ms),
            };
            agent.epoch += 1;
        }
        // Saved talking on a live call that does not have it on it.
        (AgentState::Talking { call, .. }, how) if how.map(Named::call) != Some(&call) => {
            warn!(agent_id = %agent.id, call_id = %call, reason = "restart", "Agent freed, Not Ready, from a call the restored state does not have it on.");
            let _ = agent.set_not_ready(NotReadyReason::System(SystemReason::Restart));
            let _ = agent.left_call(&call, None, now);
        }
        // Saved reserved for an offer the live call no longer lists (it
        // was withdrawn, or moved to another agent or token): the offer is
        // over now, not when its lease runs out; then the offer the calls
        // do name, if any, is the agent's.
        (AgentState::Reserved { call, token, .. }, how) if !offers(how, &call, token) => {
            info!(agent_id = %agent.id, call_id = %call, reason = "restart", "Offer the restored call no longer lists withdrawn.");
            let _ = agent.offer_ended(&call, token, OfferOutcome::Withdrawn, now);
            reserve_for(agent, how, lease_grace_ms);
        }
        // Free, but a live call offers it (the reservation was not
        // durable): the agent is reserved for that offer, so it is not
        // offered a second call while its phone rings.
        (
            AgentState::Ready { .. } | AgentState::NotReady { .. },
            how @ Some(Named::Offered { .. }),
        ) => {
            reserve_for(agent, how, lease_grace_ms);
        }
        _ => {}
    }
}

/// Whether `how` is the offer of `call` with `token`.
fn offers(how: Option<&Named>, call: &CallId, token: OfferToken) -> bool {
    matches!(how, Some(Named::Offered { call: c, token: t, .. }) if c == call && *t == token)
}

/// Reserves a free `agent` for the offer `how` names, if it names one.
fn reserve_for(agent: &mut Agent, how: Option<&Named>, lease_grace_ms: u64) {
    let Some(Named::Offered {
        call,
        token,
        purpose,
        deadline_ms,
    }) = how
    else {
        return;
    };
    let lease_until_ms = deadline_ms.saturating_add(lease_grace_ms);
    match agent.reserve(call.clone(), *token, purpose.clone(), lease_until_ms) {
        Ok(()) => {
            info!(agent_id = %agent.id, call_id = %call, reason = "restart", "Agent the restored call offers put back on that offer.")
        }
        Err(e) => {
            warn!(agent_id = %agent.id, call_id = %call, error = %e, reason = "restart", "Agent the restored call offers cannot take the offer; the reconcile settles it.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::restore::tests::agent;

    /// Goal: an agent whose change to talking was lost follows the call
    /// that has it on it. Method: a reserved agent named as a party of the
    /// same call comes back talking since its joining time; one named on
    /// another call is taken off its offer and put on that call, and its
    /// old lease frees nothing.
    #[test]
    fn reserved_agent_the_call_has_on_it_talks() {
        let call = CallId::new("c1");
        let mut a = agent();
        a.reserve(call.clone(), OfferToken(3), OfferPurpose::Direct, 100)
            .unwrap();
        let mut other = a.clone();
        let on = Named::Party {
            call: call.clone(),
            joined_ms: Some(40),
        };
        settle(&mut a, Some(&on), 5_000, 50);
        assert!(
            matches!(&a.state, AgentState::Talking { call: c, since_ms: 40, .. } if *c == call),
            "{:?}",
            a.state
        );
        let elsewhere = Named::Party {
            call: CallId::new("c2"),
            joined_ms: Some(40),
        };
        settle(&mut other, Some(&elsewhere), 5_000, 50);
        assert!(
            matches!(&other.state, AgentState::Talking { call: c, .. } if c.as_str() == "c2"),
            "{:?}",
            other.state
        );
        assert!(!other.lease_expired(OfferToken(3), 1_000));
        assert_eq!(other.state.name(), "talking");
    }

    /// Goal: an agent saved talking on a call the restored state does not
    /// have it on is freed once; one the call still offers goes back to
    /// the offer. Method: a talking agent settled against no naming, and
    /// against an offer of its call.
    #[test]
    fn talking_agent_the_call_does_not_have_is_freed_or_reserved() {
        let call = CallId::new("c1");
        let mut a = agent();
        a.reserve(call.clone(), OfferToken(3), OfferPurpose::Direct, 100)
            .unwrap();
        a.connected(&call, OfferToken(3), 20).unwrap();
        let mut offered = a.clone();
        settle(&mut a, None, 5_000, 50);
        assert_eq!(
            a.state,
            AgentState::NotReady {
                reason: NotReadyReason::System(SystemReason::Restart)
            }
        );
        let how = Named::Offered {
            call: call.clone(),
            token: OfferToken(3),
            purpose: OfferPurpose::Direct,
            deadline_ms: 70,
        };
        settle(&mut offered, Some(&how), 5_000, 50);
        assert_eq!(
            offered.state,
            AgentState::Reserved {
                call,
                token: OfferToken(3),
                purpose: OfferPurpose::Direct,
                lease_until_ms: 5_070,
            }
        );
        assert_eq!(offered.stats.calls_handled, 0);
    }

    /// Goal: an agent whose saved offer the live call no longer lists is
    /// freed at the restore, and follows the offer the call does list.
    /// Method: a reserved agent settled against no naming (Ready, its old
    /// lease gone), against another token of its call (reserved on that
    /// token), and a Ready agent settled against an offer (reserved).
    #[test]
    fn reserved_agent_the_call_no_longer_offers_is_freed() {
        let call = CallId::new("c1");
        let mut a = agent();
        a.reserve(call.clone(), OfferToken(3), OfferPurpose::Direct, 100)
            .unwrap();
        let mut moved = a.clone();
        settle(&mut a, None, 5_000, 50);
        assert!(matches!(a.state, AgentState::Ready { .. }), "{:?}", a.state);
        assert!(!a.lease_expired(OfferToken(3), 1_000));
        let how = Named::Offered {
            call: call.clone(),
            token: OfferToken(4),
            purpose: OfferPurpose::Direct,
            deadline_ms: 70,
        };
        settle(&mut moved, Some(&how), 5_000, 50);
        let reserved = AgentState::Reserved {
            call: call.clone(),
            token: OfferToken(4),
            purpose: OfferPurpose::Direct,
            lease_until_ms: 5_070,
        };
        assert_eq!(moved.state, reserved);
        let mut free = agent();
        settle(&mut free, Some(&how), 5_000, 50);
        assert_eq!(free.state, reserved);
    }
}
