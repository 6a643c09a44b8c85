//! Writes as data, and group commit for SQLite.
//!
//! A [`Script`] is a transaction written down as statements and their arguments instead of
//! code that awaits each statement. That lets the SQLite backend do what its single writer
//! needs: `sqlx-sqlite` runs every statement on a worker thread, and a transaction written as
//! code holds the one write connection across four or more thread hand-offs (`BEGIN`, each
//! statement, `COMMIT`), each waiting for its task to be scheduled again. The [`GroupWriter`]
//! instead takes every script that is waiting, joins them into one multi-statement command
//! (`BEGIN IMMEDIATE; ..; COMMIT`) and sends it in one hand-off. One transaction commits many
//! writes; each write still succeeds or fails on its own: when one fails, the batch is rolled
//! back and run again without it (the `store::batch` primitive; see [`GroupWriter`]).
//!
//! Measured on the 2-core reference machine (`POST /api/v1/users`, 32 clients): 2,100 writes/s
//! as transactions in code, 5,200 as group-committed scripts (docs/BENCHMARKS.md).
//!
//! Scripts suit writes whose statements do not depend on each other's results (inserts of a
//! new resource and its outbox event). Writes that read or check what they changed (optimistic
//! updates) stay on ordinary transactions.
//!
//! PostgreSQL runs a script as an ordinary transaction: it has many connections and no single
//! writer to share.

use std::{borrow::Cow, fmt::Write as _, sync::Arc};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::Value;
use sqlx::{Executor, SqlitePool, types::Json};
use tokio::sync::{mpsc, oneshot};

use super::{Backend, Store, batch};
use crate::events::NewEvent;

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
    has_events: bool,
}

impl Script {
    pub fn push(&mut self, sql: impl Into<Cow<'static, str>>, args: Vec<Arg>) {
        let sql = sql.into();
        debug_assert_eq!(max_param(&sql), args.len(), "argument count of {sql}");
        self.stmts.push(Stmt { sql, args });
    }

    /// Adds the outbox row of `e`.
    pub fn event(&mut self, e: NewEvent) {
        self.has_events = true;
        self.push(super::events::INSERT_EVENT, super::events::event_args(e).into());
    }

    fn arg_count(&self) -> usize {
        self.stmts.iter().map(|s| s.args.len()).sum()
    }
}

