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

mod cursor;
mod error;
mod limit;
mod messages;
mod wire;

pub use cursor::*;
pub use error::*;
pub use limit::*;
pub use messages::*;
pub use wire::*;

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
    store.unsubscribe(project_id, &user_id, channel_id, |u| unsubscribe_events(ctx, app_key, &user_id, u)).await?;
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
    store.delete_chat_user(project_id, user_id, |u| unsubscribe_events(ctx, app_key, user_id, u), &e).await?;
    Ok(())
}
