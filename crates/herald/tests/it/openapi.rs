//! The OpenAPI description (`/openapi.json`): it covers every route, and the suite's
//! responses match it.
//!
//! - `every_route_is_documented`: the routers are built with `routes!` only, which documents
//!   what it serves; a `.route(` in the API's router code would serve a route the description
//!   does not have, so the check fails on it.
//! - `every_documented_route_is_served`: each operation of the description answers (with a
//!   made-up id: a 404 in the API's shape is fine, the router's `route_not_found` or a 405
//!   is not).
//! - Every JSON response the suite reads through `common::send` is validated against the
//!   description's schema for its route and status (`check_response`).

use std::sync::OnceLock;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{Backend, TestApp, send};

/// The description as the server serves it, built once per test process.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| serde_json::to_value(herald::api::openapi::documented_routes().1).expect("serializes"))
}

#[test]
fn every_route_is_documented() {
    for (file, source) in [
        ("api/mod.rs", include_str!("../../src/api/mod.rs")),
        ("api/gametalk/mod.rs", include_str!("../../src/api/gametalk/mod.rs")),
    ] {
        let undocumented: Vec<&str> =
            source.lines().filter(|l| l.trim_start().starts_with(".route(")).map(str::trim).collect();
        assert!(
            undocumented.is_empty(),
            "{file} serves routes the description lacks (use routes! and #[utoipa::path]):\n{}",
            undocumented.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_served() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let (status, served) = send(app.anon(Method::GET, "/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&served, spec(), "the served description is the one the tests check against");
    assert_eq!(served["openapi"], "3.1.0");
    let paths = served["paths"].as_object().expect("paths");
    assert!(paths.len() > 5);
    for (path, item) in paths {
        let concrete = path
            .replace("{app_key}", "nokey")
            .split('/')
            .map(|seg| if seg.starts_with('{') { "no-such-id" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["get", "put", "post", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let resp =
                app.req(m, &concrete).header("content-type", "application/json").body("{}").send().await.expect("sent");
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(body["error"]["code"], "route_not_found", "{method} {path} is documented but not served");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_is_served_from_the_binary() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let resp = app.anon(Method::GET, "/docs/").send().await.expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("https://"), "no asset from a CDN:\n{html}");
}

/// The JSON Pointer escape of one path segment.
fn escape(segment: &str) -> String {
    // `{` and `}` are not allowed in a URI fragment: percent-encoded.
    segment.replace('~', "~0").replace('/', "~1").replace('{', "%7B").replace('}', "%7D")
}

/// The documented path template `path` (a concrete request path) falls under, if any.
fn template_of(path: &str) -> Option<&'static str> {
    let wanted: Vec<&str> = path.split('?').next().unwrap_or(path).split('/').collect();
    spec()["paths"].as_object()?.keys().map(String::as_str).find(|template| {
        let parts: Vec<&str> = template.split('/').collect();
        parts.len() == wanted.len() && parts.iter().zip(&wanted).all(|(t, w)| t.starts_with('{') || t == w)
    })
}

/// Validates a JSON response the suite received against the description: the schema of its
/// route, method and status (or the `4XX` / `5XX` range). Paths outside the description
/// (`/healthz`, `/metrics`, unknown routes) are skipped.
pub fn check_response(method: &str, path: &str, status: u16, body: &Value) {
    use std::{collections::HashMap, sync::Mutex};
    static VALIDATORS: OnceLock<Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>> = OnceLock::new();
    let Some(template) = template_of(path) else { return };
    let method = method.to_lowercase();
    let operation = &spec()["paths"][template][&method];
    if operation.is_null() {
        return;
    }
    let responses = &operation["responses"];
    let code = status.to_string();
    let range = format!("{}XX", status / 100);
    let Some(key) = [code.as_str(), range.as_str(), "default"].into_iter().find(|k| !responses[*k].is_null()) else {
        panic!("{method} {template} answered {status}, which its description does not list: {body}");
    };
    let schema = &responses[key]["content"]["application/json"]["schema"];
    if schema.is_null() {
        return;
    }
    let pointer = format!("#/paths/{}/{method}/responses/{key}/content/application~1json/schema", escape(template));
    let validator = VALIDATORS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(pointer.clone())
        .or_insert_with(|| {
            let mut root = spec().clone();
            root["$ref"] = Value::String(pointer.clone());
            root["$schema"] = Value::String("https://json-schema.org/draft/2020-12/schema".into());
            std::sync::Arc::new(jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("schema {pointer}: {e}")))
        })
        .clone();
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(
        errors.is_empty(),
        "{method} {path} -> {status} does not match the description ({template}):\n{}\n{body}",
        errors.join("\n")
    );
}
