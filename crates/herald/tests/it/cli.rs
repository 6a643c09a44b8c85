//! The real `herald` binary, run in a temp dir as its working directory: first start and the
//! admin key, graceful shutdown on SIGTERM, `migrate`, `version`, `keys`, `admins`, bad
//! configuration, and `serve` on PostgreSQL.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::send;

const BIN: &str = env!("CARGO_BIN_EXE_herald");
/// How long a server may take to come up or to shut down before the test gives up.
const DEADLINE: Duration = Duration::from_secs(30);

/// `herald` in `dir`, with no `HERALD_*` variable inherited from the test's environment.
fn herald(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    // Run as a user runs the built binary, not as `cargo run` (which sets CARGO).
    cmd.current_dir(dir).stdin(Stdio::null()).env_remove("CARGO");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HERALD_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Runs a command to completion: `(status, stdout, stderr)`.
fn run(cmd: &mut Command) -> (ExitStatus, String, String) {
    let out = cmd.output().expect("run herald");
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// Collects everything `pipe` writes, line by line, into `sink`.
fn collect(pipe: impl Read + Send + 'static, sink: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
            s.push_str(&line);
            s.push('\n');
        }
    })
}

/// A running `herald serve`.
struct Server {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    base: String,
}

impl Server {
    /// Starts `herald serve` in `dir` on a free loopback port and waits until it listens.
    async fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut child = herald(dir)
            .arg("serve")
            .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herald serve");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), Arc::clone(&stdout)),
            collect(child.stderr.take().expect("stderr"), Arc::clone(&stderr)),
        ];
        let mut server = Server { child, stdout, stderr, readers, base: format!("http://127.0.0.1:{port}") };
        let listening = format!("Herald listening on {}", server.base);
        let stdout = Arc::clone(&server.stdout);
        server.wait_for(&stdout, &listening).await;
        server
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until `pipe` (stdout or stderr) contains `needle`; fails if the server exits
    /// first or the deadline passes.
    async fn wait_for(&mut self, pipe: &Arc<Mutex<String>>, needle: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if pipe.lock().unwrap_or_else(|p| p.into_inner()).contains(needle) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                panic!(
                    "herald exited ({status}) before printing {needle:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {DEADLINE:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGTERM.
    fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit: `(status, stdout, stderr)`.
    async fn wait(&mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "herald did not exit within {DEADLINE:?}\nstderr:\n{}", self.stderr());
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (status, self.stdout(), self.stderr())
    }

    /// SIGTERM, then waits for the exit.
    async fn stop(&mut self) -> (ExitStatus, String, String) {
        self.sigterm();
        self.wait().await
    }

    fn request(&self, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().request(method, format!("{}{path}", self.base)).header("X-API-Key", key)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The admin key printed on first start.
fn printed_key(stdout: &str) -> String {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("hk_"))
        .unwrap_or_else(|| panic!("no key line in stdout:\n{stdout}"))
        .to_string()
}

/// The default project's id, from the first start's stdout.
fn printed_project_id(stdout: &str) -> String {
    let marker = "project `default` (";
    let start = stdout.find(marker).unwrap_or_else(|| panic!("no project id in stdout:\n{stdout}")) + marker.len();
    let len = stdout[start..].find(')').expect("closing parenthesis");
    stdout[start..start + len].to_string()
}

/// Endpoints saved in the development profile that production refuses (`http://`, an internal
/// address) are listed when `herald serve` starts in production: id and reason, never the
/// URL's query (it may carry a token); an endpoint production accepts is not listed.
#[tokio::test]
async fn production_start_lists_the_endpoints_it_will_refuse() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &[]).await;
    let key = printed_key(&server.stdout());
    let mut ids = Vec::new();
    for url in [
        "http://127.0.0.1:9/hook?token=tok_in_the_query_0123",
        "https://[::127.0.0.1]/hook",
        "https://[2002:808:808::1]/hook",
    ] {
        let create = server.request(Method::POST, "/api/v1/webhooks", &key);
        let (status, w) = send(create.json(&json!({"url": url, "events": ["user.created"]}))).await;
        assert_eq!(status, StatusCode::CREATED, "{w}");
        ids.push(w["id"].as_str().expect("id").to_string());
    }
    let (status, _, _) = server.stop().await;
    assert!(status.success());

    let mut server = Server::start(dir.path(), &[("HERALD_WEBHOOKS__PROFILE", "production")]).await;
    let stderr = Arc::clone(&server.stderr);
    server.wait_for(&stderr, "2 active endpoint(s) listed above will be refused by the production profile").await;
    let log = server.stderr();
    let listed = |id: &str| log.lines().find(|l| l.contains(id) && l.contains("refused by the production profile"));
    let plain = listed(&ids[0]).unwrap_or_else(|| panic!("{} not listed:\n{log}", ids[0]));
    assert!(plain.contains("plain http:// is refused"), "{plain}");
    let compat = listed(&ids[1]).unwrap_or_else(|| panic!("{} not listed:\n{log}", ids[1]));
    assert!(compat.contains("standing for 127.0.0.1"), "{compat}");
    assert!(!log.contains(&ids[2]), "an endpoint production accepts is listed:\n{log}");
    assert!(!log.contains("tok_in_the_query"), "a URL's query reached the log:\n{log}");
    let (status, _, _) = server.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn first_start_prints_the_key_once_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &[]).await;
    assert!(dir.path().join("herald-data/herald.db").is_file(), "the SQLite database is created in ./herald-data");
    let key = printed_key(&server.stdout());
    let (status, body) = send(server.request(Method::GET, "/api/v1/users", &key)).await;
    assert_eq!(status, StatusCode::OK, "the printed key works: {body}");
    let (status, _) = send(server.request(Method::GET, "/api/v1/users", "hk_0000000000000000_nope")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _, stderr) = server.stop().await;
    assert!(status.success(), "SIGTERM exits with success: {status}\n{stderr}");
    assert!(!stderr.contains(&key), "the key is never logged:\n{stderr}");
    assert!(stderr.contains("Herald listening"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour escapes when the log is not a terminal:\n{stderr:?}");

    // Second start on the same data: no new key, and the first one still works.
    let mut again = Server::start(dir.path(), &[]).await;
    let stdout = again.stdout();
    assert!(!stdout.contains("hk_"), "no key on a later start:\n{stdout}");
    // The hint runs as printed (here the binary's own path: it is not on PATH).
    let hint = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Need an admin key? Run: "))
        .unwrap_or_else(|| panic!("no hint in stdout:\n{stdout}"))
        .to_string();
    assert!(hint.ends_with(" keys create --scopes admin"), "{hint}");
    let (status, created, stderr) =
        run(Command::new("sh").arg("-c").arg(&hint).current_dir(dir.path()).env_remove("CARGO"));
    assert!(status.success(), "the printed hint `{hint}` works: {stderr}");
    assert!(created.contains("hk_"), "{created}");
    let (status, _) = send(again.request(Method::GET, "/api/v1/users", &key)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, stderr) = again.stop().await;
    assert!(status.success(), "{status}\n{stderr}");
    assert!(!stderr.contains(&key), "the key is never logged:\n{stderr}");
}

/// The database holds the JWT signing secret, webhook secrets and GameTalk secret keys: only
/// the user running Herald may read it.
#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &[]).await;
    let data = dir.path().join("herald-data");
    assert_eq!(mode(&data), 0o700, "data directory");
    for file in ["herald.db", "herald.db-wal", "herald.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let (status, _, stderr) = server.stop().await;
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("readable by other users"), "no warning for private files:\n{stderr}");

    // An existing directory that others can read is left as it is, with a warning that says
    // how to fix it.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut again = Server::start(dir.path(), &[]).await;
    let (status, _, stderr) = again.stop().await;
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("readable by other users") && stderr.contains("chmod 700"), "{stderr}");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish() {
    let dir = tempfile::tempdir().expect("temp dir");
    // tower_http at debug logs "started processing request": the request is in flight.
    let mut server = Server::start(dir.path(), &[("HERALD_LOG__LEVEL", "info,tower_http=debug")]).await;
    let key = printed_key(&server.stdout());

    let body = json!({"worldId": "late", "name": "Late"}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut conn = TcpStream::connect(&addr).expect("connect");
    conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
    write!(
        conn,
        "POST /api/v1/game-worlds HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    )
    .expect("send head and half the body");
    conn.flush().expect("flush");
    let stderr = server.stderr.clone();
    server.wait_for(&stderr, "started processing request").await;

    server.sigterm();
    server.wait_for(&stderr, "shutting down: finishing in-flight requests").await;
    assert!(server.child.try_wait().expect("try_wait").is_none(), "the server waits for the request in flight");
    conn.write_all(rest.as_bytes()).expect("send the rest");
    let mut response = String::new();
    conn.read_to_string(&mut response).expect("read response");
    assert!(response.starts_with("HTTP/1.1 201"), "the request in flight is answered:\n{response}");
    let (status, _, stderr) = server.wait().await;
    assert!(status.success(), "{status}\n{stderr}");
    assert!(!stderr.contains(&key), "not even debug logs show the key");

    let mut again = Server::start(dir.path(), &[]).await;
    let (status, world) = send(again.request(Method::GET, "/api/v1/game-worlds/late", &key)).await;
    assert_eq!(status, StatusCode::OK, "its write was committed: {world}");
    again.stop().await;
}

#[tokio::test]
async fn version_and_migrate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (status, stdout, _) = run(herald(dir.path()).arg("version"));
    assert!(status.success());
    assert_eq!(stdout, format!("herald {}\n", env!("CARGO_PKG_VERSION")));
    assert!(!dir.path().join("herald-data").exists(), "`version` touches no database");

    let (status, stdout, stderr) = run(herald(dir.path()).arg("migrate"));
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("migrations applied (sqlite)"), "{stdout}");
    assert!(dir.path().join("herald-data/herald.db").is_file());
    let (status, _, stderr) = run(herald(dir.path()).arg("migrate"));
    assert!(status.success(), "migrating again is a no-op: {stderr}");

    // `migrate` creates the schema only: the first `serve` still bootstraps and shows a key.
    let mut server = Server::start(dir.path(), &[]).await;
    let key = printed_key(&server.stdout());
    let (status, _) = send(server.request(Method::GET, "/api/v1/users", &key)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn keys_create_list_and_revoke() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &[("HERALD_AUTH__KEY_CACHE_TTL_SECS", "0")]).await;
    let project = printed_project_id(&server.stdout());
    let call = |method: Method, path: &str, key: &str| {
        server.request(method, path, key).header("X-Project-Id", project.as_str())
    };

    let (status, stdout, stderr) = run(herald(dir.path()).args(["keys", "create", "--scopes", "users:read"]));
    assert!(status.success(), "{stderr}");
    let key = stdout.trim().to_string();
    assert!(key.starts_with("hk_") && !key.contains(char::is_whitespace), "stdout is the key alone: {stdout:?}");
    assert!(!stderr.contains(&key), "{stderr}");
    let id = stderr
        .split("created key ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no key id in stderr: {stderr}"))
        .to_string();

    let (status, body) = send(call(Method::GET, "/api/v1/users", &key)).await;
    assert_eq!(status, StatusCode::OK, "the key works: {body}");
    let (status, _) = send(call(Method::POST, "/api/v1/users", &key).json(&json!({"username": "x"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "users:read cannot write");
    let (status, _) = send(call(Method::GET, "/api/v1/game-worlds", &key)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "nor read worlds");

    let (status, list, stderr) = run(herald(dir.path()).args(["keys", "list"]));
    assert!(status.success(), "{stderr}");
    let line = list.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{id} not listed:\n{list}"));
    assert!(line.contains("active") && line.contains("users:read"), "{line}");
    // `hk_<id>_<secret>`; the secret is base64url and may itself contain `_`.
    let secret = key.splitn(3, '_').nth(2).expect("secret");
    assert_eq!(secret.len(), 43, "{key}");
    assert!(!list.contains(secret), "the list never shows secrets:\n{list}");

    let (status, stdout, stderr) = run(herald(dir.path()).args(["keys", "revoke", &id]));
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains(&id), "{stdout}");
    let (status, body) = send(call(Method::GET, "/api/v1/users", &key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the revoked key stops working: {body}");
    let (_, list, _) = run(herald(dir.path()).args(["keys", "list"]));
    let line = list.lines().find(|l| l.starts_with(&id)).expect("still listed");
    assert!(line.contains("revoked"), "{line}");

    // A key bound to a project needs no X-Project-Id.
    let (status, stdout, stderr) = run(herald(dir.path()).args([
        "keys",
        "create",
        "--project",
        &project,
        "--scopes",
        "worlds:read,versions:read",
    ]));
    assert!(status.success(), "{stderr}");
    let bound = stdout.trim();
    let (status, _) = send(server.request(Method::GET, "/api/v1/game-worlds", bound)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(server.request(Method::GET, "/api/v1/users", bound)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, stdout, stderr) = run(herald(dir.path()).args(["keys", "create", "--scopes", "users:read,root"]));
    assert!(!status.success());
    assert!(stdout.is_empty(), "no key is printed: {stdout}");
    assert!(stderr.contains("unknown scope `root`"), "{stderr}");
    let (status, _, stderr) = run(herald(dir.path()).args(["keys", "revoke", "0000000000000000"]));
    assert!(!status.success(), "revoking an unknown key fails");
    assert!(stderr.contains("0000000000000000"), "{stderr}");

    let (status, _, stderr) = server.stop().await;
    assert!(status.success());
    assert!(!stderr.contains(&key) && !stderr.contains(bound), "keys are never logged");
}

/// `herald admins create --email <email>` with the password as one line on stdin.
fn create_admin_via_stdin(dir: &Path, email: &str, password: &str) -> (ExitStatus, String, String) {
    let mut child = herald(dir)
        .args(["admins", "create", "--email", email])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald admins create");
    child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("write password");
    let out = child.wait_with_output().expect("wait");
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// POSTs `/api/v1/auth/login`.
async fn login(server: &Server, email: &str, password: &str) -> (StatusCode, Value) {
    send(
        reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", server.base))
            .json(&json!({"email": email, "password": password})),
    )
    .await
}

#[tokio::test]
async fn admins_create_then_login() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &[]).await;
    let password = "correct horse battery staple";
    let (status, stdout, stderr) = create_admin_via_stdin(dir.path(), "Ops@Example.com", password);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("created admin ops@example.com"), "{stdout}");
    assert!(!stdout.contains(password) && !stderr.contains(password));

    let (status, tokens) = login(&server, "ops@example.com", password).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let token = tokens["accessToken"].as_str().expect("accessToken");
    let (status, me) = send(reqwest::Client::new().get(format!("{}/api/v1/me", server.base)).bearer_auth(token)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["kind"], "admin");
    let (status, _) = login(&server, "ops@example.com", "wrong password!").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _, stderr) = create_admin_via_stdin(dir.path(), "short@example.com", "short");
    assert!(!status.success());
    assert!(stderr.contains("password"), "says what is wrong: {stderr}");
    let (status, _) = login(&server, "short@example.com", "short").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no account was created");
    let (status, _, stderr) = create_admin_via_stdin(dir.path(), "ops@example.com", "another long password");
    assert!(!status.success(), "the email is taken: {stderr}");
    let (status, _) = login(&server, "ops@example.com", password).await;
    assert_eq!(status, StatusCode::OK, "the first account is untouched");

    let (status, _, stderr) = server.stop().await;
    assert!(status.success());
    assert!(!stderr.contains(password));
}

/// README: `HERALD_ADMIN_PASSWORD='a long password' herald admins create --email ...`. Today
/// the `HERALD_` environment provider reads `HERALD_ADMIN_PASSWORD` as a config key
/// `admin_password` and rejects the configuration.
#[tokio::test]

async fn admins_create_with_password_from_env() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &[]).await;
    let password = "correct horse battery staple";
    let (status, stdout, stderr) = run(herald(dir.path())
        .args(["admins", "create", "--email", "ops@example.com"])
        .env("HERALD_ADMIN_PASSWORD", password));
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("created admin ops@example.com"), "{stdout}");
    assert!(!stdout.contains(password) && !stderr.contains(password));
    let (status, tokens) = login(&server, "ops@example.com", password).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    server.stop().await;
}

