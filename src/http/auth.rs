//! Who is calling: argon2 password checks, bearer tokens that expire and are
//! revoked at logout, and a login throttle per user id and per peer address.
//! It owns the users (from `[[users]]`, swapped on reload), the session
//! table and the throttle; handlers get the caller through [`Caller`].
//!
//! Tokens are 32 random bytes (hex) kept in memory only: a daemon restart
//! logs everyone out of the API, never out of a call (calls live in the
//! actors). Both the session table and the throttle are bounded.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Serialize;

use super::error::ApiError;
use super::AppState;
use crate::config::{Role, UserConfig};

/// Most live sessions at once; beyond it expired ones are purged, then new
/// logins are refused (503) rather than growing memory.
pub const SESSIONS_MAX: usize = 10_000;
/// Most ids and addresses the login throttle remembers; the stalest entry is
/// evicted first.
pub const THROTTLE_ENTRIES_MAX: usize = 4_096;
/// Failed logins allowed before the throttle starts delaying.
pub const THROTTLE_FREE_FAILURES: u32 = 3;
/// First lock-out after the free failures, ms; doubles per further failure.
pub const THROTTLE_DELAY_MS_BASE: u64 = 1_000;
/// Longest lock-out, ms.
pub const THROTTLE_DELAY_MS_MAX: u64 = 60_000;
/// A throttle entry quiet this long is forgotten, ms.
pub const THROTTLE_FORGET_MS: u64 = 15 * 60_000;
/// Longest password accepted (argon2 takes any length; this bounds the work).
pub const PASSWORD_LEN_MAX: usize = 256;
/// Bytes of randomness in a token.
const TOKEN_BYTES: usize = 32;
/// The hash an unknown id's password is checked against, so that answer
/// takes as long as a wrong password's: made once by `edgecc passwd` with
/// the same `Argon2::default()` parameters (a test keeps them equal). A
/// constant rather than hashed at start-up: hashing allocates argon2's
/// 19 MiB for a moment, which was all of the idle daemon's peak RSS above
/// its steady RSS (BENCHMARKS.md, "Footprint").
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$0ahPyPgcygN2wHbEgpxA5g$5TUSVsavWarypr/LrIsk+mVrdHkZa8lKGgbV00PyGVQ";

/// Hashes `password` as an argon2id PHC string (`$argon2id$v=19$…`) with a
/// random salt, for `[[users]] password_hash` and `edgecc passwd`.
pub fn hash_password(password: &str) -> Result<String, String> {
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    if password.len() > PASSWORD_LEN_MAX {
        return Err(format!(
            "the password is longer than {PASSWORD_LEN_MAX} bytes"
        ));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("argon2: {e}"))
}

/// Whether `password` matches the PHC `hash` (false on a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.len() > PASSWORD_LEN_MAX {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A fresh random token, hex.
fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One logged-in user.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    /// The user id (the agent id for agents).
    pub user_id: String,
    /// What the user may do.
    pub role: Role,
    /// When the token stops working (wall ms).
    pub expires_at_ms: u64,
}

/// Failed logins of one id or one address.
#[derive(Clone, Copy, Debug, Default)]
struct Failures {
    /// Consecutive failures.
    count: u32,
    /// Last failure (wall ms), for forgetting and eviction.
    last_ms: u64,
    /// No attempt is checked before this (wall ms).
    blocked_until_ms: u64,
}

/// Users, sessions and the throttle, shared by every HTTP worker.
pub struct Auth {
    /// Logins by id (replaced on config reload).
    users: RwLock<HashMap<String, UserConfig>>,
    /// Live sessions by token.
    sessions: Mutex<HashMap<String, Session>>,
    /// Failures by `id:<user>` and `ip:<addr>`.
    throttle: Mutex<HashMap<String, Failures>>,
    /// Token lifetime, ms.
    token_ttl_ms: u64,
    /// A valid hash to check against for unknown ids, so their answer takes
    /// as long as a wrong password's.
    dummy_hash: String,
}

