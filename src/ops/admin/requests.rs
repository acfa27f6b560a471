//! What each admin request does to the storage, and how answers read as
//! text. Used by the daemon's admin socket and by `--offline` alike.

use std::fmt::Write as _;
use std::path::Path;

use edgecc_storage::{DeadLetter, Record, Storage, StorageError};
use serde::Serialize;
use serde_json::{json, Value};

use super::{AdminError, AdminRequest, LIST_LIMIT_MAX};
use crate::config::Config;
use crate::ops::storage_health::FIGURES;
use crate::system::storage::{open_storage, OpenError};

/// A pending record as the CLI and API show it.
#[derive(Debug, Serialize)]
pub struct RecordView {
    /// Outbox sequence (its place in the order).
    pub seq: u64,
    /// `interaction.create`, `phone_log.create`, …
    pub kind: &'static str,
    /// The idempotency key sent to the CRM.
    pub correlation_id: String,
    /// The interaction (call) it belongs to.
    pub interaction_key: String,
    /// When it was appended (ms since the epoch).
    pub created_at_ms: u64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Not retried before this time (ms since the epoch).
    pub next_attempt_at_ms: u64,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
    /// The JSON body, as text.
    pub body: String,
}

impl From<&Record> for RecordView {
    fn from(r: &Record) -> Self {
        RecordView {
            seq: r.seq,
            kind: r.kind.as_str(),
            correlation_id: r.correlation_id.clone(),
            interaction_key: r.interaction_key.clone(),
            created_at_ms: r.created_at_ms,
            attempts: r.attempts,
            next_attempt_at_ms: r.next_attempt_at_ms,
            last_error: r.last_error.clone(),
            body: String::from_utf8_lossy(&r.body).into_owned(),
        }
    }
}

/// A dead letter as the CLI and API show it.
#[derive(Debug, Serialize)]
pub struct DeadLetterView {
    /// Its original outbox sequence (re-queue puts it back there).
    pub seq: u64,
    /// Why it is dead: the CRM's answer, or the decode error.
    pub reason: String,
    /// The record, when it could be decoded.
    pub record: Option<RecordView>,
    /// Size of the raw bytes kept for an undecodable record.
    pub raw_bytes: usize,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(d: &DeadLetter) -> Self {
        DeadLetterView {
            seq: d.seq,
            reason: d.reason.clone(),
            record: d.record.as_ref().map(RecordView::from),
            raw_bytes: d.raw.len(),
        }
    }
}

/// Runs `request` against an open storage.
pub async fn execute(
    storage: &Storage,
    request: &AdminRequest,
    now_ms: u64,
) -> Result<Value, AdminError> {
    let outbox = storage.outbox();
    match request {
        AdminRequest::OutboxStatus => {
            let s = outbox.stats(now_ms).map_err(storage_error)?;
            Ok(json!({
                "depth": s.depth,
                "oldest_age_ms": s.oldest_age_ms,
                "in_flight": s.in_flight,
                "held": s.held,
                "dead_letters": s.dead_letters,
                "bytes_on_disk": s.bytes_on_disk,
                "storage": s.health,
            }))
        }
        AdminRequest::OutboxList { from, limit } => {
            let records = outbox
                .list(*from, (*limit).min(LIST_LIMIT_MAX))
                .map_err(storage_error)?;
            let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
            Ok(json!({ "records": views }))
        }
        AdminRequest::DeadList { from, limit } => {
            let dead = outbox
                .dead_letters(*from, (*limit).min(LIST_LIMIT_MAX))
                .map_err(storage_error)?;
            let views: Vec<DeadLetterView> = dead.iter().map(DeadLetterView::from).collect();
            Ok(json!({ "dead_letters": views }))
        }
        AdminRequest::DeadRequeue { seq } => {
            outbox.requeue(*seq).await.map_err(storage_error)?;
            Ok(json!({ "requeued": 1 }))
        }
        AdminRequest::DeadRequeueAll => {
            let n = outbox.requeue_all().await.map_err(storage_error)?;
            Ok(json!({ "requeued": n }))
        }
        AdminRequest::Backup => Err(AdminError::new(
            "bad_request",
            "a backup streams its answer: use `edgecc backup FILE`",
        )),
        AdminRequest::Report { query, csv } => report(storage, query, *csv).await,
    }
}

/// The admin socket's (and `--offline`'s) report: the JSON report, or
/// `{"csv": "..."}`. The history is read on a blocking thread.
async fn report(
    storage: &edgecc_storage::Storage,
    query: &crate::reports::ReportQuery,
    csv: bool,
) -> Result<serde_json::Value, AdminError> {
    let tree = crate::system::storage::Tree::ActorState
        .open(storage)
        .map_err(|e| AdminError::new("storage", e.to_string()))?;
    let query = query.clone();
    let report = actix_rt::task::spawn_blocking(move || crate::reports::run(&tree, &query))
        .await
        .map_err(|e| AdminError::new("storage", e.to_string()))?
        .map_err(|e| match e {
            crate::reports::ReportError::BadRange(m) => AdminError::new("bad_request", m),
            crate::reports::ReportError::History(e) => AdminError::new("storage", e.to_string()),
        })?;
    if csv {
        return Ok(serde_json::json!({ "csv": crate::reports::csv::render(&report.rows) }));
    }
    serde_json::to_value(&report).map_err(|e| AdminError::new("storage", e.to_string()))
}

