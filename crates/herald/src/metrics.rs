//! The node's Prometheus metrics: one registry per running server, rendered at `GET /metrics`.
//!
//! Each server owns its recorder instead of installing a process-wide one, so several servers
//! in one process (the integration tests run hundreds) keep their numbers apart. Code records
//! through [`Metrics::record`], which makes this registry the `metrics` macros' target for the
//! closure. Values that are cheaper to read than to track (pool sizes, queue depths, socket
//! counts) are read when scraped (`api::ops`), not updated on every change.
//!
//! Every family is named here, so docs/OPERATIONS.md and the dashboards have one list to
//! follow.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

pub const HTTP_REQUESTS: &str = "herald_http_requests_total";
pub const HTTP_DURATION: &str = "herald_http_request_duration_seconds";
pub const HTTP_CONNECTIONS: &str = "herald_http_connections";
pub const HTTP_CONNECTIONS_MAX: &str = "herald_http_connections_max";
pub const HTTP_CONNECTIONS_REFUSED: &str = "herald_http_connections_refused_total";
pub const HTTP_ACCEPT_ERRORS: &str = "herald_http_accept_errors_total";
pub const DB_POOL_CONNECTIONS: &str = "herald_db_pool_connections";
pub const DB_QUERY_DURATION: &str = "herald_db_query_duration_seconds";
pub const DB_WRITES_REFUSED: &str = "herald_db_writes_refused_total";
pub const OUTBOX_PENDING: &str = "herald_outbox_pending_events";
pub const OUTBOX_OLDEST_AGE: &str = "herald_outbox_oldest_pending_age_seconds";
pub const DELIVERIES_PENDING: &str = "herald_webhook_deliveries_pending";
pub const DELIVERIES: &str = "herald_webhook_deliveries_total";
pub const ATTEMPTS: &str = "herald_webhook_attempts_total";
pub const ATTEMPT_DURATION: &str = "herald_webhook_attempt_duration_seconds";
pub const RETRIES_SCHEDULED: &str = "herald_webhook_retries_scheduled_total";
pub const ENDPOINTS_DISABLED: &str = "herald_webhook_endpoints_disabled";
pub const SOCKETS_CONNECTED: &str = "herald_sockets_connected";
pub const SOCKET_MESSAGES_IN: &str = "herald_socket_messages_in_total";
pub const SOCKET_MESSAGES_OUT: &str = "herald_socket_messages_out_total";
pub const SOCKET_PACKETS_DROPPED: &str = "herald_socket_packets_dropped_total";
pub const SOCKET_HEARTBEAT_TIMEOUTS: &str = "herald_socket_heartbeat_timeouts_total";
pub const SOCKET_REFUSED: &str = "herald_socket_connections_refused_total";
pub const ADMIN_LOGIN_FAILURES: &str = "herald_admin_login_failures_total";
pub const ADMIN_LOGIN_THROTTLED: &str = "herald_admin_login_throttled_total";
pub const BUILD_INFO: &str = "herald_build_info";

/// Latency buckets, in seconds: 1 ms to 30 s (the longest webhook timeout).
const SECONDS_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// One server's metrics registry. Cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        // Only fails for an empty bucket list, which this is not; fall back to the default
        // (summaries) rather than fail if that ever changes.
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        let m = Metrics(Arc::new(Inner { recorder, handle }));
        m.record(describe);
        m
    }

    /// Runs `f` with this registry as the target of the `metrics` macros.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.0.recorder, f)
    }

    /// The Prometheus text exposition of everything recorded.
    pub fn render(&self) -> String {
        self.0.handle.render()
    }

    /// Folds recorded histogram samples into their buckets; call every few seconds so memory
    /// stays flat between scrapes.
    pub fn upkeep(&self) {
        self.0.handle.run_upkeep();
    }

    /// Times a database operation on `pool` until the returned guard is dropped (so an early
    /// return through `?` is timed too).
    pub fn db_timer(&self, pool: &'static str) -> DbTimer<'_> {
        DbTimer { metrics: self, pool, started: Instant::now() }
    }

    /// One webhook attempt finished: its latency and where the delivery stands now.
    pub fn webhook_attempt(&self, latency: Duration, succeeded: bool, new_status: crate::vocab::DeliveryStatus) {
        self.record(|| {
            let result = if succeeded { "success" } else { "failure" };
            metrics::counter!(ATTEMPTS, "result" => result).increment(1);
            metrics::histogram!(ATTEMPT_DURATION).record(latency.as_secs_f64());
            use crate::vocab::DeliveryStatus;
            match new_status {
                DeliveryStatus::Pending => metrics::counter!(RETRIES_SCHEDULED).increment(1),
                DeliveryStatus::Succeeded => metrics::counter!(DELIVERIES, "result" => "succeeded").increment(1),
                DeliveryStatus::Failed => metrics::counter!(DELIVERIES, "result" => "failed").increment(1),
            }
        });
    }
}

