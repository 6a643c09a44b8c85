//! The dispatcher: turns outbox events into deliveries, claims due deliveries under a lease,
//! sends them with bounded concurrency, and records every attempt.
//!
//! Nothing lives only in memory: a delivery is a row before it is sent, and its result is a
//! row after. A node that dies mid-send leaves leased rows that any node claims again once
//! the lease runs out, so every event is delivered at least once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, watch};

use super::{
    Clock, envelope_body, matches,
    sender::{Outcome, Outgoing, Sender},
};
use crate::{
    config::WebhooksConfig,
    events::{EventContext, NewEvent, types},
    store::{
        Store,
        events::EventRow,
        webhooks::{Attempt, AttemptRecord, Delivery, EndpointHealth, Webhook},
    },
};

/// One finished attempt on its way to the database.
struct Finished {
    record: AttemptRecord,
    health: Option<EndpointHealth>,
    events: Vec<NewEvent>,
}

pub struct Dispatcher {
    store: Store,
    sender: Sender,
    config: WebhooksConfig,
    clock: Clock,
    node: String,
    global: Arc<Semaphore>,
    per_endpoint: Mutex<HashMap<String, Arc<Semaphore>>>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Token bucket for an endpoint's `rate_limit` (deliveries per second, per node).
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Stops the dispatcher when dropped or asked.
pub struct DispatcherHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DispatcherHandle {
    /// Stops claiming new work, lets in-flight sends finish and be recorded.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl Dispatcher {
    pub fn new(store: Store, sender: Sender, config: WebhooksConfig, clock: Clock) -> Dispatcher {
        let global = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
        Dispatcher {
            store,
            sender,
            config,
            clock,
            node: uuid::Uuid::new_v4().to_string(),
            global,
            per_endpoint: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn spawn(self) -> DispatcherHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(Arc::new(self).run(stopped));
        DispatcherHandle { stop, task }
    }

    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let (results, finished) = mpsc::channel::<Finished>(self.config.max_in_flight.max(1) * 2);
        let writer = tokio::spawn(write_results(self.store.clone(), finished));
        let cleaner = tokio::spawn(clean_up(self.store.clone(), self.config.clone(), self.clock.clone()));
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(10));
        let wake = self.store.events_written();
        loop {
            if *stopped.borrow() {
                break;
            }
            let worked = match self.round(&results).await {
                Ok(worked) => worked,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "dispatcher round failed; retrying");
                    false
                }
            };
            if !worked {
                tokio::select! {
                    _ = wake.notified() => {
                        tokio::time::sleep(Duration::from_millis(self.config.linger_ms)).await;
                    }
                    _ = tokio::time::sleep(poll) => {}
                    _ = stopped.changed() => {}
                }
            }
        }
        // Let in-flight sends finish: they hold global permits.
        let _ = self.global.acquire_many(self.config.max_in_flight.max(1) as u32).await;
        drop(results);
        let _ = writer.await;
        cleaner.abort();
    }

    /// One pass: fan out new events, then claim and start sending due deliveries. True if
    /// there was anything to do (so the caller loops again at once).
    async fn round(self: &Arc<Self>, results: &mpsc::Sender<Finished>) -> anyhow::Result<bool> {
        let batch = self.config.batch_size.max(1);
        let mut worked = false;
        loop {
            let n = self.store.fan_out(batch, self.clock.now(), matches).await?;
            worked |= n > 0;
            if (n as i64) < batch {
                break;
            }
        }
        let free = self.global.available_permits();
        if free == 0 {
            // Wait for a send to finish before claiming more.
            drop(self.global.acquire().await);
            return Ok(true);
        }
        let now = self.clock.now();
        let lease = now + TimeDelta::seconds(self.config.lease_secs as i64);
        let claimed = self.store.claim_deliveries(&self.node, now, lease, (free as i64).min(batch)).await?;
        if claimed.is_empty() {
            return Ok(worked);
        }
        let event_ids: Vec<String> = dedup(claimed.iter().map(|d| d.event_id.clone()));
        let hook_ids: Vec<String> = dedup(claimed.iter().map(|d| d.webhook_id.clone()));
        let events: HashMap<String, Arc<(EventRow, Bytes)>> = self
            .store
            .events_by_ids(&event_ids)
            .await?
            .into_iter()
            .map(|e| {
                let body = Bytes::from(envelope_body(&e));
                (e.id.clone(), Arc::new((e, body)))
            })
            .collect();
        let hooks: HashMap<String, Arc<Webhook>> =
            self.store.webhooks_by_ids(&hook_ids).await?.into_iter().map(|w| (w.id.clone(), Arc::new(w))).collect();
        let mut deferred = Vec::new();
        for delivery in claimed {
            let (Some(event), Some(hook)) = (events.get(&delivery.event_id), hooks.get(&delivery.webhook_id)) else {
                continue; // the endpoint was deleted; its deliveries went with it
            };
            let endpoint_permit = match self.endpoint_semaphore(&hook.id).try_acquire_owned() {
                Ok(p) if self.take_token(hook) => p,
                _ => {
                    deferred.push(delivery.id.clone());
                    continue;
                }
            };
            let Ok(global_permit) = self.global.clone().try_acquire_owned() else {
                deferred.push(delivery.id.clone());
                continue;
            };
            let (this, event, hook, results) = (self.clone(), event.clone(), hook.clone(), results.clone());
            tokio::spawn(async move {
                let finished = this.attempt(&delivery, &hook, &event.0, event.1.clone()).await;
                let _ = results.send(finished).await;
                drop((endpoint_permit, global_permit));
            });
        }
        if !deferred.is_empty() {
            // Busy or rate-limited endpoints: try again shortly, behind other endpoints' work.
            let retry_at = self.clock.now() + TimeDelta::milliseconds(200);
            self.store.defer_deliveries(&deferred, retry_at).await?;
        }
        Ok(true)
    }

    fn endpoint_semaphore(&self, webhook_id: &str) -> Arc<Semaphore> {
        let mut map = self.per_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(webhook_id.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_in_flight_per_endpoint.max(1))))
            .clone()
    }

    /// Takes one token from the endpoint's rate-limit bucket; false if it is empty.
    fn take_token(&self, hook: &Webhook) -> bool {
        let Some(rate) = hook.rate_limit.filter(|r| *r > 0).map(f64::from) else { return true };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(hook.id.clone()).or_insert(Bucket { tokens: rate, at: Instant::now() });
        let now = Instant::now();
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    async fn attempt(&self, delivery: &Delivery, hook: &Webhook, event: &EventRow, body: Bytes) -> Finished {
        let now = self.clock.now();
        let secrets = hook.signing_secrets(now);
        let outcome = self
            .sender
            .send(Outgoing {
                url: &hook.url,
                body,
                msg_id: &event.id,
                secrets,
                headers: &hook.headers.0,
                timeout: Duration::from_millis(hook.timeout_ms.max(1) as u64),
            })
            .await;
        decide(&self.config, delivery, hook, event, outcome, self.clock.now())
    }
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = items.collect();
    v.sort();
    v.dedup();
    v
}

