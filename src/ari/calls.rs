//! [`Calls`]: the adapter's one owner of the call picture. It holds the
//! legs and bridges ([`AriState`], pure), runs each call's commands and
//! effects in order in that call's *lane* (different calls run in
//! parallel), delivers [`PbxEvent`]s to the registry, and takes what the
//! link reads ([`LinkSink`]). It reads and steers the link only through
//! [`LinkControl`]; the link never touches the picture.
//!
//! Everything runs on the actix system's one thread; lanes are tasks that
//! borrow the picture between awaits, never across one.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use edgecc_actors::ports::{LocalBoxFuture, PbxCommand, PbxError, PbxEvent};
use edgecc_actors::registry::{PbxStarted, Reconcile};
use tokio::sync::oneshot;
use tracing::{debug, info};

use super::adopt::{AdoptionPlan, AdoptionReport};
use super::events::{AriEvent, Bridge, Channel, Envelope};
use super::link::{starting_channels, Flow, LinkControl, LinkSink};
use super::rest::RestClient;
use super::settings::AriSettings;
use super::state::{call_of_bridge, call_of_leg, AriState, Effect};

/// How long after a reconcile unknown channels are checked again before
/// being handed back (their StasisStart may still be on its way).
pub const ORPHAN_CHECK_DELAY: Duration = Duration::from_secs(2);

/// Counters of the command side, merged into [`super::AriStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandStats {
    /// Commands received.
    pub commands: u64,
    /// Commands refused at once because the link was down.
    pub link_down_refusals: u64,
}

/// The call picture and the lanes that change it.
pub(crate) struct Calls {
    /// Timeouts, media and dialplan names the commands use.
    pub settings: Arc<AriSettings>,
    /// Where commands and effects send their requests.
    pub rest: RestClient,
    /// The link's switches: commands run only while it is up, and a REST
    /// failure that leaves the picture in doubt restarts it.
    pub link: Rc<LinkControl>,
    /// The legs and bridges as edgecc knows them (pure; events and
    /// reconciles change it, and so do the commands' own steps).
    pub state: RefCell<AriState>,
    /// The registry, once connected; events before it are dropped (logged).
    events: RefCell<Option<Recipient<PbxEvent>>>,
    /// Lanes by call id: one call's jobs in order, one runner each.
    lanes: RefCell<HashMap<String, Lane>>,
    /// Command counters.
    stats: Cell<CommandStats>,
    /// Playback ids minted so far (each announcement gets its own).
    playback_seq: Cell<u64>,
    /// An adoption asked for after a restart, done by the next reconcile
    /// of a session that keeps the application.
    adoption: RefCell<Option<PendingAdoption>>,
    /// What the adoption did, once done.
    adopted: RefCell<Option<AdoptionReport>>,
    /// Where a start-up time read from Asterisk goes to be kept durable
    /// (the registry, which hands it to the actors' state port), if wired.
    startups: RefCell<Option<Recipient<PbxStarted>>>,
    /// The start-up time last handed to `startups` (or read back from the
    /// restored state): a new one is handed over once.
    startup_saved: RefCell<Option<String>>,
}

/// A restart's adoption, waiting for its reconcile.
pub(crate) struct PendingAdoption {
    /// What the restored snapshot expects at Asterisk.
    pub plan: AdoptionPlan,
    /// Where the legs found go (the registry), once.
    pub reconcile: Recipient<Reconcile>,
    /// When it was asked for (the restart's cost is measured from here).
    pub asked: Instant,
}

/// One unit of work in a call's lane.
enum Job {
    /// A command from the actors, with where its result goes.
    Command(PbxCommand, oneshot::Sender<Result<(), PbxError>>),
    /// Work that followed from an event.
    Effect(Effect),
}

/// A call's commands, run one at a time.
#[derive(Default)]
struct Lane {
    /// Waiting jobs.
    jobs: VecDeque<Job>,
    /// A runner task is draining `jobs`.
    running: bool,
}

/// The lane of a command: the call its ids belong to.
fn lane_of(cmd: &PbxCommand) -> String {
    match cmd {
        PbxCommand::Conference { bridge_id, .. } | PbxCommand::DestroyBridge { bridge_id } => {
            call_of_bridge(bridge_id.as_str())
        }
        PbxCommand::Snoop { snoop_leg_id, .. } => call_of_leg(snoop_leg_id.as_str()),
        other => other
            .leg()
            .map(|l| call_of_leg(l.as_str()))
            .unwrap_or_default(),
    }
}

