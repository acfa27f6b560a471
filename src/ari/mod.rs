//! The Asterisk adapter: edgecc in front of a real Asterisk (18 or later)
//! through the Asterisk REST Interface, as a second [`PbxPort`] next to the
//! simulated PBX. Asterisk hands each inbound call to edgecc's Stasis
//! application; edgecc makes every routing decision.
//!
//! # Layout
//!
//! - [`settings`] — `[pbx.ari]`: URL, application, credentials, timeouts,
//!   reconnect backoff, hold media, redirect context.
//! - [`events`] — the wire types of ARI events (as a real Asterisk 22
//!   sends them), with Asterisk's `+0000` timestamps.
//! - [`classify`] — why a leg ended: `Dial.dialstatus` first, then the
//!   hang-up cause.
//! - [`rest`] — the REST client (awc, timeouts, Basic auth or `api_key`).
//! - [`state`] — the pure picture of channels and bridges, the event rules
//!   and the reconcile after a reconnect; unit-tested on real captures.
//! - [`adopt`] — after an edgecc restart, the channels and bridges the
//!   restored snapshot names are put back into the picture on the first
//!   reconcile instead of being taken for orphans.
//! - [`adapter`] — [`AriPbx`], the [`PbxPort`]: a thin handle that builds
//!   and starts the two owners below.
//! - `calls` — the owner of the call picture: [`state`] plus the per-call
//!   lanes that run commands and effects, and the events out.
//! - `commands` — each [`PbxCommand`](edgecc_actors::PbxCommand) as ARI
//!   requests; `steps` — the REST steps they are made of (originate,
//!   bridge, hang up …); `effects` — the REST work events ask for.
//! - [`play`] — prompts to waiting callers (a media list, stopped when
//!   an offer starts, hold media restarted after) and callback dials.
//! - [`link`] — the owner of the WebSocket: connect, reconcile, read,
//!   reconnect with full-jitter backoff; it hands what it reads to `calls`
//!   and shares only its switches (`LinkControl`).
//!
//! The HTTP client and the password file come from [`crate::net`], which
//! the CRM adapters use too.
//!
//! [`PbxPort`]: edgecc_actors::PbxPort

pub mod adapter;
pub mod adopt;
mod calls;
pub mod classify;
mod commands;
mod effects;
pub mod events;
pub mod link;
pub mod play;
pub mod rest;
pub mod settings;
pub mod state;
mod steps;

pub use adapter::{AriPbx, AriStats};
pub use link::AppOwnership;
pub use settings::{AriConfig, AriSettings};
