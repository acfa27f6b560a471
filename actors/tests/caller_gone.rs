//! A caller who hangs up at the moment edgecc answers, bridges or
//! conferences them: the PBX answers the command with "unknown leg" before
//! its hang-up event arrives. The call ends as that hang-up would end it (abandoned, or
//! completed once talking), once, and the agent is freed.

mod util;

use actix::prelude::*;
use edgecc_actors::ports::LocalBoxFuture;
use edgecc_actors::sim::{HangUpLeg, PhoneAction, SimPbx, SimPbxPort};
use edgecc_actors::*;
use std::rc::Rc;
use std::time::Duration;
use util::*;

/// Which command of the caller's leg finds the caller already gone.
#[derive(Clone, Copy, PartialEq)]
enum GoneAt {
    /// The answer of the arriving caller (replied late, as the caller was
    /// already being offered).
    Answer,
    /// Putting the caller into the bridge once the agent answered.
    Bridge,
    /// Merging the caller, the agent and the consulted agent into a
    /// conference.
    Conference,
}

/// The simulated PBX, except that `at` on the caller's leg replies
/// `UnknownLeg` after 500 ms, and the caller's hang-up reaches edgecc
/// 500 ms after that reply.
struct CallerGonePbx {
    /// The command that finds the caller gone.
    at: GoneAt,
    /// Everything else.
    sim: SimPbxPort,
}

impl PbxPort for CallerGonePbx {
    fn send(&self, cmd: PbxCommand) -> LocalBoxFuture<'static, Result<(), PbxError>> {
        let is_caller = |leg: &LegId| leg.call_id().as_str() == leg.0;
        let leg = match (&cmd, self.at) {
            (PbxCommand::Answer { leg_id }, GoneAt::Answer)
            | (PbxCommand::Bridge { leg_id, .. }, GoneAt::Bridge)
                if is_caller(leg_id) =>
            {
                leg_id.clone()
            }
            (PbxCommand::Conference { leg_ids, .. }, GoneAt::Conference) => {
                match leg_ids.iter().find(|l| is_caller(l)) {
                    Some(caller) => caller.clone(),
                    None => return self.sim.send(cmd),
                }
            }
            _ => return self.sim.send(cmd),
        };
        let sim = self.sim.addr.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let gone = leg.0.clone();
            actix::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                sim.do_send(HangUpLeg {
                    leg_id: leg,
                    cause: HangupCause::Normal,
                });
            });
            Err(PbxError::UnknownLeg(gone))
        })
    }
}

fn start_gone(cfg: ContactCenterConfig, at: GoneAt) -> Harness {
    let sim = SimPbx::new(1).start();
    let (outbox, state) = (MemoryOutbox::new(), MemoryState::new());
    let clock = TokioClock::shared(EPOCH_MS);
    let pbx = CallerGonePbx {
        at,
        sim: SimPbxPort { addr: sim.clone() },
    };
    let registry = ContactCenter::start_with_state(
        cfg.clone(),
        Rc::new(pbx),
        Rc::new(outbox.clone()),
        Rc::new(state.clone()),
        clock.clone(),
    )
    .expect("valid config");
    sim.do_send(edgecc_actors::sim::ConnectEvents(
        registry.clone().recipient(),
    ));
    Harness {
        registry,
        sim,
        outbox,
        state,
        kill: Kill::default(),
        cfg,
        clock,
    }
}

/// The answer of a caller being offered to a1 finds the caller gone: the
/// call is abandoned (not failed), once, and a1's offer is withdrawn.
#[actix_rt::test]
async fn unknown_caller_leg_on_answer_is_an_abandon() {
    tokio::time::pause();
    let h = start_gone(basic(1), GoneAt::Answer);
    h.ready("a1").await;
    h.script("101", vec![PhoneAction::NoAnswer]);
    let call = h.call(caller("800")).await;
    advance(300).await;
    assert!(
        is(&h.state("a1").await, "reserved"),
        "a1 is being offered the call"
    );
    advance(1_500).await;
    // One abandon: the interaction and one (callback) work item.
    assert_eq!(
        h.kinds(&call),
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
    assert_eq!(h.outbox.records_of(&call)[1].body["reason"], "abandoned");
    let snap = h.snapshot().await;
    assert_eq!(snap.ended.get("abandoned"), Some(&1));
    assert_eq!(snap.ended.get("failed"), None);
    assert!(is(&h.state("a1").await, "ready"), "a1 is free again");
    assert!(
        h.leg(call.as_str()).await.is_none(),
        "the hang-up reached the PBX"
    );
}

/// Bridging the caller to a1 (whose phone answered) finds the caller gone:
/// the call completes, with one `ended` update, and a1 goes to wrap-up.
#[actix_rt::test]
async fn unknown_caller_leg_on_bridge_is_a_completed_call() {
    tokio::time::pause();
    let mut cfg = basic(1);
    cfg.queues[0].wrap_up_ms = 30_000;
    let h = start_gone(cfg, GoneAt::Bridge);
    h.ready("a1").await;
    h.script("101", vec![PhoneAction::Answer { after_ms: 1_000 }]);
    let call = h.call(caller("800")).await;
    advance(3_000).await;
    assert_eq!(h.events(&call).iter().filter(|e| *e == "ended").count(), 1);
    let snap = h.snapshot().await;
    assert_eq!(snap.ended.get("completed"), Some(&1));
    assert_eq!(snap.ended.get("failed"), None);
    assert!(is(&h.state("a1").await, "wrap_up"), "a1 wraps the call up");
}

/// a1 turns its consult with a2 into a conference and the merge finds the
/// caller gone: the call completes (it was talking), with one `ended`
/// update, not `failed`; a1 goes to wrap-up and a2 back to Not Ready, as
/// the caller's hang-up would leave them.
#[actix_rt::test]
async fn unknown_caller_leg_on_conference_is_a_completed_call() {
    tokio::time::pause();
    let mut cfg = basic(2);
    cfg.queues[0].wrap_up_ms = 30_000;
    let h = start_gone(cfg, GoneAt::Conference);
    h.ready("a1").await;
    let call = h.call(caller("800")).await;
    advance(1_500).await;
    h.cmd("a2", AgentCommand::Login).await.unwrap();
    h.consult("a1", "a2").await.unwrap();
    advance(1_500).await;
    assert!(
        is(&h.state("a2").await, "talking"),
        "a2 answered the consult"
    );
    h.act("a1", CallAction::ConferenceConsult).await.unwrap();
    advance(3_000).await;
    assert_eq!(h.events(&call).iter().filter(|e| *e == "ended").count(), 1);
    let snap = h.snapshot().await;
    assert_eq!(snap.ended.get("completed"), Some(&1));
    assert_eq!(snap.ended.get("failed"), None);
    assert!(is(&h.state("a1").await, "wrap_up"), "a1 wraps the call up");
    // a2 came from Not Ready for the consult: back there, as the caller's
    // hang-up leaves a consulted agent.
    let a2 = h.state("a2").await;
    assert!(is(&a2, "not_ready"), "a2 is off the call: {a2:?}");
    assert!(
        h.leg(call.as_str()).await.is_none(),
        "the caller's leg is gone at the PBX"
    );
}
