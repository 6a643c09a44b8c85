//! Storage: one [`Store`] over two backends, SQLite (embedded default) and PostgreSQL.
//!
//! Both backends run the same SQL text: every statement here is written in the common subset
//! (`$n` parameters, `RETURNING`, `ON CONFLICT`, window functions), and the [`with_pool!`]
//! macro expands each query once per backend, so there is one implementation to test, not two.
//! Only the migrations differ (column types), and they live side by side in `migrations/`.
//!
//! Every write that changes a resource also inserts its outbox event ([`events`]) inside the
//! same transaction: a change is never visible without its event, nor an event without its
//! change.

pub mod api_keys;
pub mod auth;
pub(crate) mod batch;
pub mod catalog;
pub mod chat;
pub mod client_keys;
pub mod events;
pub mod maintenance;
pub mod nodes;
pub mod notices;
mod open_transaction;
pub mod ops;
pub mod orgs;
mod paging;
pub mod payload;
pub mod player_sessions;
mod private_files;
pub mod script;
pub mod transfer;
pub mod users;
pub mod versions;
pub mod webhooks;
pub mod windows;
pub mod worlds;

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    Connection as _,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous},
};

use crate::config::Config;
pub use crate::{
    clock::{next_updated_at, now, truncate},
    ids::new_id,
};

pub use paging::{Page, PageRequest};
pub(crate) use paging::{contains_pattern, fetch_page};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// An optimistic update lost a race: re-read and retry.
    #[error("the resource changed while it was being updated")]
    Stale,
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error(transparent)]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) { StoreError::Unavailable(err) } else { StoreError::Db(err) }
    }
}

/// The database is unreachable or out of resources: nothing is wrong with the request, and it
/// passes when the database is back.
pub(crate) fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        // Out of storage or resources: it passes when space returns, so 503 and not 500.
        _ => out_of_resources(err),
    }
}

/// SQLite's `SQLITE_FULL` (13: the disk, or `max_page_count`, is full), or PostgreSQL's class
/// 53 "insufficient resources" (53100 disk_full, 53200 out_of_memory, 53300
/// too_many_connections, 53400 configuration_limit_exceeded). sqlx gives SQLite's extended
/// code, whose low byte is the primary one.
pub fn out_of_resources(err: &sqlx::Error) -> bool {
    // A copy of one, for another job of the batch that met it (`copy_batch_error`).
    if let sqlx::Error::Io(e) = err {
        return e.kind() == std::io::ErrorKind::StorageFull;
    }
    let sqlx::Error::Database(db) = err else { return false };
    let Some(code) = db.code() else { return false };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        code.parse::<i32>().is_ok_and(|c| c & 0xff == 13)
    } else {
        code.starts_with("53")
    }
}

/// `err` again, for another job of a batch that met it (sqlx errors cannot be cloned), with
/// `what` failed in front: an unavailable database stays unavailable (503, not 500), and out
/// of storage stays out of storage, so every job of the batch is answered with that message
/// and its `Retry-After`, not only the one that met it first.
pub(crate) fn copy_batch_error(err: &sqlx::Error, what: &str) -> sqlx::Error {
    let message = format!("{what}: {err}");
    if out_of_resources(err) {
        sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::StorageFull, message))
    } else if is_unavailable(err) {
        sqlx::Error::Io(std::io::Error::other(message))
    } else {
        sqlx::Error::Protocol(message)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// The write broke an integrity constraint (a foreign, unique or check key, a NOT NULL):
    /// it would fail again however often it is retried, unlike a database that is unreachable.
    pub fn is_constraint_violation(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(db)) if !matches!(db.kind(), sqlx::error::ErrorKind::Other))
    }
}

/// Maps a unique-key violation to [`StoreError::Conflict`] with `message`.
pub(crate) fn conflict_on_unique(message: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |err| match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message.to_string()),
        _ => StoreError::from(err),
    }
}

pub enum Backend {
    /// SQLite admits one writer at a time, so writes get a pool of one connection (they queue
    /// in Herald instead of spinning on `SQLITE_BUSY`) and reads get their own pool.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
    },
    Postgres(PgPool),
}

