//! The gate between the PBX adapter and the registry: every PBX event
//! passes through it on its way to the contact center.
//!
//! It exists for two things the daemon needs and the actors do not know
//! about: the PBX link's state (for systemd's `STATUS=` line and the
//! watchdog, which pings this actor), and draining on shutdown, when new
//! calls are no longer taken while events of calls already in edgecc's
//! hands still flow, so their records are written. The adapter hands new
//! calls back to the PBX meanwhile (ARI: `continue` into the dialplan);
//! this gate drops any arrival that still gets through.

use actix::prelude::*;
use edgecc_actors::PbxEvent;
use tracing::{info, warn};

/// The PBX link as the daemon sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PbxLink {
    /// The adapter started and has not reported yet (connecting).
    Starting,
    /// The CTI link is up.
    Up,
    /// The CTI link is down; the adapter retries.
    Down,
}

impl PbxLink {
    /// The word used in status lines.
    pub fn as_str(self) -> &'static str {
        match self {
            PbxLink::Starting => "starting",
            PbxLink::Up => "up",
            PbxLink::Down => "down",
        }
    }
}

/// Stop taking new calls (shutdown). Answers how many calls were refused
/// so far (0 at this point, normally).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopTakingCalls;

/// Ask for the link state and how many arrivals were left to the PBX.
#[derive(Message)]
#[rtype(result = "GateStatus")]
pub struct GetGateStatus;

/// What [`GetGateStatus`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateStatus {
    /// The link.
    pub link: PbxLink,
    /// Whether new calls are taken.
    pub taking_calls: bool,
    /// Calls left to the PBX since draining began.
    pub calls_not_taken: u64,
}

/// The gate actor.
pub struct PbxGate {
    /// Where events go: the registry.
    registry: Recipient<PbxEvent>,
    /// The link state, from `LinkUp` / `LinkDown`.
    link: PbxLink,
    /// False once shutdown began.
    taking_calls: bool,
    /// Arrivals left to the PBX while draining.
    calls_not_taken: u64,
}

impl PbxGate {
    /// A gate in front of `registry`, link `Starting`.
    pub fn new(registry: Recipient<PbxEvent>) -> PbxGate {
        PbxGate {
            registry,
            link: PbxLink::Starting,
            taking_calls: true,
            calls_not_taken: 0,
        }
    }
}

impl Actor for PbxGate {
    type Context = Context<Self>;
}

impl Handler<PbxEvent> for PbxGate {
    type Result = ();

    fn handle(&mut self, event: PbxEvent, _ctx: &mut Self::Context) {
        match &event {
            PbxEvent::LinkUp => self.link = PbxLink::Up,
            PbxEvent::LinkDown => self.link = PbxLink::Down,
            PbxEvent::CallArrived { leg_id, .. } if !self.taking_calls => {
                self.calls_not_taken += 1;
                warn!(leg_id = %leg_id, "Shutting down: new call not taken; it stays with the PBX.");
                return;
            }
            _ => {}
        }
        self.registry.do_send(event);
    }
}

impl Handler<StopTakingCalls> for PbxGate {
    type Result = ();

    fn handle(&mut self, _: StopTakingCalls, _ctx: &mut Self::Context) {
        if self.taking_calls {
            self.taking_calls = false;
            info!("New calls are no longer taken; calls in progress go on.");
        }
    }
}

impl Handler<GetGateStatus> for PbxGate {
    type Result = MessageResult<GetGateStatus>;

    fn handle(&mut self, _: GetGateStatus, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(GateStatus {
            link: self.link,
            taking_calls: self.taking_calls,
            calls_not_taken: self.calls_not_taken,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what the gate forwards.
    struct Sink(std::rc::Rc<std::cell::RefCell<Vec<PbxEvent>>>);
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<PbxEvent> for Sink {
        type Result = ();
        fn handle(&mut self, e: PbxEvent, _: &mut Self::Context) {
            self.0.borrow_mut().push(e);
        }
    }

    fn arrival(leg: &str) -> PbxEvent {
        PbxEvent::CallArrived {
            leg_id: edgecc_actors::LegId::new(leg),
            ani: "+15550100".into(),
            dnis: "+18005550100".into(),
            attached: Vec::new(),
        }
    }

    /// The gate tracks the link, forwards everything while taking calls,
    /// and after `StopTakingCalls` keeps only new arrivals back.
    #[actix_rt::test]
    async fn gate_tracks_link_and_drains_arrivals_only() {
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let sink = Sink(seen.clone()).start();
        let gate = PbxGate::new(sink.recipient()).start();
        let s = gate.send(GetGateStatus).await.unwrap();
        assert_eq!(s.link, PbxLink::Starting);
        gate.send(PbxEvent::LinkUp).await.unwrap();
        gate.send(arrival("a")).await.unwrap();
        assert_eq!(gate.send(GetGateStatus).await.unwrap().link, PbxLink::Up);
        gate.send(StopTakingCalls).await.unwrap();
        gate.send(arrival("b")).await.unwrap();
        let hangup = PbxEvent::LegHungUp {
            leg_id: edgecc_actors::LegId::new("a"),
            cause: edgecc_actors::HangupCause::Normal,
        };
        gate.send(hangup.clone()).await.unwrap();
        gate.send(PbxEvent::LinkDown).await.unwrap();
        let s = gate.send(GetGateStatus).await.unwrap();
        assert_eq!(s.link, PbxLink::Down);
        assert!(!s.taking_calls);
        assert_eq!(s.calls_not_taken, 1);
        actix_rt::task::yield_now().await;
        let seen = seen.borrow();
        assert_eq!(
            *seen,
            vec![PbxEvent::LinkUp, arrival("a"), hangup, PbxEvent::LinkDown]
        );
    }
}
