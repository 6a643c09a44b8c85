//! The dispatcher: turns outbox events into deliveries, claims due deliveries under a lease,
//! sends them with bounded concurrency, and records every attempt.
//!
//! Nothing lives only in memory: an event is a row before any of its deliveries is sent, a
//! delivery is a row before its result is recorded (it is sent while the row is written, see
//! [`TwoStep`]), and the result is a row after. A node
//! that dies mid-send leaves leased rows that any node claims again once the lease runs out,
//! or events not yet marked fanned out, so every event is delivered at least once.

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
use crate::vocab::DeliveryStatus;
use crate::{
    config::WebhooksConfig,
    events::{EventContext, NewEvent, types},
    store::{
        Store, StoreError, batch,
        events::EventRow,
        webhooks::{
            Attempt, AttemptRecord, Delivery, Disable, EndpointHealth, FanOut, FanOutWrite, Lease, Webhook,
            WebhookFormat,
        },
    },
};

mod decide;
mod liveness;
mod results;
use decide::decide;
pub use decide::retry_delay;
use liveness::StoppedOnDrop;
pub use liveness::{Liveness, LoopState};
use results::write_results;

/// How often a busy dispatcher vacuums the outbox queue (see `Store::vacuum_outbox`).
const VACUUM_OUTBOX_EVERY: Duration = Duration::from_secs(1);

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
///
/// Written by hand, not with `governor` (which the API's rate limit uses): each endpoint has
/// its own rate, changed whenever the endpoint is saved, where governor's keyed limiter holds
/// one quota for every key; and a delivery reserves its token when it is taken, so the sends
/// waiting for one endpoint are spaced exactly, where governor only answers "not before t"
/// without reserving (its `until_ready` waiters wake together and check again).
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

/// The fan-out in two steps (`Store::plan_fan_out`): a plan's deliveries are sent while its
/// rows are written.
#[derive(Default)]
struct TwoStep {
    /// The plans being written, oldest first: at most `Store::fan_out_writes_at_once`. On
    /// SQLite one: the next starts after its last event, and is written after it.
    writing: Vec<Writing>,
    /// The last write failed: until one succeeds, rows are written before anything is sent,
    /// so a store that cannot write (a full disk) does not have the same events sent again at
    /// every round.
    failed: bool,
}

struct Writing {
    /// The events it covers, sorted: on SQLite the next plan starts after the last. On
    /// PostgreSQL a failed write rolls back and puts them back in the queue, where the next
    /// plan can take them before this dispatcher has heard of the failure.
    seqs: Vec<i64>,
    written: Written,
}

/// Whether a fan-out's rows were written: `None` while they are being written. A delivery's
/// result is recorded only once its row exists; if the rows are not written, the events are
/// fanned out again (SQLite: from the cursor; PostgreSQL: from the queue, where the rollback
/// put them back) and sent again (at least once, never lost).
type Written = watch::Receiver<Option<bool>>;

async fn was_written(mut written: Written) -> bool {
    matches!(written.wait_for(Option::is_some).await.map(|v| *v), Ok(Some(true)))
}

