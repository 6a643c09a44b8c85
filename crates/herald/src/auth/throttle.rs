//! Failed admin logins, throttled per account and per client address with exponential
//! back-off (`auth.login_*` settings; docs/API.md "Admin login").
//!
//! After `free` failures in a row, each further failure blocks the next attempt for 1 s, 2 s,
//! 4 s, ... up to a cap; a success clears both counts. The two keys get different caps on
//! purpose: the address's is long (15 min by default), so one client guessing gets almost
//! nowhere; the account's is short (10 s), so an attacker cannot lock a real admin out by
//! failing on purpose: from an address of their own, the admin waits at most that long.
//! Someone guessing from many addresses still gets one guess per account per cap.
//!
//! Written by hand: `governor` (used for the request rate, `api::rate_limit`) keeps a steady
//! rate with a burst (GCRA) and has no notion of a delay that grows with each failure and
//! resets on success. Time comes from the caller (the server's clock, which tests move by
//! hand), so the schedule is tested without waiting.

use std::{collections::HashMap, hash::Hash, net::IpAddr, sync::Mutex, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::AuthConfig;

/// The failures of one key (an account or an address).
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures in a row since the last success (or since they were forgotten).
    failures: u32,
    /// No attempt before this.
    blocked_until: DateTime<Utc>,
}

/// How one kind of key backs off.
#[derive(Debug, Clone, Copy)]
struct Policy {
    /// Failures in a row that cost nothing.
    free: u32,
    /// The longest block; zero turns this kind of throttling off.
    max: TimeDelta,
    /// Failures are forgotten once this long has passed after their block with no new one.
    forget: TimeDelta,
}

impl Policy {
    /// The block after the `failures`-th failure in a row: none within `free`, then 1 s,
    /// doubling, up to `max`.
    fn delay(&self, failures: u32) -> TimeDelta {
        if failures <= self.free {
            return TimeDelta::zero();
        }
        let doublings = (failures - self.free - 1).min(30);
        TimeDelta::seconds(1i64 << doublings).min(self.max)
    }
}

/// One table of keys under one policy.
struct Table<K> {
    policy: Policy,
    entries: Mutex<HashMap<K, Entry>>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(policy: Policy) -> Self {
        Table { policy, entries: Mutex::new(HashMap::new()) }
    }

    /// An entry quiet for `forget` after its block ended is forgotten: its failures were long
    /// ago. (Measured from the block's end, so a key at the cap cannot reset itself by
    /// waiting out the block alone.)
    fn stale(&self, entry: &Entry, now: DateTime<Utc>) -> bool {
        now >= entry.blocked_until + self.policy.forget
    }

    fn wait(&self, key: &K, now: DateTime<Utc>) -> TimeDelta {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).map_or(TimeDelta::zero(), |e| (e.blocked_until - now).max(TimeDelta::zero()))
    }

    /// Records a failure; returns the failures in a row.
    fn failed(&self, key: K, now: DateTime<Utc>) -> u32 {
        if self.policy.max <= TimeDelta::zero() {
            return 0;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = Entry { failures: 0, blocked_until: now };
        let entry = entries.entry(key).or_insert(fresh);
        if self.stale(entry, now) {
            *entry = fresh;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.blocked_until = now + self.policy.delay(entry.failures);
        entry.failures
    }

    fn clear(&self, key: &K) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    fn forget_idle(&self, now: DateTime<Utc>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, e| !self.stale(e, now));
        entries.shrink_to_fit();
    }
}

/// Failed logins per account (the email as given, lower-cased) and per client address.
pub struct LoginThrottle {
    accounts: Table<String>,
    addresses: Table<IpAddr>,
}

/// What [`LoginThrottle::failed`] counted: failures in a row of the account and the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    pub account: u32,
    pub address: u32,
}

