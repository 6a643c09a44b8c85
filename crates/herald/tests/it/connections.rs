//! Connection limits, driven over raw TCP, HTTP/2 and the real binary: a request head must
//! arrive in time, idle connections close, the connection cap refuses what is over it, and a
//! server out of file descriptors keeps going. (Connections are the server's, whatever the
//! store: SQLite is enough.)

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    common::{Backend, TestApp, metric},
    socket_client::SocketClient,
};

/// Well past every timeout the tests configure (1-2 s), well short of forever.
const PATIENCE: Duration = Duration::from_secs(8);

async fn connect(app_base: &str) -> TcpStream {
    TcpStream::connect(app_base.trim_start_matches("http://")).await.expect("connect")
}

/// Reads until the server closes the connection; `Some(what was read)` if it did within
/// `wait`, `None` if it was still open.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(wait, read_all).await.ok().map(|()| got)
}

/// A client that sends part of a request head and stalls, or one header line now and then
/// (slowloris), or nothing at all, is disconnected after `http.header_read_timeout_secs`;
/// the same clock closes a kept-alive HTTP/1.1 connection waiting for its next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_must_arrive_in_time() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.http.header_read_timeout_secs = 1;
        c.http.idle_timeout_secs = 600;
    })
    .await
    .expect("sqlite");

    let mut half = connect(&app.base).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n").await.expect("write");
    let mut silent = connect(&app.base).await;
    let mut slow = connect(&app.base).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.expect("write");
    let dripping = tokio::spawn(async move {
        // One header line every 300 ms: each arrives well within any per-read timeout.
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow.write_all(format!("X-Drip-{i}: x\r\n").as_bytes()).await.is_err() {
                return true;
            }
        }
        false
    });
    let started = Instant::now();
    assert!(closed_within(&mut half, PATIENCE).await.is_some(), "a half-sent head kept its connection");
    assert!(closed_within(&mut silent, PATIENCE).await.is_some(), "a connection that sent nothing stayed open");
    assert!(dripping.await.expect("drip task"), "a slowloris client was never cut off");
    assert!(started.elapsed() < PATIENCE);

    // A kept-alive connection gets its answer, then has the same time for its next request.
    let mut kept = connect(&app.base).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n").await.expect("write");
    let answer = closed_within(&mut kept, PATIENCE).await.expect("idle keep-alive connection closed");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));

    // The server answers a client that sends its request at once.
    assert_eq!(app.anon(Method::GET, "/healthz").send().await.expect("healthz").status(), StatusCode::OK);
}

/// With no request in progress for `http.idle_timeout_secs`, HTTP/1.1 and HTTP/2 connections
/// close; a request in progress longer than that (a socket.io long-poll) is not cut, and an
/// upgraded WebSocket is not idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.http.header_read_timeout_secs = 600;
        c.http.idle_timeout_secs = 1;
        c.realtime.ping_interval_secs = 3;
        c.realtime.ping_timeout_secs = 3;
    })
    .await
    .expect("sqlite");

    let mut h1 = connect(&app.base).await;
    h1.write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n").await.expect("write");
    let answer = closed_within(&mut h1, PATIENCE).await.expect("an idle HTTP/1.1 connection is closed");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));

    // HTTP/2 (prior knowledge): hyper's header timer does not apply; the idle timer does.
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(connect(&app.base).await))
            .await
            .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(app.url("/healthz")).body(Empty::<bytes::Bytes>::new()).expect("request");
    assert_eq!(sender.send_request(req).await.expect("h2 answer").status(), 200);
    let ended = tokio::time::timeout(PATIENCE, conn).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection stayed open");

    // A long-poll waits 3 s for the server's ping on a connection idle for 1 s before it.
    let client = reqwest::Client::new();
    let open = client.get(app.url("/socket.io/?EIO=4&transport=polling")).send().await.expect("handshake");
    let open = open.text().await.expect("open packet");
    let sid: serde_json::Value = serde_json::from_str(open.trim_start_matches('0')).expect("open packet json");
    let sid = sid["sid"].as_str().expect("sid");
    let poll = client.get(app.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"))).send().await;
    assert_eq!(poll.expect("long-poll answered").text().await.expect("body"), "2", "the ping");

    // A WebSocket outlives the idle time.
    let token = app.key.clone();
    let socket = SocketClient::connect(&app.base, json!({"token": token})).await.expect("connects");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let ack = socket.request("subscribe", json!({"events": ["user.*"]})).await;
    assert_eq!(ack["ok"], true, "{ack}");
}

