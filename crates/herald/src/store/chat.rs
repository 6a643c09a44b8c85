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

impl Store {
    // ---- tags ----

    pub async fn insert_tag(&self, tag: &Tag, event: impl FnOnce(&Tag) -> NewEvent) -> StoreResult<Tag> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO chat_tags (project_id, name, description, reg_user, created_at, mod_user, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&tag.project_id)
            .bind(&tag.name)
            .bind(&tag.description)
            .bind(&tag.reg_user)
            .bind(tag.created_at)
            .bind(&tag.mod_user)
            .bind(tag.updated_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(super::conflict_on_unique(TAG_TAKEN))?;
            let saved = Tag { id, ..tag.clone() };
            insert_event!(&mut *tx, &event(&saved))?;
            tx.commit().await?;
            self.notify_events();
            Ok(saved)
        })
    }

    pub async fn get_tag(&self, project_id: &str, id: i64) -> StoreResult<Tag> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, Tag>("SELECT * FROM chat_tags WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("tag"))
        })
    }

    /// The tags of `ids` that exist in the project.
    pub async fn tags_by_ids(&self, project_id: &str, ids: &[i64]) -> StoreResult<Vec<Tag>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_pool!(self, read, |pool| {
            let mut q = query_builder(pool, "SELECT * FROM chat_tags WHERE project_id = ");
            q.push_bind(project_id).push(" AND id IN (");
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            q.push(") ORDER BY id");
            Ok(q.build_query_as::<Tag>().fetch_all(pool).await?)
        })
    }

    /// One page of the project's tags, by id.
    pub async fn list_tags(&self, project_id: &str, page: PageRequest) -> StoreResult<Page<Tag>> {
        fetch_page!(
            self,
            Tag,
            "FROM chat_tags WHERE project_id = $1".to_string(),
            "id",
            vec![project_id.to_owned()],
            page
        )
    }

    /// Saves `tag` if it is still as read (`previous` is its `updated_at` then); `Stale` if not.
    pub async fn update_tag(&self, tag: &Tag, previous: DateTime<Utc>, event: &NewEvent) -> StoreResult<()> {
        write_with_events!(self, [event], |tx| {
            let done = sqlx::query(
                "UPDATE chat_tags SET name = $1, description = $2, mod_user = $3, updated_at = $4 \
                 WHERE project_id = $5 AND id = $6 AND updated_at = $7",
            )
            .bind(&tag.name)
            .bind(&tag.description)
            .bind(&tag.mod_user)
            .bind(tag.updated_at)
            .bind(&tag.project_id)
            .bind(tag.id)
            .bind(previous)
            .execute(&mut *tx)
            .await
            .map_err(super::conflict_on_unique(TAG_TAKEN))?;
            super::expect_one_row(done.rows_affected())?;
        })
    }

    /// Deletes a tag; channels simply lose it.
    pub async fn delete_tag(&self, project_id: &str, id: i64, event: &NewEvent) -> StoreResult<()> {
        write_with_events!(self, [event], |tx| {
            let done = sqlx::query("DELETE FROM chat_tags WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("tag"));
            }
        })
    }

    // ---- channels ----

    async fn with_tags(&self, rows: Vec<ChannelRow>) -> StoreResult<Vec<Channel>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let pairs: Vec<(String, i64, String)> = with_pool!(self, read, |pool| {
            let mut q = query_builder(
                pool,
                "SELECT ct.channel_id, t.id, t.name FROM chat_channel_tags ct JOIN chat_tags t ON t.id = ct.tag_id \
                 WHERE ct.channel_id IN (",
            );
            let mut list = q.separated(", ");
            for r in &rows {
                list.push_bind(&r.id);
            }
            q.push(") ORDER BY t.id");
            q.build_query_as::<(String, i64, String)>().fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let tags = pairs.iter().filter(|p| p.0 == row.id).map(|p| (p.1, p.2.clone())).collect();
                Channel { row, tags }
            })
            .collect())
    }

    /// `NotFound("channel")` unless the project has the channel (one indexed read, where the
    /// channel itself is not needed).
    pub async fn channel_exists(&self, project_id: &str, id: &str) -> StoreResult<()> {
        let found: Option<i32> = with_pool!(self, read, |pool| {
            sqlx::query_scalar("SELECT 1 FROM chat_channels WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        found.map(|_| ()).ok_or(StoreError::NotFound("channel"))
    }

    pub async fn get_channel(&self, project_id: &str, id: &str) -> StoreResult<Channel> {
        let sql = format!("{CHANNEL_SELECT} WHERE c.project_id = $1 AND c.id = $2");
        let row = with_pool!(self, read, |pool| {
            sqlx::query_as::<_, ChannelRow>(sqlx::AssertSqlSafe(sql))
                .bind(project_id)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?
        .ok_or(StoreError::NotFound("channel"))?;
        Ok(self.with_tags(vec![row]).await?.remove(0))
    }

    /// One page of channels, oldest first, and the total matching `filter`.
    pub async fn list_channels(
        &self,
        project_id: &str,
        filter: &TagFilter,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<Channel>, i64)> {
        // The same condition after `WHERE` in the page and the count.
        fn condition<DB: sqlx::Database>(q: &mut sqlx::QueryBuilder<DB>, project_id: &str, filter: &TagFilter)
        where
            for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
            i64: for<'a> sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        {
            q.push("c.project_id = ").push_bind(project_id);
            let ids = match filter {
                TagFilter::None => return,
                TagFilter::Any(ids) => {
                    q.push(
                        " AND EXISTS (SELECT 1 FROM chat_channel_tags ct WHERE ct.channel_id = c.id AND ct.tag_id IN (",
                    );
                    ids
                }
                TagFilter::All(ids) => {
                    q.push(
                        " AND (SELECT COUNT(*) FROM chat_channel_tags ct WHERE ct.channel_id = c.id AND ct.tag_id IN (",
                    );
                    ids
                }
            };
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            match filter {
                TagFilter::All(_) => q.push(format_args!(")) = {}", ids.len())),
                _ => q.push("))"),
            };
        }
        let (rows, total) = with_pool!(self, read, |pool| {
            let mut q = query_builder(pool, &format!("{CHANNEL_SELECT} WHERE "));
            condition(&mut q, project_id, filter);
            q.push(" ORDER BY c.created_at, c.id LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
            let rows = q.build_query_as::<ChannelRow>().fetch_all(pool).await?;
            let mut c = query_builder(pool, "SELECT COUNT(*) FROM chat_channels c WHERE ");
            condition(&mut c, project_id, filter);
            let total = c.build_query_scalar::<i64>().fetch_one(pool).await?;
            Ok::<_, sqlx::Error>((rows, total))
        })?;
        Ok((self.with_tags(rows).await?, total))
    }

    /// Inserts a channel and its tags. A tag deleted meanwhile fails as `NotFound("tag")`.
    pub async fn insert_channel(&self, channel: &Channel, event: &NewEvent) -> StoreResult<()> {
        let r = &channel.row;
        write_with_events!(self, [event], |tx| {
            sqlx::query(
                "INSERT INTO chat_channels (id, project_id, type, name, nickname, auto_delete, last_message_id, \
                 reg_user, created_at, mod_user, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10)",
            )
            .bind(&r.id)
            .bind(&r.project_id)
            .bind(&r.channel_type)
            .bind(&r.name)
            .bind(&r.nickname)
            .bind(r.auto_delete)
            .bind(&r.reg_user)
            .bind(r.created_at)
            .bind(&r.mod_user)
            .bind(r.updated_at)
            .execute(&mut *tx)
            .await?;
            insert_channel_tags!(tx, channel);
        })
    }

    /// Saves a channel's fields and replaces its tags when `replace_tags`.
    /// `Stale` if the channel changed since it was read (`previous`: its `updated_at` then).
    pub async fn update_channel(
        &self,
        channel: &Channel,
        previous: DateTime<Utc>,
        replace_tags: bool,
        event: &NewEvent,
    ) -> StoreResult<()> {
        let r = &channel.row;
        write_with_events!(self, [event], |tx| {
            let done = sqlx::query(
                "UPDATE chat_channels SET name = $1, nickname = $2, auto_delete = $3, mod_user = $4, updated_at = $5 \
                 WHERE project_id = $6 AND id = $7 AND updated_at = $8",
            )
            .bind(&r.name)
            .bind(&r.nickname)
            .bind(r.auto_delete)
            .bind(&r.mod_user)
            .bind(r.updated_at)
            .bind(&r.project_id)
            .bind(&r.id)
            .bind(previous)
            .execute(&mut *tx)
            .await?;
            super::expect_one_row(done.rows_affected())?;
            if replace_tags {
                sqlx::query("DELETE FROM chat_channel_tags WHERE channel_id = $1")
                    .bind(&r.id)
                    .execute(&mut *tx)
                    .await?;
                insert_channel_tags!(tx, channel);
            }
        })
    }

    /// Deletes a channel with its subscriptions and messages.
    pub async fn delete_channel(&self, project_id: &str, id: &str, event: &NewEvent) -> StoreResult<()> {
        write_with_events!(self, [event], |tx| {
            let done = sqlx::query("DELETE FROM chat_channels WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("channel"));
            }
        })
    }

    // ---- users and subscriptions ----

    pub async fn get_chat_user(&self, project_id: &str, user_id: &str) -> StoreResult<ChatUser> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, ChatUser>(
                "SELECT u.id AS user_id, COALESCE(p.nickname, u.display_name, u.username) AS nickname, \
                 p.language_code, COALESCE(p.valid, TRUE) AS valid, u.last_login_at, u.created_at AS reg_at \
                 FROM users u LEFT JOIN chat_profiles p ON p.project_id = u.project_id AND p.user_id = u.id \
                 WHERE u.project_id = $1 AND u.id = $2",
            )
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .ok_or(StoreError::NotFound("user"))
        })
    }

    /// Sets a player's chat nickname and language (the player must exist).
    pub async fn put_chat_profile(
        &self,
        project_id: &str,
        user_id: &str,
        nickname: &str,
        language_code: &str,
        event: impl FnOnce() -> NewEvent,
    ) -> StoreResult<()> {
        let now = super::now();
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound("user"));
            }
            sqlx::query(
                "INSERT INTO chat_profiles (project_id, user_id, nickname, language_code, valid, updated_at) \
                 VALUES ($1, $2, $3, $4, TRUE, $5) ON CONFLICT (project_id, user_id) DO UPDATE SET \
                 nickname = excluded.nickname, language_code = excluded.language_code, valid = TRUE, \
                 updated_at = excluded.updated_at",
            )
            .bind(project_id)
            .bind(user_id)
            .bind(nickname)
            .bind(language_code)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            insert_event!(&mut *tx, &event())?;
            tx.commit().await?;
            self.notify_events();
            Ok(())
        })
    }

    /// Subscribes a player to a channel. `Conflict` when already subscribed.
    pub async fn subscribe(
        &self,
        project_id: &str,
        channel_id: &str,
        user_id: &str,
        event: impl FnOnce(i64) -> NewEvent,
    ) -> StoreResult<()> {
        let now = super::now();
        // The channel's row is locked first, so an unsubscribe deciding whether an auto-delete
        // channel just lost its last subscriber waits for this subscription, or this waits for it.
        let lock_sql = format!("SELECT 1 FROM chat_channels WHERE project_id = $1 AND id = $2{}", for_update(self));
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let channel: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(lock_sql))
                .bind(project_id)
                .bind(channel_id)
                .fetch_optional(&mut *tx)
                .await?;
            if channel.is_none() {
                return Err(StoreError::NotFound("channel"));
            }
            let user: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            if user.is_none() {
                return Err(StoreError::NotFound("user"));
            }
            sqlx::query(
                "INSERT INTO chat_subscriptions (channel_id, project_id, user_id, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(channel_id)
            .bind(project_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    StoreError::Conflict("the user already subscribes to this channel".into())
                }
                // The channel or the player was deleted meanwhile.
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("channel"),
                other => other.into(),
            })?;
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chat_subscriptions WHERE channel_id = $1")
                .bind(channel_id)
                .fetch_one(&mut *tx)
                .await?;
            insert_event!(&mut *tx, &event(count))?;
            tx.commit().await?;
            self.notify_events();
            Ok(())
        })
    }

    /// Removes the subscriptions of `user_id` to `channel_ids` (all of theirs when `None`),
    /// deleting each auto-delete channel left without subscribers. `events` makes the events of
    /// each removal. `NotFound("subscription")` when a named channel had none.
    pub async fn unsubscribe(
        &self,
        project_id: &str,
        user_id: &str,
        given: Option<&str>,
        events: impl Fn(&Unsubscribed) -> Vec<NewEvent>,
        profile_deleted: Option<NewEvent>,
    ) -> StoreResult<Vec<Unsubscribed>> {
        let lock_sql = format!("{CHANNEL_SELECT} WHERE c.project_id = $1 AND c.id = $2{}", for_update(self));
        let count_sql = "SELECT COUNT(*) FROM chat_subscriptions WHERE channel_id = $1";
        let mut done = Vec::new();
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            // Rounds until the user holds no (named) subscription: a subscribe committed while
            // this ran is swept by the next round. Channels are locked in id order.
            for _round in 0..3 {
                let channel_ids: Vec<String> = match given {
                    Some(id) if done.is_empty() => vec![id.to_owned()],
                    Some(_) => Vec::new(),
                    None => {
                        sqlx::query_scalar::<_, String>(
                            "SELECT channel_id FROM chat_subscriptions WHERE project_id = $1 AND user_id = $2 \
                         ORDER BY channel_id",
                        )
                        .bind(project_id)
                        .bind(user_id)
                        .fetch_all(&mut *tx)
                        .await?
                    }
                };
                if channel_ids.is_empty() {
                    break;
                }
                for channel_id in &channel_ids {
                    // Lock the channel (its subscriber count is taken below, under the lock).
                    let Some(mut row) = sqlx::query_as::<_, ChannelRow>(sqlx::AssertSqlSafe(lock_sql.clone()))
                        .bind(project_id)
                        .bind(channel_id)
                        .fetch_optional(&mut *tx)
                        .await?
                    else {
                        if given.is_some() {
                            return Err(StoreError::NotFound("channel"));
                        }
                        continue;
                    };
                    let removed = sqlx::query("DELETE FROM chat_subscriptions WHERE channel_id = $1 AND user_id = $2")
                        .bind(channel_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    if removed.rows_affected() == 0 {
                        if given.is_some() {
                            return Err(StoreError::NotFound("subscription"));
                        }
                        continue;
                    }
                    row.subscriber_count =
                        sqlx::query_scalar::<_, i64>(count_sql).bind(channel_id).fetch_one(&mut *tx).await?;
                    let channel_deleted = row.auto_delete && row.subscriber_count == 0;
                    let tags: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT t.id, t.name FROM chat_channel_tags ct JOIN chat_tags t ON t.id = ct.tag_id \
                         WHERE ct.channel_id = $1 ORDER BY t.id",
                    )
                    .bind(channel_id)
                    .fetch_all(&mut *tx)
                    .await?;
                    if channel_deleted {
                        sqlx::query("DELETE FROM chat_channels WHERE id = $1")
                            .bind(channel_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let item = Unsubscribed { channel: Channel { row, tags }, channel_deleted };
                    for e in events(&item) {
                        insert_event!(&mut *tx, &e)?;
                    }
                    done.push(item);
                }
                if given.is_some() {
                    break;
                }
            }
            if let Some(event) = &profile_deleted {
                sqlx::query(
                    "INSERT INTO chat_profiles (project_id, user_id, nickname, language_code, valid, updated_at) \
                     VALUES ($1, $2, NULL, NULL, FALSE, $3) ON CONFLICT (project_id, user_id) DO UPDATE SET \
                     nickname = NULL, language_code = NULL, valid = FALSE, updated_at = excluded.updated_at",
                )
                .bind(project_id)
                .bind(user_id)
                .bind(super::now())
                .execute(&mut *tx)
                .await?;
                insert_event!(&mut *tx, event)?;
            }
            tx.commit().await?;
            self.notify_events();
            Ok::<(), StoreError>(())
        })?;
        Ok(done)
    }

    /// One page of a channel's subscribers, in subscription order, and the total.
    pub async fn list_subscribers(
        &self,
        channel_id: &str,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<ChatUser>, i64)> {
        with_pool!(self, read, |pool| {
            let items = sqlx::query_as::<_, ChatUser>(
                "SELECT u.id AS user_id, COALESCE(p.nickname, u.display_name, u.username) AS nickname, \
                 p.language_code, COALESCE(p.valid, TRUE) AS valid, u.last_login_at, s.created_at AS reg_at \
                 FROM chat_subscriptions s JOIN users u ON u.project_id = s.project_id AND u.id = s.user_id \
                 LEFT JOIN chat_profiles p ON p.project_id = s.project_id AND p.user_id = s.user_id \
                 WHERE s.channel_id = $1 ORDER BY s.created_at, s.user_id LIMIT $2 OFFSET $3",
            )
            .bind(channel_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chat_subscriptions WHERE channel_id = $1")
                .bind(channel_id)
                .fetch_one(pool)
                .await?;
            Ok((items, total))
        })
    }

    /// The ids of the channels `user_id` subscribes to.
    pub async fn channels_of_user(&self, project_id: &str, user_id: &str) -> StoreResult<Vec<String>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_scalar("SELECT channel_id FROM chat_subscriptions WHERE project_id = $1 AND user_id = $2")
                .bind(project_id)
                .bind(user_id)
                .fetch_all(pool)
                .await?)
        })
    }

    pub async fn is_subscribed(&self, channel_id: &str, user_id: &str) -> StoreResult<bool> {
        with_pool!(self, read, |pool| {
            let found: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM chat_subscriptions WHERE channel_id = $1 AND user_id = $2")
                    .bind(channel_id)
                    .bind(user_id)
                    .fetch_optional(pool)
                    .await?;
            Ok(found.is_some())
        })
    }

    // ---- messages ----

    /// Stores a message under the project's next id (see [`write_messages`]).
    pub async fn insert_message(&self, message: NewMessage) -> StoreResult<Message> {
        let writer = self.messages.as_ref().ok_or(StoreError::Unavailable(sqlx::Error::PoolClosed))?;
        let (reply, answer) = oneshot::channel();
        writer.send((message, reply)).await.map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?;
        answer.await.map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?
    }

    pub async fn get_message(&self, project_id: &str, channel_id: &str, id: i64) -> StoreResult<Message> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, Message>(
                "SELECT * FROM chat_messages WHERE project_id = $1 AND channel_id = $2 AND id = $3",
            )
            .bind(project_id)
            .bind(channel_id)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .ok_or(StoreError::NotFound("message"))
        })
    }

    /// Saves an edited or deleted message (`text`, `data`, `deleted`, `updated_at`).
    /// `Stale` if the message changed (or was deleted) since it was read.
    pub async fn update_message(&self, m: &Message, previous: DateTime<Utc>, event: &NewEvent) -> StoreResult<()> {
        write_with_events!(self, [event], |tx| {
            let done = sqlx::query(
                "UPDATE chat_messages SET text = $1, data = $2, deleted = $3, updated_at = $4 \
                 WHERE project_id = $5 AND id = $6 AND deleted = FALSE AND updated_at = $7",
            )
            .bind(&m.text)
            .bind(&m.data)
            .bind(m.deleted)
            .bind(m.updated_at)
            .bind(&m.project_id)
            .bind(m.id)
            .bind(previous)
            .execute(&mut *tx)
            .await?;
            super::expect_one_row(done.rows_affected())?;
        })
    }

    /// A page of a channel's history: newest first from the latest or before a position,
    /// oldest first after a position.
    pub async fn history(&self, channel_id: &str, from: HistoryFrom, limit: i64) -> StoreResult<Vec<Message>> {
        let (cond, order) = match from {
            HistoryFrom::Latest => ("", "DESC"),
            HistoryFrom::Before(..) => (" AND (created_at < $3 OR (created_at = $3 AND id < $4))", "DESC"),
            HistoryFrom::After(..) => (" AND (created_at > $3 OR (created_at = $3 AND id > $4))", "ASC"),
        };
        let sql = format!(
            "SELECT * FROM chat_messages WHERE channel_id = $1{cond} ORDER BY created_at {order}, id {order} LIMIT $2"
        );
        with_pool!(self, read, |pool| {
            let mut q = sqlx::query_as::<_, Message>(sqlx::AssertSqlSafe(sql)).bind(channel_id).bind(limit);
            if let HistoryFrom::Before(at, id) | HistoryFrom::After(at, id) = from {
                q = q.bind(at).bind(id);
            }
            Ok(q.fetch_all(pool).await?)
        })
    }
}

