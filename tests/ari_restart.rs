//! edgecc restarted in front of the ARI emulator (which lives on, as
//! Asterisk does): the first life runs the real actors on the adapter with
//! its state in a `MemoryState`, then dies as a SIGKILLed process would
//! (its PBX commands, outbox appends and state records go nowhere, its
//! link closes, nothing is hung up); the second life is
//! `ContactCenter::restore`d from the snapshot, and its adapter adopts
//! what Asterisk still has (`AriPbx::adopt_on_connect`). Checked at the
//! emulator (nothing hung up, handed back or destroyed that should stay)
//! and at the CRM (one interaction, one phone log, the end update).

use std::cell::Cell;
use std::rc::Rc;

use edgecc::ari::settings::WaitingMedia;
use edgecc::ari::{AriPbx, AriSettings};
use edgecc::ari_emulator::{AriEmulator, AriEmulatorConfig, EndpointBehaviour as B};
use edgecc_actors::ids::BridgeId;
use edgecc_actors::ports::{LocalBoxFuture, OutboxAppend, OutboxPort};
use edgecc_actors::*;

use crate::ari_harness::*;

const A1: &str = "PJSIP/3101";
const A2: &str = "PJSIP/3102";
const A3: &str = "PJSIP/3103";
const A4: &str = "PJSIP/3104";

/// A switch shared by one life's ports: once thrown, that life is as dead
/// as a SIGKILLed process (commands never reach the PBX, appends never
/// become durable, state records are lost).
#[derive(Clone, Default)]
struct Kill(Rc<Cell<bool>>);

impl Kill {
    fn dead(&self) -> bool {
        self.0.get()
    }
}

/// The adapter as one life's PBX port.
struct KillablePbx(Kill, AriPbx);

impl PbxPort for KillablePbx {
    fn send(&self, cmd: PbxCommand) -> LocalBoxFuture<'static, Result<(), PbxError>> {
        if self.0.dead() {
            return Box::pin(std::future::pending());
        }
        self.1.send(cmd)
    }
}

/// The outbox shared by every life, as one life's port.
struct KillableOutbox(Kill, MemoryOutbox);

impl OutboxPort for KillableOutbox {
    fn append(&self, records: Vec<CrmRecord>) -> LocalBoxFuture<'static, OutboxAppend> {
        if self.0.dead() {
            return Box::pin(std::future::pending());
        }
        self.1.append(records)
    }
}

/// The state store shared by every life, as one life's port.
struct KillableState(Kill, MemoryState);

impl StatePort for KillableState {
    fn persist(&self, record: StateRecord) {
        if !self.0.dead() {
            self.1.persist(record);
        }
    }
}

/// A contact center on the emulator that can be killed and restored.
struct Restartable {
    /// The current life (its outbox is the shared one).
    h: AriHarness,
    /// Kills the current life.
    kill: Kill,
    /// The durable state, shared by every life.
    state: MemoryState,
    /// Wall time, shared by every life.
    clock: SharedClock,
    /// The configuration, for the next life.
    cfg: ContactCenterConfig,
    /// Changes to the harness's adapter settings, for every life.
    tune: fn(&mut AriSettings),
}

/// Starts one life on `emu` (adapter settings changed by `tune`): fresh, or restored from `snapshot` (adopting
/// at Asterisk when `adopt`).
#[allow(clippy::too_many_arguments)]
async fn life(
    emu: AriEmulator,
    cfg: &ContactCenterConfig,
    outbox: MemoryOutbox,
    state: &MemoryState,
    clock: &SharedClock,
    snapshot: Option<StateSnapshot>,
    adopt: bool,
    tune: fn(&mut AriSettings),
) -> (AriHarness, Kill) {
    let mut s = settings(&emu);
    tune(&mut s);
    let ari = AriPbx::new(s).expect("adapter");
    let kill = Kill::default();
    let pbx = Rc::new(KillablePbx(kill.clone(), ari.clone()));
    let ob = Rc::new(KillableOutbox(kill.clone(), outbox.clone()));
    let st = Rc::new(KillableState(kill.clone(), state.clone()));
    let previous_startup = snapshot.as_ref().and_then(|s| s.pbx_startup_time.clone());
    let registry = match snapshot {
        None => ContactCenter::start_with_state(cfg.clone(), pbx, ob, st, clock.clone()),
        Some(snapshot) => {
            let registry =
                ContactCenter::restore(cfg.clone(), pbx, ob, st, clock.clone(), snapshot.clone())
                    .expect("valid config");
            if adopt {
                ari.adopt_on_connect(&snapshot, registry.clone().recipient());
            }
            Ok(registry)
        }
    }
    .expect("valid config");
    ari.connect_events(registry.clone().recipient());
    ari.keep_startups(registry.clone().recipient(), previous_startup);
    ari.start();
    let h = AriHarness {
        emu,
        ari,
        registry,
        outbox,
        booted: None,
    };
    h.link_up().await;
    (h, kill)
}

impl Restartable {
    /// A first life with `cfg` on an emulator with `endpoints`.
    async fn start(cfg: ContactCenterConfig, endpoints: &[(&str, B)]) -> Restartable {
        Self::start_tuned(cfg, endpoints, |_| ()).await
    }

    /// Like [`Self::start`], with adapter settings changed by `tune`.
    async fn start_tuned(
        cfg: ContactCenterConfig,
        endpoints: &[(&str, B)],
        tune: fn(&mut AriSettings),
    ) -> Restartable {
        let emu = AriEmulator::start(AriEmulatorConfig::default()).expect("emulator starts");
        for (e, b) in endpoints {
            emu.set_endpoint(e, b.clone());
        }
        let state = MemoryState::new();
        let clock = TokioClock::shared(1_700_000_000_000);
        let outbox = MemoryOutbox::new();
        let (h, kill) = life(emu, &cfg, outbox, &state, &clock, None, false, tune).await;
        Restartable {
            h,
            kill,
            state,
            clock,
            cfg,
            tune,
        }
    }

    /// Kills the current life: its ports go dead and its WebSocket
    /// closes; nothing is hung up. Waits until the emulator has no client.
    async fn crash(&self) {
        self.kill.0.set(true);
        self.h.ari.stop();
        let emu = self.h.emu.clone();
        until("the emulator sees the app gone", move || !emu.app_active()).await;
    }

    /// Restores a new life from the state store's snapshot (adopting at
    /// Asterisk when `adopt`), after a crash.
    async fn restore(self, adopt: bool) -> Restartable {
        let snapshot = self.state.snapshot();
        self.restore_from(snapshot, adopt).await
    }

