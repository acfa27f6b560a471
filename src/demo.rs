//! `edgecc demo`: the whole system on the simulated PBX.

use std::path::Path;
use std::process::ExitCode;

/// Flags of `edgecc demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
}

/// Runs the demo.
pub fn run(_args: &DemoArgs, _data_dir: Option<&Path>) -> Result<ExitCode, String> {
    Err("the demo is being built".to_string())
}
