//! Who is calling: API keys and admin JWTs become a [`Principal`], which carries the caller's
//! reach (instance, organization or project) and scopes. Handlers ask it before acting.

pub mod client;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod throttle;

use std::{sync::Arc, time::Duration};

use chrono::TimeDelta;

use crate::{
    error::{ApiError, ApiResult},
    store::{Store, StoreError, api_keys::ApiKey, orgs::Project},
};

pub use crate::vocab::Scope;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    ApiKey { id: String },
    Admin { id: String },
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// `None` for an instance key, which reaches every organization.
    pub organization_id: Option<String>,
    /// `Some` for a key bound to one project.
    pub project_id: Option<String>,
    pub scopes: Vec<Scope>,
}

impl Principal {
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s.grants(scope))
    }

    /// 403 unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this credential lacks the scope `{scope}`")))
        }
    }

    /// How events name this caller: `key:<id>` or `admin:<id>`.
    pub fn actor(&self) -> String {
        match &self.kind {
            PrincipalKind::ApiKey { id } => format!("key:{id}"),
            PrincipalKind::Admin { id } => format!("admin:{id}"),
        }
    }

    pub fn is_instance(&self) -> bool {
        self.organization_id.is_none()
    }

    /// Whether the caller may act on organization `org_id` as a whole (not just one project).
    pub fn reaches_organization(&self, org_id: &str) -> bool {
        self.project_id.is_none() && self.organization_id.as_deref().is_none_or(|own| own == org_id)
    }

    /// Whether the caller may act inside `project`.
    pub fn reaches_project(&self, project: &Project) -> bool {
        match (&self.organization_id, &self.project_id) {
            (_, Some(own)) => own == &project.id,
            (Some(org), None) => org == &project.organization_id,
            (None, None) => true,
        }
    }
}

/// Keys (API keys, client keys) looked up recently, by id, so a busy key costs no database
/// read per request. Entries live `ttl` (`auth.key_cache_ttl_secs`; 0: no caching); a
/// revocation or deletion on this node forgets them at once. A `moka` cache: bounded (least
/// recently and least frequently used keys go first) and expired by time to live.
pub struct RecentKeys<K> {
    ttl: Duration,
    entries: moka::sync::Cache<String, Arc<K>>,
}

/// Keys kept at most per cache.
const MAX_KEYS: u64 = 100_000;

impl<K: Send + Sync + 'static> RecentKeys<K> {
    pub fn new(ttl: Duration) -> Self {
        RecentKeys { ttl, entries: moka::sync::Cache::builder().max_capacity(MAX_KEYS).time_to_live(ttl).build() }
    }

    fn get(&self, id: &str) -> Option<Arc<K>> {
        self.entries.get(id)
    }

    fn put(&self, id: &str, key: Arc<K>) {
        if !self.ttl.is_zero() {
            self.entries.insert(id.to_owned(), key);
        }
    }

    /// Forgets a key (after it was revoked on this node).
    pub fn invalidate(&self, id: &str) {
        self.entries.invalidate(id);
    }

    /// Forgets every key `gone` says belongs to something deleted on this node. A walk over
    /// the entries: deletions are rare, and every matching key is gone when this returns
    /// (moka's `invalidate_entries_if` would need the cache built to support closures).
    fn forget(&self, gone: impl Fn(&K) -> bool) {
        for (id, key) in &self.entries {
            if gone(&key) {
                self.entries.invalidate(&*id);
            }
        }
    }
}

/// What [`RecentKeys::verify`] needs of a stored key (an API key or a client key).
pub trait StoredKey: Clone {
    fn secret_hash(&self) -> &[u8];
    fn is_revoked(&self) -> bool;
    fn last_used_at(&self) -> Option<chrono::DateTime<chrono::Utc>>;
    fn set_last_used_at(&mut self, at: chrono::DateTime<chrono::Utc>);
}

