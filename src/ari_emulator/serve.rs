//! `edgecc pbx-emulator`: the ARI emulator as a process of its own, so the
//! simulated PBX outlives the daemon as a real one does. A daemon with
//! `pbx.kind = "ari"` pointed at it talks ARI to it as to Asterisk; killed
//! and started again, it reconnects and re-adopts the calls still up
//! there (a simulated PBX inside the daemon's process dies with it).
//!
//! It owns the far ends a real PBX would have: agent phones (`--phones`,
//! answering after `--answer-ms`) and, with `--rate`, callers dialling
//! `--dnis` into the Stasis application while a daemon holds it (with no
//! application, Asterisk's `Stasis()` fails the call at once: those calls
//! are counted as not taken), each hanging up `--talk-ms` after an agent
//! joined it, or after `--patience-ms` waiting for one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::{AriEmulator, AriEmulatorConfig, EmulatorError, EndpointBehaviour};

/// How often callers are looked at.
const TICK: Duration = Duration::from_millis(50);

/// `edgecc pbx-emulator`.
#[derive(Debug, Clone, Args)]
pub struct PbxEmulatorArgs {
    /// Port on 127.0.0.1 (0: any free port); the ARI base URL is printed.
    #[arg(long, default_value_t = 8088)]
    pub port: u16,
    /// File with the ARI password of user `edgecc` (default `edgecc-secret`).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Agent phones, comma-separated endpoints (`PJSIP/3101,PJSIP/3102`).
    #[arg(long, value_delimiter = ',')]
    pub phones: Vec<String>,
    /// How long a phone rings before it answers, ms.
    #[arg(long, default_value_t = 1_000)]
    pub answer_ms: u64,
    /// Callers per second (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// The number callers dial.
    #[arg(long, default_value = "8000")]
    pub dnis: String,
    /// How long a caller talks once an agent joined it, ms.
    #[arg(long, default_value_t = 30_000)]
    pub talk_ms: u64,
    /// How long a caller waits for an agent before hanging up, ms.
    #[arg(long, default_value_t = 60_000)]
    pub patience_ms: u64,
}

/// One caller the emulator placed and still drives.
struct Caller {
    /// When it dialled.
    placed: Instant,
    /// When an agent joined it (its bridge had two channels).
    answered: Option<Instant>,
}

/// What the callers did so far (logged at the end).
#[derive(Debug, Default)]
struct Tally {
    /// Calls the application took.
    placed: u64,
    /// Calls that failed at once: no daemon held the application.
    not_taken: u64,
    /// Callers who talked to an agent.
    answered: u64,
}

/// Serves until SIGTERM or SIGINT.
pub fn run(args: &PbxEmulatorArgs) -> Result<(), String> {
    if !(args.rate.is_finite() && (0.0..=1_000.0).contains(&args.rate)) {
        return Err(format!("--rate {}: between 0 and 1000 calls/s", args.rate));
    }
    let mut cfg = AriEmulatorConfig::default();
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--password-file {}: {e}", path.display()))?;
        cfg.password = text.trim_end().to_string();
    }
    let pbx = AriEmulator::start_on(cfg, args.port)
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    for phone in &args.phones {
        pbx.set_endpoint(
            phone,
            EndpointBehaviour::AnswerAfter {
                ring_ms: args.answer_ms,
            },
        );
    }
    println!("{}", pbx.base_url());
    actix_rt::System::new().block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        let mut tally = Tally::default();
        let mut callers = HashMap::new();
        let gap = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = tokio::time::sleep(TICK) => {}
            }
            if let Some(gap) = gap {
                while next <= Instant::now() {
                    next += gap;
                    place(&pbx, args, &mut callers, &mut tally)?;
                }
            }
            drive(&pbx, args, &mut callers, &mut tally);
        }
        tracing::info!(
            placed = tally.placed,
            not_taken = tally.not_taken,
            answered = tally.answered,
            "PBX emulator stopping."
        );
        Ok(())
    })
}

/// Places one caller into the application.
fn place(
    pbx: &AriEmulator,
    args: &PbxEmulatorArgs,
    callers: &mut HashMap<String, Caller>,
    tally: &mut Tally,
) -> Result<(), String> {
    let ani = format!("+1555{:07}", (tally.placed + tally.not_taken) % 10_000_000);
    match pbx.inbound_call(&ani, "Caller", &args.dnis, &[]) {
        Ok(id) => {
            tally.placed += 1;
            callers.insert(
                id,
                Caller {
                    placed: Instant::now(),
                    answered: None,
                },
            );
            Ok(())
        }
        Err(EmulatorError::NoLink) => {
            tally.not_taken += 1;
            Ok(())
        }
        Err(e) => Err(format!("PBX emulator: {e}")),
    }
}

/// Hangs up callers whose talk or patience is over; forgets those gone.
fn drive(
    pbx: &AriEmulator,
    args: &PbxEmulatorArgs,
    callers: &mut HashMap<String, Caller>,
    tally: &mut Tally,
) {
    let state = pbx.state();
    let now = Instant::now();
    callers.retain(|id, caller| {
        let Some(ch) = state.channel(id) else {
            return false;
        };
        if caller.answered.is_none() {
            let with_agent = ch
                .bridge_id
                .as_deref()
                .and_then(|b| state.bridge(b))
                .is_some_and(|b| b.channels.len() >= 2);
            if with_agent {
                caller.answered = Some(now);
                tally.answered += 1;
            }
        }
        let done = match caller.answered {
            Some(at) => now >= at + Duration::from_millis(args.talk_ms),
            None => now >= caller.placed + Duration::from_millis(args.patience_ms),
        };
        !(done && pbx.caller_hangup(id).is_ok())
    });
}
