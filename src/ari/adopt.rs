//! Re-adoption after an edgecc restart: what the restored actors' snapshot
//! says edgecc had at Asterisk ([`AdoptionPlan`], built from a
//! [`StateSnapshot`]), and the pure step that puts the channels and bridges
//! Asterisk still lists back into the adapter's picture
//! ([`AriState::adopt`]) and answers the legs for the registry's
//! [`Reconcile`](edgecc_actors::registry::Reconcile).
//!
//! A fresh process knows no leg, so without this the first reconcile would
//! take every channel in the application for an orphan: agent legs hung
//! up, callers handed back to the dialplan, bridges destroyed. With it,
//! only what edgecc named and the snapshot does not know is an orphan.
//!
//! What is adopted:
//!
//! - every leg a live (not ended) call of the snapshot names: its caller
//!   (while still in the application), its offers, the agent of an outbound
//!   call being dialled, its parties and a consult or conference leg, its
//!   supervisors (and a monitor's snoop channel); answered when it is in
//!   the application (an originated channel enters it on answer), ringing
//!   otherwise;
//! - every bridge edgecc named for such a call (`b~`, `k~`, `s~`), and any
//!   other bridge holding an adopted channel, with its members as listed;
//!   each adopted leg is put back in the bridge that lists it;
//! - a held caller is out of its bridge hearing music: it goes back into
//!   the call's main bridge on resume, as before the restart;
//! - the caller of a call that had ended, still in the application (the
//!   process died before Asterisk carried the ending out: a final
//!   announcement playing, a redirect or a hang-up not done yet): adopted
//!   alone (not its bridges), so the restored call finishes its ending
//!   (`edgecc_actors::call` `finish_ending`) instead of the caller being
//!   taken for a new call; a bridge edgecc named that it was left in (and
//!   that holds no leg of a live call) is destroyed by the reconcile.
//!
//! Bridges edgecc did not name (no `~` in the id) are never adopted nor
//! destroyed; bridges it named that no live call needs and that hold no
//! leg it knows are orphans, destroyed after the orphan check.
//!
//! A caller waiting in the application that the snapshot does not know (it
//! arrived just before the crash, so nothing of it was persisted) is routed
//! as a new call, as its StasisStart would have been
//! ([`AriState::route_unknown_callers`]); a leg edgecc named that the
//! snapshot does not know stays an orphan (hung up).
//!
//! A snapshot leg Asterisk no longer lists is simply left out: the actors
//! close what it belonged to. A hang-up (or a bridge to destroy) the
//! restored actors ask for before the adoption, while the link is not up
//! yet (a timer that expired while edgecc was down), is remembered and
//! done by the adoption's reconcile, as after any reconnect.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use edgecc_actors::call::{CallPhase, Direction, ORIGINATE_TIMEOUT_SLACK_MS};
use edgecc_actors::durable::StateSnapshot;
use edgecc_actors::ids::{is_minted, BridgeId, LegId};
use edgecc_actors::ports::LegStatus;
use edgecc_actors::HangupCause;

use super::events::{Bridge, Channel};
use super::state::{
    call_of_bridge, id_ok, spy_of, AriState, Effect, HoldMedia, Leg, LegRole, OnAnswer,
    ARG_AGENT_OUTBOUND, ARG_INBOUND,
};

/// One leg the snapshot says edgecc had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedLeg {
    /// What it is.
    pub role: LegRole,
    /// What to do if it answers after the restart.
    pub on_answer: OnAnswer,
    /// For a held caller: the bridge it goes back to on resume.
    pub held_from: Option<String>,
    /// What a caller hears: music while held, the waiting media while
    /// queued or offered (so a resume stops the right one).
    pub hold: Option<HoldMedia>,
}

/// What a restored system expects to find at Asterisk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdoptionPlan {
    /// Legs by channel id.
    pub legs: BTreeMap<String, WantedLeg>,
    /// Calls still live in the snapshot: their edgecc-named bridges are
    /// adopted.
    pub calls: BTreeSet<String>,
    /// Hang-ups the restored actors asked for before the adoption (a
    /// timer that expired while edgecc was down), with their causes: the
    /// legs are adopted with the hang-up asked, and the reconcile does it.
    pub hangups: BTreeMap<String, HangupCause>,
    /// Caller legs of calls the snapshot has ended (also in `legs`): a
    /// bridge holding one is not adopted for it.
    pub ended: BTreeSet<String>,
}

