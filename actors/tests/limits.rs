//! Queue limits scenarios (maximum length, members needed to join and to
//! stay), with the simulated PBX and tokio's paused clock: who is turned
//! away, where the call goes and what its records say.

mod util;

use edgecc_actors::config::{FinalDestination, QueueLimits, Staffing};
use edgecc_actors::sim::PhoneAction;
use edgecc_actors::*;
use util::*;

impl Harness {
    /// Calls waiting in queue `id`, in routing order.
    async fn line(&self, id: &str) -> Vec<CallId> {
        self.snapshot()
            .await
            .queues
            .into_iter()
            .find(|q| q.queue.as_str() == id)
            .map(|q| q.waiting)
            .unwrap_or_else(|| panic!("no queue {id}"))
    }

    /// The `reason` of the call's work item, if it has one.
    fn work_item_reason(&self, call: &CallId) -> Option<String> {
        self.outbox
            .records_of(call)
            .iter()
            .find(|r| r.kind == RecordKind::WorkItemCreate)
            .and_then(|r| r.body["reason"].as_str().map(str::to_owned))
    }
}

/// A full queue turns a new caller away at once (`queue_full` on its
/// interaction and work item); the callers in line stay. Method: q holds
/// at most 2; three callers arrive with nobody logged in.
#[actix_rt::test]
async fn a_full_queue_turns_a_new_caller_away() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.queues[0].limits.waiting_max = Some(2);
    let h = start(cfg, 1);
    let c1 = h.call(caller("800")).await;
    let c2 = h.call(caller("800")).await;
    let c3 = h.call(caller("800")).await;
    assert_eq!(h.line("q").await, vec![c1, c2]);
    assert_eq!(
        h.kinds(&c3),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
    assert_eq!(h.outbox.records_of(&c3)[0].body["reason"], "queue_full");
    assert_eq!(h.work_item_reason(&c3).as_deref(), Some("queue_full"));
    assert_eq!(h.snapshot().await.ended.get("timed_out"), Some(&1));
}

/// `join_requires = logged-in`: with nobody logged in a caller is turned
/// away (`queue_unstaffed`); once a1 logs in (Not Ready: busy agents
/// count), the next caller waits.
#[actix_rt::test]
async fn callers_join_only_while_a_member_is_logged_in() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.queues[0].limits.join_requires = Staffing::LoggedIn;
    let h = start(cfg, 1);
    let c1 = h.call(caller("800")).await;
    assert_eq!(h.work_item_reason(&c1).as_deref(), Some("queue_unstaffed"));
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    let c2 = h.call(caller("800")).await;
    assert_eq!(h.line("q").await, vec![c2.clone()]);
    assert!(h.kinds(&c2).is_empty());
}

/// `stay_requires = available`: when the last member who takes calls goes
/// Not Ready, every waiting caller leaves to the final destination (here
/// queue `spare`: no work item, they wait there). Method: a1
/// Ready and ringing with c1 (no answer scripted), c2 and c3 wait; a1's
/// RONA puts it Not Ready: c1 (back from the failed offer), c2 and c3 all
/// go to `spare`.
#[actix_rt::test]
async fn waiting_callers_leave_when_no_member_is_available() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.queues[0].limits = QueueLimits {
        stay_requires: Staffing::Available,
        ..QueueLimits::default()
    };
    cfg.queues[0].final_destination = FinalDestination::Queue {
        queue: "spare".into(),
    };
    cfg.queues.push(queue("spare", "801"));
    let h = start(cfg, 1);
    h.ready("a1").await;
    h.script("101", vec![PhoneAction::NoAnswer]);
    let c1 = h.call(caller("800")).await;
    let c2 = h.call(caller("800")).await;
    let c3 = h.call(caller("800")).await;
    assert_eq!(h.line("q").await, vec![c2.clone(), c3.clone()]);
    advance(10_500).await; // offer timeout: RONA, a1 Not Ready
    assert!(h.line("q").await.is_empty());
    let mut spare = h.line("spare").await;
    spare.sort();
    let mut all = vec![c1.clone(), c2.clone(), c3.clone()];
    all.sort();
    assert_eq!(spare, all);
    for c in [&c1, &c2, &c3] {
        assert_eq!(h.work_item_reason(c), None, "{c}");
    }
}

/// A caller back from a failed offer keeps its place even in a full
/// queue: it is not a new arrival. Method: q holds 1; c1 rings a1 (no
/// answer), c2 takes the one place; a1 goes Not Ready with RONA but a2 is
/// logged in Not Ready, so nobody takes calls; c1 comes back and waits
/// beside c2 instead of being turned away.
#[actix_rt::test]
async fn a_caller_back_from_a_failed_offer_is_not_turned_away() {
    tokio::time::pause();
    let mut cfg = basic(2);
    cfg.queues[0].limits.waiting_max = Some(1);
    let h = start(cfg, 1);
    h.ready("a1").await;
    h.cmd("a2", AgentCommand::Login).await.unwrap();
    h.script("101", vec![PhoneAction::NoAnswer]);
    let c1 = h.call(caller("800")).await;
    let c2 = h.call(caller("800")).await;
    assert_eq!(h.line("q").await, vec![c2.clone()]);
    advance(10_500).await;
    let line = h.line("q").await;
    assert!(line.contains(&c1) && line.contains(&c2), "{line:?}");
    assert_eq!(h.work_item_reason(&c1), None);
}
