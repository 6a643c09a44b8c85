//! Webhook endpoints, deliveries and their attempts, and the dispatcher's queue operations:
//! fan-out (events -> deliveries), claiming due deliveries under a lease, recording results.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::{
    Backend, Page, PageRequest, Store, StoreError, StoreResult,
    events::{EVENT_COLUMNS, EventRow},
    expect_one_row, fetch_page, with_pool, write_with_events,
};
use crate::events::{EventContext, NewEvent, types};

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    #[serde(skip)]
    pub project_id: String,
    pub name: Option<String>,
    pub url: String,
    pub description: Option<String>,
    /// Event type patterns: exact names, `*`, or prefixes like `user.*`.
    pub events: Json<Vec<String>>,
    #[serde(skip)]
    pub secret: String,
    #[serde(skip)]
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub active: bool,
    pub headers: Json<BTreeMap<String, String>>,
    /// Deliveries per second (per node); `None`: unlimited.
    pub rate_limit: Option<i32>,
    /// Shown as `timeout` (seconds) by the API.
    #[serde(skip)]
    pub timeout_ms: i32,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    /// The outbox sequence when the endpoint was created: older events are not fanned out to
    /// it (replay can still send them).
    #[serde(skip)]
    pub created_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    #[serde(skip)]
    pub project_id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_seq: i64,
    pub status: String,
    /// How many attempts were made (`GET /deliveries/{id}` lists them as `attempts`).
    #[serde(rename = "attemptCount")]
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub lease_owner: Option<String>,
    #[serde(skip)]
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub id: String,
    #[serde(skip)]
    pub delivery_id: String,
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub response_headers: Json<BTreeMap<String, String>>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// What became of one attempt, ready to be written.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: Attempt,
    pub webhook_id: String,
    /// `pending` (retry at `attempt.next_attempt_at`), `succeeded` or `failed`.
    pub new_status: &'static str,
}

/// Changes to an endpoint's health after a batch of attempts.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    pub webhook_id: String,
    pub last_success_at: Option<DateTime<Utc>>,
    /// `Some(Some(t))`: failing since `t`; `Some(None)`: healthy again; `None`: unchanged.
    pub failing_since: Option<Option<DateTime<Utc>>>,
    /// Disable the endpoint, with this reason.
    pub disable: Option<String>,
}

pub fn webhook_event(ctx: &EventContext, event_type: &'static str, w: &Webhook) -> NewEvent {
    NewEvent::about(ctx, event_type, (None, Some(&w.project_id)), "webhook", &w.id, w)
}

/// A new pending delivery, due at once: `(id, project, webhook, event id, event seq, now)`.
const INSERT_DELIVERY: &str = "INSERT INTO deliveries (id, project_id, webhook_id, event_id, event_seq, status, \
    attempts, next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)";

/// `SELECT ... FOR UPDATE SKIP LOCKED` where the backend has it (PostgreSQL: several nodes
/// share the queue); SQLite's single writer already serializes claimers.
fn lock_clause(backend: &Backend) -> &'static str {
    match backend {
        Backend::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite { .. } => "",
    }
}

fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

impl Webhook {
    /// The secrets that sign a request at `now`: the current one, then the previous one while
    /// a rotation's overlap lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(old), Some(until)) = (&self.previous_secret, self.previous_secret_expires_at)
            && until > now
        {
            secrets.push(old);
        }
        secrets
    }
}

impl Store {
    pub async fn insert_webhook(&self, ctx: &EventContext, w: &Webhook) -> StoreResult<()> {
        let event = webhook_event(ctx, types::WEBHOOK_CREATED, w);
        write_with_events!(self, [&event], |tx| {
            sqlx::query(
                "INSERT INTO webhooks (id, project_id, name, url, description, events, secret, previous_secret, \
                 previous_secret_expires_at, active, headers, rate_limit, timeout_ms, disabled_reason, disabled_at, \
                 last_success_at, failing_since, created_at, updated_at, created_seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                 (SELECT COALESCE(MAX(seq), 0) FROM events))",
            )
            .bind(&w.id)
            .bind(&w.project_id)
            .bind(&w.name)
            .bind(&w.url)
            .bind(&w.description)
            .bind(&w.events)
            .bind(&w.secret)
            .bind(&w.previous_secret)
            .bind(w.previous_secret_expires_at)
            .bind(w.active)
            .bind(&w.headers)
            .bind(w.rate_limit)
            .bind(w.timeout_ms)
            .bind(&w.disabled_reason)
            .bind(w.disabled_at)
            .bind(w.last_success_at)
            .bind(w.failing_since)
            .bind(w.created_at)
            .bind(w.updated_at)
            .execute(&mut *tx)
            .await?
        })
    }

