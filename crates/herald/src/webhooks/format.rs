//! Payload formats: what one outbox event looks like to each kind of receiver.
//!
//! Studios moving to Herald already run receivers written for another service (the seeds in
//! `shared/seeds/`). Each endpoint picks the format its receiver reads, so that moving means
//! changing the URL it is registered with and nothing else. Every format is rendered from the
//! same stored event, so a retry or replay sends the same bytes, and the same ids.
//! Which headers sign each format is [`super::signing`]'s business; how its answers are judged
//! is here ([`refusal`]), because it depends on what the receiver's body means.

use serde::Serialize;
use serde_json::{Map, Value};

use super::rfc3339;
use crate::{
    events::types,
    store::{events::EventRow, webhooks::WebhookFormat},
};

/// The delivery body of `event` in this format: compact JSON with a fixed field order, so
/// a receiver that parses it and signs `JSON.stringify(req.body)` (as the Gatrix and
/// GroMach receivers do) gets the signed bytes back.
pub fn body(format: WebhookFormat, event: &EventRow) -> Vec<u8> {
    let json = match format {
        WebhookFormat::Herald => return super::envelope_body(event),
        WebhookFormat::Gatrix => serde_json::to_vec(&gatrix(event)),
        WebhookFormat::Bkend => serde_json::to_vec(&bkend(event)),
        WebhookFormat::Aghanim => serde_json::to_vec(&aghanim(event)),
        WebhookFormat::Gromach => serde_json::to_vec(&gromach(event)),
    };
    // Serializing these types cannot fail: no map has non-string keys.
    json.unwrap_or_default()
}

/// Why an answer the HTTP status calls a success is a failure all the same, when this
/// format's receivers say so in the body; `None` when it is what it looks like.
pub fn refusal(format: WebhookFormat, status: Option<u16>, body: Option<&str>) -> Option<Refusal> {
    if format != WebhookFormat::Aghanim || !status.is_some_and(|s| (200..300).contains(&s)) {
        return None;
    }
    // Aghanim receivers answer failures as 200 `{"status": "error", "code", "message"}`.
    let answer: Value = serde_json::from_str(body?).ok()?;
    if answer.get("status").and_then(Value::as_str) != Some("error") {
        return None;
    }
    let code = answer.get("code").and_then(Value::as_str).unwrap_or("error").chars().take(100).collect::<String>();
    let message = answer.get("message").and_then(Value::as_str).unwrap_or("").chars().take(500).collect();
    // The player does not exist, or the request's data is invalid: sending the same event
    // again cannot change the answer. Anything else (`invalid_signature` while a secret is
    // being rotated, an outage behind the receiver) may pass later.
    let permanent = matches!(code.as_str(), "not_found" | "validation_error");
    Some(Refusal { code, message, permanent })
}

/// What the attempt log says of an answer that did not pass (`None` when it did): the
/// status, or the receiver's refusal inside a 2xx.
pub fn answer_error(format: WebhookFormat, status: u16, body: Option<&str>) -> Option<String> {
    match refusal(format, Some(status), body) {
        Some(refusal) => Some(refusal.describe(status)),
        None if !(200..300).contains(&status) => Some(format!("the endpoint answered {status}")),
        None => None,
    }
}

/// Whether the answer to the connection test (`POST /webhooks/{id}/test`) passes: a 2xx
/// the format does not call a refusal, and for GroMach `{"success": true}`, as its page
/// asks of a receiver.
pub fn test_passed(format: WebhookFormat, status: Option<u16>, body: Option<&str>) -> bool {
    let ok = status.is_some_and(|s| (200..300).contains(&s)) && refusal(format, status, body).is_none();
    ok && (format != WebhookFormat::Gromach || receiver_said_success(body))
}

/// The `data` of the connection test event.
pub fn test_data(format: WebhookFormat, webhook_id: &str, webhook_name: Option<&str>) -> Value {
    match format {
        // The shape of GroMach's own test payload.
        WebhookFormat::Gromach => serde_json::json!({
            "message": "This is a test webhook from Herald",
            "integration_name": webhook_name.unwrap_or(webhook_id),
        }),
        _ => serde_json::json!({"message": "Test event from Herald", "webhookId": webhook_id}),
    }
}

