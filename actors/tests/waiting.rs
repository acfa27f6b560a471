//! Waiting callers: announcements of their place and expected wait,
//! callbacks that keep the place (a digit, a hang-up), the agent connected
//! before the caller is dialled back, and re-entry within a window. Each
//! test drives the actors through the simulated PBX with tokio's paused
//! clock and asserts what the PBX played or dialled, the queue's line and
//! the CRM records (issue 18).

mod util;

use edgecc_actors::agent::AgentState;
use edgecc_actors::config::{AnnounceConfig, CallbackConfig};
use edgecc_actors::sim::{Caller, GetPlayed, GetSimStats, PhoneAction, PressDigit, ScriptCallback};
use edgecc_actors::*;
use util::*;

/// Queue `q` of [`basic`] with announcements every 15 s.
fn announcing() -> ContactCenterConfig {
    let mut cfg = basic(1);
    cfg.queues[0].announcements = AnnounceConfig {
        interval_ms: 15_000,
        ..AnnounceConfig::default()
    };
    cfg
}

/// Queue `q` of [`basic`] with callbacks on digit 1 and `window_ms` of
/// re-entry.
fn with_callback(on_hangup: bool, window_ms: u64) -> ContactCenterConfig {
    let mut cfg = basic(1);
    cfg.queues[0].max_wait_ms = 300_000;
    cfg.queues[0].callback = CallbackConfig {
        digit: Some("1".into()),
        on_hangup,
        reentry_window_ms: window_ms,
        ..CallbackConfig::default()
    };
    cfg
}

/// A caller from `ani` dialling the queue, hanging up `talk_ms` after an
/// agent answers.
fn caller_from(ani: &str, talk_ms: Option<u64>) -> Caller {
    let mut c = Caller::new(ani, "800");
    c.talk_ms = talk_ms;
    c
}

/// The queue's line, in routing order.
async fn line(h: &Harness) -> Vec<CallId> {
    let snap = h
        .registry
        .send(Snapshot { with_queues: true })
        .await
        .unwrap();
    snap.queues[0].waiting.clone()
}

/// What was played to `leg`, as (ms since start, media URIs).
async fn played_to(h: &Harness, leg: &CallId) -> Vec<(u64, Vec<String>)> {
    let played = h.sim.send(GetPlayed).await.unwrap();
    played
        .into_iter()
        .filter(|p| p.leg_id.as_str() == leg.as_str())
        .map(|p| (p.at_ms, p.media))
        .collect()
}

