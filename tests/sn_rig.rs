//! The set-up the ServiceNow adapter tests share (`crm_wire`,
//! `servicenow_ccaas`): a CRM emulator on 127.0.0.1, a Basic-auth adapter
//! config for it with short client timeouts, and an adapter with its own
//! sys_id store in a scratch directory.

use std::path::{Path, PathBuf};

use edgecc::crm::emulator::{EmulatorConfig, EmulatorHandle};
use edgecc::crm::servicenow::{ServiceNowAdapter, ServiceNowConfig, ServiceNowMode};
use edgecc::system::storage::Tree;
use edgecc_storage::{Storage, StorageConfig};
use tempfile::TempDir;

/// Client timeouts: loopback answers well within this.
pub const TIMEOUT_MS: u64 = 500;

/// An emulator and an adapter that writes to it.
pub struct SnRig {
    /// The emulator, on 127.0.0.1 (stop it at the end of the test).
    pub em: EmulatorHandle,
    /// The adapter built from [`SnRig::config`].
    pub adapter: ServiceNowAdapter,
    /// The adapter's config, for a second adapter with a change.
    pub config: ServiceNowConfig,
    /// Holds the secret files and the adapter's sys_id store (`data/`);
    /// removed when the rig is dropped.
    pub dir: TempDir,
}

/// A rig with the emulator's defaults and the adapter's (Basic auth) in
/// `mode`.
pub async fn plain_rig(mode: ServiceNowMode) -> SnRig {
    sn_rig(EmulatorConfig::default(), mode, |_, _| {}).await
}

/// Starts an emulator with `em_config` and builds an adapter in `mode`
/// for it, Basic auth (`edgecc`/`pw`) unless `tune` changes the config.
pub async fn sn_rig(
    em_config: EmulatorConfig,
    mode: ServiceNowMode,
    tune: impl FnOnce(&mut ServiceNowConfig, &Path),
) -> SnRig {
    let em = EmulatorHandle::start(em_config)
        .await
        .expect("start the CRM emulator");
    let dir = tempfile::tempdir().expect("scratch directory");
    let mut config = sn_config(&em, dir.path(), mode);
    tune(&mut config, dir.path());
    let adapter = sn_adapter(&config, dir.path());
    SnRig {
        em,
        adapter,
        config,
        dir,
    }
}

impl SnRig {
    /// Another adapter for the same emulator ("another box"): the rig's
    /// config changed by `tune`, with a sys_id store of its own in the
    /// returned directory (keep it alive while the adapter is used).
    pub fn another(
        &self,
        tune: impl FnOnce(&mut ServiceNowConfig, &Path),
    ) -> (ServiceNowAdapter, TempDir) {
        let dir = tempfile::tempdir().expect("scratch directory");
        let mut config = self.config.clone();
        tune(&mut config, dir.path());
        (sn_adapter(&config, dir.path()), dir)
    }
}

/// A file in `dir` holding `value`.
pub fn secret_file(dir: &Path, name: &str, value: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, value).expect("write file");
    path
}

/// A Basic-auth config for `em` in `mode`, the password file in `dir`.
pub fn sn_config(em: &EmulatorHandle, dir: &Path, mode: ServiceNowMode) -> ServiceNowConfig {
    let mut c = ServiceNowConfig::with_instance(&em.url());
    c.mode = mode;
    c.user = Some("edgecc".into());
    c.password_file = Some(secret_file(dir, "sn_password", b"pw\n"));
    c.connect_timeout_ms = TIMEOUT_MS;
    c.request_timeout_ms = TIMEOUT_MS;
    c
}

/// An adapter for `config` with its sys_id store in `dir/data` (reopening
/// the same `dir` later is a restart of the same box).
pub fn sn_adapter(config: &ServiceNowConfig, dir: &Path) -> ServiceNowAdapter {
    let storage = Storage::open(dir.join("data"), StorageConfig::default()).expect("storage");
    let sys_ids = Tree::CrmSysIds.open(&storage).expect("sys_id tree");
    ServiceNowAdapter::new(config, sys_ids).expect("ServiceNow adapter")
}

impl SnRig {
    /// The box restarts: the adapter is dropped and built again from the
    /// same config and sys_id store.
    pub fn restart(self) -> SnRig {
        let SnRig {
            em,
            adapter,
            config,
            dir,
        } = self;
        drop(adapter);
        let adapter = sn_adapter(&config, dir.path());
        SnRig {
            em,
            adapter,
            config,
            dir,
        }
    }
}
