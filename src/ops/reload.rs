//! The config reload behind SIGHUP, `systemctl reload` and
//! `POST /api/v1/admin/reload`: re-read the file, apply it to the contact
//! center's actors (queues, agents, routing, timers, reason codes: see
//! `edgecc_actors::registry::ApplyConfig`), then to HTTP (users, reason
//! codes) and to the reports (`[reports]`: thresholds, short abandons,
//! retention). All or nothing: a file that does not load, or that the actors
//! refuse (a removed queue in which calls wait, a removed agent who is
//! logged in), changes nothing, and the error names the file and the key.
//! The PBX, CRM, storage and HTTP listener sections apply at the next
//! restart.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use actix::Addr;
use edgecc_actors::registry::{ApplyConfig, Registry};
use tracing::info;

use crate::config::{Config, ConfigError};
use crate::http::{HttpControl, ReloadError, ReloadHook};

/// What a reload acts on, known once the system started.
#[derive(Clone, Default)]
pub struct ReloadTargets {
    /// The contact center's facade (takes [`ApplyConfig`]).
    pub registry: Option<Addr<Registry>>,
    /// HTTP's users and reason codes, when HTTP serves.
    pub http: Option<HttpControl>,
    /// `[reports]` as applied (pruner, reports, `/metrics`).
    pub reports: Option<crate::reports::live::LiveSettings>,
}

/// The daemon's reload hook for the config `file` (`None`: started on the
/// built-in defaults, nothing to re-read); `targets` is filled in once the
/// system runs (a reload before that is refused).
pub fn hook(file: Option<PathBuf>, targets: Rc<RefCell<ReloadTargets>>) -> ReloadHook {
    Rc::new(move || {
        let file = file.clone();
        let targets = targets.borrow().clone();
        Box::pin(async move {
            let path = file.ok_or(ReloadError::NoConfigFile)?;
            let new = Config::load(&path)?;
            let registry = targets.registry.ok_or(ReloadError::NotStarted)?;
            let summary = registry
                .send(ApplyConfig(new.contact_center.clone()))
                .await
                .map_err(|e| ReloadError::Actors(e.to_string()))?
                .map_err(|errors| refused(&path, &errors))?;
            if let Some(http) = &targets.http {
                http.apply(&new);
            }
            if let Some(reports) = &targets.reports {
                reports.apply(&new.reports, &registry);
            }
            info!(
                file = %path.display(),
                queues_added = summary.queues_added.len(),
                queues_removed = summary.queues_removed.len(),
                queues_changed = summary.queues_changed.len(),
                agents_added = summary.agents_added.len(),
                agents_removed = summary.agents_removed.len(),
                "Configuration reloaded: queues, agents, routing, timers, reason codes, users and [reports]; [pbx], [crm], [storage] and the HTTP listener apply at the next restart."
            );
            Ok(summary)
        })
    })
}

/// The actors' refusal as one error naming the file and the first key.
fn refused(path: &std::path::Path, errors: &[edgecc_actors::ConfigError]) -> ReloadError {
    let Some(first) = errors.first() else {
        return ReloadError::Refused(ConfigError {
            file: path.to_path_buf(),
            key: String::new(),
            message: "refused without a reason".into(),
        });
    };
    let more = match errors.len() {
        1 => String::new(),
        n => format!(" (and {} more problems)", n - 1),
    };
    ReloadError::Refused(ConfigError {
        file: path.to_path_buf(),
        // Config::load ran the same checks; what is left are the
        // running system's refusals (`queues`, `agents`).
        key: first.path.clone(),
        message: format!("{}{more}", first.message),
    })
}
