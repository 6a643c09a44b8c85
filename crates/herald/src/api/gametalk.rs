//! The chat server API, wire-compatible with NHN Cloud GameTalk v1.1, under
//! `/game-talk/v1.1/appkeys/{appKey}/`. Every answer is HTTP 200 with a body `header`
//! (`isSuccessful`, `resultCode`, `resultMessage`, `transactionId`); docs/CHAT.md lists the
//! result codes. Logic lives in `domain::chat`, shared with `/api/v1/chat`.

use axum::{
    body::Bytes,
    extract::{Path, RawQuery},
    http::{HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::{
    app::{AppState, State},
    domain::chat::{self, ChannelInput, ChatError, ProfileInput},
    events::EventContext,
    store::{Page, PageRequest, StoreError, orgs::Project},
};

/// The GameTalk result codes Herald answers with (0 is success).
pub mod codes {
    pub const INVALID_PARAMETER: i64 = 40001;
    pub const INVALID_SECRET_KEY: i64 = 40101;
    pub const APPKEY_NOT_FOUND: i64 = 40401;
    pub const CHANNEL_NOT_FOUND: i64 = 40402;
    pub const TAG_NOT_FOUND: i64 = 40403;
    pub const USER_NOT_FOUND: i64 = 40404;
    pub const ALREADY_SUBSCRIBED: i64 = 40901;
    pub const NOT_SUBSCRIBED: i64 = 40902;
    pub const INTERNAL_ERROR: i64 = 50001;
    pub const UNAVAILABLE: i64 = 50301;
}

const TRANSACTION_HEADER: &str = "x-gt-transaction-id";

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list_channels, create_channel))
        .routes(utoipa_axum::routes!(get_channel, update_channel, delete_channel))
        .routes(utoipa_axum::routes!(list_subscribers, subscribe, unsubscribe))
        .routes(utoipa_axum::routes!(list_tags))
        .routes(utoipa_axum::routes!(get_tag))
        .routes(utoipa_axum::routes!(get_user, put_user, delete_user))
}

/// The `header` of every GameTalk answer (documentation: `respond` builds it).
#[derive(utoipa::ToSchema)]
#[schema(as = GameTalkHeader)]
#[allow(dead_code)]
pub struct Header {
    #[schema(rename = "transactionId")]
    transaction_id: String,
    #[schema(rename = "isSuccessful")]
    is_successful: bool,
    /// 0 on success; otherwise a code of docs/CHAT.md.
    #[schema(rename = "resultCode")]
    result_code: i64,
    #[schema(rename = "resultMessage")]
    result_message: String,
}

/// Every GameTalk answer: HTTP 200, `header`, and the call's fields (docs/CHAT.md).
#[derive(utoipa::ToSchema)]
#[schema(as = GameTalkAnswer)]
#[allow(dead_code)]
pub struct Answer {
    header: Header,
}

/// What every GameTalk call answers, for the description.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum Answered {
    /// always 200; success or failure is in `header`
    #[response(status = 200)]
    Answer(Answer),
}

/// The path parameter of every GameTalk route, for the description.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct AppKey {
    /// the project's appKey
    app_key: String,
}

/// A failed call: its result code and message.
struct Fail(i64, String);

impl From<ChatError> for Fail {
    fn from(e: ChatError) -> Self {
        use codes::*;
        match e {
            ChatError::Invalid(field, message) | ChatError::InvalidQuery(field, message) => {
                Fail(INVALID_PARAMETER, format!("{field}: {message}"))
            }
            ChatError::ChannelNotFound => Fail(CHANNEL_NOT_FOUND, "channel not found".into()),
            ChatError::TagNotFound => Fail(TAG_NOT_FOUND, "tag not found".into()),
            ChatError::UserNotFound => Fail(USER_NOT_FOUND, "user not found".into()),
            ChatError::AlreadySubscribed => {
                Fail(ALREADY_SUBSCRIBED, "the user already subscribes to this channel".into())
            }
            ChatError::NotSubscribed => Fail(NOT_SUBSCRIBED, "the user does not subscribe to this channel".into()),
            ChatError::MessageNotFound
            | ChatError::Conflict(_)
            | ChatError::Forbidden(_)
            | ChatError::RateLimited(_) => Fail(INVALID_PARAMETER, "invalid request".into()),
            ChatError::Store(StoreError::Unavailable(e)) => {
                tracing::error!(error = %e, "database unavailable");
                Fail(UNAVAILABLE, "database unavailable, try again".into())
            }
            ChatError::Store(e) => {
                tracing::error!(error = %e, "gametalk call failed");
                Fail(INTERNAL_ERROR, "internal server error".into())
            }
        }
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        ChatError::from(e).into()
    }
}