    pub async fn get_webhook(&self, project_id: &str, id: &str) -> StoreResult<Webhook> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, Webhook>("SELECT * FROM webhooks WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("webhook"))
        })
    }

    pub async fn list_webhooks(&self, project_id: &str, page: PageRequest) -> StoreResult<Page<Webhook>> {
        fetch_page!(
            self,
            Webhook,
            "FROM webhooks WHERE project_id = $1".to_string(),
            "created_at, id",
            vec![project_id.to_string()],
            page
        )
    }

    /// Every webhook with the given ids (any project): for the dispatcher.
    pub async fn webhooks_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Webhook>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT * FROM webhooks WHERE id IN ({})", placeholders(1, ids.len()));
        with_pool!(self, read, |pool| {
            let mut q = sqlx::query_as::<_, Webhook>(sqlx::AssertSqlSafe(sql));
            for id in ids {
                q = q.bind(id);
            }
            Ok(q.fetch_all(pool).await?)
        })
    }

    /// Writes `w` if unchanged since `read_at`, with the events named.
    pub async fn update_webhook(
        &self,
        ctx: &EventContext,
        w: &Webhook,
        read_at: DateTime<Utc>,
        event_types: &[&'static str],
    ) -> StoreResult<()> {
        let events: Vec<NewEvent> = event_types.iter().map(|t| webhook_event(ctx, t, w)).collect();
        write_with_events!(self, &events, |tx| {
            let done = sqlx::query(
                "UPDATE webhooks SET name = $1, url = $2, description = $3, events = $4, secret = $5, \
                 previous_secret = $6, previous_secret_expires_at = $7, active = $8, headers = $9, rate_limit = $10, \
                 timeout_ms = $11, disabled_reason = $12, disabled_at = $13, failing_since = $14, updated_at = $15 \
                 WHERE id = $16 AND project_id = $17 AND updated_at = $18",
            )
            .bind(&w.name)
            .bind(&w.url)
            .bind(&w.description)
            .bind(&w.events)
            .bind(&w.secret)
            .bind(&w.previous_secret)
            .bind(w.previous_secret_expires_at)
            .bind(w.active)
            .bind(&w.headers)
            .bind(w.rate_limit)
            .bind(w.timeout_ms)
            .bind(&w.disabled_reason)
            .bind(w.disabled_at)
            .bind(w.failing_since)
            .bind(w.updated_at)
            .bind(&w.id)
            .bind(&w.project_id)
            .bind(read_at)
            .execute(&mut *tx)
            .await?;
            expect_one_row(done.rows_affected())?
        })
    }

    pub async fn delete_webhook(&self, ctx: &EventContext, project_id: &str, id: &str) -> StoreResult<Webhook> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let w = sqlx::query_as::<_, Webhook>("DELETE FROM webhooks WHERE project_id = $1 AND id = $2 RETURNING *")
                .bind(project_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("webhook"))?;
            super::events::insert_event!(&mut *tx, &webhook_event(ctx, types::WEBHOOK_DELETED, &w))?;
            tx.commit().await?;
            self.notify_events();
            Ok(w)
        })
    }

    /// Turns up to `limit` not-yet-fanned-out events into deliveries, one per active endpoint
    /// that `matches`, and marks them fanned out, all in one transaction. Returns how many
    /// events were handled.
    pub async fn fan_out(
        &self,
        limit: i64,
        now: DateTime<Utc>,
        matches: impl Fn(&Webhook, &EventRow) -> bool,
    ) -> StoreResult<usize> {
        let select = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE fanned_out = FALSE ORDER BY seq LIMIT {limit}{}",
            lock_clause(self.backend())
        );
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let events = sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(select)).fetch_all(&mut *tx).await?;
            if events.is_empty() {
                return Ok(0);
            }
            let hooks =
                sqlx::query_as::<_, Webhook>("SELECT * FROM webhooks WHERE active = TRUE").fetch_all(&mut *tx).await?;
            for event in &events {
                for hook in hooks
                    .iter()
                    .filter(|h| Some(&h.project_id) == event.project_id.as_ref() && event.seq > h.created_seq)
                {
                    if !matches(hook, event) {
                        continue;
                    }
                    sqlx::query(INSERT_DELIVERY)
                        .bind(super::new_id())
                        .bind(&hook.project_id)
                        .bind(&hook.id)
                        .bind(&event.id)
                        .bind(event.seq)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let mark = format!("UPDATE events SET fanned_out = TRUE WHERE seq IN ({})", placeholders(1, events.len()));
            let mut q = sqlx::query(sqlx::AssertSqlSafe(mark));
            for e in &events {
                q = q.bind(e.seq);
            }
            q.execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(events.len())
        })
    }

    /// Claims up to `limit` due deliveries for `node` until `lease_until`. A delivery whose
    /// lease ran out (its node died) is due again.
    pub async fn claim_deliveries(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>> {
        let sql = format!(
            "UPDATE deliveries SET lease_owner = $1, lease_expires_at = $2 WHERE id IN (\
             SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $3 \
             AND (lease_expires_at IS NULL OR lease_expires_at <= $3) ORDER BY next_attempt_at LIMIT {limit}{}) \
             RETURNING *",
            lock_clause(self.backend())
        );
        with_pool!(self, write, |pool| {
            Ok(sqlx::query_as::<_, Delivery>(sqlx::AssertSqlSafe(sql))
                .bind(node)
                .bind(lease_until)
                .bind(now)
                .fetch_all(pool)
                .await?)
        })
    }

    pub async fn events_by_ids(&self, ids: &[String]) -> StoreResult<Vec<EventRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id IN ({})", placeholders(1, ids.len()));
        with_pool!(self, read, |pool| {
            let mut q = sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(sql));
            for id in ids {
                q = q.bind(id);
            }
            Ok(q.fetch_all(pool).await?)
        })
    }

    /// Writes a batch of attempt results, endpoint health changes and the operational events
    /// they caused, in one transaction.
    pub async fn record_attempts(
        &self,
        records: &[AttemptRecord],
        health: &[EndpointHealth],
        events: &[NewEvent],
    ) -> StoreResult<()> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            for r in records {
                let a = &r.attempt;
                sqlx::query(
                    "INSERT INTO delivery_attempts (id, delivery_id, attempt, attempted_at, status_code, latency_ms, \
                     response_headers, response_body, error, next_attempt_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&a.id)
                .bind(&a.delivery_id)
                .bind(a.attempt)
                .bind(a.attempted_at)
                .bind(a.status_code)
                .bind(a.latency_ms)
                .bind(&a.response_headers)
                .bind(&a.response_body)
                .bind(&a.error)
                .bind(a.next_attempt_at)
                .execute(&mut *tx)
                .await?;
                let completed = (r.new_status != "pending").then_some(a.attempted_at);
                sqlx::query(
                    "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, lease_owner = NULL, \
                     lease_expires_at = NULL, last_status_code = $4, last_error = $5, updated_at = $6, completed_at = $7 \
                     WHERE id = $8",
                )
                .bind(r.new_status)
                .bind(a.attempt)
                .bind(a.next_attempt_at)
                .bind(a.status_code)
                .bind(&a.error)
                .bind(a.attempted_at)
                .bind(completed)
                .bind(&a.delivery_id)
                .execute(&mut *tx)
                .await?;
            }
            for h in health {
                if let Some(at) = h.last_success_at {
                    sqlx::query(
                        "UPDATE webhooks SET last_success_at = $1, failing_since = NULL WHERE id = $2 \
                         AND (last_success_at IS NULL OR last_success_at < $1)",
                    )
                    .bind(at)
                    .bind(&h.webhook_id)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(Some(since)) = h.failing_since {
                    sqlx::query("UPDATE webhooks SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL")
                        .bind(since)
                        .bind(&h.webhook_id)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(reason) = &h.disable {
                    sqlx::query(
                        "UPDATE webhooks SET active = FALSE, disabled_reason = $1, disabled_at = $2, updated_at = $2 \
                         WHERE id = $3",
                    )
                    .bind(reason)
                    .bind(super::now())
                    .bind(&h.webhook_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for e in events {
                super::events::insert_event!(&mut *tx, e)?;
            }
            tx.commit().await?;
            self.notify_events();
            Ok(())
        })
    }

    pub async fn get_delivery(&self, project_id: &str, id: &str) -> StoreResult<Delivery> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, Delivery>("SELECT * FROM deliveries WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("delivery"))
        })
    }

    pub async fn attempts_of(&self, delivery_id: &str) -> StoreResult<Vec<Attempt>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, Attempt>("SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt")
                .bind(delivery_id)
                .fetch_all(pool)
                .await?)
        })
    }

    pub async fn deliveries_of_event(&self, project_id: &str, event_id: &str) -> StoreResult<Vec<Delivery>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, Delivery>(
                "SELECT * FROM deliveries WHERE project_id = $1 AND event_id = $2 ORDER BY created_at, id",
            )
            .bind(project_id)
            .bind(event_id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Deliveries of one endpoint, newest first, after the cursor `(created_at, id)`.
    pub async fn list_deliveries(
        &self,
        webhook_id: &str,
        status: Option<&str>,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, Delivery>(
                "SELECT * FROM deliveries WHERE webhook_id = $1 AND ($2 IS NULL OR status = $2) \
                 AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) \
                 ORDER BY created_at DESC, id DESC LIMIT $5",
            )
            .bind(webhook_id)
            .bind(status)
            .bind(before.as_ref().map(|b| b.0))
            .bind(before.as_ref().map(|b| b.1.clone()))
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Makes a delivery due now again (manual retry); it gets a fresh set of attempts.
    pub async fn retry_delivery_now(&self, project_id: &str, id: &str, now: DateTime<Utc>) -> StoreResult<Delivery> {
        let delivery = with_pool!(self, write, |pool| {
            sqlx::query_as::<_, Delivery>(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, lease_owner = NULL, \
                 lease_expires_at = NULL, completed_at = NULL, updated_at = $1 \
                 WHERE project_id = $2 AND id = $3 RETURNING *",
            )
            .bind(now)
            .bind(project_id)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .ok_or(StoreError::NotFound("delivery"))
        })?;
        self.notify_events();
        Ok(delivery)
    }

    /// Releases claimed deliveries without attempting them, due again at `until` (their
    /// endpoint was busy or over its rate limit).
    pub async fn defer_deliveries(&self, ids: &[String], until: DateTime<Utc>) -> StoreResult<()> {
        let sql = format!(
            "UPDATE deliveries SET next_attempt_at = $1, lease_owner = NULL, lease_expires_at = NULL WHERE id IN ({})",
            placeholders(2, ids.len())
        );
        with_pool!(self, write, |pool| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(until);
            for id in ids {
                q = q.bind(id);
            }
            q.execute(pool).await?;
            Ok(())
        })
    }

    /// Queues a new delivery to `webhook` for every event of its project in `[since, until)`
    /// that `matches` (for `only_failed`: only events whose last delivery to it failed).
    pub async fn replay(
        &self,
        webhook: &Webhook,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        only_failed: bool,
        now: DateTime<Utc>,
        matches: impl Fn(&Webhook, &EventRow) -> bool,
    ) -> StoreResult<usize> {
        let select = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE project_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
             ORDER BY seq"
        );
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let events = sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(select))
                .bind(&webhook.project_id)
                .bind(since)
                .bind(until)
                .fetch_all(&mut *tx)
                .await?;
            let mut queued = 0;
            for event in events.iter().filter(|e| matches(webhook, e)) {
                if only_failed {
                    let failed: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM deliveries WHERE webhook_id = $1 AND event_id = $2 AND status = 'failed' \
                         AND NOT EXISTS (SELECT 1 FROM deliveries d2 WHERE d2.webhook_id = $1 AND d2.event_id = $2 \
                         AND d2.status <> 'failed')",
                    )
                    .bind(&webhook.id)
                    .bind(&event.id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if failed == 0 {
                        continue;
                    }
                }
                sqlx::query(INSERT_DELIVERY)
                    .bind(super::new_id())
                    .bind(&webhook.project_id)
                    .bind(&webhook.id)
                    .bind(&event.id)
                    .bind(event.seq)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                queued += 1;
            }
            tx.commit().await?;
            self.notify_events();
            Ok(queued)
        })
    }

    /// Deletes finished deliveries (and their attempts) completed before `before`, and
    /// idempotency keys older than `keys_before`. Returns deliveries removed.
    pub async fn clean_up(&self, before: DateTime<Utc>, keys_before: DateTime<Utc>) -> StoreResult<u64> {
        with_pool!(self, write, |pool| {
            let done = sqlx::query("DELETE FROM deliveries WHERE completed_at IS NOT NULL AND completed_at < $1")
                .bind(before)
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(keys_before).execute(pool).await?;
            Ok(done.rows_affected())
        })
    }

    /// How many deliveries are pending, and the oldest pending one's due time.
    pub async fn pending_deliveries(&self) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        with_pool!(self, read, |pool| {
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'").fetch_one(pool).await?;
            let oldest: Option<DateTime<Utc>> =
                sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'")
                    .fetch_one(pool)
                    .await?;
            Ok((count, oldest))
        })
    }
}
