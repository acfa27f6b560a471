//! edgecc: the daemon. It wires the domain ([`edgecc_actors`]) and the
//! durable storage ([`edgecc_storage`]) to the outside world.
//!
//! # Layout
//!
//! - [`ari`] — the Asterisk adapter: ARI REST + WebSocket, the actors'
//!   PBX port for a real Asterisk.
//! - `ari_emulator` — an Asterisk ARI emulator (HTTP + WebSocket) for the
//!   tests and benches only: built with the `emulators` feature, which the
//!   test and bench targets turn on and a release build leaves off.
//! - [`cli`] — the `edgecc` command line and its dispatch.
//! - [`config`] — the TOML config: raw parse, validation, resolved [`config::Config`].
//! - [`paths`] — where the data directory and the admin socket are.
//! - [`daemon`] — `edgecc run`: start-up order, signals, shutdown.
//! - [`admin`] — the local admin interface (unix socket + `--offline`)
//!   behind `edgecc outbox …`.
//! - [`crm`] — CRM adapters (webhook, ServiceNow) over one transport, the
//!   sync worker that drains the outbox into them, and the CRM emulator.
//! - [`net`] — outbound plumbing no adapter owns: the HTTP client (explicit
//!   timeouts, TLS), secret files, URL and timeout checks.
//! - [`outbox_port`] — the actors' outbox port backed by the sled outbox.
//! - [`http`] — the agent, supervisor and admin API, the WebSocket event
//!   stream, `/metrics`, `/healthz`, `/readyz` and the web UI.
//! - [`install`] — `edgecc check-config`, `backup` and `restore`.
//! - [`demo`] — `edgecc demo`: the whole system on the simulated PBX.
//! - [`clock`] — wall-clock time, read in one place.
//! - [`memory`] — process-wide allocator settings (glibc's mmap threshold).
//! - [`logging`] — `tracing` set-up (journald under systemd).
//! - [`systemd`] — `READY=1`, the health-checked watchdog, `STATUS=` lines.
//! - [`pbx_gate`] — every PBX event passes here: link state, and no new
//!   calls once shutdown began.

pub mod admin;
pub mod ari;
#[cfg(feature = "emulators")]
pub mod ari_emulator;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crm;
pub mod daemon;
pub mod demo;
pub mod http;
pub mod install;
pub mod logging;
pub mod memory;
pub mod net;
pub mod outbox_port;
pub mod paths;
pub mod pbx_gate;
pub mod systemd;