/// What one adoption did, for the log line, the tests and the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdoptionReport {
    /// Channels adopted (snoop channels included).
    pub channels: usize,
    /// Bridges adopted.
    pub bridges: usize,
    /// Snapshot legs Asterisk no longer had (left out of the reconcile).
    pub gone: usize,
    /// Channels in the application edgecc did not adopt: checked again as
    /// possible orphans.
    pub orphans: usize,
    /// Callers in the application the snapshot did not know, routed as
    /// new calls.
    pub routed: usize,
    /// From [`super::AriPbx::adopt_on_connect`] to the adoption, ms.
    pub took_ms: u64,
    /// Callers of ended calls still in the application (counted in
    /// `channels` too): their calls carry the ending out.
    pub ended: usize,
    /// Bridges edgecc named that hold such a caller and no leg of a live
    /// call: destroyed by the reconcile.
    pub left_bridges: usize,
}

impl AdoptionPlan {
    /// The legs and bridges `snapshot`'s live calls use. `outbound_endpoint`
    /// is the dial string template of outbound customers (`{number}`), for
    /// an outbound call whose agent had not answered yet; `waiting` what a
    /// caller waiting for an agent hears (`waiting_media`).
    pub fn from_snapshot(
        snapshot: &StateSnapshot,
        outbound_endpoint: &str,
        waiting: HoldMedia,
    ) -> AdoptionPlan {
        let mut plan = AdoptionPlan::default();
        let mut ended = Vec::new();
        for call in snapshot.calls.values() {
            if call.is_ended() {
                ended.push(call);
                continue;
            }
            let id = call.id.as_str().to_owned();
            plan.calls.insert(id.clone());
            let main = BridgeId::main(&call.id).0;
            let originated = |on_answer: OnAnswer| WantedLeg {
                role: LegRole::Originated,
                on_answer,
                held_from: None,
                hold: None,
            };
            let held = matches!(&call.phase, CallPhase::Connected(s) if s.held);
            let hold = match &call.phase {
                CallPhase::Connected(_) if held => Some(HoldMedia::Moh),
                CallPhase::Queued { .. } | CallPhase::Offering { .. } if call.moh => Some(waiting),
                _ => None,
            };
            plan.legs.insert(
                call.caller_leg.0.clone(),
                WantedLeg {
                    role: match call.direction {
                        Direction::Inbound => LegRole::Caller,
                        Direction::Outbound => LegRole::Originated,
                    },
                    on_answer: OnAnswer::Nothing,
                    held_from: held.then(|| main.clone()),
                    hold,
                },
            );
            match &call.phase {
                CallPhase::Offering { offers, .. } => {
                    for o in offers {
                        plan.legs
                            .insert(o.leg.0.clone(), originated(OnAnswer::Nothing));
                    }
                }
                CallPhase::Dialing { party } => {
                    let dial = OnAnswer::DialCustomer {
                        customer: call.caller_leg.0.clone(),
                        endpoint: outbound_endpoint.replace("{number}", &call.ani),
                        caller_id: String::new(),
                        timeout_ms: call.offer_timeout_ms + ORIGINATE_TIMEOUT_SLACK_MS,
                    };
                    plan.legs.insert(party.leg.0.clone(), originated(dial));
                }
                CallPhase::Connected(s) => {
                    let legs = s.parties.iter().map(|p| &p.leg);
                    for leg in legs.chain(s.pending.iter().map(|p| &p.leg)) {
                        plan.legs
                            .insert(leg.0.clone(), originated(OnAnswer::Nothing));
                    }
                }
                CallPhase::Routing | CallPhase::Queued { .. } | CallPhase::Ended(_) => {}
            }
            for s in &call.supervisions {
                let sup = s.leg.0.clone();
                let on_answer = match &s.snooped {
                    Some(_) => {
                        let spy = spy_of(&sup);
                        plan.legs.insert(
                            spy.clone(),
                            WantedLeg {
                                role: LegRole::Spy {
                                    supervisor: sup.clone(),
                                },
                                on_answer: OnAnswer::Nothing,
                                held_from: None,
                                hold: None,
                            },
                        );
                        OnAnswer::BridgeWithSpy {
                            spy,
                            bridge: BridgeId::snoop(&s.leg).0,
                        }
                    }
                    None => OnAnswer::JoinBridge {
                        bridge: main.clone(),
                    },
                };
                plan.legs.insert(sup, originated(on_answer));
            }
        }
        // The caller of an ended call may still be in the application, the
        // ending not carried out when the process died (a leg a live call
        // names stays that call's).
        for call in ended {
            let caller = call.caller_leg.0.clone();
            if plan.legs.contains_key(&caller) {
                continue;
            }
            let role = match call.direction {
                Direction::Inbound => LegRole::Caller,
                Direction::Outbound => LegRole::Originated,
            };
            plan.legs.insert(
                caller.clone(),
                WantedLeg {
                    role,
                    on_answer: OnAnswer::Nothing,
                    held_from: None,
                    hold: None,
                },
            );
            plan.ended.insert(caller);
        }
        plan
    }
}

