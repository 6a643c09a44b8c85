//! Subscriptions of players to channels.

use super::*;

/// What removing one subscription found.
enum Removed {
    Done(Box<Unsubscribed>),
    NoChannel,
    NoSubscription,
}

/// Locks a channel row (its subscriber count is taken under the lock).
fn lock_channel_sql(store: &Store) -> String {
    format!("{CHANNEL_SELECT} WHERE c.project_id = $1 AND c.id = $2{}", for_update(store))
}

/// Removes `$user_id`'s subscription to `$channel_id` in `$tx` (a transaction of either
/// backend), deleting an auto-delete channel left without subscribers, and writes the events
/// `$events` makes. Evaluates to a [`Removed`]; returns early with a database error.
macro_rules! remove_subscription {
    ($tx:ident, $lock_sql:expr, $project_id:expr, $user_id:expr, $channel_id:expr, $events:expr) => {{
        // Lock the channel (its subscriber count is taken below, under the lock).
        match sqlx::query_as::<_, ChannelRow>(sqlx::AssertSqlSafe($lock_sql.clone()))
            .bind($project_id)
            .bind($channel_id)
            .fetch_optional(&mut *$tx)
            .await?
        {
            None => Removed::NoChannel,
            Some(mut row) => {
                let removed = sqlx::query("DELETE FROM chat_subscriptions WHERE channel_id = $1 AND user_id = $2")
                    .bind($channel_id)
                    .bind($user_id)
                    .execute(&mut *$tx)
                    .await?;
                if removed.rows_affected() == 0 {
                    Removed::NoSubscription
                } else {
                    row.subscriber_count =
                        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM chat_subscriptions WHERE channel_id = $1")
                            .bind($channel_id)
                            .fetch_one(&mut *$tx)
                            .await?;
                    let channel_deleted = row.auto_delete && row.subscriber_count == 0;
                    let tags: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT t.id, t.name FROM chat_channel_tags ct JOIN chat_tags t ON t.id = ct.tag_id \
                         WHERE ct.channel_id = $1 ORDER BY t.id",
                    )
                    .bind($channel_id)
                    .fetch_all(&mut *$tx)
                    .await?;
                    if channel_deleted {
                        sqlx::query("DELETE FROM chat_channels WHERE id = $1")
                            .bind($channel_id)
                            .execute(&mut *$tx)
                            .await?;
                    }
                    let item = Unsubscribed { channel: Channel { row, tags }, channel_deleted };
                    for e in $events(&item) {
                        insert_event!(&mut *$tx, &e)?;
                    }
                    Removed::Done(Box::new(item))
                }
            }
        }
    }};
}

/// Removes every subscription of `$user_id` in `$tx` (see [`remove_subscription!`]).
/// Evaluates to the removals.
macro_rules! remove_all_subscriptions {
    ($tx:ident, $lock_sql:expr, $project_id:expr, $user_id:expr, $events:expr) => {{
        let mut done = Vec::new();
        // Rounds until the user holds no subscription: a subscribe committed while this ran is
        // swept by the next round. Channels are locked in id order.
        for _round in 0..3 {
            let channel_ids: Vec<String> = sqlx::query_scalar::<_, String>(
                "SELECT channel_id FROM chat_subscriptions WHERE project_id = $1 AND user_id = $2 ORDER BY channel_id",
            )
            .bind($project_id)
            .bind($user_id)
            .fetch_all(&mut *$tx)
            .await?;
            if channel_ids.is_empty() {
                break;
            }
            for channel_id in &channel_ids {
                if let Removed::Done(item) =
                    remove_subscription!($tx, $lock_sql, $project_id, $user_id, channel_id, $events)
                {
                    done.push(*item);
                }
            }
        }
        done
    }};
}

impl Store {
    /// Subscribes a player to a channel. `Conflict` when already subscribed.
    pub async fn subscribe(
        &self,
        project_id: &str,
        channel_id: &str,
        user_id: &str,
        event: impl FnOnce(i64) -> NewEvent,
    ) -> StoreResult<()> {
        let now = crate::store::now();
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

    /// Removes the subscription of `user_id` to `channel_id`, deleting an auto-delete channel
    /// left without subscribers; `events` makes the removal's events.
    /// `NotFound("channel")`, then `NotFound("subscription")`, when there is none.
    pub async fn unsubscribe(
        &self,
        project_id: &str,
        user_id: &str,
        channel_id: &str,
        events: impl Fn(&Unsubscribed) -> Vec<NewEvent>,
    ) -> StoreResult<Unsubscribed> {
        let lock_sql = lock_channel_sql(self);
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let item = match remove_subscription!(tx, lock_sql, project_id, user_id, channel_id, events) {
                Removed::Done(item) => *item,
                Removed::NoChannel => return Err(StoreError::NotFound("channel")),
                Removed::NoSubscription => return Err(StoreError::NotFound("subscription")),
            };
            tx.commit().await?;
            self.notify_events();
            Ok(item)
        })
    }

    /// Removes every subscription of `user_id` (see [`Store::unsubscribe`]).
    pub async fn unsubscribe_all(
        &self,
        project_id: &str,
        user_id: &str,
        events: impl Fn(&Unsubscribed) -> Vec<NewEvent>,
    ) -> StoreResult<Vec<Unsubscribed>> {
        let lock_sql = lock_channel_sql(self);
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = remove_all_subscriptions!(tx, lock_sql, project_id, user_id, events);
            tx.commit().await?;
            self.notify_events();
            Ok(done)
        })
    }

    /// Deletes a player's chat presence: every subscription (see [`Store::unsubscribe_all`])
    /// and their chat profile (reset, marked not valid), with `deleted`, in one transaction.
    pub async fn delete_chat_user(
        &self,
        project_id: &str,
        user_id: &str,
        events: impl Fn(&Unsubscribed) -> Vec<NewEvent>,
        deleted: &NewEvent,
    ) -> StoreResult<Vec<Unsubscribed>> {
        let lock_sql = lock_channel_sql(self);
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = remove_all_subscriptions!(tx, lock_sql, project_id, user_id, events);
            sqlx::query(
                "INSERT INTO chat_profiles (project_id, user_id, nickname, language_code, valid, updated_at) \
                 VALUES ($1, $2, NULL, NULL, FALSE, $3) ON CONFLICT (project_id, user_id) DO UPDATE SET \
                 nickname = NULL, language_code = NULL, valid = FALSE, updated_at = excluded.updated_at",
            )
            .bind(project_id)
            .bind(user_id)
            .bind(crate::store::now())
            .execute(&mut *tx)
            .await?;
            insert_event!(&mut *tx, deleted)?;
            tx.commit().await?;
            self.notify_events();
            Ok(done)
        })
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
}
