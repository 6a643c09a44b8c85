//! The example webhook receivers of `examples/` run against a real Herald server, as a user
//! would run them (README.md of each): `examples/webhook-receiver-node/server.js` under `node`
//! and `examples/webhook-receiver-python/receiver.py` under `HERALD_TEST_PYTHON` (or plain
//! `python3`: it needs only the standard library).
//!
//! Each receiver prints `{"listening":PORT}` and then one `{"event":{...}}` line per verified,
//! new event to stdout; the tests read those lines. They check that the receiver accepts
//! Herald's deliveries (a published event and a resource change), acknowledges a replayed
//! event without handling it twice, and answers 401, not 500, to requests that are not
//! genuine: a tampered body or signature, a signature of the wrong length, a stale timestamp.
//! WEBHOOKS.md quotes the receivers' verification code; the last test checks that the quote
//! is the code.

use std::{
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use reqwest::{StatusCode, header::HeaderValue};
use serde_json::{Value, json};

use crate::common::TestApp;

crate::both_backends!(node_example_receiver_verifies_deliveries, python_example_receiver_verifies_deliveries);

/// The repository root (the examples and docs live there).
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// One example receiver, running beside the test on a free loopback port.
struct Example {
    name: &'static str,
    child: Child,
    url: String,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl Example {
    /// Starts `program script` with the endpoint's secret, as the example's README says, and
    /// waits for its `{"listening":PORT}` line.
    async fn start(name: &'static str, program: &str, script: &str, secret: &str) -> Example {
        let path = format!("{ROOT}/{script}");
        let mut child = Command::new(program)
            .arg(&path)
            .env("WEBHOOK_SECRET", secret)
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{program} {path}`: {e} (scripts/test.sh installs node)"));
        let (lines, stderr) = crate::interop::collect_output(&mut child);
        let mut example = Example { name, child, url: String::new(), lines, stderr };
        let port =
            example.wait_lines("its {\"listening\":PORT} line", |l| l["listening"].is_u64()).await[0]["listening"]
                .as_u64()
                .expect("port");
        example.url = format!("http://127.0.0.1:{port}/webhook");
        example
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// The events it handled, in order: the `event` of its `{"event":{...}}` lines.
    fn events(&self) -> Vec<Value> {
        self.lines.lock().expect("lock").iter().filter_map(|l| l.get("event")).cloned().collect()
    }

    /// Panics if the receiver is no longer running (a crash on a bad request).
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the {} receiver exited ({status}); its stderr:\n{}", self.name, self.stderr());
        }
    }

    /// Waits (up to 20 s) until the lines `want` accepts are at least one, and returns them.
    async fn wait_lines(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let found: Vec<Value> = self.lines.lock().expect("lock").iter().filter(|l| want(l)).cloned().collect();
            if !found.is_empty() {
                return found;
            }
            self.assert_running();
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {what} from the {} receiver; stdout: {:?}; stderr:\n{}",
                self.name,
                self.lines.lock().expect("lock"),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until it handled `n` events, and returns them.
    async fn wait_events(&mut self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.events().len() < n {
            self.assert_running();
            assert!(
                tokio::time::Instant::now() < deadline,
                "the {} receiver handled {:?}, expected {n} events; stdout: {:?}; stderr:\n{}",
                self.name,
                self.events(),
                self.lines.lock().expect("lock"),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.events()
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A request to the receiver as Herald would send it, with headers the test may spoil.
struct Delivery {
    id: String,
    timestamp: String,
    signature: HeaderValue,
    body: Vec<u8>,
}

impl Delivery {
    /// A genuine delivery of a new event, signed with `secret` now.
    fn signed(secret: &str, data: Value) -> Delivery {
        let id = uuid::Uuid::now_v7().to_string();
        let body = serde_json::to_vec(&json!({"id": id, "type": "order.completed", "event": "order.completed",
                                             "data": data}))
        .expect("json");
        let timestamp = unix_now();
        let signature = herald_webhooks::sign_standard(secret, &id, timestamp, &body).expect("sign");
        Delivery {
            id,
            timestamp: timestamp.to_string(),
            signature: HeaderValue::from_str(&signature).expect("ascii"),
            body,
        }
    }

    fn resign(mut self, secret: &str) -> Delivery {
        let ts: i64 = self.timestamp.parse().expect("timestamp");
        let signature = herald_webhooks::sign_standard(secret, &self.id, ts, &self.body).expect("sign");
        self.signature = HeaderValue::from_str(&signature).expect("ascii");
        self
    }

    /// Sends it to `rx`; returns the answer's status and JSON body.
    async fn send(&self, rx: &Example) -> (StatusCode, Value) {
        let resp = reqwest::Client::new()
            .post(&rx.url)
            .header("content-type", "application/json")
            .header("webhook-id", &self.id)
            .header("webhook-timestamp", &self.timestamp)
            .header("webhook-signature", self.signature.clone())
            .body(self.body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("the {} receiver did not answer ({e}); its stderr:\n{}", rx.name, rx.stderr()));
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())),
        )
    }
}

/// The user's path with one example receiver: registered with Herald for a custom event and a
/// resource change, it handles both once Herald signed them with the endpoint's secret, and
/// Herald's delivery log shows its 200s. A replay of both events is acknowledged (200,
/// `duplicate`) and not handled again. An endpoint with another secret at the same receiver
/// is answered 401. Then requests from the test: each way of spoiling a genuine delivery gets
/// 401 with a reason (never a 500 or a crash), and a genuine one, or one signed by both secrets
/// of a rotation, is handled.
async fn exercise(app: TestApp, mut rx: Example, secret: &str) {
    let hook = |body: Value| {
        let app = &app;
        async move {
            let (status, w) = app.post("/api/v1/webhooks", body).await;
            assert_eq!(status, StatusCode::CREATED, "{w}");
            w["id"].as_str().expect("id").to_string()
        }
    };
    let wid = hook(json!({"url": rx.url, "events": ["user.created", "order.completed"], "secret": secret})).await;
    let wrong_secret = herald_webhooks::generate_secret();
    let wrong = hook(json!({"url": rx.url, "events": ["user.created"], "secret": wrong_secret})).await;

    let (status, body) = app.post("/api/v1/event-types", json!({"name": "order.completed"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Non-ASCII text, quotes and a newline: the receiver must verify the raw bytes.
    let data = json!({"orderId": "o-1", "note": "용사의 \"검\" 🎮\n2개", "amount": 1.5});
    let (status, published) = app.post("/api/v1/events", json!({"type": "order.completed", "data": data})).await;
    assert_eq!(status, StatusCode::CREATED, "{published}");
    let (status, user) = app.post("/api/v1/users", json!({"username": "receiver01", "displayName": "메인 월드"})).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");

    let handled = rx.wait_events(2).await;
    let of_type = |t: &str| -> Value {
        let found: Vec<&Value> = handled.iter().filter(|e| e["type"] == t).collect();
        assert_eq!(found.len(), 1, "one {t} handled by the {} receiver: {handled:?}", rx.name);
        found[0].clone()
    };
    let order = of_type("order.completed");
    assert_eq!(order["id"], published["id"]);
    assert_eq!(order["data"], data);
    let created = of_type("user.created");
    assert_eq!(created["data"]["id"], user["id"]);
    assert_eq!(created["data"]["displayName"], "메인 월드");

    // Herald's view: each delivery answered 200 by the receiver.
    for d in crate::interop::settled_deliveries(&app, &wid, 2).await {
        assert_eq!(d["status"], "succeeded", "{d}");
        assert_eq!(d["attempts"][0]["statusCode"], 200, "{d}");
        assert_eq!(d["attempts"][0]["responseBody"], r#"{"received":true}"#, "{d}");
    }
    // The same receiver refuses the endpoint whose secret it does not hold; Herald retries it.
    let refused = crate::interop::settled_deliveries(&app, &wrong, 1).await.remove(0);
    assert_eq!(refused["eventId"], created["id"], "{refused}");
    assert_eq!(refused["status"], "pending", "{refused}");
    assert_eq!(refused["attempts"][0]["statusCode"], 401, "{refused}");
    assert_eq!(refused["attempts"][0]["responseBody"], r#"{"error":"no signature matches"}"#, "{refused}");

    // A replay sends both events again, with their ids: acknowledged, not handled twice.
    let since = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).to_rfc3339();
    let (status, body) = app.post(&format!("/api/v1/webhooks/{wid}/replay"), json!({"since": since})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["queued"], 2, "{body}");
    let all = crate::interop::settled_deliveries(&app, &wid, 4).await;
    let duplicates: Vec<&Value> =
        all.iter().filter(|d| d["attempts"][0]["responseBody"] == r#"{"received":true,"duplicate":true}"#).collect();
    assert_eq!(duplicates.len(), 2, "the replayed deliveries are acknowledged as repeats: {all:?}");
    for d in duplicates {
        assert_eq!((d["status"].clone(), d["attempts"][0]["statusCode"].clone()), (json!("succeeded"), json!(200)));
    }
    assert_eq!(rx.events().len(), 2, "a repeat is not handled again: {:?}", rx.events());

    // Requests from the test. A genuine one first: the test signs as Herald does.
    let genuine = Delivery::signed(secret, json!({"orderId": "direct-1"}));
    let (status, body) = genuine.send(&rx).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"received": true})));
    let (status, body) = genuine.send(&rx).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"received": true, "duplicate": true})));

    let spoiled = |change: &dyn Fn(&mut Delivery)| {
        let mut d = Delivery::signed(secret, json!({"orderId": "spoiled"}));
        change(&mut d);
        d
    };
    let flip_first_sig_char = |d: &mut Delivery| {
        let mut s = d.signature.to_str().expect("ascii").to_string();
        // The first character after `v1,`: six bits of the HMAC itself.
        let flipped = if s.as_bytes()[3] == b'A' { "B" } else { "A" };
        s.replace_range(3..4, flipped);
        d.signature = HeaderValue::from_str(&s).expect("ascii");
    };
    let same_chars_other_bytes = |d: &mut Delivery| {
        // As many characters as a real signature, but not ASCII: more bytes than it.
        let n = d.signature.len();
        d.signature = HeaderValue::from_bytes(&vec![0xE9; n]).expect("obs-text");
    };
    let cases: Vec<(&str, Delivery, &str)> = vec![
        (
            "a tampered body",
            spoiled(&|d| d.body = String::from_utf8_lossy(&d.body).replace("spoiled", "SPOILED").into_bytes()),
            "no signature matches",
        ),
        ("a tampered signature", spoiled(&flip_first_sig_char), "no signature matches"),
        (
            "a signature of the wrong length",
            spoiled(&|d| d.signature = HeaderValue::from_static("v1,abc")),
            "no signature matches",
        ),
        (
            "a signature that is not base64, of a real one's length",
            spoiled(&|d| {
                let n = d.signature.len() - 3;
                d.signature = HeaderValue::from_str(&format!("v1,{}", "!".repeat(n))).expect("ascii");
            }),
            "no signature matches",
        ),
        ("a signature of non-ASCII bytes", spoiled(&same_chars_other_bytes), "no signature matches"),
        ("the signature for another secret", spoiled(&|_| {}).resign(&wrong_secret), "no signature matches"),
        ("an empty signature", spoiled(&|d| d.signature = HeaderValue::from_static("")), "missing"),
        (
            "a stale timestamp (10 minutes ago), correctly signed",
            {
                let mut d = spoiled(&|_| {});
                d.timestamp = (unix_now() - 600).to_string();
                d.resign(secret)
            },
            "5 minutes",
        ),
        (
            "a timestamp 10 minutes ahead, correctly signed",
            {
                let mut d = spoiled(&|_| {});
                d.timestamp = (unix_now() + 600).to_string();
                d.resign(secret)
            },
            "5 minutes",
        ),
        (
            "a timestamp that is not unix seconds",
            spoiled(&|d| d.timestamp = "2026-11-30T10:00:00Z".into()),
            "unix seconds",
        ),
    ];
    for (what, delivery, reason) in cases {
        let (status, body) = delivery.send(&rx).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} is refused with 401 by the {} receiver: {body}", rx.name);
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{what}: {{\"error\": ...}}, got {body}"));
        assert!(error.contains(reason), "{what}: the error says why ({reason}): {error}");
        rx.assert_running();
    }
    // Missing headers altogether.
    let resp = reqwest::Client::new().post(&rx.url).body(genuine.body.clone()).send().await.expect("answers");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // During a rotation Herald sends one signature per secret; one match is enough.
    let mut rotated = Delivery::signed(secret, json!({"orderId": "direct-2"}));
    let ts: i64 = rotated.timestamp.parse().expect("ts");
    let other = herald_webhooks::sign_standard(&wrong_secret, &rotated.id, ts, &rotated.body).expect("sign");
    let both = format!("{other} {}", rotated.signature.to_str().expect("ascii"));
    rotated.signature = HeaderValue::from_str(&both).expect("ascii");
    let (status, body) = rotated.send(&rx).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"received": true})));

    let handled = rx.wait_events(4).await;
    let direct: Vec<&Value> = handled[2..].iter().map(|e| &e["data"]["orderId"]).collect();
    assert_eq!(direct, [&json!("direct-1"), &json!("direct-2")], "only the genuine requests were handled: {handled:?}");
    rx.assert_running();
}

/// `examples/webhook-receiver-node/server.js`, under `node`, with a `whsec_` secret such as
/// Herald generates.
async fn node_example_receiver_verifies_deliveries(app: TestApp) {
    let secret = herald_webhooks::generate_secret();
    let rx = Example::start("Node.js", "node", "examples/webhook-receiver-node/server.js", &secret).await;
    exercise(app, rx, &secret).await;
}

/// `examples/webhook-receiver-python/receiver.py`, with a secret chosen at registration (no
/// `whsec_` prefix: its UTF-8 bytes are the key).
async fn python_example_receiver_verifies_deliveries(app: TestApp) {
    let python = std::env::var("HERALD_TEST_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or("python3".into());
    let secret = "a-secret-the-studio-chose";
    let rx = Example::start("Python", &python, "examples/webhook-receiver-python/receiver.py", secret).await;
    exercise(app, rx, secret).await;
}

/// WEBHOOKS.md's verification snippets that name an example file (`// examples/...` or
/// `# examples/...` as their first line) are that file's code, verbatim: the tested code is the
/// documented code.
#[test]
fn webhooks_md_quotes_the_examples_verbatim() {
    let doc = std::fs::read_to_string(format!("{ROOT}/docs/WEBHOOKS.md")).expect("WEBHOOKS.md");
    let mut quoted = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in doc.lines() {
        match (&mut block, line.starts_with("```")) {
            (None, true) => block = Some(Vec::new()),
            (Some(lines), true) => {
                if let Some(first) = lines.first()
                    && let Some(path) = first.strip_prefix("// ").or_else(|| first.strip_prefix("# "))
                    && path.starts_with("examples/")
                {
                    quoted.push((path.to_string(), lines[1..].join("\n")));
                }
                block = None;
            }
            (Some(lines), false) => lines.push(line),
            (None, false) => {}
        }
    }
    let paths: Vec<&str> = quoted.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["examples/webhook-receiver-node/server.js", "examples/webhook-receiver-python/receiver.py"],
        "WEBHOOKS.md quotes both examples"
    );
    for (path, code) in quoted {
        let file = std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(code.lines().count() > 10, "{path}: the quote is the verification code");
        assert!(file.contains(&code), "WEBHOOKS.md's quote of {path} is not in that file, as is:\n{code}");
    }
}

/// The Swagger page's description (`info.description` of `/openapi.json`) names the guides,
/// and every `docs/...` or `examples/...` path it names exists in the source tree.
#[test]
fn the_swagger_page_names_the_docs_that_exist() {
    let description = crate::openapi::spec()["info"]["description"].as_str().expect("info.description").to_string();
    for guide in ["docs/API.md", "docs/WEBHOOKS.md", "docs/CHAT.md", "docs/REALTIME.md", "README.md"] {
        assert!(description.contains(guide), "the description names {guide}:\n{description}");
    }
    let named: Vec<&str> = description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|code| code.starts_with("docs/") || code.starts_with("examples/"))
        .collect();
    assert!(named.len() >= 7, "{named:?}");
    for path in named {
        assert!(
            std::path::Path::new(&format!("{ROOT}/{path}")).exists(),
            "the description names {path}, which does not exist"
        );
    }
}

/// GAME-CLIENTS.md's JavaScript example, as printed, run under `node` against a real server
/// (the only changes: its two constants get this server's address and a real client key).
/// The browser's globals it uses (`localStorage`, `navigator`, `location`) and the game's
/// own `showWorlds`/`showMaintenance` are provided by a prelude that prints what they get.
/// Three starts: the worlds are shown; a restart revalidates its stored copy (304) and shows
/// them again; once the game is in maintenance, the message is shown in the player's language.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn game_clients_javascript_example_runs_as_printed() {
    let app = TestApp::spawn(crate::common::Backend::Sqlite).await.expect("app");
    let doc = std::fs::read_to_string(format!("{ROOT}/docs/GAME-CLIENTS.md")).expect("GAME-CLIENTS.md");
    let example = doc.split("```js\n").nth(1).and_then(|rest| rest.split("\n```").next()).expect("a ```js block");
    let (status, key) = app.post("/api/v1/client-keys", json!({"name": "web build"})).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let key = key["keyValue"].as_str().expect("keyValue");
    let mut script = String::new();
    for (printed, ours) in [
        (r#"const HERALD = "https://herald.example.com";"#, format!("const HERALD = {:?};", app.base)),
        (r#"const CLIENT_KEY = "hc_...";"#, format!("const CLIENT_KEY = {key:?};")),
    ] {
        assert!(example.contains(printed), "the example's `{printed}` line changed:\n{example}");
        script =
            if script.is_empty() { example.replacen(printed, &ours, 1) } else { script.replacen(printed, &ours, 1) };
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let prelude = r#"
import { readFileSync, writeFileSync } from "node:fs";
const store = process.env.STORAGE;
let saved = {};
try { saved = JSON.parse(readFileSync(store, "utf8")); } catch {}
globalThis.localStorage = {
  getItem: (k) => (k in saved ? saved[k] : null),
  setItem: (k, v) => { saved[k] = String(v); writeFileSync(store, JSON.stringify(saved)); },
};
Object.defineProperty(globalThis, "navigator", { value: { language: "ko" }, configurable: true });
globalThis.location = { set href(url) { console.log(JSON.stringify({ location: url })); } };
globalThis.showWorlds = (worlds) => console.log(JSON.stringify({ showWorlds: worlds.map((w) => w.worldId) }));
globalThis.showMaintenance = (message) => console.log(JSON.stringify({ showMaintenance: message }));
const realFetch = globalThis.fetch;
globalThis.fetch = async (...args) => {
  const res = await realFetch(...args);
  console.log(JSON.stringify({ status: res.status }));
  return res;
};
"#;
    let file = dir.path().join("bootstrap.mjs");
    std::fs::write(&file, format!("{prelude}\n{script}\n")).expect("write");
    let storage = dir.path().join("storage.json");
    let start = || {
        let out = Command::new("node")
            .arg(&file)
            .env("STORAGE", &storage)
            .output()
            .unwrap_or_else(|e| panic!("cannot run node: {e} (scripts/test.sh installs it)"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "the example failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stdout.lines().map(|l| serde_json::from_str(l).unwrap_or(Value::String(l.into()))).collect::<Vec<Value>>()
    };

    for (world, maintenance) in [("open-1", false), ("closed-1", true)] {
        let (status, w) = app.post("/api/v1/game-worlds", json!({"worldId": world, "name": world})).await;
        assert_eq!(status, StatusCode::CREATED, "{w}");
        if maintenance {
            let path = format!("/api/v1/game-worlds/{}/maintenance", w["id"].as_str().expect("id"));
            let (status, body) = app.put(&path, json!({"enabled": true})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    assert_eq!(start(), [json!({"status": 200}), json!({"showWorlds": ["open-1"]})]);
    assert_eq!(start(), [json!({"status": 304}), json!({"showWorlds": ["open-1"]})], "the stored copy, revalidated");
    let (status, body) = app
        .put(
            "/api/v1/maintenance",
            json!({"enabled": true, "messages": {"en": "Back at 10", "ko": "10시에 돌아옵니다"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(start(), [json!({"status": 200}), json!({"showMaintenance": "10시에 돌아옵니다"})]);
}