/// `{"success": true}`: the seeds' connection-test convention.
pub fn receiver_said_success(body: Option<&str>) -> bool {
    body.and_then(|b| serde_json::from_str::<Value>(b).ok()).is_some_and(|v| v["success"] == Value::Bool(true))
}

/// A receiver's refusal inside a 2xx answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    /// Not retried: the delivery fails at once.
    pub permanent: bool,
}

impl Refusal {
    /// The attempt's error text.
    pub fn describe(&self, status: u16) -> String {
        let kind = if self.permanent { "permanent, not retried" } else { "retried" };
        if self.message.is_empty() {
            format!("the endpoint answered {status} with error `{}` ({kind})", self.code)
        } else {
            format!("the endpoint answered {status} with error `{}` ({kind}): {}", self.code, self.message)
        }
    }
}

/// Whether Herald itself names the fields of `event`'s data (camelCase), as opposed to a
/// custom event whose data the publisher wrote and which is passed on as it is.
fn is_built_in(event: &EventRow) -> bool {
    event.event_type == types::TEST || types::ALL.contains(&event.event_type.as_str())
}

/// The resource's state, as an object (`{}` when the event carries none).
fn state(event: &EventRow) -> Map<String, Value> {
    match &event.data.0 {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    }
}

// ---- gatrix ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Gatrix<'a> {
    event: &'a str,
    id: &'a str,
    timestamp: String,
    project_id: Option<&'a str>,
    data: Value,
}

/// The guide's handlers read `const { event, data } = req.body`; its socket handlers, which a
/// studio's webhook handlers mirror, read `data.user` and `data.userId` on user events and
/// `data.worldId` on world events: `data` is the resource's state with those added.
fn gatrix(event: &EventRow) -> Gatrix<'_> {
    let data = match (&event.data.0, event.resource_type.as_deref()) {
        (Value::Object(_), Some("user")) => {
            let mut data = state(event);
            data.insert("userId".into(), event.data.0.get("id").cloned().unwrap_or(Value::Null));
            data.insert("user".into(), event.data.0.clone());
            Value::Object(data)
        }
        (Value::Object(_), Some("world")) => {
            let mut data = state(event);
            data.entry("worldId").or_insert(Value::Null);
            data.insert("world".into(), event.data.0.clone());
            Value::Object(data)
        }
        (data, _) => data.clone(),
    };
    Gatrix {
        event: &event.event_type,
        id: &event.id,
        timestamp: rfc3339(event.occurred_at),
        project_id: event.project_id.as_deref(),
        data,
    }
}

// ---- bkend ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bkend<'a> {
    id: &'a str,
    event_type: &'a str,
    aggregate_type: String,
    aggregate_id: Option<&'a str>,
    payload: &'a Value,
    occurred_at: String,
    metadata: BkendMetadata<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BkendMetadata<'a> {
    project_id: Option<&'a str>,
    sequence: i64,
    request_id: Option<&'a str>,
    idempotency_key: Option<&'a str>,
    sandbox: bool,
}

fn bkend(event: &EventRow) -> Bkend<'_> {
    // bkend names aggregates in PascalCase (`User`, `Order`). Herald's resource types are
    // snake_case (`client_version`); an event published without a resource is named after
    // the first word of its type (`order.completed` -> `Order`).
    let kind = event.resource_type.as_deref().unwrap_or_else(|| event.event_type.split('.').next().unwrap_or(""));
    Bkend {
        id: &event.id,
        event_type: &event.event_type,
        aggregate_type: pascal_case(kind),
        aggregate_id: event.resource_id.as_deref(),
        payload: &event.data.0,
        occurred_at: rfc3339(event.occurred_at),
        metadata: BkendMetadata {
            project_id: event.project_id.as_deref(),
            sequence: event.seq,
            request_id: event.request_id.as_deref(),
            idempotency_key: event.idempotency_key.as_deref(),
            sandbox: event.sandbox,
        },
    }
}

