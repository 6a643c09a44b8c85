//! Webhook endpoints: validation, secrets and their rotation, the connection test, replay.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use super::{
    retry_on_stale,
    validate::{Checks, nullable},
};
use crate::secret::{ExposeSecret, Secret};
use crate::vocab::DeliveryStatus;
use crate::{
    domain::{DomainError, DomainResult},
    events::{EventContext, types},
    store::{
        self, Store,
        events::EventRow,
        webhooks::{Attempt, Delivery, Webhook, WebhookFormat},
    },
    webhooks::{
        format, matches,
        sender::{Guard, Outgoing, Sender, is_reserved_header},
    },
};

/// The old secret keeps signing beside the new one this long after a rotation.
pub const ROTATION_OVERLAP: TimeDelta = TimeDelta::hours(24);
pub const MAX_TIMEOUT_SECS: f64 = 30.0;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub name: Option<String>,
    #[schema(value_type = Option<String>)]
    pub secret: Option<Secret>,
    pub active: Option<bool>,
    pub description: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(alias = "rate_limit")]
    pub rate_limit: Option<i32>,
    /// Seconds, up to 30 (default 3).
    pub timeout: Option<f64>,
    /// The payload format the receiver reads (default `herald`); see docs/WEBHOOKS.md.
    pub format: Option<WebhookFormat>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, alias = "rate_limit", deserialize_with = "nullable")]
    pub rate_limit: Option<Option<i32>>,
    pub timeout: Option<f64>,
    pub format: Option<WebhookFormat>,
}

/// Whether `name` is a valid event type name: dot-separated words of letters, digits, `_`, `-`.
pub fn is_event_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

/// Whether `pattern` is `*`, an event type, or a prefix pattern like `user.*`.
pub fn is_pattern(pattern: &str) -> bool {
    pattern == "*" || pattern.strip_suffix(".*").map_or_else(|| is_event_name(pattern), is_event_name)
}

fn check_pattern(c: &mut Checks, pattern: &str) {
    if !is_pattern(pattern) {
        c.fail("events", format!("`{pattern}` is not an event type, `*`, or a prefix pattern like `user.*`"));
    }
}

async fn check_webhook(guard: &Guard, w: &Webhook) -> DomainResult<()> {
    let mut c = Checks::default();
    if let Err(msg) = guard.check_url(&w.url).await {
        c.fail("url", msg);
    }
    if w.url.len() > 2048 {
        c.fail("url", "must be at most 2048 characters");
    }
    if w.events.0.is_empty() {
        c.fail("events", "list at least one event type or pattern (`*` for all)");
    }
    if w.events.0.len() > 100 {
        c.fail("events", "at most 100 patterns");
    }
    for p in &w.events.0 {
        check_pattern(&mut c, p);
    }
    c.opt_text("name", w.name.as_deref(), 100);
    c.opt_text("description", w.description.as_deref(), 1000);
    let secret = w.secret.expose_secret();
    if secret.len() < 8 || secret.len() > 256 || secret.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        c.fail("secret", "must be 8 to 256 characters without spaces");
    } else if secret.starts_with("whsec_") && herald_webhooks::standard_key(secret).is_err() {
        c.fail("secret", "a `whsec_` secret must be followed by base64");
    }
    if w.headers.0.len() > 20 {
        c.fail("headers", "at most 20 custom headers");
    }
    for (name, value) in &w.headers.0 {
        let valid_name = !name.is_empty()
            && name.len() <= 100
            && name.chars().all(|ch| ch.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(ch));
        if !valid_name {
            c.fail("headers", format!("`{name}` is not a valid header name"));
        } else if is_reserved_header(name) {
            c.fail("headers", format!("`{name}` is set by Herald and cannot be overridden"));
        }
        if value.len() > 1024 || value.chars().any(|ch| ch.is_control()) {
            c.fail(
                "headers",
                format!("the value of `{name}` must be at most 1024 characters without control characters"),
            );
        }
    }
    if let Some(rate) = w.rate_limit
        && !(1..=10_000).contains(&rate)
    {
        c.fail("rateLimit", "must be 1 to 10000 deliveries per second (or null for no limit)");
    }
    c.finish()
}

