//! The command line: `edgecc run`, `edgecc demo`, `edgecc check-config`,
//! `edgecc outbox …`, `edgecc backup` / `restore`, `edgecc simulate`.
//!
//! Arguments are validated in two stages: clap parses them, then
//! [`Config`] and [`crate::ops::paths`] resolve the file, the environment and the
//! defaults, so every error is reported once, naming the flag or the key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::ops::admin::{self, AdminError, AdminRequest};
use crate::ops::{install, paths};
use crate::pbx::PbxKind;
use crate::{daemon, demo};

/// The config file used when `--config` is not given (if it exists).
pub const CONFIG_PATH_DEFAULT: &str = "/etc/edgecc/edgecc.toml";

/// edgecc: a resilient contact-center controller for the network edge.
#[derive(Debug, Parser)]
#[command(name = "edgecc", version, about)]
pub struct Cli {
    /// Config file (TOML). Default: /etc/edgecc/edgecc.toml if it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory. Default: $STATE_DIRECTORY, else daemon.data_dir, else /var/lib/edgecc.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Admin socket. Default: $RUNTIME_DIRECTORY/admin.sock, else daemon.admin_socket, else /run/edgecc/admin.sock.
    #[arg(long, global = true, value_name = "PATH")]
    pub admin_socket: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// One value per process, parsed once: the demo's many flags cost nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd runs this).
    Run,
    /// Run the demo: simulated PBX, agents and callers; nothing to configure.
    Demo(demo::DemoArgs),
    /// Validate a config file and print the effective configuration, with
    /// secrets redacted; checks that every secret file can be read.
    CheckConfig {
        /// The file to check (default: --config, else /etc/edgecc/edgecc.toml).
        file: Option<PathBuf>,
        /// Print nothing when the file is good (systemd's ExecStartPre=).
        #[arg(long, short)]
        quiet: bool,
        /// Where bare credential names are looked up (default:
        /// $CREDENTIALS_DIRECTORY; outside systemd e.g. /etc/credstore).
        #[arg(long, value_name = "DIR")]
        credentials_dir: Option<PathBuf>,
        /// Also reach the PBX: with `pbx.kind = "ari"`, log in to ARI
        /// (`GET /asterisk/info`) and report the Asterisk version.
        #[arg(long)]
        probe: bool,
    },
    /// Write a point-in-time backup of the data directory (outbox, dead
    /// letters, state) to FILE: through the running daemon, or --offline.
    Backup(BackupArgs),
    /// Restore a backup into the data directory (the daemon must be
    /// stopped; refused if the directory holds data, unless --force).
    Restore(RestoreArgs),
    /// Inspect and repair the CRM outbox.
    Outbox(OutboxArgs),
    /// Read a password on standard input and print its argon2 hash for a
    /// `[[users]]` entry's `password_hash`.
    Passwd,
    /// Run the built-in CRM emulator in the foreground (a webhook and
    /// ServiceNow stand-in on 127.0.0.1, with `/_emulator/` controls).
    CrmEmulator {
        /// Port on 127.0.0.1 (0: any free port; the chosen one is printed).
        #[arg(long, default_value_t = 8090)]
        port: u16,
        /// File with the webhook HMAC key; requests must then be signed.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
    },
    /// Run the simulated PBX (the ARI emulator) in the foreground, as a
    /// process of its own: a daemon with `pbx.kind = "ari"` talks to it as
    /// to Asterisk and, restarted, re-adopts the calls still up there.
    PbxEmulator(crate::ari_emulator::serve::PbxEmulatorArgs),
    /// What-if: replay a traffic file (JSON lines, one call each) through
    /// the routing of `--config NEW.toml` (and of `--baseline`) under a
    /// virtual clock; print per queue and agent the figures side by side.
    Simulate(crate::simulate::SimulateArgs),
    /// Reports from the call history: per queue or per agent over
    /// intervals, through the running daemon or --offline.
    Report(crate::reports::cli::ReportArgs),
}

/// `edgecc backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the backup (must not exist).
    pub file: PathBuf,
    /// Open the data directory directly instead of asking the running daemon.
    #[arg(long)]
    pub offline: bool,
}