impl<K: StoredKey + Send + Sync + 'static> RecentKeys<K> {
    /// Checks the `secret` presented for key `id` (a `what`: "API key", "client key"): from
    /// this cache, else read with `fetch`. Unknown id and wrong secret give the same answer,
    /// so a caller learns nothing about which keys exist. A key used for the first time in
    /// [`TOUCH_EVERY`] has its `last_used_at` written with `touch`.
    async fn verify<F, T>(
        &self,
        what: &str,
        id: &str,
        secret: &str,
        fetch: impl FnOnce() -> F,
        touch: impl FnOnce(chrono::DateTime<chrono::Utc>) -> T,
    ) -> ApiResult<Arc<K>>
    where
        F: Future<Output = crate::store::StoreResult<K>>,
        T: Future<Output = crate::store::StoreResult<()>>,
    {
        let invalid = || ApiError::unauthorized(format!("invalid {what}"));
        let key = match self.get(id) {
            Some(key) => key,
            None => {
                let key = match fetch().await {
                    Ok(key) => Arc::new(key),
                    Err(StoreError::NotFound(_)) => return Err(invalid()),
                    Err(e) => return Err(e.into()),
                };
                self.put(id, key.clone());
                key
            }
        };
        if !keys::verify(secret, key.secret_hash()) {
            return Err(invalid());
        }
        if key.is_revoked() {
            return Err(ApiError::unauthorized(format!("this {what} has been revoked")));
        }
        let now = crate::store::now();
        if key.last_used_at().is_none_or(|at| now - at > TOUCH_EVERY) {
            touch(now).await?;
            let mut touched = (*key).clone();
            touched.set_last_used_at(now);
            let touched = Arc::new(touched);
            self.put(id, touched.clone());
            return Ok(touched);
        }
        Ok(key)
    }
}

impl StoredKey for ApiKey {
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

/// API keys looked up recently (see [`RecentKeys`]).
pub type KeyCache = RecentKeys<ApiKey>;

/// How often `last_used_at` is written for a busy key.
const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

impl KeyCache {
    /// Forgets every key of a project (after the project, and with it its keys, was deleted
    /// on this node).
    pub fn invalidate_project(&self, project_id: &str) {
        self.forget(|key| key.project_id.as_deref() == Some(project_id));
    }

    /// Forgets every key of an organization (after it was deleted on this node).
    pub fn invalidate_organization(&self, organization_id: &str) {
        self.forget(|key| key.organization_id.as_deref() == Some(organization_id));
    }

    /// Verifies a presented API key and returns its principal. Unknown id and wrong secret
    /// give the same answer, so a caller learns nothing about which keys exist.
    pub async fn authenticate(&self, store: &Store, presented: &str) -> ApiResult<Principal> {
        let (id, secret) = keys::parse(presented).ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
        let key =
            self.verify("API key", id, secret, || store.get_api_key(id), |now| store.touch_api_key(id, now)).await?;
        Ok(Principal {
            kind: PrincipalKind::ApiKey { id: key.id.clone() },
            organization_id: key.organization_id.clone(),
            project_id: key.project_id.clone(),
            scopes: key.scopes.0.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keys_forget_what_was_deleted_and_expire() {
        let keys: RecentKeys<&str> = RecentKeys::new(Duration::from_secs(60));
        keys.put("a", Arc::new("project-1"));
        keys.put("b", Arc::new("project-2"));
        keys.forget(|project| *project == "project-1");
        assert!(keys.get("a").is_none(), "a deleted project's key is forgotten at once");
        assert_eq!(keys.get("b").as_deref(), Some(&"project-2"));
        keys.invalidate("b");
        assert!(keys.get("b").is_none(), "a revoked key is forgotten at once");

        let brief: RecentKeys<&str> = RecentKeys::new(Duration::from_millis(20));
        brief.put("a", Arc::new("project-1"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(brief.get("a").is_none(), "an entry lives key_cache_ttl_secs");
        let off: RecentKeys<&str> = RecentKeys::new(Duration::ZERO);
        off.put("a", Arc::new("project-1"));
        assert!(off.get("a").is_none(), "a TTL of 0 keeps nothing");
    }
}