/// What one [`Dispatcher::round`] did.
#[derive(Default)]
struct Round {
    /// It fanned out events or claimed deliveries.
    worked: bool,
    /// It claimed deliveries: there may be more due at once.
    claimed: bool,
    /// Due work may have been left for lack of room.
    starved: bool,
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
        let mut two_step = TwoStep::default();
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
            let round = match self.round(&results, &mut claims, &mut two_step).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "dispatcher round failed; retrying");
                    Round::default()
                }
            };
            if round.worked && vacuumed.elapsed() >= VACUUM_OUTBOX_EVERY {
                vacuumed = Instant::now();
                if let Err(e) = self.store.vacuum_outbox().await {
                    tracing::warn!(error = %e, "vacuuming the outbox queue failed");
                }
            }
            // On SQLite not after every round that did something: every event is committed on
            // this node, and those committed during the round left their permit on `wake`, so
            // the next round starts at once when there are some, and one that would find none
            // is not run. On PostgreSQL other nodes' events wake no one here: while busy, look
            // again at once.
            if round.claimed || (round.worked && self.store.is_shared()) {
                continue;
            }
            let starved = round.starved;
            tokio::select! {
                _ = wake.dispatcher.notified() => {
                    if self.config.linger_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(self.config.linger_ms)).await;
                    }
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
    /// due deliveries into the room left when there may be some (see [`Claims`]).
    async fn round(
        self: &Arc<Self>,
        results: &mpsc::Sender<Finished>,
        claims: &mut Claims,
        two_step: &mut TwoStep,
    ) -> anyhow::Result<Round> {
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
            // Forget the plans written; one that failed means writing before sending.
            two_step.writing.retain(|w| match *w.written.borrow() {
                Some(ok) => {
                    two_step.failed |= !ok;
                    false
                }
                None => true,
            });
            let after = two_step.writing.last().and_then(|w| w.seqs.last().copied());
            let Some(planned) = self.store.plan_fan_out(after, batch, now, &mut lease, matches).await? else {
                break;
            };
            // Events of a plan being written, planned again: that write failed. Learn it
            // before sending them a second time.
            let (again, others): (Vec<Writing>, Vec<Writing>) = std::mem::take(&mut two_step.writing)
                .into_iter()
                .partition(|w| planned.out.event_rows.iter().any(|e| w.seqs.binary_search(&e.seq).is_ok()));
            two_step.writing = others;
            for w in again {
                two_step.failed |= !was_written(w.written).await;
            }
            let fanned = if two_step.failed {
                self.store.write_fan_out(planned.write).await?;
                two_step.failed = false;
                self.start_fanned_out(planned.out, results, None, claims)
            } else {
                let (done, written) = watch::channel(None);
                let mut seqs: Vec<i64> = planned.out.event_rows.iter().map(|e| e.seq).collect();
                seqs.sort_unstable();
                let fanned = self.start_fanned_out(planned.out, results, Some(written.clone()), claims);
                self.write_in_order(planned.write, Writing { seqs, written }, done, two_step).await?;
                fanned
            };
            worked |= fanned > 0;
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
            return Ok(Round { worked, claimed: false, starved: claims.owed });
        }
        if !claims.owed && claims.last.is_some_and(|at| at.elapsed() < self.poll_interval()) {
            return Ok(Round { worked, claimed: false, starved: false });
        }
        let now = self.clock.now();
        let limit = (room as i64).min(batch);
        claims.last = Some(Instant::now());
        let claimed = self.store.claim_deliveries(&self.node, now, now + lease_for, limit, &skip).await?;
        let starved = claimed.len() as i64 == limit || !skip.is_empty();
        claims.owed = starved;
        if claimed.is_empty() {
            return Ok(Round { worked, claimed: false, starved });
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
                self.start(delivery, hook.clone(), event.clone(), results, None);
            }
        }
        Ok(Round { worked: true, claimed: true, starved })
    }

    /// Writes a fan-out planned by `Store::plan_fan_out` in the background, while its
    /// deliveries are sent, rather than sending them after the commit (with `synchronous =
    /// FULL` or PostgreSQL's defaults, a disk flush: most of the time from publish to arrival
    /// at low load). At most `Store::fan_out_writes_at_once` are under way: past that, this
    /// waits for the oldest, and when that one failed, writes nothing (on SQLite, where plans
    /// are written one at a time and in order, the cursor must not pass events whose
    /// deliveries were not written; PostgreSQL's transaction rolls back): the next round
    /// starts again from the events not fanned out, writing before it sends. (On PostgreSQL
    /// each plan is its own transaction, and waiting for the one before made each round wait
    /// for a commit: the rounds, and an event's wait for one, were twice as long.)
    async fn write_in_order(
        &self,
        write: FanOutWrite,
        writing: Writing,
        done: watch::Sender<Option<bool>>,
        two_step: &mut TwoStep,
    ) -> anyhow::Result<()> {
        while two_step.writing.len() >= self.store.fan_out_writes_at_once() {
            let oldest = two_step.writing.remove(0);
            if !was_written(oldest.written).await {
                let _ = done.send(Some(false));
                two_step.failed = true;
                anyhow::bail!("a fan-out was not written; fanning its events out again");
            }
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            let result = store.write_fan_out(write).await;
            if let Err(e) = &result {
                tracing::warn!(error = %e, "writing a fan-out failed; its events are fanned out again");
            }
            let _ = done.send(Some(result.is_ok()));
        });
        two_step.writing.push(writing);
        Ok(())
    }

    /// Starts the deliveries a fan-out leased to this node, from the rows it already read.
    /// Returns how many events it covered. `written`: whether the rows exist yet (see
    /// [`Written`]); `None` when they were written before.
    fn start_fanned_out(
        self: &Arc<Self>,
        out: FanOut,
        results: &mpsc::Sender<Finished>,
        written: Option<Written>,
        claims: &mut Claims,
    ) -> usize {
        // Deliveries created without a lease (no room) wait in the database for a claim.
        claims.owed |= out.created > out.leased.len();
        if out.leased.is_empty() {
            return out.events;
        }
        let events = out.events;
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
            self.start(delivery, hooks[h].clone(), event, results, written.clone());
        }
        events
    }

    /// Holds `delivery` and sends it once its endpoint has a free slot (and a rate token) and
    /// the node has a free send slot.
    fn start(
        self: &Arc<Self>,
        delivery: Delivery,
        hook: Arc<Webhook>,
        event: Arc<Rendered>,
        results: &mpsc::Sender<Finished>,
        written: Option<Written>,
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
            // Its rows already failed to be written while it waited for a slot: its event is
            // fanned out again, so sending it now would only be a second copy.
            let unwritten = written.as_ref().is_some_and(|w| *w.borrow() == Some(false));
            let finished = if unwritten {
                None
            } else {
                let body = event.body(hook.format);
                Some(this.attempt(&delivery, &hook, &event.row, body).await)
            };
            drop((endpoint, global));
            let recorded = match written {
                Some(written) => was_written(written).await,
                None => true,
            };
            if this.release(&hook.id) {
                this.freed.notify_one();
            }
            if let (true, Some(finished)) = (recorded, finished) {
                let _ = results.send(finished).await;
            }
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
        self.store.metrics().webhook_attempt(latency, new_status == DeliveryStatus::Succeeded, new_status);
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
