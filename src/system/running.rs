//! [`Running`]: the handles of a started system's actors and ports, the
//! part of the system that HTTP, the health check and the tests reach.
//!
//! It lives apart from the composition root ([`super`]) so that the layers
//! it is handed to (HTTP) depend on these handles only, never on the code
//! that assembles the system.

use actix::Addr;
use edgecc_actors::registry::Registry;
use edgecc_actors::sim::SimPbx;

use crate::crm::sync::SyncWorker;
use crate::pbx::gate::PbxGate;

/// The started system's actors and ports.
pub struct Running {
    /// The contact center's facade: every agent command and snapshot goes
    /// through it.
    pub registry: Addr<Registry>,
    /// The CRM sync worker, when a CRM is configured (circuit state and
    /// latencies for `/metrics` and the health check).
    pub sync: Option<Addr<SyncWorker>>,
    /// The simulated PBX when the system runs on it: tests and the demo
    /// place calls and script phones through it.
    pub sim: Option<Addr<SimPbx>>,
    /// The ARI adapter when the system drives an Asterisk: told to stop
    /// taking calls on shutdown.
    pub ari: Option<crate::ari::AriPbx>,
    /// The gate every PBX event passes through: link state for systemd,
    /// and no new calls once shutdown began.
    pub gate: Addr<PbxGate>,
    /// `[reports]` as applied now (a reload replaces it): the history
    /// pruner, the report routes and `/metrics` read it.
    pub reports: crate::reports::live::LiveSettings,
}