/// The caller's transaction id (echoed when it is printable ASCII of at most 128 characters),
/// or a new one.
fn transaction_id(headers: &HeaderMap) -> String {
    headers
        .get(TRANSACTION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The whole answer: HTTP 200, the transaction header, `header` plus the call's fields.
fn respond(transaction: String, outcome: Result<Value, Fail>) -> Response {
    let (code, message, fields) = match outcome {
        Ok(fields) => (0, "SUCCESS".to_string(), fields),
        Err(Fail(code, message)) => (code, message, json!({})),
    };
    let mut body = json!({
        "header": {
            "transactionId": transaction,
            "isSuccessful": code == 0,
            "resultCode": code,
            "resultMessage": message,
        }
    });
    if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
    let mut response = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&transaction) {
        response.headers_mut().insert(TRANSACTION_HEADER, v);
    }
    response
}

/// An authenticated GameTalk call: the project of the app key, and how its events are signed.
struct Call {
    project: Project,
    ctx: EventContext,
}

async fn authenticate(s: &AppState, headers: &HeaderMap, app_key: &str, transaction: &str) -> Result<Call, Fail> {
    let project = match s.store.get_project_by_app_key(app_key).await {
        Ok(p) => p,
        Err(StoreError::NotFound(_)) => return Err(Fail(codes::APPKEY_NOT_FOUND, "unknown appKey".into())),
        Err(e) => return Err(e.into()),
    };
    let given = headers.get("x-secret-key").map(|v| v.as_bytes()).unwrap_or_default();
    if given.is_empty() || !bool::from(given.ct_eq(project.secret_key.as_bytes())) {
        return Err(Fail(codes::INVALID_SECRET_KEY, "X-Secret-Key is missing or does not match the project".into()));
    }
    let ctx = EventContext { request_id: Some(transaction.to_owned()), actor: Some("gametalk".into()) };
    Ok(Call { project, ctx })
}

/// Runs one GameTalk call: authenticates it, runs `work`, and answers in GameTalk's form.
async fn answer(
    s: &AppState,
    headers: &HeaderMap,
    app_key: &str,
    work: impl AsyncFnOnce(Call) -> Result<Value, Fail>,
) -> Response {
    let tx = transaction_id(headers);
    let outcome = match authenticate(s, headers, app_key, &tx).await {
        Ok(call) => work(call).await,
        Err(fail) => Err(fail),
    };
    respond(tx, outcome)
}

/// A JSON body; an empty one counts as `{}`.
fn body<T: DeserializeOwned>(raw: &Bytes) -> Result<T, Fail> {
    let raw: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) { b"{}" } else { raw };
    serde_json::from_slice(raw).map_err(|e| Fail(codes::INVALID_PARAMETER, format!("request body: {e}")))
}

/// The query parameters (last value wins).
fn query(raw: Option<String>) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn number(q: &std::collections::HashMap<String, String>, name: &str) -> Result<Option<i64>, Fail> {
    q.get(name)
        .map(|v| v.trim().parse::<i64>())
        .transpose()
        .map_err(|_| Fail(codes::INVALID_PARAMETER, format!("{name}: must be a whole number")))
}

fn paging(q: &std::collections::HashMap<String, String>) -> Result<(i64, i64), Fail> {
    Ok(chat::paging(number(q, "page")?, number(q, "size")?)?)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRef {
    user_id: Option<String>,
}

// ---- handlers: each authenticates, calls the domain, shapes the fields ----

#[utoipa::path(post, path = "/channels", tag = "gametalk", security(("secret_key" = [])), params(AppKey), request_body(content = Object, description = "see docs/CHAT.md"), responses(Answered))]
async fn create_channel(s: State, Path(app_key): Path<String>, headers: HeaderMap, raw: Bytes) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let input: ChannelInput = body(&raw)?;
        let c = chat::create_channel(&s.store, &call.ctx, &app_key, &call.project.id, input).await?;
        Ok(json!({"result": chat::channel_json(&app_key, &c)}))
    })
    .await
}

#[utoipa::path(put, path = "/channels/{channel_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("channel_id" = String, Path)), request_body(content = Object, description = "see docs/CHAT.md"), responses(Answered))]
async fn update_channel(
    s: State,
    Path((app_key, channel_id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let input: ChannelInput = body(&raw)?;
        chat::update_channel(&s.store, &call.ctx, &app_key, &call.project.id, &channel_id, input).await?;
        Ok(json!({}))
    })
    .await
}

#[utoipa::path(delete, path = "/channels/{channel_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("channel_id" = String, Path)), responses(Answered))]
async fn delete_channel(s: State, Path((app_key, channel_id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        chat::delete_channel(&s.store, &call.ctx, &app_key, &call.project.id, &channel_id).await?;
        Ok(json!({}))
    })
    .await
}