    /// Restores a new life from `snapshot` (an earlier one: the state
    /// changes after it were not durable when the process died).
    async fn restore_from(self, snapshot: StateSnapshot, adopt: bool) -> Restartable {
        let (h, kill) = life(
            self.h.emu.clone(),
            &self.cfg,
            self.h.outbox.clone(),
            &self.state,
            &self.clock,
            Some(snapshot),
            adopt,
            self.tune,
        )
        .await;
        Restartable { h, kill, ..self }
    }
}

/// What the emulator was asked that ends or gives away a call: channel
/// hang-ups, hand-backs to the dialplan, bridge destructions.
fn destructive_requests(h: &AriHarness) -> Vec<String> {
    given_away(&h.emu)
}

/// The one agent leg of `call` at the emulator.
fn leg_of(h: &AriHarness, call: &str) -> String {
    let mut legs = h.legs_of(call);
    assert_eq!(legs.len(), 1, "one agent leg on {call}: {legs:?}");
    legs.pop().unwrap_or_default()
}

/// Each call: exactly one interaction and one phone log, and its last
/// update says it ended.
fn one_interaction_ended(h: &AriHarness, calls: &[&str]) {
    for call in calls {
        let kinds = h.kinds(call);
        assert_eq!(
            count(&kinds, RecordKind::InteractionCreate),
            1,
            "{call}: {kinds:?}"
        );
        assert_eq!(
            count(&kinds, RecordKind::PhoneLogCreate),
            1,
            "{call}: {kinds:?}"
        );
        let u = h.updates(call);
        assert_eq!(u.last().map(String::as_str), Some("ended"), "{call}: {u:?}");
        assert_eq!(
            u.iter().filter(|e| *e == "ended").count(),
            1,
            "{call}: {u:?}"
        );
    }
}

/// The restart with a talking call, a held call, a ringing offer and a
/// queued caller: nothing is hung up, handed back or destroyed; the
/// talking call is still bridged with its agent, the held caller still
/// hears music out of its bridge and goes back in on resume, the queued
/// caller hears the waiting music again and is offered to the first agent
/// who frees up, the ringing offer is answered exactly once; every call
/// ends normally with one interaction, one phone log and its end update.
/// A link drop after the restart reconnects as usual.
#[actix_rt::test]
async fn restart_keeps_talking_held_ringing_and_queued_calls() {
    let r = Restartable::start(
        config(&[("a1", A1), ("a2", A2), ("a3", A3)], 8_000),
        &[
            (A1, B::AnswerAfter { ring_ms: 100 }),
            (A2, B::AnswerAfter { ring_ms: 100 }),
            (A3, B::Manual),
        ],
    )
    .await;
    let h = &r.h;
    h.ready("a1").await;
    let c1 = h.inbound("5552001");
    h.until_agent("a1", "talking", talking).await;
    h.ready("a2").await;
    let c2 = h.inbound("5552002");
    h.until_agent("a2", "talking", talking).await;
    h.act("a2", CallAction::Hold).await.expect("hold");
    h.until_emu("c2 on hold", |s| s.channel(&c2).is_some_and(|c| c.moh))
        .await;
    h.ready("a3").await;
    let c3 = h.inbound("5552003");
    h.until_agent("a3", "reserved", reserved).await;
    let c4 = h.inbound("5552004");
    h.until_call(&c4, "queued", |c| c.phase == "queued").await;
    let (leg1, leg2, leg3) = (leg_of(h, &c1), leg_of(h, &c2), leg_of(h, &c3));
    let moh_c4 = format!("/ari/channels/{c4}/moh");
    let waiting_media_before = h.requests("POST", &moh_c4);
    assert!(waiting_media_before >= 1, "c4 heard music while waiting");
    pause(100).await;
    let given_away = destructive_requests(h);

    r.crash().await;
    pause(300).await;
    let r = r.restore(true).await;
    let h = &r.h;

    // The orphan check runs 2 s after a reconcile: let it.
    pause(2_300).await;
    assert_eq!(
        destructive_requests(h),
        given_away,
        "nothing hung up, handed back or destroyed by the restart"
    );
    let report = h.ari.adoption().expect("the restart adopted");
    assert_eq!(report.channels, 7, "4 callers and 3 agent legs: {report:?}");
    assert_eq!(
        (report.bridges, report.gone, report.orphans),
        (2, 0, 0),
        "{report:?}"
    );
    let (b1, b2, b3) = (
        BridgeId::main(&c1.as_str().into()).0,
        BridgeId::main(&c2.as_str().into()).0,
        BridgeId::main(&c3.as_str().into()).0,
    );
    let s = h.emu.state();
    let members = |b: &str| s.bridge(b).map(|b| b.channels.clone()).unwrap_or_default();
    assert!(
        members(&b1).contains(&c1) && members(&b1).contains(&leg1),
        "talking call bridged: {:?}",
        members(&b1)
    );
    assert_eq!(
        members(&b2),
        vec![leg2.clone()],
        "held caller out of its bridge"
    );
    assert!(s.channel(&c2).is_some_and(|c| c.moh && c.in_stasis));
    assert!(
        s.channel(&leg3).is_some_and(|c| !c.in_stasis),
        "offer still ringing"
    );
    assert!(
        s.channel(&c4).is_some_and(|c| c.in_stasis),
        "queued caller waits"
    );
    assert!(talking(&h.state("a1").await) && talking(&h.state("a2").await));
    assert!(reserved(&h.state("a3").await));
    // The queued caller hears the waiting music again.
    let (h2, moh) = (h.emu.clone(), moh_c4.clone());
    until("c4 hears the waiting music again", move || {
        h2.requests()
            .iter()
            .filter(|q| q.method == "POST" && q.path.starts_with(&moh))
            .count()
            > waiting_media_before
    })
    .await;

    // The ringing offer is answered now: connected once.
    h.emu.answer(&leg3).expect("answer a3's phone");
    h.until_agent("a3", "talking", talking).await;
    h.until_emu("c3 bridged with a3", |s| {
        s.bridge(&b3)
            .is_some_and(|b| b.channels.contains(&c3) && b.channels.contains(&leg3))
    })
    .await;
    // The held caller goes back into its bridge.
    h.act("a2", CallAction::Resume).await.expect("resume");
    h.until_emu("c2 back with a2", |s| {
        s.bridge(&b2).is_some_and(|b| b.channels.contains(&c2))
            && s.channel(&c2).is_some_and(|c| !c.moh)
    })
    .await;

    // An ordinary link drop after the restart reconnects as usual.
    let connects = h.ari.stats().connects;
    h.emu.drop_links();
    let ari = h.ari.clone();
    until("reconnected", move || {
        ari.link_is_up() && ari.stats().connects > connects
    })
    .await;
    pause(2_300).await;
    assert_eq!(
        destructive_requests(h),
        given_away,
        "the reconnect keeps the calls"
    );

    // The talking call ends normally; its agent takes the queued caller.
    h.emu.caller_hangup(&c1).expect("c1 hangs up");
    h.until_ended("completed", 1).await;
    h.until_call(&c4, "c4 offered and connected", |c| c.phase == "connected")
        .await;
    h.until_agent("a1", "a1 on c4", talking).await;
    for c in [&c2, &c3, &c4] {
        h.emu.caller_hangup(c).expect("caller hangs up");
    }
    h.until_ended("completed", 4).await;
    for leg in [&leg1, &leg2, &leg3] {
        let leg = leg.clone();
        h.until_emu("agent legs hung up at the end", move |s| {
            s.channel(&leg).is_none()
        })
        .await;
    }
    one_interaction_ended(h, &[&c1, &c2, &c3, &c4]);
    let u2 = h.updates(&c2);
    assert!(
        u2.iter().any(|e| e == "hold") && u2.iter().any(|e| e == "resume"),
        "{u2:?}"
    );
    assert_eq!(h.snapshot().await.terminal_anomalies, 0);
}