fn pascal_case(s: &str) -> String {
    s.split(['_', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

// ---- aghanim ----

#[derive(Serialize)]
struct Aghanim<'a> {
    event_id: &'a str,
    game_id: Option<&'a str>,
    event_type: &'a str,
    event_time: i64,
    event_data: Value,
    idempotency_key: Option<&'a str>,
    request_id: Option<&'a str>,
    sandbox: bool,
    trigger: Option<&'a str>,
    transaction_id: &'a str,
    context: Option<Value>,
}

/// The fields without a Herald source are given the closest real value (docs/WEBHOOKS.md
/// has the table): `game_id` is the project, `trigger` the actor that caused the event
/// (`key:<id>`, `admin:<id>`, `system`), `transaction_id` the request (events written by one
/// request share it, as Aghanim's do within one transaction), else the event itself.
fn aghanim(event: &EventRow) -> Aghanim<'_> {
    Aghanim {
        event_id: &event.id,
        game_id: event.project_id.as_deref(),
        event_type: &event.event_type,
        event_time: event.occurred_at.timestamp(),
        event_data: aghanim_data(event),
        idempotency_key: event.idempotency_key.as_deref(),
        request_id: event.request_id.as_deref(),
        sandbox: event.sandbox,
        trigger: event.actor.as_deref(),
        transaction_id: event.request_id.as_deref().unwrap_or(&event.id),
        context: None,
    }
}

/// Aghanim names fields in snake_case. Herald's own events are renamed so (their top-level
/// fields; nested values such as a player's `metadata` are the studio's own and kept); a
/// player's events lead with Aghanim's `EventData` (`player_id`, `name`, `email`,
/// `avatar_url`). A custom event's data is the publisher's and is sent as published.
fn aghanim_data(event: &EventRow) -> Value {
    if !is_built_in(event) {
        return event.data.0.clone();
    }
    let Value::Object(fields) = &event.data.0 else { return event.data.0.clone() };
    let mut data: Map<String, Value> = fields.iter().map(|(k, v)| (snake_case(k), v.clone())).collect();
    if event.resource_type.as_deref() == Some("user") {
        let field = |name: &str| fields.get(name).cloned().unwrap_or(Value::Null);
        data.insert("player_id".into(), field("id"));
        let name = fields.get("displayName").filter(|v| !v.is_null()).cloned().unwrap_or_else(|| field("username"));
        data.insert("name".into(), name);
    }
    Value::Object(data)
}

fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if !out.is_empty() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

// ---- gromach ----

#[derive(Serialize)]
struct Gromach<'a> {
    event_type: &'a str,
    timestamp: String,
    data: &'a Value,
}

