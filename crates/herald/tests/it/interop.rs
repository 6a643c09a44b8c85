//! Herald's deliveries checked by code Herald does not control:
//!
//! - the seeds' own webhook receivers (`tests/interop/node/seeds/`: the Gatrix guide's
//!   `WebhookHandler`, bkend's Express receiver, GroMach's test endpoint, copied as the seeds
//!   write them, and a `player.update` consumer written from Aghanim's page), run with `node`
//!   under `seed-harness.cjs`, each receiving its endpoint's payload format;
//! - the seeds' socket.io client (`tests/interop/node/seed-socket-client.js`, the npm
//!   `socket.io-client`), connected to Herald's gateway;
//! - the Standard Webhooks reference library for Python (`standardwebhooks`, run by
//!   `tests/interop/python/verify_standard.py`).
//!
//! `scripts/test.sh` installs both (scripts/interop.sh) and sets `HERALD_TEST_NODE_DIR` and
//! `HERALD_TEST_PYTHON`. Without them these tests fail, unless `HERALD_TEST_SKIP_INTEROP=1`
//! says to skip them on purpose.

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    common::TestApp,
    receiver::{Received, Receiver},
};

crate::both_backends!(
    gatrix_guide_receiver_runs_its_handlers,
    bkend_receiver_sends_the_welcome_email_and_the_slack_note,
    aghanim_player_update_consumer_updates_known_players_only,
    gromach_endpoint_passes_the_connection_test_and_saves_articles,
    standard_webhooks_library_verifies_deliveries,
    seed_socket_client_receives_events,
);

/// The secret of the seeds' registration example.
const SEED_SECRET: &str = "your-webhook-secret";

/// The value of an interop variable, or `None` when the interop tests are skipped on purpose.
fn interop_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("HERALD_TEST_SKIP_INTEROP").is_ok_and(|v| v == "1") => {
            eprintln!("skipped: HERALD_TEST_SKIP_INTEROP=1");
            None
        }
        _ => panic!(
            "{var} is not set: run the suite with scripts/test.sh, which installs the seeds' Node.js receiver \
             and the Standard Webhooks Python library the interop tests run and sets it (if it did run, its \
             `interop:` lines say what failed), or set HERALD_TEST_SKIP_INTEROP=1 to skip the interop tests \
             on purpose"
        ),
    }
}

async fn hook(app: &TestApp, body: Value) -> Value {
    let (status, w) = app.post("/api/v1/webhooks", body).await;
    assert_eq!(status, StatusCode::CREATED, "{w}");
    w
}

/// Values one JSON line each, for failure messages.
fn show(values: &[Value]) -> String {
    values.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")
}

fn id_of(v: &Value) -> &str {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}"))
}

/// Every delivery to the endpoint with its attempts, once each has at least one attempt and
/// there are `n` of them (the dispatcher records attempts in the background).
pub async fn settled_deliveries(app: &TestApp, webhook_id: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, page) = app.get(&format!("/api/v1/webhooks/{webhook_id}/deliveries")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let mut details = Vec::new();
        for item in page["items"].as_array().expect("items") {
            let (status, d) = app.get(&format!("/api/v1/deliveries/{}", id_of(item))).await;
            assert_eq!(status, StatusCode::OK, "{d}");
            details.push(d);
        }
        let attempted = details.iter().all(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()));
        if details.len() == n && attempted {
            return details;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited for {n} attempted deliveries to {webhook_id}:\n{}",
            show(&details)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A seed's webhook receiver (`tests/interop/node/seeds/`), run unchanged under
/// `seed-harness.cjs`, which gives it a loopback port and records what it does.
struct SeedReceiver {
    url: String,
    node: NodeScript,
}

/// A Node.js script of `tests/interop/node` running beside the test; what it prints to
/// stdout is kept line by line (parsed as JSON where it is JSON).
struct NodeScript {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

/// What a child printed on stdout, one JSON value per line.
pub type Lines = Arc<Mutex<Vec<Value>>>;

/// Reads a child's stdout as JSON lines (a line that is not JSON is kept as a string) and its
/// stderr as text, on two threads, into what the test can inspect while the child runs.
pub fn collect_output(child: &mut std::process::Child) -> (Lines, Arc<Mutex<String>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    let out = child.stdout.take().expect("stdout");
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
            sink.lock().expect("lock").push(value);
        }
    });
    let mut err = child.stderr.take().expect("stderr");
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().expect("lock").push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (lines, stderr)
}

