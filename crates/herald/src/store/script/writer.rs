//! Group commit of scripts, on both backends: one writer task takes every script waiting and
//! commits them in one transaction (see the module docs of `script` and `store::batch`).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use futures_util::StreamExt;
use sqlx::{Executor, PgPool, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{
    Arg, EventSeqs, Script, bind_arg,
    params::{anonymize, params_in_order, renumber},
};
use crate::store::{EventsWritten, batch};

/// A script waiting for a writer, and where its result goes.
pub struct Job {
    pub(super) script: Script,
    pub(super) reply: oneshot::Sender<Result<EventSeqs, sqlx::Error>>,
}

/// At most this many scripts, and this many bound arguments, go into one batch (SQLite allows
/// 32,766 arguments per statement, PostgreSQL 65,535).
const MAX_JOBS: usize = 128;
const MAX_ARGS: usize = 16_000;

/// PostgreSQL writer tasks. One would commit one batch at a time, and a durable commit waits
/// for its WAL flush; with several, one batch is flushed while the next is written, and each
/// holds one pooled connection only while it writes. The figures in docs/BENCHMARKS.md (one
/// event per `POST /api/v1/events`) were measured with this value.
const PG_WRITERS: usize = 4;

/// The senders to the node's script writers: one on SQLite (it has one writer), several on
/// PostgreSQL, taken in turn.
pub(crate) struct Writers {
    senders: Vec<mpsc::Sender<Job>>,
    next: AtomicUsize,
}

impl Writers {
    /// Starts the SQLite writer on the one-connection write pool.
    pub fn sqlite(pool: SqlitePool, events_written: Arc<EventsWritten>) -> Writers {
        Writers::spawn(vec![Pool::Sqlite(pool)], events_written)
    }

    /// Starts the PostgreSQL writers on the shared pool.
    pub fn postgres(pool: PgPool, events_written: Arc<EventsWritten>) -> Writers {
        Writers::spawn(vec![Pool::Postgres(pool); PG_WRITERS], events_written)
    }

    /// Each writer task ends when every sender is dropped.
    fn spawn(pools: Vec<Pool>, events_written: Arc<EventsWritten>) -> Writers {
        let senders = pools
            .into_iter()
            .map(|pool| {
                let (tx, rx) = mpsc::channel::<Job>(4096);
                tokio::spawn(batch::run(GroupWriter { pool, events_written: events_written.clone() }, rx, MAX_JOBS));
                tx
            })
            .collect();
        Writers { senders, next: AtomicUsize::new(0) }
    }

    /// Hands `script` to a writer and waits for its commit (or its own error).
    pub async fn run(&self, script: Script) -> Result<EventSeqs, sqlx::Error> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        let (reply, answer) = oneshot::channel();
        self.senders[i].send(Job { script, reply }).await.map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One group-commit writer task. On SQLite it owns the turn on the write connection for
/// scripts; other writes share the same one-connection pool and interleave between batches.
struct GroupWriter {
    pool: Pool,
    events_written: Arc<EventsWritten>,
}

/// What statement `i` of a joined command belongs to.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Part {
    Begin,
    Job(usize),
    Commit,
}

impl batch::Writer for GroupWriter {
    type Job = Job;
    type Output = EventSeqs;
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

    async fn write(&mut self, jobs: &[Job], again: bool) -> Result<Vec<EventSeqs>, batch::Failure<sqlx::Error>> {
        let seqs = match &self.pool {
            Pool::Sqlite(pool) => write_sqlite(pool, jobs, again).await?,
            Pool::Postgres(pool) => write_postgres(pool, jobs, again).await?,
        };
        if jobs.iter().any(|j| !j.script.events.is_empty()) {
            self.events_written.notify();
        }
        Ok(seqs)
    }

    fn answer(&mut self, job: Job, result: Result<EventSeqs, sqlx::Error>) {
        let _ = job.reply.send(result);
    }

    fn unavailable(&self, error: &sqlx::Error) -> bool {
        crate::store::is_unavailable(error)
    }

    fn copy(&self, error: &sqlx::Error) -> sqlx::Error {
        crate::store::copy_batch_error(error, "the batched write failed")
    }
}

/// Runs `jobs` in one SQLite transaction, sent as one multi-statement command.
///
/// Optimistic: the scripts run back to back with no savepoints between them (every
/// statement costs a hand-off of its result from SQLite's thread, so savepoints would
/// double them). If one fails, the whole transaction rolls back and that script is named
/// ([`batch::Failure::Job`]): it gets its error, and the others run again without it.
async fn write_sqlite(
    pool: &SqlitePool,
    jobs: &[Job],
    again: bool,
) -> Result<Vec<EventSeqs>, batch::Failure<sqlx::Error>> {
    let mut conn = pool.acquire().await.map_err(batch::Failure::Batch)?;
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
        let mut returned = Returned::new(jobs);
        {
            let mut results = (&mut *conn).fetch_many(query);
            while let Some(item) = results.next().await {
                match item {
                    Ok(sqlx::Either::Left(_)) => done += 1,
                    // A row of statement `done` (its result comes after its rows).
                    Ok(sqlx::Either::Right(row)) => returned.row(&row, parts.get(done).copied()),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        let Some(err) = failure else { return Ok(returned.seqs) };
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

/// Runs `jobs` in one PostgreSQL transaction. When the scripts have the same shape it is one
/// statement ([`merged_postgres`]), which PostgreSQL runs as its own transaction: one round
/// trip for the batch, where `BEGIN`, a statement per position and `COMMIT` took three or
/// more (at one event per request most batches hold one script, and PostgreSQL's CPU went to
/// those round trips). Otherwise statement by statement in a transaction. A failure of the
/// merged form is run again unmerged, to name the script at fault.
async fn write_postgres(
    pool: &PgPool,
    jobs: &[Job],
    again: bool,
) -> Result<Vec<EventSeqs>, batch::Failure<sqlx::Error>> {
    if !again && let Some((sql, args)) = merged_postgres(jobs) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for arg in args {
            query = bind_arg!(query, arg);
        }
        // Nothing of it was written if it failed: find the script at fault below.
        if let Ok(rows) = query.fetch_all(pool).await {
            let mut returned = Returned::new(jobs);
            rows.iter().for_each(|row| returned.row(row, None));
            return Ok(returned.seqs);
        }
    }
    let mut tx = pool.begin().await.map_err(batch::Failure::Batch)?;
    let mut returned = Returned::new(jobs);
    for (k, job) in jobs.iter().enumerate() {
        for stmt in &job.script.stmts {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(stmt.sql.clone()));
            for arg in stmt.args.iter().cloned() {
                query = bind_arg!(query, arg);
            }
            let rows = query.fetch_all(&mut *tx).await.map_err(|e| batch::Failure::Job(k, e))?;
            rows.iter().for_each(|row| returned.row(row, Some(Part::Job(k))));
        }
    }
    tx.commit().await.map_err(batch::Failure::Batch)?;
    Ok(returned.seqs)
}

/// The events' sequence numbers a batch's inserts returned, sorted to their scripts.
struct Returned<'a> {
    seqs: Vec<EventSeqs>,
    /// Which job inserted each event, for rows of a merged insert (which serves them all).
    owner: std::collections::HashMap<&'a str, usize>,
}

impl<'a> Returned<'a> {
    fn new(jobs: &'a [Job]) -> Returned<'a> {
        let owner = jobs.iter().enumerate().flat_map(|(k, j)| j.script.events.iter().map(move |id| (id.as_str(), k)));
        Returned { seqs: vec![Vec::new(); jobs.len()], owner: owner.collect() }
    }

    /// A row of `(id, seq)` from statement `part`'s `RETURNING` (a merged insert: `None` or
    /// `Part::Begin`). A row that is not an event's is ignored: its script reads back instead.
    fn row<R: sqlx::Row>(&mut self, row: &R, part: Option<Part>)
    where
        for<'r> &'r str: sqlx::ColumnIndex<R>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        let (Ok(id), Ok(seq)) = (row.try_get::<String, _>("id"), row.try_get::<i64, _>("seq")) else { return };
        let job = match part {
            Some(Part::Job(k)) => Some(k),
            _ => self.owner.get(id.as_str()).copied(),
        };
        if let Some(seqs) = job.and_then(|k| self.seqs.get_mut(k)) {
            seqs.push((id, seq));
        }
    }
}

/// Joins the scripts of `jobs` into one command, `BEGIN IMMEDIATE; ..; COMMIT`. Returns the
/// SQL, what each statement belongs to, and the arguments, renumbered in order.
///
/// Parameters become anonymous `?` when every statement takes its `$1..$n` in order (binding
/// numbered ones is slow, see [`merged`]), else they are renumbered; sqlx cannot mix the two in
/// one command.
pub(super) fn join(jobs: &[Job]) -> (String, Vec<Part>, Vec<Arg>) {
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

/// Statement position `i` of a batch whose scripts all have the same statements, each a plain
/// `INSERT .. VALUES (..)` (or `.. VALUES (..) RETURNING ..`) taking `$1..$n` in order: the
/// text before the tuple, the tuple, what follows it, and the arguments of every script's
/// statement `i`, in script order.
struct MergedInsert<'a> {
    head: &'a str,
    tuple: &'a str,
    /// `RETURNING ..`, or empty.
    tail: &'a str,
    args: Vec<Arg>,
}

/// Whether two scripts run the same statements (their arguments aside).
fn same_statements(a: &Job, b: &Job) -> bool {
    let (a, b) = (&a.script.stmts, &b.script.stmts);
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.sql == y.sql)
}

/// The batch as one multi-row `INSERT` per statement position, or `None` when it does not have
/// that shape (see [`MergedInsert`]).
fn merge_shape<'a>(jobs: &[&'a Job]) -> Option<Vec<MergedInsert<'a>>> {
    let first = jobs.first()?;
    if !jobs.iter().all(|j| same_statements(first, j)) {
        return None;
    }
    let first = &first.script.stmts;
    let mut out = Vec::with_capacity(first.len());
    for (i, stmt) in first.iter().enumerate() {
        let at = stmt.sql.rfind(" VALUES (")? + " VALUES ".len();
        let (head, rest) = stmt.sql.split_at(at);
        // `.. VALUES (..)`, or `.. VALUES (..) RETURNING ..`: the tail follows the last row.
        let (tuple, tail) = match rest.find(") RETURNING ") {
            Some(end) => rest.split_at(end + 1),
            None => (rest, ""),
        };
        if !tuple.ends_with(')') || !params_in_order(tuple, stmt.args.len()) || head.contains('$') || tail.contains('$')
        {
            return None;
        }
        let args = jobs.iter().flat_map(|job| job.script.stmts[i].args.iter().cloned()).collect();
        out.push(MergedInsert { head, tuple, tail, args });
    }
    Some(out)
}