fn gromach(event: &EventRow) -> Gromach<'_> {
    Gromach { event_type: &event.event_type, timestamp: rfc3339(event.occurred_at), data: &event.data.0 }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::{Value, json};
    use sqlx::types::Json;

    use super::{body as render, refusal, test_passed};
    use crate::store::events::EventRow;
    use crate::store::webhooks::WebhookFormat as Format;

    fn event(event_type: &str, resource: Option<(&str, &str)>, data: Value) -> EventRow {
        EventRow {
            seq: 42,
            id: "evt1".into(),
            organization_id: None,
            project_id: Some("prj1".into()),
            event_type: event_type.into(),
            resource_type: resource.map(|r| r.0.into()),
            resource_id: resource.map(|r| r.1.into()),
            data: Json(data),
            request_id: Some("req1".into()),
            actor: Some("key:k1".into()),
            idempotency_key: None,
            sandbox: false,
            occurred_at: Utc.with_ymd_and_hms(2024, 9, 5, 15, 0, 50).single().expect("time"),
        }
    }

    fn body(format: Format, e: &EventRow) -> Value {
        serde_json::from_slice(&render(format, e)).expect("json")
    }

    fn user() -> Value {
        json!({"id": "u1", "username": "hero", "email": "hero@example.com", "displayName": null,
               "avatarUrl": "https://cdn.example.com/a.png", "role": "player"})
    }

    #[test]
    fn gatrix_adds_what_the_guide_reads() {
        let b = body(Format::Gatrix, &event("user.created", Some(("user", "u1")), user()));
        assert_eq!(b["event"], "user.created");
        assert_eq!(b["data"]["userId"], "u1");
        assert_eq!(b["data"]["user"]["email"], "hero@example.com");
        assert_eq!(b["data"]["email"], "hero@example.com", "the state itself too");
        let w = body(
            Format::Gatrix,
            &event("world.maintenance_started", Some(("world", "w1")), json!({"worldId": "world_001"})),
        );
        assert_eq!(w["data"]["worldId"], "world_001");
        assert_eq!(w["data"]["world"]["worldId"], "world_001");
    }

    #[test]
    fn bkend_names_the_aggregate() {
        let b = body(Format::Bkend, &event("user.created", Some(("user", "u1")), user()));
        assert_eq!(
            (b["eventType"].as_str(), b["aggregateType"].as_str(), b["aggregateId"].as_str()),
            (Some("user.created"), Some("User"), Some("u1"))
        );
        assert_eq!(b["payload"]["email"], "hero@example.com");
        assert_eq!(b["occurredAt"], "2024-09-05T15:00:50.000Z");
        assert_eq!(
            b["metadata"],
            json!({"projectId": "prj1", "sequence": 42, "requestId": "req1", "idempotencyKey": null, "sandbox": false})
        );
        let v = body(Format::Bkend, &event("client_version.updated", Some(("client_version", "v1")), json!({})));
        assert_eq!(v["aggregateType"], "ClientVersion");
        let o = body(Format::Bkend, &event("order.completed", None, json!({"total": 3})));
        assert_eq!((o["aggregateType"].as_str(), &o["aggregateId"]), (Some("Order"), &Value::Null));
    }

    #[test]
    fn aghanim_is_snake_case_with_unix_time() {
        let b = body(Format::Aghanim, &event("player.update", Some(("user", "u1")), user()));
        let keys: Vec<&str> = b.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 11, "{keys:?}");
        assert_eq!(b["event_time"], 1725548450);
        assert_eq!(b["event_data"]["player_id"], "u1");
        assert_eq!(b["event_data"]["name"], "hero", "the username when there is no display name");
        assert_eq!(b["event_data"]["email"], "hero@example.com");
        assert_eq!(b["event_data"]["avatar_url"], "https://cdn.example.com/a.png");
        assert_eq!(
            (b["game_id"].as_str(), b["trigger"].as_str(), b["transaction_id"].as_str()),
            (Some("prj1"), Some("key:k1"), Some("req1"))
        );
        assert_eq!(b["context"], Value::Null);
        // A custom event's data is the publisher's, as published.
        let c = body(Format::Aghanim, &event("item.granted", None, json!({"itemId": "sword"})));
        assert_eq!(c["event_data"], json!({"itemId": "sword"}));
    }

    #[test]
    fn gromach_wraps_the_data() {
        let articles = json!({"articles": [{"id": "a1", "title": "Patch notes"}]});
        let b = body(Format::Gromach, &event("publish_articles", None, articles.clone()));
        assert_eq!(
            b,
            json!({"event_type": "publish_articles", "timestamp": "2024-09-05T15:00:50.000Z", "data": articles})
        );
        let raw = render(Format::Gromach, &event("publish_articles", None, articles));
        let text = String::from_utf8(raw).expect("utf-8");
        assert!(
            text.starts_with(r#"{"event_type":"publish_articles","timestamp":"2024-09-05T15:00:50.000Z","data":{"#),
            "compact, in the page's field order: {text}"
        );
    }

    #[test]
    fn aghanim_error_answers_are_failures() {
        let not_found = r#"{"status":"error","code":"not_found","message":"no such player"}"#;
        let refused = refusal(Format::Aghanim, Some(200), Some(not_found)).expect("refused");
        assert!(refused.permanent);
        assert_eq!(refused.code, "not_found");
        let sig = refusal(Format::Aghanim, Some(200), Some(r#"{"status":"error","code":"invalid_signature"}"#))
            .expect("refused");
        assert!(!sig.permanent, "a signature may pass once a rotation is through");
        assert_eq!(refusal(Format::Aghanim, Some(200), Some(r#"{"status":"ok"}"#)), None);
        assert_eq!(refusal(Format::Herald, Some(200), Some(not_found)), None, "only Aghanim's receivers answer so");
        assert!(!test_passed(Format::Aghanim, Some(200), Some(not_found)));
        assert!(!test_passed(Format::Gromach, Some(200), Some("{}")));
        assert!(test_passed(Format::Gromach, Some(200), Some(r#"{"success":true}"#)));
        assert!(test_passed(Format::Herald, Some(204), None));
    }

    #[test]
    fn names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::try_from(f.as_str().to_owned()), Ok(f));
            assert_eq!(serde_json::to_value(f).expect("json"), json!(f.as_str()));
            assert_eq!(Format::ALL[f.index()], f);
        }
        assert!(Format::try_from("svix".to_owned()).is_err());
    }
}
