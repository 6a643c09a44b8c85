//! Deciding what an attempt's outcome means: the attempt row, the delivery's next state (a
//! retry, with its delay, or a final failure), endpoint health and operational events.

use super::*;

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
pub(super) fn decide(
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
        (DeliveryStatus::Succeeded, None)
    } else if outcome.status == Some(410) {
        disable = Some("the endpoint answered 410 Gone".to_owned());
        (DeliveryStatus::Failed, None)
    } else if refused.as_ref().is_some_and(|r| r.permanent) {
        // The receiver is up and judged this event: sending it again cannot change the
        // answer, and the endpoint's health is not in question.
        final_failure(&mut events);
        (DeliveryStatus::Failed, None)
    } else {
        health.failing_since = Some(Some(now));
        if let Some(since) = hook.failing_since
            && (now - since).num_seconds() >= config.disable_after_failing_secs as i64
        {
            disable = Some(format!("no successful delivery since {}", crate::webhooks::rfc3339(since)));
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
                (DeliveryStatus::Pending, Some(now.checked_add_signed(wait).unwrap_or(DateTime::<Utc>::MAX_UTC)))
            }
            None => {
                final_failure(&mut events);
                (DeliveryStatus::Failed, None)
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