fn uris(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Goal: waiting callers hear their place every interval, and the expected
/// wait once the queue has answered calls to estimate from; a prompt still
/// playing when the caller is offered is stopped. Method: one agent talks
/// to c1 until 15.5 s; c2 and c3 wait; the plays the simulated PBX
/// recorded are compared with what app_queue would say.
#[actix_rt::test]
async fn place_and_wait_announced_at_the_interval() {
    tokio::time::pause();
    let h = start(announcing(), 1);
    h.ready("a1").await;
    let c1 = h.call(caller_from("+1555000001", Some(14_500))).await;
    let c2 = h.call(caller_from("+1555000002", Some(60_000))).await;
    let c3 = h.call(caller_from("+1555000003", None)).await;
    advance(50_000).await;
    assert!(played_to(&h, &c1).await.is_empty(), "c1 never waited");
    // The callers joined a few ms after the start (the agent's Ready first).
    let joined = |t: u64| (15_000..15_100).contains(&t);
    let c2_plays = played_to(&h, &c2).await;
    assert_eq!(c2_plays.len(), 1, "c2 is offered at 15.5 s: {c2_plays:?}");
    assert!(joined(c2_plays[0].0), "{c2_plays:?}");
    assert_eq!(c2_plays[0].1, uris(&["sound:queue-youarenext"]));
    let stats = h.sim.send(GetSimStats).await.unwrap();
    assert_eq!(stats.prompts_stopped, 1, "c2's prompt was cut by its offer");
    let next_with_wait = uris(&[
        "sound:queue-youarenext",
        "sound:queue-holdtime",
        "sound:queue-less-than",
        "number:1",
        "sound:queue-minute",
    ]);
    let c3_plays = played_to(&h, &c3).await;
    let at: Vec<u64> = c3_plays.iter().map(|p| p.0).collect();
    assert_eq!(at.len(), 3, "{c3_plays:?}");
    assert!(joined(at[0]), "{at:?}");
    // Every interval, within the timers' millisecond rounding.
    for d in [at[1] - at[0], at[2] - at[1]] {
        assert!((15_000..=15_002).contains(&d), "{at:?}");
    }
    let heard: Vec<Vec<String>> = c3_plays.into_iter().map(|p| p.1).collect();
    assert_eq!(
        heard,
        vec![
            uris(&[
                "sound:queue-thereare",
                "number:2",
                "sound:queue-callswaiting"
            ]),
            next_with_wait.clone(),
            next_with_wait,
        ],
        "c3: second at first; next once c2 left, with 15.5 s per departure"
    );
}

/// Goal: the callback digit turns a waiting caller into a callback entry
/// that keeps its place; when an agent takes it, the agent is connected
/// first and the caller dialled after; the call then has its one
/// interaction and phone log. Method: a1 talks to c1; c2 and c3 wait; c2
/// presses 1; when a1 is free it is offered c2, not c3.
#[actix_rt::test]
async fn digit_keeps_the_place_and_agent_is_connected_first() {
    tokio::time::pause();
    let h = start(with_callback(false, 0), 1);
    h.ready("a1").await;
    let c1 = h.call(caller_from("+1555000001", Some(20_000))).await;
    let c2 = h.call(caller_from("+1555000002", None)).await;
    let c3 = h.call(caller_from("+1555000003", None)).await;
    advance(5_000).await;
    let pressed = h
        .sim
        .send(PressDigit {
            leg_id: LegId::new(c2.as_str()),
            digit: '1',
        })
        .await
        .unwrap();
    assert!(pressed);
    advance(100).await;
    assert_eq!(
        played_to(&h, &c2).await.last().map(|p| p.1.clone()),
        Some(uris(&["sound:queue-callback-confirm"]))
    );
    assert!(h.leg(c2.as_str()).await.is_none(), "the caller was hung up");
    assert_eq!(
        line(&h).await,
        vec![c2.clone(), c3.clone()],
        "c2 keeps its place"
    );
    assert!(h.outbox.records_of(&c2).is_empty());
    // c1 ends at 21 s: a1 is offered the callback, answers at 22 s.
    advance(16_000 + 1_000).await;
    settle().await;
    assert!(
        matches!(h.state("a1").await, AgentState::Talking { call, .. } if call == c2),
        "a1 is connected to c2 first: {:?}",
        h.state("a1").await
    );
    let customer = format!("{c2}~c");
    let leg = h.leg(&customer).await.expect("the caller is being dialled");
    assert!(!leg.up);
    assert_eq!(h.sim.send(GetSimStats).await.unwrap().callbacks_dialled, 1);
    assert!(
        h.outbox.records_of(&c2).is_empty(),
        "nothing before the caller answers"
    );
    assert_eq!(line(&h).await, vec![c3.clone()]);
    // The caller answers 1 s later: bridged with a1, answered once.
    advance(1_100).await;
    let leg = h.leg(&customer).await.unwrap();
    assert!(leg.up && leg.bridge.is_some());
    assert_eq!(
        h.kinds(&c2),
        vec![RecordKind::InteractionCreate, RecordKind::PhoneLogCreate]
    );
    assert!(h.outbox.records_of(&c1).len() >= 2);
}

/// Goal: a callback that does not reach the caller writes the interaction
/// and a callback work item (reason `callback_failed`) and frees the
/// agent. Method: the caller's number is busy when dialled back.
#[actix_rt::test]
async fn unanswered_callback_writes_a_work_item() {
    tokio::time::pause();
    let h = start(with_callback(true, 0), 1);
    h.ready("a1").await;
    h.call(caller_from("+1555000001", Some(10_000))).await;
    let c2 = h.call(caller_from("+1555000002", None)).await;
    h.sim
        .send(ScriptCallback {
            number: "+1555000002".into(),
            actions: vec![PhoneAction::Busy { after_ms: 2_000 }],
        })
        .await
        .unwrap();
    advance(2_000).await;
    // A hang-up in a queue that keeps callbacks: the place is kept.
    h.hang_up(c2.as_str()).await;
    assert_eq!(line(&h).await, vec![c2.clone()]);
    assert!(h.outbox.records_of(&c2).is_empty());
    advance(20_000).await;
    assert_eq!(
        h.kinds(&c2),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
    let item = h.outbox.records_of(&c2)[1].body.clone();
    assert_eq!(item["reason"], "callback_failed", "{item}");
    assert_eq!(item["callback_number"], "+1555000002", "{item}");
    assert!(matches!(h.state("a1").await, AgentState::Ready { .. }));
    assert_eq!(h.snapshot().await.ended.get("timed_out"), Some(&1));
}

/// Goal: a caller who hangs up and calls again within the re-entry window
/// resumes the old place (ahead of later callers) and keeps the call's one
/// interaction; a place nobody comes back for ends as an abandon when its
/// window ends. Method: a1 is busy; c2 (A) and c3 (B) wait; A hangs up and
/// calls again; B hangs up and does not.
#[actix_rt::test]
async fn returning_caller_resumes_the_old_place() {
    tokio::time::pause();
    let h = start(with_callback(false, 60_000), 1);
    h.ready("a1").await;
    h.call(caller_from("+1555000001", Some(30_000))).await;
    let c2 = h.call(caller_from("+1555000002", None)).await;
    let c3 = h.call(caller_from("+1555000003", None)).await;
    let c4 = h.call(caller_from("+1555000004", None)).await;
    advance(5_000).await;
    h.hang_up(c2.as_str()).await;
    h.hang_up(c3.as_str()).await;
    assert_eq!(line(&h).await, vec![c2.clone(), c3.clone(), c4.clone()]);
    advance(5_000).await;
    let again = h.call(caller_from("+1555000002", None)).await;
    settle().await;
    assert_eq!(
        line(&h).await,
        vec![c2.clone(), c3.clone(), c4.clone()],
        "the new call {again} took c2's place, not a new one"
    );
    assert!(h.leg(again.as_str()).await.is_some_and(|l| l.up && l.held));
    // a1 is free at 31 s: the returning caller is offered first.
    advance(22_500).await;
    assert!(
        matches!(h.state("a1").await, AgentState::Talking { call, .. } if call == c2),
        "{:?}",
        h.state("a1").await
    );
    assert!(h.leg(again.as_str()).await.unwrap().bridge.is_some());
    assert_eq!(
        h.kinds(&c2),
        vec![RecordKind::InteractionCreate, RecordKind::PhoneLogCreate]
    );
    assert!(
        h.outbox.records_of(&again).is_empty(),
        "one interaction, c2's"
    );
    // c3's window ends at 65 s: it leaves the line as an abandon.
    assert_eq!(line(&h).await, vec![c3.clone(), c4.clone()]);
    advance(35_000).await;
    assert_eq!(line(&h).await, vec![c4.clone()]);
    assert_eq!(
        h.kinds(&c3),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
}

/// Goal: a callback entry survives a restart of edgecc with its place, and
/// is called back after it. Method: c2 presses the digit, edgecc is killed
/// and restored from its state store (a snapshot written before), then a1
/// becomes free.
#[actix_rt::test]
async fn callback_entry_survives_a_restart() {
    tokio::time::pause();
    let h = start(with_callback(false, 0), 1);
    h.ready("a1").await;
    let c1 = h.call(caller_from("+1555000001", Some(20_000))).await;
    let c2 = h.call(caller_from("+1555000002", None)).await;
    let c3 = h.call(caller_from("+1555000003", None)).await;
    advance(5_000).await;
    h.sim
        .send(PressDigit {
            leg_id: LegId::new(c2.as_str()),
            digit: '1',
        })
        .await
        .unwrap();
    advance(100).await;
    let h = h.restart(1_000).await;
    assert_eq!(line(&h).await, vec![c2.clone(), c3.clone()]);
    advance(20_000).await;
    assert!(
        matches!(h.state("a1").await, AgentState::Talking { call, .. } if call == c2),
        "{:?}",
        h.state("a1").await
    );
    assert_eq!(h.sim.send(GetSimStats).await.unwrap().callbacks_dialled, 1);
    assert!(h.outbox.records_of(&c1).len() >= 2);
}
