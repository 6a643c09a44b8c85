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
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use super::{
    Clock, format, matches,
    sender::{Outcome, Outgoing, Sender},
};
use crate::{
    config::WebhooksConfig,
    events::{EventContext, NewEvent, types},
    store::{
        Store, StoreError, batch,
        events::EventRow,
        webhooks::{Attempt, AttemptRecord, Delivery, Disable, EndpointHealth, FanOut, Lease, Webhook, WebhookFormat},
    },
};

/// How often a busy dispatcher vacuums the outbox queue (see `Store::vacuum_outbox`).
const VACUUM_OUTBOX_EVERY: Duration = Duration::from_secs(1);

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
    fn beat(&self) {
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
struct StoppedOnDrop(Arc<Liveness>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.last_beat_ms.store(-1, std::sync::atomic::Ordering::Relaxed);
    }
}

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
    /// Sends in flight on this node.
    global: Arc<Semaphore>,
    per_endpoint: Mutex<HashMap<String, Arc<Semaphore>>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Deliveries this node holds (leased, waiting for a slot or being sent).
    in_hand: Mutex<InHand>,
    /// Signalled when a held delivery is done, so work left in the database is claimed.
    freed: Notify,
    liveness: Arc<Liveness>,
}

#[derive(Default)]
struct InHand {
    total: usize,
    per_endpoint: HashMap<String, usize>,
}

/// Token bucket for an endpoint's `rate_limit` (deliveries per second, per node). Tokens may
/// go below zero: each is a reservation, and its holder waits until the bucket refills.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Which new deliveries a fan-out may lease to this node: a snapshot of what it holds.
struct Budget<'a> {
    dispatcher: &'a Dispatcher,
    free: usize,
    per_endpoint: HashMap<String, usize>,
}

impl Budget<'_> {
    fn take(&mut self, hook: &Webhook) -> bool {
        let held = self.per_endpoint.entry(hook.id.clone()).or_default();
        if self.free == 0 || *held >= self.dispatcher.endpoint_limit(hook) {
            return false;
        }
        self.free -= 1;
        *held += 1;
        true
    }
}

/// When to claim. Claiming is the only way to find retries falling due, leases of dead nodes
/// running out, and deliveries fanned out without a lease (this node had no room); the first
/// two are found soon enough by claiming once per poll interval, while a claim per round
/// (one per burst of events) was mostly a query that found nothing, on the write connection.
struct Claims {
    last: Option<Instant>,
    /// Due work is known to be waiting: unleased deliveries were created, or the last claim
    /// was cut short by the room or by busy endpoints.
    owed: bool,
}

