//! The PBX side of the daemon: which PBX edgecc drives (`[pbx]`), the
//! adapter built for it, and the [`gate`] every PBX event passes through.
//!
//! - this file — [`RawPbx`] and [`PbxKind`]: the `[pbx]` section as
//!   written and as resolved; [`PbxAdapter`]: the simulated PBX or the ARI
//!   adapter, built and not yet connected, as the composition root
//!   (`crate::system`) takes it, and how each re-adopts the calls of a
//!   restored system ([`PbxAdapter::connect`]).
//! - [`gate`] — [`gate::PbxGate`]: link state, and no new calls once
//!   shutdown began.
//!
//! The ARI adapter itself is [`crate::ari`]; the simulated PBX is the
//! actors crate's `sim`.

pub mod gate;

use std::rc::Rc;

use actix::prelude::*;
use edgecc_actors::durable::StateSnapshot;
use edgecc_actors::ports::SharedPbx;
use edgecc_actors::registry::{PbxStarted, Reconcile};
use edgecc_actors::sim::{ConnectEvents, ListLegs, SimPbx, SimPbxPort};
use edgecc_actors::PbxEvent;
use serde::{Deserialize, Serialize};
use tracing::{error, info};

use crate::ari::{AriConfig, AriPbx, AriSettings};

/// `[pbx]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPbx {
    /// `sim` (the built-in simulated PBX, inside the daemon's process: a
    /// restart ends its calls) or `ari` (Asterisk, `[pbx.ari]`).
    pub kind: Option<String>,
    /// `[pbx.ari]`: the Asterisk REST Interface.
    pub ari: Option<AriConfig>,
}

/// Which PBX edgecc drives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PbxKind {
    /// The built-in simulated PBX, inside the daemon's process: it dies
    /// with the daemon, so a restarted daemon finds no leg there and
    /// closes every restored call.
    Sim,
    /// Asterisk over ARI.
    Ari(Box<AriSettings>),
}

/// The second stage of `[pbx]`: the kind and its table must agree.
/// Errors are (dotted key, message).
pub fn resolve(raw: &RawPbx) -> Result<PbxKind, (String, String)> {
    let err = |key: &str, message: &str| Err((key.to_string(), message.to_string()));
    match (raw.kind.as_deref(), &raw.ari) {
        (None | Some("sim"), None) => Ok(PbxKind::Sim),
        (None | Some("sim"), Some(_)) => {
            err("pbx.ari", "is only used with kind = \"ari\" in [pbx]")
        }
        (Some("ari"), Some(ari)) => Ok(PbxKind::Ari(Box::new(
            crate::ari::settings::resolve(ari).map_err(|e| (e.key, e.message))?,
        ))),
        (Some("ari"), None) => err("pbx.kind", "kind = \"ari\" needs a [pbx.ari] table"),
        (Some(other), _) => Err((
            "pbx.kind".to_string(),
            format!("{other:?} is not a PBX adapter: use \"sim\" or \"ari\""),
        )),
    }
}

/// The PBX the system drives, built but not yet connected to the gate.
pub enum PbxAdapter {
    /// The in-process simulated PBX (the demo scripts its phones first).
    Sim(Addr<SimPbx>),
    /// Asterisk over ARI; its link starts once its events have a place to go.
    Ari(AriPbx),
}

impl PbxAdapter {
    /// The adapter `kind` names, with its settings; the simulated PBX is
    /// started on the current actix system, seeded with `seed`.
    pub fn from_kind(kind: &PbxKind, seed: u64) -> Result<PbxAdapter, crate::net::ClientError> {
        Ok(match kind {
            PbxKind::Sim => PbxAdapter::Sim(SimPbx::new(seed).start()),
            PbxKind::Ari(settings) => PbxAdapter::Ari(AriPbx::new((**settings).clone())?),
        })
    }

    /// The actors' PBX port over this adapter.
    pub fn port(&self) -> SharedPbx {
        match self {
            PbxAdapter::Sim(sim) => Rc::new(SimPbxPort { addr: sim.clone() }),
            PbxAdapter::Ari(ari) => Rc::new(ari.clone()),
        }
    }

    /// Sends the adapter's events (and its link state) to `events` and
    /// starts the ARI link. After a restore (`restored`: the snapshot the
    /// registry was rebuilt from, and the registry), the adapter then tells
    /// the registry which legs edgecc gave an id to are still at the PBX
    /// (one [`Reconcile`]), so each restored call carries on or closes and
    /// the queues route again:
    ///
    /// - the simulated PBX lists its legs at once, after its events are
    ///   connected (a leg that goes away from then on is an event the
    ///   restored call receives); resolves once the registry reconciled;
    /// - ARI adopts the channels and bridges the snapshot names at the
    ///   link's first reconcile ([`AriPbx::adopt_on_connect`]), whenever
    ///   Asterisk answers; only what edgecc named and the snapshot does not
    ///   know is an orphan. Each new Asterisk start-up time goes to
    ///   `startups` (the registry) to be kept durable, and the restored
    ///   one is compared with on the first connect.
    pub async fn connect(
        &self,
        events: Recipient<PbxEvent>,
        restored: Option<(&StateSnapshot, Recipient<Reconcile>)>,
        startups: Recipient<PbxStarted>,
    ) {
        match self {
            PbxAdapter::Sim(sim) => {
                sim.do_send(ConnectEvents(events));
                if let Some((snapshot, reconcile)) = restored {
                    adopt_sim_legs(sim, snapshot, reconcile).await;
                }
            }
            PbxAdapter::Ari(ari) => {
                let previous = restored
                    .as_ref()
                    .and_then(|(s, _)| s.pbx_startup_time.clone());
                if let Some((snapshot, reconcile)) = restored {
                    ari.adopt_on_connect(snapshot, reconcile);
                }
                ari.keep_startups(startups, previous);
                // The link task keeps the adapter alive.
                ari.connect_events(events);
                ari.start();
            }
        }
    }
}

/// The simulated PBX's side of a restore: its live legs, as one
/// [`Reconcile`] to the registry.
async fn adopt_sim_legs(
    sim: &Addr<SimPbx>,
    snapshot: &StateSnapshot,
    reconcile: Recipient<Reconcile>,
) {
    let legs = match sim.send(ListLegs).await {
        Ok(legs) => legs,
        Err(e) => {
            // The simulated PBX is gone: no leg is left, so every restored
            // call closes.
            error!(error = %e, "Simulated PBX does not answer; restored calls reconcile with no leg.");
            Default::default()
        }
    };
    let listed = legs.len();
    let done = reconcile.send(Reconcile {
        legs,
        pbx_lost: false,
        pbx_startup: None,
    });
    match done.await {
        Ok(calls) => info!(
            legs = listed,
            calls,
            restored_calls = snapshot.calls.len(),
            "Restored calls re-adopted from the simulated PBX."
        ),
        Err(e) => error!(error = %e, "Registry gone before the reconcile."),
    }
}
