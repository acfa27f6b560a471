//! Wrap-up done properly (issue 20): per-queue code lists with an
//! optional "required", wrap-up after an outbound call the customer
//! answered, and wrap-up before a logout asked for during the call. Each
//! test drives the registry with messages on paused time, as the desktop's
//! HTTP requests do.

mod util;

use edgecc_actors::agent::{AgentError, AgentState, NotReadyReason, Pending};
use edgecc_actors::config::wrap_up::WrapUpCode;
use edgecc_actors::config::WrapUpCodes;
use edgecc_actors::*;
use util::*;

/// Queue `q` lists `sale` and `no-sale` and requires one; 30 s wrap-up.
fn coded(required: bool) -> ContactCenterConfig {
    let mut cfg = basic(1);
    cfg.queues[0].wrap_up_ms = 30_000;
    cfg.queues[0].wrap_up_codes = WrapUpCodes {
        codes: ["sale", "no-sale"]
            .iter()
            .map(|c| WrapUpCode {
                code: (*c).into(),
                label: c.replace('-', " "),
            })
            .collect(),
        required,
    };
    cfg
}

fn code(c: &str) -> AgentCommand {
    AgentCommand::Call(CallAction::WrapUpCode { code: c.into() })
}

/// A required code: the wrap-up shows the queue's codes and that one is
/// owed; Finish and Ready are refused naming the queue; a code the queue
/// does not list is refused with the list; a listed one is recorded and
/// Finish then works.
#[actix_rt::test]
async fn a_required_code_is_owed_until_one_of_the_list_is_recorded() {
    tokio::time::pause();
    let (h, call) = talking(coded(true)).await;
    h.act("a1", CallAction::HangUp).await.unwrap();
    let AgentState::WrapUp { coding, .. } = h.state("a1").await else {
        panic!("not in wrap-up");
    };
    assert_eq!(coding.queue, Some(QueueId::new("q")));
    assert_eq!(coding.codes.len(), 2);
    assert_eq!(coding.codes[1].label, "no sale");
    assert!(coding.owed);

    let refused = Err(CcError::Agent(AgentError::WrapUpCodeRequired {
        queue: QueueId::new("q"),
    }));
    assert_eq!(h.cmd("a1", AgentCommand::EndWrapUp).await, refused);
    assert_eq!(h.cmd("a1", AgentCommand::Ready).await, refused);
    assert!(is(&h.state("a1").await, "wrap_up"));

    let r = h.cmd("a1", code("sold")).await;
    let Err(CcError::WrapUpCodeNotListed { queue, message }) = r else {
        panic!("{r:?}");
    };
    assert_eq!(queue, QueueId::new("q"));
    assert!(message.contains("sale, no-sale"), "{message}");
    assert!(!h.events(&call).contains(&"wrap_up_code".to_string()));

    h.cmd("a1", code("no-sale")).await.unwrap();
    assert!(h.events(&call).contains(&"wrap_up_code".to_string()));
    h.cmd("a1", AgentCommand::EndWrapUp).await.unwrap();
    assert!(is(&h.state("a1").await, "ready"));
}

/// Not required: Finish without a code works, and a listed queue still
/// refuses a code it does not list.
#[actix_rt::test]
async fn an_optional_list_still_refuses_unlisted_codes() {
    tokio::time::pause();
    let (h, _call) = talking(coded(false)).await;
    h.act("a1", CallAction::HangUp).await.unwrap();
    let AgentState::WrapUp { coding, .. } = h.state("a1").await else {
        panic!("not in wrap-up");
    };
    assert!(!coding.owed);
    assert!(matches!(
        h.cmd("a1", code("other")).await,
        Err(CcError::WrapUpCodeNotListed { .. })
    ));
    h.cmd("a1", AgentCommand::EndWrapUp).await.unwrap();
    assert!(is(&h.state("a1").await, "ready"));
}

/// An agent who walked away does not block routing: the wrap-up's timer
/// ends an owed wrap-up.
#[actix_rt::test]
async fn the_timer_ends_an_owed_wrap_up() {
    tokio::time::pause();
    let (h, _call) = talking(coded(true)).await;
    h.act("a1", CallAction::HangUp).await.unwrap();
    advance(30_500).await;
    assert!(is(&h.state("a1").await, "ready"));
}

/// An outbound call the customer answered owes the configured outbound
/// wrap-up (free text: no queue), then the agent is back in the Not Ready
/// it dialled from.
#[actix_rt::test]
async fn wrap_up_after_an_answered_outbound_call() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.timers.outbound_wrap_up_ms = 7_000;
    let h = start(cfg, 1);
    h.cmd("a1", AgentCommand::Login).await.unwrap();
    h.not_ready("a1", "break").await.unwrap();
    h.dial("a1", "+15550001111").await.unwrap();
    let call = h.state("a1").await.call().cloned().expect("dialing");
    // The simulated customer answers within 8 s (seed 1: it does).
    advance(8_500).await;
    let view = h
        .snapshot()
        .await
        .calls
        .into_iter()
        .find(|c| c.call == call);
    assert_eq!(view.map(|v| v.phase), Some("connected"));
    let before = h.snapshot().await.at_ms;
    h.act("a1", CallAction::HangUp).await.unwrap();
    let AgentState::WrapUp {
        until_ms, coding, ..
    } = h.state("a1").await
    else {
        panic!("no wrap-up after the outbound call");
    };
    let hung_up = until_ms - 7_000;
    assert!(
        (before..=before + 10).contains(&hung_up),
        "{until_ms} {before}"
    );
    assert_eq!(coding.queue, None);
    assert!(!coding.owed);
    h.cmd("a1", code("left a message")).await.unwrap();
    assert!(h.events(&call).contains(&"wrap_up_code".to_string()));
    advance(7_500).await;
    assert_eq!(
        h.state("a1").await,
        AgentState::NotReady {
            reason: NotReadyReason::Code("break".into())
        }
    );
}

/// A logout asked for during the call waits for the wrap-up: the agent
/// gets its wrap-up (the code can still be recorded), then is logged out
/// when it ends.
#[actix_rt::test]
async fn a_logout_during_the_call_comes_after_the_wrap_up() {
    tokio::time::pause();
    let (h, call) = talking(coded(false)).await;
    h.cmd("a1", AgentCommand::Logout).await.unwrap();
    assert_eq!(h.agent("a1").await.pending, Some(Pending::Logout));
    h.act("a1", CallAction::HangUp).await.unwrap();
    assert!(is(&h.state("a1").await, "wrap_up"));
    h.cmd("a1", code("sale")).await.unwrap();
    assert!(h.events(&call).contains(&"wrap_up_code".to_string()));
    advance(30_500).await;
    assert_eq!(h.state("a1").await, AgentState::LoggedOut);
}
