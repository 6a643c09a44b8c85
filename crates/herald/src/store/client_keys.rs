//! Client keys: the credential a game build carries for `/api/v1/client/*`. Stored like API
//! keys (only SHA-256 of a 256-bit secret), in their own table so that no route or list of
//! API keys can ever mistake one for the other.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::{Page, PageRequest, Store, StoreError, StoreResult, fetch_page, with_pool, write_with_events};
use crate::events::{EventContext, NewEvent, types};

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientKey {
    pub id: String,
    pub organization_id: String,
    pub project_id: String,
    pub name: String,
    #[serde(skip)]
    pub secret_hash: Vec<u8>,
    /// The client channels (`PC`, `iOS`, ...) the key may ask about; empty: any.
    #[schema(value_type = Vec<String>)]
    pub channels: Json<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn key_event(ctx: &EventContext, event_type: &'static str, key: &ClientKey) -> NewEvent {
    NewEvent::about(ctx, event_type, (Some(&key.organization_id), Some(&key.project_id)), "client_key", &key.id, key)
}

impl Store {
    pub async fn insert_client_key(&self, ctx: &EventContext, key: &ClientKey) -> StoreResult<()> {
        let event = key_event(ctx, types::CLIENT_KEY_CREATED, key);
        write_with_events!(self, [&event], |tx| {
            sqlx::query(
                "INSERT INTO client_keys (id, organization_id, project_id, name, secret_hash, channels, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&key.id)
            .bind(&key.organization_id)
            .bind(&key.project_id)
            .bind(&key.name)
            .bind(&key.secret_hash)
            .bind(&key.channels)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?
        })?;
        Ok(())
    }

    pub async fn get_client_key(&self, id: &str) -> StoreResult<ClientKey> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, ClientKey>("SELECT * FROM client_keys WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("client key"))
        })
    }

    pub async fn list_client_keys(&self, project_id: &str, page: PageRequest) -> StoreResult<Page<ClientKey>> {
        with_pool!(self, read, |pool| {
            fetch_page(pool, "created_at, id", page, |q| {
                q.push("FROM client_keys WHERE project_id = ").push_bind(project_id);
            })
            .await
        })
    }

    /// Marks the project's key `id` revoked (idempotent: revoking twice keeps the first time).
    pub async fn revoke_client_key(&self, ctx: &EventContext, project_id: &str, id: &str) -> StoreResult<ClientKey> {
        let now = super::now();
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let key = sqlx::query_as::<_, ClientKey>(
                "UPDATE client_keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2 AND project_id = $3 \
                 RETURNING *",
            )
            .bind(now)
            .bind(id)
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("client key"))?;
            super::events::insert_event!(&mut *tx, &key_event(ctx, types::CLIENT_KEY_REVOKED, &key))?;
            tx.commit().await?;
            self.notify_events();
            Ok(key)
        })
    }

    /// Records that a key was used at `at` (callers throttle this: it is not per request).
    pub async fn touch_client_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        with_pool!(self, write, |pool| {
            sqlx::query("UPDATE client_keys SET last_used_at = $1 WHERE id = $2")
                .bind(at)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
