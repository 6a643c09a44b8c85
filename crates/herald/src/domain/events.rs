//! The event catalog (custom types per project) and publishing custom events.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;

use super::{
    retry_on_stale,
    validate::{Checks, nullable},
};
use crate::{
    domain::{DomainError, DomainResult, FieldError},
    events::{EventContext, NewEvent, types},
    store::{
        self, Store, StoreError,
        catalog::{EventType, Published},
        events::EventRow,
    },
};

pub use super::webhooks::is_event_name;

/// How long an idempotency key returns its first event.
pub const IDEMPOTENCY_WINDOW: TimeDelta = TimeDelta::hours(24);
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewEventType {
    pub name: String,
    pub description: Option<String>,
    pub schema: Option<Value>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTypePatch {
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub schema: Option<Option<Value>>,
}

/// Built-in names, and prefixes Herald keeps for itself.
fn is_reserved(name: &str) -> bool {
    types::ALL.contains(&name) || name == types::TEST || name.starts_with("webhook.")
}

fn check_type(t: &EventType) -> DomainResult<()> {
    let mut c = Checks::default();
    if !is_event_name(&t.name) {
        c.fail("name", "must be dot-separated words of letters, digits, `_` or `-`, e.g. `order.completed`");
    } else if is_reserved(&t.name) {
        c.fail("name", "is a built-in event type (or under `webhook.`, which Herald keeps); choose another name");
    }
    c.opt_text("description", t.description.as_deref(), 1000);
    if t.schema.as_ref().is_some_and(|s| super::validate::json_has_nul(&s.0)) {
        c.fail("schema", "must not contain NUL (\\u0000) characters");
    } else if let Some(schema) = &t.schema
        && let Err(e) = jsonschema::validator_for(&schema.0)
    {
        c.fail("schema", format!("is not a valid JSON Schema: {e}"));
    }
    c.finish()
}

pub async fn create_type(store: &Store, project_id: &str, input: NewEventType) -> DomainResult<EventType> {
    let now = store::now();
    let t = EventType {
        project_id: project_id.to_owned(),
        name: input.name,
        description: input.description,
        schema: input.schema.map(Json),
        created_at: now,
        updated_at: now,
    };
    check_type(&t)?;
    store.insert_event_type(&t).await?;
    Ok(t)
}

pub async fn update_type(
    store: &Store,
    project_id: &str,
    name: &str,
    patch: EventTypePatch,
) -> DomainResult<EventType> {
    let mut t = store.get_event_type(project_id, name).await?;
    if let Some(d) = patch.description {
        t.description = d;
    }
    if let Some(s) = patch.schema {
        t.schema = s.map(Json);
    }
    t.updated_at = store::now();
    check_type(&t)?;
    store.update_event_type(&t).await?;
    Ok(t)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Publish {
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: Value,
    pub idempotency_key: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub sandbox: Option<bool>,
    pub resource: Option<ResourceRef>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceRef {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// An event as the API shows it (the same fields as the delivery envelope).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub project_id: Option<String>,
    pub sequence: i64,
    pub resource: Option<Value>,
    pub data: Value,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub sandbox: bool,
    pub actor: Option<String>,
}

impl From<EventRow> for EventView {
    fn from(e: EventRow) -> Self {
        let resource = match (e.resource_type, e.resource_id) {
            (Some(kind), Some(id)) => Some(serde_json::json!({"type": kind, "id": id})),
            _ => None,
        };
        EventView {
            id: e.id,
            event_type: e.event_type,
            occurred_at: e.occurred_at,
            project_id: e.project_id,
            sequence: e.seq,
            resource,
            data: e.data.0,
            request_id: e.request_id,
            idempotency_key: e.idempotency_key,
            sandbox: e.sandbox,
            actor: e.actor,
        }
    }
}

/// Checks one event against the catalog (type registered, data valid against its schema)
/// and builds it. `prefix` names the field in errors (`events[3].`) for batches.
async fn prepare(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    input: Publish,
    header_key: Option<&str>,
    prefix: &str,
) -> DomainResult<NewEvent> {
    let t = match store.get_event_type_for_publish(project_id, &input.event_type).await {
        Ok(t) => t,
        Err(StoreError::NotFound(_)) => {
            return Err(DomainError::invalid_field(
                &format!("{prefix}type"),
                format!(
                    "`{}` is not a registered event type; register it with POST /api/v1/event-types",
                    input.event_type
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut errors = Vec::new();
    if let Some(schema) = &t.schema {
        match jsonschema::validator_for(&schema.0) {
            Ok(validator) => {
                for e in validator.iter_errors(&input.data).take(20) {
                    let path = e.instance_path().to_string();
                    let field = format!("{prefix}data{}", path.replace('/', "."));
                    errors.push(FieldError::new(field, e.to_string()));
                }
            }
            Err(e) => {
                return Err(DomainError::internal(anyhow::anyhow!("stored schema of {} is invalid: {e}", t.name)));
            }
        }
    }
    let key = input.idempotency_key.or(header_key.map(str::to_owned));
    if let Some(k) = &key
        && (k.is_empty() || k.len() > 255)
    {
        errors.push(FieldError::new(format!("{prefix}idempotencyKey"), "must be 1 to 255 characters"));
    }
    if super::validate::json_has_nul(&input.data) {
        errors.push(FieldError::new(format!("{prefix}data"), "must not contain NUL (\\u0000) characters"));
    }
    if input.data.to_string().len() > 256 * 1024 {
        errors.push(FieldError::new(format!("{prefix}data"), "must be at most 256 KiB as JSON"));
    }
    if !errors.is_empty() {
        return Err(DomainError::validation(errors));
    }
    let mut event = NewEvent {
        id: store::new_id(),
        organization_id: None,
        project_id: Some(project_id.to_owned()),
        event_type: t.name,
        resource_type: input.resource.as_ref().map(|r| r.kind.clone()),
        resource_id: input.resource.map(|r| r.id),
        data: input.data,
        request_id: ctx.request_id.clone(),
        actor: ctx.actor.clone(),
        idempotency_key: key,
        sandbox: input.sandbox.unwrap_or(false),
        occurred_at: store::now(),
    };
    if let Some(at) = input.occurred_at {
        event.occurred_at = store::truncate(at);
    }
    Ok(event)
}

/// Publishes events in one transaction. Each answer says whether it was new.
pub async fn publish(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    inputs: Vec<Publish>,
    header_key: Option<&str>,
    batch: bool,
) -> DomainResult<Vec<(bool, EventView)>> {
    if batch && (inputs.is_empty() || inputs.len() > MAX_BATCH) {
        return Err(DomainError::invalid_field("events", format!("send 1 to {MAX_BATCH} events")));
    }
    let mut events = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let prefix = if batch { format!("events[{i}].") } else { String::new() };
        // A batch shares no header key: each event brings its own.
        events.push(prepare(store, ctx, project_id, input, if batch { None } else { header_key }, &prefix).await?);
    }
    let published =
        retry_on_stale(|| store.publish_events(project_id, &events, store::now() - IDEMPOTENCY_WINDOW)).await?;
    // Events stored now come back as stored; a reused key's first event is read.
    let existing: Vec<String> = published
        .iter()
        .filter_map(|p| match p {
            Published::Existing(id) => Some(id.clone()),
            Published::Created(_) => None,
        })
        .collect();
    let stored: std::collections::HashMap<String, EventRow> = if existing.is_empty() {
        Default::default()
    } else {
        store.events_by_ids(&existing).await?.into_iter().map(|e| (e.id.clone(), e)).collect()
    };
    let mut out = Vec::with_capacity(published.len());
    for p in published {
        out.push(match p {
            Published::Created(row) => (true, EventView::from(*row)),
            // A batch may name one key twice: the second answer is the first's event, read
            // back like any other (the publish has committed).
            Published::Existing(id) => {
                let row = stored.get(&id).cloned().ok_or(StoreError::NotFound("event"))?;
                (false, EventView::from(row))
            }
        });
    }
    Ok(out)
}
