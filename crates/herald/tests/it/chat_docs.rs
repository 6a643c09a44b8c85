//! docs/CHAT.md's curl examples, run as written against a real server. The ```sh blocks that
//! call curl run in order in one `sh -e`, with `HERALD` and `API_KEY` (the two variables the
//! doc asks a reader to set) in the environment. Then:
//!
//! - every GameTalk route and every message route is called by some example;
//! - each answer matches the example answer printed after its block (the same fields with the
//!   same types, the same booleans and result codes: ids, keys and dates may differ);
//! - every field of each GameTalk answer is declared in the route's answer schema in
//!   `/openapi.json`, and each GameTalk route the doc sends a body to describes that body.
//!
//! If CHAT.md changes, this test runs what it then says.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::{common::TestApp, openapi::spec};

crate::both_backends!(chat_md_curl_examples_run_as_written);

const DOC: &str = include_str!("../../../../docs/CHAT.md");
const GAMETALK: &str = "/game-talk/v1.1/appkeys/{app_key}";
const MARK: &str = "@@chat-md-example ";

/// A ```sh block that calls curl, and the ```json answer printed right after it, if any.
struct Example {
    script: String,
    answer: Option<Value>,
}

fn examples(doc: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut lines = doc.lines();
    // Whether the previous fenced block was a curl example (so a json block answers it).
    let mut after_example = false;
    while let Some(line) = lines.next() {
        let Some(lang) = line.trim_start().strip_prefix("```") else { continue };
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let body = body.join("\n");
        match lang.trim() {
            "sh" | "bash" if body.contains("curl ") => {
                out.push(Example { script: body, answer: None });
                after_example = true;
                continue;
            }
            "json" if after_example => {
                let answer = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("CHAT.md: an example answer is not JSON ({e}):\n{body}"));
                if let Some(last) = out.last_mut() {
                    last.answer = Some(answer);
                }
            }
            _ => {}
        }
        after_example = false;
    }
    out
}

/// One curl call of an example: its method and the documented path template it calls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    method: String,
    template: String,
}

/// The curl calls of a script: `-X` gives the method (else POST with `-d`, else GET); the
/// URL is the quoted one starting with `$GT` (the GameTalk base) or `$HERALD`.
fn calls(script: &str) -> Vec<Call> {
    let joined = script.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for command in line.split("curl ").skip(1) {
            let words: Vec<&str> = command.split_whitespace().collect();
            let method = match words.iter().position(|w| *w == "-X") {
                Some(i) => words.get(i + 1).map(|m| m.to_string()).unwrap_or_default(),
                None if words.contains(&"-d") || words.contains(&"--data") => "POST".into(),
                None => "GET".into(),
            };
            let Some(url) = command.split('"').find(|part| part.starts_with("$GT") || part.starts_with("$HERALD"))
            else {
                panic!("CHAT.md: a curl call with no \"$GT/...\" or \"$HERALD/...\" URL: curl {command}");
            };
            let path = url.split('?').next().unwrap_or(url);
            let path = path.replacen("$GT", GAMETALK, 1).replacen("$HERALD", "", 1);
            let Some(template) = template_of(&path) else {
                panic!("CHAT.md calls {path}, which /openapi.json does not describe");
            };
            out.push(Call { method: method.to_lowercase(), template });
        }
    }
    out
}

/// The documented path `path` (with `$VARIABLE` segments) stands for.
fn template_of(path: &str) -> Option<String> {
    let wanted: Vec<&str> = path.split('/').collect();
    spec()["paths"].as_object()?.keys().find_map(|template| {
        let parts: Vec<&str> = template.split('/').collect();
        let fits = parts.len() == wanted.len()
            && parts.iter().zip(&wanted).all(|(t, w)| t == w || (t.starts_with('{') && w.starts_with('$')));
        fits.then(|| template.clone())
    })
}

/// Where `actual` differs from the documented `expected`: another set of fields, another
/// type, another boolean or result code, another number of items. Other values (ids, keys,
/// dates, names) may differ.
fn differences(expected: &Value, actual: &Value, at: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let (ek, ak): (BTreeSet<&String>, BTreeSet<&String>) = (e.keys().collect(), a.keys().collect());
            if ek != ak {
                out.push(format!("{at}: fields {ak:?}, documented {ek:?}"));
            }
            for (k, v) in e {
                if let Some(av) = a.get(k) {
                    differences(v, av, &format!("{at}.{k}"), out);
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!("{at}: {} items, documented {}", a.len(), e.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                differences(ev, av, &format!("{at}[{i}]"), out);
            }
        }
        (Value::Bool(_), _) | (Value::Null, _) if expected != actual => {
            out.push(format!("{at}: {actual}, documented {expected}"));
        }
        (Value::Number(_), _) if at.ends_with(".resultCode") && expected != actual => {
            out.push(format!("{at}: {actual}, documented {expected}"));
        }
        (Value::String(_), Value::String(_)) | (Value::Number(_), Value::Number(_)) => {}
        (Value::Bool(_), Value::Bool(_)) | (Value::Null, Value::Null) => {}
        _ => out.push(format!("{at}: {actual}, documented {expected} (another type)")),
    }
}