/// The delay before retry number `attempt` (1-based), with jitter; `None` when retries are
/// used up.
pub fn retry_delay(config: &WebhooksConfig, attempt: usize) -> Option<TimeDelta> {
    let base = *config.retry_schedule_secs.get(attempt.checked_sub(1)?)? as f64;
    let jitter = config.retry_jitter.clamp(0.0, 1.0);
    let factor = if jitter > 0.0 { rand::thread_rng().gen_range(1.0 - jitter..=1.0 + jitter) } else { 1.0 };
    Some(TimeDelta::milliseconds((base * factor * 1000.0) as i64))
}

/// Turns an outcome into the attempt row, the delivery's new state, endpoint health and any
/// operational events.
fn decide(
    config: &WebhooksConfig,
    delivery: &Delivery,
    hook: &Webhook,
    event: &EventRow,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Finished {
    let attempt_no = delivery.attempts + 1;
    let ctx = EventContext::system();
    let mut events = Vec::new();
    let mut health =
        EndpointHealth { webhook_id: hook.id.clone(), last_success_at: None, failing_since: None, disable: None };
    let (new_status, next_attempt_at) = if outcome.succeeded() {
        health.last_success_at = Some(now);
        health.failing_since = Some(None);
        ("succeeded", None)
    } else if outcome.status == Some(410) {
        health.disable = Some("the endpoint answered 410 Gone".into());
        ("failed", None)
    } else {
        health.failing_since = Some(Some(now));
        if let Some(since) = hook.failing_since
            && (now - since).num_seconds() >= config.disable_after_failing_secs as i64
        {
            health.disable = Some(format!("no successful delivery since {}", super::rfc3339(since)));
        }
        let retry_after = match outcome.status {
            Some(429 | 503) => {
                outcome.retry_after_secs.map(|s| TimeDelta::seconds(s.min(config.retry_after_cap_secs) as i64))
            }
            _ => None,
        };
        match retry_delay(config, attempt_no as usize) {
            Some(delay) => ("pending", Some(now + retry_after.unwrap_or(delay))),
            None => {
                let data = json!({
                    "webhookId": hook.id, "url": hook.url, "deliveryId": delivery.id, "eventId": event.id,
                    "eventType": event.event_type, "attempts": attempt_no,
                    "lastStatusCode": outcome.status, "lastError": outcome.error,
                });
                events.push(op_event(&ctx, types::WEBHOOK_DELIVERY_EXHAUSTED, hook, data));
                ("failed", None)
            }
        }
    };
    if let Some(reason) = &health.disable {
        let data = json!({"webhookId": hook.id, "url": hook.url, "reason": reason});
        events.push(op_event(&ctx, types::WEBHOOK_ENDPOINT_DISABLED, hook, data));
    }
    let latency_ms = outcome.latency.as_millis().min(i32::MAX as u128) as i32;
    let record = AttemptRecord {
        attempt: Attempt {
            id: crate::store::new_id(),
            delivery_id: delivery.id.clone(),
            attempt: attempt_no,
            attempted_at: now,
            status_code: outcome.status.map(i32::from),
            latency_ms,
            response_headers: sqlx::types::Json(outcome.headers),
            response_body: outcome.body,
            error: outcome.error.or_else(|| {
                outcome.status.filter(|s| !(200..300).contains(s)).map(|s| format!("the endpoint answered {s}"))
            }),
            next_attempt_at,
        },
        webhook_id: hook.id.clone(),
        new_status,
    };
    Finished { record, health: Some(health), events }
}

fn op_event(ctx: &EventContext, event_type: &'static str, hook: &Webhook, data: serde_json::Value) -> NewEvent {
    let mut e = NewEvent::about(ctx, event_type, (None, Some(&hook.project_id)), "webhook", &hook.id, &data);
    e.data = data;
    e
}

/// Writes finished attempts in batches: one transaction for many results.
async fn write_results(store: Store, mut finished: mpsc::Receiver<Finished>) {
    let mut buf = Vec::with_capacity(1000);
    while finished.recv_many(&mut buf, 1000).await > 0 {
        let records: Vec<AttemptRecord> = buf.iter().map(|f| f.record.clone()).collect();
        let health = merge_health(buf.iter().filter_map(|f| f.health.clone()));
        let events: Vec<NewEvent> = buf.iter().flat_map(|f| f.events.clone()).collect();
        let mut backoff = Duration::from_millis(100);
        loop {
            match store.record_attempts(&records, &health, &events).await {
                Ok(()) => break,
                Err(e) => {
                    // Not lost: the deliveries stay leased and are retried when the lease ends.
                    tracing::warn!(error = %e, "recording delivery results failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        buf.clear();
    }
}

/// One health change per endpoint for a batch: the latest success wins over failures before it.
fn merge_health(items: impl Iterator<Item = EndpointHealth>) -> Vec<EndpointHealth> {
    let mut by_hook: HashMap<String, EndpointHealth> = HashMap::new();
    for h in items {
        match by_hook.get_mut(&h.webhook_id) {
            None => {
                by_hook.insert(h.webhook_id.clone(), h);
            }
            Some(acc) => {
                if h.last_success_at.is_some() {
                    acc.last_success_at = h.last_success_at.max(acc.last_success_at);
                    acc.failing_since = Some(None);
                } else if acc.last_success_at.is_none() && acc.failing_since.is_none() {
                    acc.failing_since = h.failing_since;
                }
                if acc.disable.is_none() {
                    acc.disable = h.disable;
                }
            }
        }
    }
    by_hook.into_values().collect()
}

/// Deletes finished deliveries past retention, and day-old idempotency keys, hourly.
async fn clean_up(store: Store, config: WebhooksConfig, clock: Clock) {
    loop {
        let now = clock.now();
        let before = now - TimeDelta::days(config.retention_days as i64);
        match store.clean_up(before, now - TimeDelta::hours(24)).await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "removed deliveries past retention"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention clean-up failed"),
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