/// `edgecc restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup to restore.
    pub file: PathBuf,
    /// Replace what the data directory holds.
    #[arg(long)]
    pub force: bool,
}

/// `edgecc outbox …`.
#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// Open the data directory directly instead of asking the running daemon
    /// (refused while the daemon holds it).
    #[arg(long, global = true)]
    pub offline: bool,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do with the outbox.
    #[command(subcommand)]
    pub command: OutboxCommand,
}

/// `edgecc outbox` subcommands.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Depth, oldest record age, in flight, held, dead letters, bytes on disk.
    Status,
    /// List pending records in order.
    List {
        /// First sequence to list.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// How many to list at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Dead letters: records the CRM refused for good, or that could not be read.
    Dead {
        /// What to do with the dead letters.
        #[command(subcommand)]
        command: DeadCommand,
    },
    /// Read the records of a quarantined sled directory (`db.quarantined-*`
    /// in the data directory) back into the outbox, skipping those it
    /// already holds. The daemon must be stopped.
    Salvage {
        /// The quarantined directory.
        dir: PathBuf,
    },
}

/// `edgecc outbox dead` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// List dead letters with the reason.
    List {
        /// First sequence to list.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// How many to list at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Put a dead letter (or all of them) back in its place in the outbox.
    Requeue {
        /// The dead letter's sequence number.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        seq: Option<u64>,
        /// Re-queue every dead letter.
        #[arg(long)]
        all: bool,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Run | Command::Demo(_) | Command::CrmEmulator { .. } | Command::PbxEmulator(_) => {
            "info"
        }
        _ => "warn",
    };
    // The demo on a terminal keeps its screen for its status display.
    match (&cli.command, demo::screen::terminal_log_file()) {
        (Command::Demo(_), Some(file)) => crate::ops::logging::init_file(level, &file),
        _ => crate::ops::logging::init(level),
    }
    match run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("edgecc: {message}");
            ExitCode::from(1)
        }
    }
}

