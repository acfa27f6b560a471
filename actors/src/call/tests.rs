//! Unit tests of the pure call state machine (no runtime).

use super::*;
use crate::agent::{OfferOutcome, OfferPurpose};
use crate::ids::QueueId;
use crate::ports::{HangupCause, RecordKind};

fn rules(max_wait_ms: u64) -> QueueRules {
    QueueRules::plain("q", max_wait_ms, 30)
}

fn contact(a: &str) -> AgentContact {
    AgentContact::sim(a)
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

fn records(fx: &[CallEffect]) -> Vec<RecordKind> {
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
        vec![RecordKind::InteractionCreate, RecordKind::PhoneLogCreate]
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

/// Reject and RONA go back to the queue at the call's first place time,
/// noting the agent as tried (offered again after the others); a late
/// answer loses.
#[test]
fn reject_and_rona_redirect() {
    let mut call = queued_call();
    let placed = call.queued_since_ms.expect("queued");
    let q = OfferPurpose::Queue(QueueId::new("q"));
    call.offer(&contact("a"), OfferToken(1), q.clone(), false, 1);
    let fx = call.reject(&AgentId::new("a"), OfferToken(1), 2).unwrap();
    assert!(fx
        .iter()
        .any(|e| matches!(e, CallEffect::Enqueue { tried, since_ms, .. }
        if tried == &vec![AgentId::new("a")] && *since_ms == placed)));
    // The rejecting agent may be offered the call again.
    let fx = call.offer(&contact("a"), OfferToken(2), q.clone(), false, 3);
    assert!(matches!(call.phase, CallPhase::Offering { .. }), "{fx:?}");
    call.reject(&AgentId::new("a"), OfferToken(2), 3).unwrap();
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
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
    assert_eq!(call.phase, CallPhase::Ended(TerminalReason::TimedOut));
    let mut call = queued_call();
    let fx = call.leg_hung_up(&LegId::new("c1"), HangupCause::Normal, 5);
    assert_eq!(
        records(&fx),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
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

fn connected_call() -> Call {
    let mut call = queued_call();
    let q = OfferPurpose::Queue(QueueId::new("q"));
    call.offer(&contact("a"), OfferToken(1), q, false, 1);
    call.leg_answered(&LegId::new("c1~1"), 2);
    assert_eq!(call.phase.name(), "connected");
    call
}

fn hangups(fx: &[CallEffect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            CallEffect::Pbx(PbxCommand::Hangup { leg_id, .. }) => Some(leg_id.0.clone()),
            _ => None,
        })
        .collect()
}

/// Monitor snoops the agent's leg; switching to barge hangs the snoop up
/// first and joins the main bridge; the call's end hangs the supervisor up.
#[test]
fn supervision_follows_the_call() {
    use supervision::SuperviseMode;
    let mut call = connected_call();
    let a = AgentId::new("a");
    let fx = call
        .supervise(
            "sup",
            "sim/sup",
            &a,
            SuperviseMode::Monitor,
            OfferToken(7),
            3,
        )
        .unwrap();
    assert_eq!(
        fx,
        vec![CallEffect::Pbx(PbxCommand::Snoop {
            snoop_leg_id: LegId::new("c1~7"),
            leg_id: LegId::new("c1~1"),
            whisper: false,
            endpoint: "sim/sup".into(),
        })]
    );
    let fx = call
        .supervise("sup", "sim/sup", &a, SuperviseMode::Barge, OfferToken(8), 4)
        .unwrap();
    assert_eq!(hangups(&fx), vec!["c1~7"]);
    assert!(matches!(
        fx.last(),
        Some(CallEffect::Pbx(PbxCommand::Barge { leg_id, bridge_id, .. }))
            if leg_id.0 == "c1~8" && bridge_id == &BridgeId::main(&call.id)
    ));
    assert_eq!(call.supervisions.len(), 1);
    // The caller hangs up: the supervisor's leg goes with the call.
    let fx = call.leg_hung_up(&LegId::new("c1"), HangupCause::Normal, 5);
    assert!(hangups(&fx).contains(&"c1~8".to_string()));
    assert!(call.supervisions.is_empty());
    assert!(call.is_ended());
}

/// Supervising needs a connected call with that agent on it; leaving without
/// supervising is an error; a supervisor putting its phone down is noticed;
/// the watched agent leaving hangs its snoop up.
#[test]
fn supervision_errors_and_leg_loss() {
    use supervision::SuperviseMode;
    let mut queued = queued_call();
    let a = AgentId::new("a");
    assert!(matches!(
        queued.supervise("sup", "e", &a, SuperviseMode::Monitor, OfferToken(9), 1),
        Err(CallError::WrongPhase { .. })
    ));
    let mut call = connected_call();
    assert!(matches!(
        call.supervise(
            "sup",
            "e",
            &AgentId::new("zz"),
            SuperviseMode::Whisper,
            OfferToken(9),
            3
        ),
        Err(CallError::NotAParty { .. })
    ));
    assert!(matches!(
        call.end_supervision("sup"),
        Err(CallError::NotSupervising { .. })
    ));
    call.supervise("sup", "e", &a, SuperviseMode::Whisper, OfferToken(9), 3)
        .unwrap();
    assert!(call
        .leg_hung_up(&LegId::new("c1~9"), HangupCause::Normal, 4)
        .is_empty());
    assert!(call.supervisions.is_empty());
    assert!(!call.is_ended());
    call.supervise("sup", "e", &a, SuperviseMode::Monitor, OfferToken(10), 5)
        .unwrap();
    // The agent hangs up: its snoop goes too.
    let fx = call.hang_up(&a, 6).unwrap();
    assert!(hangups(&fx).contains(&"c1~10".to_string()));
    assert!(call.supervisions.is_empty());
}

/// Goal: a call persisted before skills and escalation (issue 18) reads
/// back, and what it brings to its queue comes from what it had. Method:
/// a queued call asking `skills = "en:2"` joins at 500 ms and is missed at
/// 900 ms (the redirect keeps the stint's start); its JSON without the new
/// fields (issue 18's stint start and place time) reads back with the
/// queued phase's start standing in.
#[test]
fn needs_survive_redirects_and_old_snapshots() {
    let (mut call, _) = Call::inbound(
        "s",
        LegId::new("c1"),
        "+1".into(),
        "100".into(),
        vec![crate::ports::AttachedVar {
            key: "skills".into(),
            value: "en:2".into(),
        }],
        0,
        10,
    );
    call.enqueue(rules(10_000), 500).unwrap();
    let q = OfferPurpose::Queue(QueueId::new("q"));
    call.offer(&contact("a"), OfferToken(1), q, false, 600);
    call.reject(&AgentId::new("a"), OfferToken(1), 900).unwrap();
    let needs = call.needs(2_000);
    assert_eq!(needs.since_ms, 500, "the redirect keeps the stint's start");
    assert_eq!(needs.skills[0].skill, "en");
    assert_eq!(needs.skills[0].level_min, 2);

    let mut json = serde_json::to_value(&call).unwrap();
    let obj = json.as_object_mut().unwrap();
    obj.remove("own_priority");
    obj.remove("stint_since_ms");
    obj.remove("queued_since_ms");
    obj["rules"]
        .as_object_mut()
        .unwrap()
        .remove("keep_priority_on_overflow");
    let old: Call = serde_json::from_value(json).unwrap();
    assert_eq!(old.stint_since_ms, None);
    assert_eq!(old.queued_since_ms, None);
    // The queued phase's start stands in (the redirect kept its place
    // time, the first arrival).
    assert_eq!(old.needs(2_000).since_ms, 500);
}

/// Goal: the stored call record keeps its format whatever holds the queue's
/// rules in memory (a record written by an older build reads back the same,
/// and is written byte for byte as before). Method: a queued call with
/// announcements and a callback digit, offered once, encoded as the state
/// store encodes it (JSON); compared with the record written by the build
/// before the rules were shared, decoded from that text and encoded again;
/// a clone of the call (what each persisted step holds) shares the rules.
#[test]
fn call_record_format_is_unchanged() {
    let mut rules = rules(1000);
    rules.callback.digit = Some("1".into());
    rules.announce.interval_ms = 30_000;
    let (mut call, _) = Call::inbound(
        "s",
        LegId::new("c1"),
        "+1".into(),
        "100".into(),
        vec![],
        0,
        10,
    );
    call.enqueue(rules, 0).unwrap();
    call.offer(
        &contact("a"),
        OfferToken(1),
        OfferPurpose::Queue(QueueId::new("q")),
        false,
        1,
    );
    let written = serde_json::to_string(&call).unwrap();
    assert_eq!(written, STORED_CALL);
    // The copy persisted at each step shares the rules.
    let copy = call.clone();
    let (a, b) = (copy.rules.as_ref().unwrap(), call.rules.as_ref().unwrap());
    assert!(
        std::ptr::eq(&**a, &**b),
        "a copy of the call shares its rules"
    );
    let read: Call = serde_json::from_str(STORED_CALL).unwrap();
    assert_eq!(read, call);
    assert_eq!(serde_json::to_string(&read).unwrap(), STORED_CALL);
}

/// A call record as written at commit 4a91454 (queue rules held by value).
const STORED_CALL: &str = r#"{"id":"c1","site":"s","direction":"inbound","ani":"+1","dnis":"100","attached":[],"caller_leg":"c1","arrived_ms":0,"phase":{"phase":"offering","offers":[{"agent":"a","token":1,"leg":"c1~1","deadline_ms":11,"purpose":{"queue":"q"},"extension":"xa","accepted_ms":null}],"ring_all":false},"rules":{"queue":"q","priority":0,"max_wait_ms":1000,"wrap_up_ms":30,"final_destination":{"kind":"announcement","prompt":"queue-closed"},"ring_all":false,"announce":{"interval_ms":30000,"first_after_ms":null,"position":true,"wait_estimate":true},"callback":{"digit":"1","on_hangup":false,"reentry_window_ms":0,"dial_timeout_ms":30000,"confirm_prompt":"queue-callback-confirm"},"keep_priority_on_overflow":false,"overflow":{"rules":[],"stay_ms":0,"utc_offset":null}},"priority":0,"tried":[],"queued_since_ms":0,"interaction_created":false,"phone_log_created":false,"update_seq":0,"answered_ms":null,"max_wait_elapsed":false,"stint":1,"queue_hops":0,"moh":true,"offer_timeout_ms":10,"supervisions":[],"max_wait_deadline_ms":1000,"callback":null,"prompts_played":0,"own_priority":0,"stint_since_ms":0,"routing":{"offers_total":0,"offers":[]},"overflow_slot":null,"overflow_stay_until_ms":null,"trail":{"queues":[],"offers":[],"offers_dropped":0,"parties":[],"hold_since_ms":null,"hold_ms":0,"holds":0,"transfers":0,"consults":0,"conferences":0,"parties_now":0,"ended_ms":null,"terminal":null,"explanation":null}}"#;
