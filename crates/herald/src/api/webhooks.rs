//! Webhook endpoints, their deliveries, and manual controls.

use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    PageBody, created,
    events::{decode_cursor, encode_cursor},
    extract::{Json, Paging, Path, ProjectScope, Query, scopes},
};
use crate::secret::{ExposeSecret, Secret};
use crate::vocab::DeliveryStatus;
use crate::{
    domain::webhooks::{self, NewWebhook, Replay, TestResult, WebhookPatch},
    error::{ApiError, ApiResult},
    state::State,
    store::webhooks::{Attempt, Delivery, Webhook},
};

/// An endpoint as the API shows it: `timeout` in seconds; the secret only where asked for.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    #[serde(flatten)]
    webhook: crate::store::payload::Webhook,
    timeout: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookView {
    fn new(webhook: Webhook, with_secret: bool) -> Self {
        let timeout = f64::from(webhook.timeout_ms) / 1000.0;
        // Only the answer to a creation asks for it (`with_secret`): the secret is shown then.
        let secret = with_secret.then(|| webhook.secret.expose_secret().to_owned());
        WebhookView { webhook: (&webhook).into(), timeout, secret }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    page: Option<u32>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/webhooks", tag = "webhooks", params(PageQuery), responses((status = 200, body = PageBody<WebhookView>)))]
pub async fn list(
    s: State,
    scope: ProjectScope<scopes::WebhooksRead>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<PageBody<WebhookView>>> {
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let page = s.store.list_webhooks(&scope.project_id, req).await?;
    Ok(Json(PageBody::new(page, req, |w| WebhookView::new(w, false))))
}

/// 201 with the endpoint and its secret (generated if not given).
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = NewWebhook, responses((status = 201, body = WebhookView, description = "the endpoint with its secret")))]
pub async fn create(
    s: State,
    scope: ProjectScope<scopes::WebhooksWrite>,
    Json(input): Json<NewWebhook>,
) -> ApiResult<Response> {
    let timeout = s.config.webhooks.default_timeout_ms;
    let w = webhooks::create(&s.store, &s.sender, timeout, &scope.events(), &scope.project_id, input).await?;
    Ok(created(WebhookView::new(w, true)))
}

#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), responses((status = 200, body = WebhookView)))]
pub async fn get(
    s: State,
    scope: ProjectScope<scopes::WebhooksRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    Ok(Json(WebhookView::new(s.store.get_webhook(&scope.project_id, &id).await?, false)))
}

#[utoipa::path(method(put, patch), path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), request_body = WebhookPatch, responses((status = 200, body = WebhookView)))]
pub async fn update(
    s: State,
    scope: ProjectScope<scopes::WebhooksWrite>,
    Path(id): Path<String>,
    Json(patch): Json<WebhookPatch>,
) -> ApiResult<Json<WebhookView>> {
    let w = webhooks::update(&s.store, &s.sender, &scope.events(), &scope.project_id, &id, patch).await?;
    Ok(Json(WebhookView::new(w, false)))
}

#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), responses((status = 200, body = WebhookView)))]
pub async fn delete(
    s: State,
    scope: ProjectScope<scopes::WebhooksWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    Ok(Json(WebhookView::new(s.store.delete_webhook(&scope.events(), &scope.project_id, &id).await?, false)))
}

async fn set_active(
    s: &State,
    scope: &ProjectScope<scopes::WebhooksWrite>,
    id: &str,
    active: bool,
) -> ApiResult<Json<WebhookView>> {
    let patch = WebhookPatch { active: Some(active), ..Default::default() };
    let w = webhooks::update(&s.store, &s.sender, &scope.events(), &scope.project_id, id, patch).await?;
    Ok(Json(WebhookView::new(w, false)))
}

#[utoipa::path(post, path = "/webhooks/{id}/enable", tag = "webhooks", params(("id" = String, Path)), responses((status = 200, body = WebhookView)))]
pub async fn enable(
    s: State,
    scope: ProjectScope<scopes::WebhooksWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    set_active(&s, &scope, &id, true).await
}

#[utoipa::path(post, path = "/webhooks/{id}/disable", tag = "webhooks", params(("id" = String, Path)), responses((status = 200, body = WebhookView)))]
pub async fn disable(
    s: State,
    scope: ProjectScope<scopes::WebhooksWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    set_active(&s, &scope, &id, false).await
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    secret: String,
    /// The same key in the `whsec_` form the Standard Webhooks libraries take.
    standard_secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
}

fn secret_view(w: &Webhook) -> SecretView {
    let live = w.previous_secret_expires_at.is_some_and(|t| t > crate::store::now());
    SecretView {
        // The reveal and rotate answers: the secrets are shown here, on purpose.
        secret: w.secret.expose_secret().to_owned(),
        standard_secret: herald_webhooks::standard_secret(w.secret.expose_secret()),
        previous_secret: w.previous_secret.as_ref().filter(|_| live).map(|p| p.expose_secret().to_owned()),
        previous_secret_expires_at: w.previous_secret_expires_at.filter(|_| live),
    }
}

#[utoipa::path(get, path = "/webhooks/{id}/secret", tag = "webhooks", params(("id" = String, Path)), responses((status = 200, body = SecretView)))]
pub async fn get_secret(
    s: State,
    scope: ProjectScope<scopes::WebhooksWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretView>> {
    Ok(Json(secret_view(&s.store.get_webhook(&scope.project_id, &id).await?)))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    #[schema(value_type = Option<String>)]
    secret: Option<Secret>,
}

#[utoipa::path(post, path = "/webhooks/{id}/secret/rotate", tag = "webhooks", params(("id" = String, Path)), request_body(content = Option<Rotate>, description = "optional: the new secret; generated when absent"), responses((status = 200, body = SecretView)))]
pub async fn rotate(
    s: State,
    scope: ProjectScope<scopes::WebhooksWrite>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<SecretView>> {
    // The body is optional: empty means "generate a new secret".
    let secret = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<Option<Rotate>>(&body)
            .map_err(|e| {
                ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "validation_error", e.to_string())
            })?
            .and_then(|r| r.secret)
    };
    let w = webhooks::rotate_secret(&s.store, &s.sender, &scope.events(), &scope.project_id, &id, secret).await?;
    Ok(Json(secret_view(&w)))
}

/// Sends an event of type `test` to the endpoint now, once (no retries), whatever events it
/// subscribes to, and records it in the endpoint's delivery log as a delivery with
/// `test: true` (`deliveryId` in the answer).
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "webhooks", params(("id" = String, Path)), responses((status = 200, body = TestResult)))]
pub async fn test(
    s: State,
    scope: ProjectScope<scopes::WebhooksWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<TestResult>> {
    let w = s.store.get_webhook(&scope.project_id, &id).await?;
    Ok(Json(webhooks::send_test(&s.store, &s.sender, &w, s.clock.now()).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    queued: usize,
}

#[utoipa::path(post, path = "/webhooks/{id}/replay", tag = "webhooks", params(("id" = String, Path)), request_body = Replay, responses((status = 200, body = Queued)))]
pub async fn replay(
    s: State,
    scope: ProjectScope<scopes::WebhooksWrite>,
    Path(id): Path<String>,
    Json(input): Json<Replay>,
) -> ApiResult<Json<Queued>> {
    let w = s.store.get_webhook(&scope.project_id, &id).await?;
    let queued = webhooks::replay(&s.store, &w, input, s.clock.now()).await?;
    Ok(Json(Queued { queued }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    items: Vec<Delivery>,
    next_cursor: Option<String>,
}

/// Newest first.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path)), params(DeliveriesQuery), responses((status = 200, body = DeliveryPage)))]
pub async fn deliveries(
    s: State,
    scope: ProjectScope<scopes::WebhooksRead>,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    let limit = Paging { page: None, limit: q.limit }.request()?.limit as i64;
    if let Some(status) = &q.status
        && DeliveryStatus::parse(status).is_none()
    {
        return Err(ApiError::bad_request("invalid_query", "status must be pending, succeeded or failed"));
    }
    let w = s.store.get_webhook(&scope.project_id, &id).await?;
    let before = match &q.cursor {
        Some(c) => {
            let raw = decode_cursor(c)?;
            let bad = || ApiError::bad_request("invalid_query", "cursor is not one Herald gave out");
            let (t, id) = raw.split_once('|').ok_or_else(bad)?;
            Some((DateTime::parse_from_rfc3339(t).map_err(|_| bad())?.with_timezone(&Utc), id.to_owned()))
        }
        None => None,
    };
    let items = s.store.list_deliveries(&w.id, q.status.as_deref(), before, limit).await?;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|d| encode_cursor(&format!("{}|{}", d.created_at.to_rfc3339(), d.id))))
        .flatten();
    Ok(Json(DeliveryPage { items, next_cursor }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetails {
    #[serde(flatten)]
    delivery: Delivery,
    attempts: Vec<Attempt>,
}

#[utoipa::path(get, path = "/deliveries/{id}", tag = "webhooks", params(("id" = String, Path)), responses((status = 200, body = DeliveryDetails)))]
pub async fn delivery(
    s: State,
    scope: ProjectScope<scopes::WebhooksRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryDetails>> {
    // Attempts first: a delivery row is updated in the same transaction that adds an
    // attempt, so read after them it is never older than the attempts shown.
    let attempts = s.store.attempts_of(&id).await?;
    let delivery = s.store.get_delivery(&scope.project_id, &id).await?;
    Ok(Json(DeliveryDetails { delivery, attempts }))
}

/// Makes the delivery due now, with a fresh set of retries; attempt numbers continue. A test
/// delivery cannot be retried (409).
#[utoipa::path(post, path = "/deliveries/{id}/retry", tag = "webhooks", params(("id" = String, Path)), responses((status = 200, body = Delivery)))]
pub async fn retry(
    s: State,
    scope: ProjectScope<scopes::WebhooksWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<Delivery>> {
    Ok(Json(webhooks::retry_delivery(&s.store, &scope.project_id, &id, s.clock.now()).await?))
}
