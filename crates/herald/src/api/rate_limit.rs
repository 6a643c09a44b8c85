//! The per-credential API rate limit (`http.rate_limit_per_sec`, `http.rate_limit_burst`): a
//! token bucket per API key or admin account, kept by `governor` (GCRA, one atomic per key).
//!
//! Per node: behind a load balancer spreading a key over N nodes, the key may reach N times
//! the rate. docs/OPERATIONS.md says so.

use std::num::NonZeroU32;

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    state::keyed::DefaultKeyedStateStore,
};

use crate::{
    config::HttpConfig,
    error::{ApiError, ApiResult},
};

/// A token bucket per key (`governor`), answering 429 in the API's error shape.
pub struct KeyedLimiter<K: std::hash::Hash + Eq + Clone> {
    /// `None` when the limit is off (a rate of 0).
    limiter: Option<RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>>,
    clock: DefaultClock,
    /// Who is over the rate, for the 429's message ("this credential", "this address").
    who: &'static str,
}

impl<K: std::hash::Hash + Eq + Clone> KeyedLimiter<K> {
    fn new(per_sec: u32, burst: u32, who: &'static str) -> Self {
        let limiter = NonZeroU32::new(per_sec).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate).max(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        KeyedLimiter { limiter, clock: DefaultClock::default(), who }
    }

    /// Takes one token for `key`, or answers 429 with how long to wait in `Retry-After`.
    fn take(&self, key: &K) -> ApiResult<()> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Whole seconds, rounded up: a client that waits this long gets through.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("{} is over its request rate; retry in {secs} s", self.who),
            )
            .with_retry_after(secs.max(1))
        })
    }

    /// Forgets keys whose buckets are full again, so memory follows the keys in use.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The per-credential limit: one bucket per API key or admin account.
pub type KeyRateLimiter = KeyedLimiter<String>;

impl KeyRateLimiter {
    pub fn for_credentials(config: &HttpConfig) -> KeyRateLimiter {
        KeyedLimiter::new(config.rate_limit_per_sec, config.rate_limit_burst, "this credential")
    }

    /// Takes one token for `key` (`key:<id>` or `admin:<id>`).
    pub fn check(&self, key: &str) -> ApiResult<()> {
        self.take(&key.to_owned())
    }
}

/// The per-address limit of the client routes (`client.rate_limit_per_sec`): one bucket per
/// client address, an IPv6 client's whole /64 counting as one address (one host usually holds
/// a /64, so per-address buckets would let it take 2^64 of them).
pub type AddressRateLimiter = KeyedLimiter<std::net::IpAddr>;

impl AddressRateLimiter {
    pub fn for_addresses(per_sec: u32, burst: u32) -> AddressRateLimiter {
        KeyedLimiter::new(per_sec, burst, "this address")
    }

    /// Takes one token for `address`.
    pub fn check(&self, address: std::net::IpAddr) -> ApiResult<()> {
        self.take(&crate::auth::throttle::address_key(address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rate: u32, burst: u32) -> HttpConfig {
        HttpConfig { rate_limit_per_sec: rate, rate_limit_burst: burst, ..HttpConfig::default() }
    }

    #[test]
    fn burst_then_refusal_per_key() {
        let limiter = KeyRateLimiter::for_credentials(&config(1, 3));
        for _ in 0..3 {
            assert!(limiter.check("key:a").is_ok());
        }
        let refused = limiter.check("key:a").expect_err("the fourth request within a second is over the burst");
        assert_eq!(refused.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after_secs, Some(1));
        assert!(limiter.check("key:b").is_ok(), "another key has its own bucket");
    }

    #[test]
    fn addresses_have_their_own_buckets_and_a_v6_host_is_its_64() {
        let limiter = AddressRateLimiter::for_addresses(1, 2);
        let a: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
        let v6: std::net::IpAddr = "2001:db8::1".parse().expect("ip");
        let v6_same_64: std::net::IpAddr = "2001:db8::ffff:1".parse().expect("ip");
        assert!(limiter.check(a).is_ok() && limiter.check(a).is_ok());
        let refused = limiter.check(a).expect_err("over the burst");
        assert_eq!((refused.status.as_u16(), refused.retry_after_secs), (429, Some(1)));
        assert!(limiter.check("192.0.2.2".parse().expect("ip")).is_ok(), "another address");
        assert!(limiter.check(v6).is_ok() && limiter.check(v6_same_64).is_ok());
        assert!(limiter.check(v6_same_64).is_err(), "the same /64 shares one bucket");
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = KeyRateLimiter::for_credentials(&config(0, 0));
        assert!((0..10_000).all(|_| limiter.check("key:a").is_ok()));
    }
}
