//! Operations: what an installer and systemd see of edgecc besides the
//! calls.
//!
//! - [`install`] — `edgecc check-config`, `backup` and `restore`.
//! - [`admin`] — the local admin interface (unix socket + `--offline`)
//!   behind `edgecc outbox …` and `edgecc backup`.
//! - [`salvage`] — `edgecc outbox salvage DIR`: a quarantined sled
//!   directory's records read back into the outbox (daemon stopped).
//! - [`storage_health`] — the storage's health figures (quarantined sled
//!   directories, writer queue depth, …) named once for `/metrics`,
//!   `/readyz` and `outbox status`, and the start-up error line.
//! - [`reload`] — the config reload (SIGHUP, `systemctl reload`, the
//!   admin API): the file re-read and applied to the actors and HTTP, all
//!   or nothing.
//! - [`systemd`] — `READY=1`, the health-checked watchdog, `STATUS=` lines.
//! - [`logging`] — `tracing` set-up (journald under systemd).
//! - [`paths`] — where the data directory and the admin socket are
//!   (`[daemon]`, flags, systemd's environment).
//! - [`daemon_config`] — `[daemon]` as written, its check and the
//!   built-in paths (below [`crate::config`], which calls it).
//! - [`ha_role`] — the box's role in an HA pair (`$EDGECC_HA_ROLE`), for
//!   `/readyz`, the status line and `/metrics`.

pub mod admin;
pub mod daemon_config;
pub mod ha_role;
pub mod install;
pub mod logging;
pub mod paths;
pub mod reload;
pub mod salvage;
pub mod storage_health;
pub mod systemd;
