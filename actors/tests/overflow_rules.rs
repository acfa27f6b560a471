//! Overflow rules with caps and hours (`[queues.routing.overflow]`): a call
//! that waited out its queue's max wait goes to the first rule within its
//! hours and under its cap (another queue, keeping its place time; or a
//! spare number through the PBX); when none takes it, it stays in line for
//! `stay_ms`, tried again every few seconds, then goes to the final
//! destination. Actors are driven through the simulated PBX with tokio's
//! paused clock (issue 18).

mod util;

use edgecc_actors::config::overflow::{OverflowConfig, OverflowHours, OverflowRule, Weekday};
use edgecc_actors::registry::ApplyConfig;
use edgecc_actors::sim::{Caller, GetSimStats};
use edgecc_actors::*;
use util::*;

/// The spare number of the tests.
const SPARE: &str = "+15550009999";

/// Queue `q` (DNIS 800, max wait 10 s, nobody logged in) with `rules`, and
/// queue `spare` (DNIS 801) its rules may send calls to.
fn overflowing(rules: Vec<OverflowRule>, stay_ms: u64) -> ContactCenterConfig {
    let mut cfg = basic(0);
    cfg.queues[0].max_wait_ms = 10_000;
    cfg.queues[0].routing.overflow = OverflowConfig {
        rules,
        stay_ms,
        utc_offset: None,
    };
    let mut spare = queue("spare", "801");
    spare.max_wait_ms = 600_000;
    cfg.queues.push(spare);
    cfg
}

fn to_queue(queue: &str, max_calls: Option<u32>) -> OverflowRule {
    OverflowRule {
        queue: Some(queue.into()),
        max_calls,
        ..OverflowRule::default()
    }
}

fn to_number(number: &str, max_calls: Option<u32>) -> OverflowRule {
    OverflowRule {
        number: Some(number.into()),
        max_calls,
        busy_ms: Some(120_000),
        ..OverflowRule::default()
    }
}

fn caller_from(ani: &str, dnis: &str) -> Caller {
    Caller::new(ani, dnis)
}

/// Calls waiting in queue `id`, in routing order.
async fn waiting(h: &Harness, id: &str) -> Vec<CallId> {
    h.snapshot()
        .await
        .queues
        .into_iter()
        .find(|q| q.queue.as_str() == id)
        .map(|q| q.waiting)
        .unwrap_or_default()
}

async fn ended(h: &Harness, reason: &str) -> u64 {
    h.snapshot().await.ended.get(reason).copied().unwrap_or(0)
}

/// Goal: each rule takes calls up to its cap, in order; a call no rule
/// takes stays in line and takes a slot that frees; past `stay_ms` it goes
/// to the final destination. Method: four callers wait out the 10 s max
/// wait of `q`, whose rules are `spare` (1 call) then a spare number (1
/// call); c1 hangs up in `spare` at 14 s.
#[actix_rt::test]
async fn caps_take_calls_in_order_and_the_rest_stay() {
    tokio::time::pause();
    let cfg = overflowing(
        vec![to_queue("spare", Some(1)), to_number(SPARE, Some(1))],
        20_000,
    );
    let h = start(cfg, 1);
    let mut calls = Vec::new();
    for i in 1..=4 {
        calls.push(h.call(caller_from(&format!("+155500000{i}"), "800")).await);
    }
    let [c1, c2, c3, c4] = [0, 1, 2, 3].map(|i| calls[i].clone());
    advance(10_500).await;
    assert_eq!(
        waiting(&h, "spare").await,
        vec![c1.clone()],
        "rule 1 takes one call"
    );
    assert_eq!(
        h.sim.send(GetSimStats).await.unwrap().redirects,
        1,
        "rule 2 one"
    );
    assert_eq!(ended(&h, "overflowed").await, 1);
    assert_eq!(
        waiting(&h, "q").await,
        vec![c3.clone(), c4.clone()],
        "the rest stay in line, in their order"
    );
    assert!(h.outbox.records_of(&c3).is_empty(), "a stay writes nothing");
    let _ = c2;
    // c1's caller hangs up in spare: its slot frees; c3 takes it at the
    // next try (every 5 s), c4 stays.
    advance(3_500).await;
    h.hang_up(c1.as_str()).await;
    advance(5_000).await;
    assert_eq!(waiting(&h, "spare").await, vec![c3.clone()]);
    assert_eq!(waiting(&h, "q").await, vec![c4.clone()]);
    // c4's stay ends at 30 s: the final destination (an announcement).
    advance(10_000).await;
    assert_eq!(
        waiting(&h, "q").await,
        vec![c4.clone()],
        "still within stay_ms"
    );
    advance(2_000).await;
    assert!(waiting(&h, "q").await.is_empty());
    assert_eq!(ended(&h, "timed_out").await, 1);
    assert_eq!(
        h.kinds(&c4),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
    assert_eq!(
        h.sim.send(GetSimStats).await.unwrap().redirects,
        1,
        "the number stayed full"
    );
}

/// Goal: a rule is used only within its hours, read in the overflow's UTC
/// offset; outside them the next rule (here: none, so the final
/// destination) applies. Method: the test clock starts on a Tuesday at
/// 22:13 UTC; queues `q` and `q2` send to the spare number on weekdays
/// 08:00-18:00, `q` in UTC (closed), `q2` at +10:00 (Wednesday 08:13, open).
#[actix_rt::test]
async fn hours_in_the_configured_offset() {
    tokio::time::pause();
    let office = OverflowRule {
        hours: vec![OverflowHours {
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            from: "08:00".into(),
            to: "18:00".into(),
        }],
        ..to_number(SPARE, None)
    };
    let mut cfg = overflowing(vec![office.clone()], 0);
    let mut q2 = cfg.queues[0].clone();
    q2.id = "q2".into();
    q2.dnis = vec!["802".into()];
    q2.routing.overflow.utc_offset = Some("+10:00".into());
    cfg.queues.push(q2);
    let h = start(cfg, 1);
    let closed = h.call(caller_from("+1555000001", "800")).await;
    let open = h.call(caller_from("+1555000002", "802")).await;
    advance(10_500).await;
    assert_eq!(h.sim.send(GetSimStats).await.unwrap().redirects, 1);
    assert_eq!(ended(&h, "overflowed").await, 1);
    assert_eq!(ended(&h, "timed_out").await, 1);
    assert_eq!(
        h.kinds(&closed),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate],
        "outside the hours: the final destination"
    );
    assert!(
        !h.kinds(&open).contains(&RecordKind::WorkItemCreate),
        "a call sent to a number gets no work item"
    );
}

