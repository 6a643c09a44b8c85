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
use serde_json::json;
use subtle::ConstantTimeEq;
use utoipa::{
    ToSchema,
    openapi::{
        ContentBuilder, Ref, RefOr, ResponseBuilder,
        schema::{AllOfBuilder, Schema},
    },
};

use crate::{
    domain::chat::{
        self, ChannelInput, ChatError, GameTalkChannel, GameTalkTag, GameTalkUser, PagingInfo, ProfileInput,
    },
    events::EventContext,
    state::{AppState, State},
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

/// The `header` of every GameTalk answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkHeader)]
pub struct Header {
    /// The caller's `X-GT-Transaction-Id`, or one Herald made up.
    transaction_id: String,
    is_successful: bool,
    /// 0 on success; otherwise a code of docs/CHAT.md.
    result_code: i64,
    /// `SUCCESS`, or what went wrong (naming the field to fix).
    result_message: String,
}

/// Every GameTalk answer: HTTP 200, `header`, and on success the call's own fields (`F`).
#[derive(serde::Serialize)]
struct Reply<F> {
    header: Header,
    #[serde(flatten)]
    fields: Option<F>,
}

/// The fields of a call that answers with `header` alone.
#[derive(serde::Serialize)]
struct NoFields {}

/// Every GameTalk answer has `header`; on success, the call's own fields follow it.
#[derive(utoipa::ToSchema)]
#[schema(as = GameTalkAnswer)]
#[allow(dead_code)] // a schema only: `Reply` is what is sent
pub struct Answer {
    header: Header,
}

/// Create Channel, Get Channel: the channel (absent when the call failed).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = GameTalkChannelResult)]
pub struct ChannelResult {
    #[schema(required = false)]
    result: GameTalkChannel,
}

/// Get Channel List: a page of channels, oldest first (absent when the call failed).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkChannelPage)]
pub struct ChannelPage {
    #[schema(required = false)]
    paging_info: PagingInfo,
    #[schema(required = false)]
    channel_list: Vec<GameTalkChannel>,
}

/// Get Subscriber: a page of the channel's subscribers (absent when the call failed).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkSubscriberPage)]
pub struct SubscriberPage {
    #[schema(required = false)]
    paging_info: PagingInfo,
    #[schema(required = false)]
    user_list: Vec<GameTalkUser>,
}

/// Get Tag List: a page of tags (absent when the call failed).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkTagPage)]
pub struct TagPage {
    #[schema(required = false)]
    paging_info: PagingInfo,
    #[schema(required = false)]
    tag_list: Vec<GameTalkTag>,
}

/// Get Tag: the tag (absent when the call failed).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = GameTalkTagResult)]
pub struct TagResult {
    #[schema(required = false)]
    result: GameTalkTag,
}

/// Get User: the user (absent when the call failed).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = GameTalkUserResult)]
pub struct UserResult {
    #[schema(required = false)]
    user: GameTalkUser,
}

/// What a GameTalk call without fields of its own answers, for the description.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum Answered {
    /// always 200; success or failure is in `header`
    #[response(status = 200)]
    Answer(Answer),
}

/// What a GameTalk call with the fields `F` answers, for the description: always HTTP 200,
/// `header` (`GameTalkAnswer`) and, on success, the fields of `F`. The schemas it names are
/// registered in `api::openapi::ApiDoc`.
struct AnsweredWith<F>(std::marker::PhantomData<F>);

impl<F: ToSchema> utoipa::IntoResponses for AnsweredWith<F> {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let schema = AllOfBuilder::new()
            .item(Ref::from_schema_name(Answer::name()))
            .item(Ref::from_schema_name(F::name()))
            .build();
        let schema = RefOr::T(Schema::AllOf(schema));
        let response = ResponseBuilder::new()
            .description("always 200; success or failure is in `header`, and the call's fields follow on success")
            .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
            .build();
        [("200".to_owned(), RefOr::T(response))].into()
    }
}

/// The path parameter of every GameTalk route, for the description.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct AppKey {
    /// the project's appKey
    app_key: String,
}

/// The optional transaction header of every GameTalk call, for the description.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct TransactionId {
    /// echoed in the answer's `X-GT-Transaction-Id` header and `header.transactionId`
    /// (printable ASCII, at most 128 characters; otherwise Herald makes one up)
    #[param(rename = "X-GT-Transaction-Id", nullable = false)]
    transaction_id: Option<String>,
}

