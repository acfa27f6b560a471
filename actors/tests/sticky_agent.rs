//! The caller's own agent ("sticky agent", issue 18): a call from a number
//! that belongs to an agent waits up to the queue's `sticky.wait_ms` for
//! that agent before any other agent may take it. Entries come from the
//! config, an agent or the API ([`SetSticky`]), or a completed call; they
//! live in the actors' durable state, never in the CRM. Scenario tests
//! through the actors' messages with tokio's paused clock.

mod util;

use edgecc_actors::agent::AgentState;
use edgecc_actors::sim::{Caller, PhoneAction};
use edgecc_actors::sticky::{SetSticky, StickyCustomerConfig, StickyError, StickySource};
use edgecc_actors::*;
use util::*;

/// The sticky customer's number.
const ANI: &str = "+15550001111";

/// Whether `state` is an offer of `call`.
fn offered(state: &AgentState, call: &CallId) -> bool {
    matches!(state, AgentState::Reserved { call: c, .. } if c == call)
}

/// Queue `q` waits 20 s for a sticky customer's agent; agents a1 (the
/// owner) and a2.
fn sticky_config() -> ContactCenterConfig {
    let mut cfg = basic(2);
    cfg.queues[0].sticky.wait_ms = 20_000;
    cfg
}

fn pinned(cfg: &mut ContactCenterConfig) {
    cfg.sticky_customers.push(StickyCustomerConfig {
        ani: ANI.into(),
        agent: "a1".into(),
    });
}

async fn set_sticky(h: &Harness, agent: &str, source: StickySource) -> Result<(), StickyError> {
    h.registry
        .send(SetSticky {
            ani: ANI.into(),
            agent: AgentId::new(agent),
            source,
        })
        .await
        .unwrap()
        .map(|_| ())
}

/// Goal: the call waits for its own agent, who gets it when Ready. Method:
/// ANI pinned to a1 by the config; a2 Ready, a1 Not Ready; the call
/// arrives; a1 says Ready after 10 s. Expected: a2 is not offered the call
/// meanwhile; a1 is, as soon as it is Ready; a call from another number is
/// offered to a2 at once.
#[actix_rt::test]
async fn the_call_waits_for_its_own_agent() {
    tokio::time::pause();
    let mut cfg = sticky_config();
    pinned(&mut cfg);
    let h = start(cfg, 1);
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    h.ready("a2").await;
    let mine = h.call(Caller::new(ANI, "800")).await;
    advance(10_000).await;
    assert!(
        is(&h.state("a2").await, "ready"),
        "a2 does not take a1's customer"
    );
    assert_eq!(h.snapshot().await.queues[0].waiting, vec![mine.clone()]);
    h.cmd("a1", AgentCommand::Ready).await.unwrap();
    assert!(offered(&h.state("a1").await, &mine));
    let other = h.call(caller("800")).await;
    assert!(offered(&h.state("a2").await, &other));
}

/// Goal: after the wait any agent may take the call. Method: ANI set to a1
/// through the API; a1 never Ready, a2 Ready. Expected: a2 is not offered
/// the call before 20 s, and is offered it right after.
#[actix_rt::test]
async fn after_the_wait_another_agent_takes_it() {
    tokio::time::pause();
    let h = start(sticky_config(), 1);
    set_sticky(&h, "a1", StickySource::Api).await.unwrap();
    h.ready("a2").await;
    let call = h.call(Caller::new(ANI, "800")).await;
    advance(19_900).await;
    assert!(is(&h.state("a2").await, "ready"));
    advance(200).await;
    assert!(offered(&h.state("a2").await, &call));
}

/// Goal: routing by own agent needs nothing from the CRM. Method: the
/// outbox (the CRM's side) takes no record at all (every append stays
/// pending, as with a CRM and disk path that never answer); a completed
/// call of a queue with `sticky.after_call` makes the caller a1's; the
/// caller calls again while a2 is Ready. Expected: the second call waits
/// for a1 (a2 not offered) and a1 is offered it once Ready.
#[actix_rt::test]
async fn after_a_completed_call_the_caller_is_the_agents_with_the_crm_down() {
    tokio::time::pause();
    let mut cfg = sticky_config();
    cfg.queues[0].sticky.after_call = true;
    let h = start(cfg, 1);
    h.ready("a1").await;
    let first = h.call(Caller::new(ANI, "800")).await;
    h.cmd("a1", AgentCommand::Accept).await.unwrap();
    advance(100).await;
    assert!(matches!(h.state("a1").await, AgentState::Talking { .. }));
    h.outbox.set_delay_ms(600_000);
    h.hang_up(first.as_str()).await;
    advance(100).await;
    h.cmd(
        "a1",
        AgentCommand::NotReady {
            reason_code: "break".into(),
        },
    )
    .await
    .unwrap();
    h.ready("a2").await;
    let again = h.call(Caller::new(ANI, "800")).await;
    advance(5_000).await;
    assert!(
        is(&h.state("a2").await, "ready"),
        "a2 does not take a1's customer"
    );
    h.cmd("a1", AgentCommand::Ready).await.unwrap();
    assert!(offered(&h.state("a1").await, &again));
}

/// Goal: the own agent survives a restart, and a number the config pins
/// is not taken over. Method: ANI set to a1 by an agent request; the system
/// is killed and restored; a2 Ready, the caller calls. Expected: the call
/// waits for a1; a2's claim of a pinned number is refused.
#[actix_rt::test]
async fn the_own_agent_survives_a_restart() {
    tokio::time::pause();
    let mut cfg = sticky_config();
    cfg.sticky_customers.push(StickyCustomerConfig {
        ani: "+1999".into(),
        agent: "a1".into(),
    });
    let h = start(cfg, 1);
    set_sticky(&h, "a1", StickySource::Agent).await.unwrap();
    let h = h.restart(1_000).await;
    h.ready("a2").await;
    let call = h.call(Caller::new(ANI, "800")).await;
    advance(5_000).await;
    assert!(is(&h.state("a2").await, "ready"));
    h.ready("a1").await;
    assert!(offered(&h.state("a1").await, &call));
    let claim = h
        .registry
        .send(SetSticky {
            ani: "+1999".into(),
            agent: AgentId::new("a2"),
            source: StickySource::Agent,
        })
        .await
        .unwrap();
    assert!(
        matches!(claim, Err(StickyError::Pinned { .. })),
        "{claim:?}"
    );
}

/// Goal: the agent who missed the call is not waited for again. Method:
/// ANI pinned to a1; a1 and a2 Ready; a1's phone rings out. Expected: the
/// call goes to a2 at once, without waiting out the sticky wait.
#[actix_rt::test]
async fn a_missed_own_agent_is_not_waited_for_again() {
    tokio::time::pause();
    let mut cfg = sticky_config();
    pinned(&mut cfg);
    let h = start(cfg, 1);
    h.ready("a2").await;
    advance(10).await;
    h.ready("a1").await;
    h.script("101", vec![PhoneAction::NoAnswer]);
    let call = h.call(Caller::new(ANI, "800")).await;
    assert!(
        offered(&h.state("a1").await, &call),
        "a1 first though a2 idles longer"
    );
    advance(10_500).await;
    assert!(offered(&h.state("a2").await, &call));
}
