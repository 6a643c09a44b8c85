//! Chat: tags, channels, chat profiles, subscriptions and messages (docs/CHAT.md).
//!
//! Every write runs in one transaction with its outbox events. A subscriber count is counted
//! from the subscriptions when read, never kept as a number that concurrent writers could
//! get wrong.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use tokio::sync::{mpsc, oneshot};

use super::{
    Backend, Page, PageRequest, Store, StoreError, StoreResult, batch,
    events::{INSERT_EVENTS_HEAD, event_args, insert_event},
    fetch_page, query_builder, with_pool, write_with_events,
};
use crate::events::NewEvent;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tag {
    pub id: i64,
    pub project_id: String,
    pub name: String,
    pub description: Option<String>,
    pub reg_user: String,
    pub created_at: DateTime<Utc>,
    pub mod_user: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChannelRow {
    pub id: String,
    pub project_id: String,
    #[sqlx(rename = "type")]
    pub channel_type: String,
    pub name: String,
    pub nickname: Option<String>,
    pub auto_delete: bool,
    pub last_message_id: i64,
    pub reg_user: String,
    pub created_at: DateTime<Utc>,
    pub mod_user: String,
    pub updated_at: DateTime<Utc>,
    pub subscriber_count: i64,
}

/// A channel with its tags (id, name), as the API shows it.
#[derive(Debug, Clone)]
pub struct Channel {
    pub row: ChannelRow,
    pub tags: Vec<(i64, String)>,
}

/// A player as chat sees them: the player's own record joined with the chat profile.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChatUser {
    pub user_id: String,
    pub nickname: Option<String>,
    pub language_code: Option<String>,
    pub valid: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    /// The player's creation time, or the subscription's in a subscriber list.
    pub reg_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(skip)]
    pub project_id: String,
    pub id: i64,
    pub channel_id: String,
    pub user_id: Option<String>,
    pub text: String,
    #[schema(value_type = Option<Object>)]
    pub data: Option<Json<Value>>,
    pub deleted: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which tags a channel list asks for: channels with any of them, or with all of them.
#[derive(Debug, Clone)]
pub enum TagFilter {
    None,
    Any(Vec<i64>),
    All(Vec<i64>),
}

/// Where a history page starts: strictly before or strictly after a (time, id) position.
#[derive(Debug, Clone, Copy)]
pub enum HistoryFrom {
    Latest,
    Before(DateTime<Utc>, i64),
    After(DateTime<Utc>, i64),
}

const CHANNEL_SELECT: &str = "SELECT c.*, (SELECT COUNT(*) FROM chat_subscriptions s WHERE s.channel_id = c.id) \
                              AS subscriber_count FROM chat_channels c";

const TAG_TAKEN: &str = "a tag with this name already exists in the project";

/// Locks the selected channel rows until the commit on PostgreSQL (several nodes, concurrent
/// transactions); SQLite's single writer already serializes writers.
fn for_update(store: &Store) -> &'static str {
    match store.backend() {
        Backend::Postgres(_) => " FOR UPDATE",
        Backend::Sqlite { .. } => "",
    }
}

/// Inserts `$channel`'s tags through `$tx` (a transaction of either backend); a tag deleted
/// meanwhile is `tag_gone`.
macro_rules! insert_channel_tags {
    ($tx:ident, $channel:expr) => {
        for (tag_id, _) in &$channel.tags {
            sqlx::query("INSERT INTO chat_channel_tags (channel_id, tag_id) VALUES ($1, $2)")
                .bind(&$channel.row.id)
                .bind(*tag_id)
                .execute(&mut *$tx)
                .await
                .map_err(tag_gone)?;
        }
    };
}

/// What one subscription change did: the channel, and whether it was deleted with it.
pub struct Unsubscribed {
    pub channel: Channel,
    pub channel_deleted: bool,
}

/// A tag that vanished between validation and insert.
fn tag_gone(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("tag"),
        other => other.into(),
    }
}

mod channels;
mod messages;
mod profiles;
mod subscriptions;
mod tags;
mod writer;
pub(super) use writer::spawn_message_writer;
pub use writer::{MessageJob, NewMessage};
