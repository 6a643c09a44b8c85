//! The queries every kind of timed window shares (world maintenance, game-wide maintenance,
//! notices; see `domain::schedule`): which rows have a transition due, and when the next one
//! is. The kinds differ only in their table's column names.

use chrono::{DateTime, Utc};

use super::{Store, StoreResult, with_pool};

/// Where a kind of window keeps its switch, bounds and announced phase.
pub(crate) struct WindowColumns {
    pub table: &'static str,
    pub phase: &'static str,
    pub on: &'static str,
    pub starts_at: &'static str,
    pub ends_at: &'static str,
}

impl WindowColumns {
    /// `SELECT *` of the rows with a transition due at `$1`: a pending window switched on and
    /// started, or an active one ended; oldest change first, 500 at a time.
    pub fn due_query(&self) -> String {
        let WindowColumns { table, phase, on, starts_at, ends_at } = self;
        format!(
            "SELECT * FROM {table} WHERE ({phase} = 'pending' AND {on} = TRUE AND ({starts_at} IS NULL OR \
             {starts_at} <= $1)) OR ({phase} = 'active' AND {ends_at} IS NOT NULL AND {ends_at} <= $1) \
             ORDER BY updated_at LIMIT 500"
        )
    }
}

impl Store {
    /// The earliest pending start or active end among the windows of `w`.
    pub(crate) async fn next_window_transition(&self, w: &WindowColumns) -> StoreResult<Option<DateTime<Utc>>> {
        let WindowColumns { table, phase, on, starts_at, ends_at } = w;
        let start_sql = format!(
            "SELECT {starts_at} FROM {table} WHERE {phase} = 'pending' AND {on} = TRUE AND {starts_at} IS NOT NULL \
             ORDER BY {starts_at} LIMIT 1"
        );
        let end_sql = format!(
            "SELECT {ends_at} FROM {table} WHERE {phase} = 'active' AND {ends_at} IS NOT NULL ORDER BY {ends_at} LIMIT 1"
        );
        with_pool!(self, read, |pool| {
            let start: Option<DateTime<Utc>> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(start_sql)).fetch_optional(pool).await?;
            let end: Option<DateTime<Utc>> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(end_sql)).fetch_optional(pool).await?;
            Ok([start, end].into_iter().flatten().min())
        })
    }
}
