//! Client keys as credentials: looked up, checked and cached like API keys (see
//! [`super::KeyCache`]), but never turned into a [`super::Principal`]: a client key reaches
//! only the `/api/v1/client/*` routes (`api::client`), which take it through their own
//! extractor.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::TimeDelta;

use super::keys;
use crate::{
    error::{ApiError, ApiResult},
    store::{Store, StoreError, client_keys::ClientKey},
};

/// How often `last_used_at` is written for a busy key.
const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

/// Client keys looked up recently, so a busy key costs no database read per request.
pub struct ClientKeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Arc<ClientKey>, Instant)>>,
}

impl ClientKeyCache {
    pub fn new(ttl: Duration) -> Self {
        ClientKeyCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn get(&self, id: &str) -> Option<Arc<ClientKey>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(id).filter(|(_, at)| at.elapsed() < self.ttl).map(|(k, _)| k.clone())
    }

    fn put(&self, key: Arc<ClientKey>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > 100_000 {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        entries.insert(key.id.clone(), (key, Instant::now()));
    }

    /// Forgets a key (after it was revoked on this node).
    pub fn invalidate(&self, id: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Forgets every key of a project (after the project was deleted on this node).
    pub fn invalidate_project(&self, project_id: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, (key, _)| key.project_id != project_id);
    }

    /// Forgets every key of an organization (after it was deleted on this node).
    pub fn invalidate_organization(&self, organization_id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (key, _)| key.organization_id != organization_id);
    }

    /// Verifies a presented client key (`hc_...`). Unknown id and wrong secret give the same
    /// answer, so a caller learns nothing about which keys exist.
    pub async fn authenticate(&self, store: &Store, presented: &str) -> ApiResult<Arc<ClientKey>> {
        let invalid = || ApiError::unauthorized("invalid client key");
        let (id, secret) = keys::parse_client(presented).ok_or_else(invalid)?;
        let key = match self.get(id) {
            Some(key) => key,
            None => {
                let key = match store.get_client_key(id).await {
                    Ok(key) => Arc::new(key),
                    Err(StoreError::NotFound(_)) => return Err(invalid()),
                    Err(e) => return Err(e.into()),
                };
                self.put(key.clone());
                key
            }
        };
        if !keys::verify(secret, &key.secret_hash) {
            return Err(invalid());
        }
        if key.revoked_at.is_some() {
            return Err(ApiError::unauthorized("this client key has been revoked"));
        }
        let now = crate::store::now();
        if key.last_used_at.is_none_or(|at| now - at > TOUCH_EVERY) {
            store.touch_client_key(&key.id, now).await?;
            let mut touched = (*key).clone();
            touched.last_used_at = Some(now);
            let touched = Arc::new(touched);
            self.put(touched.clone());
            return Ok(touched);
        }
        Ok(key)
    }
}
