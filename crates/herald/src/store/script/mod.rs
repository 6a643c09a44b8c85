//! Writes as data, and group commit on both backends.
//!
//! A [`Script`] is a transaction written down as statements and their arguments instead of
//! code that awaits each statement. That lets a writer task (`writer.rs`) take every script
//! that is waiting and commit them together in one transaction (group commit): one commit, and
//! with a durable setting one disk flush, serves many requests. Each write still succeeds or
//! fails on its own: when one fails, the batch is rolled back and run again without it (the
//! `store::batch` primitive).
//!
//! - **SQLite** has one writer: `sqlx-sqlite` runs every statement on a worker thread, and a
//!   transaction written as code holds the one write connection across four or more thread
//!   hand-offs (`BEGIN`, each statement, `COMMIT`), each waiting for its task to be scheduled
//!   again. The writer joins the waiting scripts into one multi-statement command
//!   (`BEGIN IMMEDIATE; ..; COMMIT`) and sends it in one hand-off. Measured on the 2-core
//!   reference machine (`POST /api/v1/users`, 32 clients): 2,100 writes/s as transactions in
//!   code, 5,200 as group-committed scripts (docs/BENCHMARKS.md).
//! - **PostgreSQL** has many connections, but each transaction costs round trips and a WAL
//!   flush at commit. A few writer tasks each commit what is waiting as one transaction, with
//!   same-shaped scripts merged into multi-row inserts.
//!
//! Scripts suit writes whose statements do not depend on each other's results (inserts of a
//! new resource and its outbox event). Writes that read or check what they changed (optimistic
//! updates) stay on ordinary transactions.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::Store;
use crate::events::NewEvent;

mod params;
mod writer;
use params::max_param;
pub(crate) use params::numbered;
pub(crate) use writer::Writers;

/// One argument of a statement, typed as the column it fills (PostgreSQL checks types, and
/// SQLite stores timestamps and JSON in the text form these types encode to).
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Str(Option<String>),
    I32(Option<i32>),
    I64(Option<i64>),
    Bool(bool),
    Time(Option<DateTime<Utc>>),
    Json(Value),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Str(Some(v.to_owned()))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Str(Some(v.clone()))
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::Str(v.clone())
    }
}
impl From<i32> for Arg {
    fn from(v: i32) -> Self {
        Arg::I32(Some(v))
    }
}
impl From<Option<i32>> for Arg {
    fn from(v: Option<i32>) -> Self {
        Arg::I32(v)
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::I64(Some(v))
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<DateTime<Utc>> for Arg {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Time(Some(v))
    }
}
impl From<Option<DateTime<Utc>>> for Arg {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Arg::Time(v)
    }
}
impl From<&Json<Value>> for Arg {
    fn from(v: &Json<Value>) -> Self {
        Arg::Json(v.0.clone())
    }
}

/// Binds one [`Arg`] to a query of either backend.
macro_rules! bind_arg_impl {
    ($query:expr, $arg:expr) => {
        match $arg {
            $crate::store::script::Arg::Str(v) => $query.bind(v),
            $crate::store::script::Arg::I32(v) => $query.bind(v),
            $crate::store::script::Arg::I64(v) => $query.bind(v),
            $crate::store::script::Arg::Bool(v) => $query.bind(v),
            $crate::store::script::Arg::Time(v) => $query.bind(v),
            $crate::store::script::Arg::Json(v) => $query.bind(sqlx::types::Json(v)),
        }
    };
}
pub(crate) use bind_arg_impl as bind_arg;

/// Binds one [`Arg`] to a row of a `sqlx::QueryBuilder` (`push_values`) of either backend.
macro_rules! push_arg_impl {
    ($row:expr, $arg:expr) => {
        match $arg {
            $crate::store::script::Arg::Str(v) => $row.push_bind(v),
            $crate::store::script::Arg::I32(v) => $row.push_bind(v),
            $crate::store::script::Arg::I64(v) => $row.push_bind(v),
            $crate::store::script::Arg::Bool(v) => $row.push_bind(v),
            $crate::store::script::Arg::Time(v) => $row.push_bind(v),
            $crate::store::script::Arg::Json(v) => $row.push_bind(sqlx::types::Json(v)),
        }
    };
}
pub(crate) use push_arg_impl as push_arg;

/// One statement: SQL with `$1..$n` and exactly `n` arguments.
#[derive(Debug)]
struct Stmt {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
}

/// Statements run in order in one transaction; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Script {
    stmts: Vec<Stmt>,
    /// The ids of the outbox events it inserts.
    events: Vec<String>,
}

/// The id and sequence number of each outbox event a script inserted, as its writer read them
/// from the insert (`RETURNING`). An event missing here is still stored: read it back.
pub(crate) type EventSeqs = Vec<(String, i64)>;

impl Script {
    pub fn push(&mut self, sql: impl Into<Cow<'static, str>>, args: Vec<Arg>) {
        let sql = sql.into();
        debug_assert_eq!(max_param(&sql), args.len(), "argument count of {sql}");
        self.stmts.push(Stmt { sql, args });
    }

    /// Adds the outbox row of `e`.
    pub fn event(&mut self, e: NewEvent) {
        self.events.push(e.id.clone());
        self.push(super::events::INSERT_EVENT_RETURNING, super::events::event_args(e).into());
    }

    fn arg_count(&self) -> usize {
        self.stmts.iter().map(|s| s.args.len()).sum()
    }
}

impl Store {
    /// Runs `script` in one transaction, committed with whatever other scripts are waiting
    /// (see the module docs). The error is the failing statement's own, so callers can tell
    /// a unique-key clash from other failures. The writer wakes the outbox's readers after a
    /// commit that wrote events.
    /// Answers with the sequence numbers of the events it inserted.
    pub(crate) async fn run_script(&self, script: Script) -> Result<EventSeqs, sqlx::Error> {
        self.scripts().run(script).await
    }
}

#[cfg(test)]
mod tests;