/// Stops the dispatcher when dropped or asked.
pub struct DispatcherHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DispatcherHandle {
    /// Stops claiming new work, lets held deliveries finish and be recorded.
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
            in_hand: Mutex::new(InHand::default()),
            freed: Notify::new(),
            liveness: Arc::default(),
        }
    }

    /// Reports the loop's health to `liveness` (shared with `GET /readyz`).
    pub fn with_liveness(mut self, liveness: Arc<Liveness>) -> Dispatcher {
        self.liveness = liveness;
        self
    }

    pub fn spawn(self) -> DispatcherHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(Arc::new(self).run(stopped));
        DispatcherHandle { stop, task }
    }

    /// Deliveries held at most on this node: twice what may be in flight, so the next one is
    /// ready when a send finishes.
    fn hand_limit(&self) -> usize {
        self.config.max_in_flight.max(1) * 2
    }

    /// Deliveries held for one endpoint from which it counts as busy: enough to keep its send
    /// slots full, so claims skip it until it drops below.
    fn endpoint_busy(&self) -> usize {
        self.config.max_in_flight_per_endpoint.max(1) * 2
    }

    /// How often to look for work nobody signalled (see [`Claims`]).
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.config.poll_interval_ms.max(10))
    }

    fn lease_for(&self) -> TimeDelta {
        TimeDelta::seconds(self.config.lease_secs as i64)
    }

    /// Deliveries a fan-out leases at most to one endpoint: four times its concurrency (so
    /// one busy endpoint cannot fill the node), and for a rate-limited endpoint no more than
    /// it can be sent within half a lease. (A claim may go past it; leases of held deliveries
    /// are renewed, so waiting long is safe.)
    fn endpoint_limit(&self, hook: &Webhook) -> usize {
        let limit = self.config.max_in_flight_per_endpoint.max(1) * 4;
        match hook.rate_limit.filter(|r| *r > 0) {
            Some(rate) => limit.min((rate as usize * self.config.lease_secs as usize / 2).max(1)),
            None => limit,
        }
    }

    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let (results, finished) = mpsc::channel::<Finished>(self.hand_limit());
        let writer = tokio::spawn(write_results(self.store.clone(), finished));
        let cleaner = tokio::spawn(clean_up(self.store.clone(), self.config.clone(), self.clock.clone()));
        let poll = self.poll_interval();
        let wake = self.store.events_written();
        let renew_every = Duration::from_secs((self.config.lease_secs / 3).max(1));
        let mut renewed = Instant::now();
        let mut vacuumed = Instant::now();
        let mut claims = Claims { last: None, owed: false };
        let _stopped_on_drop = StoppedOnDrop(self.liveness.clone());
        loop {
            self.liveness.beat();
            if *stopped.borrow() {
                break;
            }
            if renewed.elapsed() >= renew_every {
                renewed = Instant::now();
                self.renew_leases().await;
            }
            let (worked, starved) = match self.round(&results, &mut claims).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "dispatcher round failed; retrying");
                    (false, false)
                }
            };
            if worked {
                if vacuumed.elapsed() >= VACUUM_OUTBOX_EVERY {
                    vacuumed = Instant::now();
                    if let Err(e) = self.store.vacuum_outbox().await {
                        tracing::warn!(error = %e, "vacuuming the outbox queue failed");
                    }
                }
                continue;
            }
            tokio::select! {
                _ = wake.dispatcher.notified() => {
                    tokio::time::sleep(Duration::from_millis(self.config.linger_ms)).await;
                }
                // Work was left in the database for lack of room: take it when room frees up.
                _ = self.freed.notified(), if starved => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stopped.changed() => {}
            }
        }
        // Let held deliveries finish and be recorded.
        loop {
            let freed = self.freed.notified();
            if self.lock_in_hand().total == 0 {
                break;
            }
            freed.await;
        }
        drop(results);
        let _ = writer.await;
        cleaner.abort();
    }

    fn lock_in_hand(&self) -> std::sync::MutexGuard<'_, InHand> {
        self.in_hand.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One pass: fan out new events (sending at once what this node has room for), then claim
    /// due deliveries into the room left when there may be some (see [`Claims`]). Returns
    /// whether anything was done, and whether due work may have been left for lack of room.
    async fn round(
        self: &Arc<Self>,
        results: &mpsc::Sender<Finished>,
        claims: &mut Claims,
    ) -> anyhow::Result<(bool, bool)> {
        let batch = self.config.batch_size.max(1);
        let lease_for = self.lease_for();
        let mut worked = false;
        loop {
            let now = self.clock.now();
            let mut budget = {
                let held = self.lock_in_hand();
                Budget {
                    dispatcher: self,
                    free: self.hand_limit().saturating_sub(held.total),
                    per_endpoint: held.per_endpoint.clone(),
                }
            };
            let mut take = |hook: &Webhook| budget.take(hook);
            let mut lease = Lease { node: &self.node, until: now + lease_for, take: &mut take };
            let out = self.store.fan_out(batch, now, &mut lease, matches).await?;
            worked |= out.events > 0;
            // Deliveries created without a lease (no room) wait in the database for a claim.
            claims.owed |= out.created > out.leased.len();
            let fanned = out.events;
            self.start_fanned_out(out, results);
            if (fanned as i64) < batch {
                break;
            }
        }

        // Claim only into real room (half the hand free), not one delivery at a time, and
        // not for endpoints that still hold enough to keep their slots busy.
        let (room, skip) = {
            let held = self.lock_in_hand();
            let busy: Vec<String> = held
                .per_endpoint
                .iter()
                .filter(|(_, n)| **n >= self.endpoint_busy())
                .map(|(id, _)| id.clone())
                .collect();
            (self.hand_limit().saturating_sub(held.total), busy)
        };
        if room < self.hand_limit() / 2 {
            return Ok((worked, claims.owed));
        }
        if !claims.owed && claims.last.is_some_and(|at| at.elapsed() < self.poll_interval()) {
            return Ok((worked, false));
        }
        let now = self.clock.now();
        let limit = (room as i64).min(batch);
        claims.last = Some(Instant::now());
        let claimed = self.store.claim_deliveries(&self.node, now, now + lease_for, limit, &skip).await?;
        let starved = claimed.len() as i64 == limit || !skip.is_empty();
        claims.owed = starved;
        if claimed.is_empty() {
            return Ok((worked, starved));
        }
        let event_ids: Vec<String> = dedup(claimed.iter().map(|d| d.event_id.clone()));
        let hook_ids: Vec<String> = dedup(claimed.iter().map(|d| d.webhook_id.clone()));
        let events: HashMap<String, Arc<Rendered>> = self
            .store
            .events_by_ids(&event_ids)
            .await?
            .into_iter()
            .map(|e| (e.id.clone(), Arc::new(Rendered::new(e))))
            .collect();
        let hooks: HashMap<String, Arc<Webhook>> =
            self.store.webhooks_by_ids(&hook_ids).await?.into_iter().map(|w| (w.id.clone(), Arc::new(w))).collect();
        for delivery in claimed {
            // A missing endpoint was deleted, its deliveries with it.
            if let (Some(event), Some(hook)) = (events.get(&delivery.event_id), hooks.get(&delivery.webhook_id)) {
                self.start(delivery, hook.clone(), event.clone(), results);
            }
        }
        Ok((true, starved))
    }

    /// Starts the deliveries a fan-out leased to this node, from the rows it already read.
    fn start_fanned_out(self: &Arc<Self>, out: FanOut, results: &mpsc::Sender<Finished>) {
        if out.leased.is_empty() {
            return;
        }
        let hooks: Vec<Arc<Webhook>> = out.hooks.into_iter().map(Arc::new).collect();
        let mut rendered: Vec<Option<Arc<Rendered>>> = vec![None; out.event_rows.len()];
        let mut rows: Vec<Option<EventRow>> = out.event_rows.into_iter().map(Some).collect();
        for (delivery, e, h) in out.leased {
            let event = rendered[e]
                .get_or_insert_with(|| {
                    let row = rows[e].take().unwrap_or_else(|| unreachable!("taken once, into its Rendered"));
                    Arc::new(Rendered::new(row))
                })
                .clone();
            self.start(delivery, hooks[h].clone(), event, results);
        }
    }

    /// Holds `delivery` and sends it once its endpoint has a free slot (and a rate token) and
    /// the node has a free send slot.
    fn start(
        self: &Arc<Self>,
        delivery: Delivery,
        hook: Arc<Webhook>,
        event: Arc<Rendered>,
        results: &mpsc::Sender<Finished>,
    ) {
        {
            let mut held = self.lock_in_hand();
            held.total += 1;
            *held.per_endpoint.entry(hook.id.clone()).or_default() += 1;
        }
        let (this, results) = (self.clone(), results.clone());
        tokio::spawn(async move {
            let endpoint = this.endpoint_semaphore(&hook.id).acquire_owned().await;
            let wait = this.reserve_token(&hook);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let global = this.global.clone().acquire_owned().await;
            let body = event.body(hook.format);
            let finished = this.attempt(&delivery, &hook, &event.row, body).await;
            drop((endpoint, global));
            if this.release(&hook.id) {
                this.freed.notify_one();
            }
            let _ = results.send(finished).await;
        });
    }

    /// Lets go of a delivery that is done. True when that makes room worth a claim (see
    /// `round`): the hand is empty, just fell to half, or the endpoint stopped being busy.
    fn release(&self, webhook_id: &str) -> bool {
        let mut held = self.lock_in_hand();
        held.total = held.total.saturating_sub(1);
        let total = held.total;
        let mut endpoint = usize::MAX;
        if let Some(n) = held.per_endpoint.get_mut(webhook_id) {
            *n = n.saturating_sub(1);
            endpoint = *n;
            if *n == 0 {
                held.per_endpoint.remove(webhook_id);
            }
        }
        total == 0 || total + 1 == self.hand_limit() / 2 || endpoint + 1 == self.endpoint_busy()
    }

    /// Extends the leases of the deliveries this node holds, so one that waits long for its
    /// endpoint (a slow one with a backlog) is not claimed by another node meanwhile.
    async fn renew_leases(&self) {
        if self.lock_in_hand().total == 0 {
            return;
        }
        let until = self.clock.now() + self.lease_for();
        if let Err(e) = self.store.renew_leases(&self.node, until).await {
            tracing::warn!(error = %e, "renewing delivery leases failed");
        }
    }

    fn endpoint_semaphore(&self, webhook_id: &str) -> Arc<Semaphore> {
        let mut map = self.per_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(webhook_id.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_in_flight_per_endpoint.max(1))))
            .clone()
    }

    /// Reserves one token of the endpoint's rate limit; returns how long to wait for it.
    fn reserve_token(&self, hook: &Webhook) -> Duration {
        let Some(rate) = hook.rate_limit.filter(|r| *r > 0).map(f64::from) else { return Duration::ZERO };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let bucket = buckets.entry(hook.id.clone()).or_insert(Bucket { tokens: rate, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(rate);
        bucket.at = now;
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-bucket.tokens / rate) }
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
                format: hook.format,
                secrets,
                headers: &hook.headers.0,
                timeout: Duration::from_millis(hook.timeout_ms.max(1) as u64),
            })
            .await;
        let latency = outcome.latency;
        let finished = decide(&self.config, delivery, hook, event, outcome, self.clock.now());
        let new_status = finished.record.new_status;
        self.store.metrics().webhook_attempt(latency, new_status == "succeeded", new_status);
        finished
    }
}