#[tokio::test]
async fn bad_configuration_exits_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (status, stdout, stderr) = run(herald(dir.path()).arg("serve").env("HERALD_LISTEN", "nonsense"));
    assert!(!status.success(), "{stdout}");
    assert!(stderr.contains("invalid configuration"), "{stderr}");
    assert!(stderr.to_lowercase().contains("listen"), "names the setting: {stderr}");
    assert!(!dir.path().join("herald-data").exists(), "nothing is created on a bad configuration");

    std::fs::write(dir.path().join("herald.toml"), "lisen = \"127.0.0.1:1\"\n").expect("write");
    let (status, _, stderr) = run(herald(dir.path()).arg("migrate"));
    assert!(!status.success());
    assert!(stderr.contains("lisen"), "names the unknown key: {stderr}");
    std::fs::remove_file(dir.path().join("herald.toml")).expect("remove");

    let (status, _, stderr) =
        run(herald(dir.path()).arg("migrate").env("HERALD_DATABASE_URL", "mysql://localhost/herald"));
    assert!(!status.success());
    assert!(stderr.contains("database_url"), "{stderr}");

    let (status, _, stderr) = run(herald(dir.path()).args(["--config", "missing.toml", "migrate"]));
    assert!(!status.success());
    assert!(stderr.contains("missing.toml"), "{stderr}");

    // The address is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (status, _, stderr) = run(herald(dir.path()).arg("serve").env("HERALD_LISTEN", &addr));
    assert!(!status.success());
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
}