/// The query of Get Tag List and Get Subscriber, for the description (`query` reads it).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct PageParams {
    /// the page, from 0 (default 0)
    #[param(minimum = 0)]
    page: Option<i64>,
    /// items per page, 1 to 100
    #[param(minimum = 1, maximum = 100)]
    size: i64,
}

/// How `tagIdList` combines (lower case is accepted too).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
enum TagType {
    OR,
    AND,
}

/// The query of Get Channel List, for the description (`query` reads it).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ChannelListParams {
    /// the page, from 0 (default 0)
    #[param(minimum = 0)]
    page: Option<i64>,
    /// items per page, 1 to 100
    #[param(minimum = 1, maximum = 100)]
    size: i64,
    /// how `tagIdList` combines: `OR` (default: channels with any of the tags) or `AND` (all)
    #[param(rename = "tagType", inline)]
    tag_type: Option<TagType>,
    /// tag ids separated by commas, e.g. `1,2,3`
    #[param(rename = "tagIdList", example = "1,2")]
    tag_id_list: Option<String>,
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
fn respond<F: serde::Serialize>(transaction: String, outcome: Result<F, Fail>) -> Response {
    let (code, message, fields) = match outcome {
        Ok(fields) => (0, "SUCCESS".to_string(), Some(fields)),
        Err(Fail(code, message)) => (code, message, None),
    };
    let header = Header {
        transaction_id: transaction.clone(),
        is_successful: code == 0,
        result_code: code,
        result_message: message,
    };
    // Through a `Value`, whose keys are sorted: the bytes stay those Herald has always sent.
    let body = serde_json::to_value(Reply { header, fields }).unwrap_or_else(|e| {
        // Strings, numbers and booleans cannot fail to serialize; were it to happen, the
        // caller still gets a GameTalk answer.
        tracing::error!(error = %e, "gametalk answer does not serialize");
        json!({"header": {"transactionId": transaction, "isSuccessful": false,
                          "resultCode": codes::INTERNAL_ERROR, "resultMessage": "internal server error"}})
    });
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
async fn answer<F: serde::Serialize>(
    s: &AppState,
    headers: &HeaderMap,
    app_key: &str,
    work: impl AsyncFnOnce(Call) -> Result<F, Fail>,
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

/// The user of Subscribe and Unsubscribe Channel.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkUserRef)]
struct UserRef {
    /// The player's id.
    #[schema(required = true, nullable = false, min_length = 1)]
    user_id: Option<String>,
}

// ---- handlers: each authenticates, calls the domain, shapes the fields ----

#[utoipa::path(post, path = "/channels", tag = "gametalk", security(("secret_key" = [])), params(AppKey, TransactionId), request_body = ChannelInput, responses(AnsweredWith<ChannelResult>))]
async fn create_channel(s: State, Path(app_key): Path<String>, headers: HeaderMap, raw: Bytes) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let input: ChannelInput = body(&raw)?;
        let c = chat::create_channel(&s.store, &call.ctx, &app_key, &call.project.id, input).await?;
        Ok(ChannelResult { result: GameTalkChannel::new(&app_key, &c) })
    })
    .await
}

#[utoipa::path(put, path = "/channels/{channel_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("channel_id" = String, Path), TransactionId), request_body = ChannelInput, responses(Answered))]
async fn update_channel(
    s: State,
    Path((app_key, channel_id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let input: ChannelInput = body(&raw)?;
        chat::update_channel(&s.store, &call.ctx, &app_key, &call.project.id, &channel_id, input).await?;
        Ok(NoFields {})
    })
    .await
}

#[utoipa::path(delete, path = "/channels/{channel_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("channel_id" = String, Path), TransactionId), responses(Answered))]
async fn delete_channel(s: State, Path((app_key, channel_id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        chat::delete_channel(&s.store, &call.ctx, &app_key, &call.project.id, &channel_id).await?;
        Ok(NoFields {})
    })
    .await
}

#[utoipa::path(get, path = "/channels", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ChannelListParams, TransactionId), responses(AnsweredWith<ChannelPage>))]
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
        Ok(ChannelPage {
            paging_info: PagingInfo::new(page, size, items.len(), total),
            channel_list: items.iter().map(|c| GameTalkChannel::new(&app_key, c)).collect(),
        })
    })
    .await
}

