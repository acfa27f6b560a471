//! The webhook signature, in the style of Stripe's: the sender's
//! [`sign`] and the receiver's [`verify_signature`] (the CRM emulator uses
//! it; a receiver may copy it).
//!
//! ```text
//! Edgecc-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//! ```
//!
//! Several `v1` entries are allowed (key rotation); unknown entries are
//! ignored; the signed time must be within a tolerance of the receiver's
//! clock ([`SIGNATURE_TOLERANCE_SECS_DEFAULT`]), which bounds replays.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "Edgecc-Signature";
/// Receiver-side replay window for [`verify_signature`], in seconds: the
/// signed timestamp must be within this of the receiver's clock.
pub const SIGNATURE_TOLERANCE_SECS_DEFAULT: u64 = 300;

/// Why [`verify_signature`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<digits>,v1=<hex>[,v1=<hex>…]`.
    #[error("signature header is malformed")]
    Malformed,
    /// The signed time is further from now than the tolerance (a replay, or
    /// a badly wrong clock on one side).
    #[error("signature timestamp {t} is outside the {tolerance_secs} s tolerance")]
    OutsideTolerance {
        /// The header's `t`.
        t: u64,
        /// The tolerance applied.
        tolerance_secs: u64,
    },
    /// No `v1` value matches the HMAC of this body.
    #[error("signature does not match the body")]
    Mismatch,
}

type HmacSha256 = Hmac<Sha256>;

/// The HMAC-SHA256 of `"<t>.<body>"` under `secret`.
fn mac(secret: &[u8], t: u64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `Edgecc-Signature` value for `body` signed at unix time `t`.
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    let mut hex = String::with_capacity(tag.len() * 2);
    for b in tag {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("t={t},v1={hex}")
}

/// Checks an `Edgecc-Signature` header against `body`: the timestamp must be
/// within `tolerance_secs` of `now_secs` and one `v1` must equal the
/// HMAC-SHA256 of `"<t>.<body>"` (compared in constant time). Several `v1`
/// entries are allowed (key rotation); unknown entries are ignored.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                if t.is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed);
                }
                t = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| SignatureError::Malformed)?,
                );
            }
            "v1" => candidates.push(decode_hex(value).ok_or(SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if t.abs_diff(now_secs) > tolerance_secs {
        return Err(SignatureError::OutsideTolerance { t, tolerance_secs });
    }
    let expected = mac(secret, t, body);
    if candidates
        .iter()
        .any(|c| expected.clone().verify_slice(c).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Lower- or upper-case hex to bytes.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature made by `sign` verifies; a changed body, an old stamp, a
    /// malformed header and a wrong key are each refused with their reason.
    #[test]
    fn signature_round_trip_and_refusals() {
        let h = sign(b"k", 1_000, b"{}");
        assert_eq!(verify_signature(b"k", &h, b"{}", 1_100, 300), Ok(()));
        assert_eq!(
            verify_signature(b"k", &h, b"{ }", 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"other", &h, b"{}", 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify_signature(b"k", &h, b"{}", 1_301, 300),
            Err(SignatureError::OutsideTolerance { t: 1_000, .. })
        ));
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "garbage"] {
            assert_eq!(
                verify_signature(b"k", bad, b"{}", 1, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // Key rotation: any matching v1 is enough.
        let rotated = format!("t=1000,v1=00ff,{}", &h["t=1000,".len()..]);
        assert_eq!(verify_signature(b"k", &rotated, b"{}", 1_000, 0), Ok(()));
    }

    /// The worked example in the README is what `sign` computes.
    #[test]
    fn readme_worked_example() {
        assert_eq!(
            sign(b"whsec_test", 1_795_278_919, br#"{"id":"x"}"#),
            "t=1795278919,v1=58056508e65ec1b6b799e0c38a4cf75390d5f1b94081645b38cf28079aae6242"
        );
    }
}
