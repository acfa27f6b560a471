//! The data directory as the daemon uses it: the storage options from the
//! config, opening it, and the catalogue of its state trees.
//!
//! Every state tree the daemon keeps is one [`Tree`] here, with its name
//! on disk. A tree's name is its identity in the data directory: renaming
//! one is a data migration, never a refactoring, so the names are written
//! once, here, and a test pins them.

use std::path::Path;

use edgecc_storage::{StateTree, Storage, StorageConfig, StorageError};

use crate::config::Config;

/// One state tree of the data directory (next to the outbox and the dead
/// letters, which the storage crate names itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tree {
    /// CRM links of delivered interactions: written by the sync worker,
    /// read by the HTTP API (an agent's "open in CRM").
    CrmLinks,
    /// ServiceNow `sys_id`s of created records (table mode), so updates
    /// patch the record the create made.
    CrmSysIds,
    /// Sticky customers as the HTTP API stored them before routing used
    /// them (ANI → agent id). No longer written: the sticky book lives in
    /// the actors' state (`ActorState`, keys `s/{ani}`, see
    /// `edgecc_actors::sticky`); what an older version wrote is moved there
    /// at start and removed (`super::sticky_import`). The tree is kept so
    /// its name is never reused.
    StickyCustomers,
    /// One key the systemd health check rewrites, proving the storage
    /// writer still commits.
    WatchdogProbe,
    /// One key `/readyz` rewrites, for the same proof over HTTP.
    HttpHealth,
    /// The actors' state: one JSON [`StateRecord`] per agent, call, queue
    /// line and the token reservation, keyed by [`StateKey::to_bytes`];
    /// written through the outbox writer behind the CRM records (see
    /// `crate::state_port`), read at start to restore the system.
    ///
    /// [`StateRecord`]: edgecc_actors::durable::StateRecord
    /// [`StateKey::to_bytes`]: edgecc_actors::durable::StateKey::to_bytes
    ActorState,
    /// Desktop and wallboard sessions by their token's SHA-256 (never the
    /// token), so a restart logs no one out (`http::sessions`).
    HttpSessions,
}

impl Tree {
    /// Every tree, in a stable order (backups, checks).
    pub const ALL: [Tree; 7] = [
        Tree::CrmLinks,
        Tree::CrmSysIds,
        Tree::StickyCustomers,
        Tree::WatchdogProbe,
        Tree::HttpHealth,
        Tree::ActorState,
        Tree::HttpSessions,
    ];

    /// The tree's name on disk.
    pub const fn name(self) -> &'static str {
        match self {
            Tree::CrmLinks => "crm_links",
            Tree::CrmSysIds => "crm_sys_ids",
            Tree::StickyCustomers => "sticky_customers",
            Tree::WatchdogProbe => "watchdog",
            Tree::HttpHealth => "http_health",
            Tree::ActorState => "actor_state",
            Tree::HttpSessions => "http_sessions",
        }
    }

    /// Opens the tree in `storage`.
    pub fn open(self, storage: &Storage) -> Result<StateTree, TreeError> {
        storage.state(self.name()).map_err(|source| TreeError {
            tree: self,
            dir: storage.dir().display().to_string(),
            source,
        })
    }
}

/// A state tree could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the state tree {} in {dir}: {source}", tree.name())]
pub struct TreeError {
    /// Which tree.
    pub tree: Tree,
    /// The data directory, for the message.
    pub dir: String,
    /// What storage said.
    pub source: StorageError,
}

/// The data directory could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the data directory {dir}: {source}")]
pub struct OpenError {
    /// The directory.
    pub dir: String,
    /// What storage said: [`StorageError::Locked`] when a running daemon
    /// holds it, which the offline admin commands tell apart.
    pub source: StorageError,
}

/// Storage options from the config (every other option at the storage
/// crate's default).
pub fn storage_config(config: &Config) -> StorageConfig {
    StorageConfig {
        cache_bytes: config.storage_cache_capacity_bytes,
        wal_bytes: config.storage_wal_bytes,
        ..StorageConfig::default()
    }
}

/// Opens (and recovers) the data directory with the config's options.
pub fn open_storage(config: &Config, data_dir: &Path) -> Result<Storage, OpenError> {
    Storage::open(data_dir, storage_config(config)).map_err(|source| OpenError {
        dir: data_dir.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names on disk never change (a renamed tree would be an empty
    /// one after an upgrade) and no two trees share one.
    #[test]
    fn tree_names_are_fixed_and_distinct() {
        let names: Vec<&str> = Tree::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(
            names,
            [
                "crm_links",
                "crm_sys_ids",
                "sticky_customers",
                "watchdog",
                "http_health",
                "actor_state",
                "http_sessions"
            ]
        );
        let distinct: std::collections::HashSet<&str> = names.iter().copied().collect();
        assert_eq!(distinct.len(), names.len());
    }
}
