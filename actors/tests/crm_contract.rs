//! The CRM contract, pinned: scripted calls through the pure [`Call`] machine
//! emit every record shape edgecc writes (each create, each update event, each
//! terminal reason), and the exact records (kind, correlation id, body) must
//! equal `fixtures/crm_records.json`. The fixture was produced by the call
//! machine before its records became typed structs, so a change of key, value
//! type or omission in any body fails here. The CRM adapters in the daemon and
//! its CRM emulator tests read these bodies.
//!
//! To regenerate after a deliberate contract change:
//! `EDGECC_UPDATE_GOLDEN=1 cargo test -p edgecc-actors --test crm_contract`.

use edgecc_actors::agent::OfferPurpose;
use edgecc_actors::call::{AgentContact, Call, CallEffect, QueueRules};
use edgecc_actors::config::FinalDestination;
use edgecc_actors::ports::AttachedVar;
use edgecc_actors::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/crm_records.json"
);

fn rules(queue: &str, dest: FinalDestination) -> QueueRules {
    QueueRules {
        final_destination: dest,
        ..QueueRules::plain(queue, 1_000, 30)
    }
}

fn contact(a: &str) -> AgentContact {
    AgentContact::sim(a)
}

/// Collects the records of every effect batch it is given, in order.
#[derive(Default)]
struct Log(Vec<CrmRecord>);

impl Log {
    fn take(&mut self, fx: Vec<CallEffect>) {
        for e in fx {
            if let CallEffect::Records(r) = e {
                self.0.extend(r);
            }
        }
    }
    fn ok(&mut self, fx: Result<Vec<CallEffect>, edgecc_actors::call::CallError>) {
        self.take(fx.expect("the scripted step fits the call's phase"));
    }
}

fn inbound(id: &str, log: &mut Log) -> Call {
    let attached = vec![
        AttachedVar {
            key: "account".into(),
            value: "A-17".into(),
        },
        AttachedVar {
            key: "lang".into(),
            value: "fr".into(),
        },
    ];
    let (call, fx) = Call::inbound(
        "site",
        LegId::new(id),
        "+15550001".into(),
        "800".into(),
        attached,
        100,
        10,
    );
    log.take(fx);
    call
}

fn q(name: &str) -> OfferPurpose {
    OfferPurpose::Queue(QueueId::new(name))
}

/// Accept (interaction + inbound phone log), hold, resume, mute, unmute, a
/// consult that RONAs, one cancelled after answer, one completed as a
/// transfer, a conference invite that joins and leaves, a consult made a
/// conference, a wrap-up code, the caller's hang-up.
fn connected_controls(log: &mut Log) {
    let mut c = inbound("c1", log);
    let a = AgentId::new("a");
    log.ok(c.enqueue(rules("q", FinalDestination::default()), 110));
    log.take(c.offer(&contact("a"), OfferToken(1), q("q"), false, 120));
    log.take(c.leg_answered(&LegId::new("c1~1"), 130));
    log.ok(c.hold(&a, 140));
    log.ok(c.resume(&a, 150));
    log.ok(c.mute(&a, true, 160));
    log.ok(c.mute(&a, false, 170));
    log.ok(c.consult(&a, &contact("b"), OfferToken(2), 180));
    log.take(c.rona(OfferToken(2), 190));
    log.ok(c.consult(&a, &contact("c"), OfferToken(3), 200));
    log.take(c.leg_answered(&LegId::new("c1~3"), 205));
    log.ok(c.cancel_consult(&a, 210));
    log.ok(c.consult(&a, &contact("d"), OfferToken(4), 220));
    log.take(c.leg_answered(&LegId::new("c1~4"), 225));
    log.ok(c.complete_consult(&a, 230));
    let d = AgentId::new("d");
    log.ok(c.add_to_conference(&d, &contact("e"), OfferToken(5), 240));
    log.take(c.leg_answered(&LegId::new("c1~5"), 245));
    log.take(c.leg_hung_up(&LegId::new("c1~5"), HangupCause::Normal, 250));
    log.ok(c.consult(&d, &contact("f"), OfferToken(6), 260));
    log.take(c.leg_answered(&LegId::new("c1~6"), 265));
    log.ok(c.conference_consult(&d, 270));
    log.take(c.leg_hung_up(&LegId::new("c1"), HangupCause::Normal, 300));
    log.ok(c.wrap_up_code(&d, "sale", 310));
}