/// Past `http.max_connections`, a new connection is closed at once and counted; once
/// connections go, the server answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.http.max_connections = 3).await.expect("sqlite");
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&app.base).await);
    }
    // Accepted in order: the fourth is over the cap.
    let mut over = connect(&app.base).await;
    let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n").await;
    let answer = closed_within(&mut over, PATIENCE).await.expect("closed at once");
    assert!(answer.is_empty(), "nothing is answered over the cap: {}", String::from_utf8_lossy(&answer));

    drop(held);
    let deadline = Instant::now() + PATIENCE;
    loop {
        // A fresh client each time: no pooled connection that the server already closed.
        let tried = reqwest::Client::new().get(app.url("/healthz")).send().await;
        if tried.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(Instant::now() < deadline, "the server never answered again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(&app, "herald_http_connections_refused_total").await >= 1.0);
    assert_eq!(metric(&app, "herald_http_connections_max").await, 3.0);
    assert!(metric(&app, "herald_http_connections").await >= 1.0, "the scrape's own connection");
}

/// The defect as reported: the real binary with an open-file limit of 128 and more idle
/// clients than that. With the cap set above what the limit allows, `accept` fails with
/// `Too many open files`: the server logs it, backs off, keeps going, and answers as soon as
/// the header timeout has cut the idle clients, while they still hold their sockets open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_out_of_file_descriptors_stays_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" serve")
        .arg(env!("CARGO_BIN_EXE_herald"))
        .current_dir(dir.path())
        .env_remove("CARGO")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HERALD_") {
            cmd.env_remove(name);
        }
    }
    let mut child = cmd
        .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HERALD_HTTP__HEADER_READ_TIMEOUT_SECS", "2")
        .env("HERALD_HTTP__MAX_CONNECTIONS", "1000")
        .env("HERALD_LOG__FORMAT", "json")
        .spawn()
        .expect("spawn herald");
    let (mut stdout, mut stderr) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let output = tokio::spawn(async move {
        let (mut out, mut err) = (String::new(), String::new());
        let _ = tokio::join!(stdout.read_to_string(&mut out), stderr.read_to_string(&mut err));
        out + &err
    });
    // A new connection for every request: a kept-alive one would get through without the
    // listener, which is what the flood blocks.
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(2)).pool_max_idle_per_host(0).build().expect("client");
    let up = |client: reqwest::Client, url: String| async move {
        client.get(url).send().await.is_ok_and(|r| r.status() == StatusCode::OK)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !up(client.clone(), format!("{base}/healthz")).await {
        assert!(Instant::now() < deadline, "herald did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 200 idle clients: more than the 128 descriptors the server may hold.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(connect(&base).await);
    }
    let flooded = Instant::now();
    let deadline = flooded + Duration::from_secs(20);
    while !up(client.clone(), format!("{base}/healthz")).await {
        assert!(Instant::now() < deadline, "herald stayed unreachable while idle clients held their sockets");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("text");
    let accept_errors = text
        .lines()
        .find_map(|l| l.strip_prefix("herald_http_accept_errors_total ").and_then(|v| v.trim().parse::<f64>().ok()))
        .unwrap_or_else(|| panic!("no accept error counter:\n{text}"));
    assert!(accept_errors >= 1.0, "the flood never exhausted the descriptors: {accept_errors}");
    drop(idle);
    child.start_kill().expect("kill");
    let _ = child.wait().await;
    let log = output.await.expect("output");
    assert!(log.contains("cannot accept a connection"), "{log}");
    assert!(log.contains("Too many open files"), "{log}");
}
