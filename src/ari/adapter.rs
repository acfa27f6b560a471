//! [`AriPbx`]: the actors' [`PbxPort`] over ARI, a thin handle on its two
//! owners: [`Calls`] (the leg and bridge picture, the per-call lanes, the
//! commands and effects, the events out) and the link task with its
//! [`LinkControl`] (the WebSocket, reconnect and reconcile). This file
//! builds and starts them and answers the adapter's counters.
//!
//! Semantics follow the simulated PBX (`edgecc_actors::sim`) command by
//! command, so the actors cannot tell them apart:
//!
//! | command | ARI |
//! |---|---|
//! | Answer (caller) | `POST /channels/{id}/answer` |
//! | Answer (alerting agent leg) | waits, bounded, for the phone to be picked up |
//! | OriginateAgentLeg / ConsultDial | `POST /channels?endpoint&app&channelId&otherChannelId&callerId&timeout` |
//! | Bridge / Conference | `POST /bridges?type=mixing&bridgeId` on first use, `addChannel` |
//! | Unbridge | `removeChannel` |
//! | DestroyBridge | `DELETE /bridges/{id}` |
//! | Hold / Resume | a bridged caller leaves its bridge, `POST/DELETE /channels/{id}/moh` (`/ring` for a waiting caller), back in the bridge on resume |
//! | Mute / Unmute | `POST/DELETE /channels/{id}/mute?direction=in` |
//! | Hangup | `DELETE /channels/{id}?reason_code=` (after a playing announcement) |
//! | RedirectExternal | `POST /channels/{id}/continue?context&extension&priority=1` |
//! | PlayAnnouncement | `POST /channels/{id}/play?media=sound:…&playbackId` |
//! | PlayPrompts | `POST /channels/{id}/play?media=sound:…,number:…&playbackId=…~prompt`; hold media restarted when it finishes |
//! | StopPrompts | `DELETE /playbacks/{id}` of each prompt still playing |
//! | DialCallback | originate `outbound_endpoint` with the caller's number (as an outbound customer) |
//! | Snoop | `POST /channels/{id}/snoop`, originate the supervisor, bridge the two |
//! | Barge | originate the supervisor, add it to the call's bridge on answer |
//! | OutboundDial | originate the agent, then the customer once the agent answers |
//!
//! While the link is down every command fails at once with
//! [`PbxError::LinkDown`]; a hang-up asked for meanwhile is remembered and
//! done after the reconnect ([`super::link`]). How each command is carried
//! out is in [`super::commands`] and [`super::steps`].

use std::rc::Rc;
use std::sync::Arc;

use actix::Recipient;
use edgecc_actors::ports::{LocalBoxFuture, PbxCommand, PbxError, PbxEvent, PbxPort};

use super::calls::Calls;
use super::link::{AppOwnership, Link, LinkControl};
use super::rest::{ProbeError, RestClient};
use super::settings::AriSettings;
use crate::net::ClientError;

/// Counters of the adapter, for tests, the benchmark and `check-config`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AriStats {
    /// Commands received.
    pub commands: u64,
    /// Commands refused at once because the link was down.
    pub link_down_refusals: u64,
    /// Successful (re)connects followed by a reconcile.
    pub connects: u64,
    /// Frames skipped: malformed, truncated, too large, absurd.
    pub frames_skipped: u64,
    /// Exact duplicate frames dropped.
    pub frames_duplicate: u64,
    /// Last reconcile's duration, µs.
    pub last_reconcile_us: u64,
    /// Channels listed by the last reconcile.
    pub last_reconcile_channels: usize,
}

/// The ARI adapter. Cheap to clone; lives on the actix system's thread.
#[derive(Clone)]
pub struct AriPbx {
    /// The call picture, the lanes and the commands.
    calls: Rc<Calls>,
    /// The link's switches (up, restart, stop); the task owns the socket.
    link: Rc<LinkControl>,
}

impl AriPbx {
    /// An adapter for `settings`; nothing connects until [`Self::start`].
    pub fn new(settings: AriSettings) -> Result<AriPbx, ClientError> {
        let settings = Arc::new(settings);
        let rest = RestClient::new(settings.clone())?;
        let link = Rc::new(LinkControl::default());
        let calls = Rc::new(Calls::new(settings, rest, link.clone()));
        Ok(AriPbx { calls, link })
    }

