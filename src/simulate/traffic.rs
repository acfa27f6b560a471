//! The traffic file of `edgecc simulate`: JSON lines, one inbound call
//! each, in the order callers dialled in.
//!
//! ```text
//! {"at_ms": 0, "dnis": "+18005550100", "ani": "+15550100", "patience_ms": 30000, "talk_ms": 180000, "data": {"account": "A-17"}}
//! ```
//!
//! - `at_ms`: when the call arrives, ms from the start of the traffic.
//! - `dnis`: the number dialled; it must be a queue's DNIS in the config.
//! - `ani`: the caller's number.
//! - `patience_ms`: the caller hangs up if no agent has answered by then;
//!   absent (or `null`) waits for ever.
//! - `talk_ms`: the caller hangs up this long after an agent answered.
//! - `data`: optional IVR variables (attached data), string, number or
//!   boolean values, at most [`ATTACHED_VARS_MAX`] of them.
//!
//! Blank lines are skipped; unknown keys are refused (a typo such as
//! `"patience"` would silently mean "waits for ever"). [`parse_traffic`] is
//! the one parser of the format and [`TrafficCall`] serializes to it, so the
//! file `edgecc report traffic` writes is the file `simulate` reads. This
//! module depends on nothing else in the crate.

use std::fmt;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use edgecc_actors::ports::AttachedVar;
use edgecc_actors::ATTACHED_VARS_MAX;
use serde::{Deserialize, Serialize};

/// Most calls one traffic file may hold: twenty busy days of 200,000 calls;
/// each parsed call costs about 200 bytes of memory.
pub const TRAFFIC_CALLS_MAX: usize = 4_000_000;
/// Longest line read, bytes: ten attached variables of the longest value
/// the actors keep (256 bytes) with their keys fit many times over.
pub const TRAFFIC_LINE_BYTES_MAX: usize = 16_384;
/// Latest arrival, ms from the start of the traffic: a week.
pub const TRAFFIC_AT_MS_MAX: u64 = 7 * 86_400_000;
/// Longest talk time or patience, ms: a day.
pub const TRAFFIC_DURATION_MS_MAX: u64 = 86_400_000;

/// One inbound call of the traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficCall {
    /// Arrival, ms from the start of the traffic: the replay's clock.
    pub at_ms: u64,
    /// The number dialled: picks the queue, as at the PBX.
    pub dnis: String,
    /// The caller's number: sticky-agent rules and the CRM key on it.
    pub ani: String,
    /// How long the caller waits for an agent before hanging up; `None`
    /// waits for ever (until the queue's own `max_wait_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience_ms: Option<u64>,
    /// How long the caller talks once answered: the agent's talk time.
    pub talk_ms: u64,
    /// IVR variables: skills and priority rules read them.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl TrafficCall {
    /// The call's data as the PBX hands attached variables to the actors:
    /// strings as they are, numbers and booleans as their JSON text.
    pub fn attached(&self) -> Vec<AttachedVar> {
        self.data
            .iter()
            .map(|(key, value)| AttachedVar {
                key: key.clone(),
                value: match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            })
            .collect()
    }

    /// Checks what serde cannot: bounds and the shape of `data`.
    fn check(&self) -> Result<(), String> {
        if self.at_ms > TRAFFIC_AT_MS_MAX {
            return Err(format!(
                "at_ms {} is beyond a week ({TRAFFIC_AT_MS_MAX} ms)",
                self.at_ms
            ));
        }
        if self.dnis.trim().is_empty() {
            return Err("dnis is empty".to_string());
        }
        for (key, value) in [
            ("talk_ms", Some(self.talk_ms)),
            ("patience_ms", self.patience_ms),
        ] {
            if value.is_some_and(|v| v > TRAFFIC_DURATION_MS_MAX) {
                return Err(format!(
                    "{key} {} is longer than a day ({TRAFFIC_DURATION_MS_MAX} ms)",
                    value.unwrap_or_default()
                ));
            }
        }
        if self.data.len() > ATTACHED_VARS_MAX {
            return Err(format!(
                "data has {} keys; a call carries at most {ATTACHED_VARS_MAX}",
                self.data.len()
            ));
        }
        for (key, value) in &self.data {
            if value.is_object() || value.is_array() || value.is_null() {
                return Err(format!(
                    "data.{key} must be a string, a number or a boolean"
                ));
            }
        }
        Ok(())
    }
}

/// A traffic file that cannot be replayed, naming the file and the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficError {
    /// The file read.
    pub file: PathBuf,
    /// 1-based line at fault; 0 when the whole file is (unreadable, empty).
    pub line: usize,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl fmt::Display for TrafficError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: line {}: {}",
                self.file.display(),
                self.line,
                self.message
            )
        }
    }
}

impl std::error::Error for TrafficError {}

/// Parses one line of the format (not blank).
pub fn parse_traffic_line(line: &str) -> Result<TrafficCall, String> {
    let call: TrafficCall = serde_json::from_str(line).map_err(|e| e.to_string())?;
    call.check()?;
    Ok(call)
}

