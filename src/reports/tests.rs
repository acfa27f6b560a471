//! The report figures on a scripted day with known answers: a contact
//! center on the simulated PBX with paused time, six calls whose every
//! wait, talk and outcome is scripted, the history the actors persisted
//! read back from the in-memory state store, and every figure checked
//! against the value worked out by hand.

use std::rc::Rc;

use actix::Actor as _;
use std::time::Duration;

use edgecc_actors::cdr::agent::AgentInterval;
use edgecc_actors::cdr::CallDetailRecord;
use edgecc_actors::config::{AgentConfig, QueueConfig, ReasonCodeConfig, Strategy};
use edgecc_actors::durable::StateRecord;
use edgecc_actors::registry::{AgentCommand, AgentRequest, ContactCenter};
use edgecc_actors::sim::{
    Caller, ConnectEvents, PhoneAction, PlaceCall, ScriptPhone, SimPbx, SimPbxPort,
};
use edgecc_actors::{AgentId, ContactCenterConfig, MemoryOutbox, MemoryState, TokioClock};

use super::config::ReportSettings;
use super::figures::{agent_rows, queue_rows, ReportRange};
use super::time::{parse_time, Interval};

/// 2026-12-06T00:00:00Z: the scripted day starts on an interval boundary.
const DAY_START_MS: u64 = 1_796_515_200_000;

fn config() -> ContactCenterConfig {
    let mut cfg = ContactCenterConfig {
        site_id: "t".into(),
        ..Default::default()
    };
    cfg.timers.offer_timeout_ms = 10_000;
    cfg.timers.reject_delay_ms = 0;
    cfg.reason_codes.push(ReasonCodeConfig {
        code: "break".into(),
        label: "Break".into(),
    });
    cfg.queues.push(QueueConfig {
        id: "sales".into(),
        name: "Sales".into(),
        dnis: vec!["800".into()],
        strategy: Strategy::LongestIdle,
        priority: 0,
        max_wait_ms: 120_000,
        wrap_up_ms: 10_000,
        final_destination: Default::default(),
        required_skills: vec![],
        routing: Default::default(),
        sticky: Default::default(),
        limits: Default::default(),
        announcements: Default::default(),
        callback: Default::default(),
        wrap_up_codes: Default::default(),
    });
    cfg.agents.push(AgentConfig {
        id: "a1".into(),
        name: "a1".into(),
        extension: "101".into(),
        endpoint: None,
        skills: vec![],
        queues: vec!["sales".into()],
        auto_accept: false,
        wrap_up_ms: None,
        reject_delay_ms: None,
    });
    cfg
}

fn caller(ani: &str, patience_ms: Option<u64>, talk_ms: Option<u64>) -> Caller {
    Caller {
        patience_ms,
        talk_ms,
        ..Caller::new(ani, "800")
    }
}