/// An event read for sending, with its body in each format its endpoints read, each
/// rendered once however many endpoints share it (as the one body was before formats).
struct Rendered {
    row: EventRow,
    bodies: [std::sync::OnceLock<Bytes>; WebhookFormat::ALL.len()],
}

impl Rendered {
    fn new(row: EventRow) -> Rendered {
        Rendered { row, bodies: Default::default() }
    }

    fn body(&self, f: WebhookFormat) -> Bytes {
        self.bodies[f.index()].get_or_init(|| Bytes::from(format::body(f, &self.row))).clone()
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

/// The longest wait a receiver's `Retry-After` is honoured for.
fn retry_after_cap(config: &WebhooksConfig) -> TimeDelta {
    TimeDelta::try_seconds(config.retry_after_cap_secs.min(i64::MAX as u64) as i64).unwrap_or(TimeDelta::MAX)
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
    // Where this attempt stands in the retry schedule: a manual retry restarts the schedule
    // without renumbering attempts.
    let schedule_no = attempt_no - delivery.schedule_from;
    let ctx = EventContext::system();
    let mut events = Vec::new();
    let mut health =
        EndpointHealth { webhook_id: hook.id.clone(), last_success_at: None, failing_since: None, disable: None };
    let mut disable = None;
    // A 2xx whose body says the receiver refused the event (Aghanim's receivers answer so).
    let refused = format::refusal(hook.format, outcome.status, outcome.body.as_deref());
    let error =
        outcome.error.clone().or_else(|| format::answer_error(hook.format, outcome.status?, outcome.body.as_deref()));
    let final_failure = |events: &mut Vec<NewEvent>| {
        let data = json!({
            "webhookId": hook.id, "url": hook.url, "deliveryId": delivery.id, "eventId": event.id,
            "eventType": event.event_type, "attempts": attempt_no,
            "lastStatusCode": outcome.status, "lastError": error,
        });
        events.push(op_event(&ctx, types::WEBHOOK_DELIVERY_EXHAUSTED, hook, data));
    };
    let (new_status, next_attempt_at) = if outcome.succeeded() && refused.is_none() {
        health.last_success_at = Some(now);
        health.failing_since = Some(None);
        ("succeeded", None)
    } else if outcome.status == Some(410) {
        disable = Some("the endpoint answered 410 Gone".to_owned());
        ("failed", None)
    } else if refused.as_ref().is_some_and(|r| r.permanent) {
        // The receiver is up and judged this event: sending it again cannot change the
        // answer, and the endpoint's health is not in question.
        final_failure(&mut events);
        ("failed", None)
    } else {
        health.failing_since = Some(Some(now));
        if let Some(since) = hook.failing_since
            && (now - since).num_seconds() >= config.disable_after_failing_secs as i64
        {
            disable = Some(format!("no successful delivery since {}", super::rfc3339(since)));
        }
        match retry_delay(config, schedule_no.max(1) as usize) {
            Some(delay) => {
                // A 429/503's `Retry-After` may put the retry off (up to the cap), never bring
                // it forward: honouring `Retry-After: 0` spent all six attempts within a second.
                let asked = match outcome.status {
                    Some(429 | 503) => outcome.retry_after.map(|r| r.wait_from(now).min(retry_after_cap(config))),
                    _ => None,
                };
                let wait = asked.map_or(delay, |asked| asked.max(delay));
                ("pending", Some(now.checked_add_signed(wait).unwrap_or(DateTime::<Utc>::MAX_UTC)))
            }
            None => {
                final_failure(&mut events);
                ("failed", None)
            }
        }
    };
    // Its event is written only if this attempt is what turns the endpoint off (see `Disable`).
    health.disable = disable.map(|reason| {
        let data = json!({"webhookId": hook.id, "url": hook.url, "reason": reason});
        Disable { reason, event: op_event(&ctx, types::WEBHOOK_ENDPOINT_DISABLED, hook, data) }
    });
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
            error,
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

/// Finished attempts recorded at most in one transaction.
const RESULTS_BATCH: usize = 1000;

/// Writes finished attempts in batches: one transaction for many results.
async fn write_results(store: Store, finished: mpsc::Receiver<Finished>) {
    batch::run(ResultWriter(store), finished, RESULTS_BATCH).await;
}

/// The result writer on the `store::batch` primitive. A result that can never be written does
/// not hold back the others: its write breaks a constraint (the usual case: its endpoint was
/// deleted while it was being sent, taking the delivery with it, so the attempt row has
/// nothing to belong to), the batch is written one result at a time, and that result is
/// dropped and logged; retrying it made the writer retry the same batch forever and record
/// nothing else. While the database is unreachable the batch waits and is written again.
struct ResultWriter(Store);

impl batch::Writer for ResultWriter {
    type Job = Finished;
    type Output = ();
    type Error = StoreError;

    async fn write(&mut self, jobs: &[Finished], _again: bool) -> Result<Vec<()>, batch::Failure<StoreError>> {
        write_batch(&self.0, jobs).await.map_err(batch::Failure::Batch)?;
        Ok(vec![(); jobs.len()])
    }

    fn answer(&mut self, result: Finished, outcome: Result<(), StoreError>) {
        if let Err(e) = outcome {
            dropped(&result, &e);
        }
    }

    fn unavailable(&self, error: &StoreError) -> bool {
        matches!(error, StoreError::Unavailable(_))
    }

    fn copy(&self, _: &StoreError) -> StoreError {
        StoreError::Unavailable(sqlx::Error::PoolClosed)
    }

    /// Not lost: the deliveries stay leased and are retried when the lease ends; but a
    /// result recorded late spares the receiver a second delivery.
    fn retry_after(&self, attempt: u32) -> Option<Duration> {
        Some((Duration::from_millis(100) * 2u32.saturating_pow(attempt.min(7))).min(Duration::from_secs(10)))
    }
}

fn dropped(result: &Finished, error: &StoreError) {
    let attempt = &result.record.attempt;
    tracing::warn!(
        error = %error,
        delivery_id = %attempt.delivery_id,
        webhook_id = %result.record.webhook_id,
        attempt = attempt.attempt,
        "dropped a delivery result the database refuses (usually: its endpoint was deleted while it was being sent)"
    );
}

async fn write_batch(store: &Store, batch: &[Finished]) -> crate::store::StoreResult<()> {
    let records: Vec<&AttemptRecord> = batch.iter().map(|f| &f.record).collect();
    let health = merge_health(batch.iter().filter_map(|f| f.health.clone()));
    let events: Vec<&NewEvent> = batch.iter().flat_map(|f| &f.events).collect();
    store.record_attempts(&records, &health, &events).await
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
