//! The game-client routes (`/api/v1/client/*`) and client keys, through real HTTP on both
//! backends: credentials, the bootstrap answer, ETag/304 and Cache-Control, CORS, the
//! per-address rate limit, localization, and what client answers never show.

use chrono::TimeDelta;
use herald::config::Config;
use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, assert_error, send};

crate::both_backends!(
    client_keys_are_created_listed_and_revoked,
    session_tokens_open_the_client_routes_and_me_needs_one,
    bootstrap_answers_everything_a_client_needs_at_start,
    etag_and_cache_control,
    cors_is_answered_for_configured_origins_only,
    rate_limit_is_per_client_address,
    texts_are_localized_with_fallbacks,
    client_answers_carry_no_server_only_fields,
);

/// The same app's backend, started again with `tweak`ed settings.
async fn respawn(app: TestApp, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let backend = if app.config.database_url.is_empty() { Backend::Sqlite } else { Backend::Postgres };
    drop(app);
    TestApp::spawn_with(backend, tweak).await.expect("server starts")
}

/// Creates a client key through the API: `(id, value)`.
async fn client_key(app: &TestApp, body: Value) -> (String, String) {
    let (status, key) = app.post("/api/v1/client-keys", body).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (key["id"].as_str().expect("id").into(), key["keyValue"].as_str().expect("keyValue").into())
}

fn client(app: &TestApp, key: &str, path: &str) -> RequestBuilder {
    app.anon(Method::GET, path).header("X-Client-Key", key)
}