#[utoipa::path(get, path = "/channels/{channel_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("channel_id" = String, Path), TransactionId), responses(AnsweredWith<ChannelResult>))]
async fn get_channel(s: State, Path((app_key, channel_id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let c = s.store.get_channel(&call.project.id, &channel_id).await?;
        Ok(ChannelResult { result: GameTalkChannel::new(&app_key, &c) })
    })
    .await
}

#[utoipa::path(post, path = "/channels/{channel_id}/subscribes", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("channel_id" = String, Path), TransactionId), request_body = UserRef, responses(Answered))]
async fn subscribe(
    s: State,
    Path((app_key, channel_id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let input: UserRef = body(&raw)?;
        chat::subscribe(&s.store, &call.ctx, &app_key, &call.project.id, &channel_id, input.user_id).await?;
        Ok(NoFields {})
    })
    .await
}

#[utoipa::path(delete, path = "/channels/{channel_id}/subscribes", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("channel_id" = String, Path), TransactionId), request_body = UserRef, responses(Answered))]
async fn unsubscribe(
    s: State,
    Path((app_key, channel_id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let input: UserRef = body(&raw)?;
        chat::unsubscribe(&s.store, &call.ctx, &app_key, &call.project.id, &channel_id, input.user_id).await?;
        Ok(NoFields {})
    })
    .await
}

#[utoipa::path(get, path = "/channels/{channel_id}/subscribes", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("channel_id" = String, Path), PageParams, TransactionId), responses(AnsweredWith<SubscriberPage>))]
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
        Ok(SubscriberPage {
            paging_info: PagingInfo::new(page, size, items.len(), total),
            user_list: items.iter().map(|u| GameTalkUser::new(&app_key, u)).collect(),
        })
    })
    .await
}

#[utoipa::path(get, path = "/tags", tag = "gametalk", security(("secret_key" = [])), params(AppKey, PageParams, TransactionId), responses(AnsweredWith<TagPage>))]
async fn list_tags(s: State, Path(app_key): Path<String>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let (page, size) = paging(&query(raw))?;
        // GameTalk pages count from 0, Herald's from 1; both are bounded by `chat::paging`.
        let request = PageRequest { page: u32::try_from(page + 1).unwrap_or(u32::MAX), limit: size as u32 };
        let Page { items, total } = s.store.list_tags(&call.project.id, request).await?;
        Ok(TagPage {
            paging_info: PagingInfo::new(page, size, items.len(), total),
            tag_list: items.iter().map(|t| GameTalkTag::new(&app_key, t)).collect(),
        })
    })
    .await
}

#[utoipa::path(get, path = "/tags/{tag_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("tag_id" = String, Path), TransactionId), responses(AnsweredWith<TagResult>))]
async fn get_tag(s: State, Path((app_key, tag_id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let id = tag_id.parse::<i64>().map_err(|_| Fail(codes::INVALID_PARAMETER, "tagId: must be a number".into()))?;
        let t = s.store.get_tag(&call.project.id, id).await?;
        Ok(TagResult { result: GameTalkTag::new(&app_key, &t) })
    })
    .await
}

#[utoipa::path(get, path = "/users/{user_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("user_id" = String, Path), TransactionId), responses(AnsweredWith<UserResult>))]
async fn get_user(s: State, Path((app_key, user_id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let u = s.store.get_chat_user(&call.project.id, &user_id).await?;
        Ok(UserResult { user: GameTalkUser::new(&app_key, &u) })
    })
    .await
}

#[utoipa::path(put, path = "/users/{user_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("user_id" = String, Path), TransactionId), request_body = ProfileInput, responses(Answered))]
async fn put_user(
    s: State,
    Path((app_key, user_id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        let input: ProfileInput = body(&raw)?;
        chat::put_user(&s.store, &call.ctx, &app_key, &call.project.id, &user_id, input).await?;
        Ok(NoFields {})
    })
    .await
}

#[utoipa::path(delete, path = "/users/{user_id}", tag = "gametalk", security(("secret_key" = [])), params(AppKey, ("user_id" = String, Path), TransactionId), responses(Answered))]
async fn delete_user(s: State, Path((app_key, user_id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    answer(&s, &headers, &app_key, async |call: Call| {
        chat::delete_user(&s.store, &call.ctx, &app_key, &call.project.id, &user_id).await?;
        Ok(NoFields {})
    })
    .await
}
