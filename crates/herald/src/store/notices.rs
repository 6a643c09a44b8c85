//! Notices shown to players: localized text, a window, targeting.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::{
    Page, PageRequest, Store, StoreError, StoreResult, expect_one_row, fetch_page,
    windows::{Announce, Phase, Window, WindowColumns, event_data},
    with_pool, write_with_events,
};
use crate::events::{EventContext, NewEvent};

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub id: String,
    #[serde(skip)]
    pub project_id: String,
    /// `notice`, `banner` or `popup`: how the client shows it.
    pub kind: String,
    /// Higher first.
    pub priority: i64,
    /// Titles keyed by language code.
    #[schema(value_type = BTreeMap<String, String>)]
    pub title: Json<BTreeMap<String, String>>,
    /// Bodies keyed by language code.
    #[schema(value_type = BTreeMap<String, String>)]
    pub body: Json<BTreeMap<String, String>>,
    /// Client channels it is shown on (`PC`, `Android`); empty: all.
    #[schema(value_type = Vec<String>)]
    pub channels: Json<Vec<String>>,
    /// Sub-channels it is shown on; empty: all.
    #[schema(value_type = Vec<String>)]
    pub sub_channels: Json<Vec<String>>,
    /// Lowest client version it is shown to (inclusive), in the version lookup's order.
    pub min_version: Option<String>,
    /// Highest client version it is shown to (inclusive).
    pub max_version: Option<String>,
    pub enabled: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// What has been announced ([`Phase`]).
    #[serde(skip)]
    pub phase: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Whether it is shown now: enabled and inside its window. Computed.
    #[sqlx(skip)]
    pub active: bool,
}

impl Notice {
    pub fn window(&self) -> Window {
        Window { on: self.enabled, starts_at: self.starts_at, ends_at: self.ends_at }
    }

    pub fn phase(&self) -> Phase {
        Phase::parse(&self.phase)
    }

    pub fn at(mut self, now: DateTime<Utc>) -> Notice {
        self.active = self.window().active(now);
        self
    }
}

fn announced(ctx: &EventContext, (event_type, at): &Announce, n: &Notice) -> NewEvent {
    let data = match at {
        Some(at) => event_data(&n.clone().at(*at), Some(*at)),
        None => event_data(n, None),
    };
    NewEvent::about(ctx, event_type, (None, Some(&n.project_id)), "notice", &n.id, &data)
}

/// Where a notice keeps its window (see `store::windows`).
const WINDOWS: WindowColumns =
    WindowColumns { table: "notices", phase: "phase", on: "enabled", starts_at: "starts_at", ends_at: "ends_at" };

