//! Hot reload scenarios: a running contact center takes a new
//! configuration through [`ApplyConfig`] (what SIGHUP and the reload API
//! send) with tokio's paused clock, and the tests check what changed and
//! what stayed: strategies, members and timers apply at once, waiting
//! callers keep their place and age, a bad or unsafe config is refused as a
//! whole.

mod util;

use edgecc_actors::agent::{self, AgentState};
use edgecc_actors::config::{ReasonCodeConfig, Strategy};
use edgecc_actors::registry::{ApplyConfig, ReloadSummary};
use edgecc_actors::sim::PhoneAction;
use edgecc_actors::*;
use util::*;

impl Harness {
    /// Applies `cfg` as a reload does, then lets what it set off run.
    async fn reload(&self, cfg: ContactCenterConfig) -> Result<ReloadSummary, Vec<ConfigError>> {
        let r = self.registry.send(ApplyConfig(cfg)).await.unwrap();
        settle().await;
        r
    }

    /// Calls waiting in queue `id`, in routing order.
    async fn waiting(&self, id: &str) -> Vec<CallId> {
        self.snapshot()
            .await
            .queues
            .into_iter()
            .find(|q| q.queue.as_str() == id)
            .map(|q| q.waiting)
            .unwrap_or_else(|| panic!("no queue {id}"))
    }
}

/// Issue 18: a reason code added by a reload is accepted (it was refused:
/// the agent checked codes against the start-up config). Method: a1 asks
/// for `training` (unknown, refused), the reload adds it, a1 asks again.
#[actix_rt::test]
async fn a_reason_code_added_by_a_reload_is_accepted() {
    tokio::time::pause();
    let cfg = basic(1);
    let h = start(cfg.clone(), 1);
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    assert!(matches!(
        h.not_ready("a1", "training").await,
        Err(CcError::Agent(agent::AgentError::UnknownReasonCode(_)))
    ));
    let mut new = cfg;
    new.reason_codes.push(ReasonCodeConfig {
        code: "training".into(),
        label: "Training".into(),
    });
    h.reload(new).await.unwrap();
    h.not_ready("a1", "training").await.unwrap();
    assert!(
        matches!(h.state("a1").await, AgentState::NotReady { .. }),
        "{:?}",
        h.state("a1").await
    );
}

/// Members and max wait change while three callers wait; they keep their
/// order and their age. Method: c1..c3 arrive 1 s apart in q (max wait
/// 60 s, its only member Not Ready); at 10 s a reload makes a2 a member,
/// cuts the max wait to 20 s and adds queue `new`. a2 goes Ready and gets
/// c1 (the oldest); c2 and c3 time out 20 s after their own arrival, not
/// 20 s after the reload and not at 60 s; a call to the new queue's DNIS
/// waits there.
#[actix_rt::test]
async fn members_and_timers_apply_while_callers_keep_their_place_and_age() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.agents.push(agent("a2", "102", &[]));
    let h = start(cfg.clone(), 1);
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    h.cmd("a2", AgentCommand::Login).await.unwrap();
    let c1 = h.call(caller("800")).await;
    advance(1_000).await;
    let c2 = h.call(caller("800")).await;
    advance(1_000).await;
    let c3 = h.call(caller("800")).await;
    advance(8_000).await;

    let mut new = cfg;
    new.queues[0].max_wait_ms = 20_000;
    new.agents[1].queues = vec!["q".into()];
    new.queues.push(queue("new", "801"));
    let summary = h.reload(new).await.unwrap();
    assert_eq!(summary.queues_changed, vec![QueueId::new("q")]);
    assert_eq!(summary.queues_added, vec![QueueId::new("new")]);
    assert_eq!(
        h.waiting("q").await,
        vec![c1.clone(), c2.clone(), c3.clone()]
    );

    h.cmd("a2", AgentCommand::Ready).await.unwrap();
    assert!(
        matches!(&h.state("a2").await, AgentState::Reserved { call, .. } if *call == c1),
        "{:?}",
        h.state("a2").await
    );
    // t = 10 s; c2 arrived at 1 s: it times out at 21 s, c3 at 22 s.
    advance(11_500).await;
    assert_eq!(h.waiting("q").await, vec![c3.clone()]);
    assert_eq!(
        h.kinds(&c2),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
    advance(1_000).await;
    assert!(h.waiting("q").await.is_empty());
    assert_eq!(h.snapshot().await.ended.get("timed_out"), Some(&2));

    let c4 = h.call(caller("801")).await;
    assert_eq!(h.waiting("new").await, vec![c4]);
}

