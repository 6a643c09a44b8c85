//! Configuration: defaults in one place ([`Config::default`]), overridden by an optional TOML
//! file, overridden in turn by `HERALD_*` environment variables (`__` separates sections, so
//! `HERALD_AUTH__JWT_SECRET` sets `auth.jwt_secret`).

use std::{net::SocketAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// Every setting Herald reads. `docs/CONFIG.md` documents each field; keep them in step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds to.
    pub listen: SocketAddr,
    /// Directory for the embedded SQLite database (used when `database_url` is empty).
    pub data_dir: PathBuf,
    /// `sqlite://path/to/file.db` or `postgres://user:pass@host/db`. Empty: SQLite in `data_dir`.
    pub database_url: String,
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connections in the pool (PostgreSQL) or in the read pool (SQLite; SQLite writes go
    /// through one connection, because SQLite admits one writer at a time).
    pub max_connections: u32,
    /// Seconds to wait for a free connection before a request fails.
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// Seconds a request may take before it is answered with 408.
    pub request_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC key for admin JWTs. Empty: generated on first start and kept in the database,
    /// so every node sharing the database signs and verifies with the same key.
    pub jwt_secret: String,
    /// Lifetime of an access token (JWT), in seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token, in seconds.
    pub refresh_token_ttl_secs: u64,
    /// How long a node trusts a looked-up API key before reading it again. A key revoked
    /// through this node's API stops working at once; revoked elsewhere, within this time.
    pub key_cache_ttl_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` (human) or `json` (one JSON object per line).
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `herald=debug,tower_http=info`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./herald-data"),
            database_url: String::new(),
            database: DatabaseConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { max_connections: 16, acquire_timeout_secs: 10 }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { body_limit_bytes: 1024 * 1024, request_timeout_secs: 30 }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: String::new(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            key_cache_ttl_secs: 5,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Pretty, level: "info".into() }
    }
}

impl Config {
    /// Loads defaults, then `file` (if given, it must exist; otherwise `./herald.toml` if it
    /// exists), then `HERALD_*` variables.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(path.exists(), "config file {} does not exist", path.display());
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("herald.toml")),
        }
        figment = figment.merge(Env::prefixed("HERALD_").ignore(&["CONFIG"]).split("__"));
        Ok(figment.extract()?)
    }

    /// The database URL in effect: `database_url`, or the SQLite file in `data_dir`.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("herald.db").display())
        } else {
            self.database_url.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        match value.as_object() {
            Some(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    keys(&key, v, out);
                }
            }
            None => out.push(prefix.to_string()),
        }
    }

    /// docs/CONFIG.md lists every setting the struct has.
    #[test]
    fn config_reference_documents_every_key() {
        let doc = include_str!("../../../docs/CONFIG.md");
        let mut all = Vec::new();
        keys("", &serde_json::to_value(Config::default()).expect("serializes"), &mut all);
        assert!(all.len() > 10);
        for key in all {
            assert!(doc.contains(&format!("| `{key}` |")), "docs/CONFIG.md does not document `{key}`");
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's test Jail returns its own large error type
    fn env_overrides_file_and_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("herald.toml", "listen = \"127.0.0.1:9000\"\n[database]\nmax_connections = 3\n")?;
            jail.set_env("HERALD_DATABASE__MAX_CONNECTIONS", "7");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.listen.port(), 9000);
            assert_eq!(config.database.max_connections, 7);
            assert_eq!(config.http.body_limit_bytes, 1024 * 1024);
            jail.create_file("bad.toml", "lisen = \"x\"")?;
            assert!(Config::load(Some(std::path::Path::new("bad.toml"))).is_err(), "unknown keys are rejected");
            Ok(())
        });
    }
}
