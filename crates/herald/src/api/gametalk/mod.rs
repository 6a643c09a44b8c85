//! The chat server API, wire-compatible with NHN Cloud GameTalk v1.1, under
//! `/game-talk/v1.1/appkeys/{appKey}/`. Every answer is HTTP 200 with a body `header`
//! (`isSuccessful`, `resultCode`, `resultMessage`, `transactionId`); docs/CHAT.md lists the
//! result codes. Logic lives in `domain::chat`, shared with `/api/v1/chat`.

mod call;
mod envelope;

use call::*;
pub use envelope::*;

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

use crate::secret::ExposeSecret;
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
