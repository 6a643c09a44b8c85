//! The outbox promise: a committed change always has its event, a failed one never does,
//! and concurrent updates lose nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestApp;

crate::both_backends!(failed_writes_leave_no_event, committed_writes_always_have_one, concurrent_patches_lose_no_field);

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
