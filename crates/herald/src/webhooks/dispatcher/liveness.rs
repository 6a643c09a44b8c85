//! Whether this node's dispatcher loop is alive, for `GET /readyz`.

use super::*;

/// Whether this node's dispatcher loop is alive, for `GET /readyz`: the loop beats once per
/// round; a stopped (or panicked) loop says so through a drop guard.
#[derive(Default)]
pub struct Liveness {
    /// Unix milliseconds of the last beat; 0 before the first, -1 once stopped.
    last_beat_ms: std::sync::atomic::AtomicI64,
}

/// What [`Liveness::state`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopState {
    NotStarted,
    Running,
    /// No beat for this many seconds: stuck (or starved of the database).
    Stalled(i64),
    Stopped,
}

impl Liveness {
    pub(super) fn beat(&self) {
        self.last_beat_ms.store(Utc::now().timestamp_millis(), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn state(&self, stale_after: Duration) -> LoopState {
        match self.last_beat_ms.load(std::sync::atomic::Ordering::Relaxed) {
            0 => LoopState::NotStarted,
            -1 => LoopState::Stopped,
            at => {
                let silent_ms = Utc::now().timestamp_millis() - at;
                if silent_ms > stale_after.as_millis() as i64 {
                    LoopState::Stalled(silent_ms / 1000)
                } else {
                    LoopState::Running
                }
            }
        }
    }
}

/// Marks the loop stopped however it ends, panics included.
pub(super) struct StoppedOnDrop(pub(super) Arc<Liveness>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.last_beat_ms.store(-1, std::sync::atomic::Ordering::Relaxed);
    }
}