/// SQLite: the batch in one command, each group of same-shaped scripts as one multi-row
/// `INSERT` per statement position. Far fewer statements for SQLite to run and hand back (one
/// result each), and anonymous `?` parameters (see `store::query_builder` on why numbered ones
/// are slow to bind). Scripts of another shape (the dispatcher's fan-out among a burst of
/// publishes) run beside the groups, statement by statement: scripts of one batch do not
/// depend on each other, so their order does not matter. Parts are all `Begin`: a failure is
/// not attributed to a script. `None` when nothing merges, or a script's parameters are not
/// in order (then [`join`]).
pub(super) fn merged(jobs: &[Job]) -> Option<(String, Vec<Part>, Vec<Arg>)> {
    let mut groups: Vec<Vec<&Job>> = Vec::new();
    for job in jobs {
        match groups.iter_mut().find(|g| same_statements(g[0], job)) {
            Some(group) => group.push(job),
            None => groups.push(vec![job]),
        }
    }
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    let mut args = Vec::new();
    let mut statements = 0;
    let mut any_merged = false;
    for group in &groups {
        if let Some(shape) = merge_shape(group).filter(|_| group.len() > 1) {
            any_merged = true;
            for insert in shape {
                sql.push_str(insert.head);
                sql.push_str(&vec![anonymize(insert.tuple); group.len()].join(", "));
                sql.push_str(insert.tail);
                sql.push_str(";\n");
                args.extend(insert.args);
                statements += 1;
            }
            continue;
        }
        for stmt in group.iter().flat_map(|job| &job.script.stmts) {
            if !params_in_order(&stmt.sql, stmt.args.len()) {
                return None;
            }
            sql.push_str(&anonymize(&stmt.sql));
            sql.push_str(";\n");
            args.extend(stmt.args.iter().cloned());
            statements += 1;
        }
    }
    if !any_merged {
        return None;
    }
    sql.push_str("COMMIT");
    Some((sql, vec![Part::Begin; statements + 2], args))
}