impl Calls {
    /// The owner of the call picture for `settings`, steering `link`.
    pub fn new(settings: Arc<AriSettings>, rest: RestClient, link: Rc<LinkControl>) -> Calls {
        Calls {
            state: RefCell::new(AriState::new(&settings.app)),
            settings,
            rest,
            link,
            events: RefCell::new(None),
            lanes: RefCell::new(HashMap::new()),
            stats: Cell::new(CommandStats::default()),
            playback_seq: Cell::new(0),
            adoption: RefCell::new(None),
            adopted: RefCell::new(None),
            startups: RefCell::new(None),
            startup_saved: RefCell::new(None),
        }
    }

    /// Keeps each new start-up time Asterisk reports durable through
    /// `sink`; `previous` is the one a previous process kept (from the
    /// restored state), which the first connect compares with.
    pub fn keep_startups(&self, sink: Recipient<PbxStarted>, previous: Option<String>) {
        self.state.borrow_mut().previous_startup(previous.clone());
        *self.startup_saved.borrow_mut() = previous;
        *self.startups.borrow_mut() = Some(sink);
    }

    /// `startup` if it is new (not handed over yet) and there is a sink:
    /// marked as handed over.
    fn startup_to_save(&self, startup: Option<&str>) -> Option<String> {
        let startup = startup?;
        self.startups.borrow().as_ref()?;
        let mut saved = self.startup_saved.borrow_mut();
        if saved.as_deref() == Some(startup) {
            return None;
        }
        *saved = Some(startup.to_owned());
        Some(startup.to_owned())
    }

    /// Adopts what `adoption` names at the next reconcile (see
    /// [`super::adopt`]).
    pub fn adopt_on_connect(&self, adoption: PendingAdoption) {
        *self.adoption.borrow_mut() = Some(adoption);
    }

    /// What the restart's adoption did, once done.
    pub fn adopted(&self) -> Option<AdoptionReport> {
        self.adopted.borrow().clone()
    }

    /// Runs a pending adoption before the reconcile of `channels` and
    /// `bridges`, then that reconcile; answers the reconcile's effects.
    /// The registry gets the adopted legs before any event of the
    /// session, so each restored call reconciles before it hears news.
    /// `restarted`: Asterisk's start-up time changed since the one last
    /// seen (by this process or, kept durable, by the previous one), so
    /// what the snapshot names and Asterisk no longer lists was dropped by
    /// it (the restored calls end `pbx_lost`); `startup` is that time, to
    /// keep durable.
    fn adopt_and_reconcile(
        &self,
        startup: Option<&str>,
        restarted: bool,
        channels: &[Channel],
        bridges: &[Bridge],
        starting: &std::collections::HashSet<String>,
    ) -> Vec<super::state::Effect> {
        let Some(pending) = self.adoption.borrow_mut().take() else {
            return self
                .state
                .borrow_mut()
                .reconcile(channels, bridges, starting);
        };
        let (legs, mut report) = self
            .state
            .borrow_mut()
            .adopt(&pending.plan, channels, bridges);
        // A leg edgecc named that still rings (not in the application yet)
        // and that neither the saved state nor this process knows: an
        // offer (or dial) the killed process made after its last durable
        // state change. Hung up now, before the queues route again, so its
        // agent is never offered a second call while it rings. Picked out
        // before the reconcile, which may let go of legs it hangs up.
        let stale: Vec<String> = {
            let state = self.state.borrow();
            channels
                .iter()
                .filter(|c| edgecc_actors::ids::is_minted(&c.id) && !c.in_app(&self.settings.app))
                .filter(|c| {
                    // A Local channel's `;2` half goes with its known `;1`.
                    let leg = c.id.strip_suffix(";2").unwrap_or(&c.id);
                    !state.legs.contains_key(leg) && !pending.plan.legs.contains_key(leg)
                })
                .map(|c| c.id.clone())
                .collect()
        };
        // Callers that arrived just before the crash: new calls, emitted
        // after the restored calls' reconcile (returned effects run after
        // the `Reconcile` below is sent).
        let mut effects = self.state.borrow_mut().route_unknown_callers(
            &pending.plan,
            channels,
            starting,
            &mut report,
        );
        effects.extend(
            self.state
                .borrow_mut()
                .reconcile(channels, bridges, starting),
        );
        for channel in stale {
            info!(channel = %channel, "Restart: a leg the saved state does not know still rings; hanging it up.");
            effects.push(super::state::Effect::HangupChannel {
                channel,
                cause: edgecc_actors::HangupCause::Normal,
            });
        }
        report.orphans = effects
            .iter()
            .map(|fx| match fx {
                super::state::Effect::CheckOrphans { channels, bridges } => {
                    channels.len() + bridges.len()
                }
                _ => 0,
            })
            .sum();
        report.took_ms = pending.asked.elapsed().as_millis() as u64;
        info!(
            channels_adopted = report.channels,
            bridges_adopted = report.bridges,
            legs_gone = report.gone,
            orphans = report.orphans,
            routed_as_new = report.routed,
            took_ms = report.took_ms,
            "Restart: calls at Asterisk re-adopted from the restored state."
        );
        if restarted {
            self.state.borrow_mut().stats.lost_by_pbx += report.gone as u64;
        }
        // The registry keeps the new start-up time only once every
        // restored call reconciled (and wrote its end).
        pending.reconcile.do_send(Reconcile {
            legs,
            pbx_lost: restarted,
            pbx_startup: self.startup_to_save(startup),
        });
        *self.adopted.borrow_mut() = Some(report);
        effects
    }