/// `--offline`: opens the data directory itself (refusing clearly if the
/// daemon holds it), runs the request, closes.
pub fn execute_offline(
    data_dir: &Path,
    config: &Config,
    request: &AdminRequest,
) -> Result<Value, AdminError> {
    if !data_dir.exists() {
        return Err(AdminError::new(
            "not_found",
            format!("no data directory at {}", data_dir.display()),
        ));
    }
    run_offline(
        data_dir,
        config,
        "drop --offline to ask the daemon over its admin socket",
        |storage| async move { execute(&storage, request, crate::clock::now_ms()).await },
    )
}

/// Runs `job` on the data directory opened offline ([`open_offline`],
/// `hint` for when the daemon holds it), on a one-shot runtime of this
/// thread; the directory is closed when `job` is done with it.
pub fn run_offline<T, Job, Fut>(
    data_dir: &Path,
    config: &Config,
    hint: &str,
    job: Job,
) -> Result<T, AdminError>
where
    Job: FnOnce(Storage) -> Fut,
    Fut: std::future::Future<Output = Result<T, AdminError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AdminError::new("unavailable", format!("runtime: {e}")))?;
    runtime.block_on(async {
        let storage = open_offline(data_dir, config, hint)?;
        job(storage).await
    })
}

/// Opens the data directory for an offline command; while a running
/// daemon holds it, a `locked` error that says so and what to do instead
/// (`hint`).
pub fn open_offline(data_dir: &Path, config: &Config, hint: &str) -> Result<Storage, AdminError> {
    open_storage(config, data_dir).map_err(|e| match e {
        OpenError {
            source: StorageError::Locked { .. },
            ..
        } => AdminError::new(
            "locked",
            format!(
                "the data directory {} is held by a running edgecc; {hint}",
                data_dir.display()
            ),
        ),
        other => AdminError::new("storage", other.to_string()),
    })
}

/// Maps a storage error to an admin error with a stable code.
fn storage_error(e: StorageError) -> AdminError {
    let code = match &e {
        StorageError::NotDeadLetter { .. } => "not_found",
        _ => "storage",
    };
    AdminError::new(code, e.to_string())
}

/// Renders an answer as text for people.
pub fn render_text(request: &AdminRequest, value: &Value) -> String {
    let mut out = String::new();
    let n = |k: &str| value.get(k).and_then(Value::as_u64).unwrap_or(0);
    match request {
        AdminRequest::OutboxStatus => {
            let _ = writeln!(out, "depth          {}", n("depth"));
            let _ = writeln!(out, "oldest age     {}", human_ms(n("oldest_age_ms")));
            let _ = writeln!(out, "in flight      {}", n("in_flight"));
            let _ = writeln!(out, "held           {}", n("held"));
            let _ = writeln!(out, "dead letters   {}", n("dead_letters"));
            let _ = writeln!(out, "bytes on disk  {}", n("bytes_on_disk"));
            render_storage_health(&mut out, value.get("storage"));
        }
        AdminRequest::OutboxList { .. } => {
            let records = value.get("records").and_then(Value::as_array);
            let records = records.map(Vec::as_slice).unwrap_or_default();
            if records.is_empty() {
                out.push_str("no pending records\n");
            }
            for r in records {
                let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
                let u = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
                let _ = writeln!(
                    out,
                    "{:>10}  {:<18} {}  attempts={}{}",
                    u("seq"),
                    s("kind"),
                    s("correlation_id"),
                    u("attempts"),
                    match r.get("last_error").and_then(Value::as_str) {
                        Some(e) => format!("  last_error={e}"),
                        None => String::new(),
                    }
                );
            }
        }
        AdminRequest::DeadList { .. } => {
            let dead = value.get("dead_letters").and_then(Value::as_array);
            let dead = dead.map(Vec::as_slice).unwrap_or_default();
            if dead.is_empty() {
                out.push_str("no dead letters\n");
            }
            for d in dead {
                let seq = d.get("seq").and_then(Value::as_u64).unwrap_or(0);
                let reason = d.get("reason").and_then(Value::as_str).unwrap_or("");
                let what = d
                    .get("record")
                    .and_then(|r| r.get("correlation_id"))
                    .and_then(Value::as_str)
                    .unwrap_or("(undecodable record)");
                let _ = writeln!(out, "{seq:>10}  {what}  reason: {reason}");
            }
        }
        AdminRequest::DeadRequeue { seq } => {
            let _ = writeln!(out, "re-queued dead letter {seq}");
        }
        AdminRequest::DeadRequeueAll => {
            let _ = writeln!(out, "re-queued {} dead letters", n("requeued"));
        }
        AdminRequest::Backup => {
            let _ = writeln!(out, "backup of {} bytes", n("bytes"));
        }
        AdminRequest::Report { .. } => match value.get("csv").and_then(Value::as_str) {
            Some(csv) => out.push_str(csv),
            None => {
                let _ = writeln!(out, "{value:#}");
            }
        },
    }
    out
}

/// The storage health lines of `outbox status` ([`FIGURES`]), and each
/// quarantined directory with what to do about it. An answer without
/// them (an older daemon) prints none.
fn render_storage_health(out: &mut String, health: Option<&Value>) {
    let Some(health) = health.filter(|h| h.is_object()) else {
        return;
    };
    for figure in FIGURES {
        let _ = writeln!(out, "{:<15}{}", figure.label, figure.text(health));
    }
    let quarantined = health.get("quarantined").and_then(Value::as_array);
    for dir in quarantined.into_iter().flatten().filter_map(Value::as_str) {
        let _ = writeln!(
            out,
            "  {dir}: sled moved aside; with the daemon stopped run \
             `edgecc outbox salvage {dir}`, then remove it"
        );
    }
}

/// `1h 02m`, `3.2s`: an age a person reads at a glance.
fn human_ms(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}.{}s", s, (ms % 1000) / 100)
    }
}
