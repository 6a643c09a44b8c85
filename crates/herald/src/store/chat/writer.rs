//! The chat message writer: sends written in batches.

use super::*;

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
pub(crate) fn spawn_message_writer(store: Store) -> mpsc::Sender<MessageJob> {
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
        StoreError::Unavailable(e) => {
            StoreError::Unavailable(crate::store::copy_batch_error(e, "writing chat messages failed"))
        }
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
        let now = crate::store::now();
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
                    crate::store::script::push_arg!(row, arg);
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
