//! The outbox table: written inside the transaction of the change that caused the event.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::{Store, StoreError, StoreResult, script::Arg, with_pool};
use crate::events::NewEvent;

/// `INSERT INTO events (...) `, for one row or many (`VALUES` follows); the values in
/// [`event_args`] order.
macro_rules! insert_events_head {
    () => {
        "INSERT INTO events (id, organization_id, project_id, type, resource_type, resource_id, data, request_id, \
         actor, idempotency_key, sandbox, occurred_at) "
    };
}
pub(crate) const INSERT_EVENTS_HEAD: &str = insert_events_head!();
pub(crate) const INSERT_EVENT: &str =
    concat!(insert_events_head!(), "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)");
/// [`INSERT_EVENT`] answering with the event's id and sequence number (taken at insert), so a
/// write need not read its events back. By id, because a multi-row insert's `RETURNING` rows
/// come in no promised order.
pub(crate) const INSERT_EVENT_RETURNING: &str =
    concat!(insert_events_head!(), "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id, seq");

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

/// `sqlx::query($sql)` (an insert taking [`event_args`]' values) with the values of `$event`
/// (a `&NewEvent`) bound.
macro_rules! bind_event {
    ($sql:expr, $event:expr) => {{
        let e: &$crate::events::NewEvent = $event;
        sqlx::query($sql)
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
    }};
}
pub(crate) use bind_event;

/// Inserts `$event` (a `&NewEvent`) through `$conn` (a transaction), as part of its change.
macro_rules! insert_event {
    ($conn:expr, $event:expr) => {
        $crate::store::events::bind_event!($crate::store::events::INSERT_EVENT, $event).execute($conn).await
    };
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

impl EventRow {
    /// The row `e` became when it was stored with sequence number `seq`.
    pub fn stored(e: NewEvent, seq: i64) -> EventRow {
        EventRow {
            seq,
            id: e.id,
            organization_id: e.organization_id,
            project_id: e.project_id,
            event_type: e.event_type,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            data: Json(e.data),
            request_id: e.request_id,
            actor: e.actor,
            idempotency_key: e.idempotency_key,
            sandbox: e.sandbox,
            occurred_at: e.occurred_at,
        }
    }
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

/// Where the real-time feed stands in the outbox (see [`Store::feed_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedCursor {
    /// SQLite: the last `seq` read. One writer commits events in `seq` order.
    Seq(i64),
    /// PostgreSQL: every transaction below `from_xid` has been read; of those from `from_xid`
    /// up to (not including) `to_xid`, which had all ended when the window was opened, the
    /// events after `after_seq`. `to_xid == from_xid` when no window is open.
    Xid { from_xid: u64, to_xid: u64, after_seq: i64 },
}

impl FeedCursor {
    /// PostgreSQL: the present, as of a snapshot whose oldest running transaction is `xmin`.
    pub(super) fn at_xmin(xmin: u64) -> FeedCursor {
        FeedCursor::Xid { from_xid: xmin, to_xid: xmin, after_seq: 0 }
    }
}

impl Store {
    /// The feed's starting point: the present (events already committed are not read).
    pub async fn feed_start(&self) -> StoreResult<FeedCursor> {
        match self.backend() {
            super::Backend::Sqlite { read, .. } => {
                let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events").fetch_one(read).await?;
                Ok(FeedCursor::Seq(seq.unwrap_or(0)))
            }
            super::Backend::Postgres(pool) => {
                let xmin = snapshot_xmin(pool).await?;
                Ok(FeedCursor::at_xmin(xmin))
            }
        }
    }

    /// Up to `limit` events committed after `cursor`, in order, and the cursor after them.
    /// Never returns an event before its transaction committed, and (on PostgreSQL, where
    /// `seq` is taken at insert, not at commit) never steps past one that commits late: it
    /// reads only windows of transactions that have all ended.
    pub async fn feed_next(&self, cursor: FeedCursor, limit: i64) -> StoreResult<(Vec<EventRow>, FeedCursor)> {
        match (self.backend(), cursor) {
            (super::Backend::Sqlite { read, .. }, FeedCursor::Seq(after)) => {
                let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
                let rows = sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(sql))
                    .bind(after)
                    .bind(limit)
                    .fetch_all(read)
                    .await?;
                let next = rows.last().map_or(after, |e| e.seq);
                Ok((rows, FeedCursor::Seq(next)))
            }
            (super::Backend::Postgres(pool), FeedCursor::Xid { from_xid, to_xid, after_seq }) => {
                // A drained window: open the next one, up to what has ended by now.
                let (from_xid, to_xid, after_seq) = if after_seq == i64::MAX || from_xid == to_xid {
                    (to_xid, snapshot_xmin(pool).await?, 0)
                } else {
                    (from_xid, to_xid, after_seq)
                };
                if from_xid == to_xid {
                    return Ok((Vec::new(), FeedCursor::Xid { from_xid, to_xid, after_seq: 0 }));
                }
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE xid >= $1::text::xid8 AND xid < $2::text::xid8 AND \
                     seq > $3 ORDER BY seq LIMIT $4"
                );
                let rows = sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(sql))
                    .bind(from_xid.to_string())
                    .bind(to_xid.to_string())
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                // A short page drains the window; mark it so the next call opens a new one.
                let after_seq = match rows.last() {
                    Some(last) if i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit => last.seq,
                    _ => i64::MAX,
                };
                Ok((rows, FeedCursor::Xid { from_xid, to_xid, after_seq }))
            }
            _ => Err(StoreError::Conflict("feed cursor of another backend".into())),
        }
    }
}

/// The oldest transaction still running anywhere in the cluster: every transaction below it
/// has committed or aborted.
pub(super) const SNAPSHOT_XMIN: &str = "pg_snapshot_xmin(pg_current_snapshot())::text";

async fn snapshot_xmin(pool: &sqlx::PgPool) -> StoreResult<u64> {
    let xmin: String =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {SNAPSHOT_XMIN}"))).fetch_one(pool).await?;
    parse_xmin(&xmin)
}

/// A [`SNAPSHOT_XMIN`] as read.
pub(super) fn parse_xmin(xmin: &str) -> StoreResult<u64> {
    xmin.parse().map_err(|_| StoreError::Conflict(format!("unexpected snapshot xmin {xmin:?}")))
}
