//! Client versions: CRUD, uniqueness per (channel, subChannel, version), validation, filters,
//! the start-up lookup a game client makes, and the events each change writes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, assert_error};

crate::both_backends!(
    create_get_update_delete,
    seed_list_by_channel_and_sub_channel,
    duplicate_version_conflicts,
    invalid_input_is_rejected_and_changes_nothing,
    filters_by_channel_sub_channel_and_status,
    lookup_answers_each_action,
    lookup_compares_versions_numerically,
    lookup_rejects_incomplete_queries,
    lookup_follows_semver_precedence,
    equal_forms_are_one_version,
    keys_of_older_rows_are_filled_in,
);

/// POSTs a version and returns it, asserting `201`.
async fn create_version(app: &TestApp, body: Value) -> Value {
    let (status, v) = app.post("/api/v1/client-versions", body).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

/// `channel/subChannel/version` of each item of a list answer, in order.
fn keys(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items: {list}"))
        .iter()
        .map(|v| {
            format!(
                "{}/{}/{}",
                v["channel"].as_str().unwrap_or(""),
                v["subChannel"].as_str().unwrap_or(""),
                v["version"].as_str().unwrap_or("")
            )
        })
        .collect()
}

async fn lookup(app: &TestApp, query: &str) -> Value {
    let (status, answer) = app.get(&format!("/api/v1/client-versions/lookup?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {answer}");
    answer
}

async fn create_get_update_delete(app: TestApp) {
    let v = create_version(&app, json!({"channel": "PC", "subChannel": "Steam", "version": "1.2.3"})).await;
    let id = v["id"].as_str().expect("id");
    assert_eq!(v["channel"], "PC");
    assert_eq!(v["subChannel"], "Steam");
    assert_eq!(v["version"], "1.2.3");
    assert_eq!(v["status"], "online", "online by default");
    assert!(v["updateUrl"].is_null());
    assert!(v["notes"].is_null());
    assert!(v["createdAt"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()), "{v}");
    let no_sub = create_version(&app, json!({"channel": "Android", "version": "2.0"})).await;
    assert_eq!(no_sub["subChannel"], "", "subChannel is optional");

    let (status, got) = app.get(&format!("/api/v1/client-versions/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, v);

    let (status, updated) = app
        .put(
            &format!("/api/v1/client-versions/{id}"),
            json!({"status": "forced_update", "updateUrl": "https://store.steampowered.com/app/1",
                   "notes": "security fix"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["status"], "forced_update");
    assert_eq!(updated["updateUrl"], "https://store.steampowered.com/app/1");
    assert_eq!(updated["notes"], "security fix");
    assert_eq!(updated["version"], "1.2.3", "PUT is a partial update");

    let (status, patched) = app.patch(&format!("/api/v1/client-versions/{id}"), json!({"notes": null})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert!(patched["notes"].is_null(), "null clears");
    assert_eq!(patched["updateUrl"], "https://store.steampowered.com/app/1", "absent keeps");
    let (_, got) = app.get(&format!("/api/v1/client-versions/{id}")).await;
    assert_eq!(got, patched, "the change is stored");

    let (status, deleted) = app.delete(&format!("/api/v1/client-versions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["id"], id);
    let (status, body) = app.get(&format!("/api/v1/client-versions/{id}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.delete(&format!("/api/v1/client-versions/{id}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.put(&format!("/api/v1/client-versions/{id}"), json!({"status": "online"})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = app.get("/api/v1/client-versions").await;
    assert_eq!(keys(&list), ["Android//2.0"]);

    assert_eq!(
        app.event_types("client_version", id).await,
        ["client_version.created", "client_version.updated", "client_version.updated", "client_version.deleted"]
    );
    let events = app.store.events_for_resource("client_version", id).await.expect("events");
    assert_eq!(events[1].data.0["status"], "forced_update", "events carry the new state");
    assert_eq!(events[3].data.0["version"], "1.2.3");
    assert_eq!(events[0].project_id.as_deref(), Some(app.project_id.as_str()));
}

/// The seed lists versions by `channel: 'PC', subChannel: 'Steam'`.
async fn seed_list_by_channel_and_sub_channel(app: TestApp) {
    for (channel, sub, version) in [("PC", "Steam", "1.0.0"), ("PC", "Epic", "1.0.0"), ("PC", "Steam", "1.1.0")] {
        create_version(&app, json!({"channel": channel, "subChannel": sub, "version": version})).await;
    }
    let (status, list) = app.get("/api/v1/client-versions?channel=PC&subChannel=Steam").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(keys(&list), ["PC/Steam/1.0.0", "PC/Steam/1.1.0"]);
    assert_eq!(list["total"], 2);
}

async fn duplicate_version_conflicts(app: TestApp) {
    create_version(&app, json!({"channel": "PC", "subChannel": "Steam", "version": "1.2.3"})).await;
    let (status, body) = app
        .post(
            "/api/v1/client-versions",
            json!({"channel": "PC", "subChannel": "Steam", "version": "1.2.3", "status": "offline"}),
        )
        .await;
    let msg = assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert!(msg.contains("version"), "{msg}");

    // The same version in another subChannel or channel is a different entry.
    create_version(&app, json!({"channel": "PC", "subChannel": "Epic", "version": "1.2.3"})).await;
    create_version(&app, json!({"channel": "PC", "version": "1.2.3"})).await;
    let other = create_version(&app, json!({"channel": "iOS", "subChannel": "Steam", "version": "1.2.3"})).await;
    let other_id = other["id"].as_str().expect("id");

    let (status, body) = app.patch(&format!("/api/v1/client-versions/{other_id}"), json!({"channel": "PC"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(
        app.event_types("client_version", other_id).await,
        ["client_version.created"],
        "the failed change wrote no event"
    );
    let (_, got) = app.get(&format!("/api/v1/client-versions/{other_id}")).await;
    assert_eq!(got, other);
    let (_, list) = app.get("/api/v1/client-versions?limit=100").await;
    assert_eq!(list["total"], 4);
}

async fn invalid_input_is_rejected_and_changes_nothing(app: TestApp) {
    let events_before = app.store.count_events().await.expect("count");
    // Malformed bodies: the message names the field.
    for (body, field) in [
        (json!({"version": "1.0"}), "channel"),
        (json!({"channel": "PC"}), "version"),
        (json!({"channel": "PC", "version": "1.0", "platform": "x"}), "platform"),
        (json!({"channel": "PC", "version": 1.0}), "version"),
    ] {
        let (status, resp) = app.post("/api/v1/client-versions", body.clone()).await;
        let msg = assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        assert!(msg.contains(field), "{body} -> {msg}");
    }
    // Well-formed but invalid values: listed by field in `details`.
    for (body, field) in [
        (json!({"channel": "PC", "version": "1.0", "status": "live"}), "status"),
        (json!({"channel": "PC", "version": "1.0", "status": "Online"}), "status"),
        (json!({"channel": "PC", "version": "1.0", "status": ""}), "status"),
        (json!({"channel": "", "version": "1.0"}), "channel"),
        (json!({"channel": "P C", "version": "1.0"}), "channel"),
        (json!({"channel": "PC", "subChannel": "Steam Deck", "version": "1.0"}), "subChannel"),
        (json!({"channel": "PC", "version": "1 0"}), "version"),
        (json!({"channel": "PC", "version": ""}), "version"),
        (json!({"channel": "PC", "version": "1.0", "updateUrl": "javascript:alert(1)"}), "updateUrl"),
        (json!({"channel": "PC", "version": "1.0", "notes": "x".repeat(2001)}), "notes"),
    ] {
        let (status, resp) = app.post("/api/v1/client-versions", body.clone()).await;
        assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        let fields: Vec<&str> =
            resp["error"]["details"].as_array().expect("details").iter().filter_map(|d| d["field"].as_str()).collect();
        assert_eq!(fields, [field], "{body} -> {resp}");
    }
    let (status, resp) =
        app.post("/api/v1/client-versions", json!({"channel": "PC", "version": "1.0", "status": "live"})).await;
    let msg = assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    assert!(msg.contains("forced_update"), "the message lists the statuses: {msg}");

    let (_, list) = app.get("/api/v1/client-versions").await;
    assert_eq!(list["total"], 0, "nothing was created");
    assert_eq!(app.store.count_events().await.expect("count"), events_before, "no event for a rejected write");

    // Every status is accepted, and updates are checked the same way.
    for (i, status) in
        ["online", "offline", "recommended_update", "forced_update", "maintenance"].into_iter().enumerate()
    {
        let v = create_version(&app, json!({"channel": "PC", "version": format!("1.{i}"), "status": status})).await;
        assert_eq!(v["status"], status);
    }
    let (_, list) = app.get("/api/v1/client-versions").await;
    let v = list["items"][0].clone();
    let id = v["id"].as_str().expect("id");
    let (status, resp) = app.patch(&format!("/api/v1/client-versions/{id}"), json!({"status": "retired"})).await;
    assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let (status, resp) =
        app.patch(&format!("/api/v1/client-versions/{id}"), json!({"updateUrl": "ftp://example.com/x"})).await;
    assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let (_, after) = app.get(&format!("/api/v1/client-versions/{id}")).await;
    assert_eq!(after, v, "rejected updates left the version as it was");
    assert_eq!(app.event_types("client_version", id).await, ["client_version.created"]);
}

async fn filters_by_channel_sub_channel_and_status(app: TestApp) {
    for (channel, sub, version, status) in [
        ("PC", "Steam", "1.0.0", "forced_update"),
        ("PC", "Steam", "1.1.0", "online"),
        ("PC", "Epic", "1.1.0", "online"),
        ("Android", "", "1.1.0", "maintenance"),
        ("Android", "Google", "1.1.0", "online"),
    ] {
        create_version(&app, json!({"channel": channel, "subChannel": sub, "version": version, "status": status}))
            .await;
    }
    for (query, want) in [
        ("channel=PC", vec!["PC/Steam/1.0.0", "PC/Steam/1.1.0", "PC/Epic/1.1.0"]),
        ("subChannel=Epic", vec!["PC/Epic/1.1.0"]),
        ("status=online", vec!["PC/Steam/1.1.0", "PC/Epic/1.1.0", "Android/Google/1.1.0"]),
        ("status=maintenance", vec!["Android//1.1.0"]),
        ("status=offline", vec![]),
        ("channel=PC&subChannel=Steam&status=online", vec!["PC/Steam/1.1.0"]),
        ("channel=Android&status=online", vec!["Android/Google/1.1.0"]),
    ] {
        let (status, body) = app.get(&format!("/api/v1/client-versions?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(keys(&body), want, "{query}");
        assert_eq!(body["total"], want.len(), "{query}");
    }
    let (status, page) = app.get("/api/v1/client-versions?limit=2&page=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&page), ["PC/Epic/1.1.0", "Android//1.1.0"]);
    assert_eq!((page["total"].as_u64(), page["totalPages"].as_u64()), (Some(5), Some(3)));

    for bad in ["status=live", "status=", "platform=PC", "limit=101", "page=0"] {
        let (status, body) = app.get(&format!("/api/v1/client-versions?{bad}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    }
}

async fn lookup_answers_each_action(app: TestApp) {
    let steam = "https://store.steampowered.com/app/1";
    for (version, status, url, notes) in [
        ("0.9.0", "offline", None, None),
        ("1.0.0", "forced_update", None, Some("too old")),
        ("1.1.0", "recommended_update", Some("https://example.com/1.1"), None),
        ("1.2.3", "online", Some(steam), Some("current")),
        ("1.2.4", "maintenance", None, None),
    ] {
        create_version(
            &app,
            json!({"channel": "PC", "subChannel": "Steam", "version": version,
                   "status": status, "updateUrl": url, "notes": notes}),
        )
        .await;
    }
    // A newer playable version elsewhere must not leak into PC/Steam answers.
    create_version(
        &app,
        json!({"channel": "PC", "subChannel": "Epic", "version": "9.0.0",
               "updateUrl": "https://epic.example.com"}),
    )
    .await;

    let play = lookup(&app, "channel=PC&subChannel=Steam&version=1.2.3").await;
    assert_eq!(
        play,
        json!({"channel": "PC", "subChannel": "Steam", "version": "1.2.3", "known": true,
               "status": "online", "action": "play", "latestVersion": "1.2.3",
               "updateUrl": steam, "notes": "current"})
    );

    let update = lookup(&app, "channel=PC&subChannel=Steam&version=1.1.0").await;
    assert_eq!(update["action"], "update_available");
    assert_eq!(update["status"], "recommended_update");
    assert_eq!(update["latestVersion"], "1.2.3");
    assert_eq!(update["updateUrl"], "https://example.com/1.1", "the version's own updateUrl comes first");

    let required = lookup(&app, "channel=PC&subChannel=Steam&version=1.0.0").await;
    assert_eq!(required["action"], "update_required");
    assert_eq!(required["known"], true);
    assert_eq!(required["notes"], "too old");
    assert_eq!(required["updateUrl"], steam, "without its own, the latest's updateUrl");

    let maintenance = lookup(&app, "channel=PC&subChannel=Steam&version=1.2.4").await;
    assert_eq!(maintenance["action"], "maintenance");
    assert_eq!(maintenance["status"], "maintenance");

    let offline = lookup(&app, "channel=PC&subChannel=Steam&version=0.9.0").await;
    assert_eq!(offline["action"], "unavailable");
    assert_eq!(offline["known"], true);

    let older = lookup(&app, "channel=PC&subChannel=Steam&version=1.0.5").await;
    assert_eq!(
        older,
        json!({"channel": "PC", "subChannel": "Steam", "version": "1.0.5", "known": false,
               "status": null, "action": "update_required", "latestVersion": "1.2.3",
               "updateUrl": steam, "notes": null}),
        "an unknown version older than the latest playable must update"
    );

    let newer = lookup(&app, "channel=PC&subChannel=Steam&version=1.3.0").await;
    assert_eq!(newer["action"], "unavailable", "unknown and newer: {newer}");
    assert_eq!(newer["known"], false);
    assert_eq!(newer["latestVersion"], "1.2.3");

    let nothing = lookup(&app, "channel=PC&subChannel=Xbox&version=1.2.3").await;
    assert_eq!(nothing["action"], "unavailable");
    assert!(nothing["latestVersion"].is_null());
    assert!(nothing["updateUrl"].is_null());

    // subChannel is part of the key; left out, it is the empty subChannel.
    let no_sub = lookup(&app, "channel=PC&version=1.2.3").await;
    assert_eq!(no_sub["subChannel"], "");
    assert_eq!(no_sub["known"], false);
    create_version(&app, json!({"channel": "PC", "version": "1.2.3"})).await;
    let no_sub = lookup(&app, "channel=PC&version=1.2.3").await;
    assert_eq!(no_sub["action"], "play");

    // The answer follows changes.
    let (_, list) = app.get("/api/v1/client-versions?channel=PC&subChannel=Steam&status=online").await;
    let current = list["items"][0]["id"].as_str().expect("id").to_string();
    let (status, _) =
        app.patch(&format!("/api/v1/client-versions/{current}"), json!({"status": "forced_update"})).await;
    assert_eq!(status, StatusCode::OK);
    let after = lookup(&app, "channel=PC&subChannel=Steam&version=1.2.3").await;
    assert_eq!(after["action"], "update_required");
    assert_eq!(after["latestVersion"], "1.1.0", "only online and recommended_update versions count as playable");
}

async fn lookup_compares_versions_numerically(app: TestApp) {
    for version in ["1.9.2", "1.10.0"] {
        create_version(
            &app,
            json!({"channel": "PC", "subChannel": "Steam", "version": version,
                   "updateUrl": format!("https://example.com/{version}")}),
        )
        .await;
    }
    create_version(&app, json!({"channel": "PC", "subChannel": "Steam", "version": "2.0.0", "status": "offline"}))
        .await;

    let answer = lookup(&app, "channel=PC&subChannel=Steam&version=1.9.2").await;
    assert_eq!(answer["action"], "play");
    assert_eq!(answer["latestVersion"], "1.10.0", "1.10.0 is newer than 1.9.2; offline 2.0.0 is not playable");

    let old = lookup(&app, "channel=PC&subChannel=Steam&version=1.9.10").await;
    assert_eq!(old["action"], "update_required", "1.9.10 < 1.10.0");
    assert_eq!(old["updateUrl"], "https://example.com/1.10.0");
    let newer = lookup(&app, "channel=PC&subChannel=Steam&version=1.11.0").await;
    assert_eq!(newer["action"], "unavailable", "1.11.0 > 1.10.0");
    let four_part = lookup(&app, "channel=PC&subChannel=Steam&version=1.10.0.1").await;
    assert_eq!(four_part["action"], "unavailable", "1.10.0.1 > 1.10.0");
    let two_part = lookup(&app, "channel=PC&subChannel=Steam&version=1.10").await;
    assert_eq!((two_part["known"].clone(), two_part["action"].clone()), (json!(true), json!("play")), "1.10 is 1.10.0");
    let build = lookup(&app, "channel=PC&subChannel=Steam&version=1.2.3.4").await;
    assert_eq!(build["action"], "update_required");
}

/// Semantic-version precedence: a release is newer than its pre-releases, pre-release
/// identifiers compare numerically or as text, build metadata does not count; builds that
/// are not semver (four parts, dates) still compare part by part.
async fn lookup_follows_semver_precedence(app: TestApp) {
    let register = |sub: &'static str, versions: &'static [&'static str]| {
        let app = &app;
        async move {
            for version in versions {
                create_version(app, json!({"channel": "PC", "subChannel": sub, "version": version})).await;
            }
        }
    };
    let latest = |sub: &'static str, version: &'static str| {
        let app = &app;
        async move {
            let answer = lookup(app, &format!("channel=PC&subChannel={sub}&version={version}")).await;
            answer["latestVersion"].as_str().unwrap_or("").to_owned()
        }
    };

    // The case, in both registration orders.
    register("a", &["2.0.0", "2.0.0-rc.1"]).await;
    register("b", &["2.0.0-rc.1", "2.0.0"]).await;
    for sub in ["a", "b"] {
        let answer = lookup(&app, &format!("channel=PC&subChannel={sub}&version=1.0.0")).await;
        assert_eq!(answer["latestVersion"], "2.0.0", "{sub}: {answer}");
        assert_eq!(answer["action"], "update_required");
    }
    // A pre-release of the latest release is older than it.
    let rc = lookup(&app, "channel=PC&subChannel=a&version=2.0.0-rc.2").await;
    assert_eq!(rc["action"], "update_required", "{rc}");

    // semver.org's example order, registered shuffled: the greatest is the release.
    register("spec", &["1.0.0-beta.11", "1.0.0-alpha", "1.0.0", "1.0.0-rc.1", "1.0.0-alpha.beta", "1.0.0-beta"]).await;
    assert_eq!(latest("spec", "0.1.0").await, "1.0.0");
    // Without the release: numeric identifiers compare as numbers (11 > 2), numbers sort
    // before text, more identifiers win when the rest are equal.
    register("pre", &["1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-alpha.1", "1.0.0-alpha"]).await;
    assert_eq!(latest("pre", "0.1.0").await, "1.0.0-beta.11");
    register("alnum", &["1.0.0-alpha.1", "1.0.0-alpha.beta"]).await;
    assert_eq!(latest("alnum", "0.1.0").await, "1.0.0-alpha.beta");
    register("longer", &["1.0.0-alpha", "1.0.0-alpha.1"]).await;
    assert_eq!(latest("longer", "0.1.0").await, "1.0.0-alpha.1");

    // Build metadata is not part of the order: 2.0.0+build.9 is 2.0.0.
    register("meta", &["2.0.0+build.1", "1.9.0"]).await;
    let meta = lookup(&app, "channel=PC&subChannel=meta&version=2.0.0%2Bbuild.9").await;
    assert_eq!((meta["known"].clone(), meta["action"].clone()), (json!(true), json!("play")), "{meta}");
    assert_eq!(latest("meta", "1.9.0").await, "2.0.0+build.1");

    // Game builds that are not semver compare part by part, numerically.
    register("build", &["1.2.3.999", "1.2.3.4567", "1.2.3"]).await;
    assert_eq!(latest("build", "1.2.3").await, "1.2.3.4567");
    register("date", &["2024.9.1", "2024.11.30", "2023.12.31"]).await;
    assert_eq!(latest("date", "2024.9.1").await, "2024.11.30");
}

/// `1.10` and `1.10.0` (or `1.10.0+anything`) are one version: a lookup of either finds it,
/// and it is registered once per channel and subChannel.
async fn equal_forms_are_one_version(app: TestApp) {
    let short = create_version(&app, json!({"channel": "PC", "subChannel": "Steam", "version": "1.10"})).await;
    for same in ["1.10.0", "1.10.0.0", "1.10.0+build.5", "01.010"] {
        let (status, body) =
            app.post("/api/v1/client-versions", json!({"channel": "PC", "subChannel": "Steam", "version": same})).await;
        let msg = assert_error(status, &body, StatusCode::CONFLICT, "conflict");
        assert!(msg.contains("version"), "{same}: {msg}");
    }
    let found = lookup(&app, "channel=PC&subChannel=Steam&version=1.10.0").await;
    assert_eq!((found["known"].clone(), found["status"].clone()), (json!(true), json!("online")), "{found}");
    assert_eq!(found["action"], "play");

    // Another subChannel has its own versions; a change into an equal form conflicts.
    let other = create_version(&app, json!({"channel": "PC", "subChannel": "Epic", "version": "1.10.0"})).await;
    let other_id = other["id"].as_str().expect("id");
    let (status, body) =
        app.patch(&format!("/api/v1/client-versions/{other_id}"), json!({"subChannel": "Steam"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let newer = create_version(&app, json!({"channel": "PC", "subChannel": "Steam", "version": "1.11"})).await;
    let (status, body) = app
        .patch(&format!("/api/v1/client-versions/{}", newer["id"].as_str().expect("id")), json!({"version": "1.10.0"}))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    // Changing a version's own form is not a conflict with itself.
    let id = short["id"].as_str().expect("id");
    let (status, body) = app.patch(&format!("/api/v1/client-versions/{id}"), json!({"version": "1.10.0"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = app.get("/api/v1/client-versions?limit=100").await;
    assert_eq!(list["total"], 3, "{list}");
}

/// Versions registered before `version_key` existed get it at start (migration 0006 adds
/// it empty); two spellings of one version registered back then keep working, and the one
/// that could not get the key is reported, not fatal.
async fn keys_of_older_rows_are_filled_in(app: TestApp) {
    create_version(&app, json!({"channel": "PC", "version": "1.2"})).await;
    create_version(&app, json!({"channel": "PC", "version": "2.0"})).await;
    let url = app.config.effective_database_url();
    let older = [
        "UPDATE client_versions SET version_key = NULL",
        "INSERT INTO client_versions (id, project_id, channel, sub_channel, version, status, created_at, updated_at) \
         SELECT 'twin', project_id, channel, sub_channel, '1.2.0', 'offline', created_at, updated_at \
         FROM client_versions WHERE version = '1.2'",
    ];
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        for sql in older {
            sqlx::query(sql).execute(&pool).await.expect(sql);
        }
    } else {
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        for sql in older {
            sqlx::query(sql).execute(&pool).await.expect(sql);
        }
    }
    let (status, body) = app.post("/api/v1/client-versions", json!({"channel": "PC", "version": "2.0.0"})).await;
    assert_eq!(status, StatusCode::CREATED, "without keys nothing stops a second spelling: {body}");
    app.delete(&format!("/api/v1/client-versions/{}", body["id"].as_str().expect("id"))).await;

    let filled = herald::domain::versions::backfill_version_keys(&app.store).await.expect("backfill");
    assert_eq!(filled, 2, "1.2 and 2.0; the twin 1.2.0 keeps none");
    for same in ["2.0.0", "1.2.0.0"] {
        let (status, body) = app.post("/api/v1/client-versions", json!({"channel": "PC", "version": same})).await;
        assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    }
    // The exact spelling is found first.
    let twin = lookup(&app, "channel=PC&version=1.2.0").await;
    assert_eq!(twin["status"], "offline", "{twin}");
    let first = lookup(&app, "channel=PC&version=1.2").await;
    assert_eq!(first["status"], "online", "{first}");
    assert_eq!(herald::domain::versions::backfill_version_keys(&app.store).await.expect("again"), 0);
}

async fn lookup_rejects_incomplete_queries(app: TestApp) {
    create_version(&app, json!({"channel": "PC", "subChannel": "Steam", "version": "1.2.3"})).await;
    for bad in [
        "",
        "channel=PC&subChannel=Steam",
        "subChannel=Steam&version=1.2.3",
        "version=1.2.3",
        "channel=PC&subChannel=Steam&version=1.2.3&platform=win",
    ] {
        let (status, body) = app.get(&format!("/api/v1/client-versions/lookup?{bad}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    }
    let (status, body) = app.get("/api/v1/client-versions/lookup?channel=PC&subChannel=Steam").await;
    let msg = assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    assert!(msg.contains("version"), "{msg}");

    // The lookup reads nothing it may not: a key without versions:read is refused.
    let (_, worlds_only) = app.create_key(&["worlds:read"]).await;
    let (status, body) = crate::common::send(app.with_key(
        &worlds_only,
        reqwest::Method::GET,
        "/api/v1/client-versions/lookup?channel=PC&subChannel=Steam&version=1.2.3",
    ))
    .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (_, reader) = app.create_key(&["versions:read"]).await;
    let (status, body) = crate::common::send(app.with_key(
        &reader,
        reqwest::Method::GET,
        "/api/v1/client-versions/lookup?channel=PC&subChannel=Steam&version=1.2.3",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["action"], "play");
}