    /// After an edgecc restart: on the first successful reconcile from now
    /// on, adopts every channel and bridge `snapshot` (the restored
    /// actors' state) names and Asterisk still has, instead of taking them
    /// for orphans, and sends `reconcile` one [`Reconcile`] with the legs
    /// found (a snapshot leg not listed is gone). Only what edgecc named
    /// and the snapshot does not know is an orphan. Later reconnects
    /// reconcile as usual. Call before [`Self::start`]. See
    /// [`super::adopt`].
    ///
    /// [`Reconcile`]: edgecc_actors::registry::Reconcile
    pub fn adopt_on_connect(
        &self,
        snapshot: &edgecc_actors::durable::StateSnapshot,
        reconcile: Recipient<edgecc_actors::registry::Reconcile>,
    ) {
        let settings = &self.calls.settings;
        let waiting = match settings.waiting_media {
            super::settings::WaitingMedia::Moh => super::state::HoldMedia::Moh,
            super::settings::WaitingMedia::Ringing => super::state::HoldMedia::Ringing,
        };
        let plan = super::adopt::AdoptionPlan::from_snapshot(
            snapshot,
            &settings.outbound_endpoint,
            waiting,
        );
        self.calls.adopt_on_connect(super::calls::PendingAdoption {
            plan,
            reconcile,
            asked: std::time::Instant::now(),
        });
    }

    /// Keeps each new Asterisk start-up time durable through `sink` (the
    /// registry: [`PbxStarted`](edgecc_actors::registry::PbxStarted));
    /// `previous` is the one the previous process kept (the restored
    /// snapshot's `pbx_startup_time`), so an Asterisk that restarted while
    /// edgecc was down too is noticed on the first connect and the calls
    /// it dropped end `pbx_lost`. Call before [`Self::start`].
    pub fn keep_startups(
        &self,
        sink: Recipient<edgecc_actors::registry::PbxStarted>,
        previous: Option<String>,
    ) {
        self.calls.keep_startups(sink, previous);
    }

    /// What the restart's adoption did ([`Self::adopt_on_connect`]), once
    /// done.
    pub fn adoption(&self) -> Option<super::adopt::AdoptionReport> {
        self.calls.adopted()
    }

    /// Sets where events go (the registry).
    pub fn connect_events(&self, recipient: Recipient<PbxEvent>) {
        self.calls.connect_events(recipient);
    }

    /// Starts the WebSocket link task (connect, reconcile, read events,
    /// reconnect). Call on the actix system, after [`Self::connect_events`].
    pub fn start(&self) {
        let link = Link {
            control: self.link.clone(),
            settings: self.calls.settings.clone(),
            rest: self.calls.rest.clone(),
            sink: self.calls.clone(),
        };
        actix_rt::spawn(super::link::run(link));
    }

    /// Stops the link task at its next step and marks the link down.
    pub fn stop(&self) {
        self.link.stop();
    }

    /// Stops taking new calls (the daemon is stopping): from now on an
    /// inbound call is handed back to the dialplan (`continue`) as it
    /// arrives, instead of waiting in Stasis for actors that no longer
    /// take it. Calls already taken go on.
    pub fn stop_taking_calls(&self) {
        self.calls.state.borrow_mut().taking_calls = false;
    }

    /// Whether the link is up and reconciled.
    pub fn link_is_up(&self) -> bool {
        self.link.is_up()
    }

    /// Who owns the Stasis application (shared with HTTP threads): another
    /// client that took it over is not fought for; an operator takes it
    /// back ([`AppOwnership::take_back`]).
    pub fn app_ownership(&self) -> Arc<AppOwnership> {
        self.link.owner.clone()
    }

    /// A copy of the counters.
    pub fn stats(&self) -> AriStats {
        let commands = self.calls.stats();
        let link = self.link.stats();
        AriStats {
            commands: commands.commands,
            link_down_refusals: commands.link_down_refusals,
            connects: link.connects,
            frames_skipped: link.frames_skipped,
            frames_duplicate: link.frames_duplicate,
            last_reconcile_us: link.last_reconcile_us,
            last_reconcile_channels: link.last_reconcile_channels,
        }
    }

    /// Legs tracked now.
    pub fn legs_tracked(&self) -> usize {
        self.calls.state.borrow().legs.len()
    }

    /// Closes the current WebSocket (as if it dropped); the link reconnects.
    pub fn drop_link(&self) {
        self.link.restart();
    }

    /// Checks credentials and reachability (`GET /asterisk/info`); answers
    /// the Asterisk version.
    pub async fn probe(settings: AriSettings) -> Result<String, ProbeError> {
        let rest = RestClient::new(Arc::new(settings))?;
        Ok(rest.probe().await?)
    }
}

impl PbxPort for AriPbx {
    fn send(&self, cmd: PbxCommand) -> LocalBoxFuture<'static, Result<(), PbxError>> {
        Calls::send(&self.calls, cmd)
    }
}
