//! Players: CRUD, paging, filters, validation, uniqueness, and the events each change writes.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestApp, assert_error};

crate::both_backends!(
    create_get_update_delete,
    seed_calls_work_as_written,
    paging_is_stable_and_bounded,
    filters_by_role_status_and_q,
    invalid_input_is_rejected_and_changes_nothing,
    shape_errors_name_the_field,
    usernames_in_any_script,
    duplicate_username_and_id_conflict,
    profile_changes_emit_player_update,
    login_sets_last_login_and_emits_event,
    patch_null_clears_and_absent_keeps,
    concurrent_creates_each_get_their_own_answer,
);

async fn create_get_update_delete(app: TestApp) {
    let (status, user) = app
        .post(
            "/api/v1/users",
            json!({"username": "alice", "email": "alice@example.com", "displayName": "Alice",
                   "avatarUrl": "https://cdn.example.com/a.png", "metadata": {"level": 3}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let id = user["id"].as_str().expect("id");
    assert_eq!(user["username"], "alice");
    assert_eq!(user["role"], "player");
    assert_eq!(user["status"], "active");
    assert_eq!(user["metadata"], json!({"level": 3}));
    assert!(user["lastLoginAt"].is_null());
    assert!(user["createdAt"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));

    let (status, got) = app.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, user);

    let (status, updated) = app.put(&format!("/api/v1/users/{id}"), json!({"status": "suspended"})).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["status"], "suspended");
    assert_eq!(updated["username"], "alice", "PUT is a partial update");

    let (status, deleted) = app.delete(&format!("/api/v1/users/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["id"], id);
    let (status, body) = app.get(&format!("/api/v1/users/{id}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.delete(&format!("/api/v1/users/{id}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    assert_eq!(app.event_types("user", id).await, ["user.created", "user.updated", "user.deleted"]);
}

/// The seed's own calls (gatrix guide), unchanged.
async fn seed_calls_work_as_written(app: TestApp) {
    let (status, user) = app
        .post("/api/v1/users", json!({"username": "player123", "email": "player@example.com", "role": "player"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let id = user["id"].as_str().expect("id");
    let (status, list) = app.get("/api/v1/users?page=1&limit=50&role=player").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["items"][0]["username"], "player123");
    let when = "2026-11-20T08:30:00.123Z";
    let (status, updated) =
        app.put(&format!("/api/v1/users/{id}"), json!({"status": "active", "lastLoginAt": when})).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["lastLoginAt"], "2026-11-20T08:30:00.123Z");
    // Also with `Authorization: Bearer <key>`.
    let (status, _) = crate::common::send(
        app.anon(reqwest::Method::GET, "/api/v1/users").header("Authorization", format!("Bearer {}", app.key)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

async fn paging_is_stable_and_bounded(app: TestApp) {
    for i in 0..25 {
        let (status, _) = app.post("/api/v1/users", json!({"username": format!("p{i:02}")})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, first) = app.get("/api/v1/users").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["items"].as_array().expect("items").len(), 20, "default limit is 20");
    assert_eq!(
        (first["page"].as_u64(), first["total"].as_u64(), first["totalPages"].as_u64()),
        (Some(1), Some(25), Some(2))
    );

    let mut seen = Vec::new();
    for page in 1..=3 {
        let (status, body) = app.get(&format!("/api/v1/users?page={page}&limit=10")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total"], 25);
        seen.extend(
            body["items"].as_array().expect("items").iter().map(|u| u["username"].as_str().unwrap_or("").to_string()),
        );
    }
    let expected: Vec<String> = (0..25).map(|i| format!("p{i:02}")).collect();
    assert_eq!(seen, expected, "pages cover every user once, in creation order");

    let (status, past) = app.get("/api/v1/users?page=9&limit=10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(past["items"], json!([]));
    assert_eq!(past["total"], 25, "total is known even past the last page");

    for bad in ["limit=101", "limit=0", "page=0", "page=-1", "limit=abc", "sort=name", "status=gone"] {
        let (status, body) = app.get(&format!("/api/v1/users?{bad}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    }
    let (status, body) = app.get("/api/v1/users?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn filters_by_role_status_and_q(app: TestApp) {
    for (name, role, status, email) in [
        ("knight", "player", "active", "k@example.com"),
        ("Mage_Lord", "player", "suspended", "mage@example.com"),
        ("gm_sam", "admin", "active", "sam@studio.example"),
    ] {
        let (s, body) =
            app.post("/api/v1/users", json!({"username": name, "role": role, "status": status, "email": email})).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|u| u["username"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let (_, body) = app.get("/api/v1/users?role=admin").await;
    assert_eq!(names(&body), ["gm_sam"]);
    let (_, body) = app.get("/api/v1/users?status=suspended").await;
    assert_eq!(names(&body), ["Mage_Lord"]);
    let (_, body) = app.get("/api/v1/users?q=MAGE").await;
    assert_eq!(names(&body), ["Mage_Lord"], "q is case-insensitive");
    let (_, body) = app.get("/api/v1/users?q=studio.example").await;
    assert_eq!(names(&body), ["gm_sam"], "q matches email");
    let (_, body) = app.get("/api/v1/users?q=_").await;
    assert_eq!(names(&body), ["Mage_Lord", "gm_sam"], "`_` is matched literally, not as a wildcard");
    let (_, body) = app.get("/api/v1/users?role=player&status=active").await;
    assert_eq!(names(&body), ["knight"]);
}

async fn invalid_input_is_rejected_and_changes_nothing(app: TestApp) {
    let events_before = app.store.count_events().await.expect("count");
    let cases = [
        (json!({}), "missing username"),
        (json!({"username": ""}), "empty username"),
        (json!({"username": "has space"}), "bad username"),
        (json!({"username": "ok", "email": "not-an-email"}), "bad email"),
        (json!({"username": "ok", "avatarUrl": "javascript:alert(1)"}), "bad url"),
        (json!({"username": "ok", "status": "banned"}), "bad status"),
        (json!({"username": "ok", "role": "Super Admin"}), "bad role"),
        (json!({"username": "ok", "metadata": [1, 2]}), "metadata not object"),
        (json!({"username": "ok", "unknownField": 1}), "unknown field"),
        (json!({"username": 42}), "wrong type"),
        (json!({"username": "ok", "metadata": {"note": "a\u{0}b"}}), "NUL in metadata (PostgreSQL cannot store it)"),
    ];
    for (body, what) in cases {
        let (status, resp) = app.post("/api/v1/users", body).await;
        assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        let _ = what;
    }
    let (status, resp) = app.post("/api/v1/users", json!({"username": "ok", "email": "x", "status": "nope"})).await;
    assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let fields: Vec<&str> =
        resp["error"]["details"].as_array().expect("details").iter().filter_map(|d| d["field"].as_str()).collect();
    assert_eq!(fields, ["email", "status"], "every invalid field is named");

    let (_, list) = app.get("/api/v1/users").await;
    assert_eq!(list["total"], 0, "nothing was created");
    assert_eq!(app.store.count_events().await.expect("count"), events_before, "no event for a rejected write");
}

/// API.md: `details` lists each bad field, with a machine-readable code, also when the JSON
/// has the wrong shape (serde's own text named no field).
async fn shape_errors_name_the_field(app: TestApp) {
    let cases = [
        (json!({"username": "ok", "format": "x"}), "format", "unknown_field"),
        (json!({"email": "a@b.co"}), "username", "missing_field"),
        (json!({"username": 42}), "username", "invalid_type"),
        (json!({"username": "ok", "metadata": "x", "unknownField": 1}), "unknownField", "unknown_field"),
    ];
    for (body, field, code) in cases {
        let (status, resp) = app.post("/api/v1/users", body.clone()).await;
        let message = assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        let details = &resp["error"]["details"];
        assert_eq!(details.as_array().map(Vec::len), Some(1), "{body}: {resp}");
        assert_eq!((details[0]["field"].as_str(), details[0]["code"].as_str()), (Some(field), Some(code)), "{resp}");
        assert!(message.starts_with(&format!("{field}: ")), "a readable message naming the field: {message}");
        assert!(!message.contains("line 1 column"), "no parser position: {message}");
    }
    // A field nested in an object is named by its path.
    let (status, resp) = app.post("/api/v1/game-worlds", json!({"worldId": "w", "name": "W", "tags": ["a", 5]})).await;
    assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    assert_eq!(resp["error"]["details"][0]["field"], "tags[1]", "{resp}");
    // Domain checks carry a code too.
    let (_, resp) = app.post("/api/v1/users", json!({"username": "ok", "email": "nope"})).await;
    assert_eq!(resp["error"]["details"][0]["code"], "invalid", "{resp}");
}

/// A Korean studio's players have Korean names: letters and digits of any script are allowed,
/// stored in NFC, and spaces, controls and invisible characters are still refused.
async fn usernames_in_any_script(app: TestApp) {
    for name in ["용사123", "dörte", "игрок_1", "プレイヤー", "น้ำ"] {
        let (status, user) = app.post("/api/v1/users", json!({"username": name})).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {user}");
        assert_eq!(user["username"], name);
        let (_, got) = app.get(&format!("/api/v1/users/{}", user["id"].as_str().expect("id"))).await;
        assert_eq!(got["username"], name, "stored as sent");
    }
    // `dörte` with a combining diaeresis is the same name as the precomposed one.
    let (status, body) = app.post("/api/v1/users", json!({"username": "do\u{0308}rte"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, user) = app.post("/api/v1/users", json!({"username": "zo\u{0308}e"})).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["username"], "zöe", "stored in NFC");
    // Renames are checked the same way.
    let id = user["id"].as_str().expect("id").to_owned();
    let (status, renamed) = app.patch(&format!("/api/v1/users/{id}"), json!({"username": "전사"})).await;
    assert_eq!((status, renamed["username"].as_str()), (StatusCode::OK, Some("전사")), "{renamed}");

    let events_before = app.store.count_events().await.expect("count");
    let too_long: String = "가".repeat(65);
    for bad in ["용 사", "a\u{200b}b", "a\u{200d}b", "a\u{202e}b", "\u{0301}a", "a\tb", "😀", too_long.as_str()] {
        let (status, body) = app.post("/api/v1/users", json!({"username": bad})).await;
        let message = assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        assert!(message.starts_with("username: "), "{bad:?}: {message}");
    }
    let (status, _) = app.post("/api/v1/users", json!({"username": "가".repeat(64)})).await;
    assert_eq!(status, StatusCode::CREATED, "64 characters, 192 bytes");
    assert_eq!(app.store.count_events().await.expect("count"), events_before + 1, "refused names wrote nothing");
}

async fn duplicate_username_and_id_conflict(app: TestApp) {
    let (status, _) = app.post("/api/v1/users", json!({"id": "player-1", "username": "dup"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.post("/api/v1/users", json!({"username": "dup"})).await;
    let msg = assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert!(msg.contains("username"), "{msg}");
    let (status, body) = app.post("/api/v1/users", json!({"id": "player-1", "username": "other"})).await;
    let msg = assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert!(msg.contains("id"), "{msg}");
    let (status, _) = app.post("/api/v1/users", json!({"username": "second"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, list) = app.get("/api/v1/users?q=second").await;
    let second = list["items"][0]["id"].as_str().expect("id").to_string();
    let (status, body) = app.patch(&format!("/api/v1/users/{second}"), json!({"username": "dup"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(app.event_types("user", &second).await, ["user.created"], "the failed rename wrote no event");
}

async fn profile_changes_emit_player_update(app: TestApp) {
    let (_, user) = app.post("/api/v1/users", json!({"username": "hero"})).await;
    let id = user["id"].as_str().expect("id");
    app.patch(&format!("/api/v1/users/{id}"), json!({"metadata": {"x": 1}})).await;
    app.patch(&format!("/api/v1/users/{id}"), json!({"displayName": "The Hero", "email": "hero@example.com"})).await;
    assert_eq!(app.event_types("user", id).await, ["user.created", "user.updated", "user.updated", "player.update"]);
    let events = app.store.events_for_resource("user", id).await.expect("events");
    let last = events.last().expect("event");
    assert_eq!(last.data.0["displayName"], "The Hero", "the event carries the new state");
    assert_eq!(last.project_id.as_deref(), Some(app.project_id.as_str()));
    assert!(last.actor.as_deref().is_some_and(|a| a.starts_with("key:")), "{:?}", last.actor);
    assert!(last.request_id.is_some(), "the request id is recorded");
}

async fn login_sets_last_login_and_emits_event(app: TestApp) {
    let (_, user) = app.post("/api/v1/users", json!({"username": "logger"})).await;
    let id = user["id"].as_str().expect("id");
    let (status, after) = app.post(&format!("/api/v1/users/{id}/login"), json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert!(after["lastLoginAt"].is_string());
    assert!(app.event_types("user", id).await.contains(&"user.login".to_string()));
    let (status, body) = app.post("/api/v1/users/nobody/login", json!(null)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

async fn patch_null_clears_and_absent_keeps(app: TestApp) {
    let (_, user) =
        app.post("/api/v1/users", json!({"username": "clear", "email": "c@example.com", "displayName": "C"})).await;
    let id = user["id"].as_str().expect("id");
    let (status, after) = app.patch(&format!("/api/v1/users/{id}"), json!({"email": null})).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert!(after["email"].is_null());
    assert_eq!(after["displayName"], "C");
}

/// Concurrent creates share transactions on SQLite (group commit): a clash fails only its own
/// request, every other one is written with its event, and nothing is written twice.
async fn concurrent_creates_each_get_their_own_answer(app: TestApp) {
    let mut tasks = Vec::new();
    for i in 0..60 {
        // Every sixth request takes the username "taken"; the others are unique.
        let username = if i % 6 == 0 { "taken".to_string() } else { format!("player-{i}") };
        let req = app.req(reqwest::Method::POST, "/api/v1/users").json(&json!({"username": username}));
        tasks.push(tokio::spawn(crate::common::send(req)));
    }
    let mut created = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let (status, body) = task.await.expect("request task");
        match status {
            StatusCode::CREATED => created.push(body["id"].as_str().expect("id").to_string()),
            StatusCode::CONFLICT => {
                assert_error(status, &body, StatusCode::CONFLICT, "conflict");
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created.len(), conflicts), (51, 9), "one of the ten clashing requests wins");
    let (_, list) = app.get("/api/v1/users?limit=100").await;
    assert_eq!(list["total"], 51, "{list}");
    for id in &created {
        assert_eq!(app.event_types("user", id).await, ["user.created"], "each created user has its one event");
    }
}
