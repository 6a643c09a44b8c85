//! Chat: validation and rules for tags, channels, subscriptions, chat profiles and messages,
//! shared by the GameTalk-compatible API and `/api/v1/chat`. Errors are [`ChatError`], which
//! each API maps to its own wire form (GameTalk result codes, or, through [`DomainError`], HTTP
//! statuses and socket answers).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{DomainError, FieldError, retry_on_stale, validate::nullable};
use crate::{
    config::ChatConfig,
    events::{EventContext, NewEvent, types},
    store::{
        self, Store, StoreError,
        chat::{Channel, ChannelRow, ChatUser, HistoryFrom, Message, NewMessage, Tag, TagFilter, Unsubscribed},
    },
};

/// Largest page a list returns (the GameTalk `size`, the history `limit`).
pub const MAX_PAGE: i64 = 100;
/// Highest page number a GameTalk list takes (keeps `page * size` far from overflow).
const MAX_PAGE_NUMBER: i64 = 10_000_000;
/// Most tag ids one request may name.
const MAX_TAG_IDS: usize = 100;
const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 1000;
const MAX_DATA_BYTES: usize = 16 * 1024;

#[derive(Debug)]
pub enum ChatError {
    /// A field to fix, and what is wrong with it.
    Invalid(String, String),
    /// A query parameter to fix (a history cursor or page size), and what is wrong with it.
    InvalidQuery(String, String),
    ChannelNotFound,
    TagNotFound,
    UserNotFound,
    MessageNotFound,
    AlreadySubscribed,
    NotSubscribed,
    Conflict(String),
    Forbidden(String),
    /// Too many messages; seconds until the next is accepted.
    RateLimited(u64),
    Store(StoreError),
}

pub type ChatResult<T> = Result<T, ChatError>;

fn invalid(field: &str, message: impl Into<String>) -> ChatError {
    ChatError::Invalid(field.to_owned(), message.into())
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound("channel") => ChatError::ChannelNotFound,
            StoreError::NotFound("tag") => ChatError::TagNotFound,
            StoreError::NotFound("user") => ChatError::UserNotFound,
            StoreError::NotFound("message") => ChatError::MessageNotFound,
            StoreError::NotFound("subscription") => ChatError::NotSubscribed,
            StoreError::Conflict(m) => ChatError::Conflict(m),
            other => ChatError::Store(other),
        }
    }
}

impl From<ChatError> for DomainError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Invalid(field, message) => DomainError::validation(vec![FieldError::new(field, message)]),
            ChatError::InvalidQuery(param, message) => DomainError::InvalidQuery {
                details: vec![FieldError::new(&param, &message)],
                message: format!("{param}: {message}"),
            },
            ChatError::ChannelNotFound => DomainError::not_found("channel"),
            ChatError::TagNotFound => DomainError::not_found("tag"),
            ChatError::UserNotFound => DomainError::not_found("user"),
            ChatError::MessageNotFound => DomainError::not_found("message"),
            ChatError::AlreadySubscribed => DomainError::conflict("the user already subscribes to this channel"),
            ChatError::NotSubscribed => DomainError::Forbidden {
                code: "not_subscribed",
                message: "the user does not subscribe to this channel; subscribe first".into(),
            },
            ChatError::Conflict(m) => DomainError::conflict(m),
            ChatError::Forbidden(m) => DomainError::forbidden(m),
            ChatError::RateLimited(secs) => DomainError::RateLimited {
                message: format!("too many messages from this user; retry in {secs} s"),
                retry_after_secs: secs,
            },
            ChatError::Store(e) => e.into(),
        }
    }
}

