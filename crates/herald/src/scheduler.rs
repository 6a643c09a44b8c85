//! The scheduler: fires timed transitions (maintenance windows opening and closing, notices
//! published and ended) when they are due. Runs on every node; which node fires a transition
//! is decided in the database (see `domain::schedule`), so each fires once.
//!
//! It sleeps until the next due time it knows of, and at most [`POLL`]: a window set or
//! changed through another node (or a node that died before firing it) is seen within that.
//! Changes through this node wake it at once (`EventsWritten::scheduler`). Time comes from the
//! app's [`Clock`], so tests move a manual clock and wake it instead of sleeping.

use std::time::Duration;

use crate::{domain::schedule, store::Store, webhooks::Clock};

/// The longest the scheduler sleeps without looking at the database again.
pub const POLL: Duration = Duration::from_secs(2);
/// The shortest: a transition that cannot be written (the database refuses it) is retried at
/// this pace rather than in a loop.
const FLOOR: Duration = Duration::from_millis(20);

/// Runs until the task is aborted (a pass in progress then rolls back, and a later pass or
/// another node fires what it was firing).
pub async fn run(store: Store, clock: Clock) {
    let wake = store.events_written();
    loop {
        let wait = match pass(&store, &clock).await {
            Ok(Some(at)) => (at - clock.now()).to_std().unwrap_or_default().clamp(FLOOR, POLL),
            Ok(None) => POLL,
            Err(e) => {
                e.log_cause();
                tracing::warn!(error = %e, "scheduler cannot fire due transitions; retrying");
                POLL
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.scheduler.notified() => {}
        }
    }
}

/// Fires what is due now; returns when the next transition is due.
async fn pass(store: &Store, clock: &Clock) -> crate::domain::DomainResult<Option<chrono::DateTime<chrono::Utc>>> {
    schedule::fire_due(store, clock.now()).await?;
    schedule::next_due_at(store).await
}
