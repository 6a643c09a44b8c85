//! What operators ask of the database: readiness (`GET /readyz`) and the queue depths
//! `GET /metrics` reports. Each is one or two cheap statements, run only when asked. And
//! whether writes are being refused for want of storage ([`WriteHealth`]).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use super::{Backend, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, Store, StoreResult, with_pool};

/// The schema as this binary sees it.
#[derive(Debug)]
pub struct SchemaState {
    /// Migrations this binary carries that the database has not applied (successfully).
    pub missing: Vec<i64>,
}

/// How much work is waiting.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Events committed but not yet fanned out to deliveries.
    pub pending_events: i64,
    /// `occurredAt` of the oldest of them.
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// Deliveries waiting for an attempt, due now or later.
    pub pending_deliveries: i64,
    /// Endpoints Herald disabled itself (410, or failing too long).
    pub disabled_endpoints: i64,
}

impl Store {
    /// Reads which migrations are applied. One query: it also proves the database answers.
    pub async fn schema_state(&self) -> StoreResult<SchemaState> {
        let applied: Vec<i64> = with_pool!(self, read, |pool| {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE").fetch_all(pool).await?
        });
        let expected = match self.backend() {
            Backend::Sqlite { .. } => &SQLITE_MIGRATIONS,
            Backend::Postgres(_) => &POSTGRES_MIGRATIONS,
        };
        let missing = expected.iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect();
        Ok(SchemaState { missing })
    }

    pub async fn queue_stats(&self) -> StoreResult<QueueStats> {
        // SQLite fans out in `seq` order behind a cursor (migration sqlite/0003); PostgreSQL
        // keeps a queue table (postgres/0003).
        let pending_sql = match self.backend() {
            Backend::Sqlite { .. } => {
                "SELECT COUNT(*), MIN(occurred_at) FROM events WHERE seq > (SELECT seq FROM fanout_cursor)"
            }
            Backend::Postgres(_) => {
                "SELECT (SELECT COUNT(*) FROM outbox_pending), \
                 (SELECT occurred_at FROM events WHERE seq = (SELECT MIN(seq) FROM outbox_pending))"
            }
        };
        with_pool!(self, read, |pool| {
            let (pending_events, oldest_pending_at): (i64, Option<DateTime<Utc>>) =
                sqlx::query_as(pending_sql).fetch_one(pool).await?;
            let (pending_deliveries, disabled_endpoints): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM deliveries WHERE status = 'pending'), \
                 (SELECT COUNT(*) FROM webhooks WHERE active = FALSE AND disabled_reason IS NOT NULL)",
            )
            .fetch_one(pool)
            .await?;
            Ok(QueueStats { pending_events, oldest_pending_at, pending_deliveries, disabled_endpoints })
        })
    }
}

/// Whether the database is refusing writes for want of storage or resources (a full disk:
/// SQLite's `SQLITE_FULL`, PostgreSQL's class 53). Reads still work then, so the readiness
/// query alone says "ready"; this remembers what writes met. Fed by the HTTP layer
/// (`api::ops::track`), which sees every write's outcome in one place.
#[derive(Default)]
pub struct WriteHealth {
    state: Mutex<WriteState>,
}

#[derive(Default)]
struct WriteState {
    last_refused: Option<Instant>,
    last_succeeded: Option<Instant>,
}

impl WriteHealth {
    /// A write was refused for want of storage.
    pub fn refused(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).last_refused = Some(Instant::now());
    }

    /// A write succeeded.
    pub fn succeeded(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).last_succeeded = Some(Instant::now());
    }

    /// How long ago writes were last refused, if that is the latest news about writes and
    /// happened within `hold`. A write that succeeds clears it at once (space came back); so
    /// does `hold` passing without news, since a node taken out of rotation gets no writes
    /// that could prove it healthy: it comes back and, if still full, drops out at the next
    /// refused write.
    pub fn refusing(&self, hold: Duration) -> Option<Duration> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let refused = state.last_refused?;
        if state.last_succeeded.is_some_and(|ok| ok > refused) {
            return None;
        }
        Some(refused.elapsed()).filter(|ago| *ago < hold)
    }
}
