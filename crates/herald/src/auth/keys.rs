//! API key format: `hk_<id>_<secret>`: `id` is 16 hex characters (public, used to look the
//! key up), `secret` 43 base64url characters (256 random bits; only its SHA-256 is stored).
//! Client keys (shipped inside game builds, accepted only on `/api/v1/client/*`) have the
//! same form with the prefix `hc_`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "hk_";
/// The prefix of client keys.
pub const CLIENT_PREFIX: &str = "hc_";
const ID_LEN: usize = 16;

/// A fresh key: `(id, full key to show once, hash of its secret to store)`.
pub fn generate() -> (String, String, Vec<u8>) {
    generate_prefixed(PREFIX)
}

/// A fresh client key (`hc_...`): `(id, full key to show once, hash of its secret to store)`.
pub fn generate_client() -> (String, String, Vec<u8>) {
    generate_prefixed(CLIENT_PREFIX)
}

fn generate_prefixed(prefix: &str) -> (String, String, Vec<u8>) {
    let mut rng = rand::thread_rng();
    let mut id_bytes = [0u8; ID_LEN / 2];
    rng.fill_bytes(&mut id_bytes);
    let mut secret_bytes = [0u8; 32];
    rng.fill_bytes(&mut secret_bytes);
    let id = hex::encode(id_bytes);
    let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
    let full = format!("{prefix}{id}_{secret}");
    (id, full, hash(&secret))
}

/// Splits a presented key into `(id, secret)`, or `None` if it is not of Herald's form.
pub fn parse(presented: &str) -> Option<(&str, &str)> {
    parse_prefixed(presented, PREFIX)
}

/// Splits a presented client key into `(id, secret)`, or `None` if it is not of that form.
pub fn parse_client(presented: &str) -> Option<(&str, &str)> {
    parse_prefixed(presented, CLIENT_PREFIX)
}

fn parse_prefixed<'a>(presented: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = presented.strip_prefix(prefix)?;
    if rest.len() <= ID_LEN + 1 || !rest.is_char_boundary(ID_LEN) {
        return None;
    }
    let (id, tail) = rest.split_at(ID_LEN);
    let secret = tail.strip_prefix('_')?;
    id.bytes().all(|b| b.is_ascii_hexdigit()).then_some((id, secret))
}

pub fn looks_like_api_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

pub fn looks_like_client_key(token: &str) -> bool {
    token.starts_with(CLIENT_PREFIX)
}

pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Constant-time comparison of a presented secret with a stored hash.
pub fn verify(secret: &str, stored_hash: &[u8]) -> bool {
    hash(secret).ct_eq(stored_hash).into()
}

/// A random token of `bytes` random bytes, base64url: for project keys and refresh tokens.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify() {
        let (id, full, stored) = generate();
        let (pid, secret) = parse(&full).expect("own format parses");
        assert_eq!(pid, id);
        assert!(verify(secret, &stored));
        assert!(!verify("not-the-secret", &stored));
        let (cid, client, _) = generate_client();
        assert!(client.starts_with("hc_") && looks_like_client_key(&client));
        assert_eq!(parse_client(&client).map(|(id, _)| id), Some(cid.as_str()));
        assert!(parse(&client).is_none(), "a client key is not an API key");
        assert!(parse_client(&full).is_none(), "an API key is not a client key");
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for bad in [
            "",
            "hk_",
            "hk_0123456789abcdef",
            "hk_0123456789abcdef_",
            "xx_0123456789abcdef_abc",
            "hk_0123456789abcdeg_abc",
            "hk_é123456789abcdef_abc",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} should not parse");
        }
    }
}
