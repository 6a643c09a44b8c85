//! Client versions: which builds of the game may connect, per channel and sub-channel.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    Page, PageRequest, Store, StoreError, StoreResult, conflict_on_unique, expect_one_row, fetch_page, with_pool,
    write_with_events,
};
use crate::events::{EventContext, NewEvent, types};

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientVersion {
    pub id: String,
    #[serde(skip)]
    pub project_id: String,
    pub channel: String,
    pub sub_channel: String,
    pub version: String,
    #[schema(value_type = String)]
    pub status: crate::vocab::VersionStatus,
    pub update_url: Option<String>,
    pub notes: Option<String>,
    /// The normalized version (`domain::versions::version_key`), unique per channel and
    /// subChannel, so `1.10` and `1.10.0` cannot both be registered. `None` only on rows from
    /// before it existed, until the server's start fills them in.
    #[serde(skip)]
    pub version_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Clone)]
pub struct VersionFilter {
    pub channel: Option<String>,
    pub sub_channel: Option<String>,
    pub status: Option<String>,
}

const VERSION_TAKEN: &str = "this version is already registered for the channel and subChannel";

fn version_event(ctx: &EventContext, event_type: &'static str, v: &ClientVersion) -> NewEvent {
    NewEvent::about(ctx, event_type, (None, Some(&v.project_id)), "client_version", &v.id, v)
}

impl Store {
    pub async fn insert_client_version(&self, ctx: &EventContext, v: &ClientVersion) -> StoreResult<()> {
        let event = version_event(ctx, types::CLIENT_VERSION_CREATED, v);
        write_with_events!(self, [&event], |tx| {
            sqlx::query(
                "INSERT INTO client_versions (id, project_id, channel, sub_channel, version, status, update_url, \
                 notes, created_at, updated_at, version_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&v.id)
            .bind(&v.project_id)
            .bind(&v.channel)
            .bind(&v.sub_channel)
            .bind(&v.version)
            .bind(v.status)
            .bind(&v.update_url)
            .bind(&v.notes)
            .bind(v.created_at)
            .bind(v.updated_at)
            .bind(&v.version_key)
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique(VERSION_TAKEN))?
        })?;
        self.client_view_changed();
        Ok(())
    }

    pub async fn get_client_version(&self, project_id: &str, id: &str) -> StoreResult<ClientVersion> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, ClientVersion>("SELECT * FROM client_versions WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("client version"))
        })
    }

    /// Every version registered for one channel and sub-channel (for the lookup).
    pub async fn client_versions_of_channel(
        &self,
        project_id: &str,
        channel: &str,
        sub_channel: &str,
    ) -> StoreResult<Vec<ClientVersion>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, ClientVersion>(
                "SELECT * FROM client_versions WHERE project_id = $1 AND channel = $2 AND sub_channel = $3",
            )
            .bind(project_id)
            .bind(channel)
            .bind(sub_channel)
            .fetch_all(pool)
            .await?)
        })
    }

    pub async fn list_client_versions(
        &self,
        project_id: &str,
        f: &VersionFilter,
        page: PageRequest,
    ) -> StoreResult<Page<ClientVersion>> {
        with_pool!(self, read, |pool| {
            fetch_page(pool, "created_at, id", page, |q| {
                q.push("FROM client_versions WHERE project_id = ").push_bind(project_id);
                if let Some(channel) = &f.channel {
                    q.push(" AND channel = ").push_bind(channel.as_str());
                }
                if let Some(sub) = &f.sub_channel {
                    q.push(" AND sub_channel = ").push_bind(sub.as_str());
                }
                if let Some(status) = &f.status {
                    q.push(" AND status = ").push_bind(status.as_str());
                }
            })
            .await
        })
    }

    pub async fn update_client_version(
        &self,
        ctx: &EventContext,
        v: &ClientVersion,
        read_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let event = version_event(ctx, types::CLIENT_VERSION_UPDATED, v);
        write_with_events!(self, [&event], |tx| {
            let done = sqlx::query(
                "UPDATE client_versions SET channel = $1, sub_channel = $2, version = $3, status = $4, update_url = $5, \
                 notes = $6, updated_at = $7, version_key = $11 WHERE id = $8 AND project_id = $9 AND updated_at = $10",
            )
            .bind(&v.channel)
            .bind(&v.sub_channel)
            .bind(&v.version)
            .bind(v.status)
            .bind(&v.update_url)
            .bind(&v.notes)
            .bind(v.updated_at)
            .bind(&v.id)
            .bind(&v.project_id)
            .bind(read_at)
            .bind(&v.version_key)
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique(VERSION_TAKEN))?;
            expect_one_row(done.rows_affected())?
        })?;
        self.client_view_changed();
        Ok(())
    }

    /// `(id, version)` of every version whose `version_key` is not filled in yet.
    pub async fn client_versions_without_key(&self) -> StoreResult<Vec<(String, String)>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT id, version FROM client_versions WHERE version_key IS NULL ORDER BY created_at, id",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// Sets a version's `version_key`; `Conflict` if an equal version of its channel and
    /// subChannel holds that key. Writes no event: the version as clients see it is unchanged.
    pub async fn set_client_version_key(&self, id: &str, key: &str) -> StoreResult<()> {
        with_pool!(self, write, |pool| {
            sqlx::query("UPDATE client_versions SET version_key = $1 WHERE id = $2")
                .bind(key)
                .bind(id)
                .execute(pool)
                .await
                .map_err(conflict_on_unique(VERSION_TAKEN))?;
            Ok(())
        })
    }

    pub async fn delete_client_version(
        &self,
        ctx: &EventContext,
        project_id: &str,
        id: &str,
    ) -> StoreResult<ClientVersion> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let v = sqlx::query_as::<_, ClientVersion>(
                "DELETE FROM client_versions WHERE project_id = $1 AND id = $2 RETURNING *",
            )
            .bind(project_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("client version"))?;
            super::events::insert_event!(&mut *tx, &version_event(ctx, types::CLIENT_VERSION_DELETED, &v))?;
            tx.commit().await?;
            self.client_view_changed();
            self.notify_events();
            Ok(v)
        })
    }
}
