//! Live operations: maintenance windows (per world and game-wide) that open and close on
//! time, exactly once across nodes and after downtime; the whitelist; notices; version pushes.
//! Time is the app's manual clock: tests move it and wake the scheduler, never sleep for it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use herald::store::events::EventRow;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    common::{Backend, TestApp, assert_error},
    socket_client::SocketClient,
};

crate::both_backends!(
    world_window_opens_and_closes_on_time,
    game_wide_window_is_scheduled_changed_and_cancelled,
    a_node_that_was_down_catches_up_with_the_real_times,
    notices_are_published_and_ended_on_time,
    versions_that_must_update_are_pushed_to_their_channel,
    whitelist_entries_are_checked,
);

/// Long enough for an event that would come to have come (the feed reacts in milliseconds).
const QUIET: Duration = Duration::from_millis(400);

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A time in an answer or event.
fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| s.parse().ok())
}

fn ok(resp: (StatusCode, Value)) -> Value {
    assert!(resp.0.is_success(), "{} {}", resp.0, resp.1);
    resp.1
}

/// The events about one resource, once `done` holds for them (the scheduler runs beside the
/// test); fails after ten seconds.
async fn events_until(app: &TestApp, kind: &str, id: &str, done: impl Fn(&[String]) -> bool) -> Vec<EventRow> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = app.store.events_for_resource(kind, id).await.expect("events");
        let types: Vec<String> = events.iter().map(|e| e.event_type.clone()).collect();
        if done(&types) {
            return events;
        }
        assert!(tokio::time::Instant::now() < deadline, "events of {kind} {id} never got there: {types:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn types_of(events: &[EventRow]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

fn count(types: &[String], t: &str) -> usize {
    types.iter().filter(|x| *x == t).count()
}

async fn new_player(app: &TestApp, username: &str) -> String {
    let (status, user) = app.post("/api/v1/users", json!({"username": username})).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    user["id"].as_str().expect("id").to_owned()
}

async fn session_token(app: &TestApp, user: &str) -> String {
    let (status, body) = app.post(&format!("/api/v1/users/{user}/session-token"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

async fn player_socket(app: &TestApp, user: &str, extra: Value) -> SocketClient {
    let mut auth = json!({"token": session_token(app, user).await});
    if let (Some(a), Value::Object(more)) = (auth.as_object_mut(), extra) {
        a.extend(more);
    }
    SocketClient::connect(&app.base, auth).await.expect("player connects")
}

async fn world_window_opens_and_closes_on_time(app: TestApp) {
    let me = new_player(&app, "watcher").await;
    let socket = player_socket(&app, &me, json!({})).await;
    let world = ok(app.post("/api/v1/game-worlds", json!({"worldId": "w1", "name": "W1"})).await);
    let id = world["id"].as_str().expect("id");
    let now = app.clock.now();
    let (start, end) = (now + TimeDelta::hours(1), now + TimeDelta::hours(2));
    let path = "/api/v1/game-worlds/w1/maintenance";

    let set = ok(app
        .put(path, json!({"enabled": true, "message": "patch", "startsAt": iso(start), "endsAt": iso(end)}))
        .await);
    assert_eq!(set["inMaintenance"], false, "the window has not opened");
    // Announced as scheduled, and not as started: the seeds' alias waits for the window.
    let scheduled = socket.expect("world.maintenance_scheduled").await;
    assert_eq!(time(&scheduled["data"]["maintenanceStartsAt"]), Some(start));
    socket.expect_none("world_maintenance_started", QUIET).await;
    assert_eq!(app.event_types("world", id).await, ["world.created", "world.updated", "world.maintenance_scheduled"]);

    app.advance(TimeDelta::minutes(59));
    socket.expect_none("world_maintenance_started", QUIET).await;
    app.advance(TimeDelta::minutes(1));
    let started = socket.expect("world_maintenance_started").await;
    assert_eq!(started["worldId"], "w1");
    assert_eq!(started["world"]["inMaintenance"], true);
    let dotted = socket.expect("world.maintenance_started").await;
    assert_eq!(time(&dotted["data"]["effectiveAt"]), Some(start));

    app.advance(TimeDelta::hours(1));
    let ended = socket.expect("world_maintenance_ended").await;
    assert_eq!(ended["world"]["inMaintenance"], false);
    let events = events_until(&app, "world", id, |t| t.len() >= 5).await;
    assert_eq!(
        types_of(&events),
        [
            "world.created",
            "world.updated",
            "world.maintenance_scheduled",
            "world.maintenance_started",
            "world.maintenance_ended"
        ]
    );
    let ended = &events[4];
    assert_eq!(ended.actor.as_deref(), Some("system"), "the scheduler fired it");
    assert_eq!(time(&ended.data.0["effectiveAt"]), Some(end));
}

async fn game_wide_window_is_scheduled_changed_and_cancelled(app: TestApp) {
    let me = new_player(&app, "everyone").await;
    let socket = player_socket(&app, &me, json!({})).await;
    let off = ok(app.get("/api/v1/maintenance").await);
    assert_eq!((off["enabled"].clone(), off["inMaintenance"].clone()), (json!(false), json!(false)));
    let project = app.project_id.clone();
    let now = app.clock.now();
    let at = |h: i64| iso(now + TimeDelta::hours(h));

    // Scheduled, moved, then withdrawn before it opened: it never starts.
    ok(app.put("/api/v1/maintenance", json!({"enabled": true, "messages": {"en": "soon"}, "startsAt": at(1)})).await);
    let moved = ok(app.put("/api/v1/maintenance", json!({"enabled": true, "startsAt": at(3), "endsAt": at(4)})).await);
    assert_eq!(moved["inMaintenance"], false);
    assert_eq!(
        time(&socket.expect("maintenance.scheduled").await["data"]["startsAt"]),
        Some(now + TimeDelta::hours(1))
    );
    ok(app.put("/api/v1/maintenance", json!({"enabled": false})).await);
    socket.expect("maintenance.cancelled").await;
    app.advance(TimeDelta::hours(5));
    socket.expect_none("maintenance.started", QUIET).await;
    assert_eq!(
        app.event_types("maintenance", &project).await,
        [
            "maintenance.updated",
            "maintenance.scheduled",
            "maintenance.updated",
            "maintenance.scheduled",
            "maintenance.updated",
            "maintenance.cancelled"
        ]
    );

    // From now, for half an hour: starts at once, ends on time.
    let end = app.clock.now() + TimeDelta::minutes(30);
    let on = ok(app.put("/api/v1/maintenance", json!({"enabled": true, "endsAt": iso(end)})).await);
    assert_eq!(on["inMaintenance"], true);
    socket.expect("maintenance.started").await;
    // A world is in maintenance while the game is.
    let world = ok(app.post("/api/v1/game-worlds", json!({"worldId": "any", "name": "Any"})).await);
    let world = app.store.get_world(&project, world["id"].as_str().expect("id")).await.expect("world");
    let state =
        herald::domain::maintenance::maintenance_state(&app.store, &project, Some(&world), app.clock.now(), None, None)
            .await
            .expect("state");
    assert!(state.in_maintenance && !state.bypass, "{state:?}");
    assert_eq!(state.scope, Some("game"));
    assert_eq!(state.ends_at, Some(end));
    let next = herald::domain::maintenance::next_change_at(&app.store, &project, app.clock.now()).await.expect("next");
    assert_eq!(next, Some(end), "answers may be cached until the window closes");
    app.advance(TimeDelta::minutes(30));
    let ended = socket.expect("maintenance.ended").await;
    assert_eq!(ended["data"]["inMaintenance"], false);
    assert_eq!(ok(app.get("/api/v1/maintenance").await)["inMaintenance"], false);

    // Bad input changes nothing.
    let (status, body) =
        app.put("/api/v1/maintenance", json!({"enabled": true, "startsAt": at(9), "endsAt": at(8)})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let (status, body) =
        app.put("/api/v1/maintenance", json!({"enabled": true, "messages": {"not a lang": "x"}})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let (status, body) = app.put("/api/v1/maintenance", json!({"on": true})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(time(&ok(app.get("/api/v1/maintenance").await)["endsAt"]), Some(end));
}

/// Windows that opened and closed while no node was running are fired by the first node to
/// start, each with the time it was due.
async fn a_node_that_was_down_catches_up_with_the_real_times(app: TestApp) {
    let now = app.clock.now();
    let (start, end) = (now + TimeDelta::hours(1), now + TimeDelta::hours(2));
    ok(app.put("/api/v1/maintenance", json!({"enabled": true, "startsAt": iso(start), "endsAt": iso(end)})).await);
    let world = ok(app.post("/api/v1/game-worlds", json!({"worldId": "late", "name": "Late"})).await);
    let world_id = world["id"].as_str().expect("id").to_owned();
    ok(app
        .put(
            "/api/v1/game-worlds/late/maintenance",
            json!({"enabled": true, "startsAt": iso(start), "endsAt": iso(end)}),
        )
        .await);

    // This node's clock stays before the window; a node starting three hours later, on the
    // same database, finds both transitions of both windows due.
    let clock = herald::webhooks::Clock::manual(now + TimeDelta::hours(3));
    let server = herald::app::Server::build_with(app.config.clone(), clock).await.expect("late node");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    for (kind, id, prefix) in
        [("maintenance", app.project_id.as_str(), "maintenance."), ("world", &world_id, "world.maintenance_")]
    {
        let events = events_until(&app, kind, id, |t| t.iter().any(|t| t.ends_with("ended"))).await;
        let fired: Vec<&EventRow> =
            events.iter().filter(|e| e.event_type.ends_with("started") || e.event_type.ends_with("ended")).collect();
        let names: Vec<&str> = fired.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(names, [format!("{prefix}started"), format!("{prefix}ended")], "{kind}");
        let effective: Vec<Option<DateTime<Utc>>> = fired.iter().map(|e| time(&e.data.0["effectiveAt"])).collect();
        assert_eq!(effective, [Some(start), Some(end)], "{kind}: the times they were due");
        assert_eq!(fired[0].data.0["inMaintenance"], true, "{kind}: the state when it opened");
    }
    let _ = stop.send(());
}

async fn notices_are_published_and_ended_on_time(app: TestApp) {
    let me = new_player(&app, "reader").await;
    let pc = player_socket(&app, &me, json!({"channel": "PC"})).await;
    let android = player_socket(&app, &me, json!({"channel": "Android"})).await;
    let now = app.clock.now();
    let (start, end) = (now + TimeDelta::hours(1), now + TimeDelta::hours(2));
    let created = ok(app
        .post(
            "/api/v1/notices",
            json!({"title": {"en": "Event", "ko": "이벤트"}, "body": {"en": "Double XP"}, "kind": "banner",
                   "priority": 5, "channels": ["pc"], "minVersion": "1.2", "startsAt": iso(start), "endsAt": iso(end)}),
        )
        .await);
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["active"], false);
    assert_eq!(app.event_types("notice", &id).await, ["notice.created"]);
    pc.expect_none("notice.published", QUIET).await;
    let visible = async |version: Option<&str>, channel: &str, at: DateTime<Utc>| {
        herald::domain::notices::active_notices(&app.store, &app.project_id, Some(channel), None, version, at)
            .await
            .expect("notices")
            .len()
    };
    assert_eq!(visible(Some("1.3"), "PC", now).await, 0, "not before it starts");

    app.advance(TimeDelta::hours(1));
    let published = pc.expect("notice.published").await;
    assert_eq!(published["data"]["title"]["ko"], "이벤트");
    assert_eq!(published["data"]["active"], true);
    android.expect_none("notice.published", QUIET).await;
    let at = app.clock.now();
    assert_eq!(visible(Some("1.3"), "PC", at).await, 1);
    assert_eq!(visible(Some("1.1.9"), "PC", at).await, 0, "below minVersion");
    assert_eq!(visible(Some("1.3"), "Android", at).await, 0, "another channel");
    let (_, active) = app.get("/api/v1/notices?active=true").await;
    assert_eq!(active["total"], 1);

    app.advance(TimeDelta::hours(1));
    pc.expect("notice.ended").await;
    let events = events_until(&app, "notice", &id, |t| t.len() >= 3).await;
    assert_eq!(types_of(&events), ["notice.created", "notice.published", "notice.ended"]);

    // Without a start it is published at once; deleting it while shown ends it.
    let now_notice = ok(app.post("/api/v1/notices", json!({"title": {"en": "Now"}})).await);
    let now_id = now_notice["id"].as_str().expect("id");
    assert_eq!(now_notice["active"], true);
    android.expect("notice.published").await;
    ok(app.patch(&format!("/api/v1/notices/{now_id}"), json!({"priority": 9})).await);
    ok(app.delete(&format!("/api/v1/notices/{now_id}")).await);
    assert_eq!(
        app.event_types("notice", now_id).await,
        ["notice.created", "notice.published", "notice.updated", "notice.ended", "notice.deleted"]
    );
    let (status, body) = app.get(&format!("/api/v1/notices/{now_id}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    for bad in [
        json!({"title": {}}),
        json!({"title": {"en": "x"}, "kind": "toast"}),
        json!({"title": {"en": "x"}, "minVersion": "2.0", "maxVersion": "1.0"}),
        json!({"title": {"en": "x"}, "startsAt": iso(now), "endsAt": iso(now)}),
    ] {
        let (status, body) = app.post("/api/v1/notices", bad.clone()).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    }
}

async fn versions_that_must_update_are_pushed_to_their_channel(app: TestApp) {
    let me = new_player(&app, "updater").await;
    let pc = player_socket(&app, &me, json!({"channel": "PC"})).await;
    let android = player_socket(&app, &me, json!({"channel": "Android"})).await;
    let v = ok(app.post("/api/v1/client-versions", json!({"channel": "PC", "version": "1.0.0"})).await);
    pc.expect_none("client_version.created", QUIET).await;
    let id = v["id"].as_str().expect("id");
    ok(app.patch(&format!("/api/v1/client-versions/{id}"), json!({"status": "forced_update"})).await);
    let pushed = pc.expect("client_version.updated").await;
    assert_eq!(pushed["data"]["status"], "forced_update");
    assert_eq!(pushed["data"]["version"], "1.0.0");
    android.expect_none("client_version.updated", QUIET).await;
}

/// What `maintenance_state` (the client routes' answer) says now for `player` at `ip`.
async fn state_of(app: &TestApp, player: Option<&str>, ip: &str) -> herald::domain::maintenance::MaintenanceState {
    let (now, ip) = (app.clock.now(), ip.parse().ok());
    herald::domain::maintenance::maintenance_state(&app.store, &app.project_id, None, now, player, ip)
        .await
        .expect("state")
}

async fn whitelist_entries_are_checked(app: TestApp) {
    let player = new_player(&app, "tester").await;
    let path = "/api/v1/maintenance/whitelist";
    let by_player = ok(app.post(path, json!({"playerId": player, "note": "QA"})).await);
    assert_eq!(by_player["note"], "QA");
    let v4 = ok(app.post(path, json!({"ipRange": "203.0.113.77/24"})).await);
    assert_eq!(v4["ipRange"], "203.0.113.0/24", "stored as the range");
    ok(app.post(path, json!({"ipRange": "2001:db8:1::/48"})).await);
    let (status, body) = app.post(path, json!({"ipRange": "203.0.113.0/24"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    for bad in [
        json!({"ipRange": "203.0.113.0/33"}),
        json!({"ipRange": "example.com"}),
        json!({"playerId": "p", "ipRange": "10.0.0.0/8"}),
        json!({}),
        json!({"playerId": "p", "expiresAt": "2001-01-01T00:00:00Z"}),
    ] {
        let (status, body) = app.post(path, bad.clone()).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    }
    let list = ok(app.get(path).await);
    assert_eq!(list["total"], 3);

    let quiet = state_of(&app, None, "203.0.113.5").await;
    assert!(!quiet.in_maintenance && !quiet.bypass, "no maintenance, nothing to bypass: {quiet:?}");
    ok(app.put("/api/v1/maintenance", json!({"enabled": true, "messages": {"en": "down"}})).await);
    for (who, ip, bypass) in [
        (Some(player.as_str()), "198.51.100.1", true),
        (None, "203.0.113.200", true),
        (None, "::ffff:203.0.113.9", true),
        (None, "2001:db8:1:ffff::1", true),
        (None, "203.0.114.1", false),
        (None, "2001:db8:2::1", false),
        (Some("someone-else"), "198.51.100.1", false),
    ] {
        let s = state_of(&app, who, ip).await;
        assert_eq!((s.in_maintenance, s.bypass), (!bypass, bypass), "{who:?} at {ip}");
        assert_eq!(s.messages.get("en").map(String::as_str), Some("down"));
    }

    let deleted = ok(app.delete(&format!("{path}/{}", v4["id"].as_str().expect("id"))).await);
    assert_eq!(deleted["ipRange"], "203.0.113.0/24");
    assert!(state_of(&app, None, "203.0.113.200").await.in_maintenance, "removed from the whitelist");
    let (status, body) = app.delete(&format!("{path}/{}", v4["id"].as_str().expect("id"))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

/// Sockets during game-wide maintenance: a player outside the whitelist is refused, one on it
/// (by id, or by an address range behind a trusted proxy, IPv4 or IPv6) connects; sockets
/// already connected hear when it starts and ends.
async fn sockets_follow_maintenance_and_the_whitelist(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.http.trusted_proxies = vec!["127.0.0.1/32".into()]).await else {
        return;
    };
    let (early, listed, other) =
        (new_player(&app, "early").await, new_player(&app, "listed").await, new_player(&app, "other").await);
    let connected = player_socket(&app, &early, json!({})).await;
    ok(app.post("/api/v1/maintenance/whitelist", json!({"playerId": listed})).await);
    ok(app.post("/api/v1/maintenance/whitelist", json!({"ipRange": "198.51.100.0/24"})).await);
    ok(app.post("/api/v1/maintenance/whitelist", json!({"ipRange": "2001:db8::/32"})).await);
    let end = app.clock.now() + TimeDelta::hours(1);
    ok(app.put("/api/v1/maintenance", json!({"enabled": true, "endsAt": iso(end)})).await);
    connected.expect("maintenance.started").await;

    let token = session_token(&app, &other).await;
    let refused = SocketClient::connect(&app.base, json!({"token": token})).await.err().expect("refused");
    assert!(refused.starts_with("maintenance:"), "{refused}");
    let refused = SocketClient::connect_forwarded(&app.base, json!({"token": token}), Some("203.0.113.1"))
        .await
        .err()
        .expect("refused");
    assert!(refused.starts_with("maintenance:"), "{refused}");
    player_socket(&app, &listed, json!({})).await;
    for via in ["198.51.100.7", "10.1.1.1, 2001:db8::42"] {
        SocketClient::connect_forwarded(&app.base, json!({"token": token}), Some(via))
            .await
            .unwrap_or_else(|e| panic!("whitelisted address {via} connects: {e}"));
    }
    app.advance(TimeDelta::hours(1));
    connected.expect("maintenance.ended").await;
    SocketClient::connect(&app.base, json!({"token": token})).await.expect("after the end anyone connects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_follow_maintenance_and_the_whitelist_sqlite() {
    sockets_follow_maintenance_and_the_whitelist(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_follow_maintenance_and_the_whitelist_postgres() {
    sockets_follow_maintenance_and_the_whitelist(Backend::Postgres).await;
}

/// Two nodes on one PostgreSQL, both with their schedulers and clocks past the window's
/// start and end, and each made to run extra passes at the same time: each transition is
/// written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_fire_each_transition_once() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else { return };
    let now = app.clock.now();
    let clock_b = herald::webhooks::Clock::manual(now);
    let server = herald::app::Server::build_with(app.config.clone(), clock_b.clone()).await.expect("node B");
    let store_b = server.state.store.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let (start, end) = (now + TimeDelta::hours(1), now + TimeDelta::hours(2));
    ok(app.put("/api/v1/maintenance", json!({"enabled": true, "startsAt": iso(start), "endsAt": iso(end)})).await);
    for _ in 0..3 {
        ok(app
            .post("/api/v1/notices", json!({"title": {"en": "n"}, "startsAt": iso(start), "endsAt": iso(end)}))
            .await);
    }

    for step in [TimeDelta::hours(1), TimeDelta::hours(1)] {
        app.advance(step);
        clock_b.advance(step);
        store_b.events_written().scheduler.notify_one();
        let at = app.clock.now();
        let passes = (0..4).map(|i| {
            let store = if i % 2 == 0 { app.store.clone() } else { store_b.clone() };
            tokio::spawn(async move { herald::domain::schedule::fire_due(&store, at).await.expect("pass").transitions })
        });
        for pass in passes {
            pass.await.expect("pass ran");
        }
    }
    let types = app.event_types("maintenance", &app.project_id).await;
    assert_eq!(count(&types, "maintenance.started"), 1, "{types:?}");
    assert_eq!(count(&types, "maintenance.ended"), 1, "{types:?}");
    let (_, notices) = app.get("/api/v1/notices").await;
    for n in notices["items"].as_array().expect("items") {
        let types = app.event_types("notice", n["id"].as_str().expect("id")).await;
        assert_eq!(types, ["notice.created", "notice.published", "notice.ended"]);
    }
    let _ = stop.send(());
}
