//! Time at the precision both backends store. Ground floor: imports nothing of the crate, so
//! `events` and `store` both use it without importing each other.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// The current time at the precision both backends store (microseconds), so a value read
/// back equals the value written.
pub fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// The `updated_at` for a change of a row last updated at `previous`: now, but always
/// later than `previous`, so the optimistic check of a concurrent writer never matches.
pub fn next_updated_at(previous: DateTime<Utc>) -> DateTime<Utc> {
    now().max(previous + TimeDelta::microseconds(1))
}

pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}
