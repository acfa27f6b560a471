//! `[reports]` as the running daemon applies it: one holder the history
//! pruner, the report routes, the wallboard's figures and `/metrics`
//! read, replaced by a config reload ([`LiveSettings::apply`]), so the
//! thresholds, short abandons and retention change without a restart.

use std::sync::Arc;

use actix::Addr;
use edgecc_actors::registry::call_metrics::SetServiceLevels;
use edgecc_actors::registry::Registry;
use tokio::sync::watch;
use tracing::info;

use super::config::ReportSettings;

/// The current `[reports]`; cheap to clone (every clone sees a reload).
#[derive(Clone)]
pub struct LiveSettings {
    /// The holder; receivers wake when it changes.
    tx: Arc<watch::Sender<ReportSettings>>,
}

impl LiveSettings {
    /// Holds `settings` (the config's at start).
    pub fn new(settings: ReportSettings) -> LiveSettings {
        LiveSettings {
            tx: Arc::new(watch::Sender::new(settings)),
        }
    }

    /// The settings now.
    pub fn get(&self) -> ReportSettings {
        self.tx.borrow().clone()
    }

    /// A receiver that sees each change (the pruner waits on it).
    pub fn subscribe(&self) -> watch::Receiver<ReportSettings> {
        self.tx.subscribe()
    }

    /// The thresholds `/metrics` counts with, for the registry.
    pub fn service_levels(&self) -> SetServiceLevels {
        service_levels(&self.get())
    }

    /// Replaces the settings (the pruner and the routes see them next).
    pub fn set(&self, settings: ReportSettings) {
        self.tx.send_replace(settings);
    }

    /// Applies a reloaded `[reports]`: the pruner, the report routes and
    /// the wallboard read it from now on; `registry` counts `/metrics`'
    /// service level with its thresholds from now on.
    pub fn apply(&self, settings: &ReportSettings, registry: &Addr<Registry>) {
        self.set(settings.clone());
        registry.do_send(service_levels(settings));
        info!(
            service_level_ms = settings.service_level_ms,
            short_abandon_ms = settings.short_abandon_ms,
            retention_days = settings.retention_days,
            retention_bytes = settings.retention_bytes,
            "Report settings reloaded."
        );
    }
}

/// The message that gives the registry `settings`' thresholds.
pub fn service_levels(settings: &ReportSettings) -> SetServiceLevels {
    SetServiceLevels {
        default_ms: settings.service_level_ms,
        queues: settings.queue_service_level_ms.clone(),
        short_abandon_ms: settings.short_abandon_ms,
    }
}