/// Wakes the outbox's readers on this node after a commit that wrote events. Each reader has
/// its own [`tokio::sync::Notify`], whose stored permit means a wake-up is never lost while
/// the reader is busy.
#[derive(Default)]
pub struct EventsWritten {
    /// The webhook dispatcher.
    pub dispatcher: tokio::sync::Notify,
    /// The real-time feed.
    pub realtime: tokio::sync::Notify,
    /// The scheduler (`crate::scheduler`): woken by changes to timed windows only, not by
    /// every event ([`Store::schedule_changed`]).
    pub scheduler: tokio::sync::Notify,
}

impl EventsWritten {
    pub fn notify(&self) {
        self.dispatcher.notify_one();
        self.realtime.notify_one();
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
    /// Signalled after every commit that wrote events, so the outbox's readers on this node
    /// start at once instead of at their next poll.
    events_written: Arc<EventsWritten>,
    /// Bumped after every committed change to game worlds through this node, so cached
    /// world lists (`api::cache`) know they are stale.
    worlds_generation: Arc<std::sync::atomic::AtomicU64>,
    /// Bumped after every committed change through this node to what game clients read
    /// (`GET /client/*`: worlds, client versions, projects' languages), so cached client
    /// answers (`api::client`) know they are stale.
    client_generation: Arc<std::sync::atomic::AtomicU64>,
    /// Event types read recently, for publishing (`catalog::RecentTypes`).
    recent_types: catalog::RecentTypes,
    /// Group commit for [`script::Script`] writes (on SQLite through the write pool).
    scripts: Arc<script::Writers>,
    /// This store's name in its word to other nodes (`nodes.rs`), so it can tell its own
    /// word when it comes back.
    node_id: Arc<str>,
    /// Chat message sends, written in batches (see `chat::write_messages`). `None` in the
    /// writer's own copy of the store, so the writer ends when the last outside copy is dropped.
    messages: Option<tokio::sync::mpsc::Sender<chat::MessageJob>>,
    /// The node's metrics registry: store operations are timed in [`with_pool!`]. Created
    /// here because the store is the first thing a node builds and everything holds it.
    metrics: crate::metrics::Metrics,
    /// When writes last failed for want of storage, and last succeeded (`GET /readyz`).
    write_health: Arc<ops::WriteHealth>,
}

/// Runs `$body` with `$pool` bound to the backend's pool (`read` or `write`). The body is
/// expanded once per backend, so the same query text and binds serve both.
macro_rules! with_pool {
    ($store:expr, read, |$pool:ident| $body:expr) => {{
        let _timer = $store.metrics().db_timer("read");
        match $store.backend() {
            $crate::store::Backend::Sqlite { read: $pool, .. } => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    }};
    ($store:expr, write, |$pool:ident| $body:expr) => {{
        let _timer = $store.metrics().db_timer("write");
        match $store.backend() {
            $crate::store::Backend::Sqlite { write: $pool, .. } => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    }};
}
pub(crate) use with_pool;

/// Where a PostgreSQL connection goes, for error messages (never the password).
fn pg_address(options: &PgConnectOptions) -> String {
    format!(
        "{}:{} (database \"{}\", user \"{}\")",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username()),
        options.get_username()
    )
}

/// One line a user can act on: which server was tried and what failed. sqlx's own text for a
/// server error carries PostgreSQL's source position ("at line 948"), which is not for users.
fn describe_pg_failure(options: &PgConnectOptions, err: &sqlx::Error) -> String {
    let reason = match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    };
    format!("cannot connect to PostgreSQL at {}: {reason}", pg_address(options))
}

/// A pooled PostgreSQL connection idle this long is pinged before it is handed out (see
/// `Store::connect`).
const PING_IDLE_AFTER: Duration = Duration::from_secs(5);

impl Store {
    /// Connects to the configured database (creating the SQLite file and its directory if
    /// needed). Does not migrate: call [`Store::migrate`].
    pub async fn connect(config: &Config) -> anyhow::Result<Store> {
        let url = config.effective_database_url();
        let acquire = Duration::from_secs(config.database.acquire_timeout_secs);
        let events_written = Arc::new(EventsWritten::default());
        let (backend, scripts) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // sqlx keeps prepared statements per connection, and PostgreSQL may settle on a
            // generic plan for one after five runs. On a new database those first runs see
            // empty tables, so the generic plan is a sequential scan, kept (until an ANALYZE)
            // while the table grows: measured as 5 ms per event lookup after 10,000 events.
            // Custom plans cost a little planning per query and follow the table's real size.
            //
            // `client_min_messages = warning`: PostgreSQL's notices (such as "relation
            // _sqlx_migrations already exists, skipping" on every start) are not for users.
            //
            // `jit = off`: Herald's queries are short, and JIT compiles any whose estimated
            // cost passes a threshold, whatever it really takes: the fan-out's endpoint list,
            // estimated huge under `enable_seqscan = off`, took 80 ms to compile per fan-out
            // for a one-row scan (seen in pg_stat_statements).
            let options =
                PgConnectOptions::from_str(&url).map_err(|e| anyhow::anyhow!("invalid PostgreSQL URL: {e}"))?.options(
                    [("plan_cache_mode", "force_custom_plan"), ("client_min_messages", "warning"), ("jit", "off")],
                );
            // One connection first, so a refused connection or a missing database is reported
            // as such: the pool would retry until its acquire timeout and then say only "pool
            // timed out".
            let probe = tokio::time::timeout(acquire, sqlx::PgConnection::connect_with(&options)).await;
            match probe {
                Ok(Ok(conn)) => drop(conn),
                Ok(Err(e)) => anyhow::bail!("{}", describe_pg_failure(&options, &e)),
                Err(_) => anyhow::bail!(
                    "cannot connect to PostgreSQL at {}: no answer within {}s",
                    pg_address(&options),
                    acquire.as_secs()
                ),
            }
            let pool = PgPoolOptions::new()
                .max_connections(config.database.max_connections)
                .acquire_timeout(acquire)
                // sqlx pings every connection it hands out (a round trip to the server) and
                // again when it comes back: at one event per request that doubled the round
                // trips of a publish. Only a connection idle for a while is pinged first: it is
                // the one a database restart or a dropped link may have broken, and a broken
                // one is replaced before use.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_IDLE_AFTER {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(options.clone())
                .await
                .map_err(|e| anyhow::anyhow!("{}", describe_pg_failure(&options, &e)))?;
            (Backend::Postgres(pool.clone()), script::Writers::postgres(pool, events_written.clone()))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(&url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(match config.database.sqlite_synchronous {
                    crate::config::SqliteSynchronous::Full => SqliteSynchronous::Full,
                    crate::config::SqliteSynchronous::Normal => SqliteSynchronous::Normal,
                })
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            private_files::prepare(options.get_filename())?;
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(acquire)
                // sqlx counts transaction depth itself, and does not lower it when a ROLLBACK
                // fails. On a full disk SQLite rolls a failed COMMIT back by itself, so the
                // ROLLBACK that follows fails and the count stays one too high: the next
                // `begin()` opens a SAVEPOINT, its ROLLBACK TO leaves a transaction open, and
                // later writes are "committed" inside it, unseen, until it is lost (seen with
                // scripts/chaos.py disk-full: publishes whose commit succeeded, then 404 on
                // reading the event back). A
                // connection that comes back still counting a transaction is replaced. The
                // count is read, not queried: sqlx's release ping has run the queued rollback.
                .before_acquire(|conn, _| Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) }))
                // No ping before use: on SQLite it is a hand-off to the connection's worker
                // thread and back, for a file that cannot hang up (the write connection is
                // handed out once per group commit).
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(config.database.max_connections)
                .acquire_timeout(acquire)
                .test_before_acquire(false)
                .connect_with(options.read_only(true))
                .await?;
            let scripts = script::Writers::sqlite(write.clone(), events_written.clone());
            (Backend::Sqlite { read, write }, scripts)
        } else {
            anyhow::bail!("database_url must start with sqlite: or postgres://, got {url:?}");
        };
        let mut store = Store {
            backend: Arc::new(backend),
            events_written,
            scripts: Arc::new(scripts),
            node_id: uuid::Uuid::new_v4().to_string().into(),
            recent_types: catalog::RecentTypes::new(),
            worlds_generation: Default::default(),
            client_generation: Default::default(),
            messages: None,
            metrics: crate::metrics::Metrics::new(),
            write_health: Arc::default(),
        };
        store.messages = Some(chat::spawn_message_writer(store.clone()));
        Ok(store)
    }

    /// Wakes whoever waits on [`Store::events_written`].
    pub(crate) fn notify_events(&self) {
        self.events_written.notify();
    }

    /// Changes to game worlds committed through this node so far (see `api::cache`).
    pub fn worlds_generation(&self) -> u64 {
        self.worlds_generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn worlds_changed(&self) {
        self.worlds_generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.client_view_changed();
    }

    /// Changes to what game clients read committed through this node so far (see
    /// `api::client`).
    pub fn client_generation(&self) -> u64 {
        self.client_generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Call after committing a change that a `GET /client/*` answer shows.
    pub fn client_view_changed(&self) {
        self.client_generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A timed window (maintenance, notice) was written through this node: the scheduler
    /// re-reads when its next transition is due, and game clients' cached answers (which
    /// show maintenance and notices) are stale.
    pub(crate) fn schedule_changed(&self) {
        self.events_written.scheduler.notify_one();
        self.client_view_changed();
    }

    fn recent_types(&self) -> &catalog::RecentTypes {
        &self.recent_types
    }

    fn scripts(&self) -> &script::Writers {
        &self.scripts
    }

    pub fn events_written(&self) -> Arc<EventsWritten> {
        self.events_written.clone()
    }

    /// Whether other nodes may write to this database (PostgreSQL): their commits do not wake
    /// this node's readers of the outbox, which find them by reading again.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend(), Backend::Postgres(_))
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    pub fn write_health(&self) -> &ops::WriteHealth {
        &self.write_health
    }

    /// Connections of each pool: `(pool, in use, idle)`.
    pub fn pool_stats(&self) -> Vec<(&'static str, u32, u32)> {
        fn stats<DB: sqlx::Database>(name: &'static str, pool: &sqlx::Pool<DB>) -> (&'static str, u32, u32) {
            let idle = pool.num_idle() as u32;
            (name, pool.size().saturating_sub(idle), idle)
        }
        match self.backend() {
            Backend::Sqlite { read, write, .. } => vec![stats("read", read), stats("write", write)],
            Backend::Postgres(pool) => vec![stats("main", pool)],
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Applies pending migrations. Safe to run on several nodes at once (sqlx takes a lock).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend() {
            Backend::Sqlite { write, .. } => SQLITE_MIGRATIONS.run(write).await?,
            Backend::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    pub async fn close(&self) {
        match self.backend() {
            Backend::Sqlite { read, write, .. } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// A [`sqlx::QueryBuilder`] for `pool`'s backend, starting with `init`: its `push_bind`
/// writes `$n` on PostgreSQL and anonymous `?` on SQLite, where sqlx looks a numbered parameter
/// up by name and SQLite finds a name by walking all of them, so a statement with thousands of
/// numbered parameters spends its time binding (quadratic); anonymous ones are free. Takes the
/// pool only to name the backend inside [`with_pool!`].
pub(crate) fn query_builder<DB: sqlx::Database>(_pool: &sqlx::Pool<DB>, init: &str) -> sqlx::QueryBuilder<DB>
where
    DB::Arguments: Default,
{
    sqlx::QueryBuilder::new(init)
}

/// Runs `$body` in a write transaction (`$tx`), then inserts each event of `$events` (an
/// iterator of `&NewEvent`) in that same transaction, and commits. Evaluates to
/// `StoreResult<()>`; the body's own value is dropped.
macro_rules! write_with_events {
    ($store:expr, $events:expr, |$tx:ident| $body:expr) => {
        $crate::store::with_pool!($store, write, |pool| {
            let mut $tx = pool.begin().await?;
            $body;
            for event in $events {
                $crate::store::events::insert_event!(&mut *$tx, event)?;
            }
            $tx.commit().await?;
            $store.notify_events();
            Ok::<(), $crate::store::StoreError>(())
        })
    };
}
pub(crate) use write_with_events;

/// Fails with [`StoreError::Stale`] when an optimistic update matched no row: the resource
/// changed (or vanished) since it was read. Callers re-read and try again.
pub(crate) fn expect_one_row(rows_affected: u64) -> StoreResult<()> {
    if rows_affected == 1 { Ok(()) } else { Err(StoreError::Stale) }
}