/// The snoop channel id of supervisor leg `supervisor` as edgecc before
/// issue 16 named it: `{supervisor}~spy` (the supervisor's id a prefix of
/// it, which Asterisk refuses when the snoop is made first).
pub fn legacy_spy_of(supervisor: &str) -> String {
    format!("{supervisor}{}spy", edgecc_actors::ids::LEG_ID_SEPARATOR)
}

/// Snoop channels of `plan` that Asterisk lists (`live`) under the id
/// scheme before issue 16 (`{supervisor}~spy`) and not under today's: plan
/// id → listed id. Only those whose supervisor's channel is listed too:
/// that monitor carries on after an upgrade. A legacy snoop channel whose
/// supervisor is not there is a leftover (the old order made the snoop
/// first, so Asterisk refused the supervisor's id as a prefix of it and
/// nobody ever listened): it stays an orphan and is hung up.
fn legacy_spies<'a>(
    plan: &'a AdoptionPlan,
    live: &HashMap<&'a str, &'a Channel>,
) -> HashMap<&'a str, &'a str> {
    let mut out = HashMap::new();
    for (id, want) in &plan.legs {
        let LegRole::Spy { supervisor } = &want.role else {
            continue;
        };
        if live.contains_key(id.as_str()) || !live.contains_key(supervisor.as_str()) {
            continue;
        }
        let old = legacy_spy_of(supervisor);
        if let Some((listed, _)) = live.get_key_value(old.as_str()) {
            out.insert(id.as_str(), *listed);
        }
    }
    out
}

