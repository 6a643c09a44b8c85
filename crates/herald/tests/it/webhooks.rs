//! Webhooks end to end: real receivers on loopback, a dispatcher on a hand-moved clock.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::TimeDelta;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    common::{Backend, TestApp, assert_error},
    receiver::{Receiver, Reply},
};

crate::both_backends!(
    seed_registration_delivers_signed_events,
    retries_follow_the_schedule_then_fail_with_an_event,
    gone_disables_the_endpoint,
    retry_after_is_honoured,
    slow_receivers_time_out_and_are_retried,
    rotation_signs_with_both_secrets_for_a_day,
    replay_requeues_missed_events,
    custom_events_idempotency_and_schemas,
    test_route_reports_the_attempt,
    deliveries_are_listed_and_retried_by_hand,
    invalid_endpoints_are_rejected,
    endpoints_failing_for_five_days_are_disabled,
    health_follows_failures_and_recovery,
    rate_limit_caps_deliveries_per_second,
    retention_removes_old_finished_deliveries,
    manual_retry_continues_attempt_numbers,
    test_pings_are_in_the_delivery_log,
    deleting_an_endpoint_mid_send_does_not_stop_recording,
    gone_disables_the_endpoint_once,
);

/// Standard Webhooks verification written out here, independent of herald-webhooks.
fn standard_valid(secret_key: &[u8], msg_id: &str, ts: &str, body: &[u8], header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key).expect("key");
    mac.update(format!("{msg_id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|s| s == expected)
}

fn simple_valid(secret: &str, body: &[u8], header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes()) == header
}

async fn hook(app: &TestApp, body: Value) -> Value {
    let (status, w) = app.post("/api/v1/webhooks", body).await;
    assert_eq!(status, StatusCode::CREATED, "{w}");
    w
}