    /// Changes the command counters.
    fn count(&self, f: impl FnOnce(&mut CommandStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }

    /// A command from the actors: refused at once while the link is down,
    /// else queued in its call's lane; the answer comes when it ran.
    pub fn send(
        this: &Rc<Calls>,
        cmd: PbxCommand,
    ) -> LocalBoxFuture<'static, Result<(), PbxError>> {
        this.count(|c| c.commands += 1);
        if !this.link.is_up() {
            this.refuse_while_down(&cmd);
            return Box::pin(async { Err(PbxError::LinkDown) });
        }
        let (tx, rx) = oneshot::channel();
        let lane = lane_of(&cmd);
        Calls::enqueue(this, lane, Job::Command(cmd, tx));
        Box::pin(async move { rx.await.unwrap_or(Err(PbxError::LinkDown)) })
    }

    /// Delivers an event to the registry.
    pub fn emit(&self, ev: PbxEvent) {
        match self.events.borrow().as_ref() {
            // `do_send` as the simulated PBX does: a PBX fact is never
            // dropped for a full mailbox.
            Some(r) => r.do_send(ev),
            None => debug!(event = ?ev, "No registry yet; PBX event dropped."),
        }
    }

    /// A command arrived while the link is down: refuse it, but remember a
    /// hang-up (and a bridge to destroy) for after the reconnect.
    fn refuse_while_down(&self, cmd: &PbxCommand) {
        self.count(|c| c.link_down_refusals += 1);
        let mut st = self.state.borrow_mut();
        // Before a restart's adoption, the restored actors' legs and
        // bridges are not in the picture yet: what they ask to end (a
        // timer that expired while edgecc was down) is done by the
        // adoption's reconcile.
        let mut adoption = self.adoption.borrow_mut();
        match cmd {
            PbxCommand::Hangup { leg_id, cause } => {
                let id = leg_id.as_str();
                if let Some(leg) = st.legs.get_mut(id) {
                    leg.hangup_requested.get_or_insert(*cause);
                    info!(leg_id = %leg_id, "Hang-up asked while the PBX link is down; done after the reconnect.");
                } else if let Some(p) = adoption.as_mut().filter(|p| p.plan.legs.contains_key(id)) {
                    p.plan.hangups.entry(id.to_owned()).or_insert(*cause);
                    info!(leg_id = %leg_id, "Hang-up asked before the restart's adoption; done by it.");
                }
            }
            PbxCommand::DestroyBridge { bridge_id } => {
                let id = bridge_id.as_str();
                let adopting = adoption
                    .as_ref()
                    .is_some_and(|p| p.plan.calls.contains(&call_of_bridge(id)));
                if st.bridges.contains_key(id) || adopting {
                    st.bridges_to_destroy.insert(id.to_owned());
                }
            }
            _ => {}
        }
        debug!(cmd = ?cmd, "PBX command refused: link down.");
    }

    /// Queues `job` in `lane`, starting the lane's runner if idle.
    fn enqueue(this: &Rc<Calls>, lane: String, job: Job) {
        let start = {
            let mut lanes = this.lanes.borrow_mut();
            let l = lanes.entry(lane.clone()).or_default();
            l.jobs.push_back(job);
            !std::mem::replace(&mut l.running, true)
        };
        if start {
            let calls = this.clone();
            actix_rt::spawn(async move {
                loop {
                    let job = {
                        let mut lanes = calls.lanes.borrow_mut();
                        match lanes.get_mut(&lane).and_then(|l| l.jobs.pop_front()) {
                            Some(j) => j,
                            None => {
                                lanes.remove(&lane);
                                break;
                            }
                        }
                    };
                    match job {
                        Job::Command(cmd, tx) => {
                            let r = if calls.link.is_up() {
                                calls.execute(cmd.clone()).await
                            } else {
                                calls.refuse_while_down(&cmd);
                                Err(PbxError::LinkDown)
                            };
                            if let Err(e) = &r {
                                debug!(cmd = ?cmd, error = %e, "PBX command failed.");
                            }
                            let _ = tx.send(r);
                        }
                        Job::Effect(fx) => calls.effect(fx).await,
                    }
                }
            });
        }
    }