impl AriState {
    /// Puts what `plan` names and Asterisk still lists (`channels`,
    /// `bridges`: one reconcile's `GET`s) back into the picture, before
    /// that reconcile runs. Answers the legs for the registry (callers and
    /// originated legs, `Up` when answered) and a report (`took_ms` and
    /// `orphans` left for the caller to fill).
    pub fn adopt(
        &mut self,
        plan: &AdoptionPlan,
        channels: &[Channel],
        bridges: &[Bridge],
    ) -> (HashMap<LegId, LegStatus>, AdoptionReport) {
        let mut report = AdoptionReport::default();
        let mut legs = HashMap::new();
        let live: HashMap<&str, &Channel> = channels.iter().map(|c| (c.id.as_str(), c)).collect();
        let mut adopted: HashSet<&str> = HashSet::new();
        let legacy = legacy_spies(plan, &live);
        let wanted = plan
            .legs
            .iter()
            .map(|(id, want)| match legacy.get(id.as_str()) {
                Some(old) => (*old, want),
                None => (id.as_str(), want),
            });
        for (id, want) in wanted {
            let Some(ch) = live.get(id) else {
                report.gone += 1;
                continue;
            };
            let in_app = ch.in_app(self.app());
            if (want.role == LegRole::Caller && !in_app) || self.legs.contains_key(id) {
                // A caller that left the application (another owner now),
                // or a leg already known: nothing to adopt.
                if !self.legs.contains_key(id) {
                    report.gone += 1;
                }
                continue;
            }
            let mut leg = Leg::new(want.role.clone(), want.on_answer.clone());
            if let OnAnswer::BridgeWithSpy { spy, bridge } = &want.on_answer {
                if let Some(old) = legacy.get(spy.as_str()) {
                    leg.on_answer = OnAnswer::BridgeWithSpy {
                        spy: (*old).to_owned(),
                        bridge: bridge.clone(),
                    };
                }
            }
            // An originated channel enters the application when it is
            // answered; a caller is in it from its arrival.
            leg.up = in_app;
            leg.ringing_reported = !in_app;
            leg.held_from = want.held_from.clone();
            leg.hold = want.hold;
            leg.hangup_requested = plan.hangups.get(id).copied();
            let status = match &want.role {
                LegRole::Caller if ch.state == "Up" => Some(LegStatus::Up),
                LegRole::Caller => Some(LegStatus::Ringing),
                LegRole::Originated if in_app => Some(LegStatus::Up),
                LegRole::Originated => Some(LegStatus::Ringing),
                LegRole::Spy { .. } => None,
            };
            // A leg the restored calls asked to hang up before the
            // adoption is theirs no more: the adoption hangs it up, and a
            // call's reconcile must not hang it up again as a leg it does
            // not know.
            if let Some(status) = status.filter(|_| !plan.hangups.contains_key(id)) {
                legs.insert(LegId::new(id), status);
            }
            self.legs.insert(id.to_owned(), leg);
            if plan.ended.contains(id) {
                report.ended += 1;
            } else {
                adopted.insert(id);
            }
            report.channels += 1;
        }
        for b in bridges {
            if !id_ok(&b.id) || self.bridges.contains_key(&b.id) {
                continue;
            }
            let named_for_a_call = is_minted(&b.id) && plan.calls.contains(&call_of_bridge(&b.id));
            let holds_adopted = b.channels.iter().any(|c| adopted.contains(c.as_str()));
            if !(named_for_a_call || holds_adopted) {
                if is_minted(&b.id) && b.channels.iter().any(|c| plan.ended.contains(c)) {
                    // Left holding the caller of an ended call (its
                    // destruction died with the previous process): no live
                    // call needs it and the ending is not carried out in
                    // it, so the reconcile destroys it. Not an orphan for
                    // the check (the caller is a known leg): without this
                    // it stayed at Asterisk, empty once the caller left.
                    self.bridges_to_destroy.insert(b.id.clone());
                    report.left_bridges += 1;
                }
                continue;
            }
            self.bridges
                .insert(b.id.clone(), b.channels.iter().cloned().collect());
            for c in &b.channels {
                if adopted.contains(c.as_str()) {
                    if let Some(leg) = self.legs.get_mut(c) {
                        leg.bridge = Some(b.id.clone());
                    }
                }
            }
            report.bridges += 1;
        }
        // A held caller still in a bridge (the hold did not take it out)
        // is not out of it: nothing to put back on resume.
        for id in &adopted {
            if let Some(leg) = self.legs.get_mut(*id) {
                if leg.bridge.is_some() {
                    leg.held_from = None;
                }
            }
        }
        (legs, report)
    }