/// Blind transfer to an agent who rejects: back to the queue, another agent
/// answers (`agent_connected`), a transfer to a queue that overflows to
/// another queue, then the caller abandons.
fn transfers_and_overflow(log: &mut Log) {
    let mut c = inbound("c2", log);
    let a = AgentId::new("a");
    log.ok(c.enqueue(
        rules("q", FinalDestination::Queue { queue: "q2".into() }),
        110,
    ));
    log.take(c.offer(&contact("a"), OfferToken(1), q("q"), false, 120));
    log.take(c.leg_answered(&LegId::new("c2~1"), 130));
    log.ok(c.transfer_to_agent(&a, &contact("b"), OfferToken(2), 140));
    log.ok(c.reject(&AgentId::new("b"), OfferToken(2), 150));
    log.take(c.offer(&contact("g"), OfferToken(3), q("q"), false, 160));
    // Accepted on the desktop: the call connects when the phone answers.
    log.ok(c.accept(&AgentId::new("g"), OfferToken(3), true, 170));
    log.take(c.leg_answered(&LegId::new("c2~3"), 170));
    log.ok(c.transfer_to_queue(
        &AgentId::new("g"),
        rules("q3", FinalDestination::Queue { queue: "q2".into() }),
        180,
    ));
    log.take(c.max_wait_elapsed(c.stint, 1_200));
    log.take(c.leg_hung_up(&LegId::new("c2"), HangupCause::Normal, 1_300));
}

/// Queue timeouts to an announcement and to an external number; an abandon
/// while queued; a missed direct call; a route failure.
fn unanswered(log: &mut Log) {
    let mut c = inbound("c3", log);
    log.ok(c.enqueue(rules("q", FinalDestination::default()), 110));
    log.take(c.max_wait_elapsed(1, 1_110));
    let mut c = inbound("c4", log);
    log.ok(c.enqueue(
        rules(
            "q",
            FinalDestination::External {
                number: "+4412".into(),
            },
        ),
        110,
    ));
    log.take(c.max_wait_elapsed(1, 1_110));
    let mut c = inbound("c5", log);
    log.ok(c.enqueue(rules("q", FinalDestination::default()), 110));
    log.take(c.leg_hung_up(&LegId::new("c5"), HangupCause::Normal, 500));
    let mut c = inbound("c6", log);
    log.take(c.offer(
        &contact("a"),
        OfferToken(1),
        OfferPurpose::Direct,
        false,
        110,
    ));
    log.take(c.rona(OfferToken(1), 200));
    let mut c = inbound("c7", log);
    log.take(c.unroutable("no-route", 110));
}

/// The PBX loses calls (restart): a queued caller (interaction and work
/// item, reason `pbx_lost`) and a connected one (`ended` with `pbx_lost`).
fn lost_by_the_pbx(log: &mut Log) {
    let mut c = inbound("c10", log);
    log.ok(c.enqueue(rules("q", FinalDestination::default()), 110));
    log.take(c.leg_hung_up(&LegId::new("c10"), HangupCause::PbxLost, 300));
    let mut c = inbound("c11", log);
    log.ok(c.enqueue(rules("q", FinalDestination::default()), 110));
    log.take(c.offer(&contact("a"), OfferToken(1), q("q"), false, 120));
    log.take(c.leg_answered(&LegId::new("c11~1"), 130));
    log.take(c.leg_hung_up(&LegId::new("c11~1"), HangupCause::PbxLost, 400));
}

/// Outbound: the customer answers (outbound phone log), the agent hangs up.
/// A PBX failure on a connected call (`ended` with a failure).
fn outbound_and_failure(log: &mut Log) {
    let (mut c, fx) = Call::outbound(
        "site",
        CallId::new("o1"),
        &contact("a"),
        OfferToken(1),
        "+15559999".into(),
        100,
        10,
    );
    log.take(fx);
    log.take(c.leg_answered(&LegId::new("o1~c"), 150));
    log.ok(c.hang_up(&AgentId::new("a"), 400));
    let mut c = inbound("c8", log);
    log.ok(c.enqueue(rules("q", FinalDestination::default()), 110));
    log.take(c.offer(&contact("a"), OfferToken(1), q("q"), false, 120));
    log.take(c.leg_answered(&LegId::new("c8~1"), 130));
    log.take(c.pbx_failed("bridge refused".into(), 140));
}

