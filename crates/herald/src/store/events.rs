//! The outbox table: written inside the transaction of the change that caused the event.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::{Store, StoreResult, script::Arg, with_pool};
use crate::events::NewEvent;

/// `INSERT INTO events (...) VALUES `, for one row or many; the values in [`event_args`] order.
macro_rules! insert_events_head {
    () => {
        "INSERT INTO events (id, organization_id, project_id, type, resource_type, resource_id, data, request_id, \
         actor, idempotency_key, sandbox, occurred_at) VALUES "
    };
}
pub(crate) const INSERT_EVENTS_HEAD: &str = insert_events_head!();
pub(crate) const INSERT_EVENT: &str =
    concat!(insert_events_head!(), "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)");

/// An event's values for [`INSERT_EVENTS_HEAD`], in column order.
pub(crate) fn event_args(e: NewEvent) -> [Arg; 12] {
    [
        Arg::Str(Some(e.id)),
        Arg::Str(e.organization_id),
        Arg::Str(e.project_id),
        Arg::Str(Some(e.event_type)),
        Arg::Str(e.resource_type),
        Arg::Str(e.resource_id),
        Arg::Json(e.data),
        Arg::Str(e.request_id),
        Arg::Str(e.actor),
        Arg::Str(e.idempotency_key),
        Arg::Bool(e.sandbox),
        Arg::Time(Some(e.occurred_at)),
    ]
}

/// Inserts `$event` (a `&NewEvent`) through `$conn` (a transaction), as part of its change.
macro_rules! insert_event {
    ($conn:expr, $event:expr) => {{
        let e: &$crate::events::NewEvent = $event;
        sqlx::query($crate::store::events::INSERT_EVENT)
            .bind(&e.id)
            .bind(&e.organization_id)
            .bind(&e.project_id)
            .bind(&e.event_type)
            .bind(&e.resource_type)
            .bind(&e.resource_id)
            .bind(sqlx::types::Json(&e.data))
            .bind(&e.request_id)
            .bind(&e.actor)
            .bind(&e.idempotency_key)
            .bind(e.sandbox)
            .bind(e.occurred_at)
            .execute($conn)
            .await
    }};
}
pub(crate) use insert_event;

/// The columns of [`EventRow`], for `SELECT {EVENT_COLUMNS} FROM events`.
pub(crate) const EVENT_COLUMNS: &str = "seq, id, organization_id, project_id, type, resource_type, resource_id, data, \
                                        request_id, actor, idempotency_key, sandbox, occurred_at";

/// An event as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub id: String,
    pub organization_id: Option<String>,
    pub project_id: Option<String>,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub data: Json<Value>,
    pub request_id: Option<String>,
    pub actor: Option<String>,
    pub idempotency_key: Option<String>,
    pub sandbox: bool,
    pub occurred_at: DateTime<Utc>,
}

impl Store {
    /// Events about one resource, oldest first.
    pub async fn events_for_resource(&self, resource_type: &str, resource_id: &str) -> StoreResult<Vec<EventRow>> {
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM events WHERE resource_type = $1 AND resource_id = $2 ORDER BY seq");
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(sql))
                .bind(resource_type)
                .bind(resource_id)
                .fetch_all(pool)
                .await?)
        })
    }

    /// How many events the outbox holds in all.
    pub async fn count_events(&self) -> StoreResult<i64> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events").fetch_one(pool).await?)
        })
    }
}
