//! Payload formats (`format` on an endpoint): each seed's body and headers, rendered from the
//! same outbox event, through retries, replay and secret rotation. The seeds' own receivers
//! run against them in `interop.rs`; these tests check the bytes.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::TimeDelta;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    common::{TestApp, assert_error},
    receiver::{Received, Receiver, Reply},
};

crate::both_backends!(
    format_is_set_shown_changed_and_validated,
    each_format_renders_the_same_event_with_its_own_headers,
    retries_and_replay_send_the_same_bytes_signed_by_both_secrets,
    aghanim_error_answers_fail_the_attempt,
    gromach_connection_test_needs_success_true,
);

const FORMATS: [&str; 5] = ["herald", "gatrix", "bkend", "aghanim", "gromach"];

fn hex_hmac(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Standard Webhooks verification written out here, independent of herald-webhooks.
fn standard_signed_by(secret: &str, req: &Received) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).unwrap_or_else(|_| secret.into());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{}.{}.", req.header("webhook-id"), req.header("webhook-timestamp")).as_bytes());
    mac.update(&req.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    req.header("webhook-signature").split(' ').any(|s| s == expected)
}

/// One endpoint per format on `rx`, each at `/<format>`, for `events`; returns their ids.
async fn endpoint_per_format(app: &TestApp, rx: &Receiver, events: Value, secret: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for format in FORMATS {
        let (status, w) = app
            .post(
                "/api/v1/webhooks",
                json!({"url": format!("{}/{format}", rx.url), "events": events, "format": format, "secret": secret}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{w}");
        assert_eq!(w["format"], format);
        ids.push(w["id"].as_str().expect("id").to_owned());
    }
    ids
}

/// The request that arrived at `/<format>` carrying event `event_id`.
fn to<'a>(got: &'a [Received], format: &str, event_id: &str) -> Vec<&'a Received> {
    got.iter().filter(|r| r.path == format!("/{format}") && r.header("webhook-id") == event_id).collect()
}

