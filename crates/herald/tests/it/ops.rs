//! Operating Herald: `/metrics` after real traffic and who may read it, `/healthz` and
//! `/readyz` (also with the database cut off and back), the per-key rate limit, the request
//! log line, and that no secret the suite handled ever reaches a log.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::Mutex, task::JoinHandle};

use crate::{
    common::{Backend, TestApp, assert_error, send},
    log_capture,
    receiver::{Receiver, Reply},
    socket_client::SocketClient,
};

crate::both_backends!(
    metrics_expose_every_family_after_traffic,
    health_and_readiness_answer_without_credentials,
    readiness_fails_when_a_migration_is_missing,
    logs_never_contain_a_secret,
);

/// Polls `GET /metrics` until `wanted` is in it (metrics about background work, such as
/// webhook attempts, land a moment after the work).
async fn metrics_with(app: &TestApp, wanted: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = app.anon(Method::GET, "/metrics").send().await.expect("scrape");
        assert_eq!(resp.status(), StatusCode::OK);
        let text = resp.text().await.expect("text");
        let missing: Vec<&&str> = wanted.iter().filter(|w| !text.contains(**w)).collect();
        if missing.is_empty() {
            return text;
        }
        assert!(Instant::now() < deadline, "/metrics never showed {missing:?}:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the sample `series` (name with labels, as rendered).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample `{series}` in:\n{text}"))
}