/// GameTalk's date form: ISO 8601 with an offset, whole seconds.
pub fn date(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// A channel as GameTalk shows it (`result` of Create and Get Channel, `channelList`, and
/// the data of the channel events).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkChannel)]
pub struct GameTalkChannel {
    /// The project's appKey.
    pub app_key: String,
    pub id: String,
    /// Always `PUBLIC`.
    #[serde(rename = "type")]
    #[schema(example = "PUBLIC")]
    pub channel_type: String,
    pub name: String,
    #[schema(required = true)]
    pub nickname: Option<String>,
    /// Deleted when its last subscriber leaves.
    pub auto_delete: bool,
    /// Always `false`: a deleted channel is gone.
    pub deleted: bool,
    /// The id of the channel's last message sent through Herald (0 when none).
    pub last_message_id: i64,
    pub subscriber_count: i64,
    pub tag_list: Vec<GameTalkTagRef>,
    pub reg_user: String,
    #[schema(format = DateTime, example = "2026-11-23T19:40:00+00:00")]
    pub reg_date: String,
    pub mod_user: String,
    #[schema(format = DateTime, example = "2026-11-23T19:40:00+00:00")]
    pub mod_date: String,
}

/// A tag of a channel.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = GameTalkTagRef)]
pub struct GameTalkTagRef {
    pub id: i64,
    pub name: String,
}

impl GameTalkChannel {
    pub fn new(app_key: &str, c: &Channel) -> Self {
        let r = &c.row;
        GameTalkChannel {
            app_key: app_key.to_owned(),
            id: r.id.clone(),
            channel_type: r.channel_type.clone(),
            name: r.name.clone(),
            nickname: r.nickname.clone(),
            auto_delete: r.auto_delete,
            deleted: false,
            last_message_id: r.last_message_id,
            subscriber_count: r.subscriber_count,
            tag_list: c.tags.iter().map(|(id, name)| GameTalkTagRef { id: *id, name: name.clone() }).collect(),
            reg_user: r.reg_user.clone(),
            reg_date: date(r.created_at),
            mod_user: r.mod_user.clone(),
            mod_date: date(r.updated_at),
        }
    }
}

/// A tag as GameTalk shows it (`result` of Get Tag, `tagList`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkTag)]
pub struct GameTalkTag {
    pub app_key: String,
    pub id: i64,
    pub name: String,
    #[schema(required = true)]
    pub description: Option<String>,
    pub reg_user: String,
    #[schema(format = DateTime, example = "2026-11-23T19:40:00+00:00")]
    pub reg_date: String,
    pub mod_user: String,
    #[schema(format = DateTime, example = "2026-11-23T19:40:00+00:00")]
    pub mod_date: String,
}

impl GameTalkTag {
    pub fn new(app_key: &str, t: &Tag) -> Self {
        GameTalkTag {
            app_key: app_key.to_owned(),
            id: t.id,
            name: t.name.clone(),
            description: t.description.clone(),
            reg_user: t.reg_user.clone(),
            reg_date: date(t.created_at),
            mod_user: t.mod_user.clone(),
            mod_date: date(t.updated_at),
        }
    }
}

/// A user as GameTalk shows it (`user` of Get User, `userList` of Get Subscriber).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkUser)]
pub struct GameTalkUser {
    pub app_key: String,
    /// The player's id.
    pub user_id: String,
    /// The chat nickname; until one is set, the player's display name, else username.
    #[schema(required = true)]
    pub nickname: Option<String>,
    #[schema(required = true)]
    pub language_code: Option<String>,
    /// `false` after Delete User Info, until Update User sets a profile again.
    pub valid: bool,
    #[schema(required = true, format = DateTime, example = "2026-11-23T19:40:00+00:00")]
    pub last_login_date: Option<String>,
    /// The player's creation time (in a subscriber list: the subscription's).
    #[schema(format = DateTime, example = "2026-11-23T19:40:00+00:00")]
    pub reg_date: String,
}

impl GameTalkUser {
    pub fn new(app_key: &str, u: &ChatUser) -> Self {
        GameTalkUser {
            app_key: app_key.to_owned(),
            user_id: u.user_id.clone(),
            nickname: u.nickname.clone(),
            language_code: u.language_code.clone(),
            valid: u.valid,
            last_login_date: u.last_login_at.map(date),
            reg_date: date(u.reg_at),
        }
    }
}

/// A GameTalk shape as JSON, for event data.
fn to_json(v: impl Serialize) -> Value {
    // Plain structs of strings, numbers and booleans: serializing them cannot fail.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub fn channel_json(app_key: &str, c: &Channel) -> Value {
    to_json(GameTalkChannel::new(app_key, c))
}

pub fn user_json(app_key: &str, u: &ChatUser) -> Value {
    to_json(GameTalkUser::new(app_key, u))
}

/// Who made a change, as `regUser`/`modUser` show it.
fn who(ctx: &EventContext) -> String {
    ctx.actor.clone().unwrap_or_else(|| "server".into())
}

fn event(ctx: &EventContext, t: &'static str, project_id: &str, kind: &'static str, id: &str, data: Value) -> NewEvent {
    let mut e = NewEvent::about(ctx, t, (None, Some(project_id)), kind, id, &Value::Null);
    e.data = data;
    e
}

fn check_text(field: &str, value: &str, max: usize) -> ChatResult<()> {
    let n = value.chars().count();
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if n > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_opt_text(field: &str, value: Option<&str>, max: usize) -> ChatResult<()> {
    match value {
        Some(v) if v.chars().count() > max => Err(invalid(field, format!("must be at most {max} characters"))),
        Some(v) if v.chars().any(char::is_control) => Err(invalid(field, "must not contain control characters")),
        _ => Ok(()),
    }
}

/// Page request of the GameTalk lists: `page` from 0, `size` mandatory, 1..=100.
pub fn paging(page: Option<i64>, size: Option<i64>) -> ChatResult<(i64, i64)> {
    let size = size.ok_or_else(|| invalid("size", "is required (1 to 100)"))?;
    if !(1..=MAX_PAGE).contains(&size) {
        return Err(invalid("size", "must be between 1 and 100"));
    }
    let page = page.unwrap_or(0);
    if !(0..=MAX_PAGE_NUMBER).contains(&page) {
        return Err(invalid("page", format!("must be between 0 and {MAX_PAGE_NUMBER} (pages count from 0)")));
    }
    Ok((page, size))
}

/// GameTalk's `pagingInfo`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkPagingInfo)]
pub struct PagingInfo {
    /// Whether this is page 0.
    pub first: bool,
    /// Whether no page follows.
    pub last: bool,
    /// How many items this page holds.
    pub number_of_elements: i64,
    /// The page number, from 0.
    pub page: i64,
    pub size: i64,
    pub total_elements: i64,
    pub total_pages: i64,
}

impl PagingInfo {
    pub fn new(page: i64, size: i64, count: usize, total: i64) -> Self {
        let pages = (total + size - 1) / size;
        PagingInfo {
            first: page == 0,
            last: page + 1 >= pages,
            number_of_elements: count as i64,
            page,
            size,
            total_elements: total,
            total_pages: pages,
        }
    }
}

// ---- tags ----

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagInput {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
}

pub async fn create_tag(store: &Store, ctx: &EventContext, project_id: &str, input: TagInput) -> ChatResult<Tag> {
    let name = input.name.ok_or_else(|| invalid("name", "is required"))?;
    check_text("name", &name, MAX_NAME)?;
    let description = input.description.flatten();
    check_opt_text("description", description.as_deref(), MAX_DESCRIPTION)?;
    let now = store::now();
    let tag = Tag {
        id: 0,
        project_id: project_id.to_owned(),
        name,
        description,
        reg_user: who(ctx),
        created_at: now,
        mod_user: who(ctx),
        updated_at: now,
    };
    Ok(store
        .insert_tag(&tag, |t| {
            event(ctx, types::CHAT_TAG_CREATED, project_id, "chat_tag", &t.id.to_string(), tag_data(t))
        })
        .await?)
}

fn tag_data(t: &Tag) -> Value {
    json!({"id": t.id, "name": t.name, "description": t.description})
}

pub async fn update_tag(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    id: i64,
    input: TagInput,
) -> ChatResult<Tag> {
    if let Some(name) = &input.name {
        check_text("name", name, MAX_NAME)?;
    }
    if let Some(Some(description)) = &input.description {
        check_opt_text("description", Some(description), MAX_DESCRIPTION)?;
    }
    // Read, change, save if unchanged meanwhile; else again.
    let input = &input;
    retry_on_stale(|| async move {
        let mut tag = store.get_tag(project_id, id).await?;
        let previous = tag.updated_at;
        if let Some(name) = &input.name {
            tag.name = name.clone();
        }
        if let Some(description) = &input.description {
            tag.description = description.clone();
        }
        tag.mod_user = who(ctx);
        tag.updated_at = store::next_updated_at(previous);
        let e = event(ctx, types::CHAT_TAG_UPDATED, project_id, "chat_tag", &id.to_string(), tag_data(&tag));
        store.update_tag(&tag, previous, &e).await?;
        Ok(tag)
    })
    .await
}

pub async fn delete_tag(store: &Store, ctx: &EventContext, project_id: &str, id: i64) -> ChatResult<Tag> {
    let tag = store.get_tag(project_id, id).await?;
    let e = event(ctx, types::CHAT_TAG_DELETED, project_id, "chat_tag", &id.to_string(), tag_data(&tag));
    store.delete_tag(project_id, id, &e).await?;
    Ok(tag)
}

// ---- channels ----

/// A channel's fields as GameTalk sends them (create: `name` required; update: all optional,
/// absent fields keep their value).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkChannelInput)]
pub struct ChannelInput {
    /// 1 to 100 characters, not only blanks; required to create a channel.
    #[schema(nullable = false, min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// At most 100 characters; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 100)]
    pub nickname: Option<Option<String>>,
    /// Ids of existing tags (at most 100); on update, replaces the channel's tags.
    #[schema(nullable = false)]
    pub tag_id_list: Option<Vec<i64>>,
    /// Delete the channel when its last subscriber leaves (default `true`).
    #[schema(nullable = false)]
    pub auto_delete: Option<bool>,
}

/// The tags of `ids`, each of which must exist in the project.
async fn resolve_tags(store: &Store, project_id: &str, ids: &[i64]) -> ChatResult<Vec<(i64, String)>> {
    if ids.len() > MAX_TAG_IDS {
        return Err(invalid("tagIdList", format!("must name at most {MAX_TAG_IDS} tags")));
    }
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let found = store.tags_by_ids(project_id, &ids).await?;
    if found.len() != ids.len() {
        return Err(ChatError::TagNotFound);
    }
    Ok(found.into_iter().map(|t| (t.id, t.name)).collect())
}

pub async fn create_channel(
    store: &Store,
    ctx: &EventContext,
    app_key: &str,
    project_id: &str,
    input: ChannelInput,
) -> ChatResult<Channel> {
    let name = input.name.ok_or_else(|| invalid("name", "is required"))?;
    check_text("name", &name, MAX_NAME)?;
    let nickname = input.nickname.flatten();
    check_opt_text("nickname", nickname.as_deref(), MAX_NAME)?;
    let tags = resolve_tags(store, project_id, input.tag_id_list.as_deref().unwrap_or_default()).await?;
    let now = store::now();
    let channel = Channel {
        row: ChannelRow {
            id: store::new_id(),
            project_id: project_id.to_owned(),
            channel_type: "PUBLIC".into(),
            name,
            nickname,
            auto_delete: input.auto_delete.unwrap_or(true),
            last_message_id: 0,
            reg_user: who(ctx),
            created_at: now,
            mod_user: who(ctx),
            updated_at: now,
            subscriber_count: 0,
        },
        tags,
    };
    let e = event(
        ctx,
        types::CHAT_CHANNEL_CREATED,
        project_id,
        "chat_channel",
        &channel.row.id,
        channel_json(app_key, &channel),
    );
    store.insert_channel(&channel, &e).await?;
    Ok(channel)
}

pub async fn update_channel(
    store: &Store,
    ctx: &EventContext,
    app_key: &str,
    project_id: &str,
    id: &str,
    input: ChannelInput,
) -> ChatResult<Channel> {
    if let Some(name) = &input.name {
        check_text("name", name, MAX_NAME)?;
    }
    if let Some(nickname) = &input.nickname {
        check_opt_text("nickname", nickname.as_deref(), MAX_NAME)?;
    }
    let tags = match &input.tag_id_list {
        Some(ids) => Some(resolve_tags(store, project_id, ids).await?),
        None => None,
    };
    // Read, change, save if unchanged meanwhile; else again.
    let input = &input;
    let tags = &tags;
    retry_on_stale(|| async move {
        let mut channel = store.get_channel(project_id, id).await?;
        let previous = channel.row.updated_at;
        if let Some(name) = &input.name {
            channel.row.name = name.clone();
        }
        if let Some(nickname) = &input.nickname {
            channel.row.nickname = nickname.clone();
        }
        if let Some(auto_delete) = input.auto_delete {
            channel.row.auto_delete = auto_delete;
        }
        if let Some(tags) = &tags {
            channel.tags = tags.clone();
        }
        channel.row.mod_user = who(ctx);
        channel.row.updated_at = store::next_updated_at(previous);
        let e =
            event(ctx, types::CHAT_CHANNEL_UPDATED, project_id, "chat_channel", id, channel_json(app_key, &channel));
        store.update_channel(&channel, previous, tags.is_some(), &e).await?;
        Ok(channel)
    })
    .await
}

pub async fn delete_channel(
    store: &Store,
    ctx: &EventContext,
    app_key: &str,
    project_id: &str,
    id: &str,
) -> ChatResult<()> {
    let channel = store.get_channel(project_id, id).await?;
    let e = event(ctx, types::CHAT_CHANNEL_DELETED, project_id, "chat_channel", id, channel_json(app_key, &channel));
    Ok(store.delete_channel(project_id, id, &e).await?)
}

/// The channel list's tag filter from GameTalk's `tagType` (OR, AND) and `tagIdList` ("1,2").
pub async fn tag_filter(
    store: &Store,
    project_id: &str,
    tag_type: Option<&str>,
    tag_id_list: Option<&str>,
) -> ChatResult<TagFilter> {
    let all = match tag_type.map(str::to_ascii_uppercase).as_deref() {
        None | Some("OR") => false,
        Some("AND") => true,
        Some(_) => return Err(invalid("tagType", "must be OR or AND")),
    };
    let Some(list) = tag_id_list.map(str::trim).filter(|l| !l.is_empty()) else { return Ok(TagFilter::None) };
    let ids = list
        .split(',')
        .map(|s| s.trim().parse::<i64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid("tagIdList", "must be tag ids separated by commas, e.g. 1,2,3"))?;
    let ids: Vec<i64> = resolve_tags(store, project_id, &ids).await?.into_iter().map(|(id, _)| id).collect();
    Ok(if all { TagFilter::All(ids) } else { TagFilter::Any(ids) })
}

// ---- users and subscriptions ----

fn subscription_event(
    ctx: &EventContext,
    t: &'static str,
    app_key: &str,
    channel: &Channel,
    user_id: &str,
) -> NewEvent {
    let data = json!({"channelId": channel.row.id, "userId": user_id, "channel": channel_json(app_key, channel)});
    event(ctx, t, &channel.row.project_id, "chat_channel", &channel.row.id, data)
}

pub async fn subscribe(
    store: &Store,
    ctx: &EventContext,
    app_key: &str,
    project_id: &str,
    channel_id: &str,
    user_id: Option<String>,
) -> ChatResult<()> {
    let user_id = user_id.filter(|u| !u.is_empty()).ok_or_else(|| invalid("userId", "is required"))?;
    let channel = store.get_channel(project_id, channel_id).await?;
    let result = store
        .subscribe(project_id, channel_id, &user_id, |count| {
            let mut after = channel.clone();
            after.row.subscriber_count = count;
            subscription_event(ctx, types::CHAT_SUBSCRIBED, app_key, &after, &user_id)
        })
        .await;
    match result {
        Err(StoreError::Conflict(_)) => Err(ChatError::AlreadySubscribed),
        other => Ok(other?),
    }
}

/// The events of one removed subscription: the unsubscription, and the channel's deletion
/// when it was an auto-delete channel left empty.
fn unsubscribe_events(ctx: &EventContext, app_key: &str, user_id: &str, u: &Unsubscribed) -> Vec<NewEvent> {
    let mut events = vec![subscription_event(ctx, types::CHAT_UNSUBSCRIBED, app_key, &u.channel, user_id)];
    if u.channel_deleted {
        let c = &u.channel;
        events.push(event(
            ctx,
            types::CHAT_CHANNEL_DELETED,
            &c.row.project_id,
            "chat_channel",
            &c.row.id,
            channel_json(app_key, c),
        ));
    }
    events
}

pub async fn unsubscribe(
    store: &Store,
    ctx: &EventContext,
    app_key: &str,
    project_id: &str,
    channel_id: &str,
    user_id: Option<String>,
) -> ChatResult<()> {
    let user_id = user_id.filter(|u| !u.is_empty()).ok_or_else(|| invalid("userId", "is required"))?;
    // The store answers NotFound for a missing channel, then for a missing subscription.
    store
        .unsubscribe(project_id, &user_id, Some(channel_id), |u| unsubscribe_events(ctx, app_key, &user_id, u), None)
        .await?;
    Ok(())
}

/// A user's chat profile (Update User): both fields are required.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkProfileInput)]
pub struct ProfileInput {
    /// A language code such as `en`, `ko` or `zh-Hant` (letters, digits, `-`, `_`; at most 35).
    #[schema(required = true, nullable = false, min_length = 1, max_length = 35, example = "ko")]
    pub language_code: Option<String>,
    /// 1 to 100 characters, not only blanks.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 100)]
    pub nickname: Option<String>,
}

pub async fn put_user(
    store: &Store,
    ctx: &EventContext,
    app_key: &str,
    project_id: &str,
    user_id: &str,
    input: ProfileInput,
) -> ChatResult<ChatUser> {
    let nickname = input.nickname.ok_or_else(|| invalid("nickname", "is required"))?;
    check_text("nickname", &nickname, MAX_NAME)?;
    let language = input.language_code.ok_or_else(|| invalid("languageCode", "is required"))?;
    if language.is_empty()
        || language.len() > 35
        || !language.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid("languageCode", "must be a language code such as en, ko or zh-Hant"));
    }
    let mut user = store.get_chat_user(project_id, user_id).await?;
    (user.nickname, user.language_code, user.valid) = (Some(nickname.clone()), Some(language.clone()), true);
    let data = user_json(app_key, &user);
    store
        .put_chat_profile(project_id, user_id, &nickname, &language, || {
            event(ctx, types::CHAT_USER_UPDATED, project_id, "user", user_id, data)
        })
        .await?;
    Ok(user)
}

