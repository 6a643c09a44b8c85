//! What game clients see of live operations: game-wide maintenance (with its window bounding
//! how long an answer may be cached), notices for their build, and the whitelist letting a
//! player or an address through, on the client routes.

use chrono::{TimeDelta, Utc};
use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde_json::{Value, json};

use crate::common::{TestApp, send};

crate::both_backends!(client_routes_show_game_maintenance_notices_and_the_whitelist);

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn ok(answer: (StatusCode, Value)) -> Value {
    assert!(answer.0.is_success(), "{}: {}", answer.0, answer.1);
    answer.1
}

fn as_client(app: &TestApp, credential: (&str, &str), path: &str) -> RequestBuilder {
    app.anon(Method::GET, path).header(credential.0, credential.1)
}

async fn client_routes_show_game_maintenance_notices_and_the_whitelist(app: TestApp) {
    let key = ok(app.post("/api/v1/client-keys", json!({"name": "game build"})).await).await;
    let key = key["keyValue"].as_str().expect("keyValue").to_owned();
    let by_key = ("X-Client-Key", key.as_str());
    ok(app.post("/api/v1/game-worlds", json!({"worldId": "w1", "name": "One"})).await).await;
    let listed = ok(app.post("/api/v1/users", json!({"username": "tester"})).await).await;
    let listed = listed["id"].as_str().expect("id").to_owned();
    let token = ok(app.post(&format!("/api/v1/users/{listed}/session-token"), json!({})).await).await;
    let bearer = format!("Bearer {}", token["token"].as_str().expect("token"));
    let by_listed = ("Authorization", bearer.as_str());

    // Game-wide maintenance for an hour, and a banner for PC clients.
    let now = app.clock.now();
    let ends = now + TimeDelta::hours(1);
    ok(app
        .put(
            "/api/v1/maintenance",
            json!({"enabled": true, "messages": {"en": "Back soon", "ko": "곧 돌아옵니다"}, "endsAt": iso(ends)}),
        )
        .await)
    .await;
    ok(app
        .post(
            "/api/v1/notices",
            json!({"title": {"en": "Patch 1.2", "ko": "1.2 패치"}, "body": {"en": "New dungeon"}, "kind": "banner",
                   "priority": 5, "channels": ["PC"]}),
        )
        .await)
    .await;

    let resp = as_client(&app, by_key, "/api/v1/client/bootstrap?channel=PC&version=1.0.0&lang=ko")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let max_age: i64 = resp.headers()[header::CACHE_CONTROL]
        .to_str()
        .expect("ascii")
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age=").map(|v| v.parse().expect("seconds")))
        .expect("max-age");
    assert!(max_age <= 3600, "never past the window's end: {max_age}");
    let boot: Value = resp.json().await.expect("json");
    let game = &boot["maintenance"];
    assert_eq!(
        (&game["enabled"], &game["inMaintenance"], &game["bypass"]),
        (&json!(true), &json!(true), &json!(false))
    );
    assert_eq!(game["message"], "곧 돌아옵니다", "{boot}");
    assert_eq!(boot["worlds"][0]["inMaintenance"], true, "the game-wide maintenance closes every world: {boot}");
    let notices = boot["notices"].as_array().expect("notices");
    assert_eq!(notices.len(), 1, "{boot}");
    assert_eq!((&notices[0]["title"], &notices[0]["kind"]), (&json!("1.2 패치"), &json!("banner")));
    // Other channels do not see the PC banner.
    let (_, other) = send(as_client(&app, by_key, "/api/v1/client/bootstrap?channel=Android&version=1.0.0")).await;
    assert_eq!(other["notices"], json!([]), "{other}");

    // The whitelisted player is let through; the same request with the key alone is not.
    ok(app.post("/api/v1/maintenance/whitelist", json!({"playerId": listed})).await).await;
    let (status, boot) = send(as_client(&app, by_listed, "/api/v1/client/bootstrap?lang=en")).await;
    assert_eq!(status, StatusCode::OK, "{boot}");
    let game = &boot["maintenance"];
    assert_eq!((&game["inMaintenance"], &game["bypass"]), (&json!(false), &json!(true)), "{boot}");
    assert_eq!(boot["worlds"][0]["inMaintenance"], false, "{boot}");
    let (_, maintenance) = send(as_client(&app, by_listed, "/api/v1/client/maintenance")).await;
    let game = &maintenance["maintenance"];
    assert_eq!((&game["inMaintenance"], &game["bypass"]), (&json!(false), &json!(true)), "{maintenance}");
    let (_, worlds) = send(as_client(&app, by_listed, "/api/v1/client/game-worlds")).await;
    assert_eq!(worlds["items"][0]["inMaintenance"], false, "{worlds}");
    let (_, worlds) = send(as_client(&app, by_key, "/api/v1/client/game-worlds")).await;
    assert_eq!(worlds["items"][0]["inMaintenance"], true, "not for everyone: {worlds}");
    let (_, me) = send(as_client(&app, by_listed, "/api/v1/client/me")).await;
    assert_eq!((&me["maintenanceApplies"], &me["maintenance"]["bypass"]), (&json!(false), &json!(true)), "{me}");
    let (_, boot) = send(as_client(&app, by_key, "/api/v1/client/bootstrap?lang=en")).await;
    assert_eq!(
        (&boot["maintenance"]["inMaintenance"], &boot["maintenance"]["message"]),
        (&json!(true), &json!("Back soon"))
    );

    // An address range, from a client key.
    ok(app.post("/api/v1/maintenance/whitelist", json!({"ipRange": "127.0.0.0/8"})).await).await;
    let (_, boot) = send(as_client(&app, by_key, "/api/v1/client/bootstrap")).await;
    assert_eq!(boot["maintenance"]["bypass"], true, "the test client connects from 127.0.0.1: {boot}");

    // Switched off: nobody is kept out.
    ok(app.put("/api/v1/maintenance", json!({"enabled": false})).await).await;
    let (_, boot) = send(as_client(&app, by_key, "/api/v1/client/bootstrap")).await;
    assert_eq!(
        (&boot["maintenance"]["enabled"], &boot["maintenance"]["inMaintenance"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(boot["worlds"][0]["inMaintenance"], false, "{boot}");

    // A cached answer does not hide a change: a new notice shows at once.
    ok(app.post("/api/v1/notices", json!({"title": {"en": "Hotfix"}, "priority": 9})).await).await;
    let (_, boot) = send(as_client(&app, by_key, "/api/v1/client/bootstrap")).await;
    assert_eq!(boot["notices"][0]["title"], "Hotfix", "{boot}");
}
