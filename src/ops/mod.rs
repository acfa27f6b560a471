//! Operations: what an installer and systemd see of edgecc besides the
//! calls.
//!
//! - [`install`] — `edgecc check-config`, `backup` and `restore`.
//! - [`admin`] — the local admin interface (unix socket + `--offline`)
//!   behind `edgecc outbox …` and `edgecc backup`.
//! - [`salvage`] — `edgecc outbox salvage DIR`: a quarantined sled
//!   directory's records read back into the outbox (daemon stopped).
//! - [`systemd`] — `READY=1`, the health-checked watchdog, `STATUS=` lines.
//! - [`logging`] — `tracing` set-up (journald under systemd).
//! - [`paths`] — where the data directory and the admin socket are
//!   (`[daemon]`, flags, systemd's environment).

pub mod admin;
pub mod install;
pub mod logging;
pub mod paths;
pub mod salvage;
pub mod systemd;
