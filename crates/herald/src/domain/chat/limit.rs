//! The per-player chat send limit.

#[allow(unused_imports)]
use super::*;

/// Per-player send limit: a sliding window of send times, per node.
///
/// Written by hand rather than with `governor` (which `api::rate_limit` uses): the setting
/// promises "at most `rate_limit_messages` in any `rate_window_secs`", and after a burst the
/// next send waits until the burst's first send leaves the window. `governor` keeps a GCRA
/// bucket instead, which after a burst of N lets one more through every window/N seconds: up
/// to nearly twice N in one window, and a `Retry-After` of window/N instead of the time the
/// window really needs. Keeping the promise takes the send times, which is what this keeps
/// (at most N per player; idle players are dropped once 100,000 are kept).
pub struct RateLimiter {
    max: usize,
    window: Duration,
    sends: Mutex<HashMap<(String, String), VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(config: &ChatConfig) -> Self {
        RateLimiter {
            max: config.rate_limit_messages as usize,
            window: Duration::from_secs(config.rate_window_secs.max(1)),
            sends: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one send by `user_id`, or says how many seconds until one is allowed.
    pub fn check(&self, project_id: &str, user_id: &str) -> Result<(), u64> {
        if self.max == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut sends = self.sends.lock().unwrap_or_else(|p| p.into_inner());
        if sends.len() > 100_000 {
            sends.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        let times = sends.entry((project_id.to_owned(), user_id.to_owned())).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            times.pop_front();
        }
        if times.len() >= self.max {
            let oldest = times.front().copied().unwrap_or(now);
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        times.push_back(now);
        Ok(())
    }
}
