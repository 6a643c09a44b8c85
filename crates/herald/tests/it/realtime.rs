//! The socket.io gateway, driven over real WebSockets (`socket_client`): session tokens,
//! who may connect, what each socket receives (and does not), chat over the socket, and
//! several nodes on one PostgreSQL.

use std::time::Duration;

use herald::auth::jwt::{JwtKeys, PlayerClaims};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    common::{Backend, TestApp, assert_error, metric, send},
    socket_client::{SocketClient, StalledSocket},
};

crate::both_backends!(
    session_tokens_are_issued_checked_and_revoked,
    bad_credentials_are_refused_at_connect,
    server_sockets_get_project_events_under_both_names,
    server_sockets_narrow_and_widen_their_subscriptions,
    players_get_maintenance_and_their_own_changes_only,
    chat_over_the_socket,
    channel_messages_arrive_in_order,
    revoking_sessions_disconnects_their_sockets,
);

/// Long enough for an event that would come to have come (the feed reacts in milliseconds).
const QUIET: Duration = Duration::from_millis(400);

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

async fn player_socket(app: &TestApp, user: &str) -> SocketClient {
    let token = session_token(app, user).await;
    SocketClient::connect(&app.base, json!({"token": token})).await.expect("player connects")
}

async fn server_socket(app: &TestApp, auth: Value) -> SocketClient {
    SocketClient::connect(&app.base, auth).await.expect("server socket connects")
}

