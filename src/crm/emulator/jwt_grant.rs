//! The emulator's side of ServiceNow's OAuth JWT bearer grant: the
//! assertion's RS256 signature checked with the configured public key (the
//! certificate of the endpoint's JWT verifier map), its `kid` against the
//! map's Kid, `iss` and `aud` against the client id, `exp` with
//! ServiceNow's default clock skew ([`CLOCK_SKEW_SECS`]), its `jti` used
//! once (JTI verification, on by default), and its `sub` naming a
//! `sys_user`: ServiceNow matches the subject claim against the "User
//! field" of the OAuth JWT API endpoint (a `sys_user` field, e.g. Email;
//! ServiceNowDocs `platform-security/authentication/create-jwt-endpoint.md`
//! and `configure-an-oauth-jwt-bearer-grant.md`) and runs the request as
//! that user, so a sub no user carries gets no token.

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::state::State;
use super::JTIS_MAX;
use crate::crm::sn_instance::USER_TABLE;

/// ServiceNow's default clock skew for JWT time claims, in seconds.
pub const CLOCK_SKEW_SECS: u64 = 300;

/// The `sys_user` field a JWT's `sub` is matched against when the
/// verifier names none (the User ID).
pub const JWT_USER_FIELD_DEFAULT: &str = "user_name";

/// What the emulator's JWT verifier map (and its endpoint) holds.
#[derive(Debug, Clone, Default)]
pub struct JwtVerifier {
    /// The PEM public key whose private half signs the assertions.
    pub public_key_pem: Vec<u8>,
    /// The verifier map's Kid; `None`: the header's `kid` is not checked.
    pub kid: Option<String>,
    /// The endpoint's "User field": the `sys_user` field that must hold
    /// the assertion's `sub`; `None`: [`JWT_USER_FIELD_DEFAULT`].
    pub user_field: Option<String>,
}

/// Checks `assertion` for `client_id`; `Err` says why it is refused.
/// A good assertion's `jti` is remembered in `st` (a replay is refused).
pub(super) fn verify(
    verifier: &JwtVerifier,
    client_id: &str,
    assertion: &str,
    st: &mut State,
) -> Result<(), String> {
    let header = decode_header(assertion).map_err(|e| format!("bad JWT header: {e}"))?;
    if verifier.kid.is_some() && header.kid != verifier.kid {
        return Err(format!("no verifier map for kid {:?}", header.kid));
    }
    let key = DecodingKey::from_rsa_pem(&verifier.public_key_pem)
        .map_err(|e| format!("verifier key: {e}"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.set_issuer(&[client_id]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = decode::<Map<String, Value>>(assertion, &key, &validation)
        .map_err(|e| format!("JWT refused: {e}"))?;
    let sub = data.claims.get("sub").and_then(Value::as_str).unwrap_or("");
    if sub.is_empty() {
        return Err("JWT has an empty sub".into());
    }
    let field = verifier
        .user_field
        .as_deref()
        .unwrap_or(JWT_USER_FIELD_DEFAULT);
    let known = st.tables.get(USER_TABLE).is_some_and(|rows| {
        rows.iter()
            .any(|r| r.fields.get(field).and_then(Value::as_str) == Some(sub))
    });
    if !known {
        return Err(format!("JWT sub {sub:?} is no sys_user's {field}"));
    }
    let jti = data
        .claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if jti.is_empty() || st.jtis.contains(&jti) {
        return Err("JWT jti missing or already used".into());
    }
    if st.jtis.len() >= JTIS_MAX {
        st.jtis.pop_front();
    }
    st.jtis.push_back(jti);
    Ok(())
}
