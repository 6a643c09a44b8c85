//! The error contract shared by every route: one shape, the right status, nothing changed.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{TestApp, assert_error, send};

crate::both_backends!(
    malformed_json_names_the_problem,
    oversized_body_is_413,
    wrong_content_type_is_415,
    unknown_route_and_method,
    request_id_is_echoed_or_generated,
);

async fn malformed_json_names_the_problem(app: TestApp) {
    let (status, body) = send(
        app.req(Method::POST, "/api/v1/users")
            .header("content-type", "application/json")
            .body("{\"username\": \"x\",,}"),
    )
    .await;
    let msg = assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_json");
    assert!(msg.contains("line 1 column"), "{msg}");
}

async fn oversized_body_is_413(app: TestApp) {
    let big = "x".repeat(1024 * 1024 + 10);
    let (status, body) = app.post("/api/v1/users", json!({"username": "big", "metadata": {"blob": big}})).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let (_, list) = app.get("/api/v1/users").await;
    assert_eq!(list["total"], 0);
}

async fn wrong_content_type_is_415(app: TestApp) {
    let (status, body) =
        send(app.req(Method::POST, "/api/v1/users").header("content-type", "text/plain").body("{\"username\":\"x\"}"))
            .await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}

async fn unknown_route_and_method(app: TestApp) {
    let (status, body) = app.get("/api/v1/nothing-here").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "route_not_found");
    let (status, body) = send(app.req(Method::PATCH, "/api/v1/game-worlds")).await;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

async fn request_id_is_echoed_or_generated(app: TestApp) {
    let resp =
        app.req(Method::GET, "/api/v1/users").header("X-Request-Id", "trace-abc-123").send().await.expect("send");
    assert_eq!(resp.headers()["x-request-id"], "trace-abc-123");
    let resp = app.anon(Method::GET, "/api/v1/users").send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let generated = resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()).expect("x-request-id");
    assert_eq!(generated.len(), 36, "a generated UUID: {generated}");
    // The request id lands in the events the request causes.
    let (_, user) = send(
        app.req(Method::POST, "/api/v1/users")
            .header("X-Request-Id", "req-for-event")
            .json(&json!({"username": "rid"})),
    )
    .await;
    let events = app.store.events_for_resource("user", user["id"].as_str().expect("id")).await.expect("events");
    assert_eq!(events[0].request_id.as_deref(), Some("req-for-event"));
}

/// A request still arriving when `http.request_timeout_secs` runs out gets 408 in the error
/// shape, and what it would have created is not created. (A clock in memory: one backend.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_time_limit_is_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app =
        TestApp::spawn_with(crate::common::Backend::Sqlite, |c| c.http.request_timeout_secs = 1).await.expect("app");
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = json!({"username": "late"}).to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        app.key,
        body.len(),
        &body[..body.len() / 2]
    );
    conn.write_all(head.as_bytes()).await.expect("send half the request");
    // Never send the rest: the server answers when the limit runs out.
    let mut response = String::new();
    conn.read_to_string(&mut response).await.expect("read the answer");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    let json_body = response.split("\r\n\r\n").nth(1).expect("a body");
    let json_body: serde_json::Value = serde_json::from_str(json_body).expect("JSON");
    assert_eq!(json_body["error"]["code"], "request_timeout", "{json_body}");
    let (_, list) = app.get("/api/v1/users").await;
    assert_eq!(list["total"], 0);
}