/// A channel and a bridge edgecc named that the snapshot does not know
/// are still orphans after a restart: hung up and destroyed, while the
/// snapshot's talking call next to them is kept.
#[actix_rt::test]
async fn an_unknown_edgecc_leg_is_still_an_orphan() {
    let r = Restartable::start(
        config(&[("a1", A1)], 8_000),
        &[
            (A1, B::AnswerAfter { ring_ms: 50 }),
            (A4, B::AnswerAfter { ring_ms: 50 }),
        ],
    )
    .await;
    let h = &r.h;
    h.ready("a1").await;
    let c1 = h.inbound("5552101");
    h.until_agent("a1", "talking", talking).await;
    let leg1 = leg_of(h, &c1);
    // A leg and a bridge with edgecc's names for a call no actor has.
    let stray = "stray~7";
    h.ari
        .send(PbxCommand::OriginateAgentLeg {
            leg_id: LegId::new(stray),
            endpoint: A4.into(),
            caller_id: String::new(),
            timeout_ms: 5_000,
            auto_answer: false,
        })
        .await
        .expect("originate");
    h.until_emu("stray leg answered", |s| {
        s.channel(stray).is_some_and(|c| c.in_stasis)
    })
    .await;
    h.ari
        .send(PbxCommand::Bridge {
            bridge_id: BridgeId::new("b~stray"),
            leg_id: LegId::new(stray),
        })
        .await
        .expect("bridge");
    pause(100).await;

    r.crash().await;
    let r = r.restore(true).await;
    let h = &r.h;
    let report = h.ari.adoption().expect("the restart adopted");
    assert_eq!((report.channels, report.orphans), (2, 2), "{report:?}");
    h.until_emu("the stray leg hung up", |s| s.channel(stray).is_none())
        .await;
    assert_eq!(h.requests("DELETE", "/ari/channels/stray~7"), 1);
    h.until_emu("its bridge destroyed once empty", |s| {
        s.bridge("b~stray").is_none()
    })
    .await;
    let b1 = BridgeId::main(&c1.as_str().into()).0;
    h.until_emu("the snapshot's call kept", |s| {
        s.bridge(&b1)
            .is_some_and(|b| b.channels.contains(&c1) && b.channels.contains(&leg1))
    })
    .await;
    assert!(talking(&h.state("a1").await));
    h.emu.caller_hangup(&c1).expect("c1 hangs up");
    h.until_ended("completed", 1).await;
    one_interaction_ended(h, &[&c1]);
}

/// A caller who hung up while edgecc was down: the restored call is
/// closed (completed, with its end update), its agent's leg is hung up
/// and the agent freed.
#[actix_rt::test]
async fn a_call_that_ended_while_down_is_closed() {
    let r = Restartable::start(
        config(&[("a1", A1)], 8_000),
        &[(A1, B::AnswerAfter { ring_ms: 50 })],
    )
    .await;
    let h = &r.h;
    h.ready("a1").await;
    let c1 = h.inbound("5552201");
    h.until_agent("a1", "talking", talking).await;
    let leg1 = leg_of(h, &c1);
    pause(100).await;
    r.crash().await;
    r.h.emu
        .caller_hangup(&c1)
        .expect("c1 hangs up while edgecc is down");
    let r = r.restore(true).await;
    let h = &r.h;
    let report = h.ari.adoption().expect("the restart adopted");
    assert_eq!((report.channels, report.gone), (1, 1), "{report:?}");
    h.until_ended("completed", 1).await;
    h.until_emu("the agent leg hung up", |s| s.channel(&leg1).is_none())
        .await;
    h.until_agent("a1", "a1 free", free).await;
    one_interaction_ended(h, &[&c1]);
}

/// The process died after it rang an agent but before that offer was
/// durable: the saved state has the call queued and the agent logged out,
/// while the agent's phone still rings. The adoption hangs that leg up at
/// once (not when its ring timeout ends), so the agent is never rung with
/// two calls; the call is offered again once the agent is Ready.
#[actix_rt::test]
async fn an_offer_the_saved_state_does_not_know_is_hung_up_at_once() {
    let r = Restartable::start(config(&[("a1", A1)], 30_000), &[(A1, B::RingForever)]).await;
    let h = &r.h;
    let c1 = h.inbound("5552301");
    h.until_call(&c1, "queued", |v| v.phase == "queued").await;
    let mut before_the_offer = r.state.snapshot();
    h.ready("a1").await;
    until("a1's phone rings", || h.legs_of(&c1).len() == 1).await;
    let stale = leg_of(h, &c1);
    // The offer-token reservation is durable before any token is used:
    // only the offer's own changes are lost.
    before_the_offer.tokens_reserved_through = r.state.snapshot().tokens_reserved_through;
    r.crash().await;
    let r = r.restore_from(before_the_offer, true).await;
    let h = &r.h;
    let restored = std::time::Instant::now();
    h.until_emu("the stale offer hung up", |s| s.channel(&stale).is_none())
        .await;
    assert!(
        restored.elapsed() < std::time::Duration::from_secs(3),
        "the stale offer rang on for {:?}",
        restored.elapsed()
    );
    // The call is still queued and goes to a1 once it is Ready: one leg.
    h.ready("a1").await;
    until("a1 rung again", || h.legs_of(&c1).len() == 1).await;
    let fresh = leg_of(h, &c1);
    assert_ne!(fresh, stale);
    assert_eq!(
        h.emu
            .channels()
            .iter()
            .filter(|c| c.endpoint.as_deref() == Some(A1))
            .count(),
        1,
        "one call on a1's phone"
    );
}

