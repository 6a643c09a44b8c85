//! `herald migrate-data`: copies every row of one Herald database into another, empty one, from
//! SQLite to PostgreSQL or back, so a studio can start on the embedded file and move to the
//! production store without losing players, keys, webhooks or history.
//!
//! Why by hand: no maintained tool copies between SQLite and PostgreSQL with Herald's types
//! (pgloader guesses types from SQLite's declarations, which say TEXT for timestamps and JSON)
//! nor knows Herald's backend-specific outbox state. Here the PostgreSQL side's catalog gives
//! each column's type, and each value is read and written as that type through sqlx, so it is
//! encoded exactly as Herald itself writes it on either backend.
//!
//! What is not a plain row:
//! - the outbox's "not yet fanned out" state: a cursor on SQLite (`fanout_cursor`), a queue
//!   table on PostgreSQL (`outbox_pending`); events already fanned out are not sent again;
//! - identity columns on PostgreSQL (`events.seq`, `chat_tags.id`) restart after the copied rows;
//! - `events.xid` (PostgreSQL only) takes the copy's transaction id, which the real-time feed
//!   never reads back (it starts at the present).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde_json::Value;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row, Sqlite, SqliteConnection, types::Json};

use super::{Backend, Store, with_pool};

/// Every table, parents before children (foreign keys). A table missing here is an error, not
/// a silent loss: [`copy`] refuses a schema with tables it does not know.
const TABLES: &[&str] = &[
    "settings",
    "organizations",
    "projects",
    "api_keys",
    "client_keys",
    "admin_users",
    "refresh_tokens",
    "users",
    "game_worlds",
    "client_versions",
    "events",
    "event_types",
    "idempotency_keys",
    "webhooks",
    "deliveries",
    "delivery_attempts",
    "chat_tags",
    "chat_channels",
    "chat_channel_tags",
    "chat_profiles",
    "chat_subscriptions",
    "chat_counters",
    "chat_messages",
    "player_sessions",
    "project_maintenance",
    "maintenance_whitelist",
    "notices",
];

/// Tables that hold one backend's own bookkeeping, carried over by [`copy`] itself.
const BACKEND_TABLES: &[&str] = &["_sqlx_migrations", "fanout_cursor", "outbox_pending"];

/// Columns only one backend has.
const BACKEND_COLUMNS: &[(&str, &str)] = &[("events", "xid")];

/// Rows per INSERT: under both backends' limits on bound parameters (SQLite 32,766,
/// PostgreSQL 65,535) for the widest table.
const BATCH_ROWS: usize = 500;

/// How a column's values are read and written, from its PostgreSQL type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Text,
    I32,
    I64,
    Bool,
    Time,
    Json,
    Bytes,
}