impl Store {
    /// Runs `script` in one transaction. The error is the failing statement's own, so callers
    /// can tell a unique-key clash from other failures.
    pub(crate) async fn run_script(&self, script: Script) -> Result<(), sqlx::Error> {
        let has_events = script.has_events;
        match self.backend() {
            Backend::Sqlite { writer, .. } => {
                let (reply, answer) = oneshot::channel();
                writer.send(Job { script, reply }).await.map_err(|_| sqlx::Error::PoolClosed)?;
                // The writer notifies the dispatcher itself, after the commit.
                return answer.await.map_err(|_| sqlx::Error::PoolClosed)?;
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                for stmt in script.stmts {
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(stmt.sql.into_owned()));
                    for arg in stmt.args {
                        query = bind_arg!(query, arg);
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        if has_events {
            self.notify_events();
        }
        Ok(())
    }
}

/// A script waiting for the SQLite writer, and where its result goes.
pub struct Job {
    script: Script,
    reply: oneshot::Sender<Result<(), sqlx::Error>>,
}

/// At most this many scripts, and this many bound arguments, go into one command (SQLite
/// allows 32,766 arguments per statement).
const MAX_JOBS: usize = 128;
const MAX_ARGS: usize = 16_000;

/// The SQLite group-commit writer: one task that owns the turn on the write connection for
/// scripts. Other writes share the same one-connection pool and interleave between batches.
pub(crate) struct GroupWriter {
    pool: SqlitePool,
    events_written: Arc<super::EventsWritten>,
}

impl GroupWriter {
    /// Starts the writer task; it ends when every sender is dropped.
    pub fn spawn(pool: SqlitePool, events_written: Arc<super::EventsWritten>) -> mpsc::Sender<Job> {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(batch::run(GroupWriter { pool, events_written }, rx, MAX_JOBS));
        tx
    }
}

/// What statement `i` of a joined command belongs to.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Begin,
    Job(usize),
    Commit,
}

impl batch::Writer for GroupWriter {
    type Job = Job;
    type Output = ();
    type Error = sqlx::Error;

    /// Cut the batch where the argument budget runs out (a lone large script still goes alone).
    fn take(&self, waiting: &[Job]) -> usize {
        let mut args = 0;
        for (i, job) in waiting.iter().enumerate() {
            args += job.script.arg_count();
            if i > 0 && args > MAX_ARGS {
                return i;
            }
        }
        waiting.len()
    }

    /// Runs `jobs` in one transaction.
    ///
    /// Optimistic: the scripts run back to back with no savepoints between them (every
    /// statement costs a hand-off of its result from SQLite's thread, so savepoints would
    /// double them). If one fails, the whole transaction rolls back and that script is named
    /// ([`batch::Failure::Job`]): it gets its error, and the others run again without it.
    async fn write(&mut self, jobs: &[Job], again: bool) -> Result<Vec<()>, batch::Failure<sqlx::Error>> {
        let mut conn = self.pool.acquire().await.map_err(batch::Failure::Batch)?;
        // First try the batch as multi-row inserts; if anything fails, go statement by
        // statement to find which script it was (and stay so for what is left of the batch).
        let mut merge = jobs.len() > 1 && !again;
        loop {
            let (sql, parts, args) = if merge { merged(jobs).unwrap_or_else(|| join(jobs)) } else { join(jobs) };
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for arg in args {
                query = bind_arg!(query, arg);
            }
            let mut done = 0;
            let mut failure = None;
            {
                let mut results = (&mut *conn).fetch_many(query);
                while let Some(item) = results.next().await {
                    match item {
                        Ok(sqlx::Either::Left(_)) => done += 1,
                        Ok(sqlx::Either::Right(_)) => {}
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            }
            let Some(err) = failure else {
                if jobs.iter().any(|j| j.script.has_events) {
                    self.events_written.notify();
                }
                return Ok(vec![(); jobs.len()]);
            };
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            if merge {
                merge = false;
                continue;
            }
            return Err(match parts.get(done).copied() {
                Some(Part::Job(k)) => batch::Failure::Job(k, err),
                // BEGIN or COMMIT failed: nothing of this batch is written.
                _ => batch::Failure::Batch(err),
            });
        }
    }

    fn answer(&mut self, job: Job, result: Result<(), sqlx::Error>) {
        let _ = job.reply.send(result);
    }

    fn unavailable(&self, error: &sqlx::Error) -> bool {
        super::is_unavailable(error)
    }

    /// An unavailable database stays unavailable in the copy (a 503, not a 500).
    fn copy(&self, error: &sqlx::Error) -> sqlx::Error {
        let message = format!("the batched write failed: {error}");
        if super::is_unavailable(error) {
            sqlx::Error::Io(std::io::Error::other(message))
        } else {
            sqlx::Error::Protocol(message)
        }
    }
}

/// Joins the scripts of `jobs` into one command, `BEGIN IMMEDIATE; ..; COMMIT`. Returns the
/// SQL, what each statement belongs to, and the arguments, renumbered in order.
///
/// Parameters become anonymous `?` when every statement takes its `$1..$n` in order (binding
/// numbered ones is slow, see [`merged`]), else they are renumbered; sqlx cannot mix the two in
/// one command.
fn join(jobs: &[Job]) -> (String, Vec<Part>, Vec<Arg>) {
    let anonymous = jobs.iter().flat_map(|j| &j.script.stmts).all(|stmt| params_in_order(&stmt.sql, stmt.args.len()));
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    let mut parts = vec![Part::Begin];
    let mut args = Vec::new();
    for (k, job) in jobs.iter().enumerate() {
        for stmt in &job.script.stmts {
            if anonymous {
                sql.push_str(&anonymize(&stmt.sql));
            } else {
                renumber(&stmt.sql, args.len(), &mut sql);
            }
            sql.push_str(";\n");
            parts.push(Part::Job(k));
            args.extend(stmt.args.iter().cloned());
        }
    }
    sql.push_str("COMMIT");
    parts.push(Part::Commit);
    (sql, parts, args)
}

/// The batch as one multi-row `INSERT` per statement position, when every script has the same
/// statements and each is a plain `INSERT .. VALUES (..)` taking `$1..$n` in order: statement
/// `i` of every script, in script order, becomes one statement. Far fewer statements for
/// SQLite to run and hand back (one result each), and anonymous `?` parameters (see
/// `store::query_builder` on why numbered ones are slow to bind). `None` when the batch
/// does not have that shape. Parts are all `Begin`: a failure is not attributed to a script.
fn merged(jobs: &[Job]) -> Option<(String, Vec<Part>, Vec<Arg>)> {
    let first = &jobs.first()?.script.stmts;
    if jobs
        .iter()
        .any(|j| j.script.stmts.len() != first.len() || j.script.stmts.iter().zip(first).any(|(a, b)| a.sql != b.sql))
    {
        return None;
    }
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    for stmt in first {
        let at = stmt.sql.rfind(" VALUES (")? + " VALUES ".len();
        let tuple = &stmt.sql[at..];
        if !tuple.ends_with(')') || !params_in_order(tuple, stmt.args.len()) || stmt.sql[..at].contains('$') {
            return None;
        }
        let anonymous = anonymize(tuple);
        sql.push_str(&stmt.sql[..at]);
        for k in 0..jobs.len() {
            if k > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&anonymous);
        }
        sql.push_str(";\n");
    }
    sql.push_str("COMMIT");
    let mut args = Vec::new();
    for i in 0..first.len() {
        for job in jobs {
            args.extend(job.script.stmts[i].args.iter().cloned());
        }
    }
    let parts = vec![Part::Begin; first.len() + 2];
    Some((sql, parts, args))
}

/// A piece of SQL text as [`scan_params`] splits it.
enum Piece<'a> {
    Text(&'a str),
    /// `$n`, by its number.
    Param(usize),
}

/// Splits `sql` into plain text and `$n` parameters, in order. A `$` without digits is text.
/// Every rewrite of parameters below goes through this one scanner.
fn scan_params<'a>(sql: &'a str, mut each: impl FnMut(Piece<'a>)) {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
        match rest[at + 1..at + 1 + digits].parse::<usize>() {
            Ok(n) => {
                each(Piece::Text(&rest[..at]));
                each(Piece::Param(n));
            }
            Err(_) => each(Piece::Text(&rest[..at + 1 + digits])),
        }
        rest = &rest[at + 1 + digits..];
    }
    each(Piece::Text(rest));
}

/// `n` numbered parameters from `$start`, for a statement of a [`Script`] built at run time
/// (a multi-row insert). A script's statements are written once, in the common `$n` form that
/// PostgreSQL runs as they are; the SQLite writer turns them into anonymous `?` (see
/// [`join`], [`merged`]). `sqlx::QueryBuilder` cannot write them: it binds its values
/// itself, where a script must hold its arguments as data until the writer joins it.
pub(crate) fn numbered(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Whether `$1..$n` each appear exactly once in `sql`, in that order. The SQLite writer turns a
/// script's `$n` into anonymous `?` only then (binding numbered SQLite parameters is quadratic,
/// see `store::query_builder`): the `$n` text is what the [`Script`] design stores, so it stays.
fn params_in_order(sql: &str, n: usize) -> bool {
    let mut seen = 0;
    let mut in_order = true;
    scan_params(sql, |piece| {
        if let Piece::Param(k) = piece {
            seen += 1;
            in_order &= k == seen;
        }
    });
    in_order && seen == n
}

/// `sql` with every `$n` replaced by `?`.
fn anonymize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    scan_params(sql, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Param(_) => out.push('?'),
    });
    out
}

/// Copies `sql` into `out` with every `$n` shifted by `offset`.
fn renumber(sql: &str, offset: usize, out: &mut String) {
    scan_params(sql, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Param(n) => {
            let _ = write!(out, "${}", n + offset);
        }
    });
}

/// The highest `$n` in `sql` (the number of arguments it takes).
fn max_param(sql: &str) -> usize {
    let mut max = 0;
    scan_params(sql, |piece| {
        if let Piece::Param(n) = piece {
            max = max.max(n);
        }
    });
    max
}

#[cfg(test)]
mod tests;