/// Dispatches a parsed command line. Errors are a sentence for the user.
fn run(cli: Cli) -> Result<ExitCode, String> {
    match &cli.command {
        Command::CheckConfig {
            file,
            quiet,
            credentials_dir,
            probe,
        } => {
            let path = file
                .clone()
                .or(cli.config.clone())
                .unwrap_or_else(|| PathBuf::from(CONFIG_PATH_DEFAULT));
            install::check_config(&path, credentials_dir.as_deref(), *quiet)?;
            if *probe {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: cannot read the file: {e}", path.display()))?;
                let config = match credentials_dir {
                    Some(dir) => Config::parse_with_credentials(&text, &path, Some(dir)),
                    None => Config::parse(&text, &path),
                }
                .map_err(|e| e.to_string())?;
                probe_pbx(&config)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup(args) => {
            let config = load_config(cli.config.as_deref())?;
            let data_dir = paths::data_dir(cli.data_dir.as_deref(), &config);
            let socket = paths::admin_socket(cli.admin_socket.as_deref(), &config);
            install::backup(&args.file, args.offline, &data_dir, &socket, &config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore(args) => {
            let config = load_config(cli.config.as_deref())?;
            let data_dir = paths::data_dir(cli.data_dir.as_deref(), &config);
            let socket = paths::admin_socket(cli.admin_socket.as_deref(), &config);
            install::restore(&args.file, args.force, &data_dir, &socket, &config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            let config = load_config(cli.config.as_deref())?;
            let data_dir = paths::data_dir(cli.data_dir.as_deref(), &config);
            let socket = paths::admin_socket(cli.admin_socket.as_deref(), &config);
            daemon::run(config, &data_dir, &socket).map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo::run(args, cli.data_dir.as_deref()),
        Command::Passwd => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password: {e}"))?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err("give the password on standard input".to_string());
            }
            println!("{}", crate::http::hash_password(password)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::CrmEmulator { port, secret_file } => {
            crm_emulator(*port, secret_file.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::PbxEmulator(args) => {
            crate::ari_emulator::serve::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox(args) => {
            let config = load_config(cli.config.as_deref())?;
            outbox(&cli, args, &config)
        }
        Command::Simulate(args) => {
            crate::simulate::command(args, cli.config.as_deref()).map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => {
            let config = load_config(cli.config.as_deref())?;
            let data_dir = paths::data_dir(cli.data_dir.as_deref(), &config);
            let socket = paths::admin_socket(cli.admin_socket.as_deref(), &config);
            crate::reports::cli::run(args, &config, &data_dir, &socket)
        }
    }
}

/// `check-config --probe`: reaches the PBX with the configured credentials.
fn probe_pbx(config: &Config) -> Result<(), String> {
    match &config.pbx {
        PbxKind::Sim => {
            println!("# probe: the simulated PBX needs no network; nothing to probe");
            Ok(())
        }
        PbxKind::Ari(settings) => {
            let url = settings.url.clone();
            let settings = (**settings).clone();
            let version = actix_rt::System::new()
                .block_on(crate::ari::AriPbx::probe(settings))
                .map_err(|e| format!("probe of ARI at {url} failed: {e}"))?;
            println!("# probe: ARI at {url} answered; credentials accepted; Asterisk {version}");
            Ok(())
        }
    }
}

/// `edgecc crm-emulator`: serves until SIGTERM or SIGINT.
fn crm_emulator(port: u16, secret_file: Option<&Path>) -> Result<(), String> {
    use crate::crm::emulator::{EmulatorConfig, EmulatorHandle};
    let secret = match secret_file {
        Some(path) => Some(
            std::fs::read(path)
                .map(|mut s| {
                    while s.last().is_some_and(|b| b.is_ascii_whitespace()) {
                        s.pop();
                    }
                    s
                })
                .map_err(|e| format!("--secret-file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    actix_rt::System::new().block_on(async move {
        let handle = EmulatorHandle::start(EmulatorConfig {
            port,
            webhook_secret: secret,
            ..EmulatorConfig::default()
        })
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        println!("{}", handle.webhook_url());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        handle.stop().await;
        Ok(())
    })
}

/// Loads `--config`, or the default file if it exists, or built-in defaults.
fn load_config(flag: Option<&Path>) -> Result<Config, String> {
    match flag {
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
        None => {
            let path = Path::new(CONFIG_PATH_DEFAULT);
            if path.exists() {
                Config::load(path).map_err(|e| e.to_string())
            } else {
                Ok(Config::default())
            }
        }
    }
}

/// `edgecc outbox …`: builds the request, sends it to the daemon (or runs it
/// offline), prints the answer.
fn outbox(cli: &Cli, args: &OutboxArgs, config: &Config) -> Result<ExitCode, String> {
    let request = match &args.command {
        OutboxCommand::Salvage { dir } => {
            let data_dir = paths::data_dir(cli.data_dir.as_deref(), config);
            let summary =
                crate::ops::salvage::salvage(dir, &data_dir, config).map_err(|e| e.message)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_value(&summary).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", crate::ops::salvage::render_text(&summary));
            }
            return Ok(ExitCode::SUCCESS);
        }
        OutboxCommand::Status => AdminRequest::OutboxStatus,
        OutboxCommand::List { from, limit } => AdminRequest::OutboxList {
            from: *from,
            limit: *limit,
        },
        OutboxCommand::Dead {
            command: DeadCommand::List { from, limit },
        } => AdminRequest::DeadList {
            from: *from,
            limit: *limit,
        },
        OutboxCommand::Dead {
            command: DeadCommand::Requeue { seq, all },
        } => match (seq, all) {
            (_, true) => AdminRequest::DeadRequeueAll,
            (Some(seq), false) => AdminRequest::DeadRequeue { seq: *seq },
            (None, false) => return Err("give a sequence number or --all".to_string()),
        },
    };
    let answer: Result<serde_json::Value, AdminError> = if args.offline {
        let data_dir = paths::data_dir(cli.data_dir.as_deref(), config);
        admin::requests::execute_offline(&data_dir, config, &request)
    } else {
        let socket = paths::admin_socket(cli.admin_socket.as_deref(), config);
        admin::client::call(&socket, &request)
    };
    let value = answer.map_err(|e| e.message)?;
    if args.json {
        println!("{value}");
    } else {
        print!("{}", admin::requests::render_text(&request, &value));
    }
    Ok(ExitCode::SUCCESS)
}
