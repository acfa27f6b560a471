//! After a restart, an agent whose own record lags a call that had already
//! ended is settled from that call's trail (its detail record so far),
//! since the ended call no longer lists who was on it. The call ended
//! with its records written; only the agent's side was lost. An agent
//! saved still offered the call: an offer the trail shows answered is
//! connected and then left as the call left it (its wrap-up counted from
//! the call's end, so a wrap-up that ran out while edgecc was down ends
//! at once, once); an offer that ended otherwise ends with that outcome
//! (a no-answer counts as one, as the rules say). An agent saved talking
//! on it leaves it as the trail says, into its wrap-up. The state it comes
//! back in is timed from when the call left it. Anything the trail does
//! not show is left to [`super::free_if_orphaned`].

use crate::agent::since::StateSince;
use crate::agent::{Agent, AgentState, OfferOutcome, WrapUpCoding};
use crate::call::Call;
use crate::cdr::{OfferResult, PartyDetail};
use crate::config::ContactCenterConfig;
use crate::ids::OfferToken;
use tracing::info;

/// Settles `agent` against `call`, ended, at `now`; true when the trail
/// showed what became of the agent's part in it.
pub(super) fn settle(
    agent: &mut Agent,
    call: &Call,
    config: &ContactCenterConfig,
    now: u64,
) -> bool {
    if !call.is_ended() {
        return false;
    }
    match agent.state.clone() {
        AgentState::Reserved { call: c, token, .. } if c == call.id => {
            settle_offer(agent, call, token, config, now)
        }
        AgentState::Talking {
            call: c, since_ms, ..
        } if c == call.id => {
            let Some(party) = party_since(call, agent, since_ms) else {
                return false;
            };
            info!(agent_id = %agent.id, call_id = %call.id, reason = "restart", "Agent saved talking on a call that ended put in the wrap-up the call gave it.");
            leave(agent, call, &party, config, now)
        }
        _ => false,
    }
}

/// The offer `token` of `call` ended as the trail says.
fn settle_offer(
    agent: &mut Agent,
    call: &Call,
    token: OfferToken,
    config: &ContactCenterConfig,
    now: u64,
) -> bool {
    let trail = &call.trail;
    let Some(offer) = trail
        .offers
        .iter()
        .find(|o| o.token == token && o.agent == agent.id)
    else {
        return false;
    };
    let ended_ms = offer.ended_ms.unwrap_or(now);
    let outcome = match offer.outcome {
        None => return false,
        Some(OfferResult::Answered) => {
            let Some(party) = party_since(call, agent, offer.offered_ms) else {
                return false;
            };
            if agent.connected(&call.id, token, party.joined_ms).is_err() {
                return false;
            }
            info!(agent_id = %agent.id, call_id = %call.id, reason = "restart", "Agent saved offered a call that was answered and ended put in the wrap-up the call gave it.");
            return leave(agent, call, &party, config, now);
        }
        Some(OfferResult::Rejected) => OfferOutcome::Rejected,
        Some(OfferResult::Refused) => OfferOutcome::Refused,
        Some(OfferResult::Missed) => OfferOutcome::Missed,
        Some(OfferResult::Withdrawn) => OfferOutcome::Withdrawn,
    };
    info!(agent_id = %agent.id, call_id = %call.id, outcome = ?outcome, reason = "restart", "Agent saved offered a call that ended without it: the offer ends as the call recorded.");
    let at = ended_ms.min(now);
    if agent.offer_ended(&call.id, token, outcome, at).is_err() {
        return false;
    }
    agent.state_since = Some(StateSince::of(&agent.state, at));
    true
}

/// The agent's first part in `call` that ended at or after `from_ms`
/// (when the offer rang, or when the agent's record says it began
/// talking: the agent's actor may time that a little after the call did,
/// so the part's end, not its start, is compared).
fn party_since(call: &Call, agent: &Agent, from_ms: u64) -> Option<PartyDetail> {
    call.trail
        .parties
        .iter()
        .find(|p| p.agent == agent.id && p.left_ms.is_some_and(|l| l >= from_ms))
        .cloned()
}

/// The agent leaves `call` when `party` left it, with the wrap-up the call
/// granted (none when it granted 0: the trail keeps no difference between
/// "no wrap-up" and a queue's wrap-up of 0, so an agent's own wrap-up
/// setting does not apply to the latter here) and the call's queue codes.
fn leave(
    agent: &mut Agent,
    call: &Call,
    party: &PartyDetail,
    config: &ContactCenterConfig,
    now: u64,
) -> bool {
    let left_ms = party.left_ms.unwrap_or(now).min(now);
    let wrap = (party.wrap_up_ms > 0).then_some(party.wrap_up_ms);
    if agent.left_call(&call.id, wrap, left_ms).is_err() {
        return false;
    }
    let queue = call.rules.as_ref().map(|r| r.queue.clone());
    agent.wrap_up_coding(&call.id, WrapUpCoding::for_queue(config, queue));
    agent.state_since = Some(StateSince::of(&agent.state, left_ms));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::OfferPurpose;
    use crate::call::{CallPhase, TerminalReason};
    use crate::ids::LegId;
    use crate::registry::restore::tests::agent;

    /// A call that a1 talked on from 100 to 200 ms, ended then with a
    /// 5 s wrap-up granted.
    fn ended_call() -> Call {
        let (mut call, _) = Call::inbound(
            "t",
            LegId::new("c1"),
            "+1555".into(),
            "800".into(),
            Vec::new(),
            0,
            10_000,
        );
        call.phase = CallPhase::Ended(TerminalReason::Completed);
        call.trail.parties.push(PartyDetail {
            agent: agent().id,
            joined_ms: 100,
            left_ms: Some(200),
            wrap_up_ms: 5_000,
        });
        call
    }

    /// Goal: an agent saved talking on the call goes into the call's
    /// wrap-up even when its actor timed the talk a little after the call
    /// did (real time, not the paused time of the message tests). Method:
    /// a1 talking since 103 on a call whose trail has it joining at 100.
    #[test]
    fn talking_timed_after_the_call_still_gets_its_wrap_up() {
        let call = ended_call();
        let mut a = agent();
        a.reserve(call.id.clone(), OfferToken(3), OfferPurpose::Direct, 10_000)
            .unwrap();
        a.connected(&call.id, OfferToken(3), 103).unwrap();
        assert!(settle(&mut a, &call, &ContactCenterConfig::default(), 300));
        assert!(
            matches!(&a.state, AgentState::WrapUp { call: c, until_ms: 5_200, .. } if *c == call.id),
            "{:?}",
            a.state
        );
        assert_eq!(a.state_since.as_ref().map(|s| s.since_ms), Some(200));
    }
}
