//! The assertion of ServiceNow's inbound OAuth JWT bearer grant (RFC 7523;
//! Machine Identity Console > Inbound integrations > "OAuth - JWT bearer
//! grant", or the Application Registry's "OAuth JWT API endpoint for
//! external clients"): an RS256 JWT signed with edgecc's private key,
//! whose certificate the instance holds in the endpoint's JWT verifier map.
//!
//! Claims, as ServiceNow checks them: `iss` and `aud` = the endpoint's
//! client id ("should match the value of the issuer and audience claims"),
//! `sub` = the integration user, matched against the endpoint's User field
//! of `sys_user`; `iat`, `exp` ([`JWT_LIFETIME_SECS`] later) and a fresh
//! `jti` per exchange (JTI verification is on by default: an assertion is
//! used once). The header's `kid` names the verifier map entry. The token
//! request is `grant_type=`[`JWT_BEARER_GRANT`] with `client_id`,
//! `client_secret` and `assertion`; ServiceNow issues no refresh token for
//! it, so a new assertion is signed whenever the token is renewed.

use std::sync::atomic::{AtomicU64, Ordering};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::net::SettingError;

/// The grant type ServiceNow's token endpoint takes for an assertion.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long an assertion is valid, in seconds: enough for one token
/// request, short enough that a leaked one is soon worthless.
pub const JWT_LIFETIME_SECS: u64 = 300;

/// Distinguishes assertions signed in the same millisecond.
static JTI_SERIAL: AtomicU64 = AtomicU64::new(0);

/// The claims of one assertion.
#[derive(Serialize)]
struct Claims<'a> {
    /// Issuer: the client id.
    iss: &'a str,
    /// Subject: the user the token acts as.
    sub: &'a str,
    /// Audience: the client id, as ServiceNow's endpoint expects.
    aud: &'a str,
    /// Issued at, seconds since the epoch.
    iat: u64,
    /// Expiry, seconds since the epoch.
    exp: u64,
    /// Unique per assertion (ServiceNow refuses a replayed one).
    jti: String,
}

/// Signs assertions with the configured key.
pub(super) struct Signer {
    /// The RSA private key.
    key: EncodingKey,
    /// The client id (`iss`, `aud`).
    client_id: String,
    /// The integration user (`sub`).
    subject: String,
    /// The verifier map's Kid, if configured.
    kid: Option<String>,
}

impl Signer {
    /// A signer from a PEM RSA private key (PKCS#1 or PKCS#8); the error
    /// names `crm.servicenow.jwt_key_file`.
    pub(super) fn new(
        pem: &[u8],
        client_id: String,
        subject: String,
        kid: Option<String>,
    ) -> Result<Signer, SettingError> {
        let key = EncodingKey::from_rsa_pem(pem).map_err(|e| {
            SettingError::new(
                "crm.servicenow.jwt_key_file",
                format!("not a PEM RSA private key: {e}"),
            )
        })?;
        Ok(Signer {
            key,
            client_id,
            subject,
            kid,
        })
    }

    /// A fresh assertion for a token request at `now_ms`.
    pub(super) fn assertion(&self, now_ms: u64) -> Result<String, String> {
        let now = now_ms / 1000;
        let serial = JTI_SERIAL.fetch_add(1, Ordering::Relaxed);
        let claims = Claims {
            iss: &self.client_id,
            sub: &self.subject,
            aud: &self.client_id,
            iat: now,
            exp: now + JWT_LIFETIME_SECS,
            jti: format!("edgecc-{}-{now_ms:x}-{serial:x}", std::process::id()),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.kid.clone();
        encode(&header, &claims, &self.key).map_err(|e| format!("cannot sign the JWT: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key that is not PEM is refused naming the key file's setting.
    #[test]
    fn bad_key_names_the_setting() {
        let e = Signer::new(b"not a key", "c".into(), "u".into(), None)
            .err()
            .unwrap();
        assert_eq!(e.key, "crm.servicenow.jwt_key_file");
    }
}
