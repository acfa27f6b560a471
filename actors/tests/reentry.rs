//! Re-entry beyond the basics of `waiting.rs`: a returning caller's place
//! across a restart of edgecc (the new caller leg must still reach the old
//! call), and a plain abandon in a queue with a re-entry window but no
//! callback keys. Actors are driven through the simulated PBX with tokio's
//! paused clock (issue 18).

mod util;

use edgecc_actors::agent::AgentState;
use edgecc_actors::config::CallbackConfig;
use edgecc_actors::sim::Caller;
use edgecc_actors::*;
use util::*;

/// Queue `q` of [`basic`] with only a re-entry window (no digit, no
/// callback on hang-up).
fn reentry_only(window_ms: u64) -> ContactCenterConfig {
    let mut cfg = basic(1);
    cfg.queues[0].max_wait_ms = 300_000;
    cfg.queues[0].callback = CallbackConfig {
        reentry_window_ms: window_ms,
        ..CallbackConfig::default()
    };
    cfg
}

fn caller_from(ani: &str, talk_ms: Option<u64>) -> Caller {
    let mut c = Caller::new(ani, "800");
    c.talk_ms = talk_ms;
    c
}

async fn line(h: &Harness) -> Vec<CallId> {
    let snap = h
        .registry
        .send(Snapshot { with_queues: true })
        .await
        .unwrap();
    snap.queues[0].waiting.clone()
}

/// Goal: a caller who took the old place back keeps reaching it after
/// edgecc restarts: the new leg's events (its answer by the agent, its
/// hang-up) go to the old call, and the restart's reconcile finds the
/// caller's leg up. Method: c2's caller hangs up and calls again from the
/// same number; edgecc is killed and restored; a1 becomes free and is
/// offered c2, whose caller then hangs up after talking.
#[actix_rt::test]
async fn returning_caller_is_reached_after_a_restart() {
    tokio::time::pause();
    let h = start(reentry_only(60_000), 1);
    h.ready("a1").await;
    h.call(caller_from("+1555000001", Some(30_000))).await;
    let c2 = h.call(caller_from("+1555000002", None)).await;
    let c3 = h.call(caller_from("+1555000003", None)).await;
    advance(5_000).await;
    h.hang_up(c2.as_str()).await;
    advance(2_000).await;
    let again = h.call(caller_from("+1555000002", Some(10_000))).await;
    settle().await;
    assert_eq!(line(&h).await, vec![c2.clone(), c3.clone()]);
    let h = h.restart(1_000).await;
    assert_eq!(
        line(&h).await,
        vec![c2.clone(), c3.clone()],
        "the returning caller's leg is up: the reconcile keeps c2's place"
    );
    // a1 is free at 31 s: c2 (with the new leg) is offered and answered.
    advance(25_000).await;
    assert!(
        matches!(h.state("a1").await, AgentState::Talking { call, .. } if call == c2),
        "{:?}",
        h.state("a1").await
    );
    assert!(h.leg(again.as_str()).await.unwrap().bridge.is_some());
    // The caller hangs up after 10 s: the old call ends as answered.
    advance(11_000).await;
    assert!(
        !matches!(h.state("a1").await, AgentState::Talking { call, .. } if call == c2),
        "the hang-up of the new leg reached c2: {:?}",
        h.state("a1").await
    );
    assert_eq!(
        h.kinds(&c2)[..2],
        [RecordKind::InteractionCreate, RecordKind::PhoneLogCreate]
    );
    assert!(
        h.events(&c2).iter().any(|e| e == "ended"),
        "{:?}",
        h.events(&c2)
    );
    assert!(h.outbox.records_of(&again).is_empty());
}

/// Goal: in a queue with a re-entry window and no callback keys (no digit,
/// no callback on hang-up), a plain abandon keeps the place for the window:
/// the caller who calls again resumes it, ahead of later callers; the one
/// who does not ends as an abandon when the window ends. Method: a1 is
/// busy; c2 and c3 hang up, c2 calls again; a1 becomes free.
#[actix_rt::test]
async fn plain_abandon_keeps_the_place_for_the_window() {
    tokio::time::pause();
    let h = start(reentry_only(60_000), 1);
    h.ready("a1").await;
    h.call(caller_from("+1555000001", Some(30_000))).await;
    let c2 = h.call(caller_from("+1555000002", None)).await;
    let c3 = h.call(caller_from("+1555000003", None)).await;
    let c4 = h.call(caller_from("+1555000004", None)).await;
    advance(5_000).await;
    h.hang_up(c2.as_str()).await;
    h.hang_up(c3.as_str()).await;
    assert_eq!(line(&h).await, vec![c2.clone(), c3.clone(), c4.clone()]);
    assert!(
        h.outbox.records_of(&c2).is_empty(),
        "no abandon written yet"
    );
    advance(5_000).await;
    let again = h.call(caller_from("+1555000002", None)).await;
    settle().await;
    assert_eq!(line(&h).await, vec![c2.clone(), c3.clone(), c4.clone()]);
    assert!(h.leg(again.as_str()).await.is_some_and(|l| l.up && l.held));
    // a1 is free at 31 s: c2 first.
    advance(22_500).await;
    assert!(
        matches!(h.state("a1").await, AgentState::Talking { call, .. } if call == c2),
        "{:?}",
        h.state("a1").await
    );
    assert_eq!(
        h.kinds(&c2),
        vec![RecordKind::InteractionCreate, RecordKind::PhoneLogCreate]
    );
    // c3's window ends at 65 s: it leaves the line as the abandon it was.
    assert_eq!(line(&h).await, vec![c3.clone(), c4.clone()]);
    advance(35_000).await;
    assert_eq!(line(&h).await, vec![c4.clone()]);
    assert_eq!(
        h.kinds(&c3),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
}
