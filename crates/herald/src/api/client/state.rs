//! What the client routes keep on a node.

#[allow(unused_imports)]
use super::*;

/// What the client routes keep on a node.
pub struct ClientState {
    pub keys: ClientKeyCache,
    pub(super) limiter: AddressRateLimiter,
    pub(super) trusted_proxies: Vec<IpNet>,
    pub(super) answers: super::super::cache::ResponseCache<Arc<Prepared>>,
    pub(super) max_age_secs: u64,
}

impl ClientState {
    pub fn new(config: &Config) -> anyhow::Result<ClientState> {
        let trusted_proxies = config
            .http
            .trusted_proxies
            .iter()
            .map(|cidr| {
                cidr.parse::<IpNet>()
                    .or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| anyhow::anyhow!("http.trusted_proxies: {cidr:?} is not a CIDR block or an address"))
            })
            .collect::<anyhow::Result<_>>()?;
        for origin in &config.client.cors_allowed_origins {
            let valid = origin == "*"
                || url::Url::parse(origin).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.path() == "/"
                        && !origin.trim_end_matches('/').ends_with('/')
                        && u.query().is_none()
                });
            anyhow::ensure!(
                valid,
                "client.cors_allowed_origins: {origin:?} is not an origin such as \"https://play.example.com\" (or \"*\")"
            );
        }
        Ok(ClientState {
            keys: ClientKeyCache::new(Duration::from_secs(config.auth.key_cache_ttl_secs)),
            limiter: AddressRateLimiter::for_addresses(
                config.client.rate_limit_per_sec,
                config.client.rate_limit_burst,
            ),
            trusted_proxies,
            answers: super::super::cache::ResponseCache::new(Duration::from_millis(config.client.answer_cache_ms)),
            max_age_secs: config.client.cache_max_age_secs,
        })
    }

    /// Housekeeping: idle rate-limit buckets forgotten.
    pub fn upkeep(&self) {
        self.limiter.forget_idle();
    }
}
