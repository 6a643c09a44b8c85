//! The event catalog, publishing, and reading events.

use axum::{http::HeaderMap, response::Response};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    PageBody, created,
    extract::{Json, Paging, Path, ProjectScope, Query, scopes},
};
use crate::{
    domain::events::{self, EventTypePatch, EventView, NewEventType, Publish},
    error::{ApiError, ApiResult},
    state::State,
    store::{
        catalog::{EventType, TypeFilter},
        webhooks::Delivery,
    },
};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    page: Option<u32>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/event-types", tag = "events", params(PageQuery), responses((status = 200, body = PageBody<EventType>)))]
pub async fn list_types(
    s: State,
    scope: ProjectScope<scopes::EventsRead>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<PageBody<EventType>>> {
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let page = s.store.list_event_types(&scope.project_id, req).await?;
    Ok(Json(PageBody::new(page, req, |t| t)))
}

#[utoipa::path(post, path = "/event-types", tag = "events", request_body = NewEventType, responses((status = 201, body = EventType)))]
pub async fn create_type(
    s: State,
    scope: ProjectScope<scopes::EventsPublish>,
    Json(input): Json<NewEventType>,
) -> ApiResult<Response> {
    Ok(created(events::create_type(&s.store, &scope.project_id, input).await?))
}

#[utoipa::path(get, path = "/event-types/{name}", tag = "events", params(("name" = String, Path, description = "the event type's name")), responses((status = 200, body = EventType)))]
pub async fn get_type(
    s: State,
    scope: ProjectScope<scopes::EventsRead>,
    Path(name): Path<String>,
) -> ApiResult<Json<EventType>> {
    Ok(Json(s.store.get_event_type(&scope.project_id, &name).await?))
}

#[utoipa::path(method(put, patch), path = "/event-types/{name}", tag = "events", params(("name" = String, Path, description = "the event type's name")), request_body = EventTypePatch, responses((status = 200, body = EventType)))]
pub async fn update_type(
    s: State,
    scope: ProjectScope<scopes::EventsPublish>,
    Path(name): Path<String>,
    Json(patch): Json<EventTypePatch>,
) -> ApiResult<Json<EventType>> {
    Ok(Json(events::update_type(&s.store, &scope.project_id, &name, patch).await?))
}

#[utoipa::path(delete, path = "/event-types/{name}", tag = "events", params(("name" = String, Path, description = "the event type's name")), responses((status = 200, body = EventType)))]
pub async fn delete_type(
    s: State,
    scope: ProjectScope<scopes::EventsPublish>,
    Path(name): Path<String>,
) -> ApiResult<Json<EventType>> {
    Ok(Json(s.store.delete_event_type(&scope.project_id, &name).await?))
}

fn idempotency_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("idempotency-key").and_then(|v| v.to_str().ok())
}

/// 201 with the new event, or 200 with the first event of a reused idempotency key.
#[utoipa::path(post, path = "/events", tag = "events", params(("Idempotency-Key" = Option<String>, Header)), request_body = Publish, responses((status = 201, body = EventView), (status = 200, body = EventView, description = "the first event of a reused idempotency key")))]
pub async fn publish(
    s: State,
    scope: ProjectScope<scopes::EventsPublish>,
    headers: HeaderMap,
    Json(input): Json<Publish>,
) -> ApiResult<Response> {
    let mut out =
        events::publish(&s.store, &scope.events(), &scope.project_id, vec![input], idempotency_header(&headers), false)
            .await?;
    let (is_new, view) = out.pop().ok_or_else(|| ApiError::internal(anyhow::anyhow!("publish returned nothing")))?;
    Ok(if is_new { created(view) } else { axum::Json(view).into_response() })
}

use axum::response::IntoResponse;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    events: Vec<Publish>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    created: bool,
    event: EventView,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchAnswer {
    items: Vec<BatchItem>,
}

/// All events in one transaction: all stored, or none.
#[utoipa::path(post, path = "/events/batch", tag = "events", request_body = Batch, responses((status = 201, body = BatchAnswer)))]
pub async fn publish_batch(
    s: State,
    scope: ProjectScope<scopes::EventsPublish>,
    Json(batch): Json<Batch>,
) -> ApiResult<Response> {
    let out = events::publish(&s.store, &scope.events(), &scope.project_id, batch.events, None, true).await?;
    let items: Vec<BatchItem> = out.into_iter().map(|(created, event)| BatchItem { created, event }).collect();
    Ok(created(BatchAnswer { items }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// An event type (`user.created`), `*`, or a prefix pattern (`user.*`), as in webhook
    /// subscriptions.
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    items: Vec<EventView>,
    /// Pass as `cursor` for the next (older) page; `null` at the end.
    next_cursor: Option<String>,
}

pub fn encode_cursor(parts: &str) -> String {
    URL_SAFE_NO_PAD.encode(parts)
}

pub fn decode_cursor(cursor: &str) -> ApiResult<String> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::bad_request("invalid_query", "cursor is not one Herald gave out"))
}

/// Newest first.
#[utoipa::path(get, path = "/events", tag = "events", params(ListQuery), responses((status = 200, body = EventPage)))]
pub async fn list(
    s: State,
    scope: ProjectScope<scopes::EventsRead>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<EventPage>> {
    let limit = Paging { page: None, limit: q.limit }.request()?.limit as i64;
    let before = match &q.cursor {
        Some(c) => Some(
            decode_cursor(c)?
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request("invalid_query", "cursor is not one Herald gave out"))?,
        ),
        None => None,
    };
    let filter = match q.event_type.as_deref() {
        None | Some("*") => None,
        Some(pattern) if !crate::domain::webhooks::is_pattern(pattern) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("type: `{pattern}` is not an event type, `*`, or a prefix pattern like `user.*`"),
            ));
        }
        Some(pattern) => Some(match pattern.strip_suffix('*') {
            Some(prefix) => TypeFilter::Prefix(prefix),
            None => TypeFilter::Exact(pattern),
        }),
    };
    let rows = s.store.list_events(&scope.project_id, filter, q.since, q.until, before, limit).await?;
    let next_cursor =
        (rows.len() as i64 == limit).then(|| rows.last().map(|e| encode_cursor(&e.seq.to_string()))).flatten();
    Ok(Json(EventPage { items: rows.into_iter().map(EventView::from).collect(), next_cursor }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDetails {
    #[serde(flatten)]
    event: EventView,
    deliveries: Vec<Delivery>,
}

#[utoipa::path(get, path = "/events/{id}", tag = "events", params(("id" = String, Path)), responses((status = 200, body = EventDetails)))]
pub async fn get(
    s: State,
    scope: ProjectScope<scopes::EventsRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<EventDetails>> {
    let event = s.store.get_event(&scope.project_id, &id).await?;
    let deliveries = s.store.deliveries_of_event(&scope.project_id, &id).await?;
    Ok(Json(EventDetails { event: event.into(), deliveries }))
}
