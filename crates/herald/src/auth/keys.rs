//! API key format: `hk_<id>_<secret>`: `id` is 16 hex characters (public, used to look the
//! key up), `secret` 43 base64url characters (256 random bits; only its SHA-256 is stored).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "hk_";
const ID_LEN: usize = 16;

/// A fresh key: `(id, full key to show once, hash of its secret to store)`.
pub fn generate() -> (String, String, Vec<u8>) {
    let mut rng = rand::thread_rng();
    let mut id_bytes = [0u8; ID_LEN / 2];
    rng.fill_bytes(&mut id_bytes);
    let mut secret_bytes = [0u8; 32];
    rng.fill_bytes(&mut secret_bytes);
    let id = hex::encode(id_bytes);
    let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
    let full = format!("{PREFIX}{id}_{secret}");
    (id, full, hash(&secret))
}

/// Splits a presented key into `(id, secret)`, or `None` if it is not of Herald's form.
pub fn parse(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
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