/// Goal: every queue and agent figure of a scripted day equals the value
/// worked out by hand (see the comments). Method: one agent, six calls on
/// the simulated PBX under paused time: answered in 5 s, answered after
/// 70 s behind the first, a short abandon (3 s), a long abandon (20 s),
/// one refused by the phone then answered, one timed out while the agent is on a
/// break; the history is what the actors persisted.
#[actix_rt::test]
async fn scripted_day_has_the_known_figures() {
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let at = |s: u64| tokio::time::sleep_until(start + Duration::from_secs(s));
    let sim = SimPbx::new(7).start();
    let state = MemoryState::new();
    let registry = ContactCenter::start_with_state(
        config(),
        Rc::new(SimPbxPort { addr: sim.clone() }),
        Rc::new(MemoryOutbox::new()),
        Rc::new(state.clone()),
        TokioClock::shared(DAY_START_MS),
    )
    .expect("config");
    sim.send(ConnectEvents(registry.clone().recipient()))
        .await
        .unwrap();
    // a1: answers calls 1 and 2 after 5 s, its phone refuses call 5 after 1 s, then
    // answers it after 2 s.
    sim.send(ScriptPhone {
        endpoint: "sim/101".into(),
        actions: vec![
            PhoneAction::Answer { after_ms: 5_000 },
            PhoneAction::Answer { after_ms: 5_000 },
            PhoneAction::Reject { after_ms: 1_000 },
            PhoneAction::Answer { after_ms: 2_000 },
        ],
    })
    .await
    .unwrap();
    let agent = |command| AgentRequest {
        agent: AgentId::new("a1"),
        command,
    };
    registry
        .send(agent(AgentCommand::Login))
        .await
        .unwrap()
        .unwrap();
    registry
        .send(agent(AgentCommand::Ready))
        .await
        .unwrap()
        .unwrap();
    let place = |c: Caller| sim.send(PlaceCall(c));
    // 0 s: call 1, answered at 5 s, talks 60 s (ends 65 s), wrap-up to 75 s.
    place(caller("+1001", None, Some(60_000))).await.unwrap();
    // 10 s: call 2 waits for a1: offered at 75 s, answered at 80 s (wait
    // 70 s), talks 30 s (ends 110 s), wrap-up to 120 s.
    at(10).await;
    place(caller("+1002", None, Some(30_000))).await.unwrap();
    // 20 s: call 3 gives up after 3 s: a short abandon.
    at(20).await;
    place(caller("+1003", Some(3_000), None)).await.unwrap();
    // 30 s: call 4 gives up after 20 s.
    at(30).await;
    place(caller("+1004", Some(20_000), None)).await.unwrap();
    // 200 s: call 5: refused at 201 s, offered again, answered at 203 s
    // (wait 3 s), talks 20 s (ends 223 s), wrap-up to 233 s.
    at(200).await;
    place(caller("+1005", None, Some(20_000))).await.unwrap();
    // 240 s: a1 takes a break; 300 s: call 6 times out at 420 s.
    at(240).await;
    let brk = AgentCommand::NotReady {
        reason_code: "break".into(),
    };
    registry.send(agent(brk)).await.unwrap().unwrap();
    at(300).await;
    place(caller("+1006", None, None)).await.unwrap();
    // 900 s: back from the break (the break's interval is written now).
    at(900).await;
    registry
        .send(agent(AgentCommand::Ready))
        .await
        .unwrap()
        .unwrap();
    at(901).await;

    let mut calls: Vec<CallDetailRecord> = Vec::new();
    let mut intervals: Vec<AgentInterval> = Vec::new();
    for r in state.history() {
        match r {
            StateRecord::CallDetail(c) => calls.push(*c),
            StateRecord::AgentInterval(i) => intervals.push(i),
            _ => {}
        }
    }
    assert_eq!(calls.len(), 6, "one record per call: {calls:#?}");
    let settings = ReportSettings {
        queues: vec!["sales".into()],
        agents: vec!["a1".into()],
        ..Default::default()
    };
    let from = parse_time("2026-12-06T00:00:00Z").unwrap();
    let to = parse_time("2026-12-06T00:30:00Z").unwrap();
    let range = ReportRange::new(from, to, Interval::Min15).unwrap();

    let rows = queue_rows(&calls, &range, &settings);
    assert_eq!(rows.len(), 2, "two 15-minute rows");
    let q = &rows[0];
    assert_eq!(q.start, "2026-12-06T00:00:00Z");
    assert_eq!(
        (q.offered, q.answered, q.answered_within_threshold),
        (6, 3, 2),
        "calls 1 (5 s) and 5 (3 s) within 20 s, call 2 (70 s) not: {q:#?}"
    );
    assert_eq!((q.abandoned, q.short_abandoned), (2, 1), "{q:#?}");
    assert_eq!(
        (q.timed_out, q.overflowed, q.failed, q.waiting),
        (1, 0, 0, 0)
    );
    // 2 / (6 - 1 short abandon).
    assert_eq!(q.service_level_pct, Some(40.0));
    assert_eq!(q.service_level_threshold_ms, 20_000);
    // The simulated PBX takes 1 ms per hop (a call placed, a phone's
    // answer reported, a hang-up), so each scripted time carries the few
    // ms of hops its path took (call 1: queued at 0, answered at 5.001 s).
    // Waits: 5.001, 70.003 (10.001 to 80.004), 3.001, 20.001, 3.002
    // (200.001 to 203.003), 120.001 s.
    // ASA: (5001 + 70003 + 3002) / 3.
    assert_eq!(q.asa_ms, Some(26_002));
    // Mean of the six waits: 221009 / 6; p90 (rank 6 of 6) and max 120.001 s.
    assert_eq!(q.wait_avg_ms, Some(36_834));
    assert_eq!(q.wait_p90_ms, Some(120_001));
    assert_eq!(q.wait_max_ms, Some(120_001));
    // Talk (hold included) plus wrap-up: (60001 + 10000) + (30001 +
    // 10000) + (20001 + 10000) over 3 answered.
    assert_eq!(q.aht_ms, Some(46_667));
    assert_eq!(q.no_answers, 1, "call 5's refusal");
    assert_eq!(rows[1].offered, 0, "nothing in the second interval");
    assert_eq!(rows[1].service_level_pct, None);

    let rows = agent_rows(&calls, &intervals, &range, &settings);
    let a = &rows[0];
    assert_eq!((a.offered, a.answered, a.no_answers), (4, 3, 1), "{a:#?}");
    assert_eq!((a.talk_ms, a.wrap_up_ms), (110_003, 30_000));
    assert_eq!(a.aht_ms, Some(46_667));
    // Reserved 0-5.001, 75.003-80.004, 200.001-201.002, 201.002-203.003;
    // talking 5.001-65.002, 80.004-110.005, 203.003-223.004; wrap-up
    // 65.002-75.003, 110.005-120.006, 223.004-233.005; Ready
    // 120.006-200.001, 233.005-240.001.
    assert_eq!(a.reserved_ms, 13_004, "{a:#?}");
    assert_eq!(a.talking_ms, 110_003);
    assert_eq!(a.wrap_up_state_ms, 30_003);
    assert_eq!(a.ready_ms, 86_991);
    // The break (240.001-900.001 s) is split at the interval's end.
    assert_eq!(a.not_ready_ms.get("break"), Some(&659_999));
    assert_eq!(
        rows[1].not_ready_ms.get("break"),
        Some(&1),
        "{:#?}",
        rows[1]
    );
    assert_eq!(rows[1].occupancy_pct, None, "never available after 900 s");
    // 153010 busy of 240001 available.
    assert_eq!(a.occupancy_pct, Some(63.75));

    // The what-if traffic file of the day: one line per call, times from
    // the start, the abandoners' patience, the others' talk.
    let t = super::traffic::lines(&calls, DAY_START_MS, DAY_START_MS + 86_400_000);
    assert_eq!(t.len(), 6);
    assert_eq!(t[1]["at_ms"], 10_001);
    assert_eq!(
        (t[0]["talk_ms"].as_u64(), t[0].get("patience_ms")),
        (Some(60_001), None)
    );
    assert_eq!(t[2]["patience_ms"], 3_001, "call 3 gave up after 3 s");
    // Unanswered: the mean talk of the answered (60001 + 30001 + 20001) / 3.
    assert_eq!(t[2]["talk_ms"], 36_667);
    assert_eq!(t[2]["ani"], "+1003");
    // Each line is one `edgecc simulate` reads back as written.
    for line in &t {
        let text = line.to_string();
        let call = crate::simulate::traffic::parse_traffic_line(&text).expect("simulate reads it");
        assert_eq!(serde_json::to_value(&call).ok().as_ref(), Some(line));
    }
}