/// Deletes a player's chat profile and every subscription (the player stays).
pub async fn delete_user(
    store: &Store,
    ctx: &EventContext,
    app_key: &str,
    project_id: &str,
    user_id: &str,
) -> ChatResult<()> {
    let user = store.get_chat_user(project_id, user_id).await?;
    let e = event(ctx, types::CHAT_USER_DELETED, project_id, "user", user_id, json!({"userId": user.user_id}));
    store.unsubscribe(project_id, user_id, None, |u| unsubscribe_events(ctx, app_key, user_id, u), Some(e)).await?;
    Ok(())
}

// ---- messages ----

/// Per-player send limit: a sliding window of send times, per node.
pub struct RateLimiter {
    max: usize,
    window: Duration,
    sends: Mutex<HashMap<(String, String), VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(config: &ChatConfig) -> Self {
        RateLimiter {
            max: config.rate_limit_messages as usize,
            window: Duration::from_secs(config.rate_window_secs.max(1)),
            sends: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one send by `user_id`, or says how many seconds until one is allowed.
    pub fn check(&self, project_id: &str, user_id: &str) -> Result<(), u64> {
        if self.max == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut sends = self.sends.lock().unwrap_or_else(|p| p.into_inner());
        if sends.len() > 100_000 {
            sends.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        let times = sends.entry((project_id.to_owned(), user_id.to_owned())).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            times.pop_front();
        }
        if times.len() >= self.max {
            let oldest = times.front().copied().unwrap_or(now);
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        times.push_back(now);
        Ok(())
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessage {
    /// The sender; absent for a message from the game server itself.
    pub user_id: Option<String>,
    pub text: String,
    pub data: Option<Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditMessage {
    /// When given, the edit is made on this player's behalf: it must be the sender.
    pub user_id: Option<String>,
    pub text: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub data: Option<Option<Value>>,
}

fn check_message(config: &ChatConfig, text: &str, data: Option<&Value>) -> ChatResult<()> {
    let max = config.max_message_length;
    if text.trim().is_empty() {
        return Err(invalid("text", "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(invalid("text", format!("must be at most {max} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid("text", "must not contain control characters (other than newline and tab)"));
    }
    if let Some(data) = data {
        if super::validate::json_has_nul(data) {
            return Err(invalid("data", "must not contain NUL characters"));
        }
        if data.to_string().len() > MAX_DATA_BYTES {
            return Err(invalid("data", format!("must be at most {MAX_DATA_BYTES} bytes as JSON")));
        }
    }
    Ok(())
}

fn message_event(ctx: &EventContext, t: &'static str, m: &Message) -> NewEvent {
    let data = serde_json::to_value(m).unwrap_or(Value::Null);
    event(ctx, t, &m.project_id, "chat_message", &m.id.to_string(), data)
}

pub async fn send_message(
    store: &Store,
    limiter: &RateLimiter,
    config: &ChatConfig,
    ctx: &EventContext,
    project_id: &str,
    channel_id: &str,
    input: SendMessage,
) -> ChatResult<Message> {
    check_message(config, &input.text, input.data.as_ref())?;
    if let Some(user_id) = &input.user_id {
        store.channel_exists(project_id, channel_id).await?;
        if !store.is_subscribed(channel_id, user_id).await? {
            return Err(ChatError::NotSubscribed);
        }
        limiter.check(project_id, user_id).map_err(ChatError::RateLimited)?;
    }
    let ctx = ctx.clone();
    Ok(store
        .insert_message(NewMessage {
            project_id: project_id.to_owned(),
            channel_id: channel_id.to_owned(),
            user_id: input.user_id,
            text: input.text,
            data: input.data,
            event: Box::new(move |m| message_event(&ctx, types::CHAT_MESSAGE_CREATED, m)),
        })
        .await?)
}

/// The message to change, when `acting_for` (if given) sent it.
async fn own_message(
    store: &Store,
    project_id: &str,
    channel_id: &str,
    id: i64,
    acting_for: Option<&str>,
) -> ChatResult<Message> {
    let m = store.get_message(project_id, channel_id, id).await?;
    if m.deleted {
        return Err(ChatError::MessageNotFound);
    }
    if let Some(user) = acting_for
        && m.user_id.as_deref() != Some(user)
    {
        return Err(ChatError::Forbidden("only the sender (or the game server) may change a message".into()));
    }
    Ok(m)
}

pub async fn edit_message(
    store: &Store,
    config: &ChatConfig,
    ctx: &EventContext,
    project_id: &str,
    channel_id: &str,
    id: i64,
    input: EditMessage,
) -> ChatResult<Message> {
    let input = &input;
    retry_on_stale(|| async move {
        let mut m = own_message(store, project_id, channel_id, id, input.user_id.as_deref()).await?;
        let previous = m.updated_at;
        if let Some(text) = &input.text {
            m.text = text.clone();
        }
        if let Some(data) = &input.data {
            m.data = data.clone().map(sqlx::types::Json);
        }
        check_message(config, &m.text, m.data.as_ref().map(|d| &d.0))?;
        m.updated_at = store::next_updated_at(previous);
        store.update_message(&m, previous, &message_event(ctx, types::CHAT_MESSAGE_UPDATED, &m)).await?;
        Ok(m)
    })
    .await
}

/// Soft delete: the message keeps its id and place in the history, without its text and data.
pub async fn delete_message(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    channel_id: &str,
    id: i64,
    acting_for: Option<&str>,
) -> ChatResult<Message> {
    retry_on_stale(|| async move {
        let mut m = own_message(store, project_id, channel_id, id, acting_for).await?;
        let previous = m.updated_at;
        (m.text, m.data, m.deleted) = (String::new(), None, true);
        m.updated_at = store::next_updated_at(previous);
        store.update_message(&m, previous, &message_event(ctx, types::CHAT_MESSAGE_DELETED, &m)).await?;
        Ok(m)
    })
    .await
}

/// A history position a client can store: `<microseconds since 1970>.<message id>`.
pub fn encode_position(m: &Message) -> String {
    format!("{}.{}", m.created_at.timestamp_micros(), m.id)
}

pub fn decode_position(field: &str, s: &str) -> ChatResult<(DateTime<Utc>, i64)> {
    let bad = || {
        ChatError::InvalidQuery(
            field.to_owned(),
            "is not a cursor Herald gave out (see `before`/`after` in a history page)".into(),
        )
    };
    let (micros, id) = s.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    // 1970 to 9999: what both databases store.
    if !(0..=253_402_300_799_000_000).contains(&micros) {
        return Err(bad());
    }
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

pub async fn history(
    store: &Store,
    project_id: &str,
    channel_id: &str,
    before: Option<&str>,
    after: Option<&str>,
    limit: Option<i64>,
) -> ChatResult<Vec<Message>> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ChatError::InvalidQuery("limit".into(), "must be between 1 and 100".into()));
    }
    let from = match (before, after) {
        (Some(_), Some(_)) => {
            return Err(ChatError::InvalidQuery("before".into(), "give either before or after, not both".into()));
        }
        (Some(b), None) => {
            let (at, id) = decode_position("before", b)?;
            HistoryFrom::Before(at, id)
        }
        (None, Some(a)) => {
            let (at, id) = decode_position("after", a)?;
            HistoryFrom::After(at, id)
        }
        (None, None) => HistoryFrom::Latest,
    };
    store.channel_exists(project_id, channel_id).await?;
    Ok(store.history(channel_id, from, limit).await?)
}