/// A GameTalk channel of the app's project; returns its id.
async fn channel(app: &TestApp, name: &str) -> String {
    let (_, project) = app.get(&format!("/api/v1/projects/{}", app.project_id)).await;
    let url = format!("/game-talk/v1.1/appkeys/{}/channels", project["appKey"].as_str().expect("appKey"));
    let (status, body) = send(
        app.anon(Method::POST, &url)
            .header("X-Secret-Key", project["secretKey"].as_str().expect("secretKey"))
            .json(&json!({"name": name})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["header"]["resultCode"], 0, "{body}");
    body["result"]["id"].as_str().expect("channel id").to_owned()
}

async fn world(app: &TestApp, world_id: &str) -> String {
    let (status, w) = app.post("/api/v1/game-worlds", json!({"worldId": world_id, "name": world_id})).await;
    assert_eq!(status, StatusCode::CREATED, "{w}");
    w["id"].as_str().expect("id").to_owned()
}

async fn session_tokens_are_issued_checked_and_revoked(app: TestApp) {
    let user = new_player(&app, "tok").await;
    let (status, body) = app.post(&format!("/api/v1/users/{user}/session-token"), json!({"ttlSecs": 120})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["userId"], user.as_str());
    assert_eq!(body["expiresIn"], 120);
    assert!(body["sessionId"].is_string() && body["expiresAt"].is_string(), "{body}");
    // No body at all takes the configured default.
    let (status, body) = send(app.req(Method::POST, &format!("/api/v1/users/{user}/session-token"))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["expiresIn"], app.config.realtime.session_token_ttl_secs);
    // Nor does an empty body sent with `Content-Type: application/json`, as many HTTP
    // clients send it (fetch wrappers, axios, curl -H ... -d '').
    let path = format!("/api/v1/users/{user}/session-token");
    for empty in ["", "  \n"] {
        let req = app.req(Method::POST, &path).header("content-type", "application/json").body(empty);
        let (status, body) = send(req).await;
        assert_eq!(status, StatusCode::CREATED, "empty body {empty:?}: {body}");
        assert_eq!(body["expiresIn"], app.config.realtime.session_token_ttl_secs);
    }
    // A body that is not JSON is still an error, and a JSON body needs its Content-Type.
    let (status, body) =
        send(app.req(Method::POST, &path).header("content-type", "application/json").body("{ttl")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_json");
    let (status, body) = send(app.req(Method::POST, &path).body(r#"{"ttlSecs": 120}"#)).await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    for ttl in [json!(0), json!(59), json!(86_401)] {
        let (status, body) = app.post(&format!("/api/v1/users/{user}/session-token"), json!({"ttlSecs": ttl})).await;
        let message = assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        assert!(message.contains("ttlSecs") || body.to_string().contains("ttlSecs"), "{body}");
    }
    let (status, body) = app.post(&format!("/api/v1/users/{user}/session-token"), json!({"ttl": 60})).await;
    assert!(status.is_client_error(), "unknown field: {status} {body}");
    let (status, body) = app.post("/api/v1/users/nobody/session-token", json!({})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    // A suspended player gets no token.
    let (status, _) = app.patch(&format!("/api/v1/users/{user}"), json!({"status": "suspended"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.post(&format!("/api/v1/users/{user}/session-token"), json!({})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "user_not_active");

    // Another project's key cannot issue tokens for this project's players.
    let (_, other_key) = app.other_project().await;
    let (status, body) =
        send(app.with_key(&other_key, Method::POST, &format!("/api/v1/users/{user}/session-token")).json(&json!({})))
            .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    // Revoking: the ids revoked, and the event that says so.
    let (status, _) = app.patch(&format!("/api/v1/users/{user}"), json!({"status": "active"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.delete(&format!("/api/v1/users/{user}/sessions")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Issued above: one with `ttlSecs`, one without a body, two with an empty body.
    assert_eq!(body["revoked"].as_array().map(Vec::len), Some(4), "every live token: {body}");
    let (status, body) = app.delete(&format!("/api/v1/users/{user}/sessions")).await;
    assert_eq!((status, body["revoked"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
    let types = app.event_types("user", &user).await;
    assert_eq!(types.iter().filter(|t| *t == "user.sessions_revoked").count(), 1, "{types:?}");
}

async fn bad_credentials_are_refused_at_connect(app: TestApp) {
    let user = new_player(&app, "refused").await;
    let refused = |auth: Value| {
        let base = app.base.clone();
        async move {
            match SocketClient::connect(&base, auth).await {
                Ok(_) => panic!("connected"),
                Err(message) => message,
            }
        }
    };
    assert!(refused(json!({})).await.contains("missing token"));
    assert!(refused(json!({"token": "not-a-token"})).await.contains("invalid"));
    assert!(refused(json!({"token": "hk_0123456789abcdef_wrong"})).await.contains("invalid"));

    // Expired, and signed with another key: the server's key is in its settings.
    let secret = app.store.setting_or_insert("jwt_secret", "unused").await.expect("jwt secret");
    let (status, body) = app.post(&format!("/api/v1/users/{user}/session-token"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let now = chrono::Utc::now().timestamp();
    let claims = PlayerClaims {
        sub: user.clone(),
        prj: app.project_id.clone(),
        sid: body["sessionId"].as_str().expect("sid").into(),
        iat: now - 7200,
        exp: now - 3600,
        typ: "player".into(),
    };
    let expired = JwtKeys::new(secret.as_bytes()).issue(&claims).expect("sign");
    assert!(refused(json!({"token": expired})).await.contains("invalid or expired"));
    let forged = JwtKeys::new(b"some other secret, long enough for HS256")
        .issue(&PlayerClaims { exp: now + 600, ..claims.clone() })
        .expect("sign");
    assert!(refused(json!({"token": forged})).await.contains("invalid"));
    // The genuine token works, until it is revoked.
    let token = body["token"].as_str().expect("token").to_owned();
    SocketClient::connect(&app.base, json!({"token": token})).await.expect("a valid token connects");
    app.delete(&format!("/api/v1/users/{user}/sessions")).await;
    assert!(refused(json!({"token": token})).await.contains("revoked"));

    // A key without `events:read`, and an organization key that names no project.
    let (_, weak) = app.create_key(&["users:read"]).await;
    assert!(refused(json!({"token": weak})).await.contains("events:read"));
    let org_key = app.org_admin_key().await;
    assert!(refused(json!({"token": org_key})).await.contains("projectId"));
    let (other_project, _) = app.other_project().await;
    server_socket(&app, json!({"token": org_key, "projectId": other_project})).await;
    assert!(refused(json!({"token": org_key, "projectId": "nope"})).await.contains("no such project"));
    assert!(refused(json!({"token": app.key, "events": ["user.**"]})).await.contains("user.**"));
}

async fn server_sockets_get_project_events_under_both_names(app: TestApp) {
    let socket = server_socket(&app, json!({"token": app.key})).await;
    let user = new_player(&app, "alice").await;
    let alias = socket.expect("user_registered").await;
    let dotted = socket.expect("user.created").await;
    assert_eq!(alias["type"], "user.created");
    assert_eq!(alias["id"], dotted["id"], "the same event under both names");
    assert_eq!(dotted["data"]["username"], "alice");
    assert_eq!(dotted["resource"], json!({"type": "user", "id": user}));
    // What the seeds' client reads from the alias.
    assert_eq!(alias["userId"], user.as_str());
    assert_eq!(alias["user"]["username"], "alice");

    let (status, _) = app.post(&format!("/api/v1/users/{user}/login"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(socket.expect("user_login").await["userId"], user.as_str());

    let world = world(&app, "w1").await;
    let (status, body) =
        app.put(&format!("/api/v1/game-worlds/{world}/maintenance"), json!({"enabled": true, "message": "m"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let started = socket.expect("world_maintenance_started").await;
    assert_eq!(started["worldId"], "w1");
    socket.expect("world.maintenance_started").await;
    app.put(&format!("/api/v1/game-worlds/{world}/maintenance"), json!({"enabled": false})).await;
    assert_eq!(socket.expect("world_maintenance_ended").await["worldId"], "w1");

    // Never another project's events.
    let (_, other_key) = app.other_project().await;
    let (status, _) =
        send(app.with_key(&other_key, Method::POST, "/api/v1/users").json(&json!({"username": "elsewhere"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    socket.expect_none("user_registered", QUIET).await;
}

async fn server_sockets_narrow_and_widen_their_subscriptions(app: TestApp) {
    let socket = server_socket(&app, json!({"token": app.key, "events": ["world.*"]})).await;
    new_player(&app, "quiet").await;
    world(&app, "w2").await;
    socket.expect("world.created").await;
    socket.expect_none("user.created", QUIET).await;

    let ack = socket.request("subscribe", json!({"events": ["user.created"]})).await;
    assert_eq!(ack, json!({"ok": true, "events": ["user.created", "world.*"]}));
    let ack = socket.request("unsubscribe", json!({"events": ["world.*"]})).await;
    assert_eq!(ack, json!({"ok": true, "events": ["user.created"]}));
    new_player(&app, "heard").await;
    assert_eq!(socket.expect("user.created").await["data"]["username"], "heard");
    world(&app, "w3").await;
    socket.expect_none("world.created", QUIET).await;

    let ack = socket.request("subscribe", json!({"events": ["bad pattern"]})).await;
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["error"]["code"], "invalid_events");
    let ack = socket.request("subscribe", json!({"patterns": ["user.*"]})).await;
    assert_eq!(ack["error"]["code"], "invalid_request", "{ack}");
    // Chat requests are for players.
    let ack = tokio::time::timeout(QUIET, socket.request("send_message", json!({"channelId": "c", "text": "x"}))).await;
    assert!(ack.is_err(), "a server socket has no send_message: {ack:?}");
}

async fn players_get_maintenance_and_their_own_changes_only(app: TestApp) {
    let me = new_player(&app, "me").await;
    let other = new_player(&app, "other").await;
    let socket = player_socket(&app, &me).await;
    let world = world(&app, "w4").await;
    app.put(&format!("/api/v1/game-worlds/{world}/maintenance"), json!({"enabled": true})).await;
    assert_eq!(socket.expect("world_maintenance_started").await["worldId"], "w4");
    socket.expect("world.maintenance_started").await;

    app.patch(&format!("/api/v1/users/{other}"), json!({"displayName": "Other"})).await;
    app.patch(&format!("/api/v1/users/{me}"), json!({"displayName": "Me"})).await;
    let mine = socket.expect("user.updated").await;
    assert_eq!(mine["data"]["id"], me.as_str());
    socket.expect_none("user.updated", QUIET).await;
    // Nothing about other players, worlds in general, or the project.
    new_player(&app, "third").await;
    let pending = socket.pending();
    assert!(
        pending.iter().all(|n| !n.starts_with("user") && n != "world.created"),
        "a player saw others' events: {pending:?}"
    );
    // A player cannot ask for the server stream, and is told so.
    for request in ["subscribe", "unsubscribe"] {
        let ack = socket.request(request, json!({"events": ["*"]})).await;
        assert_eq!((&ack["ok"], &ack["error"]["code"]), (&json!(false), &json!("forbidden")), "{ack}");
        assert!(ack["error"]["message"].as_str().is_some_and(|m| m.contains("join_channel")), "{ack}");
    }
    new_player(&app, "fourth").await;
    socket.expect_none("user.created", QUIET).await;
}

async fn chat_over_the_socket(app: TestApp) {
    let (alice, bob) = (new_player(&app, "alice").await, new_player(&app, "bob").await);
    let lobby = channel(&app, "lobby").await;
    let (a, b) = (player_socket(&app, &alice).await, player_socket(&app, &bob).await);

    let ack = a.request("send_message", json!({"channelId": lobby, "text": "too early"})).await;
    assert_eq!(ack["error"]["code"], "not_subscribed", "{ack}");
    for s in [&a, &b] {
        let ack = s.request("join_channel", json!({"channelId": lobby})).await;
        assert_eq!(ack, json!({"ok": true, "channelId": lobby}));
    }
    // Joining twice is fine; a missing channel is not.
    assert_eq!(a.request("join_channel", json!({"channelId": lobby})).await["ok"], true);
    let ack = a.request("join_channel", json!({"channelId": "no-such-channel"})).await;
    assert_eq!(ack["error"]["code"], "not_found", "{ack}");
    // The join went through the chat rules: GameTalk sees both subscribers.
    assert!(app.store.is_subscribed(&lobby, &alice).await.expect("read"));

    let ack = a.request("send_message", json!({"channelId": lobby, "text": "hello", "data": {"k": 1}})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let id = ack["id"].as_i64().expect("message id");
    let got = b.expect("message").await;
    assert_eq!(got["channelId"], lobby.as_str());
    assert_eq!(got["id"], id);
    assert_eq!(got["sender"], alice.as_str());
    assert_eq!(got["text"], "hello");
    assert_eq!(got["data"], json!({"k": 1}));
    assert!(got["time"].is_string(), "{got}");
    assert_eq!(b.expect("chat.message.created").await["data"]["id"], id);
    assert_eq!(a.expect("message").await["id"], id, "the sender's sockets get it too");

    // Messages from the game server (API) reach the channel too.
    let (status, _) = app.post(&format!("/api/v1/chat/channels/{lobby}/messages"), json!({"text": "server"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(b.expect("message").await["sender"], Value::Null);

    let long = "x".repeat(app.config.chat.max_message_length + 1);
    let ack = a.request("send_message", json!({"channelId": lobby, "text": long})).await;
    assert_eq!(ack["error"]["code"], "validation_error", "{ack}");
    let ack = a.request("send_message", json!({"channelId": lobby})).await;
    assert_eq!(ack["error"]["code"], "invalid_request", "{ack}");

    // Typing reaches the others, not the typist, and is stored nowhere.
    assert_eq!(a.request("typing", json!({"channelId": lobby})).await["ok"], true);
    assert_eq!(b.expect("typing").await, json!({"channelId": lobby, "userId": alice, "typing": true}));
    a.expect_none("typing", QUIET).await;
    let ack = a.request("typing", json!({"channelId": "elsewhere"})).await;
    assert_eq!(ack["error"]["code"], "not_subscribed");

    // The send limit (10 per 10 s by default; one sent already).
    let mut limited = None;
    for i in 0..app.config.chat.rate_limit_messages {
        let ack = a.request("send_message", json!({"channelId": lobby, "text": format!("m{i}")})).await;
        if ack["ok"] == false {
            limited = Some(ack);
            break;
        }
    }
    let limited = limited.expect("the limit was reached");
    assert_eq!(limited["error"]["code"], "rate_limited", "{limited}");
    assert!(limited["error"]["retryAfter"].as_u64().is_some_and(|s| s >= 1), "{limited}");

    // Leaving: no more messages.
    assert_eq!(b.request("leave_channel", json!({"channelId": lobby})).await["ok"], true);
    while b.expect_within("message", QUIET).await.is_some() {}
    app.post(&format!("/api/v1/chat/channels/{lobby}/messages"), json!({"text": "after"})).await;
    while a.expect("message").await["text"] != "after" {}
    b.expect_none("message", QUIET).await;
    let ack = b.request("leave_channel", json!({"channelId": lobby})).await;
    assert_eq!(ack["error"]["code"], "not_subscribed", "{ack}");
}

async fn channel_messages_arrive_in_order(app: TestApp) {
    let player = new_player(&app, "reader").await;
    let ch = channel(&app, "busy").await;
    let socket = player_socket(&app, &player).await;
    assert_eq!(socket.request("join_channel", json!({"channelId": ch})).await["ok"], true);
    // 60 concurrent sends from the game server.
    let sends = (0..60).map(|i| {
        let req = app.req(Method::POST, &format!("/api/v1/chat/channels/{ch}/messages"));
        async move { send(req.json(&json!({"text": format!("n{i}")}))).await }
    });
    for (status, body) in futures_util::future::join_all(sends).await {
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(socket.expect("message").await["id"].as_i64().expect("id"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id (commit) order: {ids:?}");
    socket.expect_none("message", QUIET).await;
}

async fn revoking_sessions_disconnects_their_sockets(app: TestApp) {
    let player = new_player(&app, "revoked").await;
    let socket = player_socket(&app, &player).await;
    let bystander = player_socket(&app, &new_player(&app, "bystander").await).await;
    app.delete(&format!("/api/v1/users/{player}/sessions")).await;
    socket.expect("disconnect").await;
    bystander.expect_none("disconnect", QUIET).await;

    // Suspending a player disconnects them too.
    let again = player_socket(&app, &player).await;
    app.patch(&format!("/api/v1/users/{player}"), json!({"status": "suspended"})).await;
    again.expect("disconnect").await;
}

// ---- several nodes, one PostgreSQL ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_share_events_and_chat() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else { return };
    let (node_b, _stop_b) = app.spawn_node().await;
    let (alice, bob) = (new_player(&app, "alice").await, new_player(&app, "bob").await);
    let ch = channel(&app, "across").await;
    let on_a = player_socket(&app, &alice).await;
    let token = session_token(&app, &bob).await;
    let on_b = SocketClient::connect(&node_b, json!({"token": token})).await.expect("connects to node B");
    let server_on_b = SocketClient::connect(&node_b, json!({"token": app.key})).await.expect("connects");
    for s in [&on_a, &on_b] {
        assert_eq!(s.request("join_channel", json!({"channelId": ch})).await["ok"], true);
    }
    // A message sent on node A reaches the client on node B, and the other way round.
    let ack = on_a.request("send_message", json!({"channelId": ch, "text": "from A"})).await;
    let got = on_b.expect("message").await;
    assert_eq!((got["id"].clone(), got["text"].clone()), (ack["id"].clone(), json!("from A")));
    let ack = on_b.request("send_message", json!({"channelId": ch, "text": "from B"})).await;
    let mut got = on_a.expect("message").await;
    while got["text"] == "from A" {
        got = on_a.expect("message").await;
    }
    assert_eq!(got["id"], ack["id"]);
    // Typing crosses too.
    on_a.request("typing", json!({"channelId": ch})).await;
    assert_eq!(on_b.expect("typing").await["userId"], alice.as_str());
    // Events written on node A reach server sockets on node B. A socket may first hear a few
    // events from just before it came (`feed::skip_to_now`: node B's feed had no socket and
    // keeps its cursor when one arrives during its read): alice's and bob's registrations,
    // committed as the sockets connected, never anything else.
    new_player(&app, "carol").await;
    let mut earlier = Vec::new();
    loop {
        let got = server_on_b.expect("user_registered").await;
        let name = got["user"]["username"].as_str().unwrap_or_default().to_owned();
        if name == "carol" {
            break;
        }
        assert!(["alice", "bob"].contains(&name.as_str()) && !earlier.contains(&name), "{name} after {earlier:?}");
        earlier.push(name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_project_are_limited() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, |c| c.realtime.max_connections_per_project = 2).await.expect("sqlite");
    let first = server_socket(&app, json!({"token": app.key})).await;
    let _second = server_socket(&app, json!({"token": app.key})).await;
    let refused = SocketClient::connect(&app.base, json!({"token": app.key})).await.err().expect("refused");
    assert!(refused.contains("2 connected sockets"), "{refused}");
    // Another project has its own allowance.
    let (_, other_key) = app.other_project().await;
    server_socket(&app, json!({"token": other_key})).await;
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while SocketClient::connect(&app.base, json!({"token": app.key})).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "a closed socket frees its place");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client that stops reading loses the packets that do not fit its buffer and is then
/// disconnected by the heartbeat; a client reading beside it gets every event. (Socket
/// buffers are in memory, whatever the store: one backend is enough.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_to_read_is_disconnected() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.realtime.max_buffered_packets = 8;
        c.realtime.ping_interval_secs = 1;
        // Not 1 s: the reader below must keep up too, and on a loaded CI machine a reader
        // starved for a second was cut with the stalled one (seen once in a full run).
        c.realtime.ping_timeout_secs = 3;
        c.http.write_stall_timeout_secs = 3;
        c.http.body_limit_bytes = 8 * 1024 * 1024;
    })
    .await
    .expect("sqlite");
    let (status, body) = app.post("/api/v1/event-types", json!({"name": "load.blob"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let reader = server_socket(&app, json!({"token": app.key, "events": ["load.*"]})).await;
    let _stalled = StalledSocket::connect(&app.base, json!({"token": app.key, "events": ["load.*"]})).await;
    assert_eq!(metric(&app, "herald_sockets_connected").await, 2.0);

    // Publish 2 MiB batches until the stalled client's buffer overflows (the kernel's socket
    // buffers take the first few MiB) or its stalled write times out, whichever comes first.
    let blob = "x".repeat(4096);
    let mut published = 0;
    for _ in 0..20 {
        let events: Vec<Value> =
            (0..500).map(|i| json!({"type": "load.blob", "data": {"i": i, "blob": blob}})).collect();
        let (status, body) = app.post("/api/v1/events/batch", json!({"events": events})).await;
        assert!(status.is_success(), "{status} {body}");
        published += 500;
        if metric(&app, "herald_socket_packets_dropped_total").await > 0.0
            || metric(&app, "herald_sockets_connected").await < 2.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Its heartbeat fails (the ping cannot be queued, or no pong comes): it is closed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metric(&app, "herald_sockets_connected").await != 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled client was never disconnected: {} connected, {} heartbeat timeouts, {} dropped",
            metric(&app, "herald_sockets_connected").await,
            metric(&app, "herald_socket_heartbeat_timeouts_total").await,
            metric(&app, "herald_socket_packets_dropped_total").await,
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(metric(&app, "herald_socket_heartbeat_timeouts_total").await >= 1.0);
    // The client that kept reading got everything and is still connected.
    for _ in 0..published {
        reader.expect("load.blob").await;
    }
    assert_eq!(metric(&app, "herald_sockets_connected").await, 1.0);
}

/// Reads a raw WebSocket until the server closes it; `Some(text messages seen)` if it did
/// within `wait`. Pings are answered, as a live client would.
async fn ws_closed_within(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    wait: Duration,
) -> Option<Vec<String>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut seen = Vec::new();
    let read = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    let _ = ws.send(Message::text("3")).await;
                }
                Some(Ok(Message::Text(t))) => seen.push(t.to_string()),
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(wait, read).await.ok().map(|()| seen)
}

/// `realtime.max_payload_bytes` (64 KiB by default) bounds every message a client sends over
/// WebSocket, before and after authentication: a larger one closes the connection unread;
/// a message under it is answered; the server stays healthy. (Limits of the transport,
/// whatever the store: SQLite is enough.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_over_the_payload_limit_close_the_connection() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    assert_eq!(app.config.realtime.max_payload_bytes, 64 * 1024);
    let big = "x".repeat(1024 * 1024);
    let ws_url = format!("{}/socket.io/?EIO=4&transport=websocket", app.base.replacen("http", "ws", 1));
    let patience = Duration::from_secs(8);

    // Never authenticated: a 1 MiB engine.io pong (which engine.io would otherwise ignore),
    // and a 1 MiB socket.io connect whose `auth` would otherwise be parsed and refused.
    for oversize in [format!("3{big}"), format!("40{}", json!({"token": big}))] {
        let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.expect("websocket");
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with('0') => {}
            other => panic!("no engine.io open packet: {other:?}"),
        }
        let _ = ws.send(Message::text(oversize.clone())).await;
        let seen = ws_closed_within(&mut ws, patience).await;
        let seen = seen.unwrap_or_else(|| panic!("a {} B message left the connection open", oversize.len()));
        assert!(seen.is_empty(), "nothing is answered to an oversize message: {seen:?}");
    }

    // Authenticated: a message just under the limit is read and answered; one over it
    // closes the socket.
    let socket = server_socket(&app, json!({"token": app.key})).await;
    let near = "y".repeat(60 * 1024);
    let ack = socket.request("subscribe", json!({"events": [near]})).await;
    assert_eq!(ack["error"]["code"], "invalid_events", "a 60 KiB request is read and answered");
    socket.send_raw(format!("42{}", json!(["subscribe", {"events": [big]}])));
    socket.expect("disconnect").await;

    // The server is fine: it answers, and new sockets connect and work.
    assert_eq!(app.anon(Method::GET, "/healthz").send().await.expect("healthz").status(), StatusCode::OK);
    let again = server_socket(&app, json!({"token": app.key})).await;
    assert_eq!(again.request("subscribe", json!({"events": ["user.*"]})).await["ok"], true);
}

/// Over HTTP long-polling the same limit bounds a request's body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_bodies_over_the_payload_limit_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let client = reqwest::Client::new();
    let open = client.get(app.url("/socket.io/?EIO=4&transport=polling")).send().await.expect("handshake");
    let open = open.text().await.expect("open packet");
    let sid: Value = serde_json::from_str(open.trim_start_matches('0')).expect("open packet json");
    let url = app.url(&format!("/socket.io/?EIO=4&transport=polling&sid={}", sid["sid"].as_str().expect("sid")));
    let small = client.post(&url).body("40").send().await.expect("post");
    assert_eq!(small.status(), StatusCode::OK, "a small body is taken");
    let big = client.post(&url).body(format!("4{}", "x".repeat(1024 * 1024))).send().await.expect("answered");
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // On a new connection: the server may close the one the refused body came on.
    let after = reqwest::Client::new().get(&url).send().await.expect("poll");
    assert_eq!(after.status(), StatusCode::BAD_REQUEST, "the session is closed");
}
