//! What operators ask of the database: readiness (`GET /readyz`) and the queue depths
//! `GET /metrics` reports. Each is one or two cheap statements, run only when asked.

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