#[utoipa::path(get, path = "/channels", tag = "gametalk", security(("secret_key" = [])), params(AppKey), responses(Answered))]
async fn list_channels(s: State, Path(app_key): Path<String>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let q = query(raw);
        let (page, size) = paging(&q)?;
        let filter = chat::tag_filter(
            &s.store,
            &call.project.id,
            q.get("tagType").map(String::as_str),
            q.get("tagIdList").map(String::as_str),
        )
        .await?;
        let (items, total) = s.store.list_channels(&call.project.id, &filter, page * size, size).await?;
        Ok(json!({
            "pagingInfo": chat::paging_info(page, size, items.len(), total),
            "channelList": items.iter().map(|c| chat::channel_json(&app_key, c)).collect::<Vec<_>>(),
        }))
    })
    .await
}

#[utoipa::path(get, path = "/channels/{channel_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("channel_id" = String, Path)), responses(Answered))]
async fn get_channel(s: State, Path((app_key, channel_id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let c = s.store.get_channel(&call.project.id, &channel_id).await?;
        Ok(json!({"result": chat::channel_json(&app_key, &c)}))
    })
    .await
}

#[utoipa::path(post, path = "/channels/{channel_id}/subscribes", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("channel_id" = String, Path)), request_body(content = Object, description = "see docs/CHAT.md"), responses(Answered))]
async fn subscribe(
    s: State,
    Path((app_key, channel_id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let input: UserRef = body(&raw)?;
        chat::subscribe(&s.store, &call.ctx, &app_key, &call.project.id, &channel_id, input.user_id).await?;
        Ok(json!({}))
    })
    .await
}

#[utoipa::path(delete, path = "/channels/{channel_id}/subscribes", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("channel_id" = String, Path)), request_body(content = Object, description = "see docs/CHAT.md"), responses(Answered))]
async fn unsubscribe(
    s: State,
    Path((app_key, channel_id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let input: UserRef = body(&raw)?;
        chat::unsubscribe(&s.store, &call.ctx, &app_key, &call.project.id, &channel_id, input.user_id).await?;
        Ok(json!({}))
    })
    .await
}

#[utoipa::path(get, path = "/channels/{channel_id}/subscribes", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("channel_id" = String, Path)), responses(Answered))]
async fn list_subscribers(
    s: State,
    Path((app_key, channel_id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let (page, size) = paging(&query(raw))?;
        s.store.channel_exists(&call.project.id, &channel_id).await?;
        let (items, total) = s.store.list_subscribers(&channel_id, page * size, size).await?;
        Ok(json!({
            "pagingInfo": chat::paging_info(page, size, items.len(), total),
            "userList": items.iter().map(|u| chat::user_json(&app_key, u)).collect::<Vec<_>>(),
        }))
    })
    .await
}

#[utoipa::path(get, path = "/tags", tag = "gametalk", security(("secret_key" = [])), params(AppKey), responses(Answered))]
async fn list_tags(s: State, Path(app_key): Path<String>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let (page, size) = paging(&query(raw))?;
        // GameTalk pages count from 0, Herald's from 1; both are bounded by `chat::paging`.
        let request = PageRequest { page: u32::try_from(page + 1).unwrap_or(u32::MAX), limit: size as u32 };
        let Page { items, total } = s.store.list_tags(&call.project.id, request).await?;
        Ok(json!({
            "pagingInfo": chat::paging_info(page, size, items.len(), total),
            "tagList": items.iter().map(|t| chat::tag_json(&app_key, t)).collect::<Vec<_>>(),
        }))
    })
    .await
}

#[utoipa::path(get, path = "/tags/{tag_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("tag_id" = String, Path)), responses(Answered))]
async fn get_tag(s: State, Path((app_key, tag_id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let id = tag_id.parse::<i64>().map_err(|_| Fail(codes::INVALID_PARAMETER, "tagId: must be a number".into()))?;
        let t = s.store.get_tag(&call.project.id, id).await?;
        Ok(json!({"result": chat::tag_json(&app_key, &t)}))
    })
    .await
}

#[utoipa::path(get, path = "/users/{user_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("user_id" = String, Path)), responses(Answered))]
async fn get_user(s: State, Path((app_key, user_id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let u = s.store.get_chat_user(&call.project.id, &user_id).await?;
        Ok(json!({"user": chat::user_json(&app_key, &u)}))
    })
    .await
}

#[utoipa::path(put, path = "/users/{user_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("user_id" = String, Path)), request_body(content = Object, description = "see docs/CHAT.md"), responses(Answered))]
async fn put_user(
    s: State,
    Path((app_key, user_id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let input: ProfileInput = body(&raw)?;
        chat::put_user(&s.store, &call.ctx, &app_key, &call.project.id, &user_id, input).await?;
        Ok(json!({}))
    })
    .await
}

#[utoipa::path(delete, path = "/users/{user_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("user_id" = String, Path)), responses(Answered))]
async fn delete_user(s: State, Path((app_key, user_id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        chat::delete_user(&s.store, &call.ctx, &app_key, &call.project.id, &user_id).await?;
        Ok(json!({}))
    })
    .await
}
