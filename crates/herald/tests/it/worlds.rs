//! Game worlds: the seed's calls, CRUD by id or worldId, validation, paging and ordering,
//! filters, maintenance mode (messages, windows, `inMaintenance`) and the events each change
//! writes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, assert_error, send};

crate::both_backends!(
    seed_calls_work_as_written,
    create_get_update_delete,
    id_or_world_id_addresses_a_world,
    duplicate_world_id_conflicts,
    invalid_input_is_rejected_and_changes_nothing,
    paging_is_bounded_and_ordered_by_display_order,
    filters_by_visible_maintenance_and_tag,
    maintenance_on_and_off_with_messages,
    maintenance_window_decides_in_maintenance,
    maintenance_events_only_on_transitions,
    created_in_maintenance_emits_started,
    maintenance_filter_follows_in_maintenance,
);

/// POSTs a world and returns it, asserting `201`.
async fn create_world(app: &TestApp, body: Value) -> Value {
    let (status, world) = app.post("/api/v1/game-worlds", body).await;
    assert_eq!(status, StatusCode::CREATED, "{world}");
    world
}

/// The `worldId`s of a list answer, in order.
fn world_ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items: {list}"))
        .iter()
        .map(|w| w["worldId"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Asserts `200 OK` and returns the body.
#[track_caller]
fn ok((status, body): (StatusCode, Value)) -> Value {
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The fields named in `error.details`.
fn detail_fields(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str().map(str::to_owned))
        .collect()
}

/// The seed's calls (gatrix guide), unchanged.
async fn seed_calls_work_as_written(app: TestApp) {
    let (status, worlds) = app.get("/api/v1/game-worlds").await;
    assert_eq!(status, StatusCode::OK, "{worlds}");
    assert_eq!(worlds["items"], json!([]));
    assert_eq!(worlds["total"], 0);

    let world = create_world(
        &app,
        json!({
            "worldId": "world_001",
            "name": "메인 월드",
            "description": "기본 게임 월드",
            "visible": true,
            "maintenance": false
        }),
    )
    .await;
    assert_eq!(world["worldId"], "world_001");
    assert_eq!(world["name"], "메인 월드");
    assert_eq!(world["description"], "기본 게임 월드");
    assert_eq!(world["visible"], true);
    assert_eq!(world["maintenance"], false);
    assert_eq!(world["inMaintenance"], false);

    let (status, worlds) = app.get("/api/v1/game-worlds").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world_ids(&worlds), ["world_001"]);

    // The seed addresses the world as `1` (Gatrix's numeric id). Herald's ids are UUIDs, but
    // `{id}` also takes the worldId, so a world whose worldId is `1` answers to the literal URL.
    create_world(&app, json!({"worldId": "1", "name": "World One"})).await;
    let message = "서버 점검 중입니다. 2시간 후 정상화 예정입니다.";
    let (status, after) =
        app.put("/api/v1/game-worlds/1/maintenance", json!({"enabled": true, "message": message})).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["worldId"], "1");
    assert_eq!(after["maintenance"], true);
    assert_eq!(after["maintenanceMessage"], message);
    assert_eq!(after["inMaintenance"], true);

    let (status, after) =
        app.put("/api/v1/game-worlds/world_001/maintenance", json!({"enabled": true, "message": message})).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["id"], world["id"]);
    assert_eq!(after["inMaintenance"], true);
}

