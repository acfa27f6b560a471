//! `[http]` and `[[users]]`: the HTTP listener's settings and who may log
//! in, as the config file writes them, with their checks. The file as a
//! whole is assembled and reported on by [`crate::config`], which calls
//! [`check_http`] and [`check_users`]; errors are (dotted key, message).

use std::path::PathBuf;

use edgecc_actors::ContactCenterConfig;
use serde::{Deserialize, Serialize};

/// Default HTTP listener: loopback only, an unprivileged port.
pub const HTTP_LISTEN_DEFAULT: &str = "127.0.0.1:8080";
/// Default bearer token lifetime: a shift.
pub const TOKEN_TTL_MS_DEFAULT: u64 = 12 * 3600 * 1000;
/// Default grace before a disconnected desktop stops getting queue calls.
pub const DESKTOP_GRACE_MS_DEFAULT: u64 = 30_000;

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on (`127.0.0.1:8080`); `None` disables HTTP.
    pub listen: Option<String>,
    /// PEM certificate chain; with `tls_key_file`, HTTPS through rustls.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (a file, e.g. from systemd's LoadCredential=).
    pub tls_key_file: Option<PathBuf>,
    /// Bearer token lifetime, ms.
    pub token_ttl_ms: u64,
    /// A desktop disconnected longer than this gets no new queue calls, ms.
    pub desktop_grace_ms: u64,
    /// Whether agents see waiting callers' numbers in `GET /api/v1/queues`
    /// (supervisors and admins always do). Off by default: an agent's role
    /// needs the queue's length and waits, not who is waiting.
    pub agents_see_waiting_numbers: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: Some(HTTP_LISTEN_DEFAULT.to_string()),
            tls_cert_file: None,
            tls_key_file: None,
            token_ttl_ms: TOKEN_TTL_MS_DEFAULT,
            desktop_grace_ms: DESKTOP_GRACE_MS_DEFAULT,
            agents_see_waiting_numbers: false,
        }
    }
}

/// A role in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Acts on its own agent and calls only.
    Agent,
    /// Sees the team, changes agents' states, monitors, whispers, barges.
    Supervisor,
    /// Everything, plus outbox and configuration.
    Admin,
}

/// `[[users]]`: one login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login id; for `role = "agent"` it is the agent's id in `[[agents]]`.
    pub id: String,
    /// What the user may do.
    pub role: Role,
    /// argon2 PHC hash from `edgecc passwd` (never the password itself).
    #[serde(skip_serializing)]
    pub password_hash: String,
    /// The user's phone (dial string, e.g. `PJSIP/3001`): where a supervisor
    /// hears silent monitor and whisper, and speaks from when barging in.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The name the wallboard shows for the user (`"Ann Smith"`); the id
    /// without one.
    #[serde(default)]
    pub name: Option<String>,
}

/// `[http]`: a parseable address, both TLS files or neither, sane times.
pub fn check_http(http: &HttpConfig) -> Result<(), (String, String)> {
    if let Some(listen) = &http.listen {
        if listen.parse::<std::net::SocketAddr>().is_err() {
            return Err((
                "http.listen".to_string(),
                format!("{listen:?} is not an address:port such as \"127.0.0.1:8080\""),
            ));
        }
    }
    match (&http.tls_cert_file, &http.tls_key_file) {
        (Some(_), None) => {
            return Err((
                "http.tls_key_file".to_string(),
                "is needed with http.tls_cert_file".to_string(),
            ))
        }
        (None, Some(_)) => {
            return Err((
                "http.tls_cert_file".to_string(),
                "is needed with http.tls_key_file".to_string(),
            ))
        }
        _ => {}
    }
    if http.token_ttl_ms < 60_000 {
        return Err((
            "http.token_ttl_ms".to_string(),
            format!("{} is under a minute", http.token_ttl_ms),
        ));
    }
    Ok(())
}

/// Whether `hash` is a whole argon2 PHC string: the algorithm, parameters
/// argon2 accepts, a salt and a hash (a prefix alone is not one).
fn is_argon2_hash(hash: &str) -> bool {
    if !hash.starts_with("$argon2") {
        return false;
    }
    match argon2::PasswordHash::new(hash) {
        Ok(parsed) => {
            parsed.salt.is_some()
                && parsed.hash.is_some()
                && argon2::Params::try_from(&parsed).is_ok()
        }
        Err(_) => false,
    }
}

/// `[[users]]`: plain unique ids, agents that exist, whole argon2 hashes.
pub fn check_users(users: &[UserConfig], cc: &ContactCenterConfig) -> Result<(), (String, String)> {
    let mut seen = std::collections::HashSet::new();
    for (i, u) in users.iter().enumerate() {
        if u.id.is_empty() || u.id.len() > 128 || u.id.chars().any(char::is_control) {
            return Err((
                format!("users[{i}].id"),
                "must be 1 to 128 bytes without control characters".to_string(),
            ));
        }
        if !seen.insert(u.id.as_str()) {
            return Err((
                format!("users[{i}].id"),
                format!("{:?} is listed twice", u.id),
            ));
        }
        if u.role == Role::Agent && !cc.agents.iter().any(|a| a.id == u.id) {
            return Err((
                format!("users[{i}].id"),
                format!("{:?} has role agent but is not in [[agents]]", u.id),
            ));
        }
        if !is_argon2_hash(&u.password_hash) {
            return Err((
                format!("users[{i}].password_hash"),
                "is not an argon2 hash: make one with `edgecc passwd`".to_string(),
            ));
        }
    }
    Ok(())
}
