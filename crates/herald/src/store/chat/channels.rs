//! Chat channels, with their tags.

use super::*;

impl Store {
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
            crate::store::expect_one_row(done.rows_affected())?;
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
}
