//! What an agent's desktop sees and may do, owned by the actors (issue 13):
//! a desktop's call request names the call and the agent actor refuses one
//! that is not its own; mute is per party in the call view; time in state
//! and desktop presence live in the agent view, and a desktop gone past the
//! grace takes the agent out of routing; queue waits and service level come
//! with the queue view. Each test drives the registry with paused time.

mod util;

use edgecc_actors::agent::actor::{CallCommand, DesktopEvent};
use edgecc_actors::agent::{AgentState, NotReadyReason, Presence, SystemReason};
use edgecc_actors::registry::{QueuesServed, ServedQueue};
use edgecc_actors::sim::PhoneAction;
use edgecc_actors::*;
use util::*;

async fn request(
    h: &Harness,
    agent: &str,
    call: &CallId,
    command: CallCommand,
) -> Result<(), CcError> {
    let r = h
        .registry
        .send(CallRequest {
            agent: AgentId::new(agent),
            call: call.clone(),
            command,
        })
        .await
        .unwrap();
    settle().await;
    r
}

async fn desktop(h: &Harness, agent: &str, event: DesktopEvent) {
    h.registry
        .send(AgentDesktop {
            agent: AgentId::new(agent),
            event,
        })
        .await
        .unwrap();
    settle().await;
}

/// Another agent naming the call is refused as not its own, an unknown id
/// as unknown; the agent's own accept and mute go through, and the call
/// view names the muted party; naming another call while talking is
/// refused too.
#[actix_rt::test]
async fn call_requests_name_the_call_and_the_agent_decides() {
    tokio::time::pause();
    let h = start(basic(2), 1);
    h.ready("a1").await;
    h.cmd("a2", AgentCommand::Login).await.unwrap();
    h.script("101", vec![PhoneAction::NoAnswer]);
    let call = h.call(caller("800")).await;
    assert!(matches!(h.state("a1").await, AgentState::Reserved { .. }));

    let r = request(&h, "a2", &call, CallCommand::Accept).await;
    assert!(matches!(r, Err(CcError::NotYourCall { .. })), "{r:?}");
    let nope = CallId::new("nope");
    let r = request(&h, "a1", &nope, CallCommand::Check).await;
    assert_eq!(r, Err(CcError::UnknownCall(nope.clone())));
    request(&h, "a1", &call, CallCommand::Check).await.unwrap();

    request(&h, "a1", &call, CallCommand::Accept).await.unwrap();
    advance(500).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { .. }));
    let r = request(&h, "a2", &call, CallCommand::Control(CallAction::Mute)).await;
    assert!(matches!(r, Err(CcError::NotYourCall { .. })), "{r:?}");
    request(&h, "a1", &call, CallCommand::Control(CallAction::Mute))
        .await
        .unwrap();
    let view = h
        .snapshot()
        .await
        .calls
        .into_iter()
        .find(|c| c.call == call);
    assert_eq!(view.map(|v| v.muted), Some(vec![AgentId::new("a1")]));
    let r = request(&h, "a1", &nope, CallCommand::Control(CallAction::Unmute)).await;
    assert_eq!(r, Err(CcError::UnknownCall(nope)));
}

/// An outbound call's controls reach its actor (the agent learns it once
/// the registry starts it): the agent hangs up from the desktop.
#[actix_rt::test]
async fn outbound_call_controls_reach_the_call() {
    tokio::time::pause();
    let h = start(basic(1), 1);
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    h.dial("a1", "+1999").await.unwrap();
    let call = match h.state("a1").await {
        AgentState::Talking { call, .. } => call,
        other => panic!("not talking: {other:?}"),
    };
    request(&h, "a1", &call, CallCommand::Control(CallAction::HangUp))
        .await
        .unwrap();
    advance(500).await;
    assert!(h.state("a1").await.call().is_none());
}

/// Time in state restarts when the state's name, call or Not Ready reason
/// changes (at the state's own start for Ready); the same reason again
/// keeps it.
#[actix_rt::test]
async fn time_in_state_is_in_the_agent_view() {
    tokio::time::pause();
    let h = start(basic(1), 1);
    assert_eq!(h.agent("a1").await.state_since_ms, EPOCH_MS);
    advance(1_000).await;
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    let login = h.agent("a1").await.state_since_ms;
    assert!(login >= EPOCH_MS + 1_000, "{login}");
    advance(2_000).await;
    h.not_ready("a1", "break").await.unwrap();
    let on_break = h.agent("a1").await.state_since_ms;
    assert!(on_break >= login + 2_000, "a new reason restarts the clock");
    advance(1_000).await;
    h.not_ready("a1", "break").await.unwrap();
    assert_eq!(h.agent("a1").await.state_since_ms, on_break);
    advance(1_000).await;
    h.cmd("a1", AgentCommand::Ready).await.unwrap();
    let view = h.agent("a1").await;
    assert_eq!(Some(view.state_since_ms), view.state.started_ms());
    assert!(view.state_since_ms >= login + 4_000);
}