fn timeout_ms(field_value: Option<f64>, default_ms: u32) -> DomainResult<i32> {
    match field_value {
        None => Ok(default_ms.min(30_000) as i32),
        Some(secs) if secs.is_finite() && secs > 0.0 && secs <= MAX_TIMEOUT_SECS => {
            Ok((secs * 1000.0).round().max(1.0) as i32)
        }
        Some(_) => Err(DomainError::invalid_field("timeout", "must be more than 0 and at most 30 seconds")),
    }
}

pub async fn create(
    store: &Store,
    sender: &Sender,
    default_timeout_ms: u32,
    ctx: &EventContext,
    project_id: &str,
    input: NewWebhook,
) -> DomainResult<Webhook> {
    let now = store::now();
    let w = Webhook {
        id: store::new_id(),
        project_id: project_id.to_owned(),
        name: input.name,
        url: input.url,
        description: input.description,
        events: Json(input.events),
        secret: input.secret.unwrap_or_else(|| Secret::new(herald_webhooks::generate_secret())),
        previous_secret: None,
        previous_secret_expires_at: None,
        active: input.active.unwrap_or(true),
        headers: Json(input.headers.unwrap_or_default()),
        rate_limit: input.rate_limit,
        timeout_ms: timeout_ms(input.timeout, default_timeout_ms)?,
        format: input.format.unwrap_or_default(),
        disabled_reason: None,
        disabled_at: None,
        last_success_at: None,
        failing_since: None,
        created_seq: 0,
        created_at: now,
        updated_at: now,
    };
    check_webhook(sender.guard(), &w).await?;
    store.insert_webhook(ctx, &w).await?;
    Ok(w)
}

/// Reads, changes, checks and writes an endpoint, retrying if it changed meanwhile.
pub async fn modify(
    store: &Store,
    sender: &Sender,
    ctx: &EventContext,
    project_id: &str,
    id: &str,
    event_type: &'static str,
    change: impl Fn(&mut Webhook) -> DomainResult<()>,
) -> DomainResult<Webhook> {
    let change = &change;
    retry_on_stale(|| async move {
        let current = store.get_webhook(project_id, id).await?;
        let mut w = current.clone();
        change(&mut w)?;
        if w.active && !current.active {
            // Re-enabled by hand: forget why it was disabled and how long it had failed.
            w.disabled_reason = None;
            w.disabled_at = None;
            w.failing_since = None;
        }
        check_webhook(sender.guard(), &w).await?;
        w.updated_at = store::next_updated_at(current.updated_at);
        store.update_webhook(ctx, &w, current.updated_at, &[event_type]).await?;
        Ok(w)
    })
    .await
}

pub async fn update(
    store: &Store,
    sender: &Sender,
    ctx: &EventContext,
    project_id: &str,
    id: &str,
    patch: WebhookPatch,
) -> DomainResult<Webhook> {
    let timeout = match patch.timeout {
        Some(t) => Some(timeout_ms(Some(t), 0)?),
        None => None,
    };
    modify(store, sender, ctx, project_id, id, types::WEBHOOK_UPDATED, |w| {
        if let Some(v) = &patch.url {
            w.url = v.clone();
        }
        if let Some(v) = &patch.events {
            w.events = Json(v.clone());
        }
        if let Some(v) = &patch.name {
            w.name = v.clone();
        }
        if let Some(v) = patch.active {
            w.active = v;
        }
        if let Some(v) = &patch.description {
            w.description = v.clone();
        }
        if let Some(v) = &patch.headers {
            w.headers = Json(v.clone());
        }
        if let Some(v) = patch.rate_limit {
            w.rate_limit = v;
        }
        if let Some(v) = timeout {
            w.timeout_ms = v;
        }
        if let Some(v) = patch.format {
            w.format = v;
        }
        Ok(())
    })
    .await
}