/// A restart in the middle of a consult: the caller holds out of the main
/// bridge, the two agents talk in the consult bridge; all of it is kept.
/// Completing the consult afterwards transfers the caller to the second
/// agent in the main bridge, hangs up the first and destroys the consult
/// bridge, as without a restart.
#[actix_rt::test]
async fn restart_during_a_consult() {
    let r = Restartable::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[
            (A1, B::AnswerAfter { ring_ms: 50 }),
            (A2, B::AnswerAfter { ring_ms: 50 }),
        ],
    )
    .await;
    let h = &r.h;
    h.ready("a1").await;
    let c1 = h.inbound("5552301");
    h.until_agent("a1", "talking", talking).await;
    let leg1 = leg_of(h, &c1);
    h.ready("a2").await;
    h.act(
        "a1",
        CallAction::Consult {
            target: AgentId::new("a2"),
        },
    )
    .await
    .expect("consult");
    let consult = BridgeId::consult(&c1.as_str().into()).0;
    h.until_emu("a1 and a2 in the consult bridge", |s| {
        s.bridge(&consult).is_some_and(|b| b.channels.len() == 2)
    })
    .await;
    let leg2 = h
        .legs_of(&c1)
        .into_iter()
        .find(|l| *l != leg1)
        .expect("a2's leg");
    pause(100).await;
    let given_away = destructive_requests(h);

    r.crash().await;
    let r = r.restore(true).await;
    let h = &r.h;
    pause(2_300).await;
    assert_eq!(destructive_requests(h), given_away, "the consult is kept");
    let report = h.ari.adoption().expect("the restart adopted");
    assert_eq!(
        (report.channels, report.bridges, report.orphans),
        (3, 2, 0),
        "{report:?}"
    );
    let main = BridgeId::main(&c1.as_str().into()).0;
    let s = h.emu.state();
    assert!(s
        .channel(&c1)
        .is_some_and(|c| c.moh && c.bridge_id.is_none()));
    assert!(s
        .bridge(&consult)
        .is_some_and(|b| b.channels.contains(&leg1) && b.channels.contains(&leg2)));
    assert!(talking(&h.state("a2").await));

    h.act("a1", CallAction::CompleteConsult)
        .await
        .expect("complete the consult");
    h.until_emu("the caller with a2 in the main bridge", |s| {
        s.bridge(&main)
            .is_some_and(|b| b.channels.contains(&c1) && b.channels.contains(&leg2))
            && s.channel(&c1).is_some_and(|c| !c.moh)
            && s.channel(&leg1).is_none()
            && s.bridge(&consult).is_none()
    })
    .await;
    h.until_agent("a1", "a1 free", free).await;
    h.emu.caller_hangup(&c1).expect("c1 hangs up");
    h.until_ended("completed", 1).await;
    one_interaction_ended(h, &[&c1]);
    assert!(
        h.updates(&c1).iter().any(|e| e == "transfer"),
        "{:?}",
        h.updates(&c1)
    );
    assert_eq!(h.snapshot().await.terminal_anomalies, 0);
}

/// With ringing as the waiting media, a caller offered across the restart
/// still hears ringing afterwards, and the answer stops the ringing (not
/// music it never heard) before the caller joins the agent.
#[actix_rt::test]
async fn an_offered_caller_keeps_its_waiting_media() {
    let r = Restartable::start_tuned(config(&[("a1", A1)], 8_000), &[(A1, B::Manual)], |s| {
        s.waiting_media = WaitingMedia::Ringing
    })
    .await;
    let h = &r.h;
    h.ready("a1").await;
    let c1 = h.inbound("5552401");
    h.until_agent("a1", "reserved", reserved).await;
    let leg1 = leg_of(h, &c1);
    let ring = format!("/ari/channels/{c1}/ring");
    let moh = format!("/ari/channels/{c1}/moh");
    assert_eq!(h.requests("POST", &ring), 1, "the caller hears ringing");
    pause(100).await;
    r.crash().await;
    let r = r.restore(true).await;
    let h = &r.h;
    h.emu.answer(&leg1).expect("a1 answers");
    h.until_agent("a1", "talking", talking).await;
    let b1 = BridgeId::main(&c1.as_str().into()).0;
    h.until_emu("c1 bridged with a1", |s| {
        s.bridge(&b1)
            .is_some_and(|b| b.channels.contains(&c1) && b.channels.contains(&leg1))
    })
    .await;
    let (ari, ring2) = (h.emu.clone(), ring.clone());
    until("the ringing stopped", move || {
        ari.requests()
            .iter()
            .any(|q| q.method == "DELETE" && q.path.starts_with(&ring2))
    })
    .await;
    assert_eq!(h.requests("DELETE", &moh), 0, "no music to stop");
    h.emu.caller_hangup(&c1).expect("c1 hangs up");
    h.until_ended("completed", 1).await;
    one_interaction_ended(h, &[&c1]);
}

/// An offer whose ring timeout passed while edgecc was down: the restored
/// call gives up on it at once (before the link is up) and the adapter
/// hangs the still-ringing phone up right after the adoption instead of
/// leaving it to ring until Asterisk's own originate timeout; the caller
/// goes to the next agent.
#[actix_rt::test]
async fn an_offer_that_timed_out_while_down_is_hung_up() {
    let r = Restartable::start(
        config(&[("a1", A1), ("a2", A2)], 1_000),
        &[(A1, B::Manual), (A2, B::AnswerAfter { ring_ms: 50 })],
    )
    .await;
    let h = &r.h;
    h.ready("a1").await;
    let c1 = h.inbound("5552501");
    h.until_agent("a1", "reserved", reserved).await;
    let leg1 = leg_of(h, &c1);
    h.ready("a2").await;
    pause(100).await;
    r.crash().await;
    pause(1_500).await;
    let r = r.restore(true).await;
    let h = &r.h;
    let up_at = std::time::Instant::now();
    h.until_emu("a1's phone stops ringing", |s| s.channel(&leg1).is_none())
        .await;
    let took = up_at.elapsed();
    assert!(
        took < std::time::Duration::from_millis(2_000),
        "hung up after {took:?}, not at Asterisk's originate timeout"
    );
    assert_eq!(
        h.requests("DELETE", &format!("/ari/channels/{leg1}")),
        1,
        "hung up by edgecc once"
    );
    h.until_agent("a2", "a2 takes the call", talking).await;
    h.until_agent("a1", "a1 not reserved", free).await;
    h.emu.caller_hangup(&c1).expect("c1 hangs up");
    h.until_ended("completed", 1).await;
    one_interaction_ended(h, &[&c1]);
}

