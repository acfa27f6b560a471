//! A CRM emulator: an actix-web server on 127.0.0.1 that speaks the webhook
//! format and the ServiceNow subset the adapters use, stores what it
//! receives, and can be switched at run time to misbehave. Tests and the
//! demo drive it through [`EmulatorHandle`] or over HTTP (`/_emulator/`).
//!
//! # Endpoints
//!
//! ```text
//! POST  /webhook                        one wire document, or an array of them
//! POST  /api/now/import/{staging}       Import Set row (coalescing upsert)
//! GET   /api/now/table/{table}          ?sysparm_query=a=x^b=y&sysparm_fields=…&sysparm_limit=N
//!                                       (a term on a missing field is dropped;
//!                                       sys_dictionary answers the dictionary)
//! POST  /api/now/table/{table}          create (unknown fields dropped), answers result.sys_id
//! PATCH /api/now/table/{table}/{sys_id} update
//! POST  /api/now/openframe/voice-interaction          create (phoneLogs linked)
//! PATCH /api/now/openframe/voice-interaction/{sys_id} update; failures as
//!                                       200 {"result":{"status":"FAILURE"}}
//! POST  /oauth_token.do                 password / client_credentials grants
//!                                       (API calls also take `x-sn-apikey`)
//! GET   /_emulator/stats                EmulatorStats as JSON
//! GET   /_emulator/records              received records as JSON
//! POST  /_emulator/mode                 a Mode as JSON, e.g. {"mode":"status","status":503}
//! POST  /_emulator/expire_tokens        forget every OAuth token (next call gets 401)
//! ```
//!
//! Records are stored by idempotency key (the webhook `id`, the import
//! correlation field, the table correlation field); the same key arriving
//! again counts as a duplicate and is not stored twice. The first arrival
//! of each key is appended to its interaction's order list.
//!
//! The ServiceNow side plays the instance of [`super::sn_instance`]: a
//! table it lacks is answered `400 Invalid table`; an import row is staged
//! and then upserted by each of its staging table's transform maps (one
//! `result` entry per map, in the target table), interaction rows
//! coalescing on the interaction key and the others on the correlation id;
//! a row whose sequence is not newer than the target's is `ignored`, one
//! with an empty coalesce value `skipped`; a staging table without maps
//! answers with the staging table as `table`.
//!
//! Everything is bounded: [`RECORDS_MAX`] stored records (later ones are
//! counted in `dropped`), [`BODY_BYTES_MAX`] per request, [`HANG_MS_MAX`]
//! per hung request.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_rt::ArbiterHandle;
use actix_web::dev::ServerHandle;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tracing::{debug, info, warn};

use super::sn_instance::{
    default_tables, dictionary_def, dictionary_rows, error_body, invalid_table_message,
    known_fields, matches, query_terms, TableDef, DICTIONARY_TABLE, PHONE_LOG_TABLE,
};
use super::webhook::{verify_signature, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECS_DEFAULT};

/// Most records (and ServiceNow rows) kept; later ones are only counted.
pub const RECORDS_MAX: usize = 200_000;
/// Largest request body accepted, in bytes (a webhook batch of 100 records
/// of a few KiB fits many times over).
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Longest a hung request is held, in ms; then it is answered 504.
pub const HANG_MS_MAX: u64 = 60_000;
/// Longest refusal scheduled over HTTP, in ms (a person flipping the
/// emulator cannot switch it back over HTTP while it refuses).
pub const REFUSE_MS_MAX: u64 = 600_000;
/// Refusal length when `POST /_emulator/mode` names none, in ms.
pub const REFUSE_MS_HTTP_DEFAULT: u64 = 10_000;
/// Rows a Table API read answers at most (and when it names no limit).
pub const GET_LIMIT_DEFAULT: usize = 1_000;
/// Most arrivals remembered per interaction in the order list.
pub const ORDER_PER_INTERACTION_MAX: usize = 1_024;
/// Most live OAuth tokens; the oldest is forgotten first.
pub const TOKENS_MAX: usize = 64;
/// Longest reject pattern, in bytes.
pub const PATTERN_BYTES_MAX: usize = 256;
/// Delay before a refusal asked for over HTTP starts, in ms, so the control
/// request is answered before the listener closes.
const REFUSE_HTTP_DELAY_MS: u64 = 50;