/// Locks a mutex, recovering the data of a poisoned one (a panic elsewhere
/// must not lock everyone out).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Auth {
    /// Builds the table from the configured users.
    pub fn new(users: &[UserConfig], token_ttl_ms: u64) -> Auth {
        Auth {
            users: RwLock::new(Self::index(users)),
            sessions: Mutex::new(HashMap::new()),
            throttle: Mutex::new(HashMap::new()),
            token_ttl_ms,
            dummy_hash: DUMMY_HASH.to_string(),
        }
    }

    fn index(users: &[UserConfig]) -> HashMap<String, UserConfig> {
        users.iter().map(|u| (u.id.clone(), u.clone())).collect()
    }

    /// The configured device of `user_id`, if any.
    pub fn endpoint_of(&self, user_id: &str) -> Option<String> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user_id)
            .and_then(|u| u.endpoint.clone())
    }

    /// Replaces the users (config reload); sessions of removed users or of
    /// users whose role changed end.
    pub fn set_users(&self, users: &[UserConfig]) {
        let index = Self::index(users);
        lock(&self.sessions).retain(|_, s| index.get(&s.user_id).is_some_and(|u| u.role == s.role));
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = index;
    }

    /// Ms to wait before `keys` may try again (0 = now).
    fn blocked_ms(&self, keys: &[String], now_ms: u64) -> u64 {
        let t = lock(&self.throttle);
        keys.iter()
            .filter_map(|k| t.get(k))
            .map(|f| f.blocked_until_ms.saturating_sub(now_ms))
            .max()
            .unwrap_or(0)
    }

    fn record_failure(&self, keys: &[String], now_ms: u64) {
        let mut t = lock(&self.throttle);
        t.retain(|_, f| now_ms.saturating_sub(f.last_ms) < THROTTLE_FORGET_MS);
        for k in keys {
            if !t.contains_key(k) && t.len() >= THROTTLE_ENTRIES_MAX {
                if let Some(stalest) = t
                    .iter()
                    .min_by_key(|(_, f)| f.last_ms)
                    .map(|(k, _)| k.clone())
                {
                    t.remove(&stalest);
                }
            }
            let f = t.entry(k.clone()).or_default();
            f.count = f.count.saturating_add(1);
            f.last_ms = now_ms;
            if f.count > THROTTLE_FREE_FAILURES {
                let doublings = (f.count - THROTTLE_FREE_FAILURES - 1).min(16);
                let delay = (THROTTLE_DELAY_MS_BASE << doublings).min(THROTTLE_DELAY_MS_MAX);
                f.blocked_until_ms = now_ms + delay;
            }
        }
    }

    fn clear_failures(&self, keys: &[String]) {
        let mut t = lock(&self.throttle);
        for k in keys {
            t.remove(k);
        }
    }

    /// Checks `user_id` / `password` from `peer`; on success opens a session
    /// and answers its token. Runs argon2 on the blocking pool.
    pub async fn login(
        self: &std::sync::Arc<Self>,
        user_id: &str,
        password: &str,
        peer: &str,
        now_ms: u64,
    ) -> Result<(String, Session), ApiError> {
        let keys = [format!("id:{user_id}"), format!("ip:{peer}")];
        let wait = self.blocked_ms(&keys, now_ms);
        if wait > 0 {
            tracing::warn!(user_id, peer, retry_after_ms = wait, "Login throttled.");
            return Err(ApiError::new(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many failed logins; retry in {} s", wait.div_ceil(1000)),
            ));
        }
        let user = self
            .users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user_id)
            .cloned();
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.to_owned();
        let ok = web::block(move || verify_password(&password, &hash))
            .await
            .map_err(|e| ApiError::unavailable(format!("password check: {e}")))?;
        let user = match (ok, user) {
            (true, Some(user)) => user,
            _ => {
                self.record_failure(&keys, now_ms);
                tracing::warn!(user_id, peer, "Login failed.");
                return Err(ApiError::unauthorized("wrong id or password"));
            }
        };
        self.clear_failures(&keys);
        let session = Session {
            user_id: user.id.clone(),
            role: user.role,
            expires_at_ms: now_ms.saturating_add(self.token_ttl_ms),
        };
        let token = new_token();
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= SESSIONS_MAX {
            sessions.retain(|_, s| s.expires_at_ms > now_ms);
        }
        if sessions.len() >= SESSIONS_MAX {
            return Err(ApiError::unavailable("too many sessions"));
        }
        sessions.insert(token.clone(), session.clone());
        tracing::info!(user_id = %session.user_id, role = ?session.role, peer, "Logged in.");
        Ok((token, session))
    }

    /// The session of `token`, if it is live.
    pub fn check(&self, token: &str, now_ms: u64) -> Result<Session, ApiError> {
        let mut sessions = lock(&self.sessions);
        match sessions.get(token) {
            Some(s) if s.expires_at_ms > now_ms => Ok(s.clone()),
            Some(_) => {
                sessions.remove(token);
                Err(ApiError::unauthorized(
                    "the token has expired; log in again",
                ))
            }
            None => Err(ApiError::unauthorized("unknown or revoked token")),
        }
    }

    /// Revokes `token`; answers whether it was live.
    pub fn logout(&self, token: &str) -> bool {
        lock(&self.sessions).remove(token).is_some()
    }
}

