//! Client keys as credentials: looked up, checked and cached like API keys (see
//! [`super::KeyCache`]), but never turned into a [`super::Principal`]: a client key reaches
//! only the `/api/v1/client/*` routes (`api::client`), which take it through their own
//! extractor.

use std::sync::Arc;

use super::{RecentKeys, TOUCH_EVERY, keys};
use crate::{
    error::{ApiError, ApiResult},
    store::{Store, StoreError, client_keys::ClientKey},
};

/// Client keys looked up recently (see [`RecentKeys`]).
pub type ClientKeyCache = RecentKeys<ClientKey>;

impl ClientKeyCache {
    /// Forgets every key of a project (after the project was deleted on this node).
    pub fn invalidate_project(&self, project_id: &str) {
        self.forget(|key| key.project_id == project_id);
    }

    /// Forgets every key of an organization (after it was deleted on this node).
    pub fn invalidate_organization(&self, organization_id: &str) {
        self.forget(|key| key.organization_id == organization_id);
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
                self.put(&key.id, key.clone());
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
            self.put(&touched.id, touched.clone());
            return Ok(touched);
        }
        Ok(key)
    }
}