/// PostgreSQL: the batch as one statement, parameters numbered from `$1`: a multi-row
/// `INSERT` per statement position, and with several positions, each a data-modifying `WITH`
/// query of one statement (`WITH s0 AS (INSERT ..), s1 AS (INSERT ..) ..`), which runs in one
/// transaction. They are all inserts, so none reads what another writes and the order
/// PostgreSQL runs them in does not matter; constraint checks see every row (they run at the
/// end of the statement). The rows of every `RETURNING` come back together, so those must
/// return the same columns; `None` if they do not, or if the batch has no [`MergedInsert`]
/// shape.
pub(super) fn merged_postgres(jobs: &[Job]) -> Option<(String, Vec<Arg>)> {
    let shape = merge_shape(&jobs.iter().collect::<Vec<_>>())?;
    let mut tails = shape.iter().map(|insert| insert.tail).filter(|tail| !tail.is_empty());
    let returning = tails.next();
    if tails.any(|tail| Some(tail) != returning) {
        return None;
    }
    let last = shape.len() - 1;
    let mut sql = String::new();
    let mut args = Vec::with_capacity(shape.iter().map(|insert| insert.args.len()).sum());
    let mut returns = Vec::new();
    for (i, insert) in shape.into_iter().enumerate() {
        // The last insert is the statement's main query, unless rows must come back from
        // others: then every insert is a `WITH` query and the main query reads their rows.
        let main = i == last && returning.is_none_or(|_| last == 0);
        if main && i > 0 {
            sql.push(' ');
        } else if !main {
            sql.push_str(if i == 0 { "WITH " } else { ", " });
            sql.push_str(&format!("s{i} AS ("));
        }
        sql.push_str(insert.head);
        let per_row = insert.args.len() / jobs.len();
        for k in 0..jobs.len() {
            if k > 0 {
                sql.push_str(", ");
            }
            renumber(insert.tuple, args.len() + k * per_row, &mut sql);
        }
        sql.push_str(insert.tail);
        if !main {
            sql.push(')');
        }
        if !insert.tail.is_empty() {
            returns.push(format!("SELECT * FROM s{i}"));
        }
        args.extend(insert.args);
    }
    if returning.is_some() && last > 0 {
        sql.push(' ');
        sql.push_str(&returns.join(" UNION ALL "));
    }
    Some((sql, args))
}
