//! `edgecc report traffic`: the call records of a range as the what-if
//! traffic file, one JSON line per inbound call:
//! `{"at_ms","dnis","ani","patience_ms","talk_ms","data"}`.
//!
//! `at_ms` counts from the range's start. `patience_ms` is the wait of a
//! caller who abandoned (arrival to end); callers who were answered or
//! sent on never showed their patience, so theirs is absent (waits for
//! ever). `talk_ms` is an answered call's talk plus hold; an unanswered
//! call gets the mean of the answered ones in the range (0 when none was
//! answered), since it never showed its own.

use crate::simulate::traffic::TrafficCall;
use edgecc_actors::call::{Direction, TerminalReason};
use edgecc_actors::cdr::CallDetailRecord;
use serde_json::{Map, Value};

/// One line per inbound call arrived in `[from_ms, to_ms)`, by arrival, in
/// the one format `edgecc simulate` reads ([`TrafficCall`]).
pub fn lines(calls: &[CallDetailRecord], from_ms: u64, to_ms: u64) -> Vec<Value> {
    let inbound: Vec<&CallDetailRecord> = calls
        .iter()
        .filter(|c| c.direction == Direction::Inbound)
        .filter(|c| (from_ms..to_ms).contains(&c.arrived_ms))
        .collect();
    let talks: Vec<u64> = inbound
        .iter()
        .filter(|c| c.answered_ms.is_some())
        .map(|c| c.talk_ms + c.trail.hold_ms)
        .collect();
    let mean_talk = match talks.len() {
        0 => 0,
        n => talks.iter().sum::<u64>() / n as u64,
    };
    inbound
        .into_iter()
        .map(|c| {
            let data: Map<String, Value> = c
                .data
                .iter()
                .map(|v| (v.key.clone(), Value::String(v.value.clone())))
                .collect();
            let line = TrafficCall {
                at_ms: c.arrived_ms - from_ms,
                dnis: c.dnis.clone(),
                ani: c.ani.clone(),
                patience_ms: (c.trail.terminal == Some(TerminalReason::Abandoned))
                    .then(|| c.trail.ended_ms.unwrap_or(c.arrived_ms) - c.arrived_ms),
                talk_ms: match c.answered_ms {
                    Some(_) => c.talk_ms + c.trail.hold_ms,
                    None => mean_talk,
                },
                data,
            };
            // A struct with string keys only: serde_json cannot refuse it.
            serde_json::to_value(&line).unwrap_or(Value::Null)
        })
        .collect()
}
