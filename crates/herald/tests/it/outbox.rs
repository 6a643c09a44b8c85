//! The outbox promise: a committed change always has its event, a failed one never does,
//! and concurrent updates lose nothing.

use reqwest::StatusCode;
use serde_json::json;

use herald::store::Backend;

use crate::common::TestApp;

crate::both_backends!(
    failed_writes_leave_no_event,
    committed_writes_always_have_one,
    concurrent_patches_lose_no_field,
    events_are_listed_by_type_pattern,
    concurrent_publishes_each_get_their_own_answer,
    an_idempotency_key_is_taken_again_after_its_window
);

/// `GET /events?type=` takes the patterns webhooks, sockets and the CLI take: an exact type,
/// `*`, or a prefix like `world.*`; anything else is a 400 naming the parameter.
async fn events_are_listed_by_type_pattern(app: TestApp) {
    app.post("/api/v1/game-worlds", json!({"worldId": "w1", "name": "One"})).await;
    app.patch("/api/v1/game-worlds/w1", json!({"name": "Uno"})).await;
    app.post("/api/v1/users", json!({"username": "p1"})).await;
    // `world_x` must not match `world.*`: the prefix is compared literally (`_` is no wildcard).
    app.post("/api/v1/event-types", json!({"name": "worldx.opened"})).await;
    app.post("/api/v1/events", json!({"type": "worldx.opened", "data": {}})).await;
    let types = |page: &serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (status, page) = app.get("/api/v1/events?type=world.*").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(types(&page), ["world.updated", "world.created"]);
    let (_, page) = app.get("/api/v1/events?type=world.*&limit=1").await;
    assert_eq!(types(&page), ["world.updated"]);
    let cursor = page["nextCursor"].as_str().expect("a next page");
    let (_, page) = app.get(&format!("/api/v1/events?type=world.*&limit=1&cursor={cursor}")).await;
    assert_eq!(types(&page), ["world.created"], "the cursor keeps the filter's order");
    let (_, page) = app.get("/api/v1/events?type=user.created").await;
    assert_eq!(types(&page), ["user.created"]);
    let (_, page) = app.get("/api/v1/events?type=*").await;
    assert!(types(&page).contains(&"worldx.opened".to_owned()) && types(&page).len() >= 5, "{page}");
    for bad in ["world*", "wor ld", "*.created", "world.**"] {
        let (status, body) = app.get(&format!("/api/v1/events?type={bad}")).await;
        let message = crate::common::assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
        assert!(message.starts_with("type: "), "{bad}: {message}");
    }
}