    /// Carries out the effects of an event: events go out now (in order),
    /// REST work into the lane of its call.
    pub fn apply(this: &Rc<Calls>, effects: Vec<Effect>) -> Flow {
        let mut flow = Flow::Continue;
        for fx in effects {
            match fx {
                Effect::Emit(ev) => this.emit(ev),
                Effect::Replaced => flow = Flow::Replaced,
                Effect::CheckOrphans { channels, bridges } => {
                    let calls = this.clone();
                    actix_rt::spawn(async move {
                        actix_rt::time::sleep(ORPHAN_CHECK_DELAY).await;
                        calls.check_orphans(channels, bridges).await;
                    });
                }
                other => {
                    let lane = match &other {
                        Effect::HangupChannel { channel, .. }
                        | Effect::ContinueChannel { channel }
                        | Effect::JoinBridge { channel, .. } => call_of_leg(channel),
                        Effect::BridgeSpy { supervisor, .. } => call_of_leg(supervisor),
                        Effect::DestroyBridge { bridge } => call_of_bridge(bridge),
                        Effect::DialCustomer { customer, .. } => call_of_leg(customer),
                        _ => String::new(),
                    };
                    Calls::enqueue(this, lane, Job::Effect(other));
                }
            }
        }
        flow
    }

    /// Sets where events go (the registry).
    pub fn connect_events(&self, recipient: Recipient<PbxEvent>) {
        *self.events.borrow_mut() = Some(recipient);
    }

    /// A copy of the command counters.
    pub fn stats(&self) -> CommandStats {
        self.stats.get()
    }

    /// The next playback id of leg `leg`.
    pub fn next_playback_id(&self, leg: &str) -> String {
        let n = self.playback_seq.get() + 1;
        self.playback_seq.set(n);
        format!("{leg}~pb{n}")
    }
}

impl LinkSink for Calls {
    fn reconciled(
        self: Rc<Self>,
        startup: Option<&str>,
        channels: &[Channel],
        bridges: &[Bridge],
        buffered: &[Envelope],
    ) -> (Flow, usize) {
        let restarted = self.state.borrow_mut().pbx_started(startup);
        let starting = starting_channels(buffered);
        let replaced = buffered
            .iter()
            .any(|e| matches!(e.event, AriEvent::ApplicationReplaced {}));
        if replaced && self.adoption.borrow().is_some() {
            // Another client has the application: nothing here is ours
            // to adopt or to hang up; the adoption waits for a session
            // that keeps it.
            return (Flow::Replaced, self.state.borrow().legs.len());
        }
        let adopting = self.adoption.borrow().is_some();
        let effects = self.adopt_and_reconcile(startup, restarted, channels, bridges, &starting);
        let mut flow = Calls::apply(&self, effects);
        for env in buffered {
            let fx = self.state.borrow_mut().on_event(env);
            if Calls::apply(&self, fx) == Flow::Replaced {
                flow = Flow::Replaced;
            }
        }
        if !adopting {
            // Handed over after the reconcile's events went out (an
            // adoption's goes with its `Reconcile`). The calls' ends are
            // written once the actors handled those events: a crash in
            // that moment keeps the new time without them, and those calls
            // would then end as hang-ups.
            if let Some(startup_time) = self.startup_to_save(startup) {
                if let Some(sink) = self.startups.borrow().as_ref() {
                    sink.do_send(PbxStarted { startup_time });
                }
            }
        }
        let legs = self.state.borrow().legs.len();
        (flow, legs)
    }

    fn event(self: Rc<Self>, envelope: &Envelope) -> Flow {
        let fx = self.state.borrow_mut().on_event(envelope);
        Calls::apply(&self, fx)
    }

