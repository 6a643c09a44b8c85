//! What every handler and socket handler reaches: the node's shared state. Below `api/` and
//! `realtime/` (they take it from here, not from `app`, which builds the router over them);
//! it names the per-node parts those layers keep (caches, limiters, counters), never a handler.

use std::{sync::Arc, time::Duration};

use crate::{
    api,
    auth::{KeyCache, jwt::JwtKeys, keys},
    config::Config,
    realtime,
    store::Store,
    webhooks::{Clock, dispatcher::Liveness, sender::Sender},
};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub keys: KeyCache,
    pub jwt: JwtKeys,
    /// Sends webhook requests (shared by the dispatcher and the endpoint test route).
    pub sender: Sender,
    pub clock: Clock,
    /// Serialized `GET /game-worlds` answers (see `api::cache`).
    pub list_cache: api::cache::ResponseCache,
    /// Per-player chat send limit (see `chat.rate_limit_messages`).
    pub chat_limiter: crate::domain::chat::RateLimiter,
    /// Per-credential request limit (see `http.rate_limit_per_sec`).
    pub rate_limiter: api::rate_limit::KeyRateLimiter,
    /// Failed admin logins, per account and client address (see `auth.login_*`).
    pub login_throttle: crate::auth::throttle::LoginThrottle,
    /// The socket.io gateway's counters, read by `GET /metrics`.
    pub realtime_stats: Arc<realtime::Stats>,
    /// The webhook dispatcher's heartbeat, read by `GET /readyz`.
    pub dispatcher: Arc<Liveness>,
    /// The game-client routes' keys, rate limit and answers (see `api::client`).
    pub client: api::client::ClientState,
    /// Client connections: the cap and its counters, read by `GET /metrics`.
    pub connections: Arc<crate::net::Connections>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Handlers take `s: State` and reach `s.store`, `s.config`, ...
pub type State = axum::extract::State<AppState>;

impl AppState {
    /// Builds the state over a migrated store. The JWT key comes from the config, or is
    /// generated once and shared through the database.
    pub async fn new(config: Config, store: Store, clock: Clock) -> anyhow::Result<AppState> {
        use crate::secret::{ExposeSecret, Secret};
        let secret = if config.auth.jwt_secret.expose_secret().is_empty() {
            Secret::new(store.setting_or_insert("jwt_secret", &keys::random_token(48)).await?)
        } else {
            config.auth.jwt_secret.clone()
        };
        let keys = KeyCache::new(Duration::from_secs(config.auth.key_cache_ttl_secs));
        let sender = Sender::new(&config.webhooks)?;
        let list_cache = api::cache::ResponseCache::new(Duration::from_millis(config.http.list_cache_ms));
        let chat_limiter = crate::domain::chat::RateLimiter::new(&config.chat);
        let rate_limiter = api::rate_limit::KeyRateLimiter::for_credentials(&config.http);
        let connections = Arc::new(crate::net::Connections::new(crate::net::connection_cap(&config)));
        let login_throttle = crate::auth::throttle::LoginThrottle::new(&config.auth);
        let client = api::client::ClientState::new(&config)?;
        Ok(AppState(Arc::new(Inner {
            client,
            rate_limiter,
            connections,
            login_throttle,
            realtime_stats: Arc::default(),
            dispatcher: Arc::default(),
            jwt: JwtKeys::new(secret.expose_secret().as_bytes()),
            keys,
            store,
            config,
            sender,
            clock,
            list_cache,
            chat_limiter,
        })))
    }
}