/// How the emulator answers CRM requests (control endpoints always work).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Mode {
    /// Accept and store everything.
    #[default]
    Normal,
    /// Close the listener (connections are refused); listen again on the
    /// same port when the mode changes, or after `for_ms`.
    Refuse {
        /// Switch back to `Normal` after this many ms (required in effect
        /// over HTTP, where it defaults to [`REFUSE_MS_HTTP_DEFAULT`]).
        #[serde(default)]
        for_ms: Option<u64>,
    },
    /// Answer every CRM request with this status and body (500, 503, 409,
    /// 403, 400 "already exists" …).
    Status {
        /// HTTP status to answer.
        status: u16,
        /// Body to answer.
        #[serde(default)]
        body: String,
    },
    /// Answer writes (POST, PUT, PATCH) with this status and body, without
    /// storing them, while reads go on normally: a proxy or maintenance
    /// page in front of the CRM's write path.
    Writes {
        /// HTTP status to answer.
        status: u16,
        /// Body to answer.
        #[serde(default)]
        body: String,
    },
    /// Answer 429 with `Retry-After: secs`.
    RetryAfter {
        /// The `Retry-After` seconds.
        secs: u64,
    },
    /// Hold each request `ms` (at most [`HANG_MS_MAX`]), then answer 504.
    Hang {
        /// How long to hold; `None` is [`HANG_MS_MAX`].
        #[serde(default)]
        ms: Option<u64>,
    },
    /// Answer 400 to requests whose body contains `pattern`; store the rest.
    Reject {
        /// Substring that marks a poison record.
        pattern: String,
    },
    /// ServiceNow: answer 200 `{"status":"failure","error":{"message":…}}`.
    Failure {
        /// The error message.
        message: String,
    },
    /// ServiceNow Import Sets: the transform map into `target` (every map
    /// when empty) answers row status `error` with `message`.
    ImportError {
        /// Target table of the failing map; empty: every map.
        #[serde(default)]
        target: String,
        /// The row's `error_message`.
        message: String,
    },
}

/// Emulator start-up options.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// Webhook HMAC key; when set, unsigned or badly signed webhook requests
    /// are answered 401.
    pub webhook_secret: Option<Vec<u8>>,
    /// Replay window for webhook signatures, seconds.
    pub signature_tolerance_secs: u64,
    /// ServiceNow Basic credentials (user, password); with `oauth_client`
    /// unset and this unset, the ServiceNow API needs no auth.
    pub basic: Option<(String, String)>,
    /// OAuth client (id, secret) accepted by `/oauth_token.do`.
    pub oauth_client: Option<(String, String)>,
    /// ServiceNow API key accepted in `x-sn-apikey` (with `basic` and
    /// `oauth_client` unset and this unset, the API needs no auth).
    pub api_key: Option<String>,
    /// Lifetime announced for OAuth tokens, seconds.
    pub token_lifetime_secs: u64,
    /// Import rows: the correlation field (as the adapter's default).
    pub import_correlation_field: String,
    /// Import rows: the sequence field.
    pub import_sequence_field: String,
    /// Import rows: the prefix of `kind` and `interaction`.
    pub import_field_prefix: String,
    /// Table API: the correlation field.
    pub table_correlation_field: String,
    /// Table API: the interaction key field.
    pub table_interaction_key_field: String,
    /// The instance's tables, fields and transform maps; any other table
    /// is answered `400 Invalid table <name>`, as ServiceNow does.
    pub sn_tables: BTreeMap<String, TableDef>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            port: 0,
            webhook_secret: None,
            signature_tolerance_secs: SIGNATURE_TOLERANCE_SECS_DEFAULT,
            basic: None,
            oauth_client: None,
            api_key: None,
            token_lifetime_secs: 1_800,
            import_correlation_field: "u_correlation_id".into(),
            import_sequence_field: "u_sequence".into(),
            import_field_prefix: "u_".into(),
            table_correlation_field: "u_edgecc_correlation_id".into(),
            table_interaction_key_field: "u_edgecc_call_id".into(),
            sn_tables: default_tables(),
        }
    }
}

/// Counters, as served by `GET /_emulator/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatorStats {
    /// CRM requests received (control requests excluded).
    pub requests: u64,
    /// Distinct records stored.
    pub records: u64,
    /// Arrivals of a key already stored.
    pub duplicates: u64,
    /// Requests refused by `Reject`, signature or auth checks.
    pub rejected: u64,
    /// Records not stored because [`RECORDS_MAX`] was reached.
    pub dropped: u64,
    /// OAuth tokens issued.
    pub tokens_issued: u64,
    /// The current mode.
    pub mode: Mode,
}

/// One record as the emulator received it (first arrival of its key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// Idempotency key (webhook `id`, or the correlation field).
    pub key: String,
    /// Interaction key, when the request said.
    pub interaction: String,
    /// Record kind, when the request said.
    pub kind: String,
    /// Where it came in: `webhook`, `import:<table>`, `table:<table>`,
    /// `patch:<table>`.
    pub channel: String,
    /// The `Idempotency-Key` header of a single-record webhook request.
    pub idempotency_key: Option<String>,
    /// The document (webhook) or row (ServiceNow).
    pub document: Value,
}

/// The last CRM request, verbatim (headers lower-cased), for wire tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy).
    pub body: String,
}

impl RawRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A ServiceNow row the emulator holds.
#[derive(Debug, Clone)]
struct Row {
    /// The row's sys_id.
    sys_id: String,
    /// Import coalesce value in its target table (the interaction key or
    /// the correlation id; empty for staging and Table API rows).
    coalesce: String,
    /// The fields.
    fields: Map<String, Value>,
}

