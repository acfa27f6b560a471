//! What-if speed: a busy day of 200,000 calls replayed by `edgecc
//! simulate` (parse, check, replay through the actors under the paused
//! clock, figures), in process, release profile. Goal (issue 19): at most
//! 30 s on 2 cores.
//!
//! The day: Poisson arrivals over 24 h on four queues (DNIS
//! +1800555010{0..3}), talk exponential with mean 180 s, patience
//! exponential with mean 120 s, 480 agents each in two queues, 2 s answer
//! delay, 10 s wrap-up: about 440 Erlangs of work on 480 agents, so queues
//! form, callers abandon and every agent is busy most of the day.
//!
//! Run: `cargo bench -p edgecc --bench simulate`. Knobs:
//! `EDGECC_SIMULATE_CALLS` (default 200,000), `EDGECC_SIMULATE_AGENTS`
//! (default 480). Prints the wall time of the whole command and of the
//! replay, calls per second, the peak RSS (VmHWM), and per queue the
//! service level and ASA, so a faster run can be seen to do the same work.

use std::io::Write;
use std::time::Instant;

use edgecc_actors::rng::SplitMix64;

/// Goal from issue 19, seconds.
const GOAL_S: f64 = 30.0;
const QUEUES: usize = 4;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn exponential(rng: &mut SplitMix64, mean: f64) -> u64 {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (-mean * (1.0 - u).ln()).round() as u64
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let calls = env_usize("EDGECC_SIMULATE_CALLS", 200_000);
    let agents = env_usize("EDGECC_SIMULATE_AGENTS", 480);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = String::from("[simulate]\nanswer_delay_ms = 2000\n");
    for q in 0..QUEUES {
        config.push_str(&format!(
            "[[queues]]\nid = \"q{q}\"\ndnis = [\"+1800555010{q}\"]\nwrap_up_ms = 10000\nmax_wait_ms = 600000\n"
        ));
    }
    for a in 0..agents {
        config.push_str(&format!(
            "[[agents]]\nid = \"a{a}\"\nextension = \"{}\"\nqueues = [\"q{}\", \"q{}\"]\n",
            10_000 + a,
            a % QUEUES,
            (a + 1) % QUEUES
        ));
    }
    let config_path = dir.path().join("day.toml");
    std::fs::write(&config_path, config).expect("write config");
    let traffic_path = dir.path().join("day.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&traffic_path).expect("create"));
    let mut rng = SplitMix64::new(19);
    let day_ms = 86_400_000.0;
    let mut at = 0u64;
    for i in 0..calls {
        at += exponential(&mut rng, day_ms / calls as f64);
        let q = rng.below(QUEUES as u64);
        writeln!(
            out,
            r#"{{"at_ms": {at}, "dnis": "+1800555010{q}", "ani": "+1555{i:07}", "patience_ms": {}, "talk_ms": {}}}"#,
            exponential(&mut rng, 120_000.0),
            exponential(&mut rng, 180_000.0)
        )
        .expect("write traffic");
    }
    out.flush().expect("flush");
    drop(out);

    let started = Instant::now();
    let sim = edgecc::simulate::simulate(&traffic_path, &config_path, None).expect("simulate");
    let wall = started.elapsed().as_secs_f64();
    let run = &sim.runs[0];
    let replay_s = run.wall_ms as f64 / 1_000.0;
    println!(
        "simulate: {calls} calls, {agents} agents, day of {:.1} h: {wall:.1} s in all ({replay_s:.1} s replay), {:.0} calls/s, peak RSS {} MiB; goal <= {GOAL_S} s: {}",
        run.span_ms as f64 / 3_600_000.0,
        calls as f64 / wall,
        vm_hwm_kib() / 1024,
        if wall <= GOAL_S { "met" } else { "NOT met" }
    );
    for q in &run.queues {
        println!(
            "  {}: offered {} answered {} abandoned {} timed out {} service level {:.1}% ASA {:.1} s p90 {:.1} s",
            q.queue,
            q.offered,
            q.answered,
            q.abandoned,
            q.timed_out,
            q.service_level_pct.unwrap_or(0.0),
            q.asa_ms.unwrap_or(0.0) / 1_000.0,
            q.wait_p90_ms.unwrap_or(0) as f64 / 1_000.0
        );
    }
    let occupancy: f64 =
        run.agents.iter().filter_map(|a| a.occupancy).sum::<f64>() / run.agents.len().max(1) as f64;
    println!("  mean agent occupancy {:.1}%", occupancy * 100.0);
}
