//! `edgecc simulate`: what-if. Replays a traffic file (a day of calls)
//! through the same routing code the daemon runs, once per config, under a
//! virtual clock, and prints per queue and per agent the figures of each
//! config side by side: "what if I had two more agents on Monday morning".
//!
//! - [`traffic`] — the traffic file format and its one parser (shared with
//!   `edgecc report traffic`, which writes it).
//! - [`settings`] — the config's `[simulate]` section (answer delays,
//!   service-level and short-abandon thresholds).
//! - [`replay`] — one replay through the actors on the simulated PBX, with
//!   a null outbox and tokio's paused clock.
//! - [`figures`] — offered, answered, abandoned, service level, ASA, p90
//!   wait and occupancy from a replay (the formulas are stated there).
//! - [`render`] — the side-by-side text table and the JSON document.

pub mod figures;
pub mod render;
pub mod replay;
pub mod settings;
pub mod traffic;

use std::fmt;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::{Config, ConfigError};
use figures::{AgentFigures, QueueFigures};
use replay::ReplayError;
use settings::SimulateSettings;
use traffic::{TrafficCall, TrafficError};

/// `edgecc simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The traffic: JSON lines, one call each (`edgecc report traffic`
    /// writes it). The config to try is the global `--config NEW.toml`.
    #[arg(long, value_name = "FILE")]
    pub traffic: PathBuf,
    /// The config in use today, replayed first and shown beside the new one.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Print JSON for scripts instead of a table for people.
    #[arg(long)]
    pub json: bool,
}

/// Why a simulation could not run; each names the file at fault.
#[derive(Debug)]
pub enum SimulateError {
    /// `--config` was not given (simulate never falls back to the
    /// installed /etc/edgecc/edgecc.toml: the question is about a new one).
    NoConfig,
    /// A config file is unreadable or invalid.
    Config(ConfigError),
    /// The traffic file is unreadable or a line is bad.
    Traffic(TrafficError),
    /// A replay could not run.
    Replay {
        /// The config replayed.
        config: PathBuf,
        /// Why.
        error: ReplayError,
    },
}

impl fmt::Display for SimulateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoConfig => write!(f, "give the config to try with --config NEW.toml"),
            Self::Config(e) => write!(f, "{e}"),
            Self::Traffic(e) => write!(f, "{e}"),
            Self::Replay { config, error } => write!(f, "{}: {error}", config.display()),
        }
    }
}

impl std::error::Error for SimulateError {}

/// The figures of one config.
#[derive(Clone, Debug)]
pub struct ConfigRun {
    /// `baseline` or `new`.
    pub label: &'static str,
    /// The config file.
    pub config: PathBuf,
    /// Its `[simulate]` settings.
    pub settings: SimulateSettings,
    /// Per queue, in config order.
    pub queues: Vec<QueueFigures>,
    /// Per agent, in config order.
    pub agents: Vec<AgentFigures>,
    /// Virtual span of the day, ms (occupancy's denominator).
    pub span_ms: u64,
    /// Real time the replay took.
    pub wall_ms: u64,
}

/// The whole answer: the baseline (if any) first, then the new config.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// The traffic file.
    pub traffic: PathBuf,
    /// Calls replayed per config.
    pub calls: usize,
    /// One per config.
    pub runs: Vec<ConfigRun>,
}

/// `edgecc simulate`: loads, replays, prints.
pub fn command(args: &SimulateArgs, config: Option<&Path>) -> Result<(), SimulateError> {
    let config = config.ok_or(SimulateError::NoConfig)?;
    let simulation = simulate(&args.traffic, config, args.baseline.as_deref())?;
    if args.json {
        println!("{}", render::json(&simulation));
    } else {
        print!("{}", render::text(&simulation));
    }
    Ok(())
}

/// Replays the traffic at `traffic` through `config` (and `baseline` first
/// when given). Every file is read and checked before the first replay.
pub fn simulate(
    traffic: &Path,
    config: &Path,
    baseline: Option<&Path>,
) -> Result<Simulation, SimulateError> {
    let mut configs = Vec::new();
    if let Some(path) = baseline {
        configs.push((
            "baseline",
            path,
            Config::load(path).map_err(SimulateError::Config)?,
        ));
    }
    configs.push((
        "new",
        config,
        Config::load(config).map_err(SimulateError::Config)?,
    ));
    let mut calls = traffic::read_traffic(traffic).map_err(SimulateError::Traffic)?;
    for (_, path, config) in &configs {
        check_dnis(&calls, traffic, path, config)?;
    }
    calls.sort_by_key(|(_, c)| c.at_ms);
    let calls: Vec<TrafficCall> = calls.into_iter().map(|(_, c)| c).collect();
    let dnis: Vec<String> = calls.iter().map(|c| c.dnis.clone()).collect();
    let mut runs = Vec::new();
    for (label, path, config) in configs {
        let center = &config.contact_center;
        let replayed = replay::replay(center, &config.simulate, &calls).map_err(|error| {
            SimulateError::Replay {
                config: path.to_path_buf(),
                error,
            }
        })?;
        let queues: Vec<(String, Vec<String>)> = center
            .queues
            .iter()
            .map(|q| (q.id.clone(), q.dnis.clone()))
            .collect();
        let (queues, agents) = figures::figures(&replayed, &dnis, &queues, &config.simulate);
        tracing::info!(
            config = %path.display(),
            calls = calls.len(),
            wall_ms = replayed.wall.as_millis() as u64,
            "Traffic replayed."
        );
        runs.push(ConfigRun {
            label,
            config: path.to_path_buf(),
            settings: config.simulate.clone(),
            queues,
            agents,
            span_ms: replayed.span_ms,
            wall_ms: replayed.wall.as_millis() as u64,
        });
    }
    Ok(Simulation {
        traffic: traffic.to_path_buf(),
        calls: calls.len(),
        runs,
    })
}

/// Every call's DNIS must lead to a queue of `config` (the error names the
/// traffic file's line and the config file).
fn check_dnis(
    calls: &[(usize, TrafficCall)],
    traffic: &Path,
    path: &Path,
    config: &Config,
) -> Result<(), SimulateError> {
    let known: std::collections::HashSet<&str> = config
        .contact_center
        .queues
        .iter()
        .flat_map(|q| q.dnis.iter().map(String::as_str))
        .collect();
    match calls.iter().find(|(_, c)| !known.contains(c.dnis.as_str())) {
        None => Ok(()),
        Some((line, call)) => Err(SimulateError::Traffic(TrafficError {
            file: traffic.to_path_buf(),
            line: *line,
            message: format!(
                "DNIS {:?} is no queue's DNIS in {}",
                call.dnis,
                path.display()
            ),
        })),
    }
}