/// A caller who entered the application just before the crash (its
/// StasisStart reached the dying life, which persisted nothing of it) is
/// waiting in Stasis when the next life adopts: it is routed as a new call
/// (offered to the free agent, connected, one interaction and its end),
/// not handed back to the dialplan, while the snapshot's talking call next
/// to it is kept.
#[actix_rt::test]
async fn a_caller_unknown_to_the_snapshot_is_routed_as_a_new_call() {
    let r = Restartable::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[
            (A1, B::AnswerAfter { ring_ms: 50 }),
            (A2, B::AnswerAfter { ring_ms: 50 }),
        ],
    )
    .await;
    let h = &r.h;
    h.ready("a1").await;
    let c1 = h.inbound("5552601");
    h.until_agent("a1", "talking", talking).await;
    let leg1 = leg_of(h, &c1);
    h.ready("a2").await;
    pause(100).await;
    // The life is dying: nothing it does from here is persisted or reaches
    // Asterisk, but the new caller's StasisStart still reaches it.
    r.kill.0.set(true);
    let c2 = h.inbound("5552602");
    pause(200).await;
    assert!(
        h.emu.state().channel(&c2).is_some_and(|c| c.in_stasis),
        "the caller waits in the application"
    );
    r.crash().await;
    let r = r.restore(true).await;
    let h = &r.h;
    let report = h.ari.adoption().expect("the restart adopted");
    assert_eq!(
        (report.channels, report.routed, report.orphans),
        (2, 1, 0),
        "{report:?}"
    );
    h.until_agent("a2", "a2 talks to the new caller", talking)
        .await;
    let leg2 = leg_of(h, &c2);
    let b2 = BridgeId::main(&c2.as_str().into()).0;
    h.until_emu("c2 bridged with a2", |s| {
        s.bridge(&b2)
            .is_some_and(|b| b.channels.contains(&c2) && b.channels.contains(&leg2))
    })
    .await;
    // Past the orphan check: nothing handed back or hung up.
    pause(2_300).await;
    assert_eq!(
        h.requests("POST", &format!("/ari/channels/{c2}/continue")),
        0,
        "not handed back to the dialplan"
    );
    assert!(talking(&h.state("a1").await), "the restored call is kept");
    assert!(h.emu.state().channel(&leg1).is_some());
    for c in [&c1, &c2] {
        h.emu.caller_hangup(c).expect("caller hangs up");
    }
    h.until_ended("completed", 2).await;
    one_interaction_ended(h, &[&c1, &c2]);
    assert_eq!(h.snapshot().await.terminal_anomalies, 0);
}

/// Goal: Asterisk restarting while edgecc is down too is a PBX loss, not
/// ordinary endings (issue 16): the start-up time the killed process saw
/// is kept durable and compared on the restored process's first connect.
/// Method: a1 talks on one call, a second caller waits in the queue (a1 is
/// busy); edgecc is killed, the emulated Asterisk restarts (every channel
/// gone without an event, a new start-up time), edgecc is restored from
/// its state. Expected: the state held Asterisk's first start-up time; both
/// calls end `pbx_lost` (none `completed` or `abandoned`); the talking
/// call's `ended` update says `pbx_lost`, the queued caller gets its
/// interaction and a callback work item with reason `pbx_lost`; a1 is free;
/// the state now holds the new start-up time. Before the fix the restored
/// process had no start-up time to compare with and the calls ended
/// `completed` and `abandoned`.
#[actix_rt::test]
async fn asterisk_restarting_while_edgecc_is_down_ends_calls_pbx_lost() {
    let r = Restartable::start(
        config(&[("a1", A1)], 8_000),
        &[(A1, B::AnswerAfter { ring_ms: 50 })],
    )
    .await;
    let h = &r.h;
    h.ready("a1").await;
    let talking_call = h.inbound("5552301");
    h.until_agent("a1", "talking", talking).await;
    let queued_call = h.inbound("5552302");
    h.until_call(&queued_call, "queued", |c| c.phase == "queued")
        .await;
    let first = r.state.snapshot().pbx_startup_time;
    assert!(first.is_some(), "the start-up time is kept");
    r.crash().await;
    r.h.emu.restart_pbx();
    let r = r.restore(true).await;
    let h = &r.h;
    h.until_ended("pbx_lost", 2).await;
    let ended = h.ended().await;
    assert_eq!(ended.values().sum::<u64>(), 2, "{ended:?}");
    let records = h.outbox.records_of(&talking_call.as_str().into());
    let last = records.last().expect("records of the talking call");
    assert_eq!(last.body["event"], "ended");
    assert_eq!(last.body["terminal"]["reason"], "pbx_lost");
    let records = h.outbox.records_of(&queued_call.as_str().into());
    let kinds: Vec<_> = records.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        vec![RecordKind::InteractionCreate, RecordKind::WorkItemCreate]
    );
    assert_eq!(records[1].body["reason"], "pbx_lost");
    h.until_agent("a1", "a1 free", free).await;
    let state = r.state.clone();
    until("the new start-up time is kept", move || {
        let now = state.snapshot().pbx_startup_time;
        now.is_some() && now != first
    })
    .await;
}