/// Goal: a reload's caps and hours apply to calls already waiting (the
/// book's counts are kept). Method: the cap of rule `spare` is 1; c2
/// stays in line behind it; a reload raises the cap to 2 and c2 moves at
/// its next try.
#[actix_rt::test]
async fn a_reload_changes_the_cap_for_waiting_calls() {
    tokio::time::pause();
    let cfg = overflowing(vec![to_queue("spare", Some(1))], 60_000);
    let h = start(cfg.clone(), 1);
    let c1 = h.call(caller_from("+1555000001", "800")).await;
    let c2 = h.call(caller_from("+1555000002", "800")).await;
    advance(10_500).await;
    assert_eq!(waiting(&h, "spare").await, vec![c1.clone()]);
    assert_eq!(waiting(&h, "q").await, vec![c2.clone()]);
    advance(10_000).await;
    assert_eq!(waiting(&h, "q").await, vec![c2.clone()], "the cap holds");
    let mut wider = cfg;
    wider.queues[0].routing.overflow.rules[0].max_calls = Some(2);
    h.registry.send(ApplyConfig(wider)).await.unwrap().unwrap();
    advance(5_000).await;
    assert_eq!(
        waiting(&h, "spare").await,
        vec![c1.clone(), c2.clone()],
        "c2 took the new slot, behind c1 (which arrived first)"
    );
    assert!(waiting(&h, "q").await.is_empty());
}

/// Goal: a call a rule moved to a queue still counts against the cap after
/// a restart of edgecc. Method: c1 moves to `spare` (cap 1), edgecc
/// restarts, c2 waits out its max wait and must not move there.
#[actix_rt::test]
async fn a_queue_slot_is_held_across_a_restart() {
    tokio::time::pause();
    let cfg = overflowing(vec![to_queue("spare", Some(1))], 60_000);
    let h = start(cfg, 1);
    let c1 = h.call(caller_from("+1555000001", "800")).await;
    advance(10_500).await;
    assert_eq!(waiting(&h, "spare").await, vec![c1.clone()]);
    let h = h.restart(1_000).await;
    let c2 = h.call(caller_from("+1555000002", "800")).await;
    advance(11_000).await;
    assert_eq!(waiting(&h, "spare").await, vec![c1.clone()]);
    assert_eq!(
        waiting(&h, "q").await,
        vec![c2.clone()],
        "spare is full: c2 stays"
    );
}

/// Goal: a caller who left the line keeping the place (a callback entry)
/// is never sent to a number (nobody is on the line to send); the next
/// rule, a queue, takes the entry with its place. Method: c1 presses the
/// callback digit at 2 s; at its 10 s max wait the rules are the spare
/// number, then queue `spare`.
#[actix_rt::test]
async fn a_kept_place_skips_number_rules() {
    tokio::time::pause();
    let mut cfg = overflowing(vec![to_number(SPARE, None), to_queue("spare", None)], 0);
    cfg.queues[0].callback = edgecc_actors::config::CallbackConfig {
        digit: Some("1".into()),
        ..Default::default()
    };
    let h = start(cfg, 1);
    let c1 = h.call(caller_from("+1555000001", "800")).await;
    advance(2_000).await;
    h.sim
        .send(edgecc_actors::sim::PressDigit {
            leg_id: LegId::new(c1.as_str()),
            digit: '1',
        })
        .await
        .unwrap();
    advance(8_500).await;
    assert_eq!(h.sim.send(GetSimStats).await.unwrap().redirects, 0);
    assert_eq!(waiting(&h, "spare").await, vec![c1.clone()]);
    assert_eq!(ended(&h, "failed").await, 0);
}
