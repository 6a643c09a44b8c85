//! Routes for operators, outside `/api/v1`: `GET /healthz`, `GET /readyz`, `GET /metrics`;
//! and the middleware every HTTP request passes: counted and timed ([`track`]), cut off at
//! `http.request_timeout_secs` ([`deadline`]), its body bounded by `http.body_limit_bytes`
//! ([`body_limit`]).

use std::time::{Duration, Instant};

use axum::{
    Router,
    extract::{ConnectInfo, FromRequestParts, MatchedPath, Request},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use super::extract::Caller;
use crate::{
    error::ApiResult,
    metrics::{self as m, Metrics},
    net::PeerAddr,
    state::{AppState, State},
    store::Store,
    webhooks::dispatcher::LoopState,
};

/// A dispatcher loop silent for longer than this is reported stalled (a round may take a few
/// seconds under load; a minute is stuck).
const DISPATCHER_STALE_AFTER: Duration = Duration::from_secs(60);
/// Readiness gives the database this long to answer.
const READY_DB_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a write refused for want of storage keeps the node unready when no write
/// succeeds after it (see `WriteHealth::refusing`).
const READY_WRITES_HOLD: Duration = Duration::from_secs(30);

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// The process is up and serving HTTP. Touches nothing else, so a slow database never makes
/// an orchestrator restart a healthy process.
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Whether this node should receive traffic: the database answers, its schema has every
/// migration this binary needs, it is not refusing writes for want of storage, and (where it
/// runs) the webhook dispatcher is looping.
/// 200 when all hold, 503 otherwise; the body names each check.
async fn readyz(s: State) -> Response {
    let (database, migrations) = match tokio::time::timeout(READY_DB_TIMEOUT, s.store.schema_state()).await {
        Ok(Ok(schema)) if schema.missing.is_empty() => (json!({"ok": true}), json!({"ok": true})),
        Ok(Ok(schema)) => (
            json!({"ok": true}),
            json!({"ok": false, "message": format!("migrations not applied: {:?}; run `herald migrate`", schema.missing)}),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            (json!({"ok": false, "message": "the database did not answer"}), json!({"ok": false, "message": "unknown"}))
        }
        Err(_) => (
            json!({"ok": false, "message": format!("the database did not answer within {READY_DB_TIMEOUT:?}")}),
            json!({"ok": false, "message": "unknown"}),
        ),
    };
    let dispatcher = if !s.config.webhooks.dispatcher {
        json!({"ok": true, "state": "disabled"})
    } else {
        match s.dispatcher.state(DISPATCHER_STALE_AFTER) {
            LoopState::Running => json!({"ok": true, "state": "running"}),
            LoopState::NotStarted => json!({"ok": false, "state": "starting"}),
            LoopState::Stopped => json!({"ok": false, "state": "stopped"}),
            LoopState::Stalled(secs) => {
                json!({"ok": false, "state": "stalled", "message": format!("no round for {secs} s")})
            }
        }
    };
    // Reads work on a full disk, so the query above passes; the writes tell.
    let writes = match s.store.write_health().refusing(READY_WRITES_HOLD) {
        None => json!({"ok": true}),
        Some(ago) => json!({"ok": false, "message": format!(
            "the database refused a write for want of storage {} s ago, and none has succeeded since",
            ago.as_secs()
        )}),
    };
    let ready = [&database, &migrations, &writes, &dispatcher].iter().all(|c| c["ok"] == true);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": {"database": database, "migrations": migrations, "writes": writes, "dispatcher": dispatcher},
    });
    (status, axum::Json(body)).into_response()
}

/// Prometheus text. Answered to loopback clients without a credential (unless
/// `metrics.open_to_loopback` is off) and to any client with a `metrics:read` credential.
async fn metrics(s: State, req: Request) -> ApiResult<Response> {
    if !s.config.metrics.enabled {
        return Err(super::not_found().await);
    }
    let loopback = req.extensions().get::<ConnectInfo<PeerAddr>>().is_some_and(|ci| ci.0.0.ip().is_loopback());
    if !(loopback && s.config.metrics.open_to_loopback) {
        let (mut parts, _) = req.into_parts();
        let caller = Caller::from_request_parts(&mut parts, &s).await?;
        caller.principal.require(crate::auth::Scope::MetricsRead)?;
    }
    scrape_gauges(&s).await;
    let body = s.store.metrics().render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}