async fn metrics_expose_every_family_after_traffic(app: TestApp) {
    // Webhooks: one endpoint that takes the event, one that fails it (a retry is scheduled)
    // and one that answers 410 (it is disabled); the user created next is the event.
    let ok = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.script([Reply::status(500)]);
    let gone = Receiver::start().await;
    gone.script([Reply::status(410)]);
    for r in [&ok, &failing, &gone] {
        let (status, body) = app.post("/api/v1/webhooks", json!({"url": r.url, "events": ["user.*"]})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // HTTP: one route with a path parameter, one 404.
    let (status, user) = app.post("/api/v1/users", json!({"username": "metered"})).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let id = user["id"].as_str().expect("id");
    assert_eq!(app.get(&format!("/api/v1/users/{id}")).await.0, StatusCode::OK);
    assert_eq!(app.get("/api/v1/no-such-thing").await.0, StatusCode::NOT_FOUND);
    // A socket.
    let socket = SocketClient::connect(&app.base, json!({"token": app.key})).await.expect("socket connects");

    let text = metrics_with(
        &app,
        &[
            "herald_webhook_deliveries_total{result=\"succeeded\"} 1",
            "herald_webhook_deliveries_total{result=\"failed\"} 1",
            "herald_webhook_retries_scheduled_total 1",
            "herald_webhook_endpoints_disabled 1",
            "herald_sockets_connected 1",
            // Read from the database, where results land a moment after the counters above.
            "herald_webhook_deliveries_pending 1",
        ],
    )
    .await;
    let user_route = "herald_http_requests_total{method=\"GET\",route=\"/api/v1/users/{id}\",status=\"200\"}";
    assert_eq!(sample(&text, user_route), 1.0, "counted by route template, not by raw path");
    assert!(!text.contains(id), "no series is labelled with a raw path");
    assert!(text.contains("route=\"unmatched\",status=\"404\"}"), "{text}");
    for family in [
        "herald_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/users\",le=",
        "herald_db_pool_connections{pool=",
        "herald_db_query_duration_seconds_bucket{pool=\"read\",le=",
        "herald_db_query_duration_seconds_bucket{pool=\"write\",le=",
        "herald_outbox_pending_events ",
        "herald_outbox_oldest_pending_age_seconds ",
        "herald_webhook_attempts_total{result=\"success\"} 1",
        "herald_webhook_attempts_total{result=\"failure\"} 2",
        "herald_webhook_attempt_duration_seconds_count 3",
        "herald_socket_messages_in_total ",
        "herald_socket_messages_out_total ",
        "herald_socket_packets_dropped_total 0",
        "herald_socket_heartbeat_timeouts_total 0",
        "herald_socket_connections_refused_total 0",
        "herald_http_connections ",
        "herald_http_connections_max ",
        "herald_http_connections_refused_total 0",
        "herald_http_accept_errors_total 0",
        "herald_db_writes_refused_total 0",
        "herald_build_info{version=",
        "# TYPE herald_http_request_duration_seconds histogram",
        "# HELP herald_outbox_pending_events ",
    ] {
        assert!(text.contains(family), "/metrics lacks `{family}`:\n{text}");
    }
    drop(socket);
}

/// Off loopback (here: loopback not trusted) `/metrics` needs a `metrics:read` credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_metrics_read_scope_unless_loopback_is_trusted() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.metrics.open_to_loopback = false).await.expect("app");
    let (status, body) = send(app.anon(Method::GET, "/metrics")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (_, users_only) = app.create_key(&["users:read"]).await;
    let (status, body) = send(app.with_key(&users_only, Method::GET, "/metrics")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (_, scraper) = app.create_key(&["metrics:read"]).await;
    let resp = app.with_key(&scraper, Method::GET, "/metrics").send().await.expect("scrape");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.expect("text").contains("herald_http_requests_total"));

    let off = TestApp::spawn_with(Backend::Sqlite, |c| c.metrics.enabled = false).await.expect("app");
    assert_eq!(send(off.anon(Method::GET, "/metrics")).await.0, StatusCode::NOT_FOUND);
}

async fn health_and_readiness_answer_without_credentials(app: TestApp) {
    let (status, body) = send(app.anon(Method::GET, "/healthz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = send(app.anon(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    for check in ["database", "migrations", "writes", "dispatcher"] {
        assert_eq!(body["checks"][check]["ok"], true, "{body}");
    }
    assert_eq!(body["checks"]["dispatcher"]["state"], "running");
}

/// A node whose database lacks a migration this binary needs (restored from an old backup,
/// say) is not ready, and says which.
async fn readiness_fails_when_a_migration_is_missing(app: TestApp) {
    let url = app.config.effective_database_url();
    let sql = "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)";
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        sqlx::query(sql).execute(&pool).await.expect("forget a migration");
    } else {
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        sqlx::query(sql).execute(&pool).await.expect("forget a migration");
    }
    let (status, body) = send(app.anon(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"]["ok"], true, "{body}");
    assert_eq!(body["checks"]["migrations"]["ok"], false, "{body}");
    assert!(body["checks"]["migrations"]["message"].as_str().expect("message").contains("herald migrate"), "{body}");
}

/// Readiness with a dispatcher this node does not run: not a reason to take it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_with_the_dispatcher_turned_off() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.webhooks.dispatcher = false).await.expect("app");
    let (status, body) = send(app.anon(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["dispatcher"]["state"], "disabled");
}

/// A TCP relay between Herald and PostgreSQL that can cut every connection and refuse new
/// ones, then let them through again: the database "goes down" for this node only.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    _accept: JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, links2) = (up.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let upstream = upstream.clone();
                links2.lock().await.push(tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Relay { port, up, links, _accept: accept }
    }

    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    send(app.anon(Method::GET, "/readyz")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_database_is_down_and_recovers() {
    let Some(url) = crate::common::fresh_pg_database().await else { return };
    let parsed = url::Url::parse(&url).expect("pg url");
    let upstream = format!("{}:{}", parsed.host_str().expect("host"), parsed.port().unwrap_or(5432));
    let relay = Relay::start(upstream).await;
    let mut through_relay = parsed.clone();
    through_relay.set_port(Some(relay.port)).expect("port");
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.database_url = through_relay.to_string();
        c.database.acquire_timeout_secs = 1;
    })
    .await
    .expect("app");
    assert_eq!(readyz(&app).await.0, StatusCode::OK);

    relay.cut().await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["database"]["ok"], false, "{body}");
    // Liveness does not depend on the database.
    assert_eq!(send(app.anon(Method::GET, "/healthz")).await.0, StatusCode::OK);
    // The API says the database is unavailable rather than failing obscurely.
    let (status, body) = app.get("/api/v1/users").await;
    assert!(status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::UNAUTHORIZED, "{status} {body}");

    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = readyz(&app).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.get("/api/v1/users").await.0, StatusCode::OK);
}

/// The limit lives in memory, per node: one backend is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_and_recovers() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.http.rate_limit_per_sec = 1;
        c.http.rate_limit_burst = 3;
    })
    .await
    .expect("app");
    // The burst of three requests of the bootstrap key passes (creating a second key is the
    // first); then requests are refused. One token comes back each second, so on a machine
    // slow enough to take a second over these requests, one or two more may pass first.
    let started = Instant::now();
    let other = app.create_key(&["users:read"]).await.1;
    let mut passed = 1;
    let resp = loop {
        let resp = app.req(Method::GET, "/api/v1/users").send().await.expect("sent");
        if resp.status() != StatusCode::OK {
            break resp;
        }
        passed += 1;
        let refills = started.elapsed().as_secs() + 1;
        assert!(passed <= 3 + refills, "{passed} requests passed in {:?} with a burst of 3 at 1/s", started.elapsed());
    };
    assert!(passed >= 3, "only {passed} requests passed before the first 429: the burst is 3");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 =
        resp.headers()["retry-after"].to_str().expect("ascii").parse().expect("Retry-After is whole seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Another key has its own bucket.
    assert_eq!(send(app.with_key(&other, Method::GET, "/api/v1/users")).await.0, StatusCode::OK);
    // Waiting as told is enough.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(app.get("/api/v1/users").await.0, StatusCode::OK);
    let text = metrics_with(&app, &[]).await;
    assert_eq!(sample(&text, "herald_http_requests_total{method=\"GET\",route=\"/api/v1/users\",status=\"429\"}"), 1.0);
}