impl Kind {
    fn from_pg(data_type: &str) -> Option<Kind> {
        Some(match data_type {
            "text" | "character varying" => Kind::Text,
            "integer" | "smallint" => Kind::I32,
            "bigint" => Kind::I64,
            "boolean" => Kind::Bool,
            "timestamp with time zone" => Kind::Time,
            "jsonb" | "json" => Kind::Json,
            "bytea" => Kind::Bytes,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
enum Val {
    Text(Option<String>),
    I32(Option<i32>),
    I64(Option<i64>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
    Json(Option<Json<Value>>),
    Bytes(Option<Vec<u8>>),
}

struct Column {
    name: String,
    kind: Kind,
}

struct Table {
    name: &'static str,
    columns: Vec<Column>,
    /// A PostgreSQL identity column, restarted after the copy.
    identity: Option<String>,
}

/// Rows copied per table, in copy order.
#[derive(Debug, Default)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, u64)>,
}

/// Copies everything in `from` into `to`, which must be migrated and hold no organization.
/// Both must be at this binary's schema. One of the two must be PostgreSQL (its catalog gives
/// the column types); the destination is written in one transaction, so a failed copy leaves
/// it empty.
pub async fn copy(from: &Store, to: &Store, mut progress: impl FnMut(&str, u64)) -> anyhow::Result<CopyReport> {
    for (store, which) in [(from, "source"), (to, "destination")] {
        let missing = store.schema_state().await?.missing.len();
        anyhow::ensure!(
            missing == 0,
            "the {which} database is {missing} migration(s) behind this herald: run `herald migrate` on it first"
        );
    }
    let pg = match (from.backend(), to.backend()) {
        (Backend::Postgres(pg), Backend::Sqlite { .. }) | (Backend::Sqlite { .. }, Backend::Postgres(pg)) => pg,
        _ => anyhow::bail!("migrate-data copies between SQLite and PostgreSQL: one side must be each"),
    };
    let mut pg_conn = pg.acquire().await?;
    let tables = schema(&mut pg_conn).await?;
    drop(pg_conn);

    let organizations: i64 = with_pool!(to, write, |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM organizations").fetch_one(pool).await?
    });
    anyhow::ensure!(
        organizations == 0,
        "the destination already holds data ({organizations} organization(s)): migrate-data copies into an \
         empty database. Create a new one, and do not start a server on it before the copy (its first start \
         creates a default organization)"
    );

    let mut report = CopyReport::default();
    match (from.backend(), to.backend()) {
        (Backend::Sqlite { read, .. }, Backend::Postgres(dest)) => {
            let mut src = read.acquire().await?;
            // One read transaction: a consistent snapshot of the file (WAL).
            sqlx::query("BEGIN").execute(&mut *src).await?;
            let mut tx = dest.begin().await?;
            for table in &tables {
                let n = copy_table_sqlite_to_pg(&mut src, &mut tx, table).await?;
                progress(table.name, n);
                report.tables.push((table.name, n));
            }
            // Events after the cursor were not yet fanned out: they stay queued; the rest
            // (which the insert trigger queued again) leave the queue.
            let done: i64 = sqlx::query_scalar("SELECT seq FROM fanout_cursor").fetch_one(&mut *src).await?;
            sqlx::query("DELETE FROM outbox_pending WHERE seq <= $1").bind(done).execute(&mut *tx).await?;
            for table in &tables {
                if let Some(column) = &table.identity {
                    let sql = format!(
                        "SELECT setval(pg_get_serial_sequence('{t}', '{column}'), COALESCE(MAX({column}), 0) + 1, false) FROM {t}",
                        t = table.name
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            sqlx::query("COMMIT").execute(&mut *src).await?;
        }
        (Backend::Postgres(source), Backend::Sqlite { write, .. }) => {
            let mut src = source.begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *src).await?;
            let mut tx = write.begin().await?;
            for table in &tables {
                let n = copy_table_pg_to_sqlite(&mut src, &mut tx, table).await?;
                progress(table.name, n);
                report.tables.push((table.name, n));
            }
            // Fan-out resumes after the last event with nothing left to fan out.
            let done: i64 = sqlx::query_scalar(
                "SELECT COALESCE((SELECT MIN(seq) - 1 FROM outbox_pending), (SELECT MAX(seq) FROM events), 0)",
            )
            .fetch_one(&mut *src)
            .await?;
            sqlx::query("UPDATE fanout_cursor SET seq = $1 WHERE id = 1").bind(done).execute(&mut *tx).await?;
            tx.commit().await?;
            src.commit().await?;
        }
        _ => unreachable!("checked above"),
    }
    Ok(report)
}

/// The tables to copy, with their columns' kinds, from PostgreSQL's catalog; refuses tables and
/// column types it does not know, so a new migration cannot be skipped silently.
async fn schema(pg: &mut PgConnection) -> anyhow::Result<Vec<Table>> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_identity::text \
         FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut *pg)
    .await?;
    let mut by_table: BTreeMap<String, Vec<(String, String, bool)>> = BTreeMap::new();
    for (table, column, data_type, identity) in rows {
        by_table.entry(table).or_default().push((column, data_type, identity == "YES"));
    }
    if let Some(unknown) =
        by_table.keys().find(|t| !TABLES.contains(&t.as_str()) && !BACKEND_TABLES.contains(&t.as_str()))
    {
        anyhow::bail!("table `{unknown}` is not known to migrate-data: this is a bug, please report it");
    }
    let mut tables = Vec::new();
    for &name in TABLES {
        let Some(columns) = by_table.remove(name) else {
            anyhow::bail!("table `{name}` is missing from the PostgreSQL database");
        };
        let mut table = Table { name, columns: Vec::new(), identity: None };
        for (column, data_type, identity) in columns {
            if BACKEND_COLUMNS.contains(&(name, column.as_str())) {
                continue;
            }
            let kind = Kind::from_pg(&data_type).ok_or_else(|| {
                anyhow::anyhow!("column {name}.{column} has type {data_type}, which migrate-data cannot copy")
            })?;
            if identity {
                table.identity = Some(column.clone());
            }
            table.columns.push(Column { name: column, kind });
        }
        tables.push(table);
    }
    Ok(tables)
}

fn select_sql(table: &Table) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    format!("SELECT {} FROM {}", columns.join(", "), table.name)
}

fn insert_head(table: &Table, overriding: bool) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let overriding = if overriding && table.identity.is_some() { " OVERRIDING SYSTEM VALUE" } else { "" };
    format!("INSERT INTO {} ({}){overriding} ", table.name, columns.join(", "))
}

/// Reads column `i` of `row` as `kind`. One macro for both backends' row types: sqlx's
/// `Decode` bounds differ per database, and each decodes the kinds Herald writes.
macro_rules! read_value {
    ($row:expr, $i:expr, $kind:expr) => {
        match $kind {
            Kind::Text => Val::Text($row.try_get($i)?),
            Kind::I32 => Val::I32($row.try_get($i)?),
            Kind::I64 => Val::I64($row.try_get($i)?),
            Kind::Bool => Val::Bool($row.try_get($i)?),
            Kind::Time => Val::Time($row.try_get($i)?),
            Kind::Json => Val::Json($row.try_get($i)?),
            Kind::Bytes => Val::Bytes($row.try_get($i)?),
        }
    };
}

/// Writes batched rows into `$tx` with a `QueryBuilder` of `$db`.
macro_rules! write_rows {
    ($db:ty, $tx:expr, $table:expr, $overriding:expr, $rows:expr) => {{
        let mut insert = QueryBuilder::<$db>::new(insert_head($table, $overriding));
        insert.push_values($rows.iter(), |mut b, row: &Vec<Val>| {
            for value in row {
                match value.clone() {
                    Val::Text(v) => b.push_bind(v),
                    Val::I32(v) => b.push_bind(v),
                    Val::I64(v) => b.push_bind(v),
                    Val::Bool(v) => b.push_bind(v),
                    Val::Time(v) => b.push_bind(v),
                    Val::Json(v) => b.push_bind(v),
                    Val::Bytes(v) => b.push_bind(v),
                };
            }
        });
        insert.build().execute(&mut **$tx).await?;
    }};
}

/// Defines a function that streams one table from a source connection into a destination
/// transaction in batches: once per direction, as the row and argument types differ.
macro_rules! copy_table_fn {
    ($name:ident, $source:ty, $dest:ty, $overriding:expr) => {
        async fn $name(src: &mut $source, tx: &mut sqlx::Transaction<'_, $dest>, table: &Table) -> anyhow::Result<u64> {
            let sql = select_sql(table);
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *src);
            let mut batch: Vec<Vec<Val>> = Vec::new();
            let mut copied = 0;
            while let Some(row) = rows.try_next().await? {
                let mut values = Vec::with_capacity(table.columns.len());
                for (i, column) in table.columns.iter().enumerate() {
                    values.push(read_value!(row, i, column.kind));
                }
                batch.push(values);
                if batch.len() == BATCH_ROWS {
                    write_rows!($dest, tx, table, $overriding, batch);
                    copied += batch.len() as u64;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                write_rows!($dest, tx, table, $overriding, batch);
                copied += batch.len() as u64;
            }
            Ok(copied)
        }
    };
}

// Explicit values go into PostgreSQL's `GENERATED ALWAYS` identity columns.
copy_table_fn!(copy_table_sqlite_to_pg, SqliteConnection, Postgres, true);
copy_table_fn!(copy_table_pg_to_sqlite, PgConnection, Sqlite, false);
