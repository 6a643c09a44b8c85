//! Webhook delivery, in parts kept apart (as svix-server does): what to send ([`matches`],
//! [`format`]: the body in each endpoint's payload format), how it is signed ([`signing`]),
//! how it is sent ([`sender`]: HTTP, SSRF guard), and when ([`dispatcher`]: fan-out, leases,
//! retries, recording).

pub mod dispatcher;
pub mod format;
pub mod sender;
pub mod signing;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::store::{events::EventRow, webhooks::Webhook};

/// Whether `pattern` selects `event_type`: `*`, an exact name, or a prefix like `user.*`.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => prefix.ends_with('.') && event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

/// Whether `event` goes to `hook`: one of its patterns selects the type, and the event is
/// not about the endpoint itself (so a failing endpoint is not sent news of its own failures).
pub fn matches(hook: &Webhook, event: &EventRow) -> bool {
    let about_itself =
        event.resource_type.as_deref() == Some("webhook") && event.resource_id.as_deref() == Some(&hook.id);
    !about_itself && hook.events.0.iter().any(|p| pattern_matches(p, &event.event_type))
}

/// The JSON every delivery carries. Field order is fixed and the body compact, so a receiver
/// that parses and re-serializes it with `JSON.stringify` gets the same bytes back, unless the
/// data holds whole-valued floats, integers beyond 2^53 or integer-like object keys (see
/// docs/WEBHOOKS.md); signatures are over the raw bytes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    /// Same as `type`, for receivers written against the seeds (`const { event, data } = req.body`).
    pub event: &'a str,
    pub occurred_at: String,
    pub project_id: Option<&'a str>,
    /// Monotonic per Herald database: order by it if you need order.
    pub sequence: i64,
    pub resource: Option<Resource<'a>>,
    pub data: &'a Value,
    pub request_id: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub sandbox: bool,
}

#[derive(Debug, Serialize)]
pub struct Resource<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub id: &'a str,
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The delivery body of `event` in Herald's own format ([`format::Format::Herald`]).
pub fn envelope_body(event: &EventRow) -> Vec<u8> {
    let envelope = Envelope {
        id: &event.id,
        event_type: &event.event_type,
        event: &event.event_type,
        occurred_at: rfc3339(event.occurred_at),
        project_id: event.project_id.as_deref(),
        sequence: event.seq,
        resource: match (&event.resource_type, &event.resource_id) {
            (Some(kind), Some(id)) => Some(Resource { kind, id }),
            _ => None,
        },
        data: &event.data.0,
        request_id: event.request_id.as_deref(),
        idempotency_key: event.idempotency_key.as_deref(),
        sandbox: event.sandbox,
    };
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// A receiver's `Retry-After` (RFC 9110 section 10.2.3): a number of seconds, or an HTTP date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    Secs(u64),
    At(DateTime<Utc>),
}

impl RetryAfter {
    /// The header's value; `None` when it is neither form. Seconds too many for a `u64` are
    /// `u64::MAX` (the cap applies to them like to any large value).
    pub fn parse(value: &str) -> Option<RetryAfter> {
        let value = value.trim();
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            return Some(RetryAfter::Secs(value.parse().unwrap_or(u64::MAX)));
        }
        httpdate::parse_http_date(value).ok().map(|t| RetryAfter::At(t.into()))
    }

    /// How long it asks to wait from `now` (zero for a date already past).
    pub fn wait_from(self, now: DateTime<Utc>) -> TimeDelta {
        match self {
            RetryAfter::Secs(s) => TimeDelta::seconds(s.min(i64::MAX as u64 / 1000) as i64),
            RetryAfter::At(t) => (t - now).max(TimeDelta::zero()),
        }
    }
}

/// Where time comes from: the system clock, or a hand-moved one in tests (so retry
/// schedules are tested without sleeping).
#[derive(Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock::Manual(Arc::new(Mutex::new(crate::store::truncate(start))))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => crate::store::now(),
            Clock::Manual(t) => *t.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance(&self, by: TimeDelta) {
        if let Clock::Manual(t) = self {
            let mut t = t.lock().unwrap_or_else(|p| p.into_inner());
            *t += by;
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};

    use super::{RetryAfter, pattern_matches};

    #[test]
    fn retry_after_forms() {
        let at = Utc.with_ymd_and_hms(1994, 11, 6, 8, 49, 37).single().expect("date");
        assert_eq!(RetryAfter::parse("120"), Some(RetryAfter::Secs(120)));
        assert_eq!(RetryAfter::parse(" 0 "), Some(RetryAfter::Secs(0)));
        assert_eq!(RetryAfter::parse("99999999999999999999999"), Some(RetryAfter::Secs(u64::MAX)));
        // The three date formats of RFC 9110 section 5.6.7.
        for date in ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(RetryAfter::parse(date), Some(RetryAfter::At(at)), "{date}");
        }
        for bad in ["", "-1", "1.5", "soon", "Sun, 06 Nov 1994 08:49:37 +0100"] {
            assert_eq!(RetryAfter::parse(bad), None, "{bad:?}");
        }
        assert_eq!(RetryAfter::At(at).wait_from(at - TimeDelta::seconds(90)), TimeDelta::seconds(90));
        assert_eq!(RetryAfter::At(at).wait_from(at + TimeDelta::seconds(5)), TimeDelta::zero(), "a date past");
        assert!(RetryAfter::Secs(u64::MAX).wait_from(at) > TimeDelta::days(365), "no overflow");
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "user.created"));
        assert!(pattern_matches("user.*", "user.created"));
        assert!(pattern_matches("user.created", "user.created"));
        assert!(!pattern_matches("user.*", "users.created"));
        assert!(!pattern_matches("user.*", "user"));
        assert!(!pattern_matches("user.created", "user.created2"));
        assert!(!pattern_matches("user*", "user.created"), "a prefix pattern ends with `.*`");
    }
}