impl LoginThrottle {
    pub fn new(cfg: &AuthConfig) -> Self {
        let secs = |s: u64| TimeDelta::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000).min(i64::MAX / 1000));
        let free = cfg.login_free_attempts;
        // Both kinds remember failures as long as the longer cap: an account under a steady
        // attack from many addresses stays at its (short) cap instead of starting afresh
        // with `free` attempts whenever the attacker pauses a little longer than that cap.
        let forget = secs(cfg.login_max_account_delay_secs.max(cfg.login_max_address_delay_secs));
        LoginThrottle {
            accounts: Table::new(Policy { free, max: secs(cfg.login_max_account_delay_secs), forget }),
            addresses: Table::new(Policy { free, max: secs(cfg.login_max_address_delay_secs), forget }),
        }
    }

    /// `None` when an attempt may go ahead; otherwise how long to wait (the longer of the
    /// account's and the address's blocks).
    pub fn check(&self, account: &str, address: Option<IpAddr>, now: DateTime<Utc>) -> Option<Duration> {
        let account = self.accounts.wait(&account_key(account), now);
        let address = address.map_or(TimeDelta::zero(), |a| self.addresses.wait(&address_key(a), now));
        let wait = account.max(address);
        (wait > TimeDelta::zero()).then(|| wait.to_std().unwrap_or_default())
    }

    pub fn failed(&self, account: &str, address: Option<IpAddr>, now: DateTime<Utc>) -> Failures {
        Failures {
            account: self.accounts.failed(account_key(account), now),
            address: address.map_or(0, |a| self.addresses.failed(address_key(a), now)),
        }
    }

    pub fn succeeded(&self, account: &str, address: Option<IpAddr>) {
        self.accounts.clear(&account_key(account));
        if let Some(a) = address {
            self.addresses.clear(&address_key(a));
        }
    }

    /// Drops entries whose failures are forgotten, so memory follows recent failures (an
    /// attacker spraying made-up emails is held back by the address table meanwhile).
    pub fn forget_idle(&self, now: DateTime<Utc>) {
        self.accounts.forget_idle(now);
        self.addresses.forget_idle(now);
    }
}

fn account_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// An IPv4 address as such (also when it arrives IPv4-mapped), an IPv6 address by its /64:
/// one host usually holds a whole /64, so counting single IPv6 addresses would count nothing.
pub(crate) fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(free: u32, account_max: u64, address_max: u64) -> LoginThrottle {
        LoginThrottle::new(&AuthConfig {
            login_free_attempts: free,
            login_max_account_delay_secs: account_max,
            login_max_address_delay_secs: address_max,
            ..AuthConfig::default()
        })
    }

    #[test]
    fn back_off_doubles_to_each_cap_and_success_clears() {
        let t = throttle(2, 4, 60);
        let now = Utc::now();
        let a = Some("192.0.2.1".parse().expect("ip"));
        let mut waits = Vec::new();
        for _ in 0..7 {
            t.failed("Admin@Example.com", a, now);
            waits.push(t.check("admin@example.com ", a, now).map_or(0, |w| w.as_secs()));
        }
        // Two free, then 1, 2, 4, 8, 16 s: the address's doubling (the account's stops at 4).
        assert_eq!(waits, [0, 0, 1, 2, 4, 8, 16]);
        let b = Some("198.51.100.7".parse().expect("ip"));
        assert_eq!(t.check("admin@example.com", b, now), Some(Duration::from_secs(4)), "the account's cap");
        t.succeeded("admin@example.com", a);
        assert_eq!(t.check("admin@example.com", a, now), None);
    }

    #[test]
    fn forgotten_after_a_quiet_cap_and_zero_turns_it_off() {
        let t = throttle(0, 10, 10);
        let now = Utc::now();
        for _ in 0..3 {
            t.failed("a@example.com", None, now);
        }
        assert_eq!(t.check("a@example.com", None, now), Some(Duration::from_secs(4)));
        let later = now + TimeDelta::seconds(4 + 10);
        assert_eq!(t.failed("a@example.com", None, later).account, 1, "counting starts again");
        t.forget_idle(later + TimeDelta::seconds(11));
        assert!(t.accounts.entries.lock().expect("lock").is_empty());

        let off = throttle(0, 0, 0);
        let a = Some("192.0.2.1".parse().expect("ip"));
        assert!((0..100).all(|_| off.failed("a@example.com", a, now) == Failures { account: 0, address: 0 }));
        assert_eq!(off.check("a@example.com", a, now), None);
    }

    #[test]
    fn addresses_count_by_ipv4_or_ipv6_slash_64() {
        let key = |s: &str| address_key(s.parse().expect("ip"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }
}