impl Store {
    pub async fn insert_notice(&self, ctx: &EventContext, n: &Notice, event_types: &[Announce]) -> StoreResult<()> {
        let events: Vec<NewEvent> = event_types.iter().map(|t| announced(ctx, t, n)).collect();
        write_with_events!(self, &events, |tx| {
            sqlx::query(
                "INSERT INTO notices (id, project_id, kind, priority, title, body, channels, sub_channels, \
                 min_version, max_version, enabled, starts_at, ends_at, phase, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind(&n.id)
            .bind(&n.project_id)
            .bind(&n.kind)
            .bind(n.priority)
            .bind(&n.title)
            .bind(&n.body)
            .bind(&n.channels)
            .bind(&n.sub_channels)
            .bind(&n.min_version)
            .bind(&n.max_version)
            .bind(n.enabled)
            .bind(n.starts_at)
            .bind(n.ends_at)
            .bind(&n.phase)
            .bind(n.created_at)
            .bind(n.updated_at)
            .execute(&mut *tx)
            .await?
        })?;
        self.schedule_changed();
        Ok(())
    }

    pub async fn get_notice(&self, project_id: &str, id: &str) -> StoreResult<Notice> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, Notice>("SELECT * FROM notices WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("notice"))
        })
    }

    /// The project's notices, oldest first; `active_at`: only those enabled and inside their
    /// window then.
    pub async fn list_notices(
        &self,
        project_id: &str,
        active_at: Option<DateTime<Utc>>,
        page: PageRequest,
    ) -> StoreResult<Page<Notice>> {
        with_pool!(self, read, |pool| {
            fetch_page(pool, "created_at, id", page, |q| {
                q.push("FROM notices WHERE project_id = ").push_bind(project_id);
                if let Some(now) = active_at {
                    q.push(" AND (enabled = TRUE AND (starts_at IS NULL OR starts_at <= ").push_bind(now);
                    q.push(") AND (ends_at IS NULL OR ").push_bind(now).push(" < ends_at))");
                }
            })
            .await
        })
    }

    /// Every notice of the project shown at `now` (before targeting), highest priority first.
    pub async fn notices_active_at(&self, project_id: &str, now: DateTime<Utc>) -> StoreResult<Vec<Notice>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, Notice>(
                "SELECT * FROM notices WHERE project_id = $1 AND enabled = TRUE \
                 AND (starts_at IS NULL OR starts_at <= $2) AND (ends_at IS NULL OR $2 < ends_at) \
                 ORDER BY priority DESC, created_at DESC, id LIMIT 200",
            )
            .bind(project_id)
            .bind(now)
            .fetch_all(pool)
            .await?)
        })
    }

    pub async fn update_notice(
        &self,
        ctx: &EventContext,
        n: &Notice,
        read_at: DateTime<Utc>,
        event_types: &[Announce],
    ) -> StoreResult<()> {
        let events: Vec<NewEvent> = event_types.iter().map(|t| announced(ctx, t, n)).collect();
        write_with_events!(self, &events, |tx| {
            let done = sqlx::query(
                "UPDATE notices SET kind = $1, priority = $2, title = $3, body = $4, channels = $5, sub_channels = $6, \
                 min_version = $7, max_version = $8, enabled = $9, starts_at = $10, ends_at = $11, phase = $12, \
                 updated_at = $13 WHERE id = $14 AND project_id = $15 AND updated_at = $16",
            )
            .bind(&n.kind)
            .bind(n.priority)
            .bind(&n.title)
            .bind(&n.body)
            .bind(&n.channels)
            .bind(&n.sub_channels)
            .bind(&n.min_version)
            .bind(&n.max_version)
            .bind(n.enabled)
            .bind(n.starts_at)
            .bind(n.ends_at)
            .bind(&n.phase)
            .bind(n.updated_at)
            .bind(&n.id)
            .bind(&n.project_id)
            .bind(read_at)
            .execute(&mut *tx)
            .await?;
            expect_one_row(done.rows_affected())?
        })?;
        self.schedule_changed();
        Ok(())
    }

    /// Deletes the notice if it is still the one read at `read_at`, writing `event_types`
    /// about its last state.
    pub async fn delete_notice(
        &self,
        ctx: &EventContext,
        n: &Notice,
        read_at: DateTime<Utc>,
        event_types: &[Announce],
    ) -> StoreResult<()> {
        let events: Vec<NewEvent> = event_types.iter().map(|t| announced(ctx, t, n)).collect();
        write_with_events!(self, &events, |tx| {
            let done = sqlx::query("DELETE FROM notices WHERE id = $1 AND project_id = $2 AND updated_at = $3")
                .bind(&n.id)
                .bind(&n.project_id)
                .bind(read_at)
                .execute(&mut *tx)
                .await?;
            expect_one_row(done.rows_affected())?
        })?;
        self.client_view_changed();
        Ok(())
    }

    /// Notices, in every project, with a transition due at `now`.
    pub async fn notices_due(&self, now: DateTime<Utc>) -> StoreResult<Vec<Notice>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, Notice>(sqlx::AssertSqlSafe(WINDOWS.due_query())).bind(now).fetch_all(pool).await?)
        })
    }

    /// The earliest pending start or active end of any notice.
    pub async fn next_notice_transition(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.next_window_transition(&WINDOWS).await
    }

    /// The first start or end after `now` among the project's enabled notices.
    pub async fn next_notice_boundary(
        &self,
        project_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let windows: Vec<Window> = with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT starts_at, ends_at FROM notices WHERE project_id = $1 AND enabled = TRUE \
                 AND (starts_at > $2 OR ends_at > $2)",
            )
            .bind(project_id)
            .bind(now)
            .fetch_all(pool)
            .await
        })?;
        Ok(windows.into_iter().flat_map(|(s, e)| [s, e]).flatten().filter(|t| *t > now).min())
    }
}
