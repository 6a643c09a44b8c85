//! A short-lived cache of serialized list responses, for the read every game client makes at
//! start: `GET /api/v1/game-worlds`.
//!
//! An entry is the exact JSON body of one (project, query), tagged with the store's change
//! generation for that kind of resource ([`crate::store::Store::worlds_generation`]) read
//! *before* the database was. A change made through this node bumps the generation after its
//! commit, so the next request misses and reads the new state. Changes made through another
//! node sharing the PostgreSQL database are seen when the entry expires (`http.list_cache_ms`,
//! 1 s by default; 0 turns the cache off). An entry never outlives the next maintenance
//! window boundary of a world it lists, because `inMaintenance` depends on the time, nor,
//! for a `maintenance` filter (which filters on `inMaintenance`), of any world of the project.

use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::{Expiry, sync::Cache};

/// Entries kept at most; past it, moka evicts the least used.
const MAX_ENTRIES: u64 = 10_000;

/// Keeps values of type `V` (the serialized body by default; `api::client` keeps its
/// prepared answers). A `moka` cache: bounded, each entry expiring after the TTL or its own
/// shorter `valid_for`.
pub struct ResponseCache<V = Bytes> {
    ttl: Duration,
    entries: Cache<String, Entry<V>>,
}

#[derive(Clone)]
struct Entry<V> {
    body: V,
    generation: u64,
    /// How long this entry lives: the TTL, or less (`put`'s `valid_for`).
    lives: Duration,
}

/// Expires each entry after its own `lives`, counted from its (re)insertion.
struct EntryLife;

impl<V> Expiry<String, Entry<V>> for EntryLife {
    fn expire_after_create(&self, _: &String, entry: &Entry<V>, _: Instant) -> Option<Duration> {
        Some(entry.lives)
    }

    fn expire_after_update(&self, _: &String, entry: &Entry<V>, _: Instant, _: Option<Duration>) -> Option<Duration> {
        Some(entry.lives)
    }
}

impl<V: Clone + Send + Sync + 'static> ResponseCache<V> {
    pub fn new(ttl: Duration) -> ResponseCache<V> {
        ResponseCache { ttl, entries: Cache::builder().max_capacity(MAX_ENTRIES).expire_after(EntryLife).build() }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The cached body for `key`, if it was made at `generation` and has not expired.
    pub fn get(&self, key: &str, generation: u64) -> Option<V> {
        let entry = self.entries.get(key)?;
        (entry.generation == generation).then_some(entry.body)
    }

    /// Keeps `body` for `key` for the cache's TTL, or less if `valid_for` is shorter.
    pub fn put(&self, key: String, generation: u64, body: V, valid_for: Option<Duration>) {
        if !self.enabled() {
            return;
        }
        let lives = valid_for.map_or(self.ttl, |v| v.min(self.ttl));
        self.entries.insert(key, Entry { body, generation, lives });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_serves_only_its_generation_until_it_expires() {
        let cache: ResponseCache = ResponseCache::new(Duration::from_secs(60));
        cache.put("k".into(), 3, Bytes::from_static(b"body"), None);
        assert_eq!(cache.get("k", 3).as_deref(), Some(&b"body"[..]));
        assert_eq!(cache.get("k", 4), None, "a change since makes it stale");
        cache.put("short".into(), 3, Bytes::from_static(b"x"), Some(Duration::ZERO));
        assert_eq!(cache.get("short", 3), None, "valid_for bounds the entry");
        let off: ResponseCache = ResponseCache::new(Duration::ZERO);
        off.put("k".into(), 1, Bytes::from_static(b"body"), None);
        assert_eq!(off.get("k", 1), None, "a TTL of 0 turns the cache off");
        let brief: ResponseCache = ResponseCache::new(Duration::from_millis(20));
        brief.put("k".into(), 1, Bytes::from_static(b"body"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(brief.get("k", 1), None, "an entry lives the TTL");
    }
}
