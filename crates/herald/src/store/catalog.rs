//! Custom event types and published (custom) events, with idempotency keys.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{Row, types::Json};

use super::{
    Page, PageRequest, Store, StoreError, StoreResult,
    events::{EVENT_COLUMNS, EventRow},
    fetch_page,
    script::{EventSeqs, Script},
    with_pool,
};
use crate::events::NewEvent;

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventType {
    #[serde(skip)]
    pub project_id: String,
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Json<Value>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What publishing one event did: stored it, or found the first event of its idempotency key.
#[derive(Debug)]
pub enum Published {
    /// Stored now: the row as stored.
    Created(Box<EventRow>),
    /// Its idempotency key was in use: the id of the event the key names.
    Existing(String),
}

/// Event types this node read recently, for publishing: every publish names its type, and
/// reading it each time was one database round trip per event. Bounded, and each entry
/// expires after [`RecentTypes::TTL`]; a change through this node forgets the type at once,
/// so through another node sharing the database, a publish sees it within the TTL.
#[derive(Clone)]
pub(crate) struct RecentTypes(moka::sync::Cache<(String, String), EventType>);

impl RecentTypes {
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(1);
    const MAX: u64 = 10_000;

    pub fn new() -> RecentTypes {
        RecentTypes(moka::sync::Cache::builder().max_capacity(Self::MAX).time_to_live(Self::TTL).build())
    }
}

impl Store {
    /// [`Store::get_event_type`], served from what this node read in the last
    /// [`RecentTypes::TTL`] (see there).
    pub async fn get_event_type_for_publish(&self, project_id: &str, name: &str) -> StoreResult<EventType> {
        let key = (project_id.to_owned(), name.to_owned());
        if let Some(t) = self.recent_types().0.get(&key) {
            return Ok(t);
        }
        let t = self.get_event_type(project_id, name).await?;
        self.recent_types().0.insert(key, t.clone());
        Ok(t)
    }

    fn forget_type(&self, project_id: &str, name: &str) {
        self.recent_types().0.invalidate(&(project_id.to_owned(), name.to_owned()));
    }

    pub async fn insert_event_type(&self, t: &EventType) -> StoreResult<()> {
        with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO event_types (project_id, name, description, schema, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&t.project_id)
            .bind(&t.name)
            .bind(&t.description)
            .bind(&t.schema)
            .bind(t.created_at)
            .bind(t.updated_at)
            .execute(pool)
            .await
            .map_err(super::conflict_on_unique("an event type with this name already exists"))?;
            Ok(())
        })
    }

    pub async fn update_event_type(&self, t: &EventType) -> StoreResult<()> {
        with_pool!(self, write, |pool| {
            let done = sqlx::query(
                "UPDATE event_types SET description = $1, schema = $2, updated_at = $3 WHERE project_id = $4 AND name = $5",
            )
            .bind(&t.description)
            .bind(&t.schema)
            .bind(t.updated_at)
            .bind(&t.project_id)
            .bind(&t.name)
            .execute(pool)
            .await?;
            self.forget_type(&t.project_id, &t.name);
            if done.rows_affected() == 0 { Err(StoreError::NotFound("event type")) } else { Ok(()) }
        })
    }

    pub async fn get_event_type(&self, project_id: &str, name: &str) -> StoreResult<EventType> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, EventType>("SELECT * FROM event_types WHERE project_id = $1 AND name = $2")
                .bind(project_id)
                .bind(name)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("event type"))
        })
    }

    pub async fn list_event_types(&self, project_id: &str, page: PageRequest) -> StoreResult<Page<EventType>> {
        with_pool!(self, read, |pool| {
            fetch_page(pool, "name", page, |q| {
                q.push("FROM event_types WHERE project_id = ").push_bind(project_id);
            })
            .await
        })
    }

    pub async fn delete_event_type(&self, project_id: &str, name: &str) -> StoreResult<EventType> {
        let deleted = with_pool!(self, write, |pool| {
            sqlx::query_as::<_, EventType>("DELETE FROM event_types WHERE project_id = $1 AND name = $2 RETURNING *")
                .bind(project_id)
                .bind(name)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("event type"))
        });
        // After the commit, so no publish through this node caches it again meanwhile.
        self.forget_type(project_id, name);
        deleted
    }

    /// Publishes events in one transaction. An event whose idempotency key was used in the
    /// project since `keys_since` is not stored again: its first event's id is returned.
    pub async fn publish_events(
        &self,
        project_id: &str,
        events: &[NewEvent],
        keys_since: DateTime<Utc>,
    ) -> StoreResult<Vec<Published>> {
        // The common case, as a script: group-committed with every other write waiting at the
        // same moment (game servers publish one event per request, many at once). It takes
        // each key as new; a key already in use fails it on the key's unique index, and the
        // transaction below then finds the event that key names. A request naming one key
        // twice goes there at once.
        let mut keys = std::collections::HashSet::new();
        if events.iter().filter_map(|e| e.idempotency_key.as_deref()).all(|k| keys.insert(k)) {
            match self.run_script(publish_script(project_id, events, keys_since)).await {
                Ok(seqs) => return self.stored(events, seqs).await,
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.publish_in_transaction(project_id, events, keys_since).await
    }

    /// `events` as stored by a script, with the sequence numbers its insert returned (any
    /// missing one is read back).
    async fn stored(&self, events: &[NewEvent], seqs: EventSeqs) -> StoreResult<Vec<Published>> {
        let seqs: std::collections::HashMap<String, i64> = seqs.into_iter().collect();
        let missing: Vec<String> = events.iter().filter(|e| !seqs.contains_key(&e.id)).map(|e| e.id.clone()).collect();
        let mut read: std::collections::HashMap<String, EventRow> = if missing.is_empty() {
            Default::default()
        } else {
            self.events_by_ids(&missing).await?.into_iter().map(|e| (e.id.clone(), e)).collect()
        };
        events
            .iter()
            .map(|e| match seqs.get(&e.id) {
                Some(&seq) => Ok(Published::Created(Box::new(EventRow::stored(e.clone(), seq)))),
                None => {
                    read.remove(&e.id).map(|row| Published::Created(Box::new(row))).ok_or(StoreError::NotFound("event"))
                }
            })
            .collect()
    }

    /// [`Store::publish_events`] as code: reads each key's first use inside the transaction.
    async fn publish_in_transaction(
        &self,
        project_id: &str,
        events: &[NewEvent],
        keys_since: DateTime<Utc>,
    ) -> StoreResult<Vec<Published>> {
        let now = super::now();
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let mut out = Vec::with_capacity(events.len());
            for e in events {
                if let Some(key) = &e.idempotency_key {
                    let existing: Option<(String, DateTime<Utc>)> = sqlx::query_as(
                        "SELECT event_id, created_at FROM idempotency_keys WHERE project_id = $1 AND key = $2",
                    )
                    .bind(project_id)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match existing {
                        Some((event_id, at)) if at >= keys_since => {
                            out.push(Published::Existing(event_id));
                            continue;
                        }
                        Some(_) => {
                            sqlx::query("DELETE FROM idempotency_keys WHERE project_id = $1 AND key = $2")
                                .bind(project_id)
                                .bind(key)
                                .execute(&mut *tx)
                                .await?;
                        }
                        None => {}
                    }
                    sqlx::query(
                        "INSERT INTO idempotency_keys (project_id, key, event_id, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(project_id)
                    .bind(key)
                    .bind(&e.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|err| match &err {
                        // A concurrent publish with the same key won; the caller retries and finds it.
                        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Stale,
                        _ => StoreError::from(err),
                    })?;
                }
                let seq: i64 = super::events::bind_event!(super::events::INSERT_EVENT_RETURNING, e)
                    .fetch_one(&mut *tx)
                    .await?
                    .get("seq");
                out.push(Published::Created(Box::new(EventRow::stored(e.clone(), seq))));
            }
            tx.commit().await?;
            self.notify_events();
            Ok(out)
        })
    }

    pub async fn get_event(&self, project_id: &str, id: &str) -> StoreResult<EventRow> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE project_id = $1 AND id = $2");
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(sql))
                .bind(project_id)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("event"))
        })
    }

    /// Events of a project, newest first, with `seq < before` when a cursor is given.
    pub async fn list_events(
        &self,
        project_id: &str,
        event_type: Option<TypeFilter<'_>>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE project_id = $1 AND ($2 IS NULL OR type = $2) \
             AND ($3 IS NULL OR occurred_at >= $3) AND ($4 IS NULL OR occurred_at < $4) AND ($5 IS NULL OR seq < $5) \
             AND ($7 IS NULL OR substr(type, 1, length($7)) = $7) \
             ORDER BY seq DESC LIMIT $6"
        );
        let (exact, prefix) = match event_type {
            Some(TypeFilter::Exact(t)) => (Some(t), None),
            Some(TypeFilter::Prefix(p)) => (None, Some(p)),
            None => (None, None),
        };
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(sql))
                .bind(project_id)
                .bind(exact)
                .bind(since)
                .bind(until)
                .bind(before)
                .bind(limit)
                .bind(prefix)
                .fetch_all(pool)
                .await?)
        })
    }

    /// Events of every project with `seq > after`, oldest first (for `herald events tail`).
    pub async fn events_after(&self, after: i64, limit: i64) -> StoreResult<Vec<EventRow>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(sql)).bind(after).bind(limit).fetch_all(pool).await?)
        })
    }
}

/// Which event types a listing returns.
#[derive(Debug, Clone, Copy)]
pub enum TypeFilter<'a> {
    /// This type only.
    Exact(&'a str),
    /// Types starting with this prefix, which ends in `.` (the pattern `user.*` gives `user.`).
    Prefix(&'a str),
}

/// `events` as a [`Script`]: for each event with an idempotency key, the key's expired use
/// is dropped and the key is taken (failing on the unique index if it is in use since
/// `keys_since`); then the event's outbox row.
fn publish_script(project_id: &str, events: &[NewEvent], keys_since: DateTime<Utc>) -> Script {
    let now = super::now();
    let mut script = Script::default();
    for e in events {
        if let Some(key) = &e.idempotency_key {
            script.push(
                "DELETE FROM idempotency_keys WHERE project_id = $1 AND key = $2 AND created_at < $3",
                vec![project_id.into(), key.into(), keys_since.into()],
            );
            script.push(
                "INSERT INTO idempotency_keys (project_id, key, event_id, created_at) VALUES ($1, $2, $3, $4)",
                vec![project_id.into(), key.into(), (&e.id).into(), now.into()],
            );
        }
        script.event(e.clone());
    }
    script
}
