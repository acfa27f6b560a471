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
//! POST  /api/now/awa/queues/{queue}/work_item       AWA routing: makes or
//!                                       re-routes the document's work item
//! POST  /oauth_token.do                 password / client_credentials / JWT
//!                                       bearer grants (API calls also take
//!                                       `x-sn-apikey`)
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
//! and then transformed by each of its staging table's transform maps as
//! the shipped update set (deploy/servicenow) defines them (one `result`
//! entry per map, in the target table): only the field maps' non-empty
//! values, only fields the target has, coalescing as the maps say, the
//! sequence script (`ignored`) and the link scripts played; an empty
//! coalesce value is `skipped`; a staging table without maps answers with
//! the staging table as `table`.
//!
//! # Layout
//!
//! - this file: the public types ([`Mode`], [`EmulatorConfig`],
//!   [`EmulatorStats`], [`Received`], [`RawRequest`]) and the bounds.
//! - [`handle`]: [`EmulatorHandle`] and the route table.
//! - [`state`]: what is held behind the mutex, and the mode switch (which
//!   restarts the server through the handle's `start_server`, passed in,
//!   so that no module imports one that imports it back).
//! - [`gate`]: counting, fault modes, the checks every write passes.
//! - [`respond`]: JSON answers and ServiceNow's error shapes.
//! - [`auth`]: Basic, API key and bearer tokens on each request;
//!   [`oauth_token`]: `/oauth_token.do`, which issues the tokens;
//!   [`jwt_grant`]: the JWT bearer grant's assertion checks.
//! - [`webhook`], [`import_set`], [`table_api`], [`openframe`], [`awa`]:
//!   one module per API the emulator plays; [`transform`]: the import
//!   transform, read from the shipped update set.
//! - [`control`]: `/_emulator/…`.
//!
//! Everything is bounded: [`RECORDS_MAX`] stored records (later ones are
//! counted in `dropped`), [`BODY_BYTES_MAX`] per request, [`HANG_MS_MAX`]
//! per hung request.

mod auth;
mod awa;
mod control;
mod gate;
mod handle;
mod import_set;
mod jwt_grant;
mod oauth_token;
mod openframe;
mod respond;
mod state;
mod table_api;
mod transform;
mod webhook;

pub use handle::EmulatorHandle;
pub use jwt_grant::{JwtVerifier, CLOCK_SKEW_SECS, JWT_USER_FIELD_DEFAULT};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sn_instance::{default_tables, TableDef};
use super::webhook::SIGNATURE_TOLERANCE_SECS_DEFAULT;

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
/// Most writes with dropped keys remembered (later ones only counted).
pub const DROPPED_WRITES_MAX: usize = 10_000;
/// Most JWT `jti`s remembered to refuse a replayed assertion.
pub const JTIS_MAX: usize = 1_024;
/// Longest reject pattern, in bytes.
pub const PATTERN_BYTES_MAX: usize = 256;
/// Delay before a refusal asked for over HTTP starts, in ms, so the control
/// request is answered before the listener closes.
pub(super) const REFUSE_HTTP_DELAY_MS: u64 = 50;

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
    /// Answer 429 as a ServiceNow rate limit rule does: `Retry-After: secs`,
    /// the `X-RateLimit-*` headers and the documented body.
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
    /// The JWT bearer grant's verifier map (with `oauth_client`, whose id
    /// the assertion's `iss` and `aud` must be); `None`: grant refused.
    pub jwt: Option<JwtVerifier>,
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
            jwt: None,
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
    /// Values written into a reference field (`channel`, `queue`,
    /// `assigned_to`, …) that are not sys_ids: stored as ServiceNow would
    /// (a broken reference), and counted so a test sees them.
    pub invalid_references: u64,
    /// Keys of Table API and voice-interaction writes that the target
    /// table lacks, which ServiceNow drops without a word (each write's
    /// names in [`EmulatorHandle::dropped_keys`]).
    #[serde(default)]
    pub dropped_keys: u64,
}

/// One ServiceNow write that named keys its target table lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedKeys {
    /// The API and method: `table:POST`, `table:PATCH`, `openframe`.
    pub api: String,
    /// The target table.
    pub table: String,
    /// The keys dropped.
    pub keys: Vec<String>,
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
}
