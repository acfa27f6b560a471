//! Who is calling: argon2 password checks, bearer tokens that expire and are
//! revoked at logout, on a password change and on a user's removal, and a
//! login throttle that slows an attacker without locking the real user out.
//! It owns the users (from `[[users]]`, swapped on reload), the session
//! table, the password-check slots and the throttle; handlers get the
//! caller through [`Caller`].
//!
//! Tokens are 32 random bytes (hex). Neither the table in memory nor the
//! data directory holds a token: sessions are found by the token's SHA-256
//! and kept in a state tree ([`super::sessions`]), so desktops and
//! wallboards stay logged in across a daemon restart, and logouts and
//! revocations stay done.
//!
//! # Limits (what an edge box of 1-2 GB and 2 cores can afford)
//!
//! - Password checks: each argon2 check holds 19 MiB for its ~20-50 ms, so
//!   at most [`PASSWORD_CHECKS_MAX`] run at once (38 MiB) and at most
//!   [`PASSWORD_CHECK_WAITERS_MAX`] wait for a slot; a login beyond that is
//!   answered 503 with `Retry-After` before any work. The attempt is counted
//!   against the throttle *before* the check and forgiven on success, so a
//!   burst of parallel guesses is throttled as if it were sequential.
//! - Sessions: at most [`SESSIONS_PER_USER_MAX`] per user (a new login
//!   evicts that user's oldest) and [`SESSIONS_MAX`] in all (a new login
//!   evicts the oldest session of the user holding the most): one user
//!   logging in without end never locks anyone else out.
//! - Throttle: failures count per user-and-address pair (the first
//!   [`THROTTLE_FREE_FAILURES`] free, then a doubling wait up to
//!   [`THROTTLE_DELAY_MS_MAX`]) and per address over all users (the first
//!   [`THROTTLE_ADDRESS_FREE_FAILURES`] free, for password spraying). There
//!   is no lock by user id alone: guesses at a user from one address never
//!   shut that user out from another, and colleagues behind one NAT are
//!   slowed only after many failures from it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Serialize;

use super::config::{Role, UserConfig};
use super::error::ApiError;
use super::sessions::{password_fingerprint, SessionStore, StoredSession, TokenHash};
use super::AppState;

/// Most live sessions at once; beyond it expired ones are purged, then the
/// oldest session of the user holding the most is evicted.
pub const SESSIONS_MAX: usize = 10_000;
/// Most live sessions of one user (desktops, wallboards, a phone); a new
/// login beyond it evicts that user's oldest session.
pub const SESSIONS_PER_USER_MAX: usize = 16;
/// Password checks (argon2, 19 MiB each) running at once: one per core of
/// a small box.
pub const PASSWORD_CHECKS_MAX: usize = 2;
/// Logins waiting for a password-check slot; beyond it a login is answered
/// 503 at once (a waiting login holds a connection and a few KiB, no hash).
pub const PASSWORD_CHECK_WAITERS_MAX: usize = 32;
/// `Retry-After` of a login refused because every check slot is taken, s.
pub const PASSWORD_CHECK_RETRY_S: u64 = 1;
/// Most user-address pairs and addresses the login throttle remembers; the
/// stalest entry is evicted first.
pub const THROTTLE_ENTRIES_MAX: usize = 4_096;
/// Failed logins of one user from one address before the throttle waits.
pub const THROTTLE_FREE_FAILURES: u32 = 3;
/// Failed logins from one address, over all users, before the throttle
/// waits (password spraying; high enough for a team behind one NAT).
pub const THROTTLE_ADDRESS_FREE_FAILURES: u32 = 20;
/// First wait after the free failures, ms; doubles per further failure.
pub const THROTTLE_DELAY_MS_BASE: u64 = 1_000;
/// Longest wait, ms.
pub const THROTTLE_DELAY_MS_MAX: u64 = 60_000;
/// A throttle entry quiet this long is forgotten, ms.
pub const THROTTLE_FORGET_MS: u64 = 15 * 60_000;
/// Longest password accepted (argon2 takes any length; this bounds the work).
pub const PASSWORD_LEN_MAX: usize = 256;
/// Longest a login or a logout waits for its session change to be durable:
/// a stalled disk must not stop agents logging in (nor out). Past it the
/// answer goes out; the change is written when the disk answers, or (if it
/// could not even be queued) the session is in memory only and a restart
/// ends it, a logout's revocation being redone at the next start only if
/// the config changed. Normally a change takes one group commit (ms).
pub const SESSION_WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
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
    /// When it was issued (wall ms): the oldest session is evicted first.
    #[serde(skip)]
    pub issued_at_ms: u64,
}