/// A message to send, and the event to write with it (made once its id is known).
pub struct NewMessage {
    pub project_id: String,
    pub channel_id: String,
    pub user_id: Option<String>,
    pub text: String,
    pub data: Option<Value>,
    pub event: Box<dyn Fn(&Message) -> NewEvent + Send + Sync>,
}

pub type MessageJob = (NewMessage, oneshot::Sender<StoreResult<Message>>);

/// Most sends in one transaction.
const MESSAGE_BATCH: usize = 256;

/// Starts the task that writes message sends in batches: whatever is waiting goes into one
/// transaction, so the database commits once for many messages (a commit per message held
/// SQLite to about 1,300 messages/s). Ends when every sender is dropped.
pub(super) fn spawn_message_writer(store: Store) -> mpsc::Sender<MessageJob> {
    let (tx, rx) = mpsc::channel::<MessageJob>(4 * MESSAGE_BATCH);
    tokio::spawn(batch::run(MessageWriter(store), rx, MESSAGE_BATCH));
    tx
}

/// The chat message writer on the `store::batch` primitive: something in a batch that fails
/// the whole transaction makes each send run again on its own, so only the one at fault fails.
struct MessageWriter(Store);

impl batch::Writer for MessageWriter {
    type Job = MessageJob;
    /// A send to a channel that does not exist fails alone, inside a batch that commits.
    type Output = StoreResult<Message>;
    type Error = StoreError;