/// The newest delivery to the endpoint, with its attempts (`None` before fan-out made one).
async fn try_delivery_of(app: &TestApp, webhook_id: &str) -> Option<Value> {
    let (status, page) = app.get(&format!("/api/v1/webhooks/{webhook_id}/deliveries")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let id = page["items"][0]["id"].as_str()?.to_string();
    let (status, d) = app.get(&format!("/api/v1/deliveries/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    Some(d)
}

/// The newest delivery to the endpoint, waiting for fan-out to have written one: a delivery
/// is sent while its row is written, so its receiver can have it a moment before the row is
/// committed.
async fn delivery_of(app: &TestApp, webhook_id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(d) = try_delivery_of(app, webhook_id).await {
            return d;
        }
        assert!(tokio::time::Instant::now() < deadline, "no delivery to {webhook_id} within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits until the delivery's attempts reach `n` (the dispatcher works in the background).
async fn wait_attempts(app: &TestApp, webhook_id: &str, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let d = try_delivery_of(app, webhook_id).await;
        if let Some(d) = &d
            && d["attempts"].as_array().is_some_and(|a| a.len() >= n)
        {
            return d.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "waited for {n} attempts: {d:?}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

async fn seed_registration_delivers_signed_events(app: TestApp) {
    let rx = Receiver::start().await;
    // Events from before the endpoint existed are not sent to it (replay can send them).
    app.post("/api/v1/users", json!({"username": "before-the-hook"})).await;
    // The seed's own form.
    let w = hook(
        &app,
        json!({"url": format!("{}/webhook/users", rx.url), "events": ["user.created", "user.updated", "user.deleted"],
               "secret": "your-webhook-secret", "active": true}),
    )
    .await;
    assert_eq!(w["secret"], "your-webhook-secret");
    let (_, user) = app.post("/api/v1/users", json!({"username": "signed"})).await;
    app.post("/api/v1/game-worlds", json!({"worldId": "w", "name": "not subscribed"})).await;
    let got = rx.wait_for(1).await;
    let req = &got[0];
    assert_eq!(req.path, "/webhook/users");
    let body = req.json();
    assert_eq!(body["type"], "user.created");
    assert_eq!(body["event"], "user.created");
    assert_eq!(body["data"]["username"], "signed");
    assert_eq!(body["resource"], json!({"type": "user", "id": user["id"]}));
    assert_eq!(body["projectId"], app.project_id.as_str());
    assert_eq!(req.header("webhook-id"), body["id"].as_str().expect("id"));
    assert!(standard_valid(
        b"your-webhook-secret",
        req.header("webhook-id"),
        req.header("webhook-timestamp"),
        &req.body,
        req.header("webhook-signature")
    ));
    assert!(simple_valid("your-webhook-secret", &req.body, req.header("x-webhook-signature")));
    assert!(chrono::DateTime::parse_from_rfc3339(req.header("x-webhook-timestamp")).is_ok());
    // Compact JSON: what JSON.stringify(JSON.parse(body)) gives back.
    assert_eq!(serde_json::to_vec(&body).expect("json").len(), req.body.len());
    // Only subscribed types arrive.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1, "world.created is not subscribed");
    let d = delivery_of(&app, w["id"].as_str().expect("id")).await;
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["attempts"][0]["statusCode"], 200);
}

async fn retries_follow_the_schedule_then_fail_with_an_event(app: TestApp) {
    let rx = Receiver::start().await;
    rx.script((0..6).map(|_| Reply::status(500)));
    let w = hook(&app, json!({"url": rx.url, "events": ["user.*"]})).await;
    let wid = w["id"].as_str().expect("id");
    app.post("/api/v1/users", json!({"username": "unlucky"})).await;
    let schedule = [60, 300, 1800, 7200, 86400];
    for (i, secs) in schedule.iter().enumerate() {
        let d = wait_attempts(&app, wid, i + 1).await;
        assert_eq!(d["status"], "pending", "{d}");
        let last = &d["attempts"][i];
        assert_eq!(last["statusCode"], 500);
        let at = chrono::DateTime::parse_from_rfc3339(last["attemptedAt"].as_str().expect("t")).expect("t");
        let next = chrono::DateTime::parse_from_rfc3339(last["nextAttemptAt"].as_str().expect("next")).expect("t");
        assert_eq!((next - at).num_seconds(), *secs, "retry {} after {secs}s", i + 1);
        // Not before it is due.
        app.advance(TimeDelta::seconds(*secs - 1));
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        assert_eq!(rx.received().len(), i + 1, "no attempt before the schedule says");
        app.advance(TimeDelta::seconds(1));
    }
    let d = wait_attempts(&app, wid, 6).await;
    assert_eq!(d["status"], "failed");
    assert!(d["nextAttemptAt"].is_null());
    let exhausted = app.event_types("webhook", wid).await;
    assert!(exhausted.contains(&"webhook.delivery_exhausted".to_string()), "{exhausted:?}");
    // The endpoint is told nothing of its own failure.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(rx.received().len(), 6);
}

async fn gone_disables_the_endpoint(app: TestApp) {
    let rx = Receiver::start().await;
    rx.script([Reply::status(410)]);
    let w = hook(&app, json!({"url": rx.url, "events": ["*"]})).await;
    let wid = w["id"].as_str().expect("id");
    app.post("/api/v1/users", json!({"username": "gone"})).await;
    let d = wait_attempts(&app, wid, 1).await;
    assert_eq!(d["status"], "failed", "410 is not retried: {d}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let w = loop {
        let (_, w) = app.get(&format!("/api/v1/webhooks/{wid}")).await;
        if w["active"] == false || tokio::time::Instant::now() > deadline {
            break w;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(w["active"], false, "{w}");
    assert!(w["disabledReason"].as_str().is_some_and(|r| r.contains("410")));
    assert!(app.event_types("webhook", wid).await.contains(&"webhook.endpoint_disabled".to_string()));
    // Disabled: new events make no deliveries to it.
    app.post("/api/v1/users", json!({"username": "after"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1);
}

/// When the attempt after `d` is due (its `nextAttemptAt`), and how long after `d` that is.
fn next_after(d: &Value, attempt: usize) -> (chrono::DateTime<chrono::FixedOffset>, TimeDelta) {
    let a = &d["attempts"][attempt];
    let at = chrono::DateTime::parse_from_rfc3339(a["attemptedAt"].as_str().expect("t")).expect("t");
    let next = chrono::DateTime::parse_from_rfc3339(a["nextAttemptAt"].as_str().expect("next")).expect("t");
    (next, next - at)
}

/// `Retry-After` on 429/503 may put a retry off beyond the schedule (up to
/// `webhooks.retry_after_cap_secs`), never bring it forward: `Retry-After: 0` spent every retry
/// within a second. Both of its forms count: seconds and an HTTP date.
async fn retry_after_is_honoured(app: TestApp) {
    let answer =
        |status: u16, value: String| Reply { headers: vec![("retry-after".into(), value)], ..Reply::status(status) };
    let schedule = 60; // the first retry's delay (jitter is off in tests)

    // `Retry-After: 0`: the schedule's delay still applies.
    let rx = Receiver::start().await;
    rx.script([answer(429, "0".into())]);
    let w = hook(&app, json!({"url": rx.url, "events": ["user.created"]})).await;
    let wid = w["id"].as_str().expect("id");
    app.post("/api/v1/users", json!({"username": "impatient"})).await;
    let d = wait_attempts(&app, wid, 1).await;
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(next_after(&d, 0).1.num_seconds(), schedule, "not before the schedule's delay: {d}");
    app.advance(TimeDelta::seconds(schedule - 1));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1, "no retry before the schedule's delay, whatever Retry-After says");
    app.advance(TimeDelta::seconds(1));
    let d = wait_attempts(&app, wid, 2).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    let (status, _) = app.delete(&format!("/api/v1/webhooks/{wid}")).await;
    assert_eq!(status, StatusCode::OK);

    // An HTTP date two minutes ahead (later than the schedule's minute): retried then.
    let rx = Receiver::start().await;
    let due = app.clock.now() + TimeDelta::minutes(2);
    rx.script([answer(503, due.format("%a, %d %b %Y %H:%M:%S GMT").to_string())]);
    let w = hook(&app, json!({"url": rx.url, "events": ["user.created"]})).await;
    let wid = w["id"].as_str().expect("id");
    app.post("/api/v1/users", json!({"username": "dated"})).await;
    let d = wait_attempts(&app, wid, 1).await;
    let (next, _) = next_after(&d, 0);
    assert_eq!(next.timestamp(), due.timestamp(), "the date Retry-After named: {d}");
    app.advance(TimeDelta::seconds(schedule));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1, "not at the schedule's minute: the receiver asked for two");
    app.advance(TimeDelta::seconds(61));
    let d = wait_attempts(&app, wid, 2).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    let (status, _) = app.delete(&format!("/api/v1/webhooks/{wid}")).await;
    assert_eq!(status, StatusCode::OK);

    // A month (or more than a u64 holds): capped at `webhooks.retry_after_cap_secs` (1 h).
    for huge in ["2592000", "99999999999999999999999"] {
        let rx = Receiver::start().await;
        rx.script([answer(429, huge.into())]);
        let w = hook(&app, json!({"url": rx.url, "events": ["user.created"]})).await;
        let wid = w["id"].as_str().expect("id");
        app.post("/api/v1/users", json!({"username": format!("patient{}", huge.len())})).await;
        let d = wait_attempts(&app, wid, 1).await;
        assert_eq!(next_after(&d, 0).1.num_seconds(), 3600, "Retry-After: {huge} is capped: {d}");
        let (status, _) = app.delete(&format!("/api/v1/webhooks/{wid}")).await;
        assert_eq!(status, StatusCode::OK);
    }
}

async fn slow_receivers_time_out_and_are_retried(app: TestApp) {
    let rx = Receiver::start().await;
    rx.script([Reply { delay: std::time::Duration::from_secs(5), ..Reply::status(200) }]);
    let w = hook(&app, json!({"url": rx.url, "events": ["*"], "timeout": 1})).await;
    assert_eq!(w["timeout"], 1.0);
    let wid = w["id"].as_str().expect("id");
    app.post("/api/v1/users", json!({"username": "slow"})).await;
    let d = wait_attempts(&app, wid, 1).await;
    assert_eq!(d["status"], "pending");
    assert!(d["attempts"][0]["error"].as_str().is_some_and(|e| e.contains("timed out")), "{d}");
    assert!(d["attempts"][0]["statusCode"].is_null());
    app.advance(TimeDelta::seconds(60));
    let d = wait_attempts(&app, wid, 2).await;
    assert_eq!(d["status"], "succeeded", "{d}");
}

async fn rotation_signs_with_both_secrets_for_a_day(app: TestApp) {
    let rx = Receiver::start().await;
    let w = hook(&app, json!({"url": rx.url, "events": ["user.*"]})).await;
    let wid = w["id"].as_str().expect("id");
    let old = w["secret"].as_str().expect("generated secret").to_string();
    assert!(old.starts_with("whsec_"));
    assert_eq!(STANDARD.decode(&old["whsec_".len()..]).expect("base64").len(), 32);
    let (status, rotated) = app.post(&format!("/api/v1/webhooks/{wid}/secret/rotate"), json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().expect("secret").to_string();
    assert_ne!(new, old);
    assert_eq!(rotated["previousSecret"], old.as_str());
    app.post("/api/v1/users", json!({"username": "rot1"})).await;
    let req = rx.wait_for(1).await.remove(0);
    let key = |s: &str| STANDARD.decode(&s["whsec_".len()..]).expect("key");
    let sig = req.header("webhook-signature");
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    for secret in [&old, &new] {
        assert!(standard_valid(
            &key(secret),
            req.header("webhook-id"),
            req.header("webhook-timestamp"),
            &req.body,
            sig
        ));
    }
    assert!(simple_valid(&new, &req.body, req.header("x-webhook-signature")), "the simple scheme uses the new secret");
    app.clock.advance(TimeDelta::hours(25));
    app.post("/api/v1/users", json!({"username": "rot2"})).await;
    let req = rx.wait_for(2).await.remove(1);
    let sig = req.header("webhook-signature");
    assert_eq!(sig.split(' ').count(), 1, "the old secret stopped signing after 24 h: {sig}");
    assert!(standard_valid(&key(&new), req.header("webhook-id"), req.header("webhook-timestamp"), &req.body, sig));
}

async fn replay_requeues_missed_events(app: TestApp) {
    let rx = Receiver::start().await;
    let w = hook(&app, json!({"url": rx.url, "events": ["user.created"], "active": false})).await;
    let wid = w["id"].as_str().expect("id");
    let since = chrono::Utc::now() - TimeDelta::seconds(1);
    for i in 0..3 {
        app.post("/api/v1/users", json!({"username": format!("missed{i}")})).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(rx.received().is_empty(), "nothing goes to a disabled endpoint");
    let (status, _) = app.post(&format!("/api/v1/webhooks/{wid}/enable"), json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.post(&format!("/api/v1/webhooks/{wid}/replay"), json!({"since": since})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["queued"], 3);
    let got = rx.wait_for(3).await;
    let mut names: Vec<String> =
        got.iter().map(|r| r.json()["data"]["username"].as_str().unwrap_or("").to_string()).collect();
    names.sort();
    assert_eq!(names, ["missed0", "missed1", "missed2"]);
    // Replaying only failed deliveries finds none now.
    let (_, body) =
        app.post(&format!("/api/v1/webhooks/{wid}/replay"), json!({"since": since, "status": "failed"})).await;
    assert_eq!(body["queued"], 0);
    let (status, body) =
        app.post(&format!("/api/v1/webhooks/{wid}/replay"), json!({"since": since, "status": "x"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
}

async fn custom_events_idempotency_and_schemas(app: TestApp) {
    let rx = Receiver::start().await;
    hook(&app, json!({"url": rx.url, "events": ["order.*"]})).await;
    let (status, body) = app.post("/api/v1/events", json!({"type": "order.completed", "data": {}})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let schema = json!({"type": "object", "required": ["orderId", "amount"],
                        "properties": {"orderId": {"type": "string"}, "amount": {"type": "number", "minimum": 0}}});
    let (status, t) = app
        .post("/api/v1/event-types", json!({"name": "order.completed", "description": "paid", "schema": schema}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let (status, body) = app.post("/api/v1/event-types", json!({"name": "user.created"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let (status, body) = app.post("/api/v1/event-types", json!({"name": "bad name!"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");

    let (status, body) =
        app.post("/api/v1/events", json!({"type": "order.completed", "data": {"orderId": "o1", "amount": -5}})).await;
    let msg = assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    assert!(body["error"]["details"][0]["field"] == "data.amount", "names the field: {body} {msg}");

    let (status, body) = app
        .post("/api/v1/events", json!({"type": "order.completed", "data": {"orderId": "o\u{0}", "amount": 1}}))
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let event =
        json!({"type": "order.completed", "data": {"orderId": "o1", "amount": 10}, "idempotencyKey": "order-o1"});
    let (status, first) = app.post("/api/v1/events", event.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let before = app.store.count_events().await.expect("count");
    let (status, again) = app.post("/api/v1/events", event).await;
    assert_eq!(status, StatusCode::OK, "a repeat answers 200 with the first event");
    assert_eq!(again["id"], first["id"]);
    // The header form.
    let send = |key: &'static str| {
        app.req(reqwest::Method::POST, "/api/v1/events")
            .header("Idempotency-Key", key)
            .json(&json!({"type": "order.completed", "data": {"orderId": "o2", "amount": 1}}))
    };
    let (s1, e1) = crate::common::send(send("hdr-key")).await;
    let (s2, e2) = crate::common::send(send("hdr-key")).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(e1["id"], e2["id"]);
    assert_eq!(app.store.count_events().await.expect("count"), before + 1);

    // A batch is one transaction: one bad event stores none.
    let ok = json!({"type": "order.completed", "data": {"orderId": "b", "amount": 1}});
    let bad = json!({"type": "order.completed", "data": {"orderId": 5, "amount": 1}});
    let (status, body) = app.post("/api/v1/events/batch", json!({"events": [ok, bad]})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    assert!(body["error"]["details"][0]["field"].as_str().is_some_and(|f| f.starts_with("events[1].")), "{body}");
    assert_eq!(app.store.count_events().await.expect("count"), before + 1);
    let many: Vec<Value> = (0..50)
        .map(|i| json!({"type": "order.completed", "data": {"orderId": format!("m{i}"), "amount": i}}))
        .collect();
    let (status, body) = app.post("/api/v1/events/batch", json!({"events": many})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["items"].as_array().expect("items").len(), 50);
    let too_many: Vec<Value> = (0..1001).map(|_| json!({"type": "order.completed", "data": {}})).collect();
    let (status, body) = app.post("/api/v1/events/batch", json!({"events": too_many})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");

    // Published events are delivered, and listed newest first with a cursor.
    rx.wait_for(52).await;
    let (status, page) = app.get("/api/v1/events?type=order.completed&limit=20").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().expect("items").len(), 20);
    let cursor = page["nextCursor"].as_str().expect("cursor");
    let (_, page2) = app.get(&format!("/api/v1/events?type=order.completed&limit=20&cursor={cursor}")).await;
    let s1 = page["items"][19]["sequence"].as_i64().expect("seq");
    let s2 = page2["items"][0]["sequence"].as_i64().expect("seq");
    assert!(s2 < s1, "the next page continues with older events");
    let id = first["id"].as_str().expect("id");
    let (status, detail) = app.get(&format!("/api/v1/events/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["deliveries"].as_array().expect("deliveries").len(), 1);
}

async fn test_route_reports_the_attempt(app: TestApp) {
    let rx = Receiver::start().await;
    let w = hook(&app, json!({"url": rx.url, "events": ["*"]})).await;
    let (status, r) = app.post(&format!("/api/v1/webhooks/{}/test", w["id"].as_str().expect("id")), json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        (r["success"].clone(), r["statusCode"].clone(), r["receiverSuccess"].clone()),
        (json!(true), json!(200), json!(true))
    );
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].json()["type"], "test");
    rx.script([Reply::status(500)]);
    let (_, r) = app.post(&format!("/api/v1/webhooks/{}/test", w["id"].as_str().expect("id")), json!(null)).await;
    assert_eq!((r["success"].clone(), r["statusCode"].clone()), (json!(false), json!(500)));
}

async fn deliveries_are_listed_and_retried_by_hand(app: TestApp) {
    let rx = Receiver::start().await;
    rx.script((0..6).map(|_| Reply::status(500)));
    let w = hook(&app, json!({"url": rx.url, "events": ["user.created"]})).await;
    let wid = w["id"].as_str().expect("id");
    app.post("/api/v1/users", json!({"username": "manual"})).await;
    let d = wait_attempts(&app, wid, 1).await;
    assert_eq!(d["attempts"][0]["responseBody"], r#"{"success": true}"#);
    let (status, page) = app.get(&format!("/api/v1/webhooks/{wid}/deliveries?status=pending")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().expect("items").len(), 1);
    let (status, body) = app.get(&format!("/api/v1/webhooks/{wid}/deliveries?status=nope")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    let did = d["id"].as_str().expect("id");
    let (status, _) = app.post(&format!("/api/v1/deliveries/{did}/retry"), json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    rx.wait_for(2).await;
    let (status, body) = app.get("/api/v1/deliveries/does-not-exist").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

/// The attempt numbers of a delivery answer, in order.
fn attempt_numbers(d: &Value) -> Vec<i64> {
    d["attempts"].as_array().expect("attempts").iter().map(|a| a["attempt"].as_i64().expect("attempt")).collect()
}

/// A manual retry of an exhausted delivery gets a fresh set of retries, but its attempts
/// continue the delivery's numbering: no two attempts of a delivery share a number.
async fn manual_retry_continues_attempt_numbers(app: TestApp) {
    let rx = Receiver::start().await;
    rx.script((0..7).map(|_| Reply::status(500)));
    let w = hook(&app, json!({"url": rx.url, "events": ["user.created"]})).await;
    let wid = w["id"].as_str().expect("id");
    app.post("/api/v1/users", json!({"username": "numbered"})).await;
    for (i, secs) in [60, 300, 1800, 7200, 86400].iter().enumerate() {
        wait_attempts(&app, wid, i + 1).await;
        app.advance(TimeDelta::seconds(*secs));
    }
    let exhausted = wait_attempts(&app, wid, 6).await;
    assert_eq!(exhausted["status"], "failed", "{exhausted}");
    let did = exhausted["id"].as_str().expect("id");

    let (status, retried) = app.post(&format!("/api/v1/deliveries/{did}/retry"), json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["status"], "pending");
    assert_eq!(retried["attemptCount"], 6, "the count of attempts made is kept: {retried}");
    let d = wait_attempts(&app, wid, 7).await;
    assert_eq!(attempt_numbers(&d), [1, 2, 3, 4, 5, 6, 7], "{d}");
    assert_eq!(d["attemptCount"], 7);
    // The retry restarted the schedule: its failure is retried after the first delay.
    assert_eq!(d["status"], "pending", "{d}");
    let last = &d["attempts"][6];
    let at = chrono::DateTime::parse_from_rfc3339(last["attemptedAt"].as_str().expect("t")).expect("t");
    let next = chrono::DateTime::parse_from_rfc3339(last["nextAttemptAt"].as_str().expect("next")).expect("t");
    assert_eq!((next - at).num_seconds(), 60, "{last}");
    app.advance(TimeDelta::seconds(60));
    let d = wait_attempts(&app, wid, 8).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(attempt_numbers(&d), [1, 2, 3, 4, 5, 6, 7, 8]);
}

/// `POST /webhooks/{id}/test` is recorded as a delivery of the endpoint, marked `test`, with
/// its one attempt; it is sent once and never retried.
async fn test_pings_are_in_the_delivery_log(app: TestApp) {
    let rx = Receiver::start().await;
    let w = hook(&app, json!({"url": rx.url, "events": ["user.created"]})).await;
    let wid = w["id"].as_str().expect("id");
    let (status, ok) = app.post(&format!("/api/v1/webhooks/{wid}/test"), json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    let event_id = ok["eventId"].as_str().expect("eventId");
    assert_eq!(rx.wait_for(1).await[0].json()["id"], event_id, "eventId is the sent envelope's id");
    let delivery_id = ok["deliveryId"].as_str().expect("deliveryId");

    let (status, page) = app.get(&format!("/api/v1/webhooks/{wid}/deliveries")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed = &page["items"][0];
    assert_eq!(listed["id"], delivery_id, "{page}");
    assert_eq!(
        (listed["test"].clone(), listed["status"].clone(), listed["eventId"].clone(), listed["attemptCount"].clone()),
        (json!(true), json!("succeeded"), json!(event_id), json!(1)),
        "{listed}"
    );
    let (status, d) = app.get(&format!("/api/v1/deliveries/{delivery_id}")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(attempt_numbers(&d), [1]);
    assert_eq!(d["attempts"][0]["statusCode"], 200);

    // A failed test is recorded as failed, and is not retried.
    rx.script([Reply::status(500)]);
    let (_, failed) = app.post(&format!("/api/v1/webhooks/{wid}/test"), json!(null)).await;
    assert_eq!((failed["success"].clone(), failed["statusCode"].clone()), (json!(false), json!(500)), "{failed}");
    let failed_id = failed["deliveryId"].as_str().expect("deliveryId");
    let (_, d) = app.get(&format!("/api/v1/deliveries/{failed_id}")).await;
    assert_eq!((d["test"].clone(), d["status"].clone()), (json!(true), json!("failed")), "{d}");
    assert!(d["nextAttemptAt"].is_null(), "{d}");
    assert_eq!(d["attempts"][0]["statusCode"], 500);
    app.advance(TimeDelta::days(2));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 2, "a test is sent once");
    let (status, body) = app.post(&format!("/api/v1/deliveries/{failed_id}/retry"), json!(null)).await;
    let msg = assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert!(msg.contains("test"), "{msg}");

    // Deliveries of real events are not marked.
    app.post("/api/v1/users", json!({"username": "real"})).await;
    rx.wait_for(3).await;
    let d = wait_attempts(&app, wid, 1).await;
    assert_eq!((d["test"].clone(), d["status"].clone()), (json!(false), json!("succeeded")), "{d}");
}

async fn invalid_endpoints_are_rejected(app: TestApp) {
    let cases = [
        json!({"url": "ftp://example.com", "events": ["*"]}),
        json!({"url": "not a url", "events": ["*"]}),
        json!({"url": "http://example.com", "events": []}),
        json!({"url": "http://example.com", "events": ["user*"]}),
        json!({"url": "http://example.com", "events": ["*"], "timeout": 31}),
        json!({"url": "http://example.com", "events": ["*"], "secret": "short"}),
        json!({"url": "http://example.com", "events": ["*"], "headers": {"webhook-signature": "x"}}),
        json!({"url": "http://example.com", "events": ["*"], "rate_limit": 0}),
        json!({"url": "http://u:p@example.com", "events": ["*"]}),
    ];
    for body in cases {
        let (status, resp) = app.post("/api/v1/webhooks", body.clone()).await;
        assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    }
    let (_, list) = app.get("/api/v1/webhooks").await;
    assert_eq!(list["total"], 0);
}

/// The production profile: https only, no internal targets unless allow-listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_profile_refuses_internal_targets() {
    use herald::config::WebhookProfile;
    let app =
        TestApp::spawn_with(Backend::Sqlite, |c| c.webhooks.profile = WebhookProfile::Production).await.expect("app");
    for url in [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00:ec2::254]/",
        // IPv6 forms that carry an internal IPv4 address, or stand for a site's network.
        "https://[::127.0.0.1]/hook",                          // IPv4-compatible
        "https://[::ffff:0:127.0.0.1]/hook",                   // IPv4-translated
        "https://[::ffff:169.254.169.254]/latest/meta-data",   // IPv4-mapped
        "https://[64:ff9b::10.0.0.8]/hook",                    // NAT64
        "https://[2002:7f00:1::1]/hook",                       // 6to4 of 127.0.0.1
        "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook", // Teredo, client 127.0.0.1
        "https://[2001:0:a00:1:8000:63bf:f7f7:f7f7]/hook",     // Teredo, server 10.0.0.1
        "https://[fec0::1]/hook",                              // site-local
        "https://[2001:db8::1]/hook",                          // documentation
    ] {
        let (status, body) = app.post("/api/v1/webhooks", json!({"url": url, "events": ["*"]})).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        assert_eq!(body["error"]["details"][0]["field"], "url", "{url}: {body}");
    }
    let allowed = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.webhooks.profile = WebhookProfile::Production;
        c.webhooks.allow_networks = vec!["127.0.0.0/8".into()];
    })
    .await
    .expect("app");
    let (status, body) =
        allowed.post("/api/v1/webhooks", json!({"url": "https://127.0.0.1:9/hook", "events": ["*"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Endpoints saved in the development profile, `http://` and at an internal address, then the
/// server started in the production profile on the same database: nothing is sent to them,
/// and each attempt (and the connection test) says why.
async fn development_endpoints_are_refused_in_production(backend: Backend) {
    use herald::config::WebhookProfile;
    let Some(dev) = TestApp::spawn_with(backend, |c| c.webhooks.dispatcher = false).await else { return };
    let rx = Receiver::start().await;
    let port = rx.url.rsplit(':').next().expect("port").to_string();
    let plain = hook(&dev, json!({"url": format!("{}/plain", rx.url), "events": ["user.created"]})).await;
    let translated =
        hook(&dev, json!({"url": format!("https://[::ffff:0:127.0.0.1]:{port}/x"), "events": ["user.created"]})).await;

    // Production, with the receiver's network allowed: only the scheme refuses the first.
    let mut config = dev.config.clone();
    config.webhooks.profile = WebhookProfile::Production;
    config.webhooks.dispatcher = true;
    config.webhooks.allow_networks = vec!["127.0.0.0/8".into()];
    let server = herald::app::Server::build_with(config, dev.clock.clone()).await.expect("production server");
    let production = format!("http://{}", server.local_addr().expect("bound"));
    let store = server.state.store.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    dev.post("/api/v1/users", json!({"username": "after-switch"})).await;
    store.events_written().dispatcher.notify_one();
    for (w, why) in [
        (&plain, "refused: plain http:// is refused by the production profile: use https://"),
        (&translated, "refused: ::ffff:0:7f00:1 (standing for 127.0.0.1) is an internal or special-purpose address"),
    ] {
        let d = wait_attempts(&dev, w["id"].as_str().expect("id"), 1).await;
        let attempt = &d["attempts"][0];
        assert!(attempt["statusCode"].is_null(), "{d}");
        assert!(attempt["error"].as_str().is_some_and(|e| e.starts_with(why)), "{d}");
        let test = format!("{production}/api/v1/webhooks/{}/test", w["id"].as_str().expect("id"));
        let (status, result) = crate::common::send(dev.client.post(test).header("X-API-Key", &dev.key)).await;
        assert_eq!(status, StatusCode::OK, "{result}");
        assert!(result["error"].as_str().is_some_and(|e| e.starts_with(why)), "{result}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(rx.received().is_empty(), "nothing reached the receiver");
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_endpoints_are_refused_in_production_sqlite() {
    development_endpoints_are_refused_in_production(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_endpoints_are_refused_in_production_postgres() {
    development_endpoints_are_refused_in_production(Backend::Postgres).await;
}

/// A node that claimed deliveries and died: once its lease runs out, another node delivers
/// every one of them.
async fn crashed_node_work_is_taken_over(backend: Backend) {
    let Some(quiet) = TestApp::spawn_with(backend, |c| c.webhooks.dispatcher = false).await else { return };
    let rx = Receiver::start().await;
    hook(&quiet, json!({"url": rx.url, "events": ["user.created"]})).await;
    for i in 0..30 {
        quiet.post("/api/v1/users", json!({"username": format!("orphan{i}")})).await;
    }
    let now = quiet.clock.now();
    // The dead node fanned out half of them leased to itself, and claimed the rest.
    let mut leased = 0;
    let mut take = |_: &herald::store::webhooks::Webhook| {
        leased += 1;
        leased <= 15
    };
    let mut lease =
        herald::store::webhooks::Lease { node: "dead-node", until: now + TimeDelta::seconds(60), take: &mut take };
    let fanned = quiet.store.fan_out(500, now, &mut lease, herald::webhooks::matches).await.expect("fan out");
    assert!(fanned.events >= 30);
    assert_eq!((fanned.created, fanned.leased.len()), (30, 15));
    let claimed =
        quiet.store.claim_deliveries("dead-node", now, now + TimeDelta::seconds(60), 500, &[]).await.expect("claim");
    assert_eq!(claimed.len(), 15, "the dead node held every delivery");

    // A second node on the same database, its clock past the dead node's lease.
    let mut config = quiet.config.clone();
    config.webhooks.dispatcher = true;
    let clock = herald::webhooks::Clock::manual(now + TimeDelta::seconds(30));
    let server = herald::app::Server::build_with(config, clock.clone()).await.expect("second node");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let store = server.state.store.clone();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(rx.received().is_empty(), "leased deliveries wait for the lease to end");
    clock.advance(TimeDelta::seconds(31));
    store.events_written().dispatcher.notify_one();
    let got = rx.wait_for(30).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.header("webhook-id").to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30, "every event arrived");
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_node_work_is_taken_over_sqlite() {
    crashed_node_work_is_taken_over(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_node_work_is_taken_over_postgres() {
    crashed_node_work_is_taken_over(Backend::Postgres).await;
}

/// Renewing leases does not wait for a delivery another transaction holds (the result writer
/// recording its attempt): waiting made a deadlock with that writer under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_renewal_skips_rows_being_recorded_postgres() {
    let Some(quiet) = TestApp::spawn_with(Backend::Postgres, |c| c.webhooks.dispatcher = false).await else { return };
    let herald::store::Backend::Postgres(pool) = quiet.store.backend() else { panic!("a PostgreSQL app") };
    let rx = Receiver::start().await;
    hook(&quiet, json!({"url": rx.url, "events": ["user.created"]})).await;
    quiet.post("/api/v1/users", json!({"username": "held"})).await;
    let now = quiet.clock.now();
    let mut take = |_: &herald::store::webhooks::Webhook| true;
    let mut lease =
        herald::store::webhooks::Lease { node: "node-a", until: now + TimeDelta::seconds(10), take: &mut take };
    let fanned = quiet.store.fan_out(500, now, &mut lease, herald::webhooks::matches).await.expect("fan out");
    assert_eq!(fanned.leased.len(), 1);

    let mut recording = pool.begin().await.expect("begin");
    sqlx::query("SELECT id FROM deliveries FOR UPDATE").fetch_all(&mut *recording).await.expect("lock");
    let later = now + TimeDelta::seconds(60);
    let renewed = tokio::time::timeout(std::time::Duration::from_secs(5), quiet.store.renew_leases("node-a", later))
        .await
        .expect("renewal waited for a locked row")
        .expect("renew");
    assert_eq!(renewed, 0, "the locked delivery is skipped");
    recording.rollback().await.expect("rollback");
    assert_eq!(quiet.store.renew_leases("node-a", later).await.expect("renew"), 1, "and renewed once free");
}

/// A fan-out takes at most its batch of queued events, however long the queue (on
/// PostgreSQL a `LIMIT` inside `IN (...)` could be run again by the plan and take thousands).
async fn fan_out_takes_at_most_its_batch(backend: Backend) {
    let Some(quiet) = TestApp::spawn_with(backend, |c| c.webhooks.dispatcher = false).await else { return };
    let rx = Receiver::start().await;
    hook(&quiet, json!({"url": rx.url, "events": ["*"]})).await;
    let names = ["queue.filled"];
    quiet.post("/api/v1/event-types", json!({"name": names[0], "description": "fills the queue"})).await;
    for _ in 0..4 {
        let many: Vec<_> = (0..1000).map(|i| json!({"type": names[0], "data": {"i": i}})).collect();
        let (status, body) = quiet.post("/api/v1/events/batch", json!({"events": many})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let now = quiet.clock.now();
    let mut total = 0;
    loop {
        let mut take = |_: &herald::store::webhooks::Webhook| false;
        let mut lease = herald::store::webhooks::Lease { node: "n", until: now, take: &mut take };
        let out = quiet.store.fan_out(100, now, &mut lease, herald::webhooks::matches).await.expect("fan out");
        assert!(out.events <= 100, "a batch of 100 took {} events", out.events);
        if out.events == 0 {
            break;
        }
        total += out.events;
    }
    assert!(total >= 4000, "every queued event was fanned out once: {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_takes_at_most_its_batch_sqlite() {
    fan_out_takes_at_most_its_batch(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_takes_at_most_its_batch_postgres() {
    fan_out_takes_at_most_its_batch(Backend::Postgres).await;
}

/// A fan-out planned but never written (its write failed, or the node stopped before it)
/// leaves its events to the next plan: nothing is lost, nothing is fanned out twice. On
/// PostgreSQL the plan is a transaction begun by hand, in the round trip that reads the events
/// (`OpenTransaction`), and dropping it must roll it back.
async fn an_unwritten_fan_out_leaves_its_events(backend: Backend) {
    let Some(quiet) = TestApp::spawn_with(backend, |c| c.webhooks.dispatcher = false).await else { return };
    let rx = Receiver::start().await;
    hook(&quiet, json!({"url": rx.url, "events": ["*"]})).await;
    quiet.post("/api/v1/event-types", json!({"name": "plan.dropped", "description": "planned, not written"})).await;
    for i in 0..3 {
        let (status, body) = quiet.post("/api/v1/events", json!({"type": "plan.dropped", "data": {"i": i}})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let now = quiet.clock.now();
    let plan = || async {
        let mut take = |_: &herald::store::webhooks::Webhook| true;
        let mut lease = herald::store::webhooks::Lease { node: "n", until: now, take: &mut take };
        quiet.store.plan_fan_out(None, 100, now, &mut lease, herald::webhooks::matches).await.expect("plan")
    };
    let first = plan().await.expect("three events to fan out");
    let seqs: Vec<i64> = first.out.event_rows.iter().map(|e| e.seq).collect();
    let deliveries = first.out.leased.len();
    assert!(deliveries >= 3, "a delivery for each event published: {deliveries}");
    drop(first);
    // PostgreSQL rolls the dropped plan back in the background: until then its events are
    // locked, and skipped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let again = loop {
        if let Some(p) = plan().await {
            break p;
        }
        assert!(std::time::Instant::now() < deadline, "the dropped plan's events never came back");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(again.out.event_rows.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs, "the same events, planned again");
    quiet.store.write_fan_out(again.write).await.expect("write");
    assert!(plan().await.is_none(), "written once, fanned out once");
    let (pending, _) = quiet.store.pending_deliveries().await.expect("pending");
    assert_eq!(pending as usize, deliveries, "each planned delivery, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritten_fan_out_leaves_its_events_sqlite() {
    an_unwritten_fan_out_leaves_its_events(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritten_fan_out_leaves_its_events_postgres() {
    an_unwritten_fan_out_leaves_its_events(Backend::Postgres).await;
}

/// An endpoint's health follows its answers: a failure sets `failingSince`, a success after it
/// clears that and sets `lastSuccessAt`. Both are written with the attempt (on PostgreSQL in
/// the one statement of the batch, on SQLite in its group-committed script).
async fn health_follows_failures_and_recovery(app: TestApp) {
    let rx = Receiver::start().await;
    rx.script([Reply::status(500)]);
    let w = hook(&app, json!({"url": rx.url, "events": ["user.created"]})).await;
    let wid = w["id"].as_str().expect("id");
    app.post("/api/v1/users", json!({"username": "flaky"})).await;
    wait_attempts(&app, wid, 1).await;
    let (_, w) = app.get(&format!("/api/v1/webhooks/{wid}")).await;
    assert!(w["failingSince"].is_string(), "a failure sets failingSince: {w}");
    assert!(w["lastSuccessAt"].is_null(), "{w}");

    app.advance(TimeDelta::seconds(60));
    let d = wait_attempts(&app, wid, 2).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    let (_, w) = app.get(&format!("/api/v1/webhooks/{wid}")).await;
    assert!(w["failingSince"].is_null(), "a success clears failingSince: {w}");
    let last = w["lastSuccessAt"].as_str().expect("a success sets lastSuccessAt");
    assert_eq!(Some(last), d["attempts"][1]["attemptedAt"].as_str(), "{w} {d}");
}

async fn endpoints_failing_for_five_days_are_disabled(app: TestApp) {
    let rx = Receiver::start().await;
    rx.script((0..20).map(|_| Reply::status(500)));
    let w = hook(&app, json!({"url": rx.url, "events": ["user.created"]})).await;
    let wid = w["id"].as_str().expect("id");
    app.post("/api/v1/users", json!({"username": "first-failure"})).await;
    wait_attempts(&app, wid, 1).await;
    let (_, w) = app.get(&format!("/api/v1/webhooks/{wid}")).await;
    assert!(w["failingSince"].is_string(), "{w}");
    assert_eq!(w["active"], true, "one failure does not disable");
    // Five days later, still failing: the next failure disables the endpoint.
    app.advance(TimeDelta::days(5) + TimeDelta::seconds(1));
    app.post("/api/v1/users", json!({"username": "still-failing"})).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, w) = app.get(&format!("/api/v1/webhooks/{wid}")).await;
        if w["active"] == false {
            assert!(w["disabledReason"].as_str().is_some_and(|r| r.contains("no successful delivery")), "{w}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "endpoint was not disabled: {w}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(app.event_types("webhook", wid).await.contains(&"webhook.endpoint_disabled".to_string()));
    // Enabling by hand starts afresh.
    let (_, w) = app.post(&format!("/api/v1/webhooks/{wid}/enable"), json!(null)).await;
    assert_eq!(
        (w["active"].clone(), w["disabledReason"].clone(), w["failingSince"].clone()),
        (json!(true), Value::Null, Value::Null)
    );
}

async fn rate_limit_caps_deliveries_per_second(app: TestApp) {
    let rx = Receiver::start().await;
    let w = hook(&app, json!({"url": rx.url, "events": ["user.created"], "rateLimit": 2})).await;
    assert_eq!(w["rateLimit"], 2);
    for i in 0..6 {
        app.post("/api/v1/users", json!({"username": format!("rl{i}")})).await;
    }
    rx.wait_for(1).await;
    let start = std::time::Instant::now();
    // However fast the machine, no more than the bucket (2) plus what refills in a second (2)
    // may arrive within the first second. A slow machine only lowers the count.
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let within = rx.received().len();
    assert!(start.elapsed() < std::time::Duration::from_millis(1000) || within <= 4);
    assert!(within <= 4, "{within} deliveries within a second at rateLimit 2");
    // And all of them arrive in the end: held-back deliveries are due again shortly (on the
    // dispatcher's clock, which this test moves along with real time).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while rx.received().len() < 6 {
        assert!(std::time::Instant::now() < deadline, "only {} of 6 arrived", rx.received().len());
        app.advance(TimeDelta::milliseconds(100));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn retention_removes_old_finished_deliveries(app: TestApp) {
    let rx = Receiver::start().await;
    rx.script([Reply::status(200), Reply::status(500)]);
    let w = hook(&app, json!({"url": rx.url, "events": ["user.created"]})).await;
    let wid = w["id"].as_str().expect("id");
    app.post("/api/v1/users", json!({"username": "kept-then-cleaned"})).await;
    let done = wait_attempts(&app, wid, 1).await;
    assert_eq!(done["status"], "succeeded");
    app.post("/api/v1/users", json!({"username": "still-pending"})).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let pending = loop {
        let (_, page) = app.get(&format!("/api/v1/webhooks/{wid}/deliveries?status=pending")).await;
        if let Some(id) = page["items"][0]["id"].as_str() {
            break id.to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "no pending delivery");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    // 29 days on, nothing is old enough; 31 days on, the finished delivery goes, the pending stays.
    let now = app.clock.now();
    let day_keys = now - TimeDelta::hours(24);
    assert_eq!(app.store.clean_up(now - TimeDelta::days(30) + TimeDelta::days(29), day_keys).await.expect("clean"), 0);
    assert_eq!(app.store.clean_up(now + TimeDelta::days(31) - TimeDelta::days(30), day_keys).await.expect("clean"), 1);
    let (status, _) = app.get(&format!("/api/v1/deliveries/{}", done["id"].as_str().expect("id"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(&format!("/api/v1/deliveries/{pending}")).await;
    assert_eq!(status, StatusCode::OK, "unfinished deliveries are never cleaned");
}

/// An endpoint deleted while one of its deliveries is being sent: the attempt has nothing left
/// to be recorded against (the delivery went with the endpoint). It is dropped, and the node
/// goes on recording every other endpoint's results (it retried the failing batch forever).
async fn deleting_an_endpoint_mid_send_does_not_stop_recording(app: TestApp) {
    let slow = Receiver::start().await;
    slow.script([Reply { delay: std::time::Duration::from_secs(1), ..Reply::status(200) }]);
    let doomed = hook(&app, json!({"url": slow.url, "events": ["user.created"]})).await;
    let doomed_id = doomed["id"].as_str().expect("id");
    let rx = Receiver::start().await;
    let kept = hook(&app, json!({"url": rx.url, "events": ["world.created"]})).await;
    let kept_id = kept["id"].as_str().expect("id");

    app.post("/api/v1/users", json!({"username": "mid-send"})).await;
    slow.wait_for(1).await;
    let in_flight = delivery_of(&app, doomed_id).await;
    let in_flight = in_flight["id"].as_str().expect("id");
    let (status, body) = app.delete(&format!("/api/v1/webhooks/{doomed_id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The slow answer arrives (and its attempt is written, or fails to be) before the results
    // below are.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    for i in 0..2 {
        let (status, body) =
            app.post("/api/v1/game-worlds", json!({"worldId": format!("after{i}"), "name": "w"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    rx.wait_for(2).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, page) = app.get(&format!("/api/v1/webhooks/{kept_id}/deliveries?status=succeeded")).await;
        if page["items"].as_array().is_some_and(|items| items.len() == 2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the other endpoint's results were not recorded: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, _) = app.get(&format!("/api/v1/deliveries/{in_flight}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the deleted endpoint's delivery went with it");
}

/// Several deliveries in flight to an endpoint that answers 410: it is disabled once, with one
/// `webhook.endpoint_disabled` event (there was one per delivery).
async fn gone_disables_the_endpoint_once(app: TestApp) {
    let rx = Receiver::start().await;
    // Two answers at once and two later: results written together as well as apart.
    rx.script(
        [300, 300, 900, 900].map(|ms| Reply { delay: std::time::Duration::from_millis(ms), ..Reply::status(410) }),
    );
    let (status, body) =
        app.post("/api/v1/event-types", json!({"name": "match.ended", "description": "a match ended"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let w = hook(&app, json!({"url": rx.url, "events": ["match.ended"]})).await;
    let wid = w["id"].as_str().expect("id");
    // One transaction: fanned out together, all four in flight before any answer.
    let events: Vec<Value> = (0..4).map(|i| json!({"type": "match.ended", "data": {"match": i}})).collect();
    let (status, body) = app.post("/api/v1/events/batch", json!({"events": events})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    rx.wait_for(4).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, page) = app.get(&format!("/api/v1/webhooks/{wid}/deliveries?status=failed")).await;
        if page["items"].as_array().is_some_and(|items| items.len() == 4) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "four failed deliveries: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, w) = app.get(&format!("/api/v1/webhooks/{wid}")).await;
    assert_eq!(w["active"], false, "{w}");
    let disabled =
        app.event_types("webhook", wid).await.into_iter().filter(|t| t == "webhook.endpoint_disabled").count();
    assert_eq!(disabled, 1, "one endpoint_disabled event for one endpoint disabled once");
}

/// A fan-out's deliveries are sent while their rows are written (with a durable setting, the
/// write is a disk flush between publish and arrival). When the rows cannot be written, the
/// event is sent again once they can: at least once, nothing lost. In between it is not sent
/// again and again: after a failed write, rows are written before anything is sent.
async fn a_fan_out_that_cannot_be_written_is_sent_again_once_it_can(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.webhooks.poll_interval_ms = 20).await else { return };
    let rx = Receiver::start().await;
    let w = hook(&app, json!({"url": rx.url, "events": ["user.created"]})).await;
    let wid = w["id"].as_str().expect("id");
    // Refuses delivery rows when they are written: SQLite writes them in its commit; on
    // PostgreSQL they are inserted before sending and the commit is what fails.
    let refuse = |on: bool| {
        let store = app.store.clone();
        async move {
            match store.backend() {
                herald::store::Backend::Sqlite { write, .. } => {
                    let sql = if on {
                        "CREATE TRIGGER refuse_deliveries BEFORE INSERT ON deliveries \
                         BEGIN SELECT RAISE(ABORT, 'refused'); END"
                    } else {
                        "DROP TRIGGER refuse_deliveries"
                    };
                    sqlx::query(sql).execute(write).await.expect("trigger");
                }
                herald::store::Backend::Postgres(pool) => {
                    let sql = if on {
                        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
                         $$ BEGIN RAISE EXCEPTION 'refused'; END $$; \
                         CREATE CONSTRAINT TRIGGER refuse_deliveries AFTER INSERT ON deliveries \
                         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()"
                    } else {
                        "DROP TRIGGER refuse_deliveries ON deliveries"
                    };
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(pool).await.expect("trigger");
                }
            }
        }
    };
    refuse(true).await;

    let (status, body) = app.post("/api/v1/users", json!({"username": "unwritten"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let first = rx.wait_for(1).await;
    // Many rounds (20 ms apart) find the rows still unwritable.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(rx.received().len(), 1, "sent once while its rows cannot be written, not at every round");
    assert!(try_delivery_of(&app, wid).await.is_none(), "no delivery row yet");

    refuse(false).await;
    let got = rx.wait_for(2).await;
    assert_eq!(got[1].header("webhook-id"), first[0].header("webhook-id"), "the same event, sent again");
    let d = wait_attempts(&app, wid, 1).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    let (_, page) = app.get(&format!("/api/v1/webhooks/{wid}/deliveries")).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "one delivery: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_that_cannot_be_written_is_sent_again_once_it_can_sqlite() {
    a_fan_out_that_cannot_be_written_is_sent_again_once_it_can(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_that_cannot_be_written_is_sent_again_once_it_can_postgres() {
    a_fan_out_that_cannot_be_written_is_sent_again_once_it_can(Backend::Postgres).await;
}