impl NodeScript {
    /// `node <args>` in `dir`.
    fn start(dir: &str, args: &[&str], env: &[(&str, &str)]) -> NodeScript {
        let mut child = Command::new("node")
            .args(args)
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `node {}` in {dir}: {e} (run scripts/test.sh)", args.join(" ")));
        let (lines, stderr) = crate::interop::collect_output(&mut child);
        NodeScript { child, lines, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    fn lines(&self) -> Vec<Value> {
        self.lines.lock().expect("lock").clone()
    }

    /// Waits (up to 20 s) for a printed line that `want` accepts, and returns it.
    async fn wait_line(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| want(l)) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("node exited ({status}) before {what}: {}", self.stderr());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {what} from node; it printed:\n{}\nits stderr: {}",
                show(&self.lines()),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for NodeScript {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SeedReceiver {
    /// Starts `seeds/<file>` with `env`, and waits for its port.
    async fn start(dir: &str, file: &str, env: &[(&str, &str)]) -> SeedReceiver {
        let script = format!("seeds/{file}");
        let mut node = NodeScript::start(dir, &["--require", "./seed-harness.cjs", &script], env);
        let port = node.wait_line("its port", |l| l["listening"].is_u64()).await["listening"].as_u64().expect("port");
        SeedReceiver { url: format!("http://127.0.0.1:{port}"), node }
    }

    /// What the harness recorded under `kind`: `request` ({method, path, status, answer}),
    /// `log` (a console.log call: {log: [args], in: the calling function}) or `call` (an
    /// application function: {call, args}).
    fn records(&self, kind: &str) -> Vec<Value> {
        self.node.lines().into_iter().filter(|l| l.get(kind).is_some()).collect()
    }

    /// Waits until `n` records of `kind` (up to 20 s), and returns them.
    async fn wait_records(&self, kind: &str, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.records(kind);
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} `{kind}` records from the seed receiver; it printed:\n{}\nits stderr: {}",
                show(&self.node.lines()),
                self.node.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The data the seed's handler method `method` logged (`console.log(label, data)`), once.
    fn logged_by(&self, method: &str) -> Value {
        let logs: Vec<Value> = self.records("log").into_iter().filter(|l| l["in"] == method).collect();
        assert_eq!(logs.len(), 1, "one log from {method}; the receiver printed:\n{}", show(&self.node.lines()));
        logs[0]["log"][1].clone()
    }

    /// The arguments of each call of the application function `name`.
    fn calls(&self, name: &str) -> Vec<Value> {
        self.records("call").into_iter().filter(|c| c["call"] == name).map(|c| c["args"].clone()).collect()
    }
}

/// The id of the newest event of `event_type`.
async fn newest_event_id(app: &TestApp, event_type: &str) -> String {
    let (status, page) = app.get(&format!("/api/v1/events?type={event_type}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    id_of(&page["items"][0]).to_owned()
}

/// The Gatrix guide's `WebhookHandler`, unchanged: its `x-gatrix-signature` check (HMAC of
/// `JSON.stringify(req.body)`, compared with `!==`) passes and each of its five handlers runs
/// with the data it is given, for user and world events whose data holds Korean, emoji, quotes,
/// backslashes and newlines (so the re-serialized body must be byte for byte the signed one).
/// An endpoint with another secret at the same receiver is refused with 401, and Herald
/// records it.
async fn gatrix_guide_receiver_runs_its_handlers(app: TestApp) {
    let Some(dir) = interop_env("HERALD_TEST_NODE_DIR") else { return };
    let node = SeedReceiver::start(&dir, "gatrix-webhook-handler.js", &[("WEBHOOK_SECRET", SEED_SECRET)]).await;
    // The guide's own registration, with the format its receiver reads.
    let users = hook(
        &app,
        json!({"url": format!("{}/webhook/users", node.url), "events": ["user.created", "user.updated", "user.deleted"],
               "secret": SEED_SECRET, "active": true, "format": "gatrix"}),
    )
    .await;
    let worlds = hook(
        &app,
        json!({"url": format!("{}/webhook/worlds", node.url),
               "events": ["world.maintenance_started", "world.maintenance_ended"],
               "secret": SEED_SECRET, "active": true, "format": "gatrix"}),
    )
    .await;
    // The negative control: same receiver, another secret.
    let wrong = hook(
        &app,
        json!({"url": format!("{}/webhook/users", node.url), "events": ["user.created"],
               "secret": "not-the-receivers-secret", "format": "gatrix"}),
    )
    .await;

    let display_name = "용사 김철수 🎮";
    let (status, user) = app
        .post(
            "/api/v1/users",
            json!({"username": "hero01", "displayName": display_name, "email": "hero01@example.com",
                   "metadata": {"길드": "달빛 기사단", "level": 42, "titles": ["첫 번째", "\"따옴표\"", "back\\slash"],
                                "bio": "줄 하나\n줄 둘\t탭", "premium": true, "referrer": null, "</script>": "<&>"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let user_id = id_of(&user).to_string();
    let created_id = newest_event_id(&app, "user.created").await;
    let (status, world) = app
        .post("/api/v1/game-worlds", json!({"worldId": "main-1", "name": "메인 월드", "description": "첫 번째 서버"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{world}");
    let maintenance = format!("/api/v1/game-worlds/{}/maintenance", id_of(&world));
    let message = "서버 점검 중입니다.\n잠시 후 다시 접속해 주세요.";
    let (status, body) = app
        .put(
            &maintenance,
            json!({"enabled": true, "message": message,
                   "messages": {"ko": message, "en": "Maintenance: \"back soon\"", "ja": "メンテナンス中"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.patch(&format!("/api/v1/users/{user_id}"), json!({"displayName": "용사 박영희"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.put(&maintenance, json!({"enabled": false})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.delete(&format!("/api/v1/users/{user_id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Five events for the right secret, one for the wrong one.
    let requests = node.wait_records("request", 6).await;
    let statuses: Vec<&Value> = requests.iter().map(|r| &r["request"]["status"]).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{}", show(&requests));
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 1, "{}", show(&requests));

    // Each handler ran, with what the guide's handlers read.
    let created = node.logged_by("WebhookHandler.handleUserCreated");
    assert_eq!(created["userId"], user_id.as_str());
    assert_eq!(created["user"]["displayName"], display_name);
    assert_eq!(created["user"]["metadata"]["길드"], "달빛 기사단");
    assert_eq!(created["user"]["metadata"]["bio"], "줄 하나\n줄 둘\t탭");
    assert_eq!(node.logged_by("WebhookHandler.handleUserUpdated")["user"]["displayName"], "용사 박영희");
    assert_eq!(node.logged_by("WebhookHandler.handleUserDeleted")["userId"], user_id.as_str());
    let started = node.logged_by("WebhookHandler.handleWorldMaintenanceStarted");
    assert_eq!(started["worldId"], "main-1");
    assert_eq!(started["world"]["name"], "메인 월드");
    assert_eq!(started["maintenanceMessage"], message);
    assert_eq!(started["maintenanceMessages"]["ja"], "メンテナンス中");
    assert_eq!(node.logged_by("WebhookHandler.handleWorldMaintenanceEnded")["worldId"], "main-1");

    // Herald's view: the receiver's answers, recorded per attempt.
    for (w, n) in [(&users, 3), (&worlds, 2)] {
        for d in settled_deliveries(&app, id_of(w), n).await {
            assert_eq!(d["status"], "succeeded", "{d}");
            assert_eq!(d["attempts"][0]["statusCode"], 200, "{d}");
            assert_eq!(d["attempts"][0]["responseBody"], r#"{"received":true}"#, "{d}");
        }
    }
    let refused = settled_deliveries(&app, id_of(&wrong), 1).await.remove(0);
    assert_eq!(refused["eventId"], created_id.as_str());
    assert_eq!(refused["status"], "pending", "a 401 is retried later: {refused}");
    assert_eq!(refused["attempts"][0]["statusCode"], 401, "{refused}");
    assert_eq!(refused["attempts"][0]["responseBody"], r#"{"error":"Invalid signature"}"#, "{refused}");
    // Every attempt Herald recorded is one the receiver answered: nothing else arrived.
    assert_eq!(node.records("request").len(), 6, "nothing else arrived:\n{}", show(&node.records("request")));
}

/// bkend's Express receiver, unchanged: `user.created` sends the welcome email to
/// `event.payload.email`, `order.completed` posts `event.aggregateId` to Slack.
async fn bkend_receiver_sends_the_welcome_email_and_the_slack_note(app: TestApp) {
    let Some(dir) = interop_env("HERALD_TEST_NODE_DIR") else { return };
    let node = SeedReceiver::start(&dir, "bkend-receiver.mjs", &[]).await;
    let w = hook(
        &app,
        json!({"url": format!("{}/webhook", node.url), "events": ["user.created", "order.completed"], "format": "bkend"}),
    )
    .await;
    let (status, user) = app.post("/api/v1/users", json!({"username": "newbie", "email": "new@example.com"})).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (status, body) = app.post("/api/v1/event-types", json!({"name": "order.completed"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post(
            "/api/v1/events",
            json!({"type": "order.completed", "data": {"total": 12000, "currency": "KRW"},
                   "resource": {"type": "order", "id": "order-1001"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    node.wait_records("call", 2).await;
    assert_eq!(node.calls("sendWelcomeEmail"), [json!(["new@example.com"])]);
    let slack = node.calls("notifySlack");
    assert_eq!(slack.len(), 1, "{slack:?}");
    assert!(slack[0][0].as_str().is_some_and(|m| m.ends_with(": order-1001")), "{slack:?}");
    // Its logs name the aggregate of each event.
    let logs: Vec<String> =
        node.records("log").iter().filter_map(|l| l["log"][0].as_str().map(str::to_owned)).collect();
    let user_id = id_of(&user);
    assert!(logs.iter().any(|l| l.ends_with(&format!("User ({user_id})"))), "{logs:?}");
    assert!(logs.iter().any(|l| l.ends_with("Order (order-1001)")), "{logs:?}");
    for d in settled_deliveries(&app, id_of(&w), 2).await {
        assert_eq!(d["status"], "succeeded", "{d}");
    }
}

/// A `player.update` consumer written from Aghanim's page: it verifies `X-Aghanim-Signature`,
/// reads `event_type`, `event_data.player_id`, `event_time`, `event_id`, `game_id`, and updates
/// a known player; an unknown one is answered 200 `{"status":"error","code":"not_found"}`,
/// which ends Herald's delivery as failed without retries.
async fn aghanim_player_update_consumer_updates_known_players_only(app: TestApp) {
    let Some(dir) = interop_env("HERALD_TEST_NODE_DIR") else { return };
    let (_, known) = app.post("/api/v1/users", json!({"username": "known", "email": "old@example.com"})).await;
    let (_, stranger) = app.post("/api/v1/users", json!({"username": "stranger"})).await;
    let (known_id, stranger_id) = (id_of(&known).to_owned(), id_of(&stranger).to_owned());
    let secret = "aghanim-secret-1";
    let env = [("AGHANIM_WEBHOOK_SECRET", secret), ("KNOWN_PLAYERS", known_id.as_str())];
    let node = SeedReceiver::start(&dir, "aghanim-player-update.js", &env).await;
    let w = hook(
        &app,
        json!({"url": format!("{}/aghanim/webhook", node.url), "events": ["player.update"],
               "format": "aghanim", "secret": secret}),
    )
    .await;

    let (status, body) = app
        .patch(&format!("/api/v1/users/{known_id}"), json!({"email": "new@example.com", "displayName": "Known One"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let updated = node.wait_records("call", 2).await;
    let update = node.calls("updatePlayer");
    assert_eq!(update.len(), 1, "{}", show(&updated));
    assert_eq!(update[0][0], known_id.as_str());
    let profile = &update[0][1];
    assert_eq!((&profile["email"], &profile["name"]), (&json!("new@example.com"), &json!("Known One")));
    assert_eq!(profile["eventId"], newest_event_id(&app, "player.update").await.as_str());
    assert_eq!(profile["gameId"], app.project_id.as_str());
    assert!(profile["updatedAt"].as_str().is_some_and(|t| t.ends_with(".000Z")), "from unix seconds: {profile}");
    assert!(profile["userAgent"].as_str().is_some_and(|a| a.starts_with("Aghanim/0.1.0")), "{profile}");
    assert!(profile["signedAt"].as_i64().is_some_and(|t| (t - chrono::Utc::now().timestamp()).abs() < 600));
    let ok = settled_deliveries(&app, id_of(&w), 1).await.remove(0);
    assert_eq!(ok["status"], "succeeded", "{ok}");
    assert_eq!(ok["attempts"][0]["responseBody"], r#"{"status":"ok"}"#);

    // An unknown player: the consumer's not_found ends the delivery.
    let (status, body) = app.patch(&format!("/api/v1/users/{stranger_id}"), json!({"email": "x@example.com"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deliveries = settled_deliveries(&app, id_of(&w), 2).await;
    let failed = deliveries.iter().find(|d| d["status"] != "succeeded").expect("the stranger's delivery");
    assert_eq!(failed["status"], "failed", "not_found is not retried: {failed}");
    assert!(failed["nextAttemptAt"].is_null(), "{failed}");
    assert!(failed["lastError"].as_str().is_some_and(|e| e.contains("not_found")), "{failed}");
    assert_eq!(node.calls("findPlayer").last(), Some(&json!([stranger_id])));
    assert_eq!(node.calls("updatePlayer").len(), 1, "the stranger was not updated");
}

/// GroMach's complete test endpoint, unchanged but for its "save to your database" line: the
/// connection test passes (its `event_type === 'test'` branch answers `{"success": true}`),
/// and a `publish_articles` event reaches its articles branch with the articles. A wrong
/// secret fails the connection test with its 401.
async fn gromach_endpoint_passes_the_connection_test_and_saves_articles(app: TestApp) {
    let Some(dir) = interop_env("HERALD_TEST_NODE_DIR") else { return };
    let secret = "gromach-secret-1";
    let node = SeedReceiver::start(&dir, "gromach-endpoint.js", &[("SEED_APP", "1"), ("WEBHOOK_SECRET", secret)]).await;
    let w = hook(
        &app,
        json!({"url": format!("{}/webhook", node.url), "events": ["publish_articles"], "format": "gromach",
               "name": "My Webhook", "secret": secret}),
    )
    .await;
    let (status, test) = app.post(&format!("/api/v1/webhooks/{}/test", id_of(&w)), json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{test}");
    assert_eq!((&test["success"], &test["receiverSuccess"]), (&json!(true), &json!(true)), "{test}");

    let articles = json!([{"id": "article-uuid-123", "slug": "patch-1-2", "title": "1.2 패치 노트",
                           "excerpt": "새 던전과 \"전설\" 무기", "content_format": "markdown",
                           "content": "# 1.2\n- 새 던전", "status": "published",
                           "published_at": "2024-01-15T10:30:00.000Z", "author_name": "Admin",
                           "cover_image": null, "meta_title": "1.2", "meta_description": "패치",
                           "tags": ["patch", "notes"]}]);
    let (status, body) = app.post("/api/v1/event-types", json!({"name": "publish_articles"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) =
        app.post("/api/v1/events", json!({"type": "publish_articles", "data": {"articles": articles}})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    node.wait_records("call", 1).await;
    assert_eq!(node.calls("saveArticles"), [json!([articles])]);
    // The connection test is in the delivery log beside the article event.
    for d in settled_deliveries(&app, id_of(&w), 2).await {
        assert_eq!(d["status"], "succeeded", "{d}");
    }

    // The negative control: another secret fails the connection test.
    let wrong = hook(
        &app,
        json!({"url": format!("{}/webhook", node.url), "events": ["publish_articles"], "format": "gromach",
               "secret": "not-the-receivers-secret"}),
    )
    .await;
    let (_, test) = app.post(&format!("/api/v1/webhooks/{}/test", id_of(&wrong)), json!(null)).await;
    assert_eq!((&test["success"], &test["statusCode"]), (&json!(false), &json!(401)), "{test}");
}

/// Runs tests/interop/python/verify_standard.py on `cases`; returns its results in order.
async fn verify_with_library(python: String, cases: Vec<Value>) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/interop/python/verify_standard.py");
    let input = serde_json::to_vec(&json!({"cases": cases})).expect("json");
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} (HERALD_TEST_PYTHON): {e} (run scripts/test.sh)"));
        child.stdin.take().expect("stdin").write_all(&input).expect("write cases");
        child.wait_with_output().expect("python ran")
    })
    .await
    .expect("join");
    assert!(output.status.success(), "verify_standard.py failed: {}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_slice(&output.stdout).expect("verify_standard.py prints JSON");
    out["results"].as_array().expect("results").clone()
}

/// A verification case for the Python script: a captured request and a secret.
fn case(name: &str, secret: &str, req: &Received, body: &[u8]) -> Value {
    let headers: serde_json::Map<String, Value> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), Value::String(v.to_str().expect("ASCII header").to_string())))
        .collect();
    json!({"name": name, "secret": secret, "body_b64": STANDARD.encode(body), "headers": headers})
}

/// The Standard Webhooks reference library verifies Herald's `webhook-*` headers: for a
/// generated `whsec_` secret, for a plain secret given as `standardSecret`, with either secret
/// during a rotation (two signatures in the header), and it refuses a tampered body or the
/// wrong secret.
async fn standard_webhooks_library_verifies_deliveries(app: TestApp) {
    let Some(python) = interop_env("HERALD_TEST_PYTHON") else { return };
    let rx = Receiver::start().await;
    let generated = hook(&app, json!({"url": format!("{}/generated", rx.url), "events": ["user.created"]})).await;
    let plain =
        hook(&app, json!({"url": format!("{}/plain", rx.url), "events": ["user.created"], "secret": SEED_SECRET}))
            .await;
    let (gid, pid) = (id_of(&generated).to_string(), id_of(&plain).to_string());
    let old_generated = generated["secret"].as_str().expect("generated secret").to_string();
    assert!(old_generated.starts_with("whsec_"), "{old_generated}");
    let (status, s) = app.get(&format!("/api/v1/webhooks/{gid}/secret")).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["standardSecret"], old_generated.as_str(), "a whsec_ secret is already in the standard form");
    let (_, s) = app.get(&format!("/api/v1/webhooks/{pid}/secret")).await;
    assert_eq!(s["secret"], SEED_SECRET);
    let plain_standard = s["standardSecret"].as_str().expect("standardSecret").to_string();
    assert_eq!(plain_standard, herald_webhooks::standard_secret(SEED_SECRET));
    assert_eq!(plain_standard, format!("whsec_{}", STANDARD.encode(SEED_SECRET)));

    let (status, body) =
        app.post("/api/v1/users", json!({"username": "std01", "displayName": "메인 월드의 용사 🎮"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let first = rx.wait_for(2).await;
    let at = |got: &[Received], path: &str| got.iter().find(|r| r.path == path).expect(path).clone();
    let (g1, p1) = (at(&first, "/generated"), at(&first, "/plain"));
    let tampered = String::from_utf8(g1.body.to_vec()).expect("UTF-8").replace("메인 월드", "다른 월드");
    assert_ne!(tampered.as_bytes(), &g1.body[..]);

    // Rotation: a generated new secret for one endpoint, a chosen plain one for the other.
    let (status, rotated) = app.post(&format!("/api/v1/webhooks/{gid}/secret/rotate"), json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["previousSecret"], old_generated.as_str());
    let new_generated = rotated["secret"].as_str().expect("secret").to_string();
    let new_plain = "the-new-webhook-secret";
    let (status, rotated) =
        app.post(&format!("/api/v1/webhooks/{pid}/secret/rotate"), json!({"secret": new_plain})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["previousSecret"], SEED_SECRET);
    let (_, s) = app.get(&format!("/api/v1/webhooks/{pid}/secret")).await;
    let new_plain_standard = s["standardSecret"].as_str().expect("standardSecret").to_string();
    assert_eq!(new_plain_standard, herald_webhooks::standard_secret(new_plain));
    let (status, body) = app.post("/api/v1/users", json!({"username": "std02", "displayName": "회전 중"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second = rx.wait_for(4).await[2..].to_vec();
    let (g2, p2) = (at(&second, "/generated"), at(&second, "/plain"));
    for req in [&g2, &p2] {
        let sig = req.header("webhook-signature");
        assert_eq!(sig.split(' ').count(), 2, "one signature per secret during the rotation: {sig}");
    }

    let cases = vec![
        case("generated", &old_generated, &g1, &g1.body),
        case("plain as standardSecret", &plain_standard, &p1, &p1.body),
        case("rotation, old generated", &old_generated, &g2, &g2.body),
        case("rotation, new generated", &new_generated, &g2, &g2.body),
        case("rotation, old plain", &herald_webhooks::standard_secret(SEED_SECRET), &p2, &p2.body),
        case("rotation, new plain", &new_plain_standard, &p2, &p2.body),
        // Negative controls.
        case("tampered body", &old_generated, &g1, tampered.as_bytes()),
        case("another endpoint's secret", &old_generated, &p1, &p1.body),
        case("after rotation, neither secret", &herald_webhooks::generate_secret(), &g2, &g2.body),
    ];
    let results = verify_with_library(python, cases).await;
    assert_eq!(results.len(), 9, "{}", show(&results));
    let (valid, invalid) = results.split_at(6);
    for (r, req) in valid.iter().zip([&g1, &p1, &g2, &g2, &p2, &p2]) {
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["payload"], req.json(), "the library hands back the body Herald sent: {r}");
    }
    for r in invalid {
        assert_eq!(r["verified"], false, "{r}");
        // Refused for the signature, not for a broken case or a stale timestamp.
        assert_eq!(r["error_type"], "WebhookVerificationError", "{r}");
        assert_eq!(r["error"], "No matching signature found", "{r}");
    }
    assert_eq!(valid[0]["payload"]["data"]["displayName"], "메인 월드의 용사 🎮");
}

/// The seeds' socket.io client, unchanged, on the npm `socket.io-client`: connects with a key
/// as its token, and its handlers get what they read (`data.user`, `data.userId`,
/// `data.worldId`) after `POST /users`, a sign-in and the maintenance toggle. A bad token is
/// refused in `connect_error`.
async fn seed_socket_client_receives_events(app: TestApp) {
    let Some(dir) = interop_env("HERALD_TEST_NODE_DIR") else { return };
    let mut client = NodeScript::start(&dir, &["seed-socket-client.js", &app.base, &app.key], &[]);
    client.wait_line("connect", |l| l["event"] == "connect").await;

    let (status, user) = app.post("/api/v1/users", json!({"username": "seeded", "email": "s@example.com"})).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let welcomed = client.wait_line("sendWelcomeEmail", |l| l["call"] == "sendWelcomeEmail").await;
    assert_eq!(welcomed["args"][0]["username"], "seeded");
    assert_eq!(welcomed["args"][0]["email"], "s@example.com");
    let analytics = client.wait_line("updateAnalytics", |l| l["call"] == "updateAnalytics").await;
    assert_eq!(analytics["args"][1]["type"], "user.created");

    let id = user["id"].as_str().expect("id");
    let (status, _) = app.post(&format!("/api/v1/users/{id}/login"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let activity = client.wait_line("updateUserActivity", |l| l["call"] == "updateUserActivity").await;
    assert_eq!(activity["args"][0], id);

    let (status, world) = app.post("/api/v1/game-worlds", json!({"worldId": "seed-1", "name": "Seed"})).await;
    assert_eq!(status, StatusCode::CREATED, "{world}");
    let path = format!("/api/v1/game-worlds/{}/maintenance", world["id"].as_str().expect("id"));
    app.put(&path, json!({"enabled": true, "message": "patch"})).await;
    let status = client.wait_line("maintenance", |l| l["args"][1] == "maintenance").await;
    assert_eq!(status["args"][0], "seed-1");
    app.put(&path, json!({"enabled": false})).await;
    let status = client.wait_line("maintenance end", |l| l["args"][1] == "active").await;
    assert_eq!(status["args"][0], "seed-1");
    assert!(client.lines().iter().all(|l| l["event"] != "disconnect"), "{}", show(&client.lines()));

    let mut refused = NodeScript::start(&dir, &["seed-socket-client.js", &app.base, "not-a-token"], &[]);
    let error = refused.wait_line("connect_error", |l| l["event"] == "connect_error").await;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("invalid")), "{error}");
    assert!(refused.lines().iter().all(|l| l["event"] != "connect"), "{}", show(&refused.lines()));
}