/// A new strategy applies to the next call. Method: a1 and a2 Ready in a
/// longest-idle queue; a reload makes it ring-all; the next call rings both
/// (before the reload only one would be reserved).
#[actix_rt::test]
async fn a_new_strategy_applies_to_the_next_call() {
    tokio::time::pause();
    let cfg = basic(2);
    let h = start(cfg.clone(), 1);
    h.ready("a1").await;
    h.ready("a2").await;
    let mut new = cfg;
    new.queues[0].strategy = Strategy::RingAll;
    h.reload(new).await.unwrap();
    h.script("101", vec![PhoneAction::NoAnswer]);
    h.script("102", vec![PhoneAction::NoAnswer]);
    h.call(caller("800")).await;
    for a in ["a1", "a2"] {
        assert!(
            matches!(h.state(a).await, AgentState::Reserved { .. }),
            "{a}: {:?}",
            h.state(a).await
        );
    }
}

/// A bad config is refused as a whole, naming the key, and the running one
/// stays. Method: a reload that adds a reason code but has a zero max wait
/// is refused with `queues[0].max_wait_ms`; the code is still unknown.
#[actix_rt::test]
async fn a_bad_config_is_refused_as_a_whole() {
    tokio::time::pause();
    let cfg = basic(1);
    let h = start(cfg.clone(), 1);
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    let mut bad = cfg;
    bad.reason_codes.push(ReasonCodeConfig {
        code: "training".into(),
        label: String::new(),
    });
    bad.queues[0].max_wait_ms = 0;
    let errors = h.reload(bad).await.unwrap_err();
    assert!(
        errors.iter().any(|e| e.path == "queues[0].max_wait_ms"),
        "{errors:?}"
    );
    assert!(h.not_ready("a1", "training").await.is_err());
}

/// Removals: a queue in which a call waits and a logged-in agent cannot be
/// removed (refused, naming the id; nothing changes); once the queue is
/// empty and the agent logged out, the same reload removes both, and an
/// added agent can log in.
#[actix_rt::test]
async fn removals_wait_for_an_empty_queue_and_a_logged_out_agent() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.queues.push(queue("old", "809"));
    cfg.agents.push(agent("gone", "109", &[]));
    let h = start(cfg.clone(), 1);
    h.cmd("gone", AgentCommand::Login).await.unwrap();
    let waiting = h.call(caller("809")).await;

    let mut new = cfg.clone();
    new.queues.retain(|q| q.id != "old");
    new.agents.retain(|a| a.id != "gone");
    new.agents.push(agent("fresh", "110", &["q"]));
    let errors = h.reload(new.clone()).await.unwrap_err();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.starts_with("queues: queue \"old\" was removed while 1 call(s) wait")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("agents: agent \"gone\" was removed while not_ready")),
        "{text:?}"
    );
    assert_eq!(h.waiting("old").await, vec![waiting.clone()]);
    assert!(h.request("fresh", AgentCommand::Login).await.is_err());

    h.hang_up(waiting.as_str()).await;
    h.cmd("gone", AgentCommand::Logout).await.unwrap();
    let summary = h.reload(new).await.unwrap();
    assert_eq!(summary.queues_removed, vec![QueueId::new("old")]);
    assert_eq!(summary.agents_removed, vec![AgentId::new("gone")]);
    assert_eq!(summary.agents_added, vec![AgentId::new("fresh")]);
    let snap = h.snapshot().await;
    assert!(snap.queues.iter().all(|q| q.queue.as_str() != "old"));
    assert!(snap.agents.iter().all(|a| a.agent.as_str() != "gone"));
    h.ready("fresh").await;
    let call = h.call(caller("800")).await;
    assert!(matches!(&h.state("fresh").await, AgentState::Reserved { call: c, .. } if *c == call));
}
