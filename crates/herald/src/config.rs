//! Configuration: defaults in one place ([`Config::default`]), overridden by an optional TOML
//! file, overridden in turn by `HERALD_*` environment variables (`__` separates sections, so
//! `HERALD_AUTH__JWT_SECRET` sets `auth.jwt_secret`).

mod duration;

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
    pub webhooks: WebhooksConfig,
    pub chat: ChatConfig,
    pub realtime: RealtimeConfig,
    pub metrics: MetricsConfig,
    pub client: ClientConfig,
}

/// The game-client routes (`/api/v1/client/*`): see docs/GAME-CLIENTS.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// `Cache-Control: max-age` of client answers, in seconds; shorter when a known change
    /// (a maintenance window opening or closing) comes sooner. 0: `no-cache`.
    #[serde(deserialize_with = "duration::secs")]
    pub cache_max_age_secs: u64,
    /// How long a node keeps an assembled client answer, in milliseconds (0: off). Changes
    /// made through the same node are seen at once; through another node, within this time.
    #[serde(deserialize_with = "duration::ms")]
    pub answer_cache_ms: u64,
    /// Origins web games may call the client routes from (CORS), e.g.
    /// `["https://play.example.com"]`; `["*"]`: any origin. Empty: no CORS headers.
    pub cors_allowed_origins: Vec<String>,
    /// Requests per second one client address (IPv6: its /64) may make to the client routes
    /// on one node; past it, 429 with `Retry-After`. 0: no limit.
    pub rate_limit_per_sec: u32,
    /// Requests an address may make at once before the rate applies (at least
    /// `rate_limit_per_sec`).
    pub rate_limit_burst: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            cache_max_age_secs: 5,
            answer_cache_ms: 1000,
            cors_allowed_origins: Vec::new(),
            rate_limit_per_sec: 20,
            rate_limit_burst: 100,
        }
    }
}

/// `GET /metrics` (Prometheus): see docs/OPERATIONS.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `GET /metrics`.
    pub enabled: bool,
    /// Answer clients connecting from a loopback address without a credential (a Prometheus
    /// on the same host, or a sidecar). Turn off when a proxy on the same host forwards
    /// outside traffic: every request would then come from loopback. Other clients always
    /// need a credential with the `metrics:read` scope.
    pub open_to_loopback: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true, open_to_loopback: true }
    }
}

