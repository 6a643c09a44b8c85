//! Secrets Herald keeps in memory and in the database: project secret keys (GameTalk's
//! `X-Secret-Key`), webhook signing secrets (current and previous) and the JWT signing key.
//!
//! They live in [`Secret`], a `secrecy::SecretString`: it has no `Serialize` and its `Debug`
//! prints `[REDACTED]`, so a row, answer or event that holds one cannot put it into JSON or a
//! log by accident (a struct deriving `Serialize` over it does not compile). The few places
//! that hand a secret out on purpose (a key's creation, the webhook secret reveal and rotate)
//! call [`ExposeSecret::expose_secret`] there, where a reader sees it.

use std::fmt;

pub use secrecy::ExposeSecret;
use secrecy::SecretString;
use sqlx::{Database, Decode, Encode, Type, encode::IsNull, error::BoxDynError};

/// A secret string, stored as text.
///
/// A newtype over `SecretString` rather than `SecretString` itself because a row struct's field
/// needs sqlx's `Type`/`Decode`/`Encode`, which neither crate implements for the other's type
/// (and the orphan rule keeps Herald from adding them); `#[sqlx(try_from = "String")]` would
/// decode a plain column but not a nullable one (`previous_secret`).
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(SecretString::from(value.into()))
    }
}

impl ExposeSecret<str> for Secret {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret::new(value)
    }
}

impl Default for Secret {
    /// Empty: "not set" (`auth.jwt_secret`'s default).
    fn default() -> Secret {
        Secret::new(String::new())
    }
}

/// Writes `""` in place of a secret: `Config` is serialized (its defaults, for figment and the
/// test listing its keys), and a set `auth.jwt_secret` must not come out of it.
pub fn serialize_redacted<S: serde::Serializer>(_: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str("")
}

/// Deserialized from a plain string (a request body or the config file): reading a secret in
/// is fine, writing one out is what the type prevents.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        SecretString::deserialize(deserializer).map(Secret)
    }
}

impl<DB: Database> Type<DB> for Secret
where
    String: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for Secret
where
    String: Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<Secret, BoxDynError> {
        <String as Decode<'r, DB>>::decode(value).map(Secret::new)
    }
}

impl<'q, DB: Database> Encode<'q, DB> for Secret
where
    for<'a> &'a str: Encode<'q, DB>,
{
    fn encode_by_ref(&self, buf: &mut DB::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<'q, DB>>::encode_by_ref(&self.expose_secret(), buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_show_the_secret() {
        let secret = Secret::new("hunter2-very-secret");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{:?}", Some(secret.clone())).contains("hunter2"));
        assert_eq!(secret.expose_secret(), "hunter2-very-secret");
    }

    fn project(secret_key: &str) -> crate::store::orgs::Project {
        let now = chrono::Utc::now();
        crate::store::orgs::Project {
            id: "p1".into(),
            organization_id: "o1".into(),
            name: "Game".into(),
            slug: "game".into(),
            app_key: "app".into(),
            secret_key: Secret::new(secret_key),
            default_language: "en".into(),
            created_at: now,
            updated_at: now,
        }
    }

    /// A row holding a secret can be logged with `{:?}` (errors and traces do) without it.
    #[test]
    fn rows_debug_without_their_secrets() {
        let project = project("project-secret-key-1234");
        assert!(format!("{project:?}").contains("p1"));
        assert!(!format!("{project:?}").contains("project-secret-key-1234"));
        assert!(!format!("{project:#?}").contains("project-secret-key-1234"));

        let now = chrono::Utc::now();
        let webhook = crate::store::webhooks::Webhook {
            id: "w1".into(),
            project_id: "p1".into(),
            name: None,
            url: "https://example.com/hook".into(),
            description: None,
            events: sqlx::types::Json(vec!["*".into()]),
            secret: Secret::new("current-webhook-secret"),
            previous_secret: Some(Secret::new("previous-webhook-secret")),
            previous_secret_expires_at: Some(now),
            active: true,
            headers: sqlx::types::Json(Default::default()),
            rate_limit: None,
            timeout_ms: 3000,
            format: Default::default(),
            disabled_reason: None,
            disabled_at: None,
            last_success_at: None,
            failing_since: None,
            created_seq: 0,
            created_at: now,
            updated_at: now,
        };
        let debug = format!("{webhook:?}");
        assert!(debug.contains("https://example.com/hook"));
        assert!(!debug.contains("current-webhook-secret") && !debug.contains("previous-webhook-secret"), "{debug}");

        // What their events carry: the resource without its secrets.
        let ctx = crate::events::EventContext::system();
        let event = crate::store::webhooks::webhook_event(&ctx, "webhook.created", &webhook);
        assert_eq!(event.data["url"], "https://example.com/hook");
        assert!(!event.data.to_string().contains("webhook-secret"), "{}", event.data);
        let event = crate::store::orgs::project_event(&ctx, "project.created", &project);
        assert_eq!(event.data["appKey"], "app");
        assert!(!event.data.to_string().contains("project-secret-key"), "{}", event.data);
    }

    /// A configured JWT secret comes out of neither `Config`'s `Debug` nor its serialization.
    #[test]
    fn config_does_not_show_the_jwt_secret() {
        let mut config = crate::config::Config::default();
        config.auth.jwt_secret = Secret::new("configured-jwt-secret");
        assert!(!format!("{config:?}").contains("configured-jwt-secret"));
        let json = serde_json::to_string(&config).expect("serializes");
        assert!(!json.contains("configured-jwt-secret"));
        assert!(json.contains("\"jwtSecret\":\"\"") || json.contains("\"jwt_secret\":\"\""), "{json}");
    }
}
