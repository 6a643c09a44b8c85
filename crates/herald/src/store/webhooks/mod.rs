//! Webhook endpoints, deliveries and their attempts: the rows and the endpoints' operations
//! here; the delivery queue (fan-out, claims, leases, recording results) in `queue.rs`; the
//! delivery log and its clean-up in `log.rs`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use super::{
    Backend, Page, PageRequest, Store, StoreError, StoreResult,
    events::{EVENT_COLUMNS, EventRow},
    expect_one_row, fetch_page, query_builder,
    script::{self, Arg, Script},
    with_pool, write_with_events,
};
use crate::events::{EventContext, NewEvent, types};

mod log;
mod queue;
pub use queue::{FanOut, FanOutWrite, Lease, PlannedFanOut};

/// The payload format of an endpoint (`format` in the webhooks API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Herald's envelope (`id`, `type`, `event`, `occurredAt`, `resource`, `data`, ...).
    #[default]
    Herald,
    /// The Gatrix guide's `{event, data}`, signed in `x-gatrix-signature`.
    Gatrix,
    /// bkend's `{id, eventType, aggregateType, aggregateId, payload, occurredAt, metadata}`.
    Bkend,
    /// Aghanim's `{event_id, game_id, event_type, event_time, event_data, ...}`, signed in
    /// `X-Aghanim-Signature`; its receivers answer errors as 200 `{"status": "error"}`.
    Aghanim,
    /// GroMach's `{event_type, timestamp, data}`; its connection test wants `{"success": true}`.
    Gromach,
}

impl WebhookFormat {
    pub const ALL: [WebhookFormat; 5] = [
        WebhookFormat::Herald,
        WebhookFormat::Gatrix,
        WebhookFormat::Bkend,
        WebhookFormat::Aghanim,
        WebhookFormat::Gromach,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Herald => "herald",
            WebhookFormat::Gatrix => "gatrix",
            WebhookFormat::Bkend => "bkend",
            WebhookFormat::Aghanim => "aghanim",
            WebhookFormat::Gromach => "gromach",
        }
    }

    /// Position in [`WebhookFormat::ALL`], for per-format caches.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for WebhookFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for WebhookFormat {
    type Error = String;

    fn try_from(s: String) -> Result<WebhookFormat, String> {
        WebhookFormat::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| format!("unknown webhook format `{s}`"))
    }
}

/// An endpoint. It holds its secrets, so it has no `Serialize`: events carry
/// [`super::payload::Webhook`], the API `api::webhooks::WebhookView` over it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Webhook {
    pub id: String,
    pub project_id: String,
    pub name: Option<String>,
    pub url: String,
    pub description: Option<String>,
    /// Event type patterns: exact names, `*`, or prefixes like `user.*`.
    pub events: Json<Vec<String>>,
    pub secret: crate::secret::Secret,
    pub previous_secret: Option<crate::secret::Secret>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub active: bool,
    pub headers: Json<BTreeMap<String, String>>,
    /// Deliveries per second (per node); `None`: unlimited.
    pub rate_limit: Option<i32>,
    /// Shown as `timeout` (seconds) by the API.
    pub timeout_ms: i32,
    /// The payload format its receiver reads (`herald` unless set).
    #[sqlx(try_from = "String")]
    pub format: WebhookFormat,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    /// The outbox sequence when the endpoint was created: older events are not fanned out to
    /// it (replay can still send them).
    pub created_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    #[serde(skip)]
    pub project_id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_seq: i64,
    #[schema(value_type = String)]
    pub status: crate::vocab::DeliveryStatus,
    /// How many attempts were made (`GET /deliveries/{id}` lists them as `attempts`); the
    /// next one is numbered `attempts + 1`, so numbers never repeat.
    #[serde(rename = "attemptCount")]
    pub attempts: i32,
    /// `attempts` when the retry schedule last started: 0, or the count at the last manual
    /// retry, which restarts the schedule but not the numbering.
    #[serde(skip)]
    pub schedule_from: i32,
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
    /// A test ping (`POST /webhooks/{id}/test`): sent once and never retried; its event
    /// (type `test`) is not stored.
    #[sqlx(rename = "is_test")]
    pub test: bool,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub id: String,
    #[serde(skip)]
    pub delivery_id: String,
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    #[schema(value_type = BTreeMap<String, String>)]
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
    /// `Pending` (retry at `attempt.next_attempt_at`), `Succeeded` or `Failed`.
    pub new_status: crate::vocab::DeliveryStatus,
}

/// Changes to an endpoint's health after a batch of attempts.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    pub webhook_id: String,
    pub last_success_at: Option<DateTime<Utc>>,
    /// `Some(Some(t))`: failing since `t`; `Some(None)`: healthy again; `None`: unchanged.
    pub failing_since: Option<Option<DateTime<Utc>>>,
    /// Disable the endpoint, if it is still active.
    pub disable: Option<Disable>,
}

/// Turning an endpoint off, and the `webhook.endpoint_disabled` event saying why. The event is
/// written only by the change that finds the endpoint active: every delivery in flight to an
/// endpoint that answers 410 asks to disable it, and each used to add its own event.
#[derive(Debug, Clone)]
pub struct Disable {
    pub reason: String,
    pub event: NewEvent,
}

pub fn webhook_event(ctx: &EventContext, event_type: &'static str, w: &Webhook) -> NewEvent {
    NewEvent::about(ctx, event_type, (None, Some(&w.project_id)), "webhook", &w.id, &super::payload::Webhook::from(w))
}

impl Webhook {
    /// The secrets that sign a request at `now`: the current one, then the previous one while
    /// a rotation's overlap lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        use crate::secret::ExposeSecret;
        let mut secrets = vec![self.secret.expose_secret()];
        if let (Some(old), Some(until)) = (&self.previous_secret, self.previous_secret_expires_at)
            && until > now
        {
            secrets.push(old.expose_secret());
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
                 last_success_at, failing_since, created_at, updated_at, format, created_seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
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
            .bind(w.format.as_str())
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
        with_pool!(self, read, |pool| {
            fetch_page(pool, "created_at, id", page, |q| {
                q.push("FROM webhooks WHERE project_id = ").push_bind(project_id);
            })
            .await
        })
    }

    /// Every active webhook (any project): for `herald serve`'s start-up check of the profile.
    pub async fn active_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, Webhook>("SELECT * FROM webhooks WHERE active = TRUE ORDER BY created_at, id")
                .fetch_all(pool)
                .await?)
        })
    }

    /// Every webhook with the given ids (any project): for the dispatcher.
    pub async fn webhooks_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Webhook>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_pool!(self, read, |pool| {
            let mut q = query_builder(pool, "SELECT * FROM webhooks WHERE id IN (");
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(id);
            }
            q.push(")");
            Ok(q.build_query_as::<Webhook>().fetch_all(pool).await?)
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
                 timeout_ms = $11, disabled_reason = $12, disabled_at = $13, failing_since = $14, updated_at = $15, \
                 format = $16 WHERE id = $17 AND project_id = $18 AND updated_at = $19",
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
            .bind(w.format.as_str())
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
}