/// See [`Metrics::db_timer`].
pub struct DbTimer<'a> {
    metrics: &'a Metrics,
    pool: &'static str,
    started: Instant,
}

impl Drop for DbTimer<'_> {
    fn drop(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        let pool = self.pool;
        self.metrics.record(|| metrics::histogram!(DB_QUERY_DURATION, "pool" => pool).record(secs));
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by method, route template and status.");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request latency, by method and route template.");
    describe_gauge!(HTTP_CONNECTIONS, "Client connections open on this node (WebSockets included).");
    describe_gauge!(HTTP_CONNECTIONS_MAX, "The cap on open client connections (http.max_connections in effect).");
    describe_counter!(HTTP_CONNECTIONS_REFUSED, "Connections closed at once because the connection cap was reached.");
    describe_counter!(
        HTTP_ACCEPT_ERRORS,
        "Failed accepts (e.g. too many open files); accepting resumes after a back-off."
    );
    describe_gauge!(DB_POOL_CONNECTIONS, "Database connections, by pool and state (in_use, idle).");
    describe_histogram!(
        DB_QUERY_DURATION,
        Unit::Seconds,
        "Time a store operation held its pool (waiting for a connection included), by pool."
    );
    describe_counter!(
        DB_WRITES_REFUSED,
        "Requests answered 503 because the database refused a write for want of storage or resources \
         (SQLite SQLITE_FULL, PostgreSQL class 53)."
    );
    describe_gauge!(OUTBOX_PENDING, "Events committed but not yet fanned out to webhook deliveries.");
    describe_gauge!(OUTBOX_OLDEST_AGE, Unit::Seconds, "Age of the oldest event not yet fanned out (0 when none).");
    describe_gauge!(DELIVERIES_PENDING, "Webhook deliveries waiting for an attempt (due now or retrying later).");
    describe_counter!(DELIVERIES, "Webhook deliveries finished on this node, by result (succeeded, failed).");
    describe_counter!(ATTEMPTS, "Webhook delivery attempts made by this node, by result (success, failure).");
    describe_histogram!(ATTEMPT_DURATION, Unit::Seconds, "Webhook attempt latency, request sent to answer read.");
    describe_counter!(RETRIES_SCHEDULED, "Failed webhook attempts that were scheduled for a retry.");
    describe_gauge!(ENDPOINTS_DISABLED, "Webhook endpoints disabled automatically (410 Gone, or failing too long).");
    describe_gauge!(SOCKETS_CONNECTED, "socket.io connections open on this node.");
    describe_counter!(SOCKET_MESSAGES_IN, "socket.io requests received from clients.");
    describe_counter!(SOCKET_MESSAGES_OUT, "socket.io packets queued to clients.");
    describe_counter!(SOCKET_PACKETS_DROPPED, "socket.io packets dropped because a client's buffer was full.");
    describe_counter!(
        SOCKET_HEARTBEAT_TIMEOUTS,
        "socket.io connections closed by a failed heartbeat (client gone or too slow to read)."
    );
    describe_counter!(SOCKET_REFUSED, "socket.io handshakes refused (bad token, limit reached).");
    describe_counter!(ADMIN_LOGIN_FAILURES, "Admin logins refused for a wrong email or password.");
    describe_counter!(
        ADMIN_LOGIN_THROTTLED,
        "Admin login attempts answered 429 (too many failures for the account or the client address)."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the `version` label is Herald's version.");
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Shown from the start, so an alert on its rate has a series before the first refusal.
    metrics::counter!(DB_WRITES_REFUSED).absolute(0);
    metrics::counter!(ADMIN_LOGIN_FAILURES).absolute(0);
    metrics::counter!(ADMIN_LOGIN_THROTTLED).absolute(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_separate_and_render_prometheus_text() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.record(|| metrics::counter!(HTTP_REQUESTS, "route" => "/x").increment(3));
        a.webhook_attempt(Duration::from_millis(20), true, crate::vocab::DeliveryStatus::Succeeded);
        let text = a.render();
        assert!(text.contains("herald_http_requests_total{route=\"/x\"} 3"), "{text}");
        assert!(text.contains("herald_webhook_attempt_duration_seconds_bucket{le=\"0.025\"} 1"), "{text}");
        assert!(text.contains("# HELP herald_http_requests_total"), "{text}");
        assert!(!b.render().contains("route=\"/x\""), "another server's registry stays apart");
    }
}