/// Replaces the secret (with `new_secret` or a generated one); the old one keeps signing
/// beside it for [`ROTATION_OVERLAP`].
pub async fn rotate_secret(
    store: &Store,
    sender: &Sender,
    ctx: &EventContext,
    project_id: &str,
    id: &str,
    new_secret: Option<Secret>,
) -> DomainResult<Webhook> {
    let secret = new_secret.unwrap_or_else(|| Secret::new(herald_webhooks::generate_secret()));
    modify(store, sender, ctx, project_id, id, types::WEBHOOK_SECRET_ROTATED, |w| {
        if w.secret.expose_secret() == secret.expose_secret() {
            return Err(DomainError::invalid_field("secret", "the new secret must differ from the current one"));
        }
        w.previous_secret = Some(std::mem::replace(&mut w.secret, secret.clone()));
        w.previous_secret_expires_at = Some(store::now() + ROTATION_OVERLAP);
        Ok(())
    })
    .await
}

/// The result of `POST /webhooks/{id}/test`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    /// The endpoint answered 2xx within its timeout, and as its format's test asks: no
    /// refusal in the body (`aghanim`), `{"success": true}` (`gromach`).
    pub success: bool,
    /// The HTTP status of the answer (`null` if none came: timeout, connection error).
    pub status_code: Option<u16>,
    /// Milliseconds from sending to the answer.
    pub latency_ms: u128,
    /// The first 4 KiB of the answer.
    pub response_body: Option<String>,
    /// Whether the answer was `{"success": true}` (the seeds' connection-test convention).
    pub receiver_success: bool,
    /// Why no answer came (timeout, connection refused, refused address); `null` when one did.
    pub error: Option<String>,
    /// The `id` of the `test` event sent (also its `webhook-id` header). Test events are not
    /// stored, so `GET /events/{id}` does not find it.
    pub event_id: String,
    /// The delivery recorded for this test: in the endpoint's delivery log, with `test: true`
    /// and its one attempt (`GET /deliveries/{id}`).
    pub delivery_id: String,
}

/// Sends an event of type `test` to the endpoint now (not through the outbox), once, and
/// records it as a finished delivery marked `test`, so it shows in the delivery log.
pub async fn send_test(store: &Store, sender: &Sender, hook: &Webhook, now: DateTime<Utc>) -> DomainResult<TestResult> {
    let event = EventRow {
        seq: 0,
        id: store::new_id(),
        organization_id: None,
        project_id: Some(hook.project_id.clone()),
        event_type: types::TEST.into(),
        resource_type: Some("webhook".into()),
        resource_id: Some(hook.id.clone()),
        data: Json(format::test_data(hook.format, &hook.id, hook.name.as_deref())),
        request_id: None,
        actor: None,
        idempotency_key: None,
        sandbox: false,
        occurred_at: now,
    };
    let secrets = hook.signing_secrets(now);
    let outcome = sender
        .send(Outgoing {
            url: &hook.url,
            body: format::body(hook.format, &event).into(),
            msg_id: &event.id,
            format: hook.format,
            secrets,
            headers: &hook.headers.0,
            timeout: std::time::Duration::from_millis(hook.timeout_ms.max(1) as u64),
        })
        .await;
    let receiver_success = format::receiver_said_success(outcome.body.as_deref());
    let success = format::test_passed(hook.format, outcome.status, outcome.body.as_deref());
    // The delivery log shows what the dispatcher would record for the same answer, and why a
    // 2xx did not pass the format's test.
    let logged_error = outcome.error.clone().or_else(|| {
        let status = outcome.status?;
        format::answer_error(hook.format, status, outcome.body.as_deref()).or_else(|| {
            (!success).then(|| {
                format!(
                    "the endpoint answered {status} without {{\"success\": true}}, which a {} test needs",
                    hook.format
                )
            })
        })
    });
    let finished = store::truncate(now + TimeDelta::from_std(outcome.latency).unwrap_or_default());
    let delivery = Delivery {
        id: store::new_id(),
        project_id: hook.project_id.clone(),
        webhook_id: hook.id.clone(),
        event_id: event.id.clone(),
        event_seq: 0,
        status: if success { DeliveryStatus::Succeeded } else { DeliveryStatus::Failed },
        attempts: 1,
        schedule_from: 0,
        next_attempt_at: None,
        lease_owner: None,
        lease_expires_at: None,
        last_status_code: outcome.status.map(i32::from),
        last_error: logged_error.clone(),
        created_at: now,
        updated_at: finished,
        completed_at: Some(finished),
        test: true,
    };
    let attempt = Attempt {
        id: store::new_id(),
        delivery_id: delivery.id.clone(),
        attempt: 1,
        attempted_at: now,
        status_code: outcome.status.map(i32::from),
        latency_ms: outcome.latency.as_millis().min(i32::MAX as u128) as i32,
        response_headers: Json(outcome.headers),
        response_body: outcome.body.clone(),
        error: logged_error,
        next_attempt_at: None,
    };
    store.insert_test_delivery(&delivery, &attempt).await?;
    Ok(TestResult {
        success,
        status_code: outcome.status,
        latency_ms: outcome.latency.as_millis(),
        response_body: outcome.body,
        receiver_success,
        error: outcome.error,
        event_id: event.id,
        delivery_id: delivery.id,
    })
}