/// Sends `method /ari/{path}` to the emulator with its credentials, as a
/// previous edgecc would have; answers the status.
async fn ari_request(emu: &AriEmulator, method: awc::http::Method, path: &str) -> u16 {
    let url = format!("{}/{path}", emu.base_url());
    let c = emu.config();
    awc::Client::new()
        .request(method, url)
        .basic_auth(&c.user, &c.password)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Goal: a monitor made by edgecc before issue 16, whose snoop channel is
/// named `{supervisor leg}~spy`, survives the upgrade when its supervisor
/// is still up (issue 16 follow-up): the restored process adopts that
/// snoop channel as the monitor's instead of hanging it up as an orphan,
/// and leaving the monitor leaves nothing behind. Method: sue monitors a1's
/// call; edgecc is killed; at the emulator the snoop channel is replaced,
/// as the old version named it, by `{sup}~spy` in the monitor's bridge
/// (Asterisk allows it: the supervisor's id is a prefix of the new one,
/// not the reverse); edgecc is restored. Expected: past the orphan check
/// the legacy snoop channel is still up; when sue leaves, it and the
/// supervisor's leg are gone while the call goes on.
#[actix_rt::test]
async fn a_legacy_snoop_channel_is_kept_with_its_monitor() {
    use awc::http::Method;
    use edgecc_actors::call::supervision::SuperviseMode;
    use edgecc_actors::registry::SuperviseAgent;
    const SUP: &str = "PJSIP/3999";
    let r = Restartable::start(
        config(&[("a1", A1)], 8_000),
        &[
            (A1, B::AnswerAfter { ring_ms: 50 }),
            (SUP, B::AnswerAfter { ring_ms: 50 }),
        ],
    )
    .await;
    let h = &r.h;
    h.ready("a1").await;
    let call = h.inbound("5552401");
    h.until_agent("a1", "talking", talking).await;
    let agent_leg = leg_of(h, &call);
    let supervise = |mode: Option<SuperviseMode>| SuperviseAgent {
        supervisor: "sue".into(),
        endpoint: SUP.into(),
        agent: AgentId::new("a1"),
        mode,
    };
    let joined = h
        .registry
        .send(supervise(Some(SuperviseMode::Monitor)))
        .await
        .expect("registry answers")
        .expect("join");
    let sup = joined.leg.expect("supervisor leg").0;
    let spy = edgecc::ari::state::spy_of(&sup);
    let bridge = BridgeId::snoop(&LegId::new(sup.clone())).0;
    h.until_emu("the monitor is bridged", |s| {
        s.bridge(&bridge)
            .is_some_and(|b| b.channels.contains(&spy) && b.channels.contains(&sup))
    })
    .await;
    r.crash().await;
    let legacy = edgecc::ari::adopt::legacy_spy_of(&sup);
    let emu = r.h.emu.clone();
    assert_eq!(
        ari_request(&emu, Method::DELETE, &format!("channels/{spy}")).await,
        204
    );
    let snoop = format!("channels/{agent_leg}/snoop?spy=both&app=edgecc&snoopId={legacy}");
    assert_eq!(ari_request(&emu, Method::POST, &snoop).await, 200);
    let add = format!("bridges/{bridge}/addChannel?channel={legacy}");
    assert_eq!(ari_request(&emu, Method::POST, &add).await, 204);
    let r = r.restore(true).await;
    let h = &r.h;
    pause(2_500).await;
    assert!(
        h.emu.state().channel(&legacy).is_some(),
        "the legacy snoop channel was hung up as an orphan"
    );
    h.registry
        .send(supervise(None))
        .await
        .expect("registry answers")
        .expect("leave");
    h.until_emu("the monitor leaves nothing", |s| {
        s.channel(&legacy).is_none() && s.channel(&sup).is_none()
    })
    .await;
    assert!(talking(&h.state("a1").await), "the call goes on");
}

/// Goal: a caller whose call ended (the queue gave up on it) while the
/// ending was still being carried out at Asterisk is finished by the next
/// life, not taken for a new call. Method: the queue times the caller out
/// after 300 ms to the `queue-closed` announcement (3 s long at the
/// emulator); edgecc is killed while the caller still hears it, `after`
/// ms past the end: 100 ms (the ended call is still in the saved state)
/// and 1,500 ms (past the 1 s an ended call used to linger, so its record
/// was already gone). The next life has an agent Ready. Expected: the
/// adoption routes no caller as new; the caller hears the announcement and
/// is hung up by edgecc once, never handed back or offered to the agent;
/// the call ended once (`timed_out`) with one interaction and one callback
/// work item. Before the fix, the caller was routed as a new call (a second
/// life of the same call: offered to the agent, a phone log, a second end).
#[actix_rt::test]
async fn a_caller_timed_out_during_its_announcement_is_finished_after_a_restart() {
    use edgecc_actors::config::FinalDestination;
    for after in [100, 1_500] {
        let mut cfg = config(&[("a1", A1)], 8_000);
        cfg.queues[0].max_wait_ms = 300;
        cfg.queues[0].final_destination = FinalDestination::Announcement {
            prompt: "queue-closed".into(),
        };
        // The first life waits for the announcement's end before its
        // hang-up; it never hears that end: its adapter (whose lanes this
        // harness cannot stop) is told to stop, and a stopping adapter
        // leaves the caller to the next life. Without that it hung up the
        // caller as the link went down, before the next life adopted it.
        let r = Restartable::start_tuned(cfg, &[(A1, B::AnswerAfter { ring_ms: 50 })], |s| {
            s.announcement_wait_max = std::time::Duration::from_secs(30)
        })
        .await;
        let h = &r.h;
        h.emu.set_playback_ms(3_000);
        let c1 = h.inbound("5552701");
        h.until_ended("timed_out", 1).await;
        pause(after).await;
        assert!(
            h.emu.state().channel(&c1).is_some_and(|c| c.in_stasis),
            "{after}: the caller still hears the announcement"
        );
        r.crash().await;
        let r = r.restore(true).await;
        let h = &r.h;
        h.ready("a1").await;
        h.until_emu("the caller is hung up", |s| s.channel(&c1).is_none())
            .await;
        let report = h.ari.adoption().expect("the restart adopted");
        assert_eq!((report.routed, report.ended), (0, 1), "{after}: {report:?}");
        assert_eq!(
            h.requests("DELETE", &format!("/ari/channels/{c1}")),
            1,
            "{after}: hung up by edgecc once"
        );
        assert_eq!(
            h.requests("POST", &format!("/ari/channels/{c1}/continue")),
            0,
            "{after}: not handed back to the dialplan"
        );
        pause(300).await;
        assert!(free(&h.state("a1").await), "{after}: a1 never offered it");
        assert_eq!(h.legs_of(&c1), Vec::<String>::new(), "{after}");
        let kinds = h.kinds(&c1);
        assert_eq!(
            (
                count(&kinds, RecordKind::InteractionCreate),
                count(&kinds, RecordKind::WorkItemCreate),
                count(&kinds, RecordKind::PhoneLogCreate),
            ),
            (1, 1, 0),
            "{after}: {kinds:?}"
        );
        let ended = h.ended().await;
        assert_eq!(
            ended.values().sum::<u64>(),
            0,
            "{after}: the new life ended nothing: {ended:?}"
        );
    }
}

/// Goal: a caller the queue sent to an external number whose redirect
/// had not reached Asterisk when edgecc died is sent there by the next
/// life. Method: max wait 300 ms, final destination external 5559999; the
/// emulator holds the `continue` request (it never takes effect) and
/// edgecc is killed meanwhile. Expected: after the restart the caller
/// continues in the redirect context at 5559999 (not routed as new, not
/// hung up); one interaction whose `ended` update is written once (by the
/// first life), no work item.
#[actix_rt::test]
async fn a_redirect_lost_in_a_restart_is_done_by_the_next_life() {
    use edgecc::ari_emulator::{FaultKind, RestFault};
    use edgecc_actors::config::FinalDestination;
    let mut cfg = config(&[("a1", A1)], 8_000);
    cfg.queues[0].max_wait_ms = 300;
    cfg.queues[0].final_destination = FinalDestination::External {
        number: "5559999".into(),
    };
    let r = Restartable::start(cfg, &[]).await;
    let h = &r.h;
    let c1 = h.inbound("5552702");
    h.emu.inject_rest_fault(RestFault {
        method: "POST".into(),
        path: format!("channels/{c1}/continue"),
        times: 1,
        kind: FaultKind::Hang(std::time::Duration::from_secs(5)),
    });
    h.until_ended("overflowed", 1).await;
    pause(100).await;
    assert!(h.emu.state().channel(&c1).is_some_and(|c| c.in_stasis));
    r.crash().await;
    let r = r.restore(true).await;
    let h = &r.h;
    h.until_emu("the caller continues at the external number", |s| {
        s.channel(&c1)
            .is_some_and(|c| !c.in_stasis && c.context == "edgecc-redirect" && c.exten == "5559999")
    })
    .await;
    let report = h.ari.adoption().expect("the restart adopted");
    assert_eq!(report.routed, 0, "{report:?}");
    assert_eq!(h.requests("DELETE", &format!("/ari/channels/{c1}")), 0);
    let kinds = h.kinds(&c1);
    assert_eq!(count(&kinds, RecordKind::InteractionCreate), 1, "{kinds:?}");
    assert_eq!(count(&kinds, RecordKind::WorkItemCreate), 0, "{kinds:?}");
    let u = h.updates(&c1);
    assert_eq!(u.iter().filter(|e| *e == "ended").count(), 1, "{u:?}");
}

/// Goal: a caller the queue sent to an external number whose redirect was
/// stuck at Asterisk for longer than an ended call used to linger (1 s)
/// when edgecc died is finished by the next life, not routed anew. Method:
/// max wait 300 ms, final destination external 5559999; the emulator
/// carries the `continue` out only 3 s after it came in (as a busy
/// Asterisk does: it answers late, and does it even though the client
/// died); edgecc is killed 1,500 ms after the end. Expected: the next life
/// routes no caller as new and redirects the caller itself; once the stuck
/// request is carried out too (refused: no longer in the application) the
/// caller is in the redirect context at 5559999, never hung up; one
/// interaction, its `ended` once, no work item, no end by the new life.
/// Before the fix the ended call's record was gone at the kill (its actor
/// stopped after the linger while the redirect was still stuck): the next
/// life took the caller for a new call.
#[actix_rt::test]
async fn a_redirect_stuck_at_asterisk_past_the_linger_is_finished_after_a_restart() {
    use edgecc::ari_emulator::{FaultKind, RestFault};
    use edgecc_actors::config::FinalDestination;
    let mut cfg = config(&[("a1", A1)], 8_000);
    cfg.queues[0].max_wait_ms = 300;
    cfg.queues[0].final_destination = FinalDestination::External {
        number: "5559999".into(),
    };
    let r = Restartable::start(cfg, &[(A1, B::AnswerAfter { ring_ms: 50 })]).await;
    let h = &r.h;
    let c1 = h.inbound("5552705");
    let cont = format!("/ari/channels/{c1}/continue");
    h.emu.inject_rest_fault(RestFault {
        method: "POST".into(),
        path: format!("channels/{c1}/continue"),
        times: 1,
        kind: FaultKind::Late(std::time::Duration::from_secs(3)),
    });
    h.until_ended("overflowed", 1).await;
    pause(1_500).await;
    assert!(
        h.emu.state().channel(&c1).is_some_and(|c| c.in_stasis),
        "the redirect is still stuck at Asterisk"
    );
    r.crash().await;
    let r = r.restore(true).await;
    let h = &r.h;
    h.ready("a1").await;
    let report = h.ari.adoption().expect("the restart adopted");
    assert_eq!((report.routed, report.ended), (0, 1), "{report:?}");
    let at_external = |s: &edgecc::ari_emulator::EmulatorState| {
        s.channel(&c1)
            .is_some_and(|c| !c.in_stasis && c.context == "edgecc-redirect" && c.exten == "5559999")
    };
    h.until_emu("the next life redirects the caller", at_external)
        .await;
    // Past the 3 s: the stuck request has been carried out (refused).
    pause(1_600).await;
    assert!(h.requests("POST", &cont) >= 1, "the next life's redirect");
    assert!(at_external(&h.emu.state()), "still at the external number");
    assert_eq!(h.requests("DELETE", &format!("/ari/channels/{c1}")), 0);
    assert!(free(&h.state("a1").await), "a1 never offered it");
    let kinds = h.kinds(&c1);
    assert_eq!(
        (
            count(&kinds, RecordKind::InteractionCreate),
            count(&kinds, RecordKind::WorkItemCreate),
            count(&kinds, RecordKind::PhoneLogCreate),
        ),
        (1, 0, 0),
        "{kinds:?}"
    );
    let u = h.updates(&c1);
    assert_eq!(u.iter().filter(|e| *e == "ended").count(), 1, "{u:?}");
    let ended = h.ended().await;
    assert_eq!(
        ended.values().sum::<u64>(),
        0,
        "the new life ended nothing: {ended:?}"
    );
}

/// Goal: the caller of a call its agent ended, whose hang-up had not
/// reached Asterisk when edgecc died, is hung up by the next life (not
/// routed as a new call). Method: a1 talks to the caller and hangs up; the
/// emulator holds the caller's `DELETE` (it never takes effect); edgecc is
/// killed meanwhile; the next life has a1 Ready again. Expected: the
/// caller is hung up by the new life once; a1 is never offered it; the call
/// has one interaction, one phone log and one `ended` update.
#[actix_rt::test]
async fn a_hang_up_lost_in_a_restart_is_done_by_the_next_life() {
    use edgecc::ari_emulator::{FaultKind, RestFault};
    let r = Restartable::start(
        config(&[("a1", A1)], 8_000),
        &[(A1, B::AnswerAfter { ring_ms: 50 })],
    )
    .await;
    let h = &r.h;
    h.ready("a1").await;
    let c1 = h.inbound("5552703");
    h.until_agent("a1", "talking", talking).await;
    h.emu.inject_rest_fault(RestFault {
        method: "DELETE".into(),
        path: format!("channels/{c1}"),
        times: 1,
        kind: FaultKind::Hang(std::time::Duration::from_secs(5)),
    });
    h.act("a1", CallAction::HangUp).await.expect("a1 hangs up");
    h.until_ended("completed", 1).await;
    pause(100).await;
    assert!(h.emu.state().channel(&c1).is_some_and(|c| c.in_stasis));
    r.crash().await;
    let r = r.restore(true).await;
    let h = &r.h;
    h.until_emu("the caller is hung up", |s| s.channel(&c1).is_none())
        .await;
    let report = h.ari.adoption().expect("the restart adopted");
    assert_eq!((report.routed, report.ended), (0, 1), "{report:?}");
    // a1 came back logged in (its state is restored): Ready, if not yet.
    if !matches!(
        h.state("a1").await,
        edgecc_actors::agent::AgentState::Ready { .. }
    ) {
        h.cmd("a1", AgentCommand::Ready).await.expect("ready");
    }
    pause(300).await;
    assert!(free(&h.state("a1").await), "a1 never offered it");
    one_interaction_ended(h, &[&c1]);
}

/// Goal: a bridge edgecc named for a call that ended is not left at
/// Asterisk by a restart, and bridges edgecc did not name or a live call
/// needs are never destroyed. Method: a1 talks to c1, a2 to c2; a bridge
/// `pen` is made at Asterisk by someone else (no `~` in its id); a1 hangs
/// up while the emulator holds the DELETE of c1 (not carried out; the
/// bridge's destruction waits behind it), so `b~c1` is left holding the
/// caller; edgecc
/// is killed and restored. Expected: the adoption counts `b~c1` as left
/// and destroys it; the caller is hung up once; `b~c2` (c2 still talking)
/// and `pen` are still there, never asked to be destroyed. Before the fix
/// `b~c1` held a known leg (the ended call's caller), so it was neither
/// adopted nor an orphan and stayed at Asterisk, empty once the caller
/// was hung up.
#[actix_rt::test]
async fn the_left_bridge_of_an_ended_call_is_destroyed_after_a_restart() {
    use edgecc::ari_emulator::{FaultKind, RestFault};
    let r = Restartable::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[
            (A1, B::AnswerAfter { ring_ms: 50 }),
            (A2, B::AnswerAfter { ring_ms: 50 }),
        ],
    )
    .await;
    let h = &r.h;
    h.ready("a1").await;
    let c1 = h.inbound("5552706");
    h.until_agent("a1", "talking", talking).await;
    h.ready("a2").await;
    let c2 = h.inbound("5552707");
    h.until_agent("a2", "talking", talking).await;
    assert_eq!(
        ari_request(
            &h.emu,
            awc::http::Method::POST,
            "bridges?type=mixing&bridgeId=pen"
        )
        .await,
        200
    );
    let b1 = BridgeId::main(&c1.as_str().into()).0;
    let b2 = BridgeId::main(&c2.as_str().into()).0;
    // The call's lane waits on the caller's hang-up: its bridge's
    // destruction, queued behind it, is never sent.
    h.emu.inject_rest_fault(RestFault {
        method: "DELETE".into(),
        path: format!("channels/{c1}"),
        times: 1,
        kind: FaultKind::Hang(std::time::Duration::from_secs(5)),
    });
    h.act("a1", CallAction::HangUp).await.expect("a1 hangs up");
    h.until_ended("completed", 1).await;
    pause(100).await;
    let left = |s: &edgecc::ari_emulator::EmulatorState| {
        s.bridge(&b1).is_some_and(|b| b.channels.contains(&c1))
    };
    assert!(left(&h.emu.state()), "b~c1 is left holding the caller");
    r.crash().await;
    let r = r.restore(true).await;
    let h = &r.h;
    h.until_emu("the ended call's bridge is destroyed", |s| {
        s.bridge(&b1).is_none() && s.channel(&c1).is_none()
    })
    .await;
    let report = h.ari.adoption().expect("the restart adopted");
    assert_eq!((report.ended, report.left_bridges), (1, 1), "{report:?}");
    // Past the orphan check.
    pause(2_300).await;
    let s = h.emu.state();
    assert!(
        s.bridge(&b2).is_some_and(|b| b.channels.len() == 2),
        "the live call's bridge is kept"
    );
    assert!(
        s.bridge("pen").is_some(),
        "a bridge edgecc did not name is kept"
    );
    assert_eq!(h.requests("DELETE", "/ari/bridges/pen"), 0);
    assert_eq!(h.requests("DELETE", &format!("/ari/bridges/{b2}")), 0);
    assert!(talking(&h.state("a2").await), "c2 goes on");
    one_interaction_ended(h, &[&c1]);
}

