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

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use bytes::Bytes;

/// Entries kept at most; past it, expired entries are dropped, then everything if need be.
const MAX_ENTRIES: usize = 10_000;

/// Keeps values of type `V` (the serialized body by default; `api::client` keeps its
/// prepared answers).
pub struct ResponseCache<V = Bytes> {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry<V>>>,
}

struct Entry<V> {
    body: V,
    generation: u64,
    expires: Instant,
}

impl<V: Clone> ResponseCache<V> {
    pub fn new(ttl: Duration) -> ResponseCache<V> {
        ResponseCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The cached body for `key`, if it was made at `generation` and has not expired.
    pub fn get(&self, key: &str, generation: u64) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(key)?;
        (entry.generation == generation && Instant::now() < entry.expires).then(|| entry.body.clone())
    }

    /// Keeps `body` for `key` for the cache's TTL, or less if `valid_for` is shorter.
    pub fn put(&self, key: String, generation: u64, body: V, valid_for: Option<Duration>) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let expires = now + valid_for.map_or(self.ttl, |v| v.min(self.ttl));
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { body, generation, expires });
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
    }
}