    /// After [`Self::adopt`]: the callers `channels` shows waiting in the
    /// application that neither the snapshot nor a buffered StasisStart
    /// (`starting`) accounts for. They entered Stasis just before the
    /// crash (the daemon never persisted them) and wait there: each is
    /// taken as its StasisStart would have been, with the arguments its
    /// dialplan gave (`Stasis(app,inbound,dnis,...)`, read back from the
    /// channel's `app_data`), so it is routed as a new call instead of
    /// being handed back to the dialplan. Channels with edgecc's names,
    /// and anything not started as a call, are left to the orphan check.
    /// Returns the arrivals' effects; `report.routed` counts them.
    pub fn route_unknown_callers(
        &mut self,
        plan: &AdoptionPlan,
        channels: &[Channel],
        starting: &HashSet<String>,
        report: &mut AdoptionReport,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        for ch in channels {
            if !ch.in_app(self.app())
                || !id_ok(&ch.id)
                || ch.id.contains(edgecc_actors::ids::LEG_ID_SEPARATOR)
                || plan.legs.contains_key(&ch.id)
                || self.legs.contains_key(&ch.id)
                || starting.contains(&ch.id)
            {
                continue;
            }
            let args: Vec<String> = ch
                .dialplan
                .app_data
                .split(',')
                .skip(1)
                .map(|a| a.trim().to_owned())
                .collect();
            if !matches!(
                args.first().map(String::as_str),
                Some(ARG_INBOUND) | Some(ARG_AGENT_OUTBOUND)
            ) {
                continue;
            }
            // Not taken (stopping, too many legs): stasis_start hands it
            // back to the dialplan, as it would have then.
            self.stasis_start(&args, ch, &mut fx);
            if self.legs.contains_key(&ch.id) {
                report.routed += 1;
                tracing::info!(
                    channel = %ch.id,
                    "Restart: a caller the restored state did not know is routed as a new call."
                );
            }
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(id: &str, state: &str, in_app: bool) -> Channel {
        let mut c = Channel {
            id: id.into(),
            state: state.into(),
            ..Channel::default()
        };
        if in_app {
            c.dialplan.app_name = "Stasis".into();
            c.dialplan.app_data = "edgecc,inbound".into();
        } else {
            c.dialplan.app_name = "AppDial2".into();
        }
        c
    }

    fn bridge(id: &str, members: &[&str]) -> Bridge {
        Bridge {
            id: id.into(),
            bridge_type: "mixing".into(),
            channels: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn want(role: LegRole, held_from: Option<&str>) -> WantedLeg {
        WantedLeg {
            role,
            on_answer: OnAnswer::Nothing,
            held_from: held_from.map(str::to_owned),
            hold: held_from.map(|_| HoldMedia::Moh),
        }
    }

    /// Talking, held, ringing and gone legs: each adopted as Asterisk
    /// lists it, bridges with their members, the legs for the registry
    /// answered or ringing, a caller that left the application and a gone
    /// leg left out; the reconcile that follows finds no orphan among
    /// them and reports nothing.
    #[test]
    fn adopts_what_the_snapshot_names_and_asterisk_lists() {
        let mut plan = AdoptionPlan::default();
        for c in ["c1", "c2", "c3", "c4"] {
            plan.calls.insert(c.into());
        }
        plan.legs.insert("c1".into(), want(LegRole::Caller, None));
        plan.legs
            .insert("c1~1".into(), want(LegRole::Originated, None));
        plan.legs
            .insert("c2".into(), want(LegRole::Caller, Some("b~c2")));
        plan.legs
            .insert("c2~2".into(), want(LegRole::Originated, None));
        plan.legs.insert("c3".into(), want(LegRole::Caller, None));
        plan.legs
            .insert("c3~3".into(), want(LegRole::Originated, None));
        plan.legs.insert("c4".into(), want(LegRole::Caller, None));
        plan.legs
            .insert("c4~4".into(), want(LegRole::Originated, None));
        let channels = vec![
            channel("c1", "Up", true),
            channel("c1~1", "Up", true),
            channel("c2", "Up", true),
            channel("c2~2", "Up", true),
            channel("c3", "Up", true),
            channel("c3~3", "Ringing", false),
            channel("c4", "Up", false), // handed to the dialplan
            channel("x~9", "Up", true), // edgecc's name, not the snapshot's
        ];
        let bridges = vec![
            bridge("b~c1", &["c1", "c1~1"]),
            bridge("b~c2", &["c2~2"]),
            bridge("b~gone", &[]),
        ];
        let mut st = AriState::new("edgecc");
        let (legs, report) = st.adopt(&plan, &channels, &bridges);
        assert_eq!(legs.len(), 6, "{legs:?}");
        assert_eq!(legs[&LegId::new("c1~1")], LegStatus::Up);
        assert_eq!(legs[&LegId::new("c3~3")], LegStatus::Ringing);
        assert!(!legs.contains_key(&LegId::new("c4")));
        assert!(!legs.contains_key(&LegId::new("c4~4")));
        assert_eq!(
            (report.channels, report.bridges, report.gone),
            (6, 2, 2),
            "{report:?}"
        );
        assert_eq!(st.legs["c1"].bridge.as_deref(), Some("b~c1"));
        assert_eq!(st.legs["c1~1"].bridge.as_deref(), Some("b~c1"));
        let held = &st.legs["c2"];
        assert_eq!(
            (held.bridge.as_deref(), held.held_from.as_deref(), held.hold),
            (None, Some("b~c2"), Some(HoldMedia::Moh))
        );
        assert!(!st.legs["c3~3"].up && st.legs["c3~3"].ringing_reported);
        let fx = st.reconcile(&channels, &bridges, &HashSet::new());
        assert_eq!(
            fx,
            vec![super::super::state::Effect::CheckOrphans {
                channels: vec!["x~9".into()],
                bridges: vec!["b~gone".into()],
            }]
        );
    }

    /// Goal: a monitor made before issue 16 (snoop channel `{sup}~spy`)
    /// survives the upgrade when its supervisor is still there, and a
    /// legacy snoop channel without its supervisor stays an orphan. Method:
    /// call c1 monitored by c1~9 (spy `c1~9~spy`), call c2 whose supervisor
    /// c2~8 is gone and only `c2~8~spy` is left. Expected: `c1~9~spy` is
    /// adopted as c1~9's snoop (the supervisor bridges with it on answer,
    /// and its end hangs it up); `c2~8~spy` is left to the orphan check.
    #[test]
    fn a_legacy_snoop_channel_is_adopted_with_its_supervisor() {
        let mut plan = AdoptionPlan::default();
        for (call, sup) in [("c1", "c1~9"), ("c2", "c2~8")] {
            plan.calls.insert(call.into());
            plan.legs.insert(call.into(), want(LegRole::Caller, None));
            let spy = spy_of(sup);
            plan.legs.insert(
                spy.clone(),
                want(
                    LegRole::Spy {
                        supervisor: sup.into(),
                    },
                    None,
                ),
            );
            let mut s = want(LegRole::Originated, None);
            s.on_answer = OnAnswer::BridgeWithSpy {
                spy,
                bridge: format!("s~{sup}"),
            };
            plan.legs.insert(sup.into(), s);
        }
        let channels = vec![
            channel("c1", "Up", true),
            channel("c1~9", "Ringing", false),
            channel("c1~9~spy", "Up", true),
            channel("c2", "Up", true),
            channel("c2~8~spy", "Up", true),
        ];
        let mut st = AriState::new("edgecc");
        st.adopt(&plan, &channels, &[]);
        assert_eq!(
            st.legs["c1~9~spy"].role,
            LegRole::Spy {
                supervisor: "c1~9".into()
            }
        );
        assert_eq!(
            st.legs["c1~9"].on_answer,
            OnAnswer::BridgeWithSpy {
                spy: "c1~9~spy".into(),
                bridge: "s~c1~9".into()
            }
        );
        assert!(!st.legs.contains_key("c2~8~spy"));
        let fx = st.reconcile(&channels, &[], &HashSet::new());
        assert_eq!(
            fx,
            vec![Effect::CheckOrphans {
                channels: vec!["c2~8~spy".into()],
                bridges: vec![],
            }]
        );
        let mut fx = Vec::new();
        st.end_leg("c1~9", HangupCause::Normal, &mut fx);
        assert!(fx.contains(&Effect::HangupChannel {
            channel: "c1~9~spy".into(),
            cause: HangupCause::Normal
        }));
    }

    /// A bridge edgecc named for a call the snapshot does not know is
    /// adopted when it holds an adopted channel (and not otherwise).
    #[test]
    fn a_foreign_bridge_holding_an_adopted_leg_is_adopted() {
        let mut plan = AdoptionPlan::default();
        plan.calls.insert("c1".into());
        plan.legs.insert("c1".into(), want(LegRole::Caller, None));
        let channels = vec![channel("c1", "Up", true)];
        let bridges = vec![bridge("b~old", &["c1"]), bridge("b~other", &["z"])];
        let mut st = AriState::new("edgecc");
        let (_, report) = st.adopt(&plan, &channels, &bridges);
        assert_eq!(report.bridges, 1);
        assert!(st.bridges.contains_key("b~old"));
        assert!(!st.bridges.contains_key("b~other"));
        assert_eq!(st.legs["c1"].bridge.as_deref(), Some("b~old"));
    }

    /// A hang-up the restored actors asked for before the adoption is done
    /// by the reconcile that follows it, once.
    #[test]
    fn a_hangup_asked_before_the_adoption_is_done_by_its_reconcile() {
        let mut plan = AdoptionPlan::default();
        plan.calls.insert("c1".into());
        plan.legs.insert("c1".into(), want(LegRole::Caller, None));
        plan.legs
            .insert("c1~1".into(), want(LegRole::Originated, None));
        plan.hangups.insert("c1~1".into(), HangupCause::NoAnswer);
        let channels = vec![channel("c1", "Up", true), channel("c1~1", "Ringing", false)];
        let mut st = AriState::new("edgecc");
        st.adopt(&plan, &channels, &[]);
        let hangup = super::super::state::Effect::HangupChannel {
            channel: "c1~1".into(),
            cause: HangupCause::NoAnswer,
        };
        let fx = st.reconcile(&channels, &[], &HashSet::new());
        assert_eq!(fx, vec![hangup]);
    }

    /// Goal: the caller of an ended call still in the application is
    /// adopted for its call to finish the ending, not routed as a new call
    /// nor taken for an orphan, and the bridge it is left in is not
    /// adopted for it. Method: ended call c1 whose caller is still in its
    /// bridge `b~c1`; ended call c2 whose caller left the application.
    /// Expected: c1 answered to the registry (Up), counted as ended, no
    /// bridge adopted, `b~c1` destroyed by the reconcile (a bridge without
    /// edgecc's name holding c1 is left alone); c2 gone; no arrival.
    #[test]
    fn the_caller_of_an_ended_call_is_adopted_alone() {
        let mut plan = AdoptionPlan::default();
        for c in ["c1", "c2"] {
            plan.legs.insert(c.into(), want(LegRole::Caller, None));
            plan.ended.insert(c.into());
        }
        let channels = vec![channel("c1", "Up", true), channel("c2", "Up", false)];
        let bridges = vec![bridge("b~c1", &["c1"]), bridge("conf-1", &["c1"])];
        let mut st = AriState::new("edgecc");
        let (legs, mut report) = st.adopt(&plan, &channels, &bridges);
        assert_eq!(
            legs.get(&LegId::new("c1")),
            Some(&LegStatus::Up),
            "{legs:?}"
        );
        assert_eq!(legs.len(), 1, "{legs:?}");
        assert_eq!(
            (report.channels, report.ended, report.bridges, report.gone),
            (1, 1, 0, 1),
            "{report:?}"
        );
        assert_eq!(st.legs["c1"].bridge, None);
        assert_eq!(report.left_bridges, 1, "{report:?}");
        let fx = st.route_unknown_callers(&plan, &channels, &HashSet::new(), &mut report);
        assert!(fx.is_empty() && report.routed == 0, "{fx:?}");
        let fx = st.reconcile(&channels, &bridges, &HashSet::new());
        assert_eq!(
            fx,
            vec![Effect::DestroyBridge {
                bridge: "b~c1".into()
            }]
        );
    }

    /// A caller waiting in the application that the snapshot does not know
    /// is taken as a new call (its dialplan's arguments read back); one
    /// whose StasisStart is buffered, one the snapshot names and a leg with
    /// edgecc's name are not.
    #[test]
    fn an_unknown_caller_in_the_application_becomes_a_new_call() {
        let mut plan = AdoptionPlan::default();
        plan.calls.insert("c1".into());
        plan.legs.insert("c1".into(), want(LegRole::Caller, None));
        let mut fresh = channel("c2", "Up", true);
        fresh.dialplan.app_data = "edgecc,inbound,800,vip".into();
        fresh.caller.number = "5551234".into();
        let channels = vec![
            channel("c1", "Up", true),
            fresh,
            channel("c3", "Up", true),  // its StasisStart is buffered
            channel("x~9", "Up", true), // edgecc's name: an orphan
            channel("c5", "Up", false), // not in the application
        ];
        let starting: HashSet<String> = ["c3".to_string()].into();
        let mut st = AriState::new("edgecc");
        let (_, mut report) = st.adopt(&plan, &channels, &[]);
        let fx = st.route_unknown_callers(&plan, &channels, &starting, &mut report);
        assert_eq!(report.routed, 1, "{report:?}");
        assert_eq!(fx.len(), 1, "{fx:?}");
        match &fx[0] {
            Effect::Emit(edgecc_actors::PbxEvent::CallArrived {
                leg_id, ani, dnis, ..
            }) => {
                assert_eq!(
                    (leg_id.as_str(), ani.as_str(), dnis.as_str()),
                    ("c2", "5551234", "800")
                );
            }
            other => panic!("expected an arrival, got {other:?}"),
        }
        assert!(st.legs.contains_key("c2"));
        assert!(!st.legs.contains_key("c3") && !st.legs.contains_key("x~9"));
        let fx = st.reconcile(&channels, &[], &starting);
        assert_eq!(
            fx,
            vec![Effect::CheckOrphans {
                channels: vec!["x~9".into()],
                bridges: vec![],
            }]
        );
    }
}