#[tokio::test]
async fn serve_works_on_postgres() {
    let Some(url) = crate::common::fresh_pg_database().await else {
        eprintln!("skipped: HERALD_TEST_SKIP_PG=1");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (status, stdout, stderr) = run(herald(dir.path()).arg("migrate").env("HERALD_DATABASE_URL", &url));
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("migrations applied (postgres)"), "{stdout}");

    let env = [("HERALD_DATABASE_URL", url.as_str())];
    let mut server = Server::start(dir.path(), &env).await;
    let key = printed_key(&server.stdout());
    let (status, world) = send(
        server
            .request(Method::POST, "/api/v1/game-worlds", &key)
            .json(&json!({"worldId": "pg-1", "name": "On PostgreSQL"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{world}");
    let (status, _, stderr) = server.stop().await;
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains(&key));
    assert!(!dir.path().join("herald-data").exists(), "no SQLite database when database_url is PostgreSQL");

    let mut again = Server::start(dir.path(), &env).await;
    assert!(!again.stdout().contains("hk_"), "bootstrapped once per database");
    let (status, got) = send(again.request(Method::GET, "/api/v1/game-worlds/pg-1", &key)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let (status, _, _) = again.stop().await;
    assert!(status.success());
}

/// docs/CONFIG.md: "`HERALD_LOG` overrides [log.level]". Today the `HERALD_` environment
/// provider also reads `HERALD_LOG` as the `log` section and rejects the configuration.
#[tokio::test]

async fn herald_log_sets_the_filter_without_breaking_the_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (status, _, stderr) = run(herald(dir.path()).arg("migrate").env("HERALD_LOG", "warn"));
    assert!(status.success(), "{stderr}");
}

/// `keys list` only reads: it must not create a database or apply migrations under running
/// servers; a schema that is behind is reported, not upgraded.
#[tokio::test]
async fn read_only_commands_apply_no_migration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (status, _, stderr) = run(herald(dir.path()).args(["keys", "list"]));
    assert!(!status.success());
    assert!(stderr.contains("no database at") && stderr.contains("herald migrate"), "{stderr}");
    assert!(!dir.path().join("herald-data").exists(), "nothing created");

    let (status, _, stderr) = run(herald(dir.path()).arg("migrate"));
    assert!(status.success(), "{stderr}");
    let db = format!("sqlite://{}", dir.path().join("herald-data/herald.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.expect("open");
    let newest: i64 =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&pool).await.expect("read");
    // As if the database were last migrated by the previous release (the row is put back
    // below, as its tables are still there).
    sqlx::query("CREATE TABLE kept AS SELECT * FROM _sqlx_migrations WHERE version = $1")
        .bind(newest)
        .execute(&pool)
        .await
        .expect("keep");
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1").bind(newest).execute(&pool).await.expect("delete");
    let (status, _, stderr) = run(herald(dir.path()).args(["keys", "list"]));
    assert!(!status.success());
    assert!(stderr.contains("1 migration(s) behind") && stderr.contains("herald migrate"), "{stderr}");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE version = $1")
        .bind(newest)
        .fetch_one(&pool)
        .await
        .expect("read");
    assert_eq!(applied, 0, "keys list applied no migration");
    sqlx::query("INSERT INTO _sqlx_migrations SELECT * FROM kept").execute(&pool).await.expect("put back");
    pool.close().await;

    let (status, stdout, stderr) = run(herald(dir.path()).args(["keys", "list"]));
    assert!(status.success(), "{stderr}");
    assert!(stdout.starts_with("ID "), "{stdout}");
}

/// sqlx's migrator creates `_sqlx_migrations` with IF NOT EXISTS, and PostgreSQL answers with a
/// notice that sqlx logs: every CLI command printed it.
#[tokio::test]
async fn cli_commands_on_postgres_print_no_server_notice() {
    let Some(url) = crate::common::fresh_pg_database().await else {
        eprintln!("skipped: HERALD_TEST_SKIP_PG=1");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    for args in
        [&["migrate"][..], &["migrate"], &["keys", "create", "--instance", "--scopes", "admin"], &["keys", "list"]]
    {
        let (status, _, stderr) = run(herald(dir.path()).args(args).env("HERALD_DATABASE_URL", &url));
        assert!(status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("already exists"), "{args:?}: {stderr}");
    }
}

/// A database that cannot be reached is reported in one line naming the address tried and the
/// cause, quickly, not as "pool timed out" after the acquire timeout.
#[tokio::test]
async fn database_errors_name_the_address_and_the_cause() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let started = Instant::now();
    let (status, _, stderr) = run(herald(dir.path())
        .arg("migrate")
        .env("HERALD_DATABASE_URL", format!("postgres://herald:sekret@127.0.0.1:{port}/herald")));
    assert!(!status.success());
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once, not after a timeout");
    let line = stderr.trim();
    assert_eq!(line.lines().count(), 1, "one line: {stderr}");
    assert!(line.contains(&format!("127.0.0.1:{port}")) && line.contains("refused"), "{line}");
    assert!(!line.contains("sekret"), "no password in messages: {line}");

    let Some(url) = crate::common::fresh_pg_database().await else {
        return;
    };
    let (prefix, _) = url.rsplit_once('/').expect("url ends with /dbname");
    let (status, _, stderr) =
        run(herald(dir.path()).arg("migrate").env("HERALD_DATABASE_URL", format!("{prefix}/herald_no_such_db")));
    assert!(!status.success());
    let line = stderr.trim();
    assert_eq!(line.lines().count(), 1, "one line: {stderr}");
    assert!(line.contains("database \"herald_no_such_db\" does not exist"), "{line}");
    assert!(!line.contains(" at line "), "no PostgreSQL source position: {line}");
}

/// What a migrated instance must still show: the same players, worlds, webhooks and events
/// (with their sequence numbers), read through the API.
async fn snapshot(server: &Server, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in
        ["/api/v1/users?limit=100", "/api/v1/game-worlds?limit=100", "/api/v1/webhooks", "/api/v1/events?limit=100"]
    {
        let (status, body) = send(server.request(Method::GET, path, key)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        out.push(body);
    }
    out
}

/// `herald migrate-data`: an SQLite instance moves to PostgreSQL and back with everything a
/// studio has (its key, players with non-ASCII names, worlds, webhooks, events), no event is
/// delivered twice, and new writes continue the sequences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_data_moves_an_instance_to_postgres_and_back() {
    let Some(pg_url) = crate::common::fresh_pg_database().await else {
        eprintln!("skipped: HERALD_TEST_SKIP_PG=1");
        return;
    };
    let receiver = crate::receiver::Receiver::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &[]).await;
    let key = printed_key(&server.stdout());
    let post = async |server: &Server, path: &str, body: Value| {
        let (status, answer) = send(server.request(Method::POST, path, &key).json(&body)).await;
        assert!(status.is_success(), "{path}: {answer}");
        answer
    };
    let hook = post(&server, "/api/v1/webhooks", json!({"url": receiver.url, "events": ["*"]})).await;
    for name in ["용사", "dörte", "knight"] {
        post(&server, "/api/v1/users", json!({"username": name, "metadata": {"level": 3}})).await;
    }
    post(&server, "/api/v1/game-worlds", json!({"worldId": "w1", "name": "One", "tags": ["pvp"]})).await;
    post(&server, "/api/v1/client-versions", json!({"channel": "PC", "version": "1.0.0"})).await;
    let delivered = receiver.wait_for(5).await.len();
    // A delivery arrives before Herald records its answer (and the endpoint's `lastSuccessAt`
    // with it): wait for every result, or the copy holds a later `lastSuccessAt` than the
    // snapshot.
    let deliveries = format!("/api/v1/webhooks/{}/deliveries", hook["id"].as_str().expect("webhook id"));
    for _ in 0..100 {
        let (_, page) = send(server.request(Method::GET, &deliveries, &key)).await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() == delivered && items.iter().all(|d| d["status"] == "succeeded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = snapshot(&server, &key).await;
    let (status, _, stderr) = server.stop().await;
    assert!(status.success(), "{stderr}");

    let sqlite_url = format!("sqlite://{}", dir.path().join("herald-data/herald.db").display());
    let (status, stdout, stderr) =
        run(herald(dir.path()).args(["migrate-data", "--from", &sqlite_url, "--to", &pg_url]));
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("copied") && stderr.contains("users"), "{stdout}\n{stderr}");

    // On PostgreSQL: the same instance, not a new one (no new key), and nothing sent again.
    let on_pg = [("HERALD_DATABASE_URL", pg_url.as_str())];
    let mut server = Server::start(dir.path(), &on_pg).await;
    assert!(!server.stdout().contains("hk_"), "bootstrapped once, on SQLite:\n{}", server.stdout());
    assert_eq!(snapshot(&server, &key).await, before, "the same data through the API");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), delivered, "delivered events are not delivered again");
    let user = post(&server, "/api/v1/users", json!({"username": "after_pg"})).await;
    let got = receiver.wait_for(delivered + 1).await;
    assert_eq!(got.len(), delivered + 1);
    assert_eq!(got[delivered].json()["data"]["id"], user["id"], "the new event is delivered");
    let (_, events) = send(server.request(Method::GET, "/api/v1/events?limit=1", &key)).await;
    let newest_before = before[3]["items"][0]["sequence"].as_i64().expect("sequence");
    assert!(events["items"][0]["sequence"].as_i64() > Some(newest_before), "sequences continue: {events}");
    // The receiver has the event; wait until its delivery is recorded too (the endpoint's
    // `lastSuccessAt` is part of the snapshot), which happens a moment later.
    let hook_id = before[2]["items"][0]["id"].as_str().expect("webhook id").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let path = format!("/api/v1/webhooks/{hook_id}/deliveries?status=succeeded&limit=100");
        let (_, page) = send(server.request(Method::GET, &path, &key)).await;
        if page["items"].as_array().is_some_and(|items| items.len() == delivered + 1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the new delivery was never recorded: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = snapshot(&server, &key).await;
    let (status, _, stderr) = server.stop().await;
    assert!(status.success(), "{stderr}");

    // A destination that already holds data is refused, and left as it was.
    let (status, _, stderr) = run(herald(dir.path()).args(["migrate-data", "--from", &sqlite_url, "--to", &pg_url]));
    assert!(!status.success());
    assert!(stderr.contains("already holds data"), "{stderr}");

    // And back to a new SQLite file.
    let back = format!("sqlite://{}", dir.path().join("back/herald.db").display());
    let (status, _, stderr) = run(herald(dir.path()).args(["migrate-data", "--from", &pg_url, "--to", &back]));
    assert!(status.success(), "{stderr}");
    let on_sqlite = [("HERALD_DATABASE_URL", back.as_str())];
    let mut server = Server::start(dir.path(), &on_sqlite).await;
    assert!(!server.stdout().contains("hk_"), "{}", server.stdout());
    assert_eq!(snapshot(&server, &key).await, before);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), delivered + 1, "nothing sent again");
    post(&server, "/api/v1/users", json!({"username": "after_back"})).await;
    assert_eq!(receiver.wait_for(delivered + 2).await.len(), delivered + 2);
    let (status, _, stderr) = server.stop().await;
    assert!(status.success(), "{stderr}");
}