/// Everything the emulator stores, behind one mutex.
#[derive(Default)]
struct State {
    /// Current behaviour.
    mode: Mode,
    /// Bumped on every mode change, so a scheduled end of a refusal only
    /// applies to the refusal that scheduled it.
    mode_generation: u64,
    /// Counters.
    stats: EmulatorStats,
    /// First arrivals, in order (at most [`RECORDS_MAX`]).
    received: Vec<Received>,
    /// Key → arrivals (for duplicate counting).
    seen: HashMap<String, u64>,
    /// Interaction → keys in first-arrival order.
    order: HashMap<String, Vec<String>>,
    /// The last CRM request.
    last_request: Option<RawRequest>,
    /// Live OAuth tokens, oldest first.
    tokens: VecDeque<String>,
    /// ServiceNow rows by table.
    tables: HashMap<String, Vec<Row>>,
    /// Rows in all tables (for the cap).
    rows: usize,
    /// Counter behind sys_ids and tokens.
    serial: u64,
}

impl State {
    /// Records an arrival of `received`; answers whether it was new.
    fn arrive(&mut self, received: Received) -> bool {
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
    fn insert_row(&mut self, table: &str, coalesce: String, fields: Map<String, Value>) -> String {
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

    /// A fresh 32-hex-digit sys_id.
    fn sys_id(&mut self) -> String {
        self.serial += 1;
        format!(
            "{:032x}",
            0xedcc_0000_0000_0000_u64 as u128 * 1_000_000 + self.serial as u128
        )
    }
}

/// Shared by the handle and every request handler.
struct Shared {
    /// Where it listens (fixed across refusals).
    addr: SocketAddr,
    /// Start-up options.
    config: EmulatorConfig,
    /// Stored records, counters, mode.
    state: Mutex<State>,
    /// The running server; `None` while refusing or stopped.
    server: Mutex<Option<ServerHandle>>,
    /// The arbiter that started the emulator: servers are (re)started there,
    /// never on the server's own worker (which a refusal stops).
    home: ArbiterHandle,
}

impl Shared {
    /// The state, even if a handler panicked while holding it.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server slot.
    fn server(&self) -> MutexGuard<'_, Option<ServerHandle>> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Switches mode, closing or reopening the listener as needed. Must run
    /// on the home arbiter.
    async fn apply_mode(self: &Arc<Self>, mode: Mode) -> std::io::Result<()> {
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
            let server = start_server(self, std::net::TcpListener::bind(self.addr)?)?;
            *self.server() = Some(server);
        }
        Ok(())
    }
}

/// A running emulator. Cheap to clone; every clone drives the same one.
#[derive(Clone)]
pub struct EmulatorHandle {
    /// The emulator's state and server.
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EmulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorHandle")
            .field("addr", &self.shared.addr)
            .finish()
    }
}

