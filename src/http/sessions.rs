//! Sessions that survive a restart: every live session is kept in the
//! [`Tree::HttpSessions`](crate::system::storage::Tree::HttpSessions) state
//! tree, so desktops and wallboards reconnect with their token after the
//! daemon comes back, and a logout or a revocation stays done.
//!
//! # Rules
//!
//! - The token is never written: the key is the SHA-256 of the token
//!   ([`TokenHash`]), which is also how the table in memory finds a
//!   session, so a presented token is hashed and looked up.
//! - A record holds the user, role, issue and expiry times, and the
//!   SHA-256 of the password hash the user logged in with: a session
//!   issued under a password that is no longer configured (changed while
//!   the daemon was down) is dropped at load, as a reload drops it live.
//! - Written (durably) before the login answers the token; removed
//!   (durably) before a logout answers. Removals the caller cannot wait
//!   for (expiry noticed by a check, a revocation at reload, an eviction)
//!   are handed to a task; one lost to a crash is caught at the next load
//!   (expired, revoked by the config, or over the caps).
//! - Load: expired records, records of users gone or changed, and
//!   records that do not decode are logged (a corrupt one at `warn`),
//!   left out and removed; the rest go back through the same caps as a
//!   login, oldest first.
//!
//! The record is JSON with a version field (`v`), so a later version adds
//! fields without losing sessions.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use edgecc_storage::{StateTree, StorageError};

use super::config::Role;

/// Version of [`StoredSession`] written now.
const RECORD_VERSION: u8 = 1;

/// The SHA-256 of a token: how a session is found, in memory and on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }
}

/// The SHA-256 of a configured password hash, hex: what a stored session
/// remembers of the password it was issued under.
pub fn password_fingerprint(password_hash: &str) -> String {
    Sha256::digest(password_hash.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One session as the tree holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    /// Record version ([`RECORD_VERSION`]).
    pub v: u8,
    /// The user id.
    pub user_id: String,
    /// The role at login: a role changed since ends the session.
    pub role: Role,
    /// When the token stops working (wall ms).
    pub expires_at_ms: u64,
    /// When it was issued (wall ms): the caps evict the oldest first.
    pub issued_at_ms: u64,
    /// [`password_fingerprint`] of the password hash at login.
    pub password: String,
}

impl StoredSession {
    /// A record of the current version.
    pub fn new(
        user_id: &str,
        role: Role,
        issued_at_ms: u64,
        expires_at_ms: u64,
        password: String,
    ) -> StoredSession {
        StoredSession {
            v: RECORD_VERSION,
            user_id: user_id.to_owned(),
            role,
            expires_at_ms,
            issued_at_ms,
            password,
        }
    }
}

/// What a load found in the tree.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Records that decoded, with their key.
    pub sessions: Vec<(TokenHash, StoredSession)>,
    /// Keys of entries that did not decode (removed by the caller).
    pub corrupt: Vec<Vec<u8>>,
}

/// The sessions' state tree.
#[derive(Clone, Debug)]
pub struct SessionStore {
    /// The `http_sessions` tree.
    tree: StateTree,
}

impl SessionStore {
    /// The store over `tree`.
    pub fn new(tree: StateTree) -> SessionStore {
        SessionStore { tree }
    }

    /// Writes `session` under `hash`; durable when it returns `Ok`.
    pub async fn put(&self, hash: &TokenHash, session: &StoredSession) -> Result<(), StorageError> {
        // Serializing a struct of strings and integers cannot fail.
        let value = serde_json::to_vec(session).unwrap_or_default();
        self.tree.put(&hash.0, &value).await
    }

    /// Removes the session under `key`; durable when it returns `Ok`.
    pub async fn remove(&self, key: &[u8]) -> Result<(), StorageError> {
        self.tree.remove(key).await
    }

    /// Removes `hashes` from a task (for callers that cannot wait); without
    /// a runtime (unit tests) nothing is removed and the next load drops
    /// them instead.
    pub fn remove_later(&self, hashes: Vec<TokenHash>) {
        if hashes.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                sessions = hashes.len(),
                "No runtime to remove ended sessions from storage; the next start drops them."
            );
            return;
        };
        let store = self.clone();
        runtime.spawn(async move {
            for hash in hashes {
                if let Err(e) = store.remove(&hash.0).await {
                    tracing::warn!(error = %e, "An ended session could not be removed from storage; the next start drops it.");
                }
            }
        });
    }

    /// Every entry of the tree, decoded where it decodes.
    pub fn load(&self) -> Loaded {
        let mut out = Loaded::default();
        for item in self.tree.iter() {
            let (key, value) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    tracing::warn!(error = %e, "A stored session could not be read; skipped.");
                    continue;
                }
            };
            match decode(&key, &value) {
                Some(entry) => out.sessions.push(entry),
                None => {
                    tracing::warn!(
                        key_bytes = key.len(),
                        value_bytes = value.len(),
                        "A stored session is corrupt; skipped and removed."
                    );
                    out.corrupt.push(key);
                }
            }
        }
        out
    }
}

/// One tree entry, if its key is a hash and its value a record this
/// version reads.
fn decode(key: &[u8], value: &[u8]) -> Option<(TokenHash, StoredSession)> {
    let hash = TokenHash(key.try_into().ok()?);
    let session: StoredSession = serde_json::from_slice(value).ok()?;
    (session.v >= 1).then_some((hash, session))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key is the token's SHA-256, never the token; a record decodes
    /// back equal; bad keys and bad values do not decode (and do not
    /// panic).
    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let hash = TokenHash::of("abc");
        assert_eq!(
            hash.0[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts ba7816bf"
        );
        let record = StoredSession::new(
            "ann",
            Role::Agent,
            1,
            2,
            password_fingerprint("$argon2id$x"),
        );
        let bytes = serde_json::to_vec(&record).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("abc"));
        assert_eq!(decode(&hash.0, &bytes), Some((hash, record)));
        assert_eq!(decode(b"short", &bytes), None);
        assert_eq!(decode(&hash.0, b"{not json"), None);
        assert_eq!(decode(&hash.0, &[0xff; 40]), None);
        assert_eq!(decode(&hash.0, br#"{"v":0,"user_id":"a"}"#), None);
    }
}
