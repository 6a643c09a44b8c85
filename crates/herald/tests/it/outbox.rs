//! The outbox promise: a committed change always has its event, a failed one never does,
//! and concurrent updates lose nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestApp;

crate::both_backends!(
    failed_writes_leave_no_event,
    committed_writes_always_have_one,
    concurrent_patches_lose_no_field,
    events_are_listed_by_type_pattern
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
