//! `/api/v1/chat`: tag management (GameTalk's API only reads tags) and messages.

use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{
    PageBody, created,
    extract::{Json, Paging, Path, ProjectScope, Query, scopes},
};
use crate::{
    domain::chat::{self, EditMessage, SendMessage, TagInput},
    error::{ApiError, ApiResult},
    state::State,
    store::{chat::Message, chat::Tag},
};

/// A tag as `/api/v1` shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagBody {
    id: i64,
    name: String,
    description: Option<String>,
    created_by: String,
    created_at: String,
    updated_by: String,
    updated_at: String,
}

impl From<Tag> for TagBody {
    fn from(t: Tag) -> Self {
        TagBody {
            id: t.id,
            name: t.name,
            description: t.description,
            created_by: t.reg_user,
            created_at: crate::webhooks::rfc3339(t.created_at),
            updated_by: t.mod_user,
            updated_at: crate::webhooks::rfc3339(t.updated_at),
        }
    }
}

fn tag_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| ApiError::not_found("tag"))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    page: Option<u32>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/chat/tags", tag = "chat", params(PageQuery), responses((status = 200, body = PageBody<TagBody>)))]
pub async fn list_tags(
    s: State,
    scope: ProjectScope<scopes::ChatRead>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<PageBody<TagBody>>> {
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let page = s.store.list_tags(&scope.project_id, req).await?;
    Ok(Json(PageBody::new(page, req, TagBody::from)))
}

#[utoipa::path(post, path = "/chat/tags", tag = "chat", request_body = TagInput, responses((status = 201, body = TagBody)))]
pub async fn create_tag(
    s: State,
    scope: ProjectScope<scopes::ChatWrite>,
    Json(input): Json<TagInput>,
) -> ApiResult<Response> {
    let tag = chat::create_tag(&s.store, &scope.events(), &scope.project_id, input).await?;
    Ok(created(TagBody::from(tag)))
}

#[utoipa::path(get, path = "/chat/tags/{id}", tag = "chat", params(("id" = i64, Path, description = "the tag's id")), responses((status = 200, body = TagBody)))]
pub async fn get_tag(
    s: State,
    scope: ProjectScope<scopes::ChatRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<TagBody>> {
    Ok(Json(s.store.get_tag(&scope.project_id, tag_id(&id)?).await?.into()))
}

#[utoipa::path(method(put, patch), path = "/chat/tags/{id}", tag = "chat", params(("id" = i64, Path, description = "the tag's id")), request_body = TagInput, responses((status = 200, body = TagBody)))]
pub async fn update_tag(
    s: State,
    scope: ProjectScope<scopes::ChatWrite>,
    Path(id): Path<String>,
    Json(input): Json<TagInput>,
) -> ApiResult<Json<TagBody>> {
    let tag = chat::update_tag(&s.store, &scope.events(), &scope.project_id, tag_id(&id)?, input).await?;
    Ok(Json(tag.into()))
}

#[utoipa::path(delete, path = "/chat/tags/{id}", tag = "chat", params(("id" = i64, Path, description = "the tag's id")), responses((status = 200, body = TagBody)))]
pub async fn delete_tag(
    s: State,
    scope: ProjectScope<scopes::ChatWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<TagBody>> {
    Ok(Json(chat::delete_tag(&s.store, &scope.events(), &scope.project_id, tag_id(&id)?).await?.into()))
}

fn message_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| ApiError::not_found("message"))
}

#[utoipa::path(post, path = "/chat/channels/{id}/messages", tag = "chat", params(("id" = String, Path, description = "the channel's id")), request_body = SendMessage, responses((status = 201, body = Message)))]
pub async fn send_message(
    s: State,
    scope: ProjectScope<scopes::ChatWrite>,
    Path(channel_id): Path<String>,
    Json(input): Json<SendMessage>,
) -> ApiResult<Response> {
    let m = chat::send_message(
        &s.store,
        &s.chat_limiter,
        &s.config.chat,
        &scope.events(),
        &scope.project_id,
        &channel_id,
        input,
    )
    .await?;
    Ok(created(m))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    before: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

/// A history page, and the positions to page from: `before` (the oldest message shown) for
/// older messages, `after` (the newest shown) for newer ones.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryBody {
    items: Vec<Message>,
    before: Option<String>,
    after: Option<String>,
}

#[utoipa::path(get, path = "/chat/channels/{id}/messages", tag = "chat", params(("id" = String, Path, description = "the channel's id"), HistoryQuery), responses((status = 200, body = HistoryBody)))]
pub async fn history(
    s: State,
    scope: ProjectScope<scopes::ChatRead>,
    Path(channel_id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<HistoryBody>> {
    let ascending = q.after.is_some();
    let items =
        chat::history(&s.store, &scope.project_id, &channel_id, q.before.as_deref(), q.after.as_deref(), q.limit)
            .await?;
    let (oldest, newest) = if ascending { (items.first(), items.last()) } else { (items.last(), items.first()) };
    let before = oldest.map(chat::encode_position);
    let after = newest.map(chat::encode_position);
    Ok(Json(HistoryBody { items, before, after }))
}

#[utoipa::path(method(put, patch), path = "/chat/channels/{id}/messages/{message_id}", tag = "chat", params(("id" = String, Path, description = "the channel's id"), ("message_id" = i64, Path)), request_body = EditMessage, responses((status = 200, body = Message)))]
pub async fn edit_message(
    s: State,
    scope: ProjectScope<scopes::ChatWrite>,
    Path((channel_id, id)): Path<(String, String)>,
    Json(input): Json<EditMessage>,
) -> ApiResult<Json<Message>> {
    let m = chat::edit_message(
        &s.store,
        &s.config.chat,
        &scope.events(),
        &scope.project_id,
        &channel_id,
        message_id(&id)?,
        input,
    )
    .await?;
    Ok(Json(m))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ActingFor {
    user_id: Option<String>,
}

#[utoipa::path(delete, path = "/chat/channels/{id}/messages/{message_id}", tag = "chat", params(("id" = String, Path, description = "the channel's id"), ("message_id" = i64, Path), ActingFor), responses((status = 200, body = Message, description = "the message, marked deleted")))]
pub async fn delete_message(
    s: State,
    scope: ProjectScope<scopes::ChatWrite>,
    Path((channel_id, id)): Path<(String, String)>,
    Query(q): Query<ActingFor>,
) -> ApiResult<Json<Message>> {
    let m = chat::delete_message(
        &s.store,
        &scope.events(),
        &scope.project_id,
        &channel_id,
        message_id(&id)?,
        q.user_id.as_deref(),
    )
    .await?;
    Ok(Json(m))
}
