//! Short-lived HS256 JWTs: admin access tokens (refresh tokens are opaque and stored hashed,
//! see `domain::session`) and player session tokens (see `domain::player_session`). The
//! `typ` claim keeps one kind from passing for the other.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The admin user's id.
    pub sub: String,
    pub org: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    /// Always `access`: guards against other token kinds signed with the same key.
    pub typ: String,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtKeys { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    pub fn issue(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)?)
    }

    /// The claims of a valid, unexpired access token; `None` otherwise.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
            .filter(|c| c.typ == "access")
    }
}

/// The claims of a player session token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlayerClaims {
    /// The player's id (unique within the project).
    pub sub: String,
    /// The project.
    pub prj: String,
    /// The `player_sessions` row: revoking it refuses the token.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    /// Always `player`.
    pub typ: String,
}

impl JwtKeys {
    /// The claims of a valid, unexpired player session token; `None` otherwise.
    pub fn verify_player(&self, token: &str) -> Option<PlayerClaims> {
        jsonwebtoken::decode::<PlayerClaims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
            .filter(|c| c.typ == "player")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_kinds_do_not_pass_for_each_other() {
        let keys = JwtKeys::new(b"a test secret of enough length for HS256");
        let now = chrono::Utc::now().timestamp();
        let player = PlayerClaims {
            sub: "u1".into(),
            prj: "p1".into(),
            sid: "s1".into(),
            iat: now,
            exp: now + 60,
            typ: "player".into(),
        };
        let token = keys.issue(&player).expect("signs");
        assert_eq!(keys.verify_player(&token).map(|c| c.sid), Some("s1".into()));
        assert!(keys.verify(&token).is_none(), "a player token is not an admin access token");
        let expired = keys.issue(&PlayerClaims { exp: now - 60, iat: now - 120, ..player.clone() }).expect("signs");
        assert!(keys.verify_player(&expired).is_none(), "expired");
        let other = JwtKeys::new(b"another secret, also long enough for HS256");
        assert!(other.verify_player(&token).is_none(), "signed with another key");
    }
}