async fn failed_writes_leave_no_event(app: TestApp) {
    let (status, _) = app.post("/api/v1/game-worlds", json!({"worldId": "w1", "name": "One"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let before = app.store.count_events().await.expect("count");
    // A unique-key violation fails inside the transaction, after validation passed.
    let (status, _) = app.post("/api/v1/game-worlds", json!({"worldId": "w1", "name": "Again"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app.post("/api/v1/client-versions", json!({"channel": "PC", "version": "1.0.0"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app.post("/api/v1/client-versions", json!({"channel": "PC", "version": "1.0.0"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(app.store.count_events().await.expect("count"), before + 1, "only the committed version has an event");
}

async fn committed_writes_always_have_one(app: TestApp) {
    // Writes racing each other: each committed row has exactly its own event.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = app.client.clone();
        let url = app.url("/api/v1/users");
        let key = app.key.clone();
        tasks.push(tokio::spawn(async move {
            let resp =
                client.post(url).header("X-API-Key", key).json(&json!({"username": format!("racer{i}")})).send().await;
            let resp = resp.expect("send");
            (resp.status(), resp.json::<serde_json::Value>().await.expect("json"))
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let (status, body) = t.await.expect("task");
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    for id in &ids {
        assert_eq!(app.event_types("user", id).await, ["user.created"]);
    }
}

async fn concurrent_patches_lose_no_field(app: TestApp) {
    let (_, user) = app.post("/api/v1/users", json!({"username": "shared"})).await;
    let id = user["id"].as_str().expect("id").to_string();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = app.client.clone();
        let url = app.url(&format!("/api/v1/users/{id}"));
        let key = app.key.clone();
        // Each task sets a different field set: displayName, or metadata, alternately.
        let body = if i % 2 == 0 {
            json!({"displayName": format!("name{i}")})
        } else {
            json!({"email": format!("e{i}@example.com")})
        };
        tasks.push(tokio::spawn(async move {
            client.patch(url).header("X-API-Key", key).json(&body).send().await.expect("send").status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), StatusCode::OK);
    }
    let (_, after) = app.get(&format!("/api/v1/users/{id}")).await;
    assert!(after["displayName"].is_string() && after["email"].is_string(), "both kinds of change survived: {after}");
    let updates = app.event_types("user", &id).await.iter().filter(|t| *t == "user.updated").count();
    assert_eq!(updates, 20, "one event per committed update");
}

/// Publishes arriving together are committed together (group commit); each request still gets
/// its own answer: every new event its own id and sequence number, and the requests sharing
/// an idempotency key one event between them (201 for the first, 200 with it for the rest).
async fn concurrent_publishes_each_get_their_own_answer(app: TestApp) {
    app.post("/api/v1/event-types", json!({"name": "match.ended"})).await;
    let before = app.store.count_events().await.expect("count");
    let mut tasks = Vec::new();
    for i in 0..60 {
        // Every sixth request names the key "same"; the others name none or their own.
        let mut event = json!({"type": "match.ended", "data": {"match": i}});
        match i % 6 {
            0 => event["idempotencyKey"] = json!("same"),
            1 => event["idempotencyKey"] = json!(format!("own-{i}")),
            _ => {}
        }
        let req = app.req(reqwest::Method::POST, "/api/v1/events").json(&event);
        tasks.push(tokio::spawn(crate::common::send(req)));
    }
    let (mut created, mut repeats) = (Vec::new(), Vec::new());
    for (i, task) in tasks.into_iter().enumerate() {
        let (status, body) = task.await.expect("request task");
        match status {
            StatusCode::CREATED => created.push((i, body)),
            StatusCode::OK => repeats.push((i, body)),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created.len(), repeats.len()), (51, 9), "one of the ten requests naming `same` stores it");
    let shared: Vec<&serde_json::Value> = created.iter().filter(|(i, _)| i % 6 == 0).map(|(_, b)| &b["id"]).collect();
    assert_eq!(shared.len(), 1);
    for (i, body) in &repeats {
        assert_eq!(i % 6, 0, "only the shared key repeats");
        assert_eq!(&body["id"], shared[0], "a repeat answers with the first event");
    }
    for (i, body) in &created {
        assert_eq!(body["data"]["match"], *i, "each answer is its own request's event: {body}");
    }
    let mut ids: Vec<&str> = created.iter().map(|(_, b)| b["id"].as_str().expect("id")).collect();
    let mut sequences: Vec<i64> = created.iter().map(|(_, b)| b["sequence"].as_i64().expect("sequence")).collect();
    ids.sort_unstable();
    ids.dedup();
    sequences.sort_unstable();
    sequences.dedup();
    assert_eq!((ids.len(), sequences.len()), (51, 51), "distinct ids and sequence numbers");
    assert_eq!(app.store.count_events().await.expect("count"), before + 51, "nothing stored twice");
}

/// A key is one event for 24 hours; after that, publishing with it stores a new event.
async fn an_idempotency_key_is_taken_again_after_its_window(app: TestApp) {
    app.post("/api/v1/event-types", json!({"name": "match.ended"})).await;
    let event = json!({"type": "match.ended", "data": {}, "idempotencyKey": "k"});
    let (status, first) = app.post("/api/v1/events", event.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = app.post("/api/v1/events", event.clone()).await;
    assert_eq!((status, &again["id"]), (StatusCode::OK, &first["id"]));
    // As if 25 hours had passed: the key's first use moves back.
    let then = chrono::Utc::now() - chrono::TimeDelta::hours(25);
    let sql = "UPDATE idempotency_keys SET created_at = $1";
    match app.store.backend() {
        Backend::Sqlite { write, .. } => sqlx::query(sql).bind(then).execute(write).await.map(drop),
        Backend::Postgres(pool) => sqlx::query(sql).bind(then).execute(pool).await.map(drop),
    }
    .expect("age the key");
    let (status, later) = app.post("/api/v1/events", event.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{later}");
    assert_ne!(later["id"], first["id"]);
    let (status, repeat) = app.post("/api/v1/events", event).await;
    assert_eq!((status, &repeat["id"]), (StatusCode::OK, &later["id"]), "the key now names the new event");
    // One batch naming a new key twice: one event, both answers it.
    let twice = json!({"type": "match.ended", "data": {}, "idempotencyKey": "twice"});
    let (status, body) = app.post("/api/v1/events/batch", json!({"events": [twice, twice]})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let items = body["items"].as_array().expect("items");
    assert_eq!((&items[0]["created"], &items[1]["created"]), (&json!(true), &json!(false)), "{body}");
    assert_eq!(items[0]["event"]["id"], items[1]["event"]["id"]);
}