    fn pbx_gone(self: Rc<Self>) {
        let mut fx = self.state.borrow_mut().give_up();
        // Restored calls not adopted yet (edgecc restarted while Asterisk
        // was gone): their callers end too, and the adoption, when
        // Asterisk comes back, adopts nothing (what it has is an orphan)
        // but still tells the registry, which waits for it.
        if let Some(pending) = self.adoption.borrow_mut().as_mut() {
            let plan = &mut pending.plan;
            let mut lost = 0;
            for (id, want) in &plan.legs {
                if matches!(want.role, super::state::LegRole::Spy { .. }) {
                    continue;
                }
                lost += 1;
                fx.push(Effect::Emit(PbxEvent::LegHungUp {
                    leg_id: edgecc_actors::LegId::new(id.clone()),
                    cause: edgecc_actors::HangupCause::PbxLost,
                }));
            }
            self.state.borrow_mut().stats.lost_by_pbx += lost;
            plan.legs.clear();
            plan.calls.clear();
            plan.hangups.clear();
        }
        let legs = fx.len();
        info!(legs, "Calls of the unreachable PBX ended as lost by it.");
        Calls::apply(&self, fx);
    }

    fn link_changed(self: Rc<Self>, up: bool) {
        self.emit(if up {
            PbxEvent::LinkUp
        } else {
            PbxEvent::LinkDown
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecc_actors::ids::BridgeId;
    use edgecc_actors::{HangupCause, LegId};

    /// Every command's lane is its call, so one call's commands stay in
    /// order while calls run in parallel.
    #[test]
    fn commands_run_in_their_call_lane() {
        let l = LegId::new("c1~4");
        assert_eq!(
            lane_of(&PbxCommand::Hangup {
                leg_id: l.clone(),
                cause: HangupCause::Normal
            }),
            "c1"
        );
        assert_eq!(
            lane_of(&PbxCommand::DestroyBridge {
                bridge_id: BridgeId::consult(&"c1".into())
            }),
            "c1"
        );
        assert_eq!(
            lane_of(&PbxCommand::Answer {
                leg_id: LegId::new("c1")
            }),
            "c1"
        );
    }

    /// Records the reconciles the registry would get.
    struct Registry(Rc<Cell<usize>>);

    impl actix::Actor for Registry {
        type Context = actix::Context<Self>;
    }

    impl actix::Handler<Reconcile> for Registry {
        type Result = usize;

        fn handle(&mut self, msg: Reconcile, _: &mut Self::Context) -> usize {
            self.0.set(self.0.get() + 1);
            msg.legs.len()
        }
    }

    /// A restart's adoption is not spent on a session that lost the
    /// application (nothing adopted, nothing reported, nothing taken for
    /// an orphan); the next session adopts and reports once; a later
    /// reconcile reports nothing more.
    #[actix_rt::test]
    async fn adoption_waits_for_a_session_that_keeps_the_app() {
        use super::super::adopt::WantedLeg;
        use super::super::state::{LegRole, OnAnswer};
        use actix::Actor as _;
        let settings = Arc::new(AriSettings::for_test(
            "http://127.0.0.1:9/ari",
            "edgecc",
            "u",
            "p",
        ));
        let rest = RestClient::new(settings.clone()).expect("client");
        let calls = Rc::new(Calls::new(settings, rest, Rc::new(LinkControl::default())));
        let reconciles = Rc::new(Cell::new(0));
        let registry = Registry(reconciles.clone()).start();
        let mut plan = AdoptionPlan::default();
        plan.calls.insert("c1".into());
        plan.legs.insert(
            "c1".into(),
            WantedLeg {
                role: LegRole::Caller,
                on_answer: OnAnswer::Nothing,
                held_from: None,
                hold: None,
            },
        );
        calls.adopt_on_connect(PendingAdoption {
            plan,
            reconcile: registry.recipient(),
            asked: Instant::now(),
        });
        let mut c1 = Channel {
            id: "c1".into(),
            state: "Up".into(),
            ..Channel::default()
        };
        c1.dialplan.app_name = "Stasis".into();
        c1.dialplan.app_data = "edgecc,inbound".into();
        let replaced = Envelope {
            event: AriEvent::ApplicationReplaced {},
            timestamp_ms: None,
            type_name: "ApplicationReplaced".into(),
        };
        let channels = [c1];
        let r = calls.clone().reconciled(None, &channels, &[], &[replaced]);
        assert_eq!(r, (Flow::Replaced, 0));
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(reconciles.get(), 0);
        assert!(calls.adopted().is_none());
        let r = calls.clone().reconciled(None, &channels, &[], &[]);
        assert_eq!(r, (Flow::Continue, 1));
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(reconciles.get(), 1);
        assert_eq!(calls.adopted().map(|a| a.channels), Some(1));
        let r = calls.clone().reconciled(None, &channels, &[], &[]);
        assert_eq!(r, (Flow::Continue, 1));
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(reconciles.get(), 1, "one Reconcile per restart");
    }
}