/// Presence is in the agent view; a desktop back within the grace keeps the
/// agent Ready; one gone past it sets Not Ready (desktop-gone reason); a
/// second desktop keeps the agent connected when the first closes.
#[actix_rt::test]
async fn desktop_presence_and_grace() {
    tokio::time::pause();
    let h = start(basic(1), 1);
    h.ready("a1").await;
    assert!(matches!(
        h.agent("a1").await.presence,
        Presence::Disconnected { .. }
    ));
    let grace = DesktopEvent::Disconnected { grace_ms: 1_000 };
    desktop(&h, "a1", DesktopEvent::Connected).await;
    assert!(matches!(
        h.agent("a1").await.presence,
        Presence::Connected { .. }
    ));
    desktop(&h, "a1", grace).await;
    assert!(matches!(
        h.agent("a1").await.presence,
        Presence::Disconnected { .. }
    ));
    advance(500).await;
    desktop(&h, "a1", DesktopEvent::Connected).await;
    desktop(&h, "a1", DesktopEvent::Connected).await;
    advance(2_000).await;
    assert!(h.agent("a1").await.state.name() == "ready");
    desktop(&h, "a1", grace).await;
    advance(2_000).await;
    assert!(
        h.agent("a1").await.state.name() == "ready",
        "one desktop left"
    );
    desktop(&h, "a1", grace).await;
    advance(900).await;
    assert!(
        h.agent("a1").await.state.name() == "ready",
        "within the grace"
    );
    advance(200).await;
    assert_eq!(
        h.agent("a1").await.state,
        AgentState::NotReady {
            reason: NotReadyReason::System(SystemReason::DesktopGone)
        }
    );
}

/// The queue view carries each waiting call's wait, and the answered waits
/// count the answered call's wait from when it joined the queue.
#[actix_rt::test]
async fn queue_view_carries_waits_and_service_level() {
    tokio::time::pause();
    let h = start(basic(1), 1);
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    let call = h.call(caller("800")).await;
    advance(3_000).await;
    let q = h.snapshot().await.queues.remove(0);
    assert_eq!(q.waiting, vec![call.clone()]);
    assert!(q.wait_ms[0] >= 3_000, "{:?}", q.wait_ms);
    assert_eq!(q.answered.answered, 0);
    h.cmd("a1", AgentCommand::Ready).await.unwrap();
    advance(2_000).await; // the phone answers after 1 s
    let q = h.snapshot().await.queues.remove(0);
    assert!(q.waiting.is_empty());
    assert_eq!(q.answered.answered, 1);
    assert!(q.answered.wait_sum_ms >= 4_000, "{:?}", q.answered);
}

/// The time since logout counts from the logout, and a restart keeps it
/// (issue 20, fault 4): the agent view's `logged_out_ms` and time in state
/// come from the persisted logout, not from the new process's start; an
/// agent this data directory never saw log out has none.
#[actix_rt::test]
async fn time_since_logout_survives_a_restart() {
    tokio::time::pause();
    let h = start(basic(2), 1);
    assert_eq!(h.agent("a2").await.logged_out_ms, None);
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    advance(1_000).await;
    let before = h.snapshot().await.at_ms;
    h.cmd("a1", AgentCommand::Logout).await.unwrap();
    let v = h.agent("a1").await;
    let out = v.logged_out_ms.expect("the logout's time");
    assert!((before..=before + 10).contains(&out), "{out} {before}");
    assert_eq!(v.state_since_ms, out);
    advance(60_000).await;
    let h = h.restart(5_000).await;
    let v = h.agent("a1").await;
    assert_eq!(v.state, AgentState::LoggedOut);
    assert_eq!((v.logged_out_ms, v.state_since_ms), (Some(out), out));
    assert_eq!(h.agent("a2").await.logged_out_ms, None);
}

/// The queues an agent serves, for its desktop: each of its own queues
/// (not another's) with the calls waiting there and since when the oldest
/// waits (the arrival, on the test clock), so the desktop ticks the wait;
/// a call offered no longer waits; an unknown agent serves nothing.
#[actix_rt::test]
async fn an_agent_sees_the_queues_it_serves_with_their_oldest_wait() {
    tokio::time::pause();
    let mut cfg = basic(2);
    cfg.queues.push(queue("support", "900"));
    cfg.queues[1].name = "Support".into();
    cfg.agents[0].queues.push("support".into());
    let h = start(cfg, 1);
    let served = |agent: &str| {
        let r = h.registry.send(QueuesServed(AgentId::new(agent)));
        async move { r.await.unwrap() }
    };
    let q = |queue_id: &str, name: &str, waiting: usize, since: Option<u64>| ServedQueue {
        queue_id: QueueId::new(queue_id),
        name: name.into(),
        waiting,
        oldest_since_ms: since,
    };
    assert_eq!(
        served("a1").await,
        vec![q("q", "q", 0, None), q("support", "Support", 0, None)]
    );

    advance(1_000).await;
    let arrived = EPOCH_MS + 1_000 + 1;
    let first = h.call(caller("900")).await;
    advance(4_000).await;
    h.call(caller("900")).await;
    advance(1_000).await;
    let a1 = served("a1").await;
    assert_eq!(a1[1].waiting, 2, "{a1:?}");
    // The oldest call's arrival, whatever the time now.
    let since = a1[1].oldest_since_ms.expect("a wait");
    assert!(
        (arrived - 5..=arrived + 5).contains(&since),
        "{since} vs {arrived}: {a1:?}"
    );
    assert_eq!(served("a2").await, vec![q("q", "q", 0, None)]);
    assert_eq!(served("nobody").await, vec![]);

    // a1 takes the first call: one waits, since its own arrival.
    h.script("101", vec![PhoneAction::NoAnswer]);
    h.ready("a1").await;
    assert!(matches!(h.state("a1").await, AgentState::Reserved { ref call, .. } if call == &first));
    let a1 = served("a1").await;
    assert_eq!(a1[1].waiting, 1, "{a1:?}");
    let since = a1[1].oldest_since_ms.expect("a wait");
    assert!(
        (arrived + 4_000 - 5..=arrived + 4_000 + 5).contains(&since),
        "{since}: {a1:?}"
    );
}