async fn format_is_set_shown_changed_and_validated(app: TestApp) {
    let rx = Receiver::start().await;
    let (status, w) = app.post("/api/v1/webhooks", json!({"url": rx.url, "events": ["user.*"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{w}");
    assert_eq!(w["format"], "herald", "the default");
    let id = w["id"].as_str().expect("id");

    // Unknown values are refused naming the field, and change nothing.
    let (status, body) = app.post("/api/v1/webhooks", json!({"url": rx.url, "events": ["*"], "format": "svix"})).await;
    let message = assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    assert_eq!(body["error"]["details"][0]["field"], "format", "{body}");
    assert!(message.contains("gromach"), "says what is allowed: {message}");
    let (status, body) = app.patch(&format!("/api/v1/webhooks/{id}"), json!({"format": "Gatrix"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}")).await.1["format"], "herald");

    // Changeable with PATCH and PUT, shown on every read, and in `webhook.updated`.
    let (status, w) = app.patch(&format!("/api/v1/webhooks/{id}"), json!({"format": "gatrix"})).await;
    assert_eq!((status, &w["format"]), (StatusCode::OK, &json!("gatrix")), "{w}");
    let (status, w) = app.put(&format!("/api/v1/webhooks/{id}"), json!({"format": "aghanim"})).await;
    assert_eq!((status, &w["format"]), (StatusCode::OK, &json!("aghanim")), "{w}");
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}")).await.1["format"], "aghanim");
    assert_eq!(app.get("/api/v1/webhooks").await.1["items"][0]["format"], "aghanim");
    let (_, events) = app.get("/api/v1/events?type=webhook.updated").await;
    let formats: Vec<&Value> =
        events["items"].as_array().expect("items").iter().map(|e| &e["data"]["format"]).collect();
    assert!(formats.contains(&&json!("gatrix")) && formats.contains(&&json!("aghanim")), "{events}");

    // A custom header may not take a format's signing header.
    for name in ["X-Gatrix-Signature", "x-aghanim-signature", "X-Aghanim-Signature-Timestamp"] {
        let (status, body) =
            app.post("/api/v1/webhooks", json!({"url": rx.url, "events": ["*"], "headers": {name: "forged"}})).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    }
}

async fn each_format_renders_the_same_event_with_its_own_headers(app: TestApp) {
    let rx = Receiver::start().await;
    let secret = "format-secret-1";
    endpoint_per_format(&app, &rx, json!(["user.created", "order.completed"]), secret).await;
    let (status, user) = app
        .post("/api/v1/users", json!({"username": "hero", "email": "hero@example.com", "displayName": "Hero"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (status, _) = app.post("/api/v1/event-types", json!({"name": "order.completed"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, order) = app
        .post(
            "/api/v1/events",
            json!({"type": "order.completed", "data": {"orderId": "o1", "amount": 3},
                   "resource": {"type": "order", "id": "o1"}, "idempotencyKey": "pay-o1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let got = rx.wait_for(10).await;
    let (_, events) = app.get("/api/v1/events?type=user.created").await;
    let user_event = &events["items"][0];
    let (user_event_id, order_id) = (user_event["id"].as_str().expect("id"), order["id"].as_str().expect("id"));
    let occurred = chrono::DateTime::parse_from_rfc3339(user_event["occurredAt"].as_str().expect("t")).expect("t");

    for format in FORMATS {
        for event_id in [user_event_id, order_id] {
            let reqs = to(&got, format, event_id);
            assert_eq!(reqs.len(), 1, "{format}: one request for {event_id}");
            let req = reqs[0];
            // Every format: the Standard Webhooks headers, with the event's id.
            assert!(standard_signed_by(secret, req), "{format}");
            assert_eq!(req.header("x-webhook-signature"), hex_hmac(secret, &req.body), "{format}");
            assert_eq!(req.header("content-type"), "application/json");
            // Compact, so JSON.stringify(req.body) gives back the signed bytes (the seeds'
            // receivers in interop.rs prove it; serde_json here sorts keys, so compare sizes).
            assert_eq!(serde_json::to_vec(&req.json()).expect("json").len(), req.body.len(), "{format}");
        }
        let (u, o) = (to(&got, format, user_event_id)[0], to(&got, format, order_id)[0]);
        let (ub, ob) = (u.json(), o.json());
        match format {
            "herald" => {
                assert_eq!((&ub["type"], &ub["data"]["email"]), (&json!("user.created"), &json!("hero@example.com")));
                assert_eq!(ob["data"], json!({"orderId": "o1", "amount": 3}));
            }
            "gatrix" => {
                assert_eq!(u.header("x-gatrix-signature"), hex_hmac(secret, &u.body));
                assert_eq!(ub["event"], "user.created");
                assert_eq!(ub["data"]["user"]["email"], "hero@example.com");
                assert_eq!(ub["data"]["userId"], user["id"]);
                assert_eq!((&ob["event"], &ob["data"]["orderId"]), (&json!("order.completed"), &json!("o1")));
            }
            "bkend" => {
                assert_eq!(ub["eventType"], "user.created");
                assert_eq!((&ub["aggregateType"], &ub["aggregateId"]), (&json!("User"), &user["id"]));
                assert_eq!(ub["payload"]["email"], "hero@example.com");
                assert_eq!(ub["id"], user_event_id);
                assert_eq!((&ob["aggregateType"], &ob["aggregateId"]), (&json!("Order"), &json!("o1")));
                assert_eq!(ob["metadata"]["idempotencyKey"], "pay-o1");
            }
            "aghanim" => {
                assert_eq!(u.header("x-aghanim-signature"), hex_hmac(secret, &u.body));
                let ts: i64 = u.header("x-aghanim-signature-timestamp").parse().expect("unix seconds");
                assert!((ts - chrono::Utc::now().timestamp()).abs() < 600, "{ts}");
                assert!(u.header("user-agent").starts_with("Aghanim/0.1.0"), "{}", u.header("user-agent"));
                assert_eq!((&ub["event_type"], &ub["event_id"]), (&json!("user.created"), &json!(user_event_id)));
                assert_eq!(ub["event_time"], occurred.timestamp(), "unix seconds");
                assert_eq!(ub["game_id"], app.project_id.as_str());
                let data = &ub["event_data"];
                assert_eq!((&data["player_id"], &data["name"]), (&user["id"], &json!("Hero")));
                assert_eq!((&data["email"], &data["avatar_url"]), (&json!("hero@example.com"), &Value::Null));
                assert_eq!(ob["event_data"], json!({"orderId": "o1", "amount": 3}), "custom data as published");
                assert_eq!(ob["idempotency_key"], "pay-o1");
            }
            "gromach" => {
                assert_eq!(ub["event_type"], "user.created");
                assert_eq!(ub["data"]["email"], "hero@example.com");
                assert!(chrono::DateTime::parse_from_rfc3339(ub["timestamp"].as_str().expect("ts")).is_ok());
                assert_eq!(
                    ob,
                    json!({"event_type": "order.completed", "timestamp": ob["timestamp"], "data": {"orderId": "o1", "amount": 3}})
                );
            }
            _ => unreachable!(),
        }
        for header in ["x-gatrix-signature", "x-aghanim-signature"] {
            assert_eq!(u.headers.contains_key(header), header.contains(format), "{format}: {header}");
        }
    }
}

async fn retries_and_replay_send_the_same_bytes_signed_by_both_secrets(app: TestApp) {
    let rx = Receiver::start().await;
    let old = "old-secret-1";
    let ids = endpoint_per_format(&app, &rx, json!(["user.created"]), old).await;
    // Every first attempt fails.
    rx.script((0..FORMATS.len()).map(|_| Reply::status(500)));
    app.post("/api/v1/users", json!({"username": "again", "email": "again@example.com"})).await;
    let first = rx.wait_for(FORMATS.len()).await;
    // The secret is rotated before the retries: they are signed with both (the standard
    // header) and the new one (each format's single-value header).
    let new = "new-secret-1";
    for id in &ids {
        let (status, w) = app.post(&format!("/api/v1/webhooks/{id}/secret/rotate"), json!({"secret": new})).await;
        assert_eq!(status, StatusCode::OK, "{w}");
    }
    app.advance(TimeDelta::seconds(60));
    let retried = rx.wait_for(2 * FORMATS.len()).await;
    for format in FORMATS {
        let (a, b): (Vec<&Received>, Vec<&Received>) = (
            first.iter().filter(|r| r.path == format!("/{format}")).collect(),
            retried[FORMATS.len()..].iter().filter(|r| r.path == format!("/{format}")).collect(),
        );
        assert_eq!((a.len(), b.len()), (1, 1), "{format}");
        assert_eq!(a[0].body, b[0].body, "{format}: a retry sends the same bytes");
        assert_eq!(a[0].header("webhook-id"), b[0].header("webhook-id"), "{format}");
        assert!(standard_signed_by(old, b[0]) && standard_signed_by(new, b[0]), "{format}: both secrets sign");
        let own = match format {
            "gatrix" => "x-gatrix-signature",
            "aghanim" => "x-aghanim-signature",
            _ => "x-webhook-signature",
        };
        assert_eq!(b[0].header(own), hex_hmac(new, &b[0].body), "{format}: {own} uses the new secret");
    }
    // A replay sends the same event again: same id, same bytes.
    let since = chrono::Utc::now() - TimeDelta::minutes(5);
    for id in &ids {
        let (status, body) = app.post(&format!("/api/v1/webhooks/{id}/replay"), json!({"since": since})).await;
        assert_eq!((status, &body["queued"]), (StatusCode::OK, &json!(1)), "{body}");
    }
    let replayed = rx.wait_for(3 * FORMATS.len()).await;
    for format in FORMATS {
        let sent: Vec<&Received> = replayed.iter().filter(|r| r.path == format!("/{format}")).collect();
        assert_eq!(sent.len(), 3, "{format}");
        assert_eq!(sent[2].body, sent[0].body, "{format}: a replay sends the same bytes");
        assert_eq!(sent[2].header("webhook-id"), sent[0].header("webhook-id"), "{format}");
    }
}

/// Aghanim's receivers answer failures as 200 `{"status": "error", "code"}`: such an answer
/// fails the attempt; `not_found` and `validation_error` end the delivery, others are retried.
async fn aghanim_error_answers_fail_the_attempt(app: TestApp) {
    let rx = Receiver::start().await;
    let (status, w) =
        app.post("/api/v1/webhooks", json!({"url": rx.url, "events": ["player.update"], "format": "aghanim"})).await;
    assert_eq!(status, StatusCode::CREATED, "{w}");
    let wid = w["id"].as_str().expect("id");
    rx.script([
        Reply::json(200, json!({"status": "error", "code": "not_found", "message": "플레이어를 찾을 수 없습니다"})),
        Reply::json(200, json!({"status": "error", "code": "invalid_signature", "message": "bad"})),
        Reply::json(200, json!({"status": "ok"})),
    ]);
    let (_, user) = app.post("/api/v1/users", json!({"username": "ghost"})).await;
    let uid = user["id"].as_str().expect("id");
    app.patch(&format!("/api/v1/users/{uid}"), json!({"email": "ghost@example.com"})).await;
    let d = crate::interop::settled_deliveries(&app, wid, 1).await.remove(0);
    assert_eq!(d["status"], "failed", "not_found is final: {d}");
    assert!(d["nextAttemptAt"].is_null(), "{d}");
    let error = d["lastError"].as_str().expect("error");
    assert!(error.contains("not_found") && error.contains("플레이어를 찾을 수 없습니다"), "{error}");
    assert_eq!(d["attempts"].as_array().expect("attempts").len(), 1);
    assert!(app.event_types("webhook", wid).await.contains(&"webhook.delivery_exhausted".to_owned()));

    // Another error is retried on the schedule.
    app.patch(&format!("/api/v1/users/{uid}"), json!({"email": "ghost2@example.com"})).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let pending = loop {
        let (_, page) = app.get(&format!("/api/v1/webhooks/{wid}/deliveries?status=pending")).await;
        // Pending after its first attempt (before it, it is pending too, without an error).
        if let Some(d) = page["items"].as_array().and_then(|a| a.first()).filter(|d| !d["lastError"].is_null()) {
            break d.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no pending delivery: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert!(pending["lastError"].as_str().is_some_and(|e| e.contains("invalid_signature")), "{pending}");
    app.advance(TimeDelta::seconds(60));
    rx.wait_for(3).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, d) = app.get(&format!("/api/v1/deliveries/{}", pending["id"].as_str().expect("id"))).await;
        if d["status"] == "succeeded" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{d}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

async fn gromach_connection_test_needs_success_true(app: TestApp) {
    let rx = Receiver::start().await;
    let (status, w) = app
        .post(
            "/api/v1/webhooks",
            json!({"url": rx.url, "events": ["publish_articles"], "format": "gromach", "name": "My Webhook"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{w}");
    let wid = w["id"].as_str().expect("id");
    rx.script([Reply::json(200, json!({"received": true})), Reply::json(200, json!({"success": true}))]);
    let (status, result) = app.post(&format!("/api/v1/webhooks/{wid}/test"), json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&result["success"], &result["statusCode"]), (&json!(false), &json!(200)), "{result}");
    assert!(result["error"].is_null(), "{result}");
    let (status, result) = app.post(&format!("/api/v1/webhooks/{wid}/test"), json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["success"], true, "{result}");
    let sent = rx.wait_for(2).await[1].json();
    assert_eq!(sent["event_type"], "test");
    assert_eq!(
        sent["data"],
        json!({"message": "This is a test webhook from Herald", "integration_name": "My Webhook"})
    );
    // The delivery log says why the first one failed.
    let (_, page) = app.get(&format!("/api/v1/webhooks/{wid}/deliveries")).await;
    let failed: Vec<&Value> =
        page["items"].as_array().expect("items").iter().filter(|d| d["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{page}");
    assert!(failed[0]["lastError"].as_str().is_some_and(|e| e.contains("success")), "{page}");
}
