//! What the emulator holds behind its one mutex ([`State`]: records,
//! counters, mode, OAuth tokens, ServiceNow rows) and what every handler
//! shares ([`Shared`]: that state, the listener's address, the running
//! server, and the mode switch that closes and reopens the listener).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_rt::ArbiterHandle;
use actix_web::dev::ServerHandle;
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use super::{
    DroppedKeys, EmulatorConfig, EmulatorStats, Mode, RawRequest, Received, DROPPED_WRITES_MAX,
    ORDER_PER_INTERACTION_MAX, RECORDS_MAX, REFUSE_MS_MAX,
};
use crate::crm::sn_instance::{invalid_references, split_fields, TableDef};

/// A ServiceNow row the emulator holds.
#[derive(Debug, Clone)]
pub(super) struct Row {
    /// The row's sys_id.
    pub(super) sys_id: String,
    /// Import coalesce value in its target table (the interaction key or
    /// the correlation id; empty for staging and Table API rows).
    pub(super) coalesce: String,
    /// The fields.
    pub(super) fields: Map<String, Value>,
}

/// Journal fields: a write adds an entry instead of replacing the value.
const JOURNAL_FIELDS: &[&str] = &["work_notes", "comments"];

/// Writes `fields` into a row's `into` as ServiceNow does: a journal field
/// (`work_notes`) gains an entry (newest first, one per line), others are
/// replaced.
pub(super) fn merge_fields(into: &mut Map<String, Value>, fields: Map<String, Value>) {
    for (k, v) in fields {
        let old = into.get(&k).and_then(Value::as_str).unwrap_or("");
        match (&v, JOURNAL_FIELDS.contains(&k.as_str()) && !old.is_empty()) {
            (Value::String(new), true) if !new.is_empty() => {
                let entry = format!("{new}\n{old}");
                into.insert(k, Value::String(entry));
            }
            (Value::String(new), true) if new.is_empty() => {}
            _ => {
                into.insert(k, v);
            }
        }
    }
}

/// Everything the emulator stores, behind one mutex.
#[derive(Default)]
pub(super) struct State {
    /// Current behaviour.
    pub(super) mode: Mode,
    /// Bumped on every mode change, so a scheduled end of a refusal only
    /// applies to the refusal that scheduled it.
    pub(super) mode_generation: u64,
    /// Counters.
    pub(super) stats: EmulatorStats,
    /// First arrivals, in order (at most [`RECORDS_MAX`]).
    pub(super) received: Vec<Received>,
    /// Key → arrivals (for duplicate counting).
    pub(super) seen: HashMap<String, u64>,
    /// Interaction → keys in first-arrival order.
    pub(super) order: HashMap<String, Vec<String>>,
    /// The last CRM request.
    pub(super) last_request: Option<RawRequest>,
    /// Live OAuth tokens, oldest first.
    pub(super) tokens: VecDeque<String>,
    /// ServiceNow rows by table.
    pub(super) tables: HashMap<String, Vec<Row>>,
    /// Rows in all tables (for the cap).
    pub(super) rows: usize,
    /// Counter behind sys_ids and tokens.
    pub(super) serial: u64,
    /// Writes that named keys their table lacks (at most
    /// [`DROPPED_WRITES_MAX`]).
    pub(super) dropped: Vec<DroppedKeys>,
    /// `jti`s of accepted JWT assertions, oldest first (at most
    /// [`super::JTIS_MAX`]): a replayed assertion is refused.
    pub(super) jtis: VecDeque<String>,
}

impl State {
    /// Records an arrival of `received`; answers whether it was new.
    pub(super) fn arrive(&mut self, received: Received) -> bool {
        if let Some(n) = self.seen.get_mut(&received.key) {
            *n += 1;
            self.stats.duplicates += 1;
            debug!(key = %received.key, "Emulator: duplicate record.");
            return false;
        }
        if self.received.len() >= RECORDS_MAX {
            self.stats.dropped += 1;
            return true;
        }
        self.seen.insert(received.key.clone(), 1);
        if self.order.len() < RECORDS_MAX || self.order.contains_key(&received.interaction) {
            let list = self.order.entry(received.interaction.clone()).or_default();
            if list.len() < ORDER_PER_INTERACTION_MAX {
                list.push(received.key.clone());
            }
        }
        self.stats.records += 1;
        self.received.push(received);
        true
    }

    /// Stores a row in `table` (unless [`RECORDS_MAX`] rows are held) and
    /// answers its new sys_id.
    pub(super) fn insert_row(
        &mut self,
        table: &str,
        coalesce: String,
        fields: Map<String, Value>,
    ) -> String {
        let sys_id = self.sys_id();
        if self.rows < RECORDS_MAX {
            self.rows += 1;
            self.tables.entry(table.to_string()).or_default().push(Row {
                sys_id: sys_id.clone(),
                coalesce,
                fields,
            });
        }
        sys_id
    }