/// The socket.io gateway (`/socket.io/`): see docs/REALTIME.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Serve socket.io on the API port.
    pub enabled: bool,
    /// Lifetime of a player session token when the request names none, in seconds.
    #[serde(deserialize_with = "duration::secs")]
    pub session_token_ttl_secs: u64,
    /// Longest lifetime a request may ask for a player session token, in seconds.
    #[serde(deserialize_with = "duration::secs")]
    pub max_session_token_ttl_secs: u64,
    /// Largest message a client may send, in bytes (engine.io `maxPayload`).
    pub max_payload_bytes: u64,
    /// Packets waiting to be written to one connection; a client that lets more pile up
    /// is too slow to read and is disconnected.
    pub max_buffered_packets: usize,
    /// Connected sockets one project may hold on one node; 0: no limit.
    pub max_connections_per_project: usize,
    /// socket.io heartbeat: a ping every `ping_interval_secs`; no pong within
    /// `ping_timeout_secs` closes the connection.
    #[serde(deserialize_with = "duration::secs")]
    pub ping_interval_secs: u64,
    #[serde(deserialize_with = "duration::secs")]
    pub ping_timeout_secs: u64,
    /// How often the event feed looks for events committed by other nodes when no
    /// notification woke it, in milliseconds.
    #[serde(deserialize_with = "duration::ms")]
    pub poll_interval_ms: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            enabled: true,
            session_token_ttl_secs: 3600,
            max_session_token_ttl_secs: 86_400,
            max_payload_bytes: 64 * 1024,
            max_buffered_packets: 256,
            max_connections_per_project: 20_000,
            ping_interval_secs: 25,
            ping_timeout_secs: 20,
            poll_interval_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Messages one player may send within `rate_window_secs` (per node); 0: no limit.
    pub rate_limit_messages: u32,
    /// The window of `rate_limit_messages`, in seconds.
    #[serde(deserialize_with = "duration::secs")]
    pub rate_window_secs: u64,
    /// Longest message text, in characters.
    pub max_message_length: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig { rate_limit_messages: 10, rate_window_secs: 10, max_message_length: 2000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connections in the pool (PostgreSQL) or in the read pool (SQLite; SQLite writes go
    /// through one connection, because SQLite admits one writer at a time).
    pub max_connections: u32,
    /// Seconds to wait for a free connection before a request fails.
    #[serde(deserialize_with = "duration::secs")]
    pub acquire_timeout_secs: u64,
    /// SQLite only: what "committed" means (see [`SqliteSynchronous`]).
    pub sqlite_synchronous: SqliteSynchronous,
}

/// When a SQLite commit is acknowledged (SQLite's `PRAGMA synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// Every commit is flushed to disk (fsync of the WAL) before it is acknowledged, so an
    /// acknowledged write survives an OS crash or power loss. Group commit shares one flush
    /// among every write waiting at that moment.
    #[default]
    Full,
    /// Commits are flushed at checkpoints only: an acknowledged write survives `kill -9` of
    /// Herald but the last ones can be lost to an OS crash or power loss.
    Normal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// Seconds a request may take before it is answered with 408.
    #[serde(deserialize_with = "duration::secs")]
    pub request_timeout_secs: u64,
    /// How long a node keeps a `GET /api/v1/game-worlds` answer, in milliseconds (0: off).
    /// Changes made through the same node are seen at once; through another node sharing
    /// the database, within this time.
    #[serde(deserialize_with = "duration::ms")]
    pub list_cache_ms: u64,
    /// Requests per second one API key or admin account may make to `/api/v1` on one node
    /// (token bucket refill rate); past it, 429 with `Retry-After`. 0: no limit.
    pub rate_limit_per_sec: u32,
    /// Requests a credential may make at once before the rate applies (bucket size; at least
    /// `rate_limit_per_sec`).
    pub rate_limit_burst: u32,
    /// A connection whose pending write makes no progress for this long (the client stopped
    /// reading) is cut, in seconds. This is what disconnects a socket.io client too slow to
    /// read (see docs/REALTIME.md).
    #[serde(deserialize_with = "duration::secs")]
    pub write_stall_timeout_secs: u64,
    /// A client must send a complete request head within this many seconds of the server
    /// starting to wait for one (the connection opened, or its previous response was sent):
    /// a connection that sends nothing, or a header line now and then, is closed.
    #[serde(deserialize_with = "duration::secs")]
    pub header_read_timeout_secs: u64,
    /// A connection with no request in progress for this long is closed, in seconds.
    #[serde(deserialize_with = "duration::secs")]
    pub idle_timeout_secs: u64,
    /// Client connections (WebSockets included) open at once on this node; past it a new
    /// connection is closed at once. 0: what the open-file limit leaves after a reserve for
    /// the database and webhook deliveries.
    pub max_connections: usize,
    /// Proxies (CIDR blocks, e.g. `["10.0.0.0/8", "::1/128"]`) whose `X-Forwarded-For` is
    /// believed: a request from one of them is from the last address in that header that is
    /// not itself a trusted proxy. Empty: the connection's address is the client's.
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC key for admin JWTs. Empty: generated on first start and kept in the database,
    /// so every node sharing the database signs and verifies with the same key.
    #[serde(serialize_with = "crate::secret::serialize_redacted")]
    pub jwt_secret: crate::secret::Secret,
    /// Lifetime of an access token (JWT), in seconds.
    #[serde(deserialize_with = "duration::secs")]
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token, in seconds.
    #[serde(deserialize_with = "duration::secs")]
    pub refresh_token_ttl_secs: u64,
    /// How long a node trusts a looked-up API key before reading it again. A key revoked
    /// through this node's API stops working at once; revoked elsewhere, within this time.
    #[serde(deserialize_with = "duration::secs")]
    pub key_cache_ttl_secs: u64,
    /// Failed admin logins in a row (per account, and per client address) before each
    /// further failure blocks the next attempt: 1 s, doubling (`auth::throttle`).
    pub login_free_attempts: u32,
    /// The longest block of one account, kept short so that failing on purpose cannot lock
    /// its admin out. 0: no per-account throttling.
    #[serde(deserialize_with = "duration::secs")]
    pub login_max_account_delay_secs: u64,
    /// The longest block of one client address (IPv6: its /64). 0: no per-address throttling.
    #[serde(deserialize_with = "duration::secs")]
    pub login_max_address_delay_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` (human) or `json` (one JSON object per line).
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `herald=debug,tower_http=info`.
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// `development`: `http://` and loopback/private targets allowed. `production`: only
    /// `https://`, and targets resolving to loopback, private, link-local or metadata
    /// addresses are refused (unless `allow_networks` covers them), at registration and again
    /// at connect time.
    pub profile: WebhookProfile,
    /// CIDR blocks the production profile may deliver to anyway, e.g. `["10.1.2.0/24"]`.
    pub allow_networks: Vec<String>,
    /// Whether this node runs the delivery dispatcher.
    pub dispatcher: bool,
    /// Delay before each retry, in seconds: after the first failed attempt, the first entry.
    /// When they are used up the delivery is marked failed.
    #[serde(deserialize_with = "duration::secs_list")]
    pub retry_schedule_secs: Vec<u64>,
    /// Random spread of each retry delay, as a fraction (0.1 = +/-10%).
    pub retry_jitter: f64,
    /// Longest `Retry-After` (on 429/503) honoured, in seconds.
    #[serde(deserialize_with = "duration::secs")]
    pub retry_after_cap_secs: u64,
    /// An endpoint failing with no success for this long is disabled.
    #[serde(deserialize_with = "duration::secs")]
    pub disable_after_failing_secs: u64,
    /// Request timeout when an endpoint sets none, in milliseconds (endpoints may set up to 30000).
    #[serde(deserialize_with = "duration::ms_u32")]
    pub default_timeout_ms: u32,
    /// Deliveries in flight on this node at once.
    pub max_in_flight: usize,
    /// Deliveries in flight to one endpoint at once (so a slow one cannot starve the others).
    pub max_in_flight_per_endpoint: usize,
    /// Events fanned out / deliveries claimed per database round trip.
    pub batch_size: i64,
    /// How long a claimed delivery stays reserved for this node; if the node dies, another
    /// claims it after this.
    #[serde(deserialize_with = "duration::secs")]
    pub lease_secs: u64,
    /// How often an idle dispatcher looks for work written by other nodes, in milliseconds.
    #[serde(deserialize_with = "duration::ms")]
    pub poll_interval_ms: u64,
    /// When woken by a local write, wait this long (ms) before fanning out, so a burst of
    /// writes is fanned out in one transaction instead of one each. 0 by default: a busy
    /// dispatcher batches anyway (it fans out everything written while it was busy), and every
    /// millisecond here is a millisecond from publish to arrival at low load.
    #[serde(deserialize_with = "duration::ms")]
    pub linger_ms: u64,
    /// Finished deliveries and their attempts are deleted after this many days.
    #[serde(deserialize_with = "duration::days")]
    pub retention_days: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookProfile {
    Development,
    Production,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            profile: WebhookProfile::Development,
            allow_networks: Vec::new(),
            dispatcher: true,
            retry_schedule_secs: vec![60, 5 * 60, 30 * 60, 2 * 3600, 24 * 3600],
            retry_jitter: 0.1,
            retry_after_cap_secs: 3600,
            disable_after_failing_secs: 5 * 24 * 3600,
            default_timeout_ms: 3000,
            max_in_flight: 512,
            max_in_flight_per_endpoint: 64,
            batch_size: 500,
            lease_secs: 60,
            poll_interval_ms: 250,
            linger_ms: 0,
            retention_days: 30,
        }
    }
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
            webhooks: WebhooksConfig::default(),
            chat: ChatConfig::default(),
            realtime: RealtimeConfig::default(),
            metrics: MetricsConfig::default(),
            client: ClientConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { max_connections: 16, acquire_timeout_secs: 10, sqlite_synchronous: SqliteSynchronous::Full }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            list_cache_ms: 1000,
            rate_limit_per_sec: 1000,
            rate_limit_burst: 2000,
            write_stall_timeout_secs: 20,
            header_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 0,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: crate::secret::Secret::default(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            key_cache_ttl_secs: 5,
            login_free_attempts: 5,
            login_max_account_delay_secs: 10,
            login_max_address_delay_secs: 15 * 60,
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
        // HERALD_* variables that are not settings: the config file's path, the log filter
        // shorthand, the CLI's password input and server address and key, and the test and
        // benchmark scripts' own.
        let env = Env::prefixed("HERALD_")
            .ignore(&["CONFIG", "LOG", "ADMIN_PASSWORD", "BENCH_KEY", "URL", "API_KEY", "PROJECT_ID"])
            .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_"))
            .split("__");
        figment = figment.merge(env);
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
            assert_eq!(config.database.sqlite_synchronous, SqliteSynchronous::Full, "durable by default");
            jail.set_env("HERALD_DATABASE__SQLITE_SYNCHRONOUS", "normal");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.database.sqlite_synchronous, SqliteSynchronous::Normal);
            jail.set_env("HERALD_DATABASE__SQLITE_SYNCHRONOUS", "off");
            let refused = Config::load(None).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(refused.to_lowercase().contains("sqlite_synchronous") && refused.contains("full"), "{refused}");
            jail.set_env("HERALD_DATABASE__SQLITE_SYNCHRONOUS", "full");
            jail.create_file("bad.toml", "lisen = \"x\"")?;
            assert!(Config::load(Some(std::path::Path::new("bad.toml"))).is_err(), "unknown keys are rejected");
            Ok(())
        });
    }
}
