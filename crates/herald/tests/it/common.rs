//! The test harness: a real Herald server per test, on SQLite or PostgreSQL.
//!
//! PostgreSQL tests need `HERALD_TEST_PG_URL` (a server where the test may create databases);
//! `scripts/test.sh` starts one and sets it. Without it they fail, unless
//! `HERALD_TEST_SKIP_PG=1` says to skip them on purpose.
// A toolbox: not every test module uses every helper.
#![allow(dead_code)]

use std::path::PathBuf;

use herald::{app::Server, config::Config, store::Store, webhooks::Clock};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The bootstrap key: project-bound, scope `admin`.
    pub key: String,
    pub org_id: String,
    pub project_id: String,
    pub store: Store,
    pub config: Config,
    /// The dispatcher's clock: starts at the real time and moves only when a test says.
    pub clock: Clock,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// A fresh, empty PostgreSQL database URL, or `None` when PostgreSQL tests are skipped.
pub async fn fresh_pg_database() -> Option<String> {
    let base = match std::env::var("HERALD_TEST_PG_URL") {
        Ok(url) => url,
        Err(_) if std::env::var("HERALD_TEST_SKIP_PG").is_ok_and(|v| v == "1") => return None,
        Err(_) => panic!(
            "HERALD_TEST_PG_URL is not set: run the suite with scripts/test.sh (it starts PostgreSQL), \
             or set HERALD_TEST_SKIP_PG=1 to skip PostgreSQL tests on purpose"
        ),
    };
    let name = format!("herald_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect to the test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("HERALD_TEST_PG_URL ends with /dbname");
    Some(format!("{prefix}/{name}"))
}

/// A test config on `backend` (a temp dir for SQLite, a fresh database for PostgreSQL).
pub async fn test_config(backend: Backend, dir: &std::path::Path) -> Option<Config> {
    let mut config =
        Config { listen: "127.0.0.1:0".parse().expect("addr"), data_dir: PathBuf::from(dir), ..Config::default() };
    config.database.max_connections = 8;
    // Retries at exactly the schedule, so tests can move the clock to them.
    config.webhooks.retry_jitter = 0.0;
    if backend == Backend::Postgres {
        config.database_url = fresh_pg_database().await?;
    }
    Some(config)
}

impl TestApp {
    /// Starts a server on `backend`, or `None` if PostgreSQL tests are skipped on purpose.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
        // Server warnings and errors show up in a failing test's output; all logs go to the
        // suite's log file (see `log_capture`).
        crate::log_capture::init();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(backend, dir.path()).await?;
        tweak(&mut config);
        let clock = Clock::manual(chrono::Utc::now());
        let server = Server::build_with(config.clone(), clock.clone()).await.expect("server starts");
        let addr = server.local_addr().expect("bound");
        let boot = server.bootstrapped.as_ref().expect("a fresh database bootstraps");
        let (key, org_id, project_id) = (boot.key_value.clone(), boot.organization.id.clone(), boot.project.id.clone());
        crate::log_capture::secret(&key);
        let store = server.state.store.clone();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Some(TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            key,
            org_id,
            project_id,
            store,
            config,
            clock,
            shutdown: Some(tx),
            _dir: dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with no credentials.
    pub fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request with the bootstrap admin key.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.with_key(&self.key, method, path)
    }

    pub fn with_key(&self, key: &str, method: Method, path: &str) -> RequestBuilder {
        self.anon(method, path).header("X-API-Key", key)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.req(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.req(Method::POST, path).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.req(Method::PUT, path).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.req(Method::PATCH, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        send(self.req(Method::DELETE, path)).await
    }

    /// Creates a key through the API with the bootstrap key; returns `(id, value)`.
    pub async fn create_key(&self, scopes: &[&str]) -> (String, String) {
        let (status, body) = self.post("/api/v1/api-keys", json!({"name": "test", "scopes": scopes})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (body["id"].as_str().expect("id").into(), body["keyValue"].as_str().expect("keyValue").into())
    }

    /// An organization-level admin key for the default organization, made as the CLI does.
    pub async fn org_admin_key(&self) -> String {
        let (key, value) = herald::domain::tenancy::new_api_key(
            "org admin".into(),
            Some(self.org_id.clone()),
            None,
            vec![herald::auth::Scope::Admin],
        );
        self.store.insert_api_key(&Default::default(), &key).await.expect("insert key");
        value
    }

    /// An instance key (reaches every organization), made as the CLI does.
    pub async fn instance_key(&self) -> String {
        let (key, value) =
            herald::domain::tenancy::new_api_key("instance".into(), None, None, vec![herald::auth::Scope::Admin]);
        self.store.insert_api_key(&Default::default(), &key).await.expect("insert key");
        value
    }

    /// A second project in the default organization with its own admin key:
    /// `(project id, key)`.
    pub async fn other_project(&self) -> (String, String) {
        let org_key = self.org_admin_key().await;
        let (status, project) =
            send(self.with_key(&org_key, Method::POST, "/api/v1/projects").json(&json!({"name": "Other Game"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{project}");
        let project_id = project["id"].as_str().expect("id").to_string();
        let (status, key) = send(
            self.with_key(&org_key, Method::POST, "/api/v1/api-keys")
                .json(&json!({"name": "other", "scopes": ["admin"], "projectId": project_id})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        (project_id, key["keyValue"].as_str().expect("key").to_string())
    }

    /// Starts a second server (node) on this app's database: PostgreSQL, several nodes.
    /// Returns its base URL and what stops it.
    pub async fn spawn_node(&self) -> (String, oneshot::Sender<()>) {
        let mut config = self.config.clone();
        config.data_dir = self._dir.path().join("node2");
        let server = Server::build(config).await.expect("second node starts");
        let addr = server.local_addr().expect("bound");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        (format!("http://{addr}"), tx)
    }

    /// Event types recorded for one resource, oldest first.
    pub async fn event_types(&self, resource_type: &str, resource_id: &str) -> Vec<String> {
        self.store
            .events_for_resource(resource_type, resource_id)
            .await
            .expect("read events")
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }
}

impl TestApp {
    /// Moves the app's clock forward and wakes the dispatcher and the scheduler.
    pub fn advance(&self, by: chrono::TimeDelta) {
        self.clock.advance(by);
        self.store.events_written().dispatcher.notify_one();
        self.store.events_written().scheduler.notify_one();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Sends and returns status and JSON body (`Value::Null` for an empty body).
pub async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let sent = req.try_clone().map(RequestBuilder::build).and_then(Result::ok);
    if let Some(body) = sent.as_ref().and_then(|s| s.body()).and_then(|b| b.as_bytes())
        && let Ok(json) = serde_json::from_slice::<Value>(body)
    {
        crate::log_capture::secrets_in(&json);
    }
    let resp: Response = req.send().await.expect("request sent");
    let status = resp.status();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    crate::log_capture::secrets_in(&body);
    if let Some(sent) = &sent
        && !body.is_null()
    {
        crate::openapi::check_response(sent.method().as_str(), sent.url().path(), status.as_u16(), &body);
    }
    (status, body)
}

/// Asserts the API's error shape with `code`, and returns the message.
#[track_caller]
pub fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) -> String {
    assert_eq!(status, want_status, "body: {body}");
    assert_eq!(body["error"]["code"], want_code, "body: {body}");
    let message = body["error"]["message"].as_str().expect("error.message is a string");
    assert!(!message.is_empty(), "error message must say what to fix");
    assert!(body["error"]["details"].is_array(), "error.details is an array: {body}");
    message.to_string()
}

/// Declares each `async fn name(app: TestApp)` as two tests, `sqlite::name` and
/// `postgres::name`, each with its own server and database.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::common::TestApp::spawn($crate::common::Backend::Sqlite).await.expect("sqlite");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::common::TestApp::spawn($crate::common::Backend::Postgres).await else {
                        eprintln!("skipped: HERALD_TEST_SKIP_PG=1");
                        return;
                    };
                    super::$name(app).await;
                }
            )*
        }
    };
}

/// A value of `GET /metrics` (asked without a key: the test server's peer is loopback).
pub async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.anon(reqwest::Method::GET, "/metrics").send().await.expect("scrape").text().await.expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no `{series}` in /metrics:\n{text}"))
}
