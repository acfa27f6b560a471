//! Unit tests of the pure call state machine (no runtime).

use super::*;

fn rules(max_wait_ms: u64) -> QueueRules {
    QueueRules {
        queue: QueueId::new("q"),
        priority: 0,
        max_wait_ms,
        wrap_up_ms: 30,
        final_destination: FinalDestination::default(),
        ring_all: false,
    }
}

fn contact(a: &str) -> AgentContact {
    AgentContact {
        agent: AgentId::new(a),
        extension: format!("x{a}"),
        endpoint: format!("sim/{a}"),
        auto_accept: false,
    }
}

fn queued_call() -> Call {
    let (mut call, _) = Call::inbound(
        "s",
        LegId::new("c1"),
        "+1".into(),
        "100".into(),
        vec![],
        0,
        10,
    );
    call.enqueue(rules(1000), 0).unwrap();
    call
}

fn records(fx: &[CallEffect]) -> Vec<CrmRecordKind> {
    fx.iter()
        .filter_map(|e| match e {
            CallEffect::Records(r) => Some(r.iter().map(|r| r.kind).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Accept creates exactly one interaction and one phone log, then confirms.
#[test]
fn accept_writes_records_then_confirms() {
    let mut call = queued_call();
    let q = OfferPurpose::Queue(QueueId::new("q"));
    call.offer(&contact("a"), OfferToken(1), q, false, 1);
    let fx = call.leg_answered(&LegId::new("c1~1"), 2);
    assert_eq!(
        records(&fx),
        vec![
            CrmRecordKind::InteractionCreate,
            CrmRecordKind::PhoneLogCreate
        ]
    );
    let rec_at = fx
        .iter()
        .position(|e| matches!(e, CallEffect::Records(_)))
        .unwrap();
    let confirm_at = fx
        .iter()
        .position(|e| matches!(e, CallEffect::ConfirmAccept { .. }))
        .unwrap();
    assert!(rec_at < confirm_at);
    // A late answer with the same token is stale.
    assert!(call
        .accept(&AgentId::new("a"), OfferToken(1), true, 3)
        .is_err());
}

/// Reject and RONA go back to the queue, excluding the agent; a late answer loses.
#[test]
fn reject_and_rona_redirect() {
    let mut call = queued_call();
    let q = OfferPurpose::Queue(QueueId::new("q"));
    call.offer(&contact("a"), OfferToken(1), q.clone(), false, 1);
    let fx = call.reject(&AgentId::new("a"), OfferToken(1), 2).unwrap();
    assert!(fx.iter().any(|e| matches!(e, CallEffect::Enqueue { excluded, .. } if excluded == &vec![AgentId::new("a")])));
    // The rejecting agent is not offered again.
    let fx = call.offer(&contact("a"), OfferToken(2), q.clone(), false, 3);
    assert!(matches!(
        fx[0],
        CallEffect::Agent(
            _,
            AgentNotice::OfferEnded {
                outcome: OfferOutcome::Withdrawn,
                ..
            }
        )
    ));
    call.offer(&contact("b"), OfferToken(3), q, false, 3);
    assert!(
        call.rona(OfferToken(3), 5).is_empty(),
        "not before the deadline"
    );
    let fx = call.rona(OfferToken(3), 13);
    assert!(fx.iter().any(|e| matches!(
        e,
        CallEffect::Agent(
            _,
            AgentNotice::OfferEnded {
                outcome: OfferOutcome::Missed,
                ..
            }
        )
    )));
    assert!(
        call.leg_answered(&LegId::new("c1~3"), 14).is_empty(),
        "answer after redirect never wins"
    );
    assert!(matches!(call.phase, CallPhase::Queued { .. }));
}

/// Queue timeout: one interaction and one work item, then the destination.
#[test]
fn timeout_and_abandon_records() {
    let mut call = queued_call();
    let fx = call.max_wait_elapsed(1, 1000);
    assert_eq!(
        records(&fx),
        vec![
            CrmRecordKind::InteractionCreate,
            CrmRecordKind::WorkItemCreate
        ]
    );
    assert_eq!(call.phase, CallPhase::Ended(TerminalReason::TimedOut));
    let mut call = queued_call();
    let fx = call.leg_hung_up(&LegId::new("c1"), HangupCause::Normal, 5);
    assert_eq!(
        records(&fx),
        vec![
            CrmRecordKind::InteractionCreate,
            CrmRecordKind::WorkItemCreate
        ]
    );
    assert_eq!(call.phase, CallPhase::Ended(TerminalReason::Abandoned));
    assert!(call
        .leg_hung_up(&LegId::new("c1"), HangupCause::Normal, 6)
        .is_empty());
}

/// Consult: leg started/ended on the same interaction; RONA returns to A.
#[test]
fn consult_records_and_rona() {
    let mut call = queued_call();
    let q = OfferPurpose::Queue(QueueId::new("q"));
    call.offer(&contact("a"), OfferToken(1), q, false, 1);
    call.leg_answered(&LegId::new("c1~1"), 2);
    let a = AgentId::new("a");
    call.consult(&a, &contact("b"), OfferToken(2), 3).unwrap();
    assert!(call.hold(&a, 3).is_err(), "caller already held");
    let fx = call.rona(OfferToken(2), 13);
    assert!(fx
        .iter()
        .any(|e| matches!(e, CallEffect::Notice(CallNotice::LegFailed { .. }))));
    call.consult(&a, &contact("c"), OfferToken(3), 14).unwrap();
    call.leg_answered(&LegId::new("c1~3"), 15);
    call.cancel_consult(&a, 16).unwrap();
    let fx = call.hang_up(&a, 20).unwrap();
    assert!(fx
        .iter()
        .any(|e| matches!(e, CallEffect::Ended(TerminalReason::Completed))));
    assert_eq!(
        call.update_seq, 6,
        "initiated, failed, initiated, leg started, leg ended, ended"
    );
}

/// Attached data: at most 10 variables, keys cut to 15 characters.
#[test]
fn attached_data_limits() {
    let vars = (0..12)
        .map(|i| AttachedVar {
            key: format!("a_very_long_key_name_{i}"),
            value: "v".into(),
        })
        .collect();
    let out = normalize_attached(vars);
    assert_eq!(out.len(), 10);
    assert!(out.iter().all(|v| v.key.chars().count() == 15));
}