/// Goal: a conference survives a restart (the list: a conferenced
/// call on the ARI emulator). Method: a1 consults a2 and makes it a
/// conference (caller, a1 and a2 in the main bridge); edgecc is killed and
/// restored. Expected: nothing hung up, handed back or destroyed; the
/// three channels adopted with the main bridge, no orphan; both agents
/// still talking; the call then ends normally when the caller hangs up
/// (both agent legs hung up), with one interaction, one phone log, the
/// conference update and one `ended`.
#[actix_rt::test]
async fn restart_during_a_conference() {
    let r = Restartable::start(
        config(&[("a1", A1), ("a2", A2)], 8_000),
        &[
            (A1, B::AnswerAfter { ring_ms: 50 }),
            (A2, B::AnswerAfter { ring_ms: 50 }),
        ],
    )
    .await;
    let h = &r.h;
    h.ready("a1").await;
    let c1 = h.inbound("5552704");
    h.until_agent("a1", "talking", talking).await;
    let leg1 = leg_of(h, &c1);
    h.ready("a2").await;
    h.act(
        "a1",
        CallAction::Consult {
            target: AgentId::new("a2"),
        },
    )
    .await
    .expect("consult");
    let consult = BridgeId::consult(&c1.as_str().into()).0;
    h.until_emu("a1 and a2 in the consult bridge", |s| {
        s.bridge(&consult).is_some_and(|b| b.channels.len() == 2)
    })
    .await;
    let leg2 = h
        .legs_of(&c1)
        .into_iter()
        .find(|l| *l != leg1)
        .expect("a2's leg");
    h.act("a1", CallAction::ConferenceConsult)
        .await
        .expect("conference");
    let main = BridgeId::main(&c1.as_str().into()).0;
    let three = |s: &edgecc::ari_emulator::EmulatorState| {
        s.bridge(&main).is_some_and(|b| {
            b.channels.len() == 3 && [&c1, &leg1, &leg2].iter().all(|x| b.channels.contains(x))
        })
    };
    h.until_emu("three in the main bridge", three).await;
    h.until_call(&c1, "two parties", |c| c.parties.len() == 2)
        .await;
    h.until_emu("consult bridge destroyed", |s| s.bridge(&consult).is_none())
        .await;
    pause(100).await;
    let given_away = destructive_requests(h);

    r.crash().await;
    let r = r.restore(true).await;
    let h = &r.h;
    pause(2_300).await;
    assert_eq!(
        destructive_requests(h),
        given_away,
        "the conference is kept"
    );
    let report = h.ari.adoption().expect("the restart adopted");
    assert_eq!(
        (report.channels, report.gone, report.orphans, report.routed),
        (3, 0, 0, 0),
        "{report:?}"
    );
    assert!(three(&h.emu.state()), "still three in the main bridge");
    assert!(talking(&h.state("a1").await) && talking(&h.state("a2").await));

    h.emu.caller_hangup(&c1).expect("c1 hangs up");
    h.until_ended("completed", 1).await;
    for leg in [&leg1, &leg2] {
        let leg = leg.clone();
        h.until_emu("agent legs hung up at the end", move |s| {
            s.channel(&leg).is_none()
        })
        .await;
    }
    one_interaction_ended(h, &[&c1]);
    let u = h.updates(&c1);
    assert!(u.iter().any(|e| e == "conference"), "{u:?}");
    assert_eq!(h.snapshot().await.terminal_anomalies, 0);
}