/// Failed logins of one user-address pair or one address.
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
    /// Live sessions by the SHA-256 of their token.
    sessions: Mutex<HashMap<TokenHash, Session>>,
    /// Where sessions are kept across restarts; `None`: memory only (unit
    /// tests).
    store: Option<SessionStore>,
    /// Failures by `pair:<addr>:<user>` and `ip:<addr>`.
    throttle: Mutex<HashMap<String, Failures>>,
    /// Password-check slots: bounds argon2's memory ([`PASSWORD_CHECKS_MAX`]).
    checks: tokio::sync::Semaphore,
    /// Logins waiting for or holding a slot; bounded by
    /// [`PASSWORD_CHECKS_MAX`] + [`PASSWORD_CHECK_WAITERS_MAX`].
    checks_queued: AtomicUsize,
    /// Password checks running now, and the most ever seen at once (for
    /// `/metrics` and the test that proves the bound).
    checks_running: AtomicUsize,
    /// See `checks_running`.
    checks_running_peak: AtomicUsize,
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

/// Free failures of a throttle key (see the module note).
fn free_failures(key: &str) -> u32 {
    if key.starts_with("ip:") {
        THROTTLE_ADDRESS_FREE_FAILURES
    } else {
        THROTTLE_FREE_FAILURES
    }
}

/// Releases a login's place in the password-check queue when dropped.
struct QueueSlot<'a>(&'a AtomicUsize);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Auth {
    /// Builds the table from the configured users.
    pub fn new(users: &[UserConfig], token_ttl_ms: u64) -> Auth {
        Auth {
            users: RwLock::new(Self::index(users)),
            sessions: Mutex::new(HashMap::new()),
            store: None,
            throttle: Mutex::new(HashMap::new()),
            checks: tokio::sync::Semaphore::new(PASSWORD_CHECKS_MAX),
            checks_queued: AtomicUsize::new(0),
            checks_running: AtomicUsize::new(0),
            checks_running_peak: AtomicUsize::new(0),
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

    /// The display name of `user_id` (`[[users]] name`), if any.
    pub fn display_name(&self, user_id: &str) -> Option<String> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user_id)
            .and_then(|u| u.name.clone())
    }

    /// Replaces the users (config reload); sessions of removed users, of
    /// users whose role changed and of users whose password changed end.
    pub fn set_users(&self, users: &[UserConfig]) {
        let index = Self::index(users);
        let mut current = self.users.write().unwrap_or_else(|p| p.into_inner());
        let mut ended = Vec::new();
        lock(&self.sessions).retain(|hash, s| {
            let keep = match (index.get(&s.user_id), current.get(&s.user_id)) {
                (Some(new), Some(old)) => {
                    new.role == s.role && new.password_hash == old.password_hash
                }
                _ => false,
            };
            if !keep {
                ended.push(*hash);
            }
            keep
        });
        if !ended.is_empty() {
            tracing::info!(
                sessions = ended.len(),
                "Sessions ended by a change of users."
            );
        }
        *current = index;
        drop(current);
        self.forget(ended);
    }

