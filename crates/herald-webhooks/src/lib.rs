//! Signing and verifying Herald webhook requests, for Herald itself and for receivers.
//!
//! Herald signs every delivery twice:
//!
//! - **Standard Webhooks** (<https://www.standardwebhooks.com>): headers `webhook-id`,
//!   `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64>` where the
//!   signature is HMAC-SHA256 over `"{id}.{timestamp}.{body}"`. The key is the base64 part of
//!   a `whsec_...` secret; a secret without that prefix is used as its UTF-8 bytes (give
//!   standard libraries [`standard_secret`] of it). During a secret rotation the header holds
//!   one signature per secret, separated by spaces.
//! - **Simple** (the scheme of the seeds' receivers): `x-webhook-signature` is the hex
//!   HMAC-SHA256 of the raw body keyed by the secret string's UTF-8 bytes, and
//!   `x-webhook-timestamp` is the send time in ISO 8601.
//!
//! Both verifiers compare in constant time.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "whsec_";

/// Default tolerance for `webhook-timestamp` drift, as the Standard Webhooks libraries use.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the secret is not valid base64 after `whsec_`")]
    BadSecret,
    #[error("missing or malformed header {0}")]
    BadHeader(&'static str),
    #[error("timestamp outside the tolerance window")]
    StaleTimestamp,
    #[error("no signature matches")]
    NoMatch,
}

/// A new secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", STANDARD.encode(bytes))
}

/// The HMAC key Standard Webhooks signing uses for `secret`.
pub fn standard_key(secret: &str) -> Result<Vec<u8>, VerifyError> {
    match secret.strip_prefix(PREFIX) {
        Some(b64) => STANDARD.decode(b64).map_err(|_| VerifyError::BadSecret),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// `secret` in the `whsec_<base64>` form the Standard Webhooks libraries take.
pub fn standard_secret(secret: &str) -> String {
    if secret.starts_with(PREFIX) {
        secret.to_owned()
    } else {
        format!("{PREFIX}{}", STANDARD.encode(secret.as_bytes()))
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// `v1,<base64>` for one secret.
pub fn sign_standard(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, VerifyError> {
    let mut m = mac(&standard_key(secret)?);
    m.update(msg_id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    Ok(format!("v1,{}", STANDARD.encode(m.finalize().into_bytes())))
}

/// Verifies a Standard Webhooks request: `signature_header` may hold several
/// space-separated `v1,<sig>` entries (rotation); one match is enough.
pub fn verify_standard(
    secret: &str,
    msg_id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let timestamp: i64 = timestamp_header.trim().parse().map_err(|_| VerifyError::BadHeader("webhook-timestamp"))?;
    if (now_unix - timestamp).abs() > tolerance_secs {
        return Err(VerifyError::StaleTimestamp);
    }
    let expected = sign_standard(secret, msg_id, timestamp, body)?;
    let expected = expected.as_bytes();
    let mut found = false;
    for candidate in signature_header.split_whitespace() {
        if candidate.starts_with("v1,") && candidate.len() == expected.len() {
            found |= bool::from(candidate.as_bytes().ct_eq(expected));
        }
    }
    if found { Ok(()) } else { Err(VerifyError::NoMatch) }
}

/// The seeds' scheme: hex HMAC-SHA256 of `body` keyed by `secret`'s UTF-8 bytes.
pub fn sign_simple(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// Constant-time check of an `x-webhook-signature` value.
pub fn verify_simple(secret: &str, body: &[u8], signature_hex: &str) -> bool {
    let expected = sign_simple(secret, body);
    let given = signature_hex.trim().to_ascii_lowercase();
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector of the Standard Webhooks specification's reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn standard_signature_matches_the_reference_vector() {
        assert_eq!(sign_standard(SECRET, MSG_ID, TS, BODY).expect("sign"), SIG);
        assert_eq!(verify_standard(SECRET, MSG_ID, "1614265330", SIG, BODY, TS, DEFAULT_TOLERANCE_SECS), Ok(()));
    }

    #[test]
    fn standard_verification_rejects_tampering_and_stale_times() {
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(verify_standard(SECRET, MSG_ID, "1614265330", SIG, tampered, TS, 300), Err(VerifyError::NoMatch));
        assert_eq!(verify_standard(SECRET, "msg_other", "1614265330", SIG, BODY, TS, 300), Err(VerifyError::NoMatch));
        assert_eq!(
            verify_standard(SECRET, MSG_ID, "1614265330", SIG, BODY, TS + 301, 300),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            verify_standard(SECRET, MSG_ID, "soon", SIG, BODY, TS, 300),
            Err(VerifyError::BadHeader("webhook-timestamp"))
        );
        assert_eq!(verify_standard("whsec_!!!", MSG_ID, "1614265330", SIG, BODY, TS, 300), Err(VerifyError::BadSecret));
    }

    #[test]
    fn any_of_several_signatures_verifies_during_rotation() {
        let new_secret = generate_secret();
        let header = format!("{} {SIG}", sign_standard(&new_secret, MSG_ID, TS, BODY).expect("sign"));
        assert_eq!(verify_standard(SECRET, MSG_ID, "1614265330", &header, BODY, TS, 300), Ok(()));
        assert_eq!(verify_standard(&new_secret, MSG_ID, "1614265330", &header, BODY, TS, 300), Ok(()));
        assert_eq!(
            verify_standard(&generate_secret(), MSG_ID, "1614265330", &header, BODY, TS, 300),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn plain_secrets_sign_with_their_bytes() {
        let plain = "your-webhook-secret";
        let sig = sign_standard(plain, MSG_ID, TS, BODY).expect("sign");
        let as_whsec = standard_secret(plain);
        assert!(as_whsec.starts_with("whsec_"));
        assert_eq!(sign_standard(&as_whsec, MSG_ID, TS, BODY).expect("sign"), sig);
    }

    #[test]
    fn simple_scheme_is_hex_hmac_of_the_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = sign_simple("Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify_simple("Jefe", b"what do ya want for nothing?", &sig.to_uppercase()));
        assert!(!verify_simple("Jefe", b"what do ya want for nothing!", &sig));
        assert!(!verify_simple("Jefe", b"what do ya want for nothing?", "abc"));
    }

    #[test]
    fn generated_secrets_are_32_random_bytes() {
        let s = generate_secret();
        assert_eq!(standard_key(&s).expect("valid").len(), 32);
        assert_ne!(s, generate_secret());
    }
}