/// Makes a delivery due now again, with a fresh retry schedule. A test ping is not retried:
/// it is sent once, and another test is another `POST /webhooks/{id}/test`.
pub async fn retry_delivery(store: &Store, project_id: &str, id: &str, now: DateTime<Utc>) -> DomainResult<Delivery> {
    let delivery = store.get_delivery(project_id, id).await?;
    if delivery.test {
        return Err(DomainError::conflict(
            "a test delivery is sent once and cannot be retried; send another test with POST /webhooks/{id}/test",
        ));
    }
    Ok(store.retry_delivery_now(project_id, id, now).await?)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Replay {
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    /// `failed`: only events whose delivery to this endpoint failed; `all` (default): every
    /// matching event in the range, including those that arrived while it was disabled.
    pub status: Option<String>,
}

/// Queues the replay; the new deliveries are due at `now`.
pub async fn replay(store: &Store, hook: &Webhook, input: Replay, now: DateTime<Utc>) -> DomainResult<usize> {
    let until = input.until.unwrap_or_else(store::now);
    if until <= input.since {
        return Err(DomainError::invalid_field("until", "must be after since"));
    }
    let only_failed = match input.status.as_deref() {
        None | Some("all") => false,
        Some("failed") => true,
        Some(_) => return Err(DomainError::invalid_field("status", "must be `failed` or `all`")),
    };
    Ok(store.replay(hook, input.since, until, only_failed, now, matches).await?)
}

/// An active endpoint the profile will refuse to send to, and why (no URL: its path or query
/// may carry a token).
#[derive(Debug)]
pub struct RefusedEndpoint {
    pub webhook_id: String,
    pub project_id: String,
    pub reason: String,
}

/// The active endpoints `guard` will refuse to send to: in production, those saved in the
/// development profile with `http://` or an internal target. None in development. Host names
/// are looked up (16 at a time, each for at most 5 s), so this runs beside the server rather
/// than before it starts.
pub async fn refused_endpoints(store: &Store, guard: &Guard) -> store::StoreResult<Vec<RefusedEndpoint>> {
    use futures_util::StreamExt;
    if !guard.is_production() {
        return Ok(Vec::new());
    }
    let hooks = store.active_webhooks().await?;
    let mut refused: Vec<RefusedEndpoint> = futures_util::stream::iter(hooks)
        .map(|w| async move {
            let reason =
                tokio::time::timeout(std::time::Duration::from_secs(5), guard.refusal(&w.url)).await.ok()??;
            Some(RefusedEndpoint { webhook_id: w.id, project_id: w.project_id, reason })
        })
        .buffer_unordered(16)
        .filter_map(std::future::ready)
        .collect()
        .await;
    refused.sort_by(|a, b| a.webhook_id.cmp(&b.webhook_id));
    Ok(refused)
}