    /// Counts (and logs) the reference fields of a write to `table` that
    /// hold something other than a sys_id.
    pub(super) fn note_references(&mut self, table: &str, fields: &Map<String, Value>) {
        let bad = invalid_references(table, fields);
        if !bad.is_empty() {
            self.stats.invalid_references += bad.len() as u64;
            warn!(table, fields = %bad.join(", "),
                "Emulator: a reference field holds no sys_id; ServiceNow would store a broken reference.");
        }
    }

    /// `fields` without the keys `def` (table `table`) lacks, as a
    /// ServiceNow write stores them; the dropped keys are counted and
    /// remembered under `api`.
    pub(super) fn keep_known(
        &mut self,
        api: &str,
        table: &str,
        def: &TableDef,
        fields: Map<String, Value>,
    ) -> Map<String, Value> {
        let (kept, keys) = split_fields(fields, def);
        if !keys.is_empty() {
            self.stats.dropped_keys += keys.len() as u64;
            debug!(api, table, keys = %keys.join(", "), "Emulator: keys the table lacks dropped.");
            if self.dropped.len() < DROPPED_WRITES_MAX {
                self.dropped.push(DroppedKeys {
                    api: api.to_string(),
                    table: table.to_string(),
                    keys,
                });
            }
        }
        kept
    }

    /// A fresh sys_id (32 hex digits).
    pub(super) fn sys_id(&mut self) -> String {
        self.serial += 1;
        format!(
            "{:032x}",
            0xedcc_0000_0000_0000_u64 as u128 * 1_000_000 + self.serial as u128
        )
    }
}

/// Starts the emulator's HTTP server on a bound listener (the route
/// table lives with the handle; passed in here so that the state does not
/// import the handlers, which import the state).
pub(super) type StartServer =
    fn(&Arc<Shared>, std::net::TcpListener) -> std::io::Result<ServerHandle>;

/// Shared by the handle and every request handler.
pub(super) struct Shared {
    /// Where it listens (fixed across refusals).
    pub(super) addr: SocketAddr,
    /// Start-up options.
    pub(super) config: EmulatorConfig,
    /// Stored records, counters, mode.
    pub(super) state: Mutex<State>,
    /// The running server; `None` while refusing or stopped.
    pub(super) server: Mutex<Option<ServerHandle>>,
    /// The arbiter that started the emulator: servers are (re)started there,
    /// never on the server's own worker (which a refusal stops).
    pub(super) home: ArbiterHandle,
    /// How to start the server again after a refusal ends.
    pub(super) start_server: StartServer,
}

impl Shared {
    /// The state, even if a handler panicked while holding it.
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server slot.
    pub(super) fn server(&self) -> MutexGuard<'_, Option<ServerHandle>> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Switches mode, closing or reopening the listener as needed. Must run
    /// on the home arbiter.
    pub(super) async fn apply_mode(self: &Arc<Self>, mode: Mode) -> std::io::Result<()> {
        let generation = {
            let mut st = self.state();
            st.mode = mode.clone();
            st.stats.mode = mode.clone();
            st.mode_generation += 1;
            st.mode_generation
        };
        info!(addr = %self.addr, ?mode, "Emulator mode set.");
        if let Mode::Refuse { for_ms } = mode {
            let running = self.server().take();
            if let Some(server) = running {
                server.stop(false).await;
            }
            if let Some(ms) = for_ms {
                let shared = Arc::clone(self);
                actix_rt::spawn(async move {
                    actix_rt::time::sleep(Duration::from_millis(ms.min(REFUSE_MS_MAX))).await;
                    if shared.state().mode_generation == generation {
                        if let Err(e) = shared.apply_mode(Mode::Normal).await {
                            warn!(error = %e, "Emulator could not listen again.");
                        }
                    }
                });
            }
        } else if self.server().is_none() {
            // std's bind sets SO_REUSEADDR, so the port is free again at
            // once even with connections of the old listener in TIME_WAIT.
            let server = (self.start_server)(self, std::net::TcpListener::bind(self.addr)?)?;
            *self.server() = Some(server);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::emulator::Received;
    use serde_json::Value;

    /// Duplicates are counted, not stored; order lists first arrivals.
    #[test]
    fn arrivals_count_duplicates() {
        let mut st = State::default();
        let r = |key: &str| Received {
            key: key.into(),
            interaction: "c-1".into(),
            kind: String::new(),
            channel: "webhook".into(),
            idempotency_key: None,
            document: Value::Null,
        };
        assert!(st.arrive(r("a")));
        assert!(st.arrive(r("b")));
        assert!(!st.arrive(r("a")));
        assert_eq!(st.stats.duplicates, 1);
        assert_eq!(st.stats.records, 2);
        assert_eq!(st.order["c-1"], vec!["a".to_string(), "b".to_string()]);
    }
}