/// Consult and conference legs that fail: the consulting agent leaves while
/// the consult rings; a conference invitee rejects; a consult whose originate
/// never left (link down); the consulted agent hangs up after answering; a
/// consult cancelled while ringing.
fn failed_legs(log: &mut Log) {
    let mut c = inbound("c9", log);
    let a = AgentId::new("a");
    log.ok(c.enqueue(rules("q", FinalDestination::default()), 110));
    log.take(c.offer(&contact("a"), OfferToken(1), q("q"), false, 120));
    log.take(c.leg_answered(&LegId::new("c9~1"), 130));
    log.ok(c.add_to_conference(&a, &contact("b"), OfferToken(2), 140));
    log.ok(c.reject(&AgentId::new("b"), OfferToken(2), 150));
    log.ok(c.consult(&a, &contact("c"), OfferToken(3), 160));
    log.take(c.offer_not_sent(&LegId::new("c9~3"), 165));
    log.ok(c.consult(&a, &contact("d"), OfferToken(4), 170));
    log.take(c.leg_answered(&LegId::new("c9~4"), 175));
    log.take(c.leg_hung_up(&LegId::new("c9~4"), HangupCause::Normal, 180));
    log.ok(c.consult(&a, &contact("e"), OfferToken(5), 190));
    log.ok(c.cancel_consult(&a, 192));
    log.ok(c.consult(&a, &contact("h"), OfferToken(6), 195));
    log.ok(c.hang_up(&a, 200));
}

fn all_records() -> Vec<CrmRecord> {
    let mut log = Log::default();
    connected_controls(&mut log);
    transfers_and_overflow(&mut log);
    unanswered(&mut log);
    outbound_and_failure(&mut log);
    failed_legs(&mut log);
    lost_by_the_pbx(&mut log);
    log.0
}

/// Every record, byte for byte (key order included), equals the fixture.
#[test]
fn records_match_the_pinned_contract() {
    let got = serde_json::to_string_pretty(&all_records()).expect("records serialize");
    if std::env::var_os("EDGECC_UPDATE_GOLDEN").is_some() {
        std::fs::write(FIXTURE, format!("{got}\n")).expect("fixture written");
        return;
    }
    let want = std::fs::read_to_string(FIXTURE).expect("fixture present");
    let (got_v, want_v): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&got).expect("json"),
        serde_json::from_str(&want).expect("fixture is json"),
    );
    if let (Some(g), Some(w)) = (got_v.as_array(), want_v.as_array()) {
        for (i, (g, w)) in g.iter().zip(w).enumerate() {
            assert_eq!(g, w, "record {i} differs from the contract");
        }
        assert_eq!(g.len(), w.len(), "number of records differs");
    }
    assert_eq!(got.trim_end(), want.trim_end(), "serialized records differ");
}

/// The fixture covers every update event and every create the machine has,
/// so the test above cannot pass on a contract that lost a shape.
#[test]
fn the_fixture_covers_every_shape() {
    let records = all_records();
    let mut events: Vec<String> = records
        .iter()
        .filter_map(|r| {
            r.body
                .get("event")
                .and_then(|e| e.as_str())
                .map(str::to_owned)
        })
        .collect();
    events.sort();
    events.dedup();
    let want = [
        "agent_connected",
        "conference",
        "conference_add_failed",
        "conference_invite",
        "consult_cancelled",
        "consult_failed",
        "consult_initiated",
        "ended",
        "hold",
        "leg_ended",
        "leg_started",
        "mute",
        "overflow",
        "participant_left",
        "resume",
        "transfer",
        "unmute",
        "wrap_up_code",
    ];
    assert_eq!(events, want);
    for kind in [
        RecordKind::InteractionCreate,
        RecordKind::InteractionUpdate,
        RecordKind::PhoneLogCreate,
        RecordKind::WorkItemCreate,
    ] {
        assert!(records.iter().any(|r| r.kind == kind), "{kind:?} missing");
    }
    let mut terminals: Vec<String> = records
        .iter()
        .filter_map(|r| {
            r.body
                .get("terminal")?
                .get("reason")?
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    terminals.sort();
    terminals.dedup();
    assert_eq!(
        terminals,
        ["abandoned", "completed", "failed", "overflowed", "pbx_lost"]
    );
}