/// Reads a whole traffic file from `reader` (`file` names it in errors):
/// every call, each with its 1-based line number, in file order. The first
/// bad line is the error; an empty file is one too.
pub fn parse_traffic(
    reader: impl BufRead,
    file: &Path,
) -> Result<Vec<(usize, TrafficCall)>, TrafficError> {
    let err = |line: usize, message: String| TrafficError {
        file: file.to_path_buf(),
        line,
        message,
    };
    let mut calls = Vec::new();
    let mut reader = reader;
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        number += 1;
        let mut limited = (&mut reader).take(TRAFFIC_LINE_BYTES_MAX as u64 + 1);
        let n = limited
            .read_until(b'\n', &mut buf)
            .map_err(|e| err(0, format!("cannot read the file: {e}")))?;
        if n == 0 {
            break;
        }
        if buf.len() > TRAFFIC_LINE_BYTES_MAX {
            return Err(err(
                number,
                format!("longer than {TRAFFIC_LINE_BYTES_MAX} bytes"),
            ));
        }
        let text = std::str::from_utf8(&buf).map_err(|_| err(number, "not UTF-8".to_string()))?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        if calls.len() == TRAFFIC_CALLS_MAX {
            return Err(err(
                number,
                format!("more than {TRAFFIC_CALLS_MAX} calls in one file"),
            ));
        }
        let call = parse_traffic_line(text).map_err(|m| err(number, m))?;
        calls.push((number, call));
    }
    if calls.is_empty() {
        return Err(err(0, "holds no calls".to_string()));
    }
    Ok(calls)
}

/// Reads the traffic file at `path` (see [`parse_traffic`]).
pub fn read_traffic(path: &Path) -> Result<Vec<(usize, TrafficCall)>, TrafficError> {
    let file = std::fs::File::open(path).map_err(|e| TrafficError {
        file: path.to_path_buf(),
        line: 0,
        message: format!("cannot open the file: {e}"),
    })?;
    parse_traffic(std::io::BufReader::new(file), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(usize, TrafficCall)>, TrafficError> {
        parse_traffic(text.as_bytes(), Path::new("day.jsonl"))
    }

    /// The issue's example line parses, and a call serializes back to the
    /// same format (what `edgecc report traffic` writes).
    #[test]
    fn the_example_round_trips() {
        let line = r#"{"at_ms": 0, "dnis": "+18005550100", "ani": "+15550100", "patience_ms": 30000, "talk_ms": 180000, "data": {"account": "A-17", "tier": 2}}"#;
        let calls = parse(line).unwrap();
        let (number, call) = &calls[0];
        assert_eq!(*number, 1);
        assert_eq!(call.patience_ms, Some(30_000));
        assert_eq!(call.talk_ms, 180_000);
        let attached = call.attached();
        assert_eq!(attached[0].value, "A-17");
        assert_eq!(attached[1].value, "2");
        let again = parse_traffic_line(&serde_json::to_string(call).unwrap()).unwrap();
        assert_eq!(&again, call);
    }

    /// Patience absent or null waits for ever; blank lines are skipped and
    /// line numbers count them.
    #[test]
    fn patience_is_optional_and_blank_lines_count() {
        let text = "\n{\"at_ms\": 5, \"dnis\": \"800\", \"ani\": \"1\", \"talk_ms\": 1}\n\n{\"at_ms\": 6, \"dnis\": \"800\", \"ani\": \"1\", \"talk_ms\": 1, \"patience_ms\": null}\n";
        let calls = parse(text).unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].0, 2);
        assert_eq!(calls[1].0, 4);
        assert!(calls.iter().all(|(_, c)| c.patience_ms.is_none()));
    }

    /// Each kind of bad line is refused with its line number and a reason.
    #[test]
    fn bad_lines_name_the_line_and_the_reason() {
        let ok = r#"{"at_ms": 0, "dnis": "800", "ani": "1", "talk_ms": 1}"#;
        let cases = [
            ("{not json", "key must be a string"),
            (
                r#"{"at_ms": 0, "dnis": "800", "ani": "1"}"#,
                "missing field `talk_ms`",
            ),
            (
                r#"{"at_ms": 0, "dnis": "800", "ani": "1", "talk_ms": 1, "patience": 5}"#,
                "unknown field `patience`",
            ),
            (
                r#"{"at_ms": -1, "dnis": "800", "ani": "1", "talk_ms": 1}"#,
                "invalid value",
            ),
            (
                r#"{"at_ms": 0, "dnis": " ", "ani": "1", "talk_ms": 1}"#,
                "dnis is empty",
            ),
            (
                r#"{"at_ms": 0, "dnis": "800", "ani": "1", "talk_ms": 90000000}"#,
                "talk_ms 90000000 is longer than a day",
            ),
            (
                r#"{"at_ms": 0, "dnis": "800", "ani": "1", "talk_ms": 1, "data": {"a": {"b": 1}}}"#,
                "data.a must be a string",
            ),
        ];
        for (bad, reason) in cases {
            let e = parse(&format!("{ok}\n{bad}\n")).unwrap_err();
            assert_eq!(e.line, 2, "{bad}: {e}");
            assert!(e.to_string().starts_with("day.jsonl: line 2: "), "{e}");
            assert!(e.message.contains(reason), "{bad}: {e}");
        }
    }

    /// An empty file, a line over the byte limit and bytes that are not
    /// UTF-8 are errors, not panics.
    #[test]
    fn empty_long_and_binary_files_are_refused() {
        assert_eq!(parse("\n\n").unwrap_err().message, "holds no calls");
        let long = format!("{}\n", "x".repeat(TRAFFIC_LINE_BYTES_MAX + 10));
        assert_eq!(parse(&long).unwrap_err().line, 1);
        let e = parse_traffic(&b"\xff\xfe\n"[..], Path::new("f")).unwrap_err();
        assert_eq!(e.message, "not UTF-8");
    }
}