impl EmulatorHandle {
    /// Starts the emulator on `127.0.0.1:<config.port>`. Must be called
    /// inside an actix system (an `#[actix_rt::test]`, the daemon).
    pub async fn start(config: EmulatorConfig) -> std::io::Result<EmulatorHandle> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", config.port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            config,
            state: Mutex::new(State::default()),
            server: Mutex::new(None),
            home: actix_rt::Arbiter::current(),
        });
        let server = start_server(&shared, listener)?;
        *shared.server() = Some(server);
        info!(%addr, "CRM emulator listening.");
        Ok(EmulatorHandle { shared })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:<port>` (the ServiceNow instance URL).
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The webhook endpoint's URL.
    pub fn webhook_url(&self) -> String {
        format!("http://{}/webhook", self.shared.addr)
    }

    /// Switches behaviour; `Refuse` closes the listener and any other mode
    /// reopens it on the same port.
    pub async fn set_mode(&self, mode: Mode) -> std::io::Result<()> {
        self.shared.apply_mode(mode).await
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.state().mode.clone()
    }

    /// Counters.
    pub fn stats(&self) -> EmulatorStats {
        self.shared.state().stats.clone()
    }

    /// Stored records, in first-arrival order.
    pub fn records(&self) -> Vec<Received> {
        self.shared.state().received.clone()
    }

    /// Arrivals of an already-stored key.
    pub fn duplicates(&self) -> u64 {
        self.shared.state().stats.duplicates
    }

    /// Keys of `interaction`'s records, in first-arrival order.
    pub fn order(&self, interaction: &str) -> Vec<String> {
        self.shared
            .state()
            .order
            .get(interaction)
            .cloned()
            .unwrap_or_default()
    }

    /// The last CRM request, verbatim.
    pub fn last_request(&self) -> Option<RawRequest> {
        self.shared.state().last_request.clone()
    }

    /// ServiceNow rows of `table` (fields plus `sys_id`).
    pub fn table_rows(&self, table: &str) -> Vec<Value> {
        let st = self.shared.state();
        st.tables
            .get(table)
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let mut f = r.fields.clone();
                        f.insert("sys_id".into(), Value::String(r.sys_id.clone()));
                        Value::Object(f)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Puts a row into `table` as if someone else had created it (a
    /// stranger's record for lookup tests); answers its sys_id.
    pub fn seed_row(&self, table: &str, fields: Map<String, Value>) -> String {
        self.shared.state().insert_row(table, String::new(), fields)
    }

    /// Forgets every OAuth token: the next API call answers 401.
    pub fn expire_tokens(&self) {
        self.shared.state().tokens.clear();
    }

    /// Stops the server (the handle stays readable).
    pub async fn stop(&self) {
        let running = self.shared.server().take();
        if let Some(server) = running {
            server.stop(false).await;
        }
    }
}

/// Builds and spawns a server on `listener`.
fn start_server(
    shared: &Arc<Shared>,
    listener: std::net::TcpListener,
) -> std::io::Result<ServerHandle> {
    let data = web::Data::from(Arc::clone(shared));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(BODY_BYTES_MAX))
            .route("/webhook", web::post().to(webhook))
            .route("/api/now/import/{table}", web::post().to(import))
            .route("/api/now/table/{table}", web::get().to(table_get))
            .route("/api/now/table/{table}", web::post().to(table_post))
            .route(
                "/api/now/table/{table}/{sys_id}",
                web::patch().to(table_patch),
            )
            .route(
                "/api/now/openframe/voice-interaction",
                web::post().to(voice_create),
            )
            .route(
                "/api/now/openframe/voice-interaction/{sys_id}",
                web::patch().to(voice_update),
            )
            .route("/oauth_token.do", web::post().to(oauth_token))
            .route("/_emulator/stats", web::get().to(control_stats))
            .route("/_emulator/records", web::get().to(control_records))
            .route("/_emulator/mode", web::post().to(control_mode))
            .route("/_emulator/expire_tokens", web::post().to(control_expire))
    })
    .workers(1)
    .backlog(64)
    .max_connections(256)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(handle)
}

/// A JSON answer.
fn answer(status: u16, body: Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body.to_string())
}

/// The ServiceNow error shape.
fn sn_error(status: u16, message: &str) -> HttpResponse {
    answer(status, error_body(message, None))
}

/// ServiceNow's answer to missing or wrong credentials.
fn not_authenticated() -> HttpResponse {
    answer(
        401,
        error_body(
            "User Not Authenticated",
            Some("Required to provide Auth information"),
        ),
    )
}

/// `400 Invalid table <name>` unless the instance has `table`.
fn known_table<'a>(shared: &'a Shared, table: &str) -> Result<&'a TableDef, HttpResponse> {
    shared
        .config
        .sn_tables
        .get(table)
        .ok_or_else(|| sn_error(400, &invalid_table_message(table)))
}

/// Counts the request, keeps it as the last one, and applies the fault
/// modes every CRM endpoint shares. `Some` is the answer to give instead.
async fn gate(shared: &Shared, req: &HttpRequest, body: &[u8]) -> Option<HttpResponse> {
    let mode = {
        let mut st = shared.state();
        st.stats.requests += 1;
        st.last_request = Some(RawRequest {
            method: req.method().to_string(),
            path: req.uri().to_string(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
        st.mode.clone()
    };
    match mode {
        Mode::Normal | Mode::Reject { .. } | Mode::Failure { .. } | Mode::ImportError { .. } => {
            None
        }
        Mode::Refuse { .. } => Some(answer(503, json!({"error": "refusing"}))),
        Mode::Status { status, body } => Some(
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
                .body(body),
        ),
        Mode::Writes { .. } if req.method() == actix_web::http::Method::GET => None,
        Mode::Writes { status, body } => Some(
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
                .body(body),
        ),
        // An inbound REST rate-limit rule firing: ServiceNow's headers
        // and error body.
        Mode::RetryAfter { secs } => Some(
            HttpResponse::TooManyRequests()
                .insert_header((RETRY_AFTER, secs.to_string()))
                .insert_header(("X-RateLimit-Limit", "1000"))
                .insert_header(("X-RateLimit-Remaining", "0"))
                .insert_header(("X-RateLimit-Reset", secs.to_string()))
                .insert_header((CONTENT_TYPE, "application/json"))
                .body(
                    error_body(
                        "Rate limit exceeded",
                        Some("The request was rejected by an API rate limit rule"),
                    )
                    .to_string(),
                ),
        ),
        Mode::Hang { ms } => {
            let ms = ms.unwrap_or(HANG_MS_MAX).min(HANG_MS_MAX);
            actix_rt::time::sleep(Duration::from_millis(ms)).await;
            Some(answer(504, json!({"error": "hung"})))
        }
    }
}

/// `Reject` and `Failure` answers for a record request, if they apply.
fn record_fault(shared: &Shared, body: &[u8]) -> Option<HttpResponse> {
    let mut st = shared.state();
    match &st.mode {
        Mode::Reject { pattern } => {
            let pattern = pattern.as_bytes();
            let hit = !pattern.is_empty()
                && pattern.len() <= PATTERN_BYTES_MAX
                && body.windows(pattern.len()).any(|w| w == pattern);
            if hit {
                st.stats.rejected += 1;
                return Some(answer(
                    400,
                    json!({"error": "record rejected: matches the reject pattern"}),
                ));
            }
            None
        }
        Mode::Failure { message } => Some(answer(
            200,
            json!({"error": {"message": message, "detail": ""}, "status": "failure"}),
        )),
        _ => None,
    }
}

/// Whether a ServiceNow request carries acceptable credentials.
fn authorized(shared: &Shared, req: &HttpRequest) -> bool {
    let config = &shared.config;
    if config.basic.is_none() && config.oauth_client.is_none() && config.api_key.is_none() {
        return true;
    }
    if let Some(key) = &config.api_key {
        let sent = req.headers().get("x-sn-apikey").map(|v| v.as_bytes());
        if sent == Some(key.as_bytes()) {
            return true;
        }
    }
    let Some(value) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if let (Some(encoded), Some((user, password))) = (value.strip_prefix("Basic "), &config.basic) {
        return base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .is_some_and(|d| d == format!("{user}:{password}").as_bytes());
    }
    if let Some(token) = value.strip_prefix("Bearer ") {
        return shared.state().tokens.iter().any(|t| t == token);
    }
    false
}

/// A string field of a JSON object ("" when absent).
fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `POST /webhook`.
async fn webhook(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Some(r) = gate(&shared, &req, &body).await {
        return r;
    }
    if let Some(secret) = &shared.config.webhook_secret {
        let header = req
            .headers()
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let now = crate::clock::now_ms() / 1000;
        if let Err(e) = verify_signature(
            secret,
            header,
            &body,
            now,
            shared.config.signature_tolerance_secs,
        ) {
            shared.state().stats.rejected += 1;
            debug!(error = %e, "Emulator: bad webhook signature.");
            return answer(401, json!({"error": e.to_string()}));
        }
    }
    if let Some(r) = record_fault(&shared, &body) {
        return r;
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return answer(400, json!({"error": format!("not JSON: {e}")})),
    };
    let idempotency_key = req
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let docs = match parsed {
        Value::Array(docs) => docs,
        doc @ Value::Object(_) => vec![doc],
        _ => return answer(400, json!({"error": "expected an object or an array"})),
    };
    if docs.iter().any(|d| text(d, "id").is_empty()) {
        return answer(422, json!({"error": "every document needs an id"}));
    }
    let single = docs.len() == 1;
    let mut st = shared.state();
    let mut duplicates = 0;
    for doc in docs.iter() {
        let received = Received {
            key: text(doc, "id"),
            interaction: text(doc, "interaction"),
            kind: text(doc, "kind"),
            channel: "webhook".into(),
            idempotency_key: if single {
                idempotency_key.clone()
            } else {
                None
            },
            document: doc.clone(),
        };
        if !st.arrive(received) {
            duplicates += 1;
        }
    }
    answer(
        200,
        json!({"received": docs.len(), "duplicates": duplicates}),
    )
}

/// What every ServiceNow write goes through first: the fault gate,
/// authentication, injected record faults, then the body as a JSON object.
async fn table_request(
    shared: &web::Data<Shared>,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<Map<String, Value>, HttpResponse> {
    if let Some(r) = gate(shared, req, body).await {
        return Err(r);
    }
    if !authorized(shared, req) {
        shared.state().stats.rejected += 1;
        return Err(not_authenticated());
    }
    if let Some(r) = record_fault(shared, body) {
        return Err(r);
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(sn_error(400, "Request body is not a JSON object")),
    }
}

/// `POST /api/now/import/{table}`: the row is staged, then each of the
/// staging table's transform maps upserts it into its target, coalescing
/// interaction rows on the interaction key and the others on the
/// correlation id; one `result` entry per map. A row whose sequence is not
/// newer than the target's is `ignored`, an empty coalesce value
/// `skipped`, [`Mode::ImportError`] answers `error`; without maps the row
/// stays staged and the answer names the staging table.
async fn import(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let row = match table_request(&shared, &req, &body).await {
        Ok(fields) => fields,
        Err(r) => return r,
    };
    let table = path.into_inner();
    let maps = match known_table(&shared, &table) {
        Ok(def) => def.maps.clone(),
        Err(r) => return r,
    };
    let c = &shared.config;
    let v = Value::Object(row.clone());
    let key = text(&v, &c.import_correlation_field);
    let interaction = text(&v, &format!("{}interaction", c.import_field_prefix));
    let kind = text(&v, &format!("{}kind", c.import_field_prefix));
    let sequence: u64 = text(&v, &c.import_sequence_field).parse().unwrap_or(0);
    let coalesce_value = if kind.starts_with("interaction.") {
        interaction.clone()
    } else {
        key.clone()
    };
    let mut st = shared.state();
    st.arrive(Received {
        key,
        interaction,
        kind,
        channel: format!("import:{table}"),
        idempotency_key: None,
        document: v,
    });
    let staged = st.insert_row(&table, String::new(), row.clone());
    if maps.is_empty() {
        // No active transform map (or an asynchronous import set): the row
        // waits in the staging table and the answer names that table.
        let link = format!("http://{}/api/now/table/{table}/{staged}", shared.addr);
        return answer(
            201,
            json!({
                "import_set": "ISET0010001",
                "staging_table": table,
                "result": [{
                    "table": table,
                    "display_name": "sys_id",
                    "display_value": staged,
                    "record_link": link,
                    "status": "inserted",
                    "sys_id": staged,
                }]
            }),
        );
    }
    let fault = match &st.mode {
        Mode::ImportError { target, message } => Some((target.clone(), message.clone())),
        _ => None,
    };
    let seq_field = c.import_sequence_field.clone();
    let mut results = Vec::with_capacity(maps.len());
    for target in &maps {
        let map = format!("edgecc {table} to {target}");
        if let Some((_, message)) = fault.as_ref().filter(|(t, _)| t.is_empty() || t == target) {
            results.push(
                json!({"transform_map": map, "table": target, "status": "error",
                "error_message": message}),
            );
            continue;
        }
        if coalesce_value.is_empty() {
            results.push(
                json!({"transform_map": map, "table": target, "status": "skipped",
                "status_message": "No coalesce value: row skipped"}),
            );
            continue;
        }
        let existing = st
            .tables
            .get_mut(target)
            .and_then(|rows| rows.iter_mut().find(|r| r.coalesce == coalesce_value));
        let (status, sys_id) = match existing {
            Some(held_row) => {
                let held: u64 = held_row
                    .fields
                    .get(&seq_field)
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if sequence <= held {
                    ("ignored", held_row.sys_id.clone())
                } else {
                    held_row.fields.extend(row.clone());
                    ("updated", held_row.sys_id.clone())
                }
            }
            None => (
                "inserted",
                st.insert_row(target, coalesce_value.clone(), row.clone()),
            ),
        };
        let link = format!("http://{}/api/now/table/{target}/{sys_id}", shared.addr);
        results.push(
            json!({"transform_map": map, "table": target, "status": status,
            "sys_id": sys_id, "record_link": link}),
        );
    }
    answer(
        201,
        json!({"import_set": "ISET0010001", "staging_table": table, "result": results}),
    )
}

/// `GET /api/now/table/{table}?sysparm_query=…&sysparm_fields=…&sysparm_limit=N`
/// (`sys_dictionary` answers from the instance's dictionary).
async fn table_get(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    if let Some(r) = gate(&shared, &req, b"").await {
        return r;
    }
    if !authorized(&shared, &req) {
        shared.state().stats.rejected += 1;
        return not_authenticated();
    }
    let table = path.into_inner();
    let q = query.get("sysparm_query").cloned().unwrap_or_default();
    let limit: usize = query
        .get("sysparm_limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(GET_LIMIT_DEFAULT)
        .min(GET_LIMIT_DEFAULT);
    let wanted: Option<Vec<&str>> = query
        .get("sysparm_fields")
        .map(|f| f.split(',').map(str::trim).collect());
    let (def, rows) = if table == DICTIONARY_TABLE {
        (dictionary_def(), dictionary_rows(&shared.config.sn_tables))
    } else {
        let def = match known_table(&shared, &table) {
            Ok(def) => def.clone(),
            Err(r) => return r,
        };
        let st = shared.state();
        let rows = st
            .tables
            .get(&table)
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let mut f = r.fields.clone();
                        f.insert("sys_id".into(), Value::String(r.sys_id.clone()));
                        f
                    })
                    .collect()
            })
            .unwrap_or_default();
        (def, rows)
    };
    // Like GlideRecord: a term on a field the table lacks is dropped, and
    // the remaining terms (maybe none) select the rows.
    let terms = query_terms(&q, &def);
    let result: Vec<Value> = rows
        .into_iter()
        .filter(|r| matches(r, &terms))
        .take(limit)
        .map(|r| match &wanted {
            Some(keep) => Value::Object(
                r.into_iter()
                    .filter(|(k, _)| keep.contains(&k.as_str()))
                    .collect(),
            ),
            None => Value::Object(r),
        })
        .collect();
    answer(200, json!({ "result": result }))
}

/// `POST /api/now/table/{table}`: creates a row.
async fn table_post(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let fields = match table_request(&shared, &req, &body).await {
        Ok(fields) => fields,
        Err(r) => return r,
    };
    let table = path.into_inner();
    let def = match known_table(&shared, &table) {
        Ok(def) => def,
        Err(r) => return r,
    };
    let v = Value::Object(fields.clone());
    // The Table API ignores keys the table lacks.
    let fields = known_fields(fields, def);
    let mut st = shared.state();
    let sys_id = st.sys_id();
    let key = match text(&v, &shared.config.table_correlation_field) {
        k if k.is_empty() => format!("{table}:{sys_id}"),
        k => k,
    };
    st.arrive(Received {
        key,
        interaction: text(&v, &shared.config.table_interaction_key_field),
        kind: String::new(),
        channel: format!("table:{table}"),
        idempotency_key: None,
        document: v,
    });
    if st.rows < RECORDS_MAX {
        st.rows += 1;
        st.tables.entry(table).or_default().push(Row {
            sys_id: sys_id.clone(),
            coalesce: String::new(),
            fields: fields.clone(),
        });
    }
    let mut result = fields;
    result.insert("sys_id".into(), Value::String(sys_id));
    answer(201, json!({ "result": result }))
}

/// `PATCH /api/now/table/{table}/{sys_id}`: updates a row.
async fn table_patch(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let fields = match table_request(&shared, &req, &body).await {
        Ok(fields) => fields,
        Err(r) => return r,
    };
    let (table, sys_id) = path.into_inner();
    let def = match known_table(&shared, &table) {
        Ok(def) => def,
        Err(r) => return r,
    };
    let sent = fields.clone();
    // The Table API ignores keys the table lacks (and answers 200).
    let fields = known_fields(fields, def);
    let key_field = shared.config.table_interaction_key_field.clone();
    let mut st = shared.state();
    let patched = st
        .tables
        .get_mut(&table)
        .and_then(|rows| rows.iter_mut().find(|r| r.sys_id == sys_id))
        .map(|row| {
            row.fields.extend(fields.clone());
            let mut result = row.fields.clone();
            result.insert("sys_id".into(), Value::String(sys_id.clone()));
            result
        });
    let Some(result) = patched else {
        return sn_error(404, "No Record found");
    };
    st.serial += 1;
    let key = format!("patch:{sys_id}:{}", st.serial);
    st.arrive(Received {
        key,
        interaction: text(&Value::Object(result.clone()), &key_field),
        kind: "interaction.update".into(),
        channel: format!("patch:{table}"),
        idempotency_key: None,
        document: Value::Object(sent),
    });
    answer(200, json!({ "result": result }))
}

/// A voice-interaction answer: `{"result": {…}}` with HTTP 200.
fn voice_result(result: Value) -> HttpResponse {
    answer(200, json!({ "result": result }))
}

/// The openframe API's failure: HTTP 200, `{"result":{"status":"FAILURE"}}`.
fn voice_failure(message: &str) -> HttpResponse {
    voice_result(json!({"status": "FAILURE", "message": message}))
}

/// What the voice-interaction endpoints share: gate, credentials, the
/// `Failure` mode (answered the openframe way), the body as an object.
async fn voice_request(
    shared: &web::Data<Shared>,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<Map<String, Value>, HttpResponse> {
    if let Some(r) = gate(shared, req, body).await {
        return Err(r);
    }
    if !authorized(shared, req) {
        shared.state().stats.rejected += 1;
        return Err(not_authenticated());
    }
    if let Mode::Failure { message } = &shared.state().mode {
        return Err(voice_failure(message));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(sn_error(400, "Request body is not a JSON object")),
    }
}

/// Applies a voice-interaction body to the interaction `sys_id`: its
/// `additionalParams` (fields the table has), `callbackPhoneNumber` as
/// `caller_phone_number`, and each of `phoneLogs` created in the phone-log
/// table and linked as the interaction's channel metadata.
fn voice_apply(
    st: &mut State,
    tables: &BTreeMap<String, TableDef>,
    sys_id: &str,
    body: &Map<String, Value>,
) {
    let (Some(interaction_def), Some(log_def)) =
        (tables.get("interaction"), tables.get(PHONE_LOG_TABLE))
    else {
        return;
    };
    let interaction = body.get("interaction").cloned().unwrap_or(Value::Null);
    let mut fields = match interaction.get("additionalParams") {
        Some(Value::Object(p)) => known_fields(p.clone(), interaction_def),
        _ => Map::new(),
    };
    if let Some(number) = interaction
        .get("callbackPhoneNumber")
        .and_then(Value::as_str)
    {
        fields.insert("caller_phone_number".into(), number.into());
    }
    let logs: Vec<Map<String, Value>> = match body.get("phoneLogs") {
        Some(Value::Array(logs)) => logs
            .iter()
            .filter_map(|l| l.as_object().cloned())
            .map(|l| known_fields(l, log_def))
            .collect(),
        _ => Vec::new(),
    };
    for log in logs {
        let log_id = st.insert_row(PHONE_LOG_TABLE, String::new(), log);
        fields.insert("channel_metadata_table".into(), PHONE_LOG_TABLE.into());
        fields.insert("channel_metadata_document".into(), log_id.into());
    }
    if let Some(row) = st
        .tables
        .get_mut("interaction")
        .and_then(|rows| rows.iter_mut().find(|r| r.sys_id == sys_id))
    {
        row.fields.extend(fields);
    }
}

/// `POST /api/now/openframe/voice-interaction`: creates an interaction
/// (`userPhoneNumber` required) with its phone logs.
async fn voice_create(
    shared: web::Data<Shared>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let doc = match voice_request(&shared, &req, &body).await {
        Ok(doc) => doc,
        Err(r) => return r,
    };
    let interaction = doc.get("interaction").cloned().unwrap_or(Value::Null);
    let session = text(&interaction, "clientSessionId");
    if text(&interaction, "userPhoneNumber").is_empty() {
        return voice_failure("userPhoneNumber is required");
    }
    let mut st = shared.state();
    let mut fields = Map::new();
    fields.insert("type".into(), "phone".into());
    fields.insert("state".into(), "new".into());
    let sys_id = st.insert_row("interaction", String::new(), fields);
    voice_apply(&mut st, &shared.config.sn_tables, &sys_id, &doc);
    st.arrive(Received {
        key: format!("openframe:{session}"),
        interaction: session,
        kind: "interaction.create".into(),
        channel: "openframe:create".into(),
        idempotency_key: None,
        document: Value::Object(doc),
    });
    let number = format!("IMS{:07}", st.serial % 10_000_000);
    voice_result(json!({"status": "SUCCESS", "sysId": sys_id, "number": number}))
}

/// `PATCH /api/now/openframe/voice-interaction/{sys_id}`.
async fn voice_update(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let doc = match voice_request(&shared, &req, &body).await {
        Ok(doc) => doc,
        Err(r) => return r,
    };
    let sys_id = path.into_inner();
    let mut st = shared.state();
    let exists = st
        .tables
        .get("interaction")
        .is_some_and(|rows| rows.iter().any(|r| r.sys_id == sys_id));
    if !exists {
        return voice_failure("Interaction not found");
    }
    voice_apply(&mut st, &shared.config.sn_tables, &sys_id, &doc);
    st.serial += 1;
    let key = format!("openframe:{sys_id}:{}", st.serial);
    st.arrive(Received {
        key,
        interaction: sys_id,
        kind: "interaction.update".into(),
        channel: "openframe:update".into(),
        idempotency_key: None,
        document: Value::Object(doc),
    });
    voice_result(json!({"status": "SUCCESS"}))
}

/// `POST /oauth_token.do`: password and client-credentials grants.
async fn oauth_token(
    shared: web::Data<Shared>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    if let Some(r) = gate(&shared, &req, b"").await {
        return r;
    }
    let c = &shared.config;
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let client_ok = c
        .oauth_client
        .as_ref()
        .is_some_and(|(id, secret)| get("client_id") == id && get("client_secret") == secret);
    let grant_ok = match get("grant_type") {
        "client_credentials" => true,
        "password" => c
            .basic
            .as_ref()
            .is_none_or(|(u, p)| get("username") == u && get("password") == p),
        _ => false,
    };
    let mut st = shared.state();
    if !(client_ok && grant_ok) {
        st.stats.rejected += 1;
        // ServiceNow's token endpoint refusing a grant.
        return answer(
            401,
            json!({"error_description": "access_denied", "error": "server_error"}),
        );
    }
    st.serial += 1;
    let token = format!("tok-{:08x}", st.serial);
    if st.tokens.len() >= TOKENS_MAX {
        st.tokens.pop_front();
    }
    st.tokens.push_back(token.clone());
    st.stats.tokens_issued += 1;
    answer(
        200,
        json!({
            "access_token": token,
            "refresh_token": "",
            "scope": "useraccount",
            "token_type": "Bearer",
            "expires_in": c.token_lifetime_secs,
        }),
    )
}

/// `GET /_emulator/stats`.
async fn control_stats(shared: web::Data<Shared>) -> HttpResponse {
    let stats = shared.state().stats.clone();
    answer(200, serde_json::to_value(stats).unwrap_or(Value::Null))
}

/// `GET /_emulator/records`.
async fn control_records(shared: web::Data<Shared>) -> HttpResponse {
    let records = shared.state().received.clone();
    answer(200, serde_json::to_value(records).unwrap_or(Value::Null))
}

/// `POST /_emulator/mode`: a refusal is scheduled on the home arbiter (it
/// stops this very server) and always ends, by default after
/// [`REFUSE_MS_HTTP_DEFAULT`].
async fn control_mode(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let mode: Mode = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return answer(400, json!({"error": format!("bad mode: {e}")})),
    };
    let mode = match mode {
        Mode::Refuse { for_ms } => Mode::Refuse {
            for_ms: Some(for_ms.unwrap_or(REFUSE_MS_HTTP_DEFAULT).min(REFUSE_MS_MAX)),
        },
        other => other,
    };
    let shared = shared.into_inner();
    let reply = json!({"mode": mode});
    let delayed = matches!(mode, Mode::Refuse { .. });
    let home = shared.home.clone();
    home.spawn_fn(move || {
        actix_rt::spawn(async move {
            if delayed {
                actix_rt::time::sleep(Duration::from_millis(REFUSE_HTTP_DELAY_MS)).await;
            }
            if let Err(e) = shared.apply_mode(mode).await {
                warn!(error = %e, "Emulator mode change failed.");
            }
        });
    });
    answer(202, reply)
}

/// `POST /_emulator/expire_tokens`.
async fn control_expire(shared: web::Data<Shared>) -> HttpResponse {
    shared.state().tokens.clear();
    answer(200, json!({"expired": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Modes read from the control endpoint's JSON as documented.
    #[test]
    fn modes_parse_from_json() {
        let m: Mode = serde_json::from_str(r#"{"mode":"status","status":503}"#).unwrap();
        assert_eq!(
            m,
            Mode::Status {
                status: 503,
                body: String::new()
            }
        );
        let m: Mode = serde_json::from_str(r#"{"mode":"retry_after","secs":2}"#).unwrap();
        assert_eq!(m, Mode::RetryAfter { secs: 2 });
        let m: Mode = serde_json::from_str(r#"{"mode":"refuse"}"#).unwrap();
        assert_eq!(m, Mode::Refuse { for_ms: None });
        assert!(serde_json::from_str::<Mode>(r#"{"mode":"explode"}"#).is_err());
    }

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
