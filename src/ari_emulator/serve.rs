//! `edgecc pbx-emulator`: the ARI emulator as a process of its own, so the
//! simulated PBX outlives the daemon as a real one does. A daemon with
//! `pbx.kind = "ari"` pointed at it talks ARI to it as to Asterisk; killed
//! and started again, it reconnects and re-adopts the calls still up
//! there (a simulated PBX inside the daemon's process dies with it).
//!
//! It owns the far ends a real PBX would have: agent phones (`--phones`,
//! each answering after `--answer-ms`, or as its own `=answer:MS`,
//! `=reject` or `=never` says) and, with `--rate`, callers dialling
//! `--dnis` into the Stasis application while a daemon holds it (with no
//! application, Asterisk's `Stasis()` fails the call at once: those calls
//! are counted as not taken), each hanging up `--talk-ms` after an agent
//! joined it, or after `--patience-ms` waiting for one.
//!
//! With `--control-port` it also serves its control and status API
//! ([`super::control`]) and prints its base URL on a second line; with
//! `--until-stdin-closes` it stops when its standard input closes, so a
//! parent that dies however it dies (the demo) does not leave it behind.

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
    /// Serve the control and status API on 127.0.0.1:PORT (0: any free
    /// port); its base URL is printed on the second line.
    #[arg(long, value_name = "PORT")]
    pub control_port: Option<u16>,
    /// Stop when standard input closes (for a parent process that spawns
    /// it with a pipe: the PBX goes when its parent goes).
    #[arg(long)]
    pub until_stdin_closes: bool,
}

/// The `--phones` entry for `endpoint` behaving as `b`: `ENDPOINT`
/// (answers after `--answer-ms`), `ENDPOINT=answer:MS`, `ENDPOINT=reject`
/// or `ENDPOINT=never`; `None` for a behaviour the flag cannot say.
pub fn phone_arg(endpoint: &str, b: &EndpointBehaviour) -> Option<String> {
    match b {
        EndpointBehaviour::AnswerAfter { ring_ms } => Some(format!("{endpoint}=answer:{ring_ms}")),
        EndpointBehaviour::Reject => Some(format!("{endpoint}=reject")),
        EndpointBehaviour::RingForever => Some(format!("{endpoint}=never")),
        _ => None,
    }
}

/// Parses one `--phones` entry (see [`phone_arg`]).
fn parse_phone(text: &str, answer_ms: u64) -> Result<(String, EndpointBehaviour), String> {
    let (endpoint, how) = match text.split_once('=') {
        Some((e, how)) => (e, Some(how)),
        None => (text, None),
    };
    if endpoint.is_empty() {
        return Err(format!("--phones {text:?}: no endpoint"));
    }
    let b = match how {
        None => EndpointBehaviour::AnswerAfter { ring_ms: answer_ms },
        Some("reject") => EndpointBehaviour::Reject,
        Some("never") => EndpointBehaviour::RingForever,
        Some(other) => match other
            .strip_prefix("answer:")
            .and_then(|ms| ms.parse::<u64>().ok())
        {
            Some(ring_ms) => EndpointBehaviour::AnswerAfter { ring_ms },
            None => {
                return Err(format!(
                    "--phones {text:?}: after '=' use answer:MS, reject or never"
                ))
            }
        },
    };
    Ok((endpoint.to_string(), b))
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
    let phones = args
        .phones
        .iter()
        .map(|p| parse_phone(p, args.answer_ms))
        .collect::<Result<Vec<_>, _>>()?;
    let control = match args.control_port {
        Some(port) => Some(
            std::net::TcpListener::bind(("127.0.0.1", port))
                .map_err(|e| format!("--control-port: cannot listen on 127.0.0.1:{port}: {e}"))?,
        ),
        None => None,
    };
    let pbx = AriEmulator::start_on(cfg, args.port)
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    for (endpoint, b) in phones {
        pbx.set_endpoint(&endpoint, b);
    }
    println!("{}", pbx.base_url());
    actix_rt::System::new().block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        if let Some(listener) = control {
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let server =
                super::control::server(pbx.clone(), listener).map_err(|e| e.to_string())?;
            actix_rt::spawn(server);
            println!("http://{addr}/emulator");
        }
        // Standard input read to its end on a thread of its own; the end
        // (the parent gone) stops the PBX.
        let (stdin_closed, mut stdin_watch) = tokio::sync::oneshot::channel::<()>();
        if args.until_stdin_closes {
            std::thread::Builder::new()
                .name("pbx-stdin".into())
                .spawn(move || {
                    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                    let _ = stdin_closed.send(());
                })
                .map_err(|e| e.to_string())?;
        }
        let mut tally = Tally::default();
        let mut callers = HashMap::new();
        let gap = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = &mut stdin_watch, if args.until_stdin_closes => {
                    tracing::info!("Standard input closed: the parent is gone.");
                    break;
                }
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
