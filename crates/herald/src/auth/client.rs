//! Client keys as credentials: looked up, checked and cached like API keys (see
//! [`super::KeyCache`]), but never turned into a [`super::Principal`]: a client key reaches
//! only the `/api/v1/client/*` routes (`api::client`), which take it through their own
//! extractor.

use std::sync::Arc;

use super::{RecentKeys, StoredKey, keys};
use crate::{
    error::{ApiError, ApiResult},
    store::{Store, client_keys::ClientKey},
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
        let (id, secret) = keys::parse_client(presented).ok_or_else(|| ApiError::unauthorized("invalid client key"))?;
        self.verify("client key", id, secret, || store.get_client_key(id), |now| store.touch_client_key(id, now)).await
    }
}

impl StoredKey for ClientKey {
    fn secret_hash(&self) -> &[u8] {
        &self.secret_hash
    }

    fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    fn last_used_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.last_used_at
    }

    fn set_last_used_at(&mut self, at: chrono::DateTime<chrono::Utc>) {
        self.last_used_at = Some(at);
    }
}