    async fn write(
        &mut self,
        jobs: &[MessageJob],
        _again: bool,
    ) -> Result<Vec<Self::Output>, batch::Failure<StoreError>> {
        let messages: Vec<&NewMessage> = jobs.iter().map(|(m, _)| m).collect();
        write_messages(&self.0, &messages).await.map_err(batch::Failure::Batch)
    }

    fn answer(&mut self, (_, reply): MessageJob, result: Result<Self::Output, StoreError>) {
        let _ = reply.send(result.and_then(|r| r));
    }

    fn unavailable(&self, error: &StoreError) -> bool {
        matches!(error, StoreError::Unavailable(_))
    }

    fn copy(&self, error: &StoreError) -> StoreError {
        copy_error(error)
    }
}

/// The same failure for each send of a failed batch (a `StoreError` cannot be cloned).
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(_) => StoreError::Unavailable(sqlx::Error::PoolClosed),
        other => StoreError::Db(sqlx::Error::Protocol(format!("writing chat messages failed: {other}"))),
    }
}

/// Writes a batch of sends in one transaction. Each project's ids are taken at once from its
/// counter row, which stays locked until the commit, so ids appear in commit order; the time
/// is taken under that lock too, so (time, id) orders like id. A send to a channel that does
/// not exist (in its project) fails alone.
async fn write_messages(store: &Store, batch: &[&NewMessage]) -> StoreResult<Vec<StoreResult<Message>>> {
    // On PostgreSQL the channels are share-locked (in id order) until the commit, so one deleted
    // meanwhile drops out here and fails its own send only, not the batch's foreign key check.
    let key_share = match store.backend() {
        Backend::Postgres(_) => " FOR KEY SHARE",
        Backend::Sqlite { .. } => "",
    };
    let mut projects: Vec<String> = batch.iter().map(|m| m.project_id.clone()).collect();
    projects.sort_unstable();
    projects.dedup();
    with_pool!(store, write, |pool| {
        let mut tx = pool.begin().await?;
        let mut q = query_builder(pool, "SELECT project_id, id FROM chat_channels WHERE id IN (");
        let mut list = q.separated(", ");
        for m in batch {
            list.push_bind(&m.channel_id);
        }
        q.push(") ORDER BY id").push(key_share);
        let existing: std::collections::HashSet<(String, String)> =
            q.build_query_as::<(String, String)>().fetch_all(&mut *tx).await?.into_iter().collect();
        let ok: Vec<bool> =
            batch.iter().map(|m| existing.contains(&(m.project_id.clone(), m.channel_id.clone()))).collect();
        // Ids per project, in batch order.
        let mut next: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        for project in &projects {
            let count = batch.iter().zip(&ok).filter(|(m, ok)| **ok && &m.project_id == project).count() as i64;
            if count == 0 {
                continue;
            }
            sqlx::query(
                "INSERT INTO chat_counters (project_id, last_message_id) VALUES ($1, 0) \
                 ON CONFLICT (project_id) DO NOTHING",
            )
            .bind(project)
            .execute(&mut *tx)
            .await?;
            let last: i64 = sqlx::query_scalar(
                "UPDATE chat_counters SET last_message_id = last_message_id + $1 WHERE project_id = $2 \
                 RETURNING last_message_id",
            )
            .bind(count)
            .bind(project)
            .fetch_one(&mut *tx)
            .await?;
            next.insert(project.clone(), last - count + 1);
        }
        let now = super::now();
        let mut results = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        for (m, ok) in batch.iter().zip(ok) {
            if !ok {
                results.push(Err(StoreError::NotFound("channel")));
                continue;
            }
            let id = next.get_mut(m.project_id.as_str()).map(|n| {
                *n += 1;
                *n - 1
            });
            let Some(id) = id else { return Err(StoreError::Stale) };
            let message = Message {
                project_id: m.project_id.clone(),
                id,
                channel_id: m.channel_id.clone(),
                user_id: m.user_id.clone(),
                text: m.text.clone(),
                data: m.data.clone().map(Json),
                deleted: false,
                created_at: now,
                updated_at: now,
            };
            events.push((m.event)(&message));
            results.push(Ok(message));
        }
        let written: Vec<&Message> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let mut events = events.into_iter();
        for chunk in written.chunks(MESSAGE_BATCH) {
            let mut q = query_builder(
                pool,
                "INSERT INTO chat_messages (project_id, id, channel_id, user_id, text, data, deleted, created_at, \
                 updated_at) ",
            );
            q.push_values(chunk, |mut row, m| {
                row.push_bind(&m.project_id)
                    .push_bind(m.id)
                    .push_bind(&m.channel_id)
                    .push_bind(&m.user_id)
                    .push_bind(&m.text)
                    .push_bind(&m.data)
                    .push_bind(false)
                    .push_bind(m.created_at)
                    .push_bind(m.updated_at);
            });
            q.build().persistent(false).execute(&mut *tx).await?;
            let mut q = query_builder(pool, INSERT_EVENTS_HEAD);
            q.push_values(events.by_ref().take(chunk.len()), |mut row, e| {
                for arg in event_args(e) {
                    super::script::push_arg!(row, arg);
                }
            });
            q.build().persistent(false).execute(&mut *tx).await?;
        }
        // Each channel's last message.
        let mut last: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        for m in &written {
            let entry = last.entry(m.channel_id.as_str()).or_default();
            *entry = (*entry).max(m.id);
        }
        if !last.is_empty() {
            // One statement for every channel of the batch (VALUES columns are `column1`,
            // `column2` on both backends).
            let mut q = query_builder(pool, "UPDATE chat_channels SET last_message_id = v.column2 FROM (");
            q.push_values(last, |mut row, (channel, id)| {
                row.push_bind(channel).push_bind(id);
            });
            q.push(") AS v WHERE chat_channels.id = v.column1 AND chat_channels.last_message_id < v.column2");
            q.build().persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        if !written.is_empty() {
            store.notify_events();
        }
        Ok(results)
    })
}

/// A tag that vanished between validation and insert.
fn tag_gone(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("tag"),
        other => other.into(),
    }
}
