//! API keys. Only a SHA-256 hash of each key's secret is stored: keys are 256-bit random, so a
//! fast hash is enough to make a leaked table useless (argon2 is for low-entropy passwords).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::{Page, PageRequest, Store, StoreError, StoreResult, fetch_page, with_pool, write_with_events};
use crate::events::{EventContext, NewEvent, types};

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    /// `None`: an instance key (every organization).
    pub organization_id: Option<String>,
    /// `None`: an organization-level key (every project of the organization).
    pub project_id: Option<String>,
    pub name: String,
    #[serde(skip)]
    pub secret_hash: Vec<u8>,
    #[schema(value_type = Vec<String>)]
    pub scopes: Json<Vec<crate::vocab::Scope>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Inserts an [`ApiKey`] through `$conn`; evaluates to the `sqlx` result.
macro_rules! insert_key {
    ($conn:expr, $key:expr) => {{
        let key: &$crate::store::api_keys::ApiKey = $key;
        sqlx::query(
            "INSERT INTO api_keys (id, organization_id, project_id, name, secret_hash, scopes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.id)
        .bind(&key.organization_id)
        .bind(&key.project_id)
        .bind(&key.name)
        .bind(&key.secret_hash)
        .bind(&key.scopes)
        .bind(key.created_at)
        .execute($conn)
        .await
    }};
}
pub(crate) use insert_key;

pub(crate) fn key_event(ctx: &EventContext, event_type: &'static str, key: &ApiKey) -> NewEvent {
    NewEvent::about(
        ctx,
        event_type,
        (key.organization_id.as_deref(), key.project_id.as_deref()),
        "api_key",
        &key.id,
        key,
    )
}

impl Store {
    pub async fn insert_api_key(&self, ctx: &EventContext, key: &ApiKey) -> StoreResult<()> {
        let event = key_event(ctx, types::API_KEY_CREATED, key);
        write_with_events!(self, [&event], |tx| insert_key!(&mut *tx, key)?)?;
        Ok(())
    }

    pub async fn get_api_key(&self, id: &str) -> StoreResult<ApiKey> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, ApiKey>("SELECT * FROM api_keys WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("API key"))
        })
    }

    /// Keys of an organization (all, when `None`), optionally only those bound to `project`.
    pub async fn list_api_keys(
        &self,
        organization_id: Option<&str>,
        project_id: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<ApiKey>> {
        with_pool!(self, read, |pool| {
            fetch_page(pool, "created_at, id", page, |q| {
                q.push("FROM api_keys WHERE 1 = 1");
                if let Some(org) = organization_id {
                    q.push(" AND organization_id = ").push_bind(org);
                }
                if let Some(project) = project_id {
                    q.push(" AND project_id = ").push_bind(project);
                }
            })
            .await
        })
    }

    /// Marks a key revoked (idempotent: revoking twice keeps the first time).
    pub async fn revoke_api_key(&self, ctx: &EventContext, id: &str) -> StoreResult<ApiKey> {
        let now = super::now();
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let key = sqlx::query_as::<_, ApiKey>(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2 RETURNING *",
            )
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("API key"))?;
            super::events::insert_event!(&mut *tx, &key_event(ctx, types::API_KEY_REVOKED, &key))?;
            tx.commit().await?;
            self.notify_events();
            Ok(key)
        })
    }

    /// Records that a key was used at `at` (callers throttle this: it is not per request).
    pub async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        with_pool!(self, write, |pool| {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2").bind(at).bind(id).execute(pool).await?;
            Ok(())
        })
    }
}