async fn new_user(app: &TestApp, username: &str) -> String {
    let (status, user) = app
        .post("/api/v1/users", json!({"username": username, "metadata": {"banReason": "server-only text 7f3a"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    user["id"].as_str().expect("id").into()
}

async fn session_token(app: &TestApp, user: &str) -> String {
    let (status, body) = app.post(&format!("/api/v1/users/{user}/session-token"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().expect("token").into()
}

async fn client_keys_are_created_listed_and_revoked(app: TestApp) {
    let (status, created) = app.post("/api/v1/client-keys", json!({"name": "PC build", "channels": ["PC"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let value = created["keyValue"].as_str().expect("keyValue").to_string();
    assert!(value.starts_with(&format!("hc_{id}_")), "{value}");
    assert_eq!(created["channels"], json!(["PC"]));
    assert_eq!(created["projectId"], json!(app.project_id));

    // Listed, never with its value or hash.
    let (status, list) = app.get("/api/v1/client-keys").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let text = list.to_string();
    assert!(!text.contains(&value[20..]), "the secret is shown once only: {list}");
    let item = list["items"].as_array().expect("items").iter().find(|k| k["id"] == id.as_str()).expect("listed");
    assert!(item.get("keyValue").is_none() && item.get("secretHash").is_none(), "{item}");
    // Not an API key: the API key list does not show it.
    let (_, api_keys) = app.get("/api/v1/api-keys").await;
    assert!(!api_keys.to_string().contains(&id), "{api_keys}");

    // It opens the client routes, for its channels.
    let (status, body) = send(client(&app, &value, "/api/v1/client/bootstrap?channel=PC&version=1.0.0")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(client(&app, &value, "/api/v1/client/bootstrap?channel=iOS&version=1.0.0")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "channel_not_allowed");

    // Bad input changes nothing.
    let before = app.store.count_events().await.expect("count");
    for bad in
        [json!({"name": ""}), json!({"name": "x", "channels": ["P C"]}), json!({"name": "x", "scopes": ["admin"]})]
    {
        let (status, body) = app.post("/api/v1/client-keys", bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    assert_eq!(app.store.count_events().await.expect("count"), before);

    // Revoked: refused at once, still listed.
    let (status, revoked) = app.delete(&format!("/api/v1/client-keys/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revokedAt"].is_string(), "{revoked}");
    let (status, body) = send(client(&app, &value, "/api/v1/client/bootstrap")).await;
    let message = assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(message.contains("revoked"), "{message}");
    let (status, body) = app.delete("/api/v1/client-keys/no-such-key").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.event_types("client_key", &id).await, ["client_key.created", "client_key.revoked"]);

    // A tampered secret is refused like an unknown key.
    let (_, other) = client_key(&app, json!({"name": "other"})).await;
    let tampered = format!("{}{}", &other[..20], &value[20..]);
    let (status, body) = send(client(&app, &tampered, "/api/v1/client/bootstrap")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    // Another project's admin does not see or revoke this project's keys.
    let (_, other_admin) = app.other_project().await;
    let (status, list) = send(app.with_key(&other_admin, Method::GET, "/api/v1/client-keys")).await;
    assert_eq!((status, list["total"].as_i64()), (StatusCode::OK, Some(0)), "{list}");
    let (status, body) =
        send(app.with_key(&other_admin, Method::DELETE, &format!("/api/v1/client-keys/{}", &other[3..19]))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

async fn session_tokens_open_the_client_routes_and_me_needs_one(app: TestApp) {
    let user = new_user(&app, "alice").await;
    let token = session_token(&app, &user).await;
    let (_, key) = client_key(&app, json!({"name": "build"})).await;

    let (status, body) = send(app.anon(Method::GET, "/api/v1/client/bootstrap").bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::OK, "a session token alone opens the client routes: {body}");

    // `me` needs the player: a client key alone is not enough.
    let (status, body) = send(client(&app, &key, "/api/v1/client/me")).await;
    let message = assert_error(status, &body, StatusCode::UNAUTHORIZED, "session_token_required");
    assert!(message.contains("session token"), "{message}");
    for req in [
        app.anon(Method::GET, "/api/v1/client/me").bearer_auth(&token),
        client(&app, &key, "/api/v1/client/me").bearer_auth(&token),
    ] {
        let (status, me) = send(req).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(me["player"]["id"], json!(user));
        assert_eq!(me["player"]["username"], "alice");
        assert_eq!(me["maintenanceApplies"], false);
        assert_eq!(me["maintenance"]["inMaintenance"], false);
    }

    // What is not a client credential.
    let (status, body) = send(app.anon(Method::GET, "/api/v1/client/bootstrap")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = send(app.req(Method::GET, "/api/v1/client/bootstrap")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "client_credential_required");
    let (status, body) = send(app.anon(Method::GET, "/api/v1/client/bootstrap").bearer_auth(&app.key)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "client_credential_required");
    let (status, body) = send(app.anon(Method::GET, "/api/v1/client/me").bearer_auth("not.a.token")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    // A key and a token of different projects do not mix.
    let (other_project, other_admin) = app.other_project().await;
    let (status, other_key) =
        send(app.with_key(&other_admin, Method::POST, "/api/v1/client-keys").json(&json!({"name": "other game"})))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{other_key} in {other_project}");
    let other_key = other_key["keyValue"].as_str().expect("keyValue");
    let (status, body) = send(client(&app, other_key, "/api/v1/client/me").bearer_auth(&token)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    // Revoked sessions end at once.
    let (status, _) = app.delete(&format!("/api/v1/users/{user}/sessions")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(app.anon(Method::GET, "/api/v1/client/me").bearer_auth(&token)).await;
    let message = assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(message.contains("revoked"), "{message}");
}

async fn bootstrap_answers_everything_a_client_needs_at_start(app: TestApp) {
    let (_, key) = client_key(&app, json!({"name": "build"})).await;
    for (world_id, order, visible) in [("beta", 2, true), ("alpha", 1, true), ("hidden", 0, false)] {
        let (status, body) = app
            .post(
                "/api/v1/game-worlds",
                json!({"worldId": world_id, "name": world_id, "displayOrder": order, "visible": visible}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = app
        .put("/api/v1/game-worlds/beta/maintenance", json!({"enabled": true, "messages": {"en": "Back soon"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (version, status) in [("1.0.0", "online"), ("1.1.0", "online")] {
        let (code, body) = app
            .post(
                "/api/v1/client-versions",
                json!({"channel": "PC", "version": version, "status": status, "updateUrl": "https://example.com/get"}),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }

    let before = chrono::Utc::now() - TimeDelta::seconds(5);
    let (status, boot) = send(client(&app, &key, "/api/v1/client/bootstrap?channel=PC&version=0.9.0&lang=en")).await;
    assert_eq!(status, StatusCode::OK, "{boot}");
    let worlds: Vec<(&str, bool)> = boot["worlds"]
        .as_array()
        .expect("worlds")
        .iter()
        .map(|w| (w["worldId"].as_str().expect("worldId"), w["inMaintenance"].as_bool().expect("bool")))
        .collect();
    assert_eq!(worlds, [("alpha", false), ("beta", true)], "visible worlds in display order: {boot}");
    assert_eq!(boot["worlds"][1]["maintenanceMessage"], "Back soon");
    assert!(boot["worlds"][0]["maintenanceMessage"].is_null());
    // The version check is the server lookup's, without its notes.
    let (_, lookup) = app.get("/api/v1/client-versions/lookup?channel=PC&version=0.9.0").await;
    let check = &boot["versionCheck"];
    assert_eq!(check["action"], "update_required");
    for field in ["action", "latestVersion", "updateUrl", "known", "channel", "subChannel", "version"] {
        assert_eq!(check[field], lookup[field], "{field}: {check} vs {lookup}");
    }
    assert_eq!(check["latestVersion"], "1.1.0");
    // Game-wide maintenance and notices do not exist yet: shaped, empty, never invented.
    assert_eq!(boot["maintenance"]["enabled"], false);
    assert_eq!(boot["maintenance"]["inMaintenance"], false);
    assert_eq!(boot["notices"], json!([]));
    let server_time: chrono::DateTime<chrono::Utc> =
        boot["serverTime"].as_str().expect("serverTime").parse().expect("RFC 3339");
    assert!(server_time > before, "{server_time}");

    // Without a channel and version there is no version check; a version needs its channel.
    let (status, boot) = send(client(&app, &key, "/api/v1/client/bootstrap")).await;
    assert_eq!(status, StatusCode::OK, "{boot}");
    assert!(boot["versionCheck"].is_null(), "{boot}");
    let (status, body) = send(client(&app, &key, "/api/v1/client/bootstrap?version=1.0.0")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    let (status, body) = send(client(&app, &key, "/api/v1/client/bootstrap?nope=1")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");

    // The single-part routes agree with the bootstrap.
    let (status, worlds) = send(client(&app, &key, "/api/v1/client/game-worlds")).await;
    assert_eq!(status, StatusCode::OK, "{worlds}");
    assert_eq!(worlds["items"].as_array().map(Vec::len), Some(2), "{worlds}");
    let (status, lookup) = send(client(&app, &key, "/api/v1/client/versions/lookup?channel=PC&version=1.1.0")).await;
    assert_eq!((status, lookup["action"].as_str()), (StatusCode::OK, Some("play")), "{lookup}");
    let (status, body) = send(client(&app, &key, "/api/v1/client/versions/lookup?channel=PC")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    let (status, notices) = send(client(&app, &key, "/api/v1/client/notices")).await;
    assert_eq!((status, notices), (StatusCode::OK, json!({"items": []})));
    let (status, maintenance) = send(client(&app, &key, "/api/v1/client/maintenance")).await;
    assert_eq!(status, StatusCode::OK, "{maintenance}");
    assert_eq!(maintenance["worlds"].as_array().map(Vec::len), Some(1), "only beta is in maintenance: {maintenance}");
    assert_eq!(maintenance["worlds"][0]["worldId"], "beta");
    assert_eq!(maintenance["worlds"][0]["inMaintenance"], true);

    // A change made through the API shows at once (the node's cached answer is dropped).
    let (status, _) = app.put("/api/v1/game-worlds/beta/maintenance", json!({"enabled": false})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, boot) = send(client(&app, &key, "/api/v1/client/bootstrap")).await;
    assert_eq!(boot["worlds"][1]["inMaintenance"], false, "{boot}");
}

fn header_of(resp: &reqwest::Response, name: header::HeaderName) -> String {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

async fn etag_and_cache_control(app: TestApp) {
    let (_, key) = client_key(&app, json!({"name": "build"})).await;
    let (status, body) = app.post("/api/v1/game-worlds", json!({"worldId": "w1", "name": "One"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut checked = 0;
    for path in [
        "/api/v1/client/bootstrap?channel=PC&version=1.0.0",
        "/api/v1/client/game-worlds",
        "/api/v1/client/versions/lookup?channel=PC&version=1.0.0",
        "/api/v1/client/notices",
        "/api/v1/client/maintenance",
    ] {
        let first = client(&app, &key, path).send().await.expect("sent");
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        let etag = header_of(&first, header::ETAG);
        assert!(etag.starts_with("W/\""), "{path}: {etag:?}");
        assert_eq!(header_of(&first, header::CACHE_CONTROL), "private, max-age=5", "{path}: the default");
        let again = client(&app, &key, path).header(header::IF_NONE_MATCH, &etag).send().await.expect("sent");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(header_of(&again, header::ETAG), etag, "{path}");
        assert!(again.bytes().await.expect("body").is_empty(), "{path}: a 304 has no body");
        let other = client(&app, &key, path).header(header::IF_NONE_MATCH, "W/\"stale\"").send().await.expect("sent");
        assert_eq!(other.status(), StatusCode::OK, "{path}: another tag gets the answer");
        checked += 1;
    }
    assert_eq!(checked, 5);

    // A change gives a new tag: the old one gets the new answer.
    let first = client(&app, &key, "/api/v1/client/bootstrap").send().await.expect("sent");
    let etag = header_of(&first, header::ETAG);
    let (status, _) = app.patch("/api/v1/game-worlds/w1", json!({"name": "Renamed"})).await;
    assert_eq!(status, StatusCode::OK);
    let after =
        client(&app, &key, "/api/v1/client/bootstrap").header(header::IF_NONE_MATCH, &etag).send().await.expect("sent");
    assert_eq!(after.status(), StatusCode::OK);
    assert_ne!(header_of(&after, header::ETAG), etag);

    // `me` has its own tag too (per player).
    let user = new_user(&app, "bob").await;
    let token = session_token(&app, &user).await;
    let me = app.anon(Method::GET, "/api/v1/client/me").bearer_auth(&token).send().await.expect("sent");
    let etag = header_of(&me, header::ETAG);
    let again = app
        .anon(Method::GET, "/api/v1/client/me")
        .bearer_auth(&token)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // A maintenance window opening sooner than max-age bounds it (the server's clock is the
    // test's: it does not move by itself).
    let starts = app.clock.now() + TimeDelta::seconds(3);
    let (status, body) = app
        .put("/api/v1/game-worlds/w1/maintenance", json!({"enabled": true, "message": "soon", "startsAt": starts}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for path in ["/api/v1/client/bootstrap", "/api/v1/client/game-worlds", "/api/v1/client/maintenance"] {
        let resp = client(&app, &key, path).send().await.expect("sent");
        assert_eq!(header_of(&resp, header::CACHE_CONTROL), "private, max-age=3", "{path}");
    }
}

async fn cors_is_answered_for_configured_origins_only(app: TestApp) {
    let app = respawn(app, |c| c.client.cors_allowed_origins = vec!["https://play.example.com".into()]).await;
    let (_, key) = client_key(&app, json!({"name": "web build"})).await;
    let preflight = |origin: &str, path: &str| {
        app.anon(Method::OPTIONS, path)
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "x-client-key, if-none-match")
            .send()
    };
    let ok = preflight("https://play.example.com", "/api/v1/client/bootstrap").await.expect("sent");
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(header_of(&ok, header::ACCESS_CONTROL_ALLOW_ORIGIN), "https://play.example.com");
    let allowed = header_of(&ok, header::ACCESS_CONTROL_ALLOW_HEADERS).to_ascii_lowercase();
    assert!(allowed.contains("x-client-key") && allowed.contains("if-none-match"), "{allowed}");
    let get = client(&app, &key, "/api/v1/client/bootstrap")
        .header(header::ORIGIN, "https://play.example.com")
        .send()
        .await
        .expect("sent");
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(header_of(&get, header::ACCESS_CONTROL_ALLOW_ORIGIN), "https://play.example.com");
    assert!(header_of(&get, header::ACCESS_CONTROL_EXPOSE_HEADERS).to_ascii_lowercase().contains("etag"));

    // Another origin, or a server route: no CORS permission.
    let other = preflight("https://evil.example.com", "/api/v1/client/bootstrap").await.expect("sent");
    assert!(other.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let server_route = app
        .req(Method::GET, "/api/v1/game-worlds")
        .header(header::ORIGIN, "https://play.example.com")
        .send()
        .await
        .expect("sent");
    assert_eq!(server_route.status(), StatusCode::OK);
    assert!(server_route.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

async fn rate_limit_is_per_client_address(app: TestApp) {
    let app = respawn(app, |c| {
        c.client.rate_limit_per_sec = 1;
        c.client.rate_limit_burst = 3;
        c.http.trusted_proxies = vec!["127.0.0.1/32".into(), "::1/128".into()];
    })
    .await;
    let (_, key) = client_key(&app, json!({"name": "build"})).await;
    let from = |address: &str| client(&app, &key, "/api/v1/client/notices").header("X-Forwarded-For", address);

    // Send until the first 429: at most the burst plus what the elapsed time refilled.
    let started = std::time::Instant::now();
    let mut passed = 0;
    let refused = loop {
        let resp = from("198.51.100.7").send().await.expect("sent");
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            break resp;
        }
        assert_eq!(resp.status(), StatusCode::OK);
        passed += 1;
        assert!(passed < 50, "never limited");
    };
    let refills = started.elapsed().as_secs() + 1;
    assert!(passed >= 3 && passed <= 3 + refills, "{passed} passed in {:?}", started.elapsed());
    // At once (a token comes back each second): a forged head of the header does not make
    // a new bucket; the address the trusted proxy saw is what counts.
    let (status, _) = send(from("203.0.113.1, 198.51.100.7")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the address the proxy saw is what counts");
    let retry_after: u64 = header_of(&refused, header::RETRY_AFTER).parse().expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.expect("json");
    assert_error(StatusCode::TOO_MANY_REQUESTS, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    // Another address (behind the trusted proxy) has its own bucket.
    let (status, body) = send(from("198.51.100.8")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The server routes are not limited by address.
    let (status, _) = app.get("/api/v1/game-worlds").await;
    assert_eq!(status, StatusCode::OK);
}

async fn texts_are_localized_with_fallbacks(app: TestApp) {
    let (_, key) = client_key(&app, json!({"name": "build"})).await;
    let (status, body) = app.post("/api/v1/game-worlds", json!({"worldId": "w", "name": "W"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let messages = json!({"en": "English", "ja": "Japanese", "ko": "Korean"});
    let (status, body) =
        app.put("/api/v1/game-worlds/w/maintenance", json!({"enabled": true, "messages": messages})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, project) =
        app.patch(&format!("/api/v1/projects/{}", app.project_id), json!({"defaultLanguage": "ko"})).await;
    assert_eq!((status, project["defaultLanguage"].as_str()), (StatusCode::OK, Some("ko")), "{project}");

    let message = |query: &'static str, accept: Option<&'static str>| {
        let mut req = client(&app, &key, &format!("/api/v1/client/bootstrap{query}"));
        if let Some(accept) = accept {
            req = req.header(header::ACCEPT_LANGUAGE, accept);
        }
        async move {
            let (status, body) = send(req).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["worlds"][0]["maintenanceMessage"].as_str().unwrap_or("").to_string()
        }
    };
    assert_eq!(message("?lang=ja", None).await, "Japanese", "lang");
    assert_eq!(message("?lang=ja", Some("en")).await, "Japanese", "lang before Accept-Language");
    assert_eq!(
        message("", Some("de-DE, ja-JP;q=0.8, en;q=0.5")).await,
        "Japanese",
        "Accept-Language by weight, primary"
    );
    assert_eq!(message("?lang=de", None).await, "Korean", "the project's default language");
    assert_eq!(message("", None).await, "Korean", "nothing asked: the default");

    // A default language with no text: the untagged message, else any message.
    let (status, _) =
        app.patch(&format!("/api/v1/projects/{}", app.project_id), json!({"defaultLanguage": "zh"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(message("?lang=de", None).await, "English", "any message");
    let (status, _) = app
        .put("/api/v1/game-worlds/w/maintenance", json!({"enabled": true, "message": "Untagged", "messages": messages}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(message("?lang=de", None).await, "Untagged", "the message given without a language");

    // Bad input: a clear error, nothing changed.
    let (status, body) = send(client(&app, &key, "/api/v1/client/bootstrap?lang=not_a_language")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    let (status, body) =
        app.patch(&format!("/api/v1/projects/{}", app.project_id), json!({"defaultLanguage": "en US"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let (_, project) = app.get(&format!("/api/v1/projects/{}", app.project_id)).await;
    assert_eq!(project["defaultLanguage"], "zh");
}

/// Every object key anywhere in `value`.
fn keys_of(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                keys_of(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys_of(v, out)),
        _ => {}
    }
}

async fn client_answers_carry_no_server_only_fields(app: TestApp) {
    let (_, key) = client_key(&app, json!({"name": "build"})).await;
    let (status, world) =
        app.post("/api/v1/game-worlds", json!({"worldId": "w", "name": "W", "description": "shown to players"})).await;
    assert_eq!(status, StatusCode::CREATED, "{world}");
    let world_internal_id = world["id"].as_str().expect("id").to_string();
    let (status, version) = app
        .post("/api/v1/client-versions", json!({"channel": "PC", "version": "1.0.0", "notes": "internal note 91c2"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{version}");
    let version_internal_id = version["id"].as_str().expect("id").to_string();
    let user = new_user(&app, "carol").await;
    let other = new_user(&app, "dave").await;
    let token = session_token(&app, &user).await;
    let (_, project) = app.get(&format!("/api/v1/projects/{}", app.project_id)).await;
    let secret_key = project["secretKey"].as_str().expect("secretKey").to_string();

    let forbidden_keys = ["projectId", "organizationId", "metadata", "notes", "secretKey", "secretHash", "appKey"];
    let forbidden_text = [
        world_internal_id,
        version_internal_id,
        other,
        secret_key,
        "internal note 91c2".into(),
        "server-only text 7f3a".into(),
    ];
    let mut checked = 0;
    for path in [
        "/api/v1/client/bootstrap?channel=PC&version=1.0.0",
        "/api/v1/client/game-worlds",
        "/api/v1/client/versions/lookup?channel=PC&version=1.0.0",
        "/api/v1/client/notices",
        "/api/v1/client/maintenance",
        "/api/v1/client/me",
    ] {
        let (status, body) = send(client(&app, &key, path).bearer_auth(&token)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let mut keys = Vec::new();
        keys_of(&body, &mut keys);
        for k in forbidden_keys {
            assert!(!keys.iter().any(|have| have == k), "{path} shows `{k}`: {body}");
        }
        let text = body.to_string();
        for t in &forbidden_text {
            assert!(!text.contains(t.as_str()), "{path} shows {t:?}: {body}");
        }
        checked += 1;
    }
    assert_eq!(checked, 6);
    // What clients are meant to see is there.
    let (_, boot) = send(client(&app, &key, "/api/v1/client/bootstrap")).await;
    assert_eq!(boot["worlds"][0]["description"], "shown to players");
    let (_, me) = send(client(&app, &key, "/api/v1/client/me").bearer_auth(&token)).await;
    assert_eq!(me["player"]["id"], json!(user), "the player's own id");
}
