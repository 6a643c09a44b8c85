//! Who is calling: API keys and admin JWTs become a [`Principal`], which carries the caller's
//! reach (instance, organization or project) and scopes. Handlers ask it before acting.

pub mod client;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod throttle;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::TimeDelta;

use crate::{
    error::{ApiError, ApiResult},
    store::{Store, StoreError, api_keys::ApiKey, orgs::Project},
};

/// Every scope a key may hold. `admin` implies all of them; `x:write` implies `x:read`.
pub const SCOPES: &[&str] = &[
    "admin",
    "users:read",
    "users:write",
    "worlds:read",
    "worlds:write",
    "versions:read",
    "versions:write",
    "webhooks:read",
    "webhooks:write",
    "events:read",
    "events:publish",
    "chat:read",
    "chat:write",
    "metrics:read",
];

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
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| {
            s == "admin"
                || s == scope
                || (scope.ends_with(":read")
                    && s.strip_suffix(":write").is_some_and(|p| Some(p) == scope.strip_suffix(":read")))
        })
    }

    /// 403 unless the caller holds `scope`.
    pub fn require(&self, scope: &str) -> ApiResult<()> {
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
/// read per request. Entries live `ttl`; a revocation or deletion on this node forgets them
/// at once.
pub struct RecentKeys<K> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Arc<K>, Instant)>>,
}

impl<K> RecentKeys<K> {
    pub fn new(ttl: Duration) -> Self {
        RecentKeys { ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<K>, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &str) -> Option<Arc<K>> {
        self.lock().get(id).filter(|(_, at)| at.elapsed() < self.ttl).map(|(k, _)| k.clone())
    }

    fn put(&self, id: &str, key: Arc<K>) {
        let mut entries = self.lock();
        if entries.len() > 100_000 {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        entries.insert(id.to_owned(), (key, Instant::now()));
    }

    /// Forgets a key (after it was revoked on this node).
    pub fn invalidate(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Forgets every key `gone` says belongs to something deleted on this node.
    fn forget(&self, gone: impl Fn(&K) -> bool) {
        self.lock().retain(|_, (key, _)| !gone(key));
    }
}

/// What [`RecentKeys::verify`] needs of a stored key (an API key or a client key).
pub trait StoredKey: Clone {
    fn secret_hash(&self) -> &[u8];
    fn is_revoked(&self) -> bool;
    fn last_used_at(&self) -> Option<chrono::DateTime<chrono::Utc>>;
    fn set_last_used_at(&mut self, at: chrono::DateTime<chrono::Utc>);
}

impl<K: StoredKey> RecentKeys<K> {
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