    /// Keeps sessions in `store` from now on, after loading the ones it
    /// holds: those expired at `now_ms`, of users no longer configured or
    /// whose role or password changed, and corrupt records are left out
    /// and removed; the rest pass the caps oldest first (see
    /// [`super::sessions`]). Answers how many were restored.
    pub async fn restore(&mut self, store: SessionStore, now_ms: u64) -> usize {
        let loaded = store.load();
        let mut dropped: Vec<Vec<u8>> = loaded.corrupt;
        let mut sessions = loaded.sessions;
        sessions.sort_by_key(|(hash, s)| (s.issued_at_ms, *hash));
        {
            let users = self.users.read().unwrap_or_else(|p| p.into_inner());
            for (hash, stored) in sessions {
                let valid = stored.expires_at_ms > now_ms
                    && users.get(&stored.user_id).is_some_and(|u| {
                        u.role == stored.role
                            && password_fingerprint(&u.password_hash) == stored.password
                    });
                if !valid {
                    dropped.push(hash.0.to_vec());
                    continue;
                }
                let session = Session {
                    user_id: stored.user_id,
                    role: stored.role,
                    expires_at_ms: stored.expires_at_ms,
                    issued_at_ms: stored.issued_at_ms,
                };
                let evicted = self.insert_session(hash, session, now_ms);
                dropped.extend(evicted.into_iter().map(|h| h.0.to_vec()));
            }
        }
        let restored = self.session_count();
        let mut removed = 0usize;
        for key in &dropped {
            match store.remove(key).await {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "An ended session could not be removed from storage.");
                }
            }
        }
        tracing::info!(
            restored,
            dropped = removed,
            "Sessions restored from the data directory."
        );
        self.store = Some(store);
        restored
    }

    /// Ends `hashes` in the store too (from a task: the callers cannot
    /// wait).
    fn forget(&self, hashes: Vec<TokenHash>) {
        if let Some(store) = &self.store {
            store.remove_later(hashes);
        }
    }

    /// Password checks running now and the most seen at once.
    pub fn password_checks(&self) -> (usize, usize) {
        (
            self.checks_running.load(Ordering::Relaxed),
            self.checks_running_peak.load(Ordering::Relaxed),
        )
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
        self.record_failures(keys, now_ms, 1);
    }

    /// Counts `n` failures against each of `keys`; a key past its free
    /// failures waits a doubling time.
    fn record_failures(&self, keys: &[String], now_ms: u64, n: u32) {
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
            let free = free_failures(k);
            let f = t.entry(k.clone()).or_default();
            f.count = f.count.saturating_add(n);
            f.last_ms = now_ms;
            if f.count > free {
                let doublings = (f.count - free - 1).min(16);
                let delay = (THROTTLE_DELAY_MS_BASE << doublings).min(THROTTLE_DELAY_MS_MAX);
                f.blocked_until_ms = now_ms + delay;
            }
        }
    }

    /// Takes back one failure counted ahead of a check that succeeded,
    /// and forgets the pair (the address keeps its other failures).
    fn forgive(&self, pair: &str, address: &str) {
        let mut t = lock(&self.throttle);
        t.remove(pair);
        if let Some(f) = t.get_mut(address) {
            f.count = f.count.saturating_sub(1);
            if f.count <= THROTTLE_ADDRESS_FREE_FAILURES {
                f.blocked_until_ms = 0;
            }
        }
    }

    /// Checks `user_id` / `password` from `peer`; on success opens a session
    /// and answers its token. Runs argon2 on the blocking pool, at most
    /// [`PASSWORD_CHECKS_MAX`] at once.
    pub async fn login(
        self: &std::sync::Arc<Self>,
        user_id: &str,
        password: &str,
        peer: &str,
        now_ms: u64,
    ) -> Result<(String, Session), ApiError> {
        let pair = format!("pair:{peer}:{user_id}");
        let address = format!("ip:{peer}");
        let keys = [pair.clone(), address.clone()];
        let wait = self.blocked_ms(&keys, now_ms);
        if wait > 0 {
            tracing::warn!(user_id, peer, retry_after_ms = wait, "Login throttled.");
            return Err(ApiError::too_many_attempts(
                format!("too many failed logins; retry in {} s", wait.div_ceil(1000)),
                wait.div_ceil(1000),
            ));
        }
        // Bound the queue before any work: a flood gets 503, not memory.
        let queued = self.checks_queued.fetch_add(1, Ordering::AcqRel);
        let _queued = QueueSlot(&self.checks_queued);
        if queued >= PASSWORD_CHECKS_MAX + PASSWORD_CHECK_WAITERS_MAX {
            tracing::warn!(
                user_id,
                peer,
                "Login refused: every password check slot is taken."
            );
            return Err(ApiError::busy(
                "too many logins at once; retry shortly",
                PASSWORD_CHECK_RETRY_S,
            ));
        }
        // Count the attempt before the work; a success takes it back.
        self.record_failure(&keys, now_ms);
        let permit = self
            .checks
            .acquire()
            .await
            .map_err(|_| ApiError::unavailable("password checks are closed"))?;
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
        let running = self.checks_running.fetch_add(1, Ordering::AcqRel) + 1;
        self.checks_running_peak
            .fetch_max(running, Ordering::AcqRel);
        let checked = web::block(move || verify_password(&password, &hash)).await;
        self.checks_running.fetch_sub(1, Ordering::AcqRel);
        drop(permit);
        let ok = checked.map_err(|e| ApiError::unavailable(format!("password check: {e}")))?;
        let user = match (ok, user) {
            (true, Some(user)) => user,
            _ => {
                tracing::warn!(user_id, peer, "Login failed.");
                return Err(ApiError::unauthorized("wrong id or password"));
            }
        };
        self.forgive(&pair, &address);
        let session = Session {
            user_id: user.id.clone(),
            role: user.role,
            expires_at_ms: now_ms.saturating_add(self.token_ttl_ms),
            issued_at_ms: now_ms,
        };
        let token = new_token();
        let hash = TokenHash::of(&token);
        let evicted = self.insert_session(hash, session.clone(), now_ms);
        let evicted_count = evicted.len();
        self.forget(evicted);
        if let Some(store) = &self.store {
            let stored = StoredSession::new(
                &session.user_id,
                session.role,
                session.issued_at_ms,
                session.expires_at_ms,
                password_fingerprint(&user.password_hash),
            );
            // Durable before the token is handed out, so a restart right
            // after the answer keeps it; a failing or stalled disk costs
            // the session its restart, not the login.
            match tokio::time::timeout(SESSION_WRITE_WAIT, store.put(&hash, &stored)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(
                    user_id = %session.user_id,
                    error = %e,
                    "Session not kept in storage; it ends at the next restart."
                ),
                Err(_) => tracing::warn!(
                    user_id = %session.user_id,
                    wait_ms = SESSION_WRITE_WAIT.as_millis() as u64,
                    "Session not yet durable (a stalled disk?); answering the login anyway."
                ),
            }
        }
        tracing::info!(
            user_id = %session.user_id,
            role = ?session.role,
            peer,
            evicted = evicted_count,
            "Logged in."
        );
        Ok((token, session))
    }

    /// Adds a session within [`SESSIONS_PER_USER_MAX`] and [`SESSIONS_MAX`],
    /// evicting as the module note says; answers the sessions it ended
    /// (expired or evicted), for the store.
    fn insert_session(&self, token: TokenHash, session: Session, now_ms: u64) -> Vec<TokenHash> {
        let mut sessions = lock(&self.sessions);
        let mut evicted = Vec::new();
        sessions.retain(|hash, s| {
            let live = s.expires_at_ms > now_ms;
            if !live {
                evicted.push(*hash);
            }
            live
        });
        let oldest_of = |sessions: &HashMap<TokenHash, Session>, user: &str| {
            sessions
                .iter()
                .filter(|(_, s)| s.user_id == user)
                .min_by_key(|(t, s)| (s.issued_at_ms, **t))
                .map(|(t, _)| *t)
        };
        while sessions
            .values()
            .filter(|s| s.user_id == session.user_id)
            .count()
            >= SESSIONS_PER_USER_MAX
        {
            let Some(t) = oldest_of(&sessions, &session.user_id) else {
                break;
            };
            sessions.remove(&t);
            evicted.push(t);
        }
        while sessions.len() >= SESSIONS_MAX {
            let mut per_user: HashMap<&str, usize> = HashMap::new();
            for s in sessions.values() {
                *per_user.entry(s.user_id.as_str()).or_default() += 1;
            }
            let Some(busiest) = per_user
                .into_iter()
                .max_by_key(|(u, n)| (*n, std::cmp::Reverse(u.to_string())))
                .map(|(u, _)| u.to_string())
            else {
                break;
            };
            let Some(t) = oldest_of(&sessions, &busiest) else {
                break;
            };
            sessions.remove(&t);
            evicted.push(t);
        }
        sessions.insert(token, session);
        debug_assert!(sessions.len() <= SESSIONS_MAX);
        evicted
    }

    /// The session of `token`, if it is live.
    pub fn check(&self, token: &str, now_ms: u64) -> Result<Session, ApiError> {
        let hash = TokenHash::of(token);
        let mut sessions = lock(&self.sessions);
        match sessions.get(&hash) {
            Some(s) if s.expires_at_ms > now_ms => Ok(s.clone()),
            Some(_) => {
                sessions.remove(&hash);
                drop(sessions);
                self.forget(vec![hash]);
                Err(ApiError::unauthorized(
                    "the token has expired; log in again",
                ))
            }
            None => Err(ApiError::unauthorized("unknown or revoked token")),
        }
    }

    /// Revokes `token`, in storage too before it returns; answers whether
    /// it was live.
    pub async fn logout(&self, token: &str) -> bool {
        let hash = TokenHash::of(token);
        let live = lock(&self.sessions).remove(&hash).is_some();
        if let (true, Some(store)) = (live, &self.store) {
            match tokio::time::timeout(SESSION_WRITE_WAIT, store.remove(&hash.0)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "A logged-out session could not be removed from storage; retrying.");
                    // Gone from memory already; until storage takes the
                    // removal a restart would bring it back.
                    store.remove_later(vec![hash]);
                }
                Err(_) => {
                    tracing::warn!(
                        wait_ms = SESSION_WRITE_WAIT.as_millis() as u64,
                        "Logout not yet durable (a stalled disk?); the token no longer works here, the removal is retried."
                    );
                    store.remove_later(vec![hash]);
                }
            }
        }
        live
    }

    /// Live sessions now (the table in memory).
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
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
    #[actix_rt::test]
    async fn sessions_expire_and_revoke() {
        let auth = Auth::new(&[], 1_000);
        lock(&auth.sessions).insert(
            TokenHash::of("t"),
            Session {
                user_id: "ann".into(),
                role: Role::Agent,
                expires_at_ms: 5_000,
                issued_at_ms: 0,
            },
        );
        assert!(auth.check("t", 4_999).is_ok());
        assert!(auth.check("t", 5_000).is_err());
        lock(&auth.sessions).insert(
            TokenHash::of("u"),
            Session {
                user_id: "ann".into(),
                role: Role::Agent,
                expires_at_ms: 5_000,
                issued_at_ms: 0,
            },
        );
        assert!(auth.logout("u").await);
        assert!(auth.check("u", 1).is_err());
    }

    /// A configured user with `password`'s hash (argon2: slow, test only).
    fn user(id: &str, role: Role, password: &str) -> UserConfig {
        UserConfig {
            id: id.into(),
            role,
            password_hash: hash_password(password).expect("hash"),
            endpoint: None,
            name: None,
        }
    }

    /// One user logging in again and again keeps at most
    /// SESSIONS_PER_USER_MAX sessions (the oldest go first) and never
    /// takes a place another user needs.
    #[test]
    fn sessions_per_user_are_capped_oldest_first() {
        let auth = Auth::new(&[], 1_000_000);
        let session = |user: &str, at: u64| Session {
            user_id: user.into(),
            role: Role::Agent,
            expires_at_ms: 1_000_000,
            issued_at_ms: at,
        };
        for i in 0..(SESSIONS_PER_USER_MAX as u64 + 5) {
            auth.insert_session(TokenHash::of(&format!("ann-{i}")), session("ann", i), 10);
        }
        let sessions = lock(&auth.sessions).clone();
        assert_eq!(sessions.len(), SESSIONS_PER_USER_MAX);
        assert!(
            !sessions.contains_key(&TokenHash::of("ann-0")),
            "the oldest went first"
        );
        assert!(!sessions.contains_key(&TokenHash::of("ann-4")));
        assert!(sessions.contains_key(&TokenHash::of("ann-5")));
        auth.insert_session(TokenHash::of("sue-0"), session("sue", 100), 10);
        assert!(auth.check("sue-0", 10).is_ok());
    }

    /// A full table evicts the oldest session of the user holding the
    /// most, never refuses a login.
    #[test]
    fn a_full_table_evicts_from_the_busiest_user() {
        let auth = Auth::new(&[], 1_000_000);
        {
            let mut sessions = lock(&auth.sessions);
            for i in 0..SESSIONS_MAX {
                let user = if i < 16 {
                    "ann".to_string()
                } else {
                    format!("u{i}")
                };
                sessions.insert(
                    TokenHash::of(&format!("t{i}")),
                    Session {
                        user_id: user,
                        role: Role::Agent,
                        expires_at_ms: 1_000_000,
                        issued_at_ms: i as u64,
                    },
                );
            }
        }
        let evicted = auth.insert_session(
            TokenHash::of("root"),
            Session {
                user_id: "root".into(),
                role: Role::Admin,
                expires_at_ms: 1_000_000,
                issued_at_ms: 1,
            },
            10,
        );
        assert_eq!(evicted, vec![TokenHash::of("t0")]);
        let sessions = lock(&auth.sessions);
        assert_eq!(sessions.len(), SESSIONS_MAX);
        assert!(sessions.contains_key(&TokenHash::of("root")));
        assert!(
            !sessions.contains_key(&TokenHash::of("t0")),
            "ann's oldest session went"
        );
    }

    /// A password change, a role change and a removal end the user's
    /// sessions at the reload; other users keep theirs.
    #[test]
    fn reload_ends_sessions_of_changed_users() {
        let ann = user("ann", Role::Agent, "pw-ann");
        let bob = user("bob", Role::Agent, "pw-bob");
        let sue = user("sue", Role::Supervisor, "pw-sue");
        let auth = Auth::new(&[ann.clone(), bob.clone(), sue.clone()], 1_000_000);
        for (t, u) in [("a", &ann), ("b", &bob), ("s", &sue)] {
            auth.insert_session(
                TokenHash::of(t),
                Session {
                    user_id: u.id.clone(),
                    role: u.role,
                    expires_at_ms: 1_000_000,
                    issued_at_ms: 1,
                },
                1,
            );
        }
        let ann_new = user("ann", Role::Agent, "pw-ann-2");
        auth.set_users(&[ann_new.clone(), bob.clone(), sue.clone()]);
        assert!(auth.check("a", 2).is_err(), "password changed");
        assert!(auth.check("b", 2).is_ok());
        auth.set_users(&[ann_new, sue.clone()]);
        assert!(auth.check("b", 2).is_err(), "user removed");
        assert!(
            auth.check("s", 2).is_ok(),
            "unchanged user keeps the session"
        );
    }

    /// Goal: a load keeps exactly the sessions still valid. Method: a
    /// sessions tree holding one valid record, one expired, one of a user
    /// no longer configured, one whose role changed, one issued under
    /// another password, and two corrupt entries; `restore` keeps the
    /// valid one (its token checks), and the tree holds only it after.
    #[actix_rt::test]
    async fn restore_keeps_only_valid_sessions_and_removes_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = edgecc_storage::Storage::open(dir.path(), Default::default()).expect("open");
        let tree = storage.state("http_sessions").expect("tree");
        let ann = user("ann", Role::Agent, "pw-ann");
        let sue = user("sue", Role::Supervisor, "pw-sue");
        let fp = |u: &UserConfig| password_fingerprint(&u.password_hash);
        let records = [
            (
                "valid",
                StoredSession::new("ann", Role::Agent, 1, 10_000, fp(&ann)),
            ),
            (
                "expired",
                StoredSession::new("ann", Role::Agent, 1, 500, fp(&ann)),
            ),
            (
                "gone",
                StoredSession::new("zed", Role::Agent, 1, 10_000, fp(&ann)),
            ),
            (
                "role",
                StoredSession::new("sue", Role::Admin, 1, 10_000, fp(&sue)),
            ),
            (
                "password",
                StoredSession::new("sue", Role::Supervisor, 1, 10_000, fp(&ann)),
            ),
        ];
        let store = SessionStore::new(tree.clone());
        for (token, record) in &records {
            store.put(&TokenHash::of(token), record).await.expect("put");
        }
        tree.put(&[9u8; 32], b"not json").await.expect("put");
        tree.put(b"not a hash", b"{}").await.expect("put");

        let mut auth = Auth::new(&[ann, sue], 1_000_000);
        assert_eq!(auth.restore(store, 1_000).await, 1);
        assert!(auth.check("valid", 1_000).is_ok());
        for (token, _) in &records[1..] {
            assert!(auth.check(token, 1_000).is_err(), "{token}");
        }
        let keys: Vec<Vec<u8>> = tree.iter().map(|kv| kv.expect("entry").0).collect();
        assert_eq!(keys, vec![TokenHash::of("valid").0.to_vec()]);
    }

    /// Many logins at once never run more than PASSWORD_CHECKS_MAX argon2
    /// checks together, and those beyond the waiting room are answered
    /// 503 with Retry-After before any work.
    #[actix_rt::test]
    async fn password_checks_are_bounded() {
        let auth = std::sync::Arc::new(Auth::new(&[], 1_000_000));
        let total = PASSWORD_CHECKS_MAX + PASSWORD_CHECK_WAITERS_MAX + 6;
        let logins = (0..total).map(|i| {
            let auth = auth.clone();
            async move {
                auth.login(&format!("u{i}"), "guess", &format!("10.0.0.{i}"), 1_000)
                    .await
                    .map(|_| ())
                    .map_err(|e| (e.status, e.retry_after_s))
            }
        });
        let results = futures_util::future::join_all(logins).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err((503, Some(_)))))
            .count();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err((401, None))))
            .count();
        assert_eq!(busy, 6, "{results:?}");
        assert_eq!(refused, total - 6, "{results:?}");
        let (running, peak) = auth.password_checks();
        assert_eq!(running, 0);
        assert!((1..=PASSWORD_CHECKS_MAX).contains(&peak), "peak {peak}");
    }

    /// Parallel guesses from one address at one user are counted before
    /// the check, so a burst is throttled like a sequence.
    #[actix_rt::test]
    async fn parallel_guesses_are_counted_before_the_work() {
        let auth = std::sync::Arc::new(Auth::new(&[user("bob", Role::Agent, "right")], 1_000_000));
        let logins = (0..THROTTLE_FREE_FAILURES + 3).map(|_| {
            let auth = auth.clone();
            async move {
                auth.login("bob", "wrong", "10.1.1.1", 1_000)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.status)
            }
        });
        let results = futures_util::future::join_all(logins).await;
        assert!(results.contains(&Err(429)), "{results:?}");
    }

    /// Failures from one address never lock the user out from another,
    /// and the address key alone waits only after many failures.
    #[actix_rt::test]
    async fn guesses_from_one_address_do_not_lock_the_user_out_elsewhere() {
        let auth = std::sync::Arc::new(Auth::new(&[user("bob", Role::Agent, "right")], 1_000_000));
        for _ in 0..THROTTLE_FREE_FAILURES + 2 {
            let _ = auth.login("bob", "wrong", "10.6.6.6", 1_000).await;
        }
        let blocked = auth.login("bob", "right", "10.6.6.6", 1_000).await;
        assert_eq!(blocked.err().map(|e| e.status), Some(429));
        assert!(auth.login("bob", "right", "10.2.2.2", 1_000).await.is_ok());
        // Another user from the attacker's address: not yet slowed.
        let auth2 = std::sync::Arc::new(Auth::new(&[user("ann", Role::Agent, "pw")], 1_000_000));
        for i in 0..THROTTLE_ADDRESS_FREE_FAILURES - 1 {
            let _ = auth2
                .login(&format!("x{i}"), "wrong", "10.7.7.7", 1_000)
                .await;
        }
        assert!(auth2.login("ann", "pw", "10.7.7.7", 1_000).await.is_ok());
    }
}
