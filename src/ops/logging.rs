//! Log set-up: every log line goes through `tracing`, to journald or to
//! stderr.
//!
//! `EDGECC_LOG` (or `RUST_LOG`) sets the filter, `info` by default. Under
//! systemd (`$JOURNAL_STREAM` names our stderr) events go to journald with
//! their fields as journal fields (`EDGECC_CALL_ID=…`, searchable with
//! `journalctl -u edgecc EDGECC_CALL_ID=…`) and the level as the priority.
//! Otherwise output is plain text on stderr, or one JSON object per line
//! when `EDGECC_LOG_FORMAT=json`, so fields survive into log collectors.

use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// Prefix of our fields in the journal: keeps them apart from journald's
/// own field names.
pub const JOURNAL_FIELD_PREFIX: &str = "EDGECC";
/// `SYSLOG_IDENTIFIER=` of our journal entries.
pub const JOURNAL_IDENTIFIER: &str = "edgecc";

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// The systemd journal, with structured fields.
    Journald,
    /// stderr, one JSON object per line.
    Json,
    /// stderr, plain text.
    Text,
}

/// Picks the sink. systemd sets `JOURNAL_STREAM=<device>:<inode>` of the
/// stream it connected to stderr; it is inherited by child processes whose
/// stderr may point elsewhere, so journald is used only when it matches
/// our stderr (`stderr_id`), as `systemd.exec(5)` recommends.
pub fn choose_sink(
    journal_stream: Option<&str>,
    stderr_id: Option<(u64, u64)>,
    format: Option<&str>,
) -> Sink {
    let journal = journal_stream
        .and_then(|v| {
            let (dev, ino) = v.trim().split_once(':')?;
            Some((dev.parse::<u64>().ok()?, ino.parse::<u64>().ok()?))
        })
        .is_some_and(|id| Some(id) == stderr_id);
    if journal {
        Sink::Journald
    } else if format == Some("json") {
        Sink::Json
    } else {
        Sink::Text
    }
}

/// Device and inode of our stderr, if it is open.
pub fn stderr_id() -> Option<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `stat` into the buffer we own; fd 2 may be
    // closed, which fstat reports as an error.
    let rc = unsafe { libc::fstat(2, st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so the buffer is initialised.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // dev_t/ino_t widths differ by target
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// Installs the global subscriber. Safe to call twice (the second is a no-op).
pub fn init(default_level: &str) {
    let filter = std::env::var("EDGECC_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_level.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default_level));
    let sink = choose_sink(
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        stderr_id(),
        std::env::var("EDGECC_LOG_FORMAT").ok().as_deref(),
    );
    if sink == Sink::Journald {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_field_prefix(Some(JOURNAL_FIELD_PREFIX.to_string()))
                    .with_syslog_identifier(JOURNAL_IDENTIFIER.to_string());
                let _ = tracing_subscriber::registry()
                    .with(filter)
                    .with(layer)
                    .try_init();
                return;
            }
            Err(e) => {
                // Our stderr is the journal stream anyway: plain text still
                // lands in the journal, only without fields.
                eprintln!("edgecc: journald socket unavailable ({e}); logging to stderr");
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if sink == Sink::Json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Installs the global subscriber writing plain text to `path` (the demo
/// on a terminal, so its screen stays clean); falls back to [`init`] when
/// the file cannot be opened.
pub fn init_file(default_level: &str, path: &std::path::Path) {
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "edgecc: cannot open {} ({e}); logging to stderr",
                path.display()
            );
            return init(default_level);
        }
    };
    let filter = std::env::var("EDGECC_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_level.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// journald only when JOURNAL_STREAM names our very stderr; otherwise
    /// the format variable decides.
    #[test]
    fn journald_only_when_the_stream_is_our_stderr() {
        let me = Some((64769, 123456));
        assert_eq!(choose_sink(Some("64769:123456"), me, None), Sink::Journald);
        assert_eq!(
            choose_sink(Some("64769:123456"), me, Some("json")),
            Sink::Journald
        );
        // Inherited by a child whose stderr was redirected.
        assert_eq!(choose_sink(Some("64769:999"), me, None), Sink::Text);
        assert_eq!(choose_sink(Some("64769:999"), me, Some("json")), Sink::Json);
        assert_eq!(choose_sink(None, me, None), Sink::Text);
        assert_eq!(choose_sink(Some("garbage"), me, None), Sink::Text);
        assert_eq!(choose_sink(Some("64769:123456"), None, None), Sink::Text);
    }

    /// Our stderr has an identity the check can compare.
    #[test]
    fn stderr_has_an_identity() {
        let (dev, ino) = stderr_id().expect("stderr open in tests");
        assert!(dev != 0 || ino != 0);
    }
}
