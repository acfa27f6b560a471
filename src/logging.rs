//! Log set-up: every log line goes through `tracing`, to stderr.
//!
//! `EDGECC_LOG` (or `RUST_LOG`) sets the filter, `info` by default. Output
//! is plain text on a terminal and one JSON object per line when
//! `EDGECC_LOG_FORMAT=json`, so fields survive into log collectors.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call twice (the second is a no-op).
pub fn init(default_level: &str) {
    let filter = std::env::var("EDGECC_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_level.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = std::env::var("EDGECC_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