/// Every kind of secret passes through the server, including in failed requests, with the
/// suite's log at debug level; none may be in the log. (scripts/test.sh runs the same check
/// over the logs of the whole suite afterwards.)
async fn logs_never_contain_a_secret(app: TestApp) {
    log_capture::init();
    // API keys, good and bad.
    let (_, key) = app.create_key(&["admin"]).await;
    assert_eq!(send(app.with_key(&key, Method::GET, "/api/v1/users")).await.0, StatusCode::OK);
    let forged = format!("{}x", &key[..key.len() - 1]);
    log_capture::secret(&forged);
    assert_eq!(send(app.with_key(&forged, Method::GET, "/api/v1/users")).await.0, StatusCode::UNAUTHORIZED);
    // Admin password, access and refresh tokens.
    let password = "correct horse battery staple";
    let org_key = app.org_admin_key().await;
    log_capture::secret(&org_key);
    let (status, body) = send(
        app.with_key(&org_key, Method::POST, "/api/v1/admin-users")
            .json(&json!({"email": "ops@example.com", "password": password})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, tokens) = send(
        app.anon(Method::POST, "/api/v1/auth/login").json(&json!({"email": "ops@example.com", "password": password})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh = tokens["refreshToken"].as_str().expect("refresh");
    let (status, _) =
        send(app.anon(Method::POST, "/api/v1/auth/refresh").json(&json!({"refreshToken": refresh}))).await;
    assert_eq!(status, StatusCode::OK);
    let wrong = "wrong password for ops";
    log_capture::secret(wrong);
    let (status, _) = send(
        app.anon(Method::POST, "/api/v1/auth/login").json(&json!({"email": "ops@example.com", "password": wrong})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Webhook secrets: generated, given, rotated; signed deliveries.
    let receiver = Receiver::start().await;
    let (status, hook) = app.post("/api/v1/webhooks", json!({"url": receiver.url, "events": ["*"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let hook_id = hook["id"].as_str().expect("id");
    assert_eq!(app.get(&format!("/api/v1/webhooks/{hook_id}/secret")).await.0, StatusCode::OK);
    assert_eq!(app.post(&format!("/api/v1/webhooks/{hook_id}/secret/rotate"), json!({})).await.0, StatusCode::OK);
    assert_eq!(app.post(&format!("/api/v1/webhooks/{hook_id}/test"), json!({})).await.0, StatusCode::OK);
    // Player session tokens, over HTTP and a socket.
    let (_, user) = app.post("/api/v1/users", json!({"username": "leaky"})).await;
    let user_id = user["id"].as_str().expect("id");
    let (status, session) = app.post(&format!("/api/v1/users/{user_id}/session-token"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let socket = SocketClient::connect(&app.base, json!({"token": session["token"]})).await.expect("player connects");
    drop(socket);
    // The project's GameTalk secret key, right and wrong.
    let (_, project) = app.post(&format!("/api/v1/projects/{}/secret-key/regenerate", app.project_id), json!({})).await;
    let app_key = project["appKey"].as_str().expect("appKey");
    let gametalk = format!("/game-talk/v1.1/appkeys/{app_key}/channels");
    let secret_key = project["secretKey"].as_str().expect("secretKey");
    send(app.anon(Method::GET, &gametalk).header("X-Secret-Key", secret_key)).await;
    let wrong_secret = format!("{secret_key}0");
    log_capture::secret(&wrong_secret);
    send(app.anon(Method::GET, &gametalk).header("X-Secret-Key", &wrong_secret)).await;
    receiver.wait_for(1).await;

    // The capture works: this test's requests are in the log, one line each with the tenant,
    // route, status and latency.
    let line = log_capture::lines_with(&[&app.project_id, "/api/v1/webhooks/{id}/test", "finished processing request"]);
    assert_eq!(line.len(), 1, "one request line for the one test call: {line:?}");
    for field in ["\"status\":200", "\"latency\":", "\"request_id\":", "\"actor\":\"key:"] {
        assert!(line[0].contains(field), "the request line lacks {field}: {}", line[0]);
    }
    let leaked = log_capture::leaked();
    assert!(leaked.is_empty(), "secrets found in the server log: {leaked:?}");
}

/// Sets SQLite's `max_page_count` on the store's one write connection: a database held at
/// its current size answers writes that need a new page with `SQLITE_FULL`, as a full disk does.
async fn set_max_pages(app: &TestApp, pages: Option<i64>) {
    let herald::store::Backend::Sqlite { write, .. } = app.store.backend() else { panic!("SQLite") };
    let pages = match pages {
        Some(pages) => pages,
        None => sqlx::query_scalar("PRAGMA page_count").fetch_one(write).await.expect("page_count"),
    };
    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA max_page_count = {pages}")))
        .execute(write)
        .await
        .expect("max_page_count");
}

/// A full disk: writes answer 503 `unavailable` with `Retry-After` (not 500), counted; the
/// node reports not ready, naming the check; when space returns, writes succeed and it is
/// ready again by itself, with nothing lost. (SQLite: `max_page_count` stands for the disk.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_readiness_follows_until_space_returns() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let (status, kept) = app.post("/api/v1/users", json!({"username": "before"})).await;
    assert_eq!(status, StatusCode::CREATED, "{kept}");
    assert_eq!(readyz(&app).await.0, StatusCode::OK);

    set_max_pages(&app, None).await;
    let big = json!({"username": "big", "metadata": {"blob": "x".repeat(48 * 1024)}});
    let resp = app.req(Method::POST, "/api/v1/users").json(&big).send().await.expect("sent");
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, body) = (resp.status(), resp.json::<Value>().await.expect("JSON"));
    let message = assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(message.contains("storage"), "{message}");
    assert!(retry_after.as_deref().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s >= 1), "{retry_after:?}");
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["checks"]["writes"]["ok"], false, "{ready}");
    assert!(ready["checks"]["writes"]["message"].as_str().is_some_and(|m| m.contains("storage")), "{ready}");
    assert_eq!(ready["checks"]["database"]["ok"], true, "reads still work: {ready}");
    // Reads keep working meanwhile.
    let (status, user) = app.get(&format!("/api/v1/users/{}", kept["id"].as_str().expect("id"))).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    metrics_with(&app, &["herald_db_writes_refused_total 1"]).await;

    // Space returns: the next write succeeds, and with it readiness.
    set_max_pages(&app, Some(1_000_000)).await;
    let (status, created) = app.post("/api/v1/users", big).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let (_, list) = app.get("/api/v1/users").await;
    let names: Vec<&str> =
        list["items"].as_array().expect("items").iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names, ["before", "big"], "nothing lost, nothing half-written: {list}");
}