/// `schema` with its `$ref` followed.
fn resolve(schema: &Value) -> &Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => resolve(&spec()["components"]["schemas"][name]),
        None => schema,
    }
}

/// The parts of a schema a value must (allOf) or may (oneOf, anyOf) satisfy, itself included.
fn parts(schema: &Value) -> Vec<&Value> {
    let schema = resolve(schema);
    let mut out = vec![schema];
    for key in ["allOf", "oneOf", "anyOf"] {
        for part in schema[key].as_array().into_iter().flatten() {
            out.extend(parts(part));
        }
    }
    out
}

/// The fields of `value` that `schema` does not declare (objects without `properties` take
/// any field).
fn undeclared(schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let parts = parts(schema);
    match value {
        Value::Object(fields) => {
            let declared: Vec<&serde_json::Map<String, Value>> =
                parts.iter().filter_map(|p| p["properties"].as_object()).collect();
            if declared.is_empty() {
                return;
            }
            for (name, v) in fields {
                match declared.iter().find_map(|props| props.get(name)) {
                    Some(field_schema) => undeclared(field_schema, v, &format!("{at}.{name}"), out),
                    None => out.push(format!("{at}.{name}")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = parts.iter().map(|p| &p["items"]).find(|i| !i.is_null()) {
                for (i, v) in items.iter().enumerate() {
                    undeclared(item_schema, v, &format!("{at}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

async fn chat_md_curl_examples_run_as_written(app: TestApp) {
    let examples = examples(DOC);
    assert!(!examples.is_empty(), "docs/CHAT.md has no ```sh block calling curl");

    // Every GameTalk and message route is shown (PUT or PATCH for an edit).
    let shown: BTreeSet<Call> = examples.iter().flat_map(|e| calls(&e.script)).collect();
    let mut missing = Vec::new();
    for (template, item) in spec()["paths"].as_object().expect("paths") {
        if !(template.starts_with(GAMETALK) || template.starts_with("/api/v1/chat/channels/")) {
            continue;
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let alternatives: &[&str] = if matches!(method, "put" | "patch") { &["put", "patch"] } else { &[method] };
            if !alternatives.iter().any(|m| shown.contains(&Call { method: m.to_string(), template: template.clone() }))
            {
                missing.push(format!("{method} {template}"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/CHAT.md has no curl example for:\n{}", missing.join("\n"));

    // Each GameTalk route the doc sends a body to describes it (fields, not just "an object").
    for call in shown.iter().filter(|c| c.template.starts_with(GAMETALK)) {
        let op = &spec()["paths"][&call.template][&call.method];
        if op["requestBody"].is_null() {
            continue;
        }
        let body = &op["requestBody"]["content"]["application/json"]["schema"];
        assert!(
            parts(body).iter().any(|p| p["properties"].as_object().is_some_and(|f| !f.is_empty())),
            "{} {}: the description gives no fields for the request body: {body}",
            call.method,
            call.template
        );
    }

    // Run them all in order, in one shell, marking where each example's output starts.
    let mut script = String::new();
    for (i, e) in examples.iter().enumerate() {
        script.push_str(&format!("printf '\\n{MARK}{i}\\n'\n{}\n", e.script));
    }
    let run = tokio::process::Command::new("sh")
        .args(["-e", "-c", &script])
        .env("HERALD", &app.base)
        .env("API_KEY", &app.key)
        .output()
        .await
        .expect("sh runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "the examples failed ({}):\n{stdout}\n{stderr}", run.status);
    let mut outputs = vec![String::new(); examples.len()];
    let mut current = None;
    for line in stdout.lines() {
        if let Some(i) = line.strip_prefix(MARK) {
            current = i.parse::<usize>().ok();
        } else if let Some(out) = current.and_then(|i| outputs.get_mut(i)) {
            out.push_str(line);
            out.push('\n');
        }
    }

    for (example, output) in examples.iter().zip(&outputs) {
        let Some(documented) = &example.answer else { continue };
        let context = format!("example:\n{}\nanswered:\n{output}", example.script);
        let answer: Value =
            serde_json::from_str(output.trim()).unwrap_or_else(|e| panic!("not a JSON answer ({e}); {context}"));
        let mut diffs = Vec::new();
        differences(documented, &answer, "answer", &mut diffs);
        assert!(diffs.is_empty(), "the answer is not the documented one:\n{}\n{context}", diffs.join("\n"));
        if answer["header"].is_object() {
            assert_eq!(answer["header"]["isSuccessful"], documented["header"]["isSuccessful"], "{context}");
        }

        // A GameTalk answer: every field is in the description's schema, which it matches.
        let calls = calls(&example.script);
        let [call] = calls.as_slice() else { continue };
        if !call.template.starts_with(GAMETALK) {
            continue;
        }
        let schema =
            &spec()["paths"][&call.template][&call.method]["responses"]["200"]["content"]["application/json"]["schema"];
        let mut extra = Vec::new();
        undeclared(schema, &answer, "answer", &mut extra);
        assert!(
            extra.is_empty(),
            "{} {}: /openapi.json does not declare {}; {context}",
            call.method,
            call.template,
            extra.join(", ")
        );
        crate::openapi::check_response(&call.method, &call.template, 200, &answer);
    }
}
