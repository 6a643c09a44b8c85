//! The operator commands of the real `herald` binary against a running server: `webhooks
//! list|test|replay`, `deliveries list --failed`, `events tail`, `users import`. They go
//! through the API (no store code of their own), so one backend is enough.

use std::{
    process::{Output, Stdio},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{
    common::{Backend, TestApp},
    receiver::{Receiver, Reply},
};

const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// `herald <args>` aimed at `app` with `key`, with no other `HERALD_*` variable inherited.
fn herald(app: &TestApp, key: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HERALD_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args).env("HERALD_URL", &app.base).env("HERALD_API_KEY", key).stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

async fn run(app: &TestApp, args: &[&str]) -> (Output, String, String) {
    let out = herald(app, &app.key, args).output().await.expect("run herald");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    (out, stdout, stderr)
}

async fn app() -> TestApp {
    TestApp::spawn(Backend::Sqlite).await.expect("sqlite")
}

async fn webhook(app: &TestApp, url: &str) -> String {
    let (status, hook) = app.post("/api/v1/webhooks", json!({"url": url, "events": ["user.*"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    hook["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_list_test_and_replay() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let id = webhook(&app, &receiver.url).await;

    let (out, stdout, stderr) = run(&app, &["webhooks", "list"]).await;
    assert!(out.status.success(), "{stderr}");
    let row = stdout.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("no row for {id}:\n{stdout}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns, [id.as_str(), "active", "herald", "user.*", receiver.url.as_str()], "{row}");
    let (_, stdout, _) = run(&app, &["webhooks", "list", "--json"]).await;
    let listed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0].get("secret").is_none(), "a list never shows secrets");

    let (out, stdout, stderr) = run(&app, &["webhooks", "test", &id]).await;
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("succeeded: status 200"), "{stdout}");
    assert_eq!(receiver.wait_for(1).await[0].json()["type"], "test");

    // A user event is delivered, then replayed on request.
    app.post("/api/v1/users", json!({"username": "replayed"})).await;
    receiver.wait_for(2).await;
    let (out, stdout, stderr) = run(&app, &["webhooks", "replay", &id, "--since", "1h"]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("queued 1 deliveries"), "{stdout}");
    let got = receiver.wait_for(3).await;
    assert_eq!(got[2].json()["type"], "user.created");
    assert_eq!(got[1].json()["id"], got[2].json()["id"], "the same event, sent again");

    // A failing endpoint: the command says so and exits non-zero.
    receiver.script([Reply::status(500)]);
    let (out, stdout, _) = run(&app, &["webhooks", "test", &id]).await;
    assert!(!out.status.success());
    assert!(stdout.starts_with("failed: status 500"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_list_failed() {
    let app = app().await;
    let ok = Receiver::start().await;
    let gone = Receiver::start().await;
    gone.script([Reply::status(410)]);
    let ok_id = webhook(&app, &ok.url).await;
    let gone_id = webhook(&app, &gone.url).await;
    app.post("/api/v1/users", json!({"username": "failing"})).await;
    ok.wait_for(1).await;
    // Wait for the failure to be recorded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = app.get(&format!("/api/v1/webhooks/{gone_id}/deliveries?status=failed")).await;
        if page["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the failure was never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (out, stdout, stderr) = run(&app, &["deliveries", "list", "--failed"]).await;
    assert!(out.status.success(), "{stderr}");
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "only the failed delivery:\n{stdout}");
    assert!(rows[0].contains(&gone_id) && rows[0].contains("failed") && rows[0].contains("410"), "{}", rows[0]);
    assert!(!stdout.contains(&ok_id));
    let (_, stdout, _) = run(&app, &["deliveries", "list", "--webhook", &ok_id, "--json"]).await;
    let listed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(listed[0]["status"], "succeeded", "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_follows_new_events() {
    let app = app().await;
    app.post("/api/v1/users", json!({"username": "before"})).await;
    let mut child = herald(&app, &app.key, &["events", "tail", "--json", "--type", "user.*", "--interval-ms", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tail");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let next = async |lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>| -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
        let line = line.expect("a line within 10 s").expect("read").expect("tail still running");
        serde_json::from_str(&line).expect("a JSON line")
    };
    // The recent past first (only the pattern's types) ...
    let first = next(&mut lines).await;
    assert_eq!((first["type"].as_str(), first["data"]["username"].as_str()), (Some("user.created"), Some("before")));
    // ... then what happens while it runs, in order.
    app.post("/api/v1/game-worlds", json!({"worldId": "w1", "name": "W1"})).await;
    let (_, user) = app.post("/api/v1/users", json!({"username": "after"})).await;
    app.patch(&format!("/api/v1/users/{}", user["id"].as_str().expect("id")), json!({"displayName": "After"})).await;
    let created = next(&mut lines).await;
    assert_eq!((created["type"].as_str(), created["data"]["username"].as_str()), (Some("user.created"), Some("after")));
    let updated = next(&mut lines).await;
    assert_eq!(updated["type"], "user.updated", "world events are filtered out: {updated}");
    assert!(updated["sequence"].as_i64() > created["sequence"].as_i64());
    child.start_kill().expect("kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_ends_quietly_when_its_reader_goes() {
    let app = app().await;
    for i in 0..5 {
        app.post("/api/v1/users", json!({"username": format!("u{i}")})).await;
    }
    // `herald events tail | head -1`: the pipe closes after one line.
    let mut child = herald(&app, &app.key, &["events", "tail"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).await.expect("one line");
    drop(stdout);
    // No event comes after: the command must notice the closed pipe by itself, not at its
    // next write.
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("tail ends")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a closed pipe is a normal end: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `--last N` is the last N events of the pattern, however many others came after them, and
/// Ctrl-C ends the command without the server's "shutting down" line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_last_counts_matching_events() {
    let app = app().await;
    for w in ["w1", "w2", "w3"] {
        app.post("/api/v1/game-worlds", json!({"worldId": w, "name": w})).await;
    }
    for i in 0..120 {
        app.post("/api/v1/users", json!({"username": format!("u{i}")})).await;
    }
    let mut child = herald(&app, &app.key, &["events", "tail", "--type", "world.*", "--last", "2", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut worlds = Vec::new();
    for _ in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
        let line = line.expect("a line within 10 s").expect("read").expect("tail still running");
        let event: Value = serde_json::from_str(&line).expect("a JSON line");
        worlds.push(event["data"]["worldId"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(worlds, ["w2", "w3"], "the last two world events, oldest first");
    let extra = tokio::time::timeout(Duration::from_millis(500), lines.next_line()).await;
    assert!(extra.is_err(), "nothing more: {extra:?}");

    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().expect("pid").to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("tail ends on Ctrl-C")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("shutting down"), "no server shutdown line: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_import_reports_each_bad_row_and_creates_the_rest() {
    let app = app().await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("players.csv");
    std::fs::write(
        &file,
        "id,username,email,displayName,metadata\n\
         p1,ann,ann@example.com,Ann,\"{\"\"level\"\": 3}\"\n\
         p2,bob,not-an-email,Bob,\n\
         p3,cid,,Cid,\n\
         p4,dup,,Dup,\n\
         p5,eve,eve@example.com,,\n\
         p6,dörte,,Dörte,\n\
         p7,용사123,,,\n",
    )
    .expect("write csv");
    let path = file.to_str().expect("utf-8 path");
    // Already there: its row conflicts.
    app.post("/api/v1/users", json!({"id": "p4", "username": "existing"})).await;

    let (out, stdout, stderr) = run(&app, &["users", "import", path, "--dry-run"]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("7 players"), "{stdout}");
    assert_eq!(app.get("/api/v1/users").await.1["total"], 1, "a dry run sends nothing");

    let (out, stdout, stderr) = run(&app, &["users", "import", path]).await;
    assert!(!out.status.success(), "some rows failed: the exit code says so");
    assert!(stdout.contains("created 5, failed 2"), "non-ASCII names are imported: {stdout}");
    assert!(stderr.contains("line 3: 422 validation_error") && stderr.contains("email"), "{stderr}");
    assert!(stderr.contains("line 5: 409"), "{stderr}");
    let (_, users) = app.get("/api/v1/users?limit=100").await;
    assert_eq!(users["total"], 6, "{users}");
    let (_, korean) = app.get("/api/v1/users/p7").await;
    assert_eq!(korean["username"], "용사123");
    let (_, ann) = app.get("/api/v1/users/p1").await;
    assert_eq!((ann["displayName"].as_str(), ann["metadata"]["level"].as_i64()), (Some("Ann"), Some(3)));

    std::fs::write(&file, "username,nickname\nann,a\n").expect("write csv");
    let (out, _, stderr) = run(&app, &["users", "import", path]).await;
    assert!(!out.status.success());
    assert!(stderr.contains("unknown column `nickname`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_problem_and_never_the_key() {
    let app = app().await;
    let wrong = format!("{}x", &app.key[..app.key.len() - 1]);
    let out = herald(&app, &wrong, &["webhooks", "list"]).output().await.expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("401 unauthorized: invalid API key"), "{stderr}");
    assert!(!stderr.contains(&wrong) && !stderr.contains(&app.key), "{stderr}");

    let (_, readonly) = app.create_key(&["users:read"]).await;
    let out = herald(&app, &readonly, &["webhooks", "list"]).output().await.expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("403 forbidden"), "the scope is named");

    let mut cmd = herald(&app, &app.key, &["webhooks", "list"]);
    cmd.env("HERALD_URL", "http://127.0.0.1:9");
    let out = cmd.output().await.expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach Herald at http://127.0.0.1:9"), "{stderr}");
    assert!(!stderr.contains(&app.key), "{stderr}");

    let mut cmd = herald(&app, &app.key, &["webhooks", "list"]);
    cmd.env_remove("HERALD_API_KEY");
    let out = cmd.output().await.expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no API key: set HERALD_API_KEY"));
}
