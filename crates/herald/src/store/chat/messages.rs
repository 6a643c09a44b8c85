//! Chat messages: sends (through the writer), reads and edits.

use super::*;

impl Store {
    /// Stores a message under the project's next id (see `writer.rs`).
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
            crate::store::expect_one_row(done.rows_affected())?;
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
