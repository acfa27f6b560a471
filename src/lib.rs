//! edgecc: the daemon. It wires the domain ([`edgecc_actors`]) and the
//! durable storage ([`edgecc_storage`]) to the outside world.
//!
//! # Layout
//!
//! Layers, lowest first; a module imports only from its own layer or
//! below (`scripts/module-graph.sh` prints the graph and checks it).
//!
//! 0. Base
//!    - [`clock`] — wall-clock time, read in one place.
//!    - [`memory`] — process-wide allocator settings (glibc's mmap threshold).
//!    - [`net`] — outbound plumbing no adapter owns: the HTTP client
//!      (explicit timeouts, TLS), secret files, URL and timeout checks.
//! 1. Ports to the outside world, each owning its config section
//!    - [`pbx`] — the PBX side: `[pbx]`, the adapter choice (simulated or
//!      ARI), and [`pbx::gate`], which every PBX event passes.
//!    - [`ari`] — the Asterisk adapter: ARI REST + WebSocket, the actors'
//!      PBX port for a real Asterisk.
//!    - [`ari_emulator`] — an Asterisk ARI emulator (HTTP + WebSocket): the
//!      simulated PBX that lives outside the daemon's process (`edgecc
//!      pbx-emulator`, with its control and status API; `edgecc demo
//!      --restart-at` runs the daemon in front of it), and the tests'
//!      Asterisk.
//!    - [`crm`] — CRM adapters (webhook, ServiceNow) over one transport,
//!      the sync worker that drains the outbox into them, and the CRM
//!      emulator.
//!    - [`outbox_port`] — the actors' outbox port backed by the sled outbox.
//!    - [`state_port`] — the actors' state store backed by a state tree,
//!      and the snapshot read back from it at start.
//!    - `http::config` — `[http]` and `[[users]]`.
//!    - [`storage_config`] — `[storage]`: the storage options, their
//!      bounds and defaults.
//!    - [`ops::daemon_config`] — `[daemon]`: the data directory and the
//!      admin socket as the file names them, and the built-in defaults.
//!    - [`simulate::settings`] — `[simulate]`: simulated agents' answer
//!      delays and the what-if's thresholds; [`simulate::traffic`] — the
//!      traffic file format (JSON lines, one call each) and its parser.
//! 2. [`config`] — the TOML file: raw parse, every section resolved and
//!    validated into [`config::Config`]; credentials, redaction.
//! 3. Services on top of the ports
//!    - [`http`] — the agent, supervisor and admin API, the WebSocket event
//!      stream, `/metrics`, `/healthz`, `/readyz` and the web UI.
//!    - [`ops`] — operations: `check-config`, `backup`, `restore`
//!      ([`ops::install`]); the admin socket ([`ops::admin`]); salvage of a
//!      quarantined sled directory ([`ops::salvage`]); the storage's health
//!      figures ([`ops::storage_health`]); systemd ([`ops::systemd`]);
//!      logging ([`ops::logging`]); where files are ([`ops::paths`]).
//!    - [`system::storage`] — the data directory: options, opening, and
//!      the catalogue of state trees; [`system::running`] — the handles of
//!      a started system.
//! 4. [`system`] — the composition root: the only place the system is
//!    assembled ([`system::SystemParts`] → [`system::System`]).
//! 5. Commands
//!    - [`daemon`] — `edgecc run`: signals, reload, systemd, shutdown.
//!    - [`demo`] — `edgecc demo`: the whole system on the simulated PBX, in
//!      one process, or with `--restart-at` the daemon as a child process
//!      killed and restarted in front of the ARI emulator, a process of
//!      its own.
//!    - [`simulate`] — `edgecc simulate`: what-if; a traffic file replayed
//!      through the routing actors under a paused clock, per config.
//! 6. [`cli`] — the `edgecc` command line and its dispatch (and `main.rs`).

pub mod ari;
pub mod ari_emulator;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crm;
pub mod daemon;
pub mod demo;
pub mod http;
pub mod memory;
pub mod net;
pub mod ops;
pub mod outbox_port;
pub mod pbx;
pub mod reports;
pub mod simulate;
pub mod state_port;
pub mod storage_config;
pub mod system;