async fn create_get_update_delete(app: TestApp) {
    let world = create_world(
        &app,
        json!({"worldId": "asia-1", "name": "Asia 1", "description": "first shard",
               "displayOrder": 3, "tags": ["pvp", "season:3"], "visible": false}),
    )
    .await;
    let id = world["id"].as_str().expect("id");
    assert_eq!(world["displayOrder"], 3);
    assert_eq!(world["tags"], json!(["pvp", "season:3"]));
    assert_eq!(world["visible"], false);
    assert_eq!(world["maintenance"], false);
    assert!(world["maintenanceMessage"].is_null());
    assert_eq!(world["maintenanceMessages"], json!({}));
    assert!(world["maintenanceStartsAt"].is_null());
    assert!(world["maintenanceEndsAt"].is_null());
    assert!(world["createdAt"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()), "{world}");

    // Defaults for what is left out.
    let plain = create_world(&app, json!({"worldId": "plain", "name": "Plain"})).await;
    assert_eq!(plain["visible"], true);
    assert_eq!(plain["displayOrder"], 0);
    assert_eq!(plain["tags"], json!([]));
    assert!(plain["description"].is_null());

    let (status, got) = app.get(&format!("/api/v1/game-worlds/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, world);

    let (status, updated) =
        app.put(&format!("/api/v1/game-worlds/{id}"), json!({"name": "Asia One", "visible": true})).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Asia One");
    assert_eq!(updated["visible"], true);
    assert_eq!(updated["description"], "first shard", "PUT is a partial update");
    assert_eq!(updated["tags"], json!(["pvp", "season:3"]));

    let (status, patched) = app
        .patch(
            &format!("/api/v1/game-worlds/{id}"),
            json!({"description": null, "tags": ["pve"], "worldId": "asia-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert!(patched["description"].is_null(), "null clears");
    assert_eq!(patched["tags"], json!(["pve"]));
    assert_eq!(patched["worldId"], "asia-01");
    assert_eq!(patched["name"], "Asia One", "absent keeps");
    let (_, got) = app.get(&format!("/api/v1/game-worlds/{id}")).await;
    assert_eq!(got, patched, "the change is stored");

    let (status, deleted) = app.delete(&format!("/api/v1/game-worlds/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["id"], id);
    let (status, body) = app.get(&format!("/api/v1/game-worlds/{id}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.delete(&format!("/api/v1/game-worlds/{id}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.put(&format!("/api/v1/game-worlds/{id}"), json!({"name": "x"})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = app.get("/api/v1/game-worlds").await;
    assert_eq!(world_ids(&list), ["plain"]);

    assert_eq!(
        app.event_types("world", id).await,
        ["world.created", "world.updated", "world.updated", "world.deleted"]
    );
    let events = app.store.events_for_resource("world", id).await.expect("events");
    assert_eq!(events[2].data.0["worldId"], "asia-01", "events carry the new state");
    assert_eq!(events[2].project_id.as_deref(), Some(app.project_id.as_str()));
}

async fn id_or_world_id_addresses_a_world(app: TestApp) {
    let world = create_world(&app, json!({"worldId": "eu-west", "name": "EU West"})).await;
    let id = world["id"].as_str().expect("id");

    let (status, by_id) = app.get(&format!("/api/v1/game-worlds/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, by_world_id) = app.get("/api/v1/game-worlds/eu-west").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id, by_world_id);

    let (status, updated) = app.put("/api/v1/game-worlds/eu-west", json!({"name": "Europe West"})).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["id"], id);
    let (status, _) = app.put("/api/v1/game-worlds/eu-west/maintenance", json!({"enabled": true})).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app.get("/api/v1/game-worlds/no-such-world").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.put("/api/v1/game-worlds/no-such-world/maintenance", json!({"enabled": true})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    let (status, deleted) = app.delete("/api/v1/game-worlds/eu-west").await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["id"], id);
    let (status, body) = app.get(&format!("/api/v1/game-worlds/{id}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

async fn duplicate_world_id_conflicts(app: TestApp) {
    create_world(&app, json!({"worldId": "world_001", "name": "First"})).await;
    let (status, body) = app.post("/api/v1/game-worlds", json!({"worldId": "world_001", "name": "Second"})).await;
    let msg = assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert!(msg.contains("worldId"), "{msg}");

    let other = create_world(&app, json!({"worldId": "world_002", "name": "Other"})).await;
    let other_id = other["id"].as_str().expect("id");
    let (status, body) = app.patch(&format!("/api/v1/game-worlds/{other_id}"), json!({"worldId": "world_001"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(app.event_types("world", other_id).await, ["world.created"], "the failed rename wrote no event");
    let (_, list) = app.get("/api/v1/game-worlds").await;
    assert_eq!(world_ids(&list), ["world_001", "world_002"]);

    // worldIds are unique per project: another project may use the same one, and sees only
    // its own world under it.
    let (_, other_key) = app.other_project().await;
    let (status, theirs) = send(
        app.with_key(&other_key, reqwest::Method::POST, "/api/v1/game-worlds")
            .json(&json!({"worldId": "world_001", "name": "Theirs"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let (status, got) = send(app.with_key(&other_key, reqwest::Method::GET, "/api/v1/game-worlds/world_001")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "Theirs");
    let (_, ours) = app.get("/api/v1/game-worlds/world_001").await;
    assert_eq!(ours["name"], "First");
}

async fn invalid_input_is_rejected_and_changes_nothing(app: TestApp) {
    let events_before = app.store.count_events().await.expect("count");
    // Malformed bodies: the message names the field.
    for (body, field) in [
        (json!({"name": "No Id"}), "worldId"),
        (json!({"worldId": "w1"}), "name"),
        (json!({"worldId": "w1", "name": "W", "colour": "red"}), "colour"),
        (json!({"worldId": "w1", "name": "W", "displayOrder": "first"}), "displayOrder"),
        (json!({"worldId": "w1", "name": "W", "visible": "yes"}), "visible"),
    ] {
        let (status, resp) = app.post("/api/v1/game-worlds", body.clone()).await;
        let msg = assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        assert!(msg.contains(field), "{body} -> {msg}");
    }
    // Well-formed but invalid values: listed by field in `details`.
    let too_many_tags: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    for (body, field) in [
        (json!({"worldId": "has space", "name": "W"}), "worldId"),
        (json!({"worldId": "", "name": "W"}), "worldId"),
        (json!({"worldId": "w1", "name": ""}), "name"),
        (json!({"worldId": "w1", "name": "   "}), "name"),
        (json!({"worldId": "w1", "name": "W", "tags": ["bad tag"]}), "tags"),
        (json!({"worldId": "w1", "name": "W", "tags": ["a\"b"]}), "tags"),
        (json!({"worldId": "w1", "name": "W", "tags": too_many_tags}), "tags"),
        (json!({"worldId": "w1", "name": "W", "description": "x".repeat(1001)}), "description"),
    ] {
        let (status, resp) = app.post("/api/v1/game-worlds", body.clone()).await;
        assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        assert_eq!(detail_fields(&resp), [field], "{body} -> {resp}");
    }
    let (_, list) = app.get("/api/v1/game-worlds").await;
    assert_eq!(list["total"], 0, "nothing was created");
    assert_eq!(app.store.count_events().await.expect("count"), events_before, "no event for a rejected write");

    // Updates and maintenance changes are checked the same way and leave the world as it was.
    let world = create_world(&app, json!({"worldId": "w1", "name": "W"})).await;
    let id = world["id"].as_str().expect("id");
    let (status, resp) = app.patch(&format!("/api/v1/game-worlds/{id}"), json!({"tags": ["no spaces allowed"]})).await;
    assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    assert_eq!(detail_fields(&resp), ["tags"]);
    let (status, resp) = app.patch(&format!("/api/v1/game-worlds/{id}"), json!({"nickname": "x"})).await;
    let msg = assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    assert!(msg.contains("nickname"), "{msg}");

    let maintenance = format!("/api/v1/game-worlds/{id}/maintenance");
    let (status, resp) = app
        .put(
            &maintenance,
            json!({"enabled": true, "startsAt": "2030-01-02T00:00:00Z", "endsAt": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    assert_eq!(detail_fields(&resp), ["endsAt"], "{resp}");
    let (status, resp) = app
        .put(
            &maintenance,
            json!({"enabled": true, "startsAt": "2030-01-01T00:00:00Z", "endsAt": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    assert_eq!(detail_fields(&resp), ["endsAt"], "an empty window is rejected too");
    let (status, resp) = app.put(&maintenance, json!({"enabled": true, "messages": {"not a lang": "x"}})).await;
    assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    assert_eq!(detail_fields(&resp), ["messages"]);
    for (body, field) in [
        (json!({"message": "no switch"}), "enabled"),
        (json!({"enabled": true, "reason": "x"}), "reason"),
        (json!({"enabled": true, "startsAt": "tomorrow"}), "startsAt"),
    ] {
        let (status, resp) = app.put(&maintenance, body.clone()).await;
        let msg = assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        assert!(msg.contains(field), "{body} -> {msg}");
    }
    let (_, after) = app.get(&format!("/api/v1/game-worlds/{id}")).await;
    assert_eq!(after, world, "rejected changes left the world as it was");
    assert_eq!(app.event_types("world", id).await, ["world.created"]);
}

async fn paging_is_bounded_and_ordered_by_display_order(app: TestApp) {
    // displayOrder first, then creation order among equals.
    for (world_id, order) in [("a", 2), ("b", 1), ("c", 2), ("d", 0), ("e", 1)] {
        create_world(&app, json!({"worldId": world_id, "name": world_id, "displayOrder": order})).await;
    }
    let (status, list) = app.get("/api/v1/game-worlds").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world_ids(&list), ["d", "b", "e", "a", "c"]);
    let (status, _) = app.patch("/api/v1/game-worlds/c", json!({"displayOrder": -1})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.get("/api/v1/game-worlds").await;
    assert_eq!(world_ids(&list), ["c", "d", "b", "e", "a"], "a new displayOrder moves the world");

    for i in 0..20 {
        create_world(&app, json!({"worldId": format!("w{i:02}"), "name": format!("W{i}"), "displayOrder": 10})).await;
    }
    let (status, first) = app.get("/api/v1/game-worlds").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["items"].as_array().expect("items").len(), 20, "default limit is 20");
    assert_eq!(
        (first["page"].as_u64(), first["limit"].as_u64(), first["total"].as_u64(), first["totalPages"].as_u64()),
        (Some(1), Some(20), Some(25), Some(2))
    );

    let mut seen = Vec::new();
    for page in 1..=3 {
        let (status, body) = app.get(&format!("/api/v1/game-worlds?page={page}&limit=10")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total"], 25);
        seen.extend(world_ids(&body));
    }
    let mut expected: Vec<String> = ["c", "d", "b", "e", "a"].map(String::from).to_vec();
    expected.extend((0..20).map(|i| format!("w{i:02}")));
    assert_eq!(seen, expected, "pages cover every world once, in order");

    let (status, all) = app.get("/api/v1/game-worlds?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(world_ids(&all), expected);
    let (status, past) = app.get("/api/v1/game-worlds?page=4&limit=10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(past["items"], json!([]));
    assert_eq!(past["total"], 25);

    for bad in ["limit=101", "limit=0", "page=0", "limit=abc", "sort=name"] {
        let (status, body) = app.get(&format!("/api/v1/game-worlds?{bad}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    }
}

async fn filters_by_visible_maintenance_and_tag(app: TestApp) {
    create_world(&app, json!({"worldId": "open", "name": "Open", "tags": ["pvp", "asia"]})).await;
    create_world(&app, json!({"worldId": "hidden", "name": "Hidden", "visible": false, "tags": ["pve"]})).await;
    create_world(&app, json!({"worldId": "down", "name": "Down", "maintenance": true, "tags": ["pvp", "season:3"]}))
        .await;
    create_world(&app, json!({"worldId": "later", "name": "Later"})).await;
    // Switched on through the maintenance route too.
    let (status, _) =
        app.put("/api/v1/game-worlds/later/maintenance", json!({"enabled": true, "message": "patching"})).await;
    assert_eq!(status, StatusCode::OK);

    for (query, want) in [
        ("visible=false", vec!["hidden"]),
        ("visible=true", vec!["open", "down", "later"]),
        ("maintenance=true", vec!["down", "later"]),
        ("maintenance=false", vec!["open", "hidden"]),
        ("tag=pvp", vec!["open", "down"]),
        ("tag=season:3", vec!["down"]),
        ("tag=pve", vec!["hidden"]),
        ("tag=pv", vec![]),
        ("tag=pv_", vec![]),
        ("tag=nothing", vec![]),
        ("tag=pvp&maintenance=false", vec!["open"]),
        ("visible=true&maintenance=true&tag=pvp", vec!["down"]),
    ] {
        let (status, body) = app.get(&format!("/api/v1/game-worlds?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(world_ids(&body), want, "{query}");
        assert_eq!(body["total"], want.len(), "{query}");
    }

    for bad in ["visible=maybe", "maintenance=2", "tag=bad%20tag", "tag=a%22b", "tag=", "world=open"] {
        let (status, body) = app.get(&format!("/api/v1/game-worlds?{bad}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    }
}

async fn maintenance_on_and_off_with_messages(app: TestApp) {
    let world = create_world(&app, json!({"worldId": "kr-1", "name": "Korea 1"})).await;
    let id = world["id"].as_str().expect("id");
    let path = "/api/v1/game-worlds/kr-1/maintenance";

    let (status, on) = app
        .put(
            path,
            json!({"enabled": true, "message": "Back soon",
                   "messages": {"ko": "점검 중입니다", "en": "Under maintenance"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{on}");
    assert_eq!(on["maintenance"], true);
    assert_eq!(on["inMaintenance"], true);
    assert_eq!(on["maintenanceMessage"], "Back soon");
    assert_eq!(on["maintenanceMessages"], json!({"ko": "점검 중입니다", "en": "Under maintenance"}));
    assert_eq!(on["name"], "Korea 1", "other fields are kept");
    let (_, got) = app.get(&format!("/api/v1/game-worlds/{id}")).await;
    assert_eq!(got, on, "the state is stored");
    let (_, list) = app.get("/api/v1/game-worlds").await;
    assert_eq!(list["items"][0]["inMaintenance"], true, "lists show it too");

    // Switching it on again replaces message, messages and window.
    let (status, again) = app.put(path, json!({"enabled": true, "messages": {"en": "Extended"}})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert!(again["maintenanceMessage"].is_null());
    assert_eq!(again["maintenanceMessages"], json!({"en": "Extended"}));

    let (status, off) = app.put(path, json!({"enabled": false, "message": "ignored"})).await;
    assert_eq!(status, StatusCode::OK, "{off}");
    assert_eq!(off["maintenance"], false);
    assert_eq!(off["inMaintenance"], false);
    assert!(off["maintenanceMessage"].is_null(), "{off}");
    assert_eq!(off["maintenanceMessages"], json!({}));
    assert!(off["maintenanceStartsAt"].is_null());
    assert!(off["maintenanceEndsAt"].is_null());

    // Through the plain update, too.
    let (status, patched) = app
        .patch(&format!("/api/v1/game-worlds/{id}"), json!({"maintenance": true, "maintenanceMessage": "hotfix"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["inMaintenance"], true);
    assert_eq!(patched["maintenanceMessage"], "hotfix");

    // Switching off through the plain update clears message and window as well, so switching
    // on again later does not bring back a stale (possibly ended) window.
    ok(app
        .put(
            path,
            json!({"enabled": true, "message": "window", "messages": {"en": "w"},
                   "startsAt": "2000-01-01T00:00:00Z", "endsAt": "2000-01-02T00:00:00Z"}),
        )
        .await);
    let off = ok(app.patch(&format!("/api/v1/game-worlds/{id}"), json!({"maintenance": false})).await);
    assert_eq!(off["maintenance"], false);
    assert!(off["maintenanceMessage"].is_null(), "{off}");
    assert_eq!(off["maintenanceMessages"], json!({}));
    assert!(off["maintenanceStartsAt"].is_null(), "{off}");
    assert!(off["maintenanceEndsAt"].is_null(), "{off}");
    let on = ok(app.patch(&format!("/api/v1/game-worlds/{id}"), json!({"maintenance": true})).await);
    assert_eq!(on["inMaintenance"], true, "{on}");
}

async fn maintenance_window_decides_in_maintenance(app: TestApp) {
    create_world(&app, json!({"worldId": "w", "name": "W"})).await;
    let path = "/api/v1/game-worlds/w/maintenance";
    let past = "2001-02-03T04:05:06Z";
    let earlier = "2000-01-01T00:00:00Z";
    let future = "2999-01-01T00:00:00Z";
    let later = "2999-06-01T12:30:00Z";

    let (status, inside) =
        app.put(path, json!({"enabled": true, "message": "window", "startsAt": past, "endsAt": future})).await;
    assert_eq!(status, StatusCode::OK, "{inside}");
    assert_eq!(inside["maintenanceStartsAt"], past);
    assert_eq!(inside["maintenanceEndsAt"], future);
    assert_eq!(inside["inMaintenance"], true, "now is inside the window");

    let (status, ahead) = app.put(path, json!({"enabled": true, "startsAt": future, "endsAt": later})).await;
    assert_eq!(status, StatusCode::OK, "{ahead}");
    assert_eq!(ahead["maintenance"], true, "scheduled");
    assert_eq!(ahead["inMaintenance"], false, "the window has not begun");
    let (_, got) = app.get(path.trim_end_matches("/maintenance")).await;
    assert_eq!(got["inMaintenance"], false);
    let (_, list) = app.get("/api/v1/game-worlds").await;
    assert_eq!(list["items"][0]["inMaintenance"], false);

    let (status, over) = app.put(path, json!({"enabled": true, "startsAt": earlier, "endsAt": past})).await;
    assert_eq!(status, StatusCode::OK, "{over}");
    assert_eq!(over["inMaintenance"], false, "the window has ended");

    // Open-ended windows.
    let from_past = ok(app.put(path, json!({"enabled": true, "startsAt": past})).await);
    assert_eq!(from_past["inMaintenance"], true);
    assert!(from_past["maintenanceEndsAt"].is_null());
    let until_future = ok(app.put(path, json!({"enabled": true, "endsAt": future})).await);
    assert_eq!(until_future["inMaintenance"], true);
    assert!(until_future["maintenanceStartsAt"].is_null());
    let until_past = ok(app.put(path, json!({"enabled": true, "endsAt": past})).await);
    assert_eq!(until_past["inMaintenance"], false);

    // snake_case keys are accepted too; offsets are normalised to UTC.
    let (status, snake) =
        app.put(path, json!({"enabled": true, "starts_at": "2001-02-03T13:05:06+09:00", "ends_at": future})).await;
    assert_eq!(status, StatusCode::OK, "{snake}");
    assert_eq!(snake["maintenanceStartsAt"], past);
    assert_eq!(snake["maintenanceEndsAt"], future);
    assert_eq!(snake["inMaintenance"], true);
    let (status, snake_ahead) = app.put(path, json!({"enabled": true, "starts_at": future, "ends_at": later})).await;
    assert_eq!(status, StatusCode::OK, "{snake_ahead}");
    assert_eq!(snake_ahead["maintenanceStartsAt"], future);
    assert_eq!(snake_ahead["inMaintenance"], false);
    let (status, resp) = app.put(path, json!({"enabled": true, "starts_at": later, "ends_at": future})).await;
    assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");

    let off = ok(app.put(path, json!({"enabled": false})).await);
    assert!(off["maintenanceStartsAt"].is_null(), "switching off clears the window");
    assert!(off["maintenanceEndsAt"].is_null());
}

async fn maintenance_events_only_on_transitions(app: TestApp) {
    let world = create_world(&app, json!({"worldId": "ev", "name": "Events"})).await;
    let id = world["id"].as_str().expect("id");
    let path = "/api/v1/game-worlds/ev/maintenance";

    ok(app.put(path, json!({"enabled": true, "message": "one"})).await);
    assert_eq!(app.event_types("world", id).await, ["world.created", "world.updated", "world.maintenance_started"]);
    ok(app.put(path, json!({"enabled": true, "message": "two"})).await);
    assert_eq!(
        app.event_types("world", id).await[3..],
        ["world.updated"],
        "on -> on with a new message is only an update"
    );
    ok(app.put(path, json!({"enabled": false})).await);
    assert_eq!(app.event_types("world", id).await[4..], ["world.updated", "world.maintenance_ended"]);
    ok(app.put(path, json!({"enabled": false})).await);
    ok(app.patch(&format!("/api/v1/game-worlds/{id}"), json!({"name": "Renamed"})).await);
    let after_off = app.event_types("world", id).await;
    assert!(
        after_off[6..].iter().all(|t| t == "world.updated"),
        "off -> off and other edits start or end nothing: {after_off:?}"
    );
    ok(app.patch(&format!("/api/v1/game-worlds/{id}"), json!({"maintenance": true})).await);
    ok(app.patch(&format!("/api/v1/game-worlds/{id}"), json!({"maintenance": false})).await);
    let all = app.event_types("world", id).await;
    let n = after_off.len();
    assert_eq!(
        all[n..],
        ["world.updated", "world.maintenance_started", "world.updated", "world.maintenance_ended"],
        "the plain update's switch is a transition too"
    );

    let events = app.store.events_for_resource("world", id).await.expect("events");
    let started = events.iter().find(|e| e.event_type == "world.maintenance_started").expect("started");
    assert_eq!(started.data.0["maintenanceMessage"], "one");
    assert_eq!(started.data.0["maintenance"], true);
    assert!(started.actor.as_deref().is_some_and(|a| a.starts_with("key:")), "{:?}", started.actor);

    ok(app.delete(&format!("/api/v1/game-worlds/{id}")).await);
    assert_eq!(app.event_types("world", id).await.last().map(String::as_str), Some("world.deleted"));
}

async fn created_in_maintenance_emits_started(app: TestApp) {
    let world = create_world(
        &app,
        json!({"worldId": "fresh", "name": "Fresh", "maintenance": true,
               "maintenanceMessage": "opening soon"}),
    )
    .await;
    let id = world["id"].as_str().expect("id");
    assert_eq!(world["maintenance"], true);
    assert_eq!(world["inMaintenance"], true);
    assert_eq!(world["maintenanceMessage"], "opening soon");
    assert_eq!(app.event_types("world", id).await, ["world.created", "world.maintenance_started"]);

    let plain = create_world(&app, json!({"worldId": "plain", "name": "Plain"})).await;
    assert_eq!(app.event_types("world", plain["id"].as_str().expect("id")).await, ["world.created"]);

    let (status, opened) = app.put("/api/v1/game-worlds/fresh/maintenance", json!({"enabled": false})).await;
    assert_eq!(status, StatusCode::OK, "{opened}");
    assert_eq!(
        app.event_types("world", id).await,
        ["world.created", "world.maintenance_started", "world.updated", "world.maintenance_ended"]
    );
}

/// `?maintenance=` filters on `inMaintenance` (what clients see now), not on the stored
/// switch: a world whose window opens later, or has closed, is not in maintenance.
async fn maintenance_filter_follows_in_maintenance(app: TestApp) {
    let past = "2001-02-03T04:05:06Z";
    let future = "2999-01-01T00:00:00Z";
    for (order, world_id, change) in [
        (1, "off", json!({"enabled": false})),
        (2, "on", json!({"enabled": true})),
        (3, "inside", json!({"enabled": true, "startsAt": past, "endsAt": future})),
        (4, "scheduled", json!({"enabled": true, "startsAt": future})),
        (5, "over", json!({"enabled": true, "endsAt": past})),
        (6, "open_end", json!({"enabled": true, "startsAt": past})),
    ] {
        create_world(&app, json!({"worldId": world_id, "name": world_id, "displayOrder": order})).await;
        ok(app.put(&format!("/api/v1/game-worlds/{world_id}/maintenance"), change).await);
    }
    let in_effect = ["on", "inside", "open_end"];
    let not_in_effect = ["off", "scheduled", "over"];
    for (query, want) in [("maintenance=true", &in_effect), ("maintenance=false", &not_in_effect)] {
        let body = ok(app.get(&format!("/api/v1/game-worlds?{query}")).await);
        assert_eq!(world_ids(&body), want, "{query}: {body}");
        assert_eq!(body["total"], 3, "{query}");
        let flag = query.ends_with("true");
        assert!(body["items"].as_array().expect("items").iter().all(|w| w["inMaintenance"] == flag), "{body}");
    }
    // Paging counts the filtered set.
    let second = ok(app.get("/api/v1/game-worlds?maintenance=true&limit=2&page=2").await);
    assert_eq!(world_ids(&second), ["open_end"], "{second}");
    assert_eq!(second["total"], 3, "{second}");
}

mod list_cache {
    //! `GET /game-worlds` is served from a per-node cache (`http.list_cache_ms`); these run
    //! with a one-minute TTL, so only invalidation can make a change visible.
    use super::*;
    use crate::common::Backend;

    async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, |c| c.http.list_cache_ms = 60_000).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_changes_are_seen_at_once() {
        changes_are_seen_at_once(spawn(Backend::Sqlite).await.expect("sqlite")).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_changes_are_seen_at_once() {
        let Some(app) = spawn(Backend::Postgres).await else { return };
        changes_are_seen_at_once(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_window_opening_ends_the_entry() {
        a_window_opening_ends_the_entry(spawn(Backend::Sqlite).await.expect("sqlite")).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_window_opening_ends_the_entry() {
        let Some(app) = spawn(Backend::Postgres).await else { return };
        a_window_opening_ends_the_entry(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_window_opening_changes_the_maintenance_filter() {
        a_window_opening_changes_the_maintenance_filter(spawn(Backend::Sqlite).await.expect("sqlite")).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_window_opening_changes_the_maintenance_filter() {
        let Some(app) = spawn(Backend::Postgres).await else { return };
        a_window_opening_changes_the_maintenance_filter(app).await;
    }

    async fn names(app: &TestApp, query: &str) -> Vec<String> {
        let (status, list) = app.get(&format!("/api/v1/game-worlds{query}")).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["items"].as_array().expect("items").iter().map(|w| w["name"].as_str().unwrap_or("").to_string()).collect()
    }

    async fn changes_are_seen_at_once(app: TestApp) {
        create_world(&app, json!({"worldId": "a", "name": "A", "displayOrder": 1})).await;
        assert_eq!(names(&app, "").await, ["A"]);
        assert_eq!(names(&app, "?limit=5").await, ["A"], "another query has its own entry");
        create_world(&app, json!({"worldId": "b", "name": "B", "displayOrder": 2})).await;
        assert_eq!(names(&app, "").await, ["A", "B"], "a create is seen");
        assert_eq!(names(&app, "?limit=5").await, ["A", "B"]);
        let (status, _) = app.patch("/api/v1/game-worlds/a", json!({"name": "A2"})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(names(&app, "").await, ["A2", "B"], "an update is seen");
        let (status, _) = app.put("/api/v1/game-worlds/b/maintenance", json!({"enabled": true})).await;
        assert_eq!(status, StatusCode::OK);
        let (_, list) = app.get("/api/v1/game-worlds?maintenance=true").await;
        assert_eq!(list["items"][0]["inMaintenance"], true, "maintenance is seen: {list}");
        let (status, _) = app.delete("/api/v1/game-worlds/a").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(names(&app, "").await, ["B"], "a delete is seen");
        // Another project's list is not this one's.
        let (_, other_key) = app.other_project().await;
        let (status, list) = send(app.with_key(&other_key, reqwest::Method::GET, "/api/v1/game-worlds")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["total"], 0, "{list}");
    }

    /// `inMaintenance` depends on the time: a cached answer ends when a listed window opens.
    async fn a_window_opening_ends_the_entry(app: TestApp) {
        create_world(&app, json!({"worldId": "w", "name": "W"})).await;
        let starts = chrono::Utc::now() + chrono::TimeDelta::milliseconds(1500);
        let (status, _) =
            app.put("/api/v1/game-worlds/w/maintenance", json!({"enabled": true, "startsAt": starts})).await;
        assert_eq!(status, StatusCode::OK);
        let (_, before) = app.get("/api/v1/game-worlds").await;
        assert_eq!(before["items"][0]["inMaintenance"], false, "{before}");
        tokio::time::sleep(
            (starts - chrono::Utc::now()).to_std().unwrap_or_default() + std::time::Duration::from_millis(50),
        )
        .await;
        let (_, after) = app.get("/api/v1/game-worlds").await;
        assert_eq!(after["items"][0]["inMaintenance"], true, "{after}");
    }

    /// A world outside `?maintenance=true` (its window opens later) still bounds that
    /// answer's life: once the window opens, the filtered lists change.
    async fn a_window_opening_changes_the_maintenance_filter(app: TestApp) {
        create_world(&app, json!({"worldId": "w", "name": "W"})).await;
        let starts = chrono::Utc::now() + chrono::TimeDelta::milliseconds(1500);
        let (status, _) =
            app.put("/api/v1/game-worlds/w/maintenance", json!({"enabled": true, "startsAt": starts})).await;
        assert_eq!(status, StatusCode::OK);
        assert!(names(&app, "?maintenance=true").await.is_empty(), "the window has not opened");
        assert_eq!(names(&app, "?maintenance=false").await, ["W"]);
        tokio::time::sleep(
            (starts - chrono::Utc::now()).to_std().unwrap_or_default() + std::time::Duration::from_millis(50),
        )
        .await;
        assert_eq!(names(&app, "?maintenance=true").await, ["W"], "the window has opened");
        assert!(names(&app, "?maintenance=false").await.is_empty());
    }
}
