//! `edgecc report queues|agents|traffic --from --to [--interval] [--csv]
//! [--offline]`: the report through the running daemon's admin socket, or
//! on the data directory itself with `--offline` (the daemon stopped).

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::http::{query_of, ReportParams};
use super::ReportKind;
use crate::config::Config;
use crate::ops::admin::{self, AdminRequest};

/// `edgecc report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Which report.
    #[command(subcommand)]
    pub command: ReportCommand,
}

/// The window and form every report takes.
#[derive(Debug, Args)]
pub struct ReportWindow {
    /// Start: 2026-12-06T09:00:00Z, 2026-12-06 (midnight UTC) or ms since
    /// the epoch.
    #[arg(long)]
    pub from: String,
    /// End, exclusive (same forms).
    #[arg(long)]
    pub to: String,
    /// Row interval: 15m, 1h or 1d.
    #[arg(long, default_value = "1h")]
    pub interval: String,
    /// Print CSV instead of JSON.
    #[arg(long)]
    pub csv: bool,
    /// Open the data directory directly instead of asking the running
    /// daemon (refused while the daemon holds it).
    #[arg(long)]
    pub offline: bool,
}

/// `edgecc report` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// One row per queue and interval: offered, answered, abandoned,
    /// service level, ASA, waits, AHT.
    Queues(ReportWindow),
    /// One row per agent and interval: offers, answers, talk, wrap-up,
    /// occupancy, Not Ready time by reason.
    Agents(ReportWindow),
    /// The what-if traffic file (`edgecc simulate --traffic`): one JSON
    /// line per inbound call arrived in the range (`--interval` and
    /// `--csv` do not apply).
    Traffic(ReportWindow),
}

/// Runs the report and prints it.
pub fn run(
    args: &ReportArgs,
    config: &Config,
    data_dir: &Path,
    socket: &Path,
) -> Result<ExitCode, String> {
    let (kind, w) = match &args.command {
        ReportCommand::Queues(w) => (ReportKind::Queues, w),
        ReportCommand::Agents(w) => (ReportKind::Agents, w),
        ReportCommand::Traffic(w) => (ReportKind::Traffic, w),
    };
    let params = ReportParams {
        from: w.from.clone(),
        to: w.to.clone(),
        interval: Some(w.interval.clone()),
    };
    let query = query_of(&params, kind, &config.reports)
        .map_err(|e| e.replace("parameter `", "--").replace("`:", ":"))?;
    // Traffic always comes as lines of text (JSON lines).
    let csv = w.csv || kind == ReportKind::Traffic;
    let request = AdminRequest::Report { query, csv };
    let answer = if w.offline {
        admin::requests::execute_offline(data_dir, config, &request)
    } else {
        admin::client::call(socket, &request)
    };
    let value = answer.map_err(|e| e.message)?;
    print!("{}", admin::requests::render_text(&request, &value));
    Ok(ExitCode::SUCCESS)
}
