//! Timed windows as the store keeps them (world maintenance, game-wide maintenance,
//! notices): the switch and bounds ([`Window`]), what has been announced ([`Phase`]), the
//! events a write carries ([`Announce`], [`event_data`]), and the queries every kind shares
//! (which rows have a transition due, and when the next one is; the kinds differ only in
//! their table's column names). When transitions fire is decided in `domain::schedule`.

use chrono::{DateTime, Utc};

use super::{Store, StoreResult, with_pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Pending,
    Active,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Pending => "pending",
            Phase::Active => "active",
        }
    }

    /// The stored form; anything unknown reads as `idle` (nothing announced).
    pub fn parse(s: &str) -> Phase {
        match s {
            "pending" => Phase::Pending,
            "active" => Phase::Active,
            _ => Phase::Idle,
        }
    }
}

/// A window as staff set it: the switch, and its optional bounds (open when missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub on: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

impl Window {
    pub const OFF: Window = Window { on: false, starts_at: None, ends_at: None };

    /// Whether the window is in effect at `now`: on, started, not ended.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.on && self.starts_at.is_none_or(|s| s <= now) && self.ends_at.is_none_or(|e| now < e)
    }
}

/// An event to write: its type, and for a start or end the time it took effect
/// (`effectiveAt` in the event's data).
pub type Announce = (&'static str, Option<DateTime<Utc>>);

/// An event's data: `state` with `effectiveAt` added when the event is a start or end.
pub fn event_data(state: &impl serde::Serialize, effective_at: Option<DateTime<Utc>>) -> serde_json::Value {
    let mut data = serde_json::to_value(state).unwrap_or(serde_json::Value::Null);
    if let (Some(at), Some(map)) = (effective_at, data.as_object_mut()) {
        map.insert("effectiveAt".into(), serde_json::json!(at));
    }
    data
}

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