/// The authenticated caller of a request (from `Authorization: Bearer`).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token presented.
    pub token: String,
    /// Its session.
    pub session: Session,
}

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.session.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "role {:?} may not do this",
                self.session.role
            )))
        }
    }

    /// Supervisor or admin.
    pub fn require_supervisor(&self) -> Result<(), ApiError> {
        self.require(&[Role::Supervisor, Role::Admin])
    }

    /// The caller's agent id (agents only).
    pub fn agent(&self) -> Result<edgecc_actors::AgentId, ApiError> {
        self.require(&[Role::Agent])?;
        Ok(edgecc_actors::AgentId::new(self.session.user_id.clone()))
    }
}

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_owned())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let result = (|| -> Result<Caller, ApiError> {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::internal("no state"))?;
            let token = bearer(req)
                .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer` token"))?;
            let session = state.auth.check(&token, crate::clock::now_ms())?;
            Ok(Caller { token, session })
        })();
        std::future::ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash made here verifies with its password only, and a malformed
    /// hash never panics.
    #[test]
    fn hash_and_verify() {
        let h = hash_password("pw-1").expect("hash");
        assert!(h.starts_with("$argon2"));
        assert!(verify_password("pw-1", &h));
        assert!(!verify_password("pw-2", &h));
        assert!(!verify_password("pw-1", "$argon2id$garbage"));
        assert!(hash_password("").is_err());
    }

    /// The unknown-id hash costs what a fresh hash costs: same algorithm,
    /// version and parameters as `hash_password`'s, and it verifies.
    #[test]
    fn dummy_hash_matches_fresh_hash_parameters() {
        let fresh = hash_password("pw-1").expect("hash");
        let fresh = PasswordHash::new(&fresh).expect("parse fresh");
        let dummy = PasswordHash::new(DUMMY_HASH).expect("parse dummy");
        assert_eq!(dummy.algorithm, fresh.algorithm);
        assert_eq!(dummy.version, fresh.version);
        assert_eq!(dummy.params, fresh.params);
        assert!(verify_password("edgecc-dummy-password", DUMMY_HASH));
    }

    /// Failures past the free ones lock the key out for a growing time;
    /// the table never grows past its bound.
    #[test]
    fn throttle_is_bounded_and_grows() {
        let auth = Auth::new(&[], 1_000);
        let keys = ["id:x".to_string()];
        for _ in 0..THROTTLE_FREE_FAILURES {
            auth.record_failure(&keys, 1_000);
        }
        assert_eq!(auth.blocked_ms(&keys, 1_000), 0);
        auth.record_failure(&keys, 1_000);
        assert_eq!(auth.blocked_ms(&keys, 1_000), THROTTLE_DELAY_MS_BASE);
        auth.record_failure(&keys, 1_000);
        assert_eq!(auth.blocked_ms(&keys, 1_000), 2 * THROTTLE_DELAY_MS_BASE);
        for i in 0..THROTTLE_ENTRIES_MAX + 10 {
            auth.record_failure(&[format!("ip:{i}")], 2_000 + i as u64);
        }
        assert!(lock(&auth.throttle).len() <= THROTTLE_ENTRIES_MAX);
    }

    /// Tokens expire and are revoked at logout.
    #[test]
    fn sessions_expire_and_revoke() {
        let auth = Auth::new(&[], 1_000);
        lock(&auth.sessions).insert(
            "t".into(),
            Session {
                user_id: "ann".into(),
                role: Role::Agent,
                expires_at_ms: 5_000,
            },
        );
        assert!(auth.check("t", 4_999).is_ok());
        assert!(auth.check("t", 5_000).is_err());
        lock(&auth.sessions).insert(
            "u".into(),
            Session {
                user_id: "ann".into(),
                role: Role::Agent,
                expires_at_ms: 5_000,
            },
        );
        assert!(auth.logout("u"));
        assert!(auth.check("u", 1).is_err());
    }
}