/// Reads the values kept elsewhere (pools, queues, sockets) into the registry.
async fn scrape_gauges(s: &AppState) {
    let metrics = s.store.metrics();
    // Queue depths come from the database; a scrape during an outage still answers with the rest.
    let queues = match tokio::time::timeout(READY_DB_TIMEOUT, s.store.queue_stats()).await {
        Ok(Ok(q)) => Some(q),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: cannot read queue depths");
            None
        }
        Err(_) => None,
    };
    let realtime = &s.realtime_stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    metrics.record(|| {
        for (pool, in_use, idle) in s.store.pool_stats() {
            metrics::gauge!(m::DB_POOL_CONNECTIONS, "pool" => pool, "state" => "in_use").set(in_use);
            metrics::gauge!(m::DB_POOL_CONNECTIONS, "pool" => pool, "state" => "idle").set(idle);
        }
        if let Some(q) = queues {
            metrics::gauge!(m::OUTBOX_PENDING).set(q.pending_events as f64);
            let age = q.oldest_pending_at.map_or(0.0, |at| (crate::store::now() - at).as_seconds_f64().max(0.0));
            metrics::gauge!(m::OUTBOX_OLDEST_AGE).set(age);
            metrics::gauge!(m::DELIVERIES_PENDING).set(q.pending_deliveries as f64);
            metrics::gauge!(m::ENDPOINTS_DISABLED).set(q.disabled_endpoints as f64);
        }
        let connections = &s.connections;
        metrics::gauge!(m::HTTP_CONNECTIONS).set(connections.open() as f64);
        metrics::gauge!(m::HTTP_CONNECTIONS_MAX).set(connections.cap() as f64);
        metrics::counter!(m::HTTP_CONNECTIONS_REFUSED).absolute(load(&connections.refused));
        metrics::counter!(m::HTTP_ACCEPT_ERRORS).absolute(load(&connections.accept_errors));
        metrics::gauge!(m::SOCKETS_CONNECTED).set(realtime.connected.load(std::sync::atomic::Ordering::Relaxed) as f64);
        metrics::counter!(m::SOCKET_MESSAGES_IN).absolute(load(&realtime.messages_in));
        metrics::counter!(m::SOCKET_MESSAGES_OUT).absolute(load(&realtime.messages_out));
        metrics::counter!(m::SOCKET_PACKETS_DROPPED).absolute(load(&realtime.dropped_packets));
        metrics::counter!(m::SOCKET_HEARTBEAT_TIMEOUTS).absolute(load(&realtime.heartbeat_timeouts));
        metrics::counter!(m::SOCKET_REFUSED).absolute(load(&realtime.refused));
    });
}

/// Counts and times every request by its route template (`/api/v1/users/{id}`, never the raw
/// path, so the number of series stays bounded); requests that matched no route are
/// `unmatched`.
///
/// It also tells the store's [`crate::store::ops::WriteHealth`] how writes fare (for
/// `GET /readyz`): a request the database refused for want of storage (marked by
/// `error::OutOfStorage`), counted, or a successful request of a method that writes.
pub async fn track(store: axum::extract::State<Store>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let response = next.run(req).await;
    let secs = started.elapsed().as_secs_f64();
    let status = response.status();
    let metrics: &Metrics = store.metrics();
    let refused = response.extensions().get::<crate::error::OutOfStorage>().is_some();
    if refused {
        store.write_health().refused();
        metrics.record(|| metrics::counter!(m::DB_WRITES_REFUSED).increment(1));
    } else if status.is_success() && !method.is_safe() {
        store.write_health().succeeded();
    }
    metrics.record(|| {
        let route = route.unwrap_or_else(|| "unmatched".into());
        let labels = [("method", method.as_str().to_owned()), ("route", route)];
        metrics::histogram!(m::HTTP_DURATION, &labels).record(secs);
        let [method, route] = labels;
        metrics::counter!(m::HTTP_REQUESTS, &[method, route, ("status", status.as_str().to_owned())]).increment(1);
    });
    response
}

/// Answers 408 in the API's error shape when a request (reading its body included) takes
/// longer than `limit`; the handler's work is dropped at that point, and a transaction it
/// had open rolls back.
pub async fn deadline(limit: axum::extract::State<Duration>, req: Request, next: Next) -> Response {
    let limit = *limit;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => crate::error::ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request took longer than {} s (http.request_timeout_secs)", limit.as_secs()),
        )
        .into_response(),
    }
}

/// An oversized body declared up to this size is read and dropped before the 413 (see
/// [`body_limit`]); the request timeout bounds how long that may take.
const DRAIN_OVERSIZED_UP_TO: u64 = 16 * 1024 * 1024;

/// The one place an oversized request body is answered, so that no route can answer it
/// differently: 413 `payload_too_large` in the API's error shape.
///
/// `DefaultBodyLimit` only tells the body extractors the limit, and each extractor answers a
/// body over it with its own rejection: ours map it (`extract::Json`), but one taking plain
/// `Bytes` answered axum's text/plain "Failed to buffer the request body" (issue 16), and a
/// route that reads no body never looked. So this refuses a declared `Content-Length` over the
/// limit before any handler runs, and turns any other 413 (a chunked body that crossed the
/// limit while an extractor read it) that is not already in the error shape into it.
pub async fn body_limit(limit: axum::extract::State<usize>, req: Request, next: Next) -> Response {
    let too_large = || {
        crate::error::ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than this server accepts ({} bytes: http.body_limit_bytes)", *limit),
        )
        .into_response()
    };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > *limit as u64) {
        // Read what the client is sending (and drop it) before answering, up to a bound: a
        // connection closed with request bytes unread is reset by the kernel, which can throw
        // the 413 away before the client reads it (seen in the suite as "connection reset"
        // on a 1 MiB body). Beyond the bound the client gets the answer at once and the cut.
        if len <= DRAIN_OVERSIZED_UP_TO {
            let mut body = req.into_body();
            while let Some(Ok(_)) = http_body_util::BodyExt::frame(&mut body).await {}
        }
        return too_large();
    }
    let response = next.run(req).await;
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !json { too_large() } else { response }
}
