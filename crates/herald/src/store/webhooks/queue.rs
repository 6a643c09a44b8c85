//! The delivery queue: fan-out (events -> deliveries), claiming due deliveries under a lease,
//! renewing leases, recording attempt results, manual retries and replays.

use sqlx::{FromRow, postgres::PgRow};

use super::*;
use crate::store::open_transaction::OpenTransaction;

/// A new pending delivery, due at once: `(id, project, webhook, event id, event seq, now)`.
const INSERT_DELIVERY: &str = "INSERT INTO deliveries (id, project_id, webhook_id, event_id, event_seq, status, \
    attempts, next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)";

/// `SELECT ... FOR UPDATE SKIP LOCKED` where the backend has it (PostgreSQL: several nodes
/// share the queue); SQLite's single writer already serializes claimers.
fn lock_clause(backend: &Backend) -> &'static str {
    match backend {
        Backend::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite { .. } => "",
    }
}

/// Rows per multi-row statement (PostgreSQL takes at most 65,535 parameters, SQLite 32,766).
const INSERT_CHUNK: usize = 1000;

/// How [`Store::fan_out`] leases new deliveries to the calling node.
pub struct Lease<'a> {
    pub node: &'a str,
    pub until: DateTime<Utc>,
    /// Whether the node takes a new delivery to this endpoint now.
    pub take: &'a mut (dyn FnMut(&Webhook) -> bool + Send),
}

/// What a fan-out did: `leased` holds the deliveries leased to the caller, each with the
/// index of its event in `event_rows` and of its endpoint in `hooks`.
#[derive(Default)]
pub struct FanOut {
    pub events: usize,
    pub created: usize,
    pub leased: Vec<(Delivery, usize, usize)>,
    pub event_rows: Vec<EventRow>,
    pub hooks: Vec<Webhook>,
}

/// A fan-out read and planned, its rows not written yet (see [`Store::plan_fan_out`]).
pub struct PlannedFanOut {
    pub out: FanOut,
    pub write: FanOutWrite,
}

/// The writes of a [`PlannedFanOut`], for [`Store::write_fan_out`]; dropped unwritten, they
/// are not written (PostgreSQL: the transaction rolls back, the events go back to the queue).
pub struct FanOutWrite(Write);

enum Write {
    Script(Script),
    /// The open transaction that took the events from the queue, and the inserts of their
    /// deliveries: run by the write, after the sends started, so they are not one more round
    /// trip between publish and arrival.
    Transaction(OpenTransaction, Vec<(String, Vec<Arg>)>),
}

/// Inlined `TRUE`: it is also sent in a simple query, which takes no parameters.
const ACTIVE_WEBHOOKS: &str = "SELECT * FROM webhooks WHERE active = TRUE";

struct NewDelivery {
    event: usize,
    hook: usize,
    id: String,
    leased: bool,
}

/// One delivery per (event, active endpoint of its project created before it, matching).
fn plan_deliveries(
    events: &[EventRow],
    hooks: &[Webhook],
    lease: &mut Lease<'_>,
    matches: &impl Fn(&Webhook, &EventRow) -> bool,
) -> Vec<NewDelivery> {
    let mut created = Vec::new();
    for (e, event) in events.iter().enumerate() {
        for (h, hook) in hooks.iter().enumerate() {
            if Some(&hook.project_id) != event.project_id.as_ref()
                || event.seq <= hook.created_seq
                || !matches(hook, event)
            {
                continue;
            }
            let leased = (lease.take)(hook);
            created.push(NewDelivery { event: e, hook: h, id: crate::store::new_id(), leased });
        }
    }
    created
}

/// A multi-row `INSERT` of `chunk`, parameters `$1..` in order (so SQLite binds them as `?`).
fn insert_deliveries(
    chunk: &[NewDelivery],
    events: &[EventRow],
    hooks: &[Webhook],
    now: DateTime<Utc>,
    lease: &Lease<'_>,
) -> (String, Vec<Arg>) {
    let rows = chunk.iter().map(|d| {
        let (event, hook) = (&events[d.event], &hooks[d.hook]);
        [
            Arg::from(&d.id),
            Arg::from(&hook.project_id),
            Arg::from(&hook.id),
            Arg::from(&event.id),
            Arg::from(event.seq),
            Arg::Str(d.leased.then(|| lease.node.to_owned())),
            Arg::Time(d.leased.then_some(lease.until)),
            Arg::from(now),
            Arg::from(now),
            Arg::from(now),
        ]
    });
    multi_row(
        "INSERT INTO deliveries (id, project_id, webhook_id, event_id, event_seq, lease_owner, lease_expires_at, \
         next_attempt_at, created_at, updated_at, status, attempts) ",
        rows,
        ", 'pending', 0",
    )
}

/// The result of a committed fan-out: the leased deliveries as the rows now read.
fn fanned_out(
    events: Vec<EventRow>,
    hooks: Vec<Webhook>,
    created: Vec<NewDelivery>,
    now: DateTime<Utc>,
    lease: &Lease<'_>,
) -> FanOut {
    let leased = created
        .iter()
        .filter(|d| d.leased)
        .map(|d| {
            let (event, hook) = (&events[d.event], &hooks[d.hook]);
            let delivery = Delivery {
                id: d.id.clone(),
                project_id: hook.project_id.clone(),
                webhook_id: hook.id.clone(),
                event_id: event.id.clone(),
                event_seq: event.seq,
                status: crate::vocab::DeliveryStatus::Pending,
                attempts: 0,
                schedule_from: 0,
                next_attempt_at: Some(now),
                lease_owner: Some(lease.node.to_owned()),
                lease_expires_at: Some(lease.until),
                last_status_code: None,
                last_error: None,
                created_at: now,
                updated_at: now,
                completed_at: None,
                test: false,
            };
            (delivery, d.event, d.hook)
        })
        .collect();
    FanOut { events: events.len(), created: created.len(), leased, event_rows: events, hooks }
}

const INSERT_ATTEMPTS: &str = "INSERT INTO delivery_attempts (id, delivery_id, attempt, attempted_at, status_code, \
    latency_ms, response_headers, response_body, error, next_attempt_at) ";

/// The `UPDATE` of attempted deliveries, before its `VALUES` ([`delivery_update_row`]) and
/// [`UPDATE_DELIVERIES_TAIL`]; `VALUES` columns are named column1.. on both backends.
const UPDATE_DELIVERIES: &str = "UPDATE deliveries SET status = v.column2, attempts = v.column3, \
    next_attempt_at = v.column4, lease_owner = NULL, lease_expires_at = NULL, last_status_code = v.column5, \
    last_error = v.column6, updated_at = v.column7, completed_at = v.column8 FROM (";

/// An endpoint answered: `(at, id, at)` (parameters in order, so SQLite's group writer can
/// take it). Never moves `last_success_at` back.
const HEALTHY: &str = "UPDATE webhooks SET last_success_at = $1, failing_since = NULL WHERE id = $2 \
    AND (last_success_at IS NULL OR last_success_at < $3)";
/// An endpoint started failing: `(since, id)`.
const FAILING: &str = "UPDATE webhooks SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL";

/// A row of [`INSERT_ATTEMPTS`]: the attempt of `r`. One list for every way the row is written
/// (a `QueryBuilder` on either backend, a SQLite script).
fn attempt_row(r: &AttemptRecord) -> [Arg; 10] {
    let a = &r.attempt;
    [
        Arg::from(&a.id),
        Arg::from(&a.delivery_id),
        Arg::from(a.attempt),
        Arg::from(a.attempted_at),
        Arg::from(a.status_code),
        Arg::from(a.latency_ms),
        Arg::Json(serde_json::to_value(&a.response_headers.0).unwrap_or_default()),
        Arg::from(&a.response_body),
        Arg::from(&a.error),
        Arg::from(a.next_attempt_at),
    ]
}

/// A row of [`UPDATE_DELIVERIES`]'s `VALUES`: the delivery's state after the attempt of `r`.
fn delivery_update_row(r: &AttemptRecord) -> [Arg; 8] {
    let a = &r.attempt;
    let completed = (r.new_status != crate::vocab::DeliveryStatus::Pending).then_some(a.attempted_at);
    [
        Arg::from(&a.delivery_id),
        Arg::from(r.new_status.as_str()),
        Arg::from(a.attempt),
        Arg::from(a.next_attempt_at),
        Arg::from(a.status_code),
        Arg::from(&a.error),
        Arg::from(a.attempted_at),
        Arg::from(completed),
    ]
}

/// The `FROM (VALUES ..)` of [`UPDATE_DELIVERIES`] is closed and joined by this.
const UPDATE_DELIVERIES_TAIL: &str = ") AS v WHERE deliveries.id = v.column1";

/// Pushes `row(r)` for each of `records` as the `VALUES` of a `QueryBuilder` (a macro: the
/// builder's backend varies).
macro_rules! push_rows {
    ($q:expr, $records:expr, $row:expr) => {
        $q.push_values($records, |mut b, r| {
            for arg in $row(r) {
                crate::store::script::push_arg!(b, arg);
            }
        })
    };
}

/// A multi-row `head VALUES (..), (..)` of `rows`, parameters `$1..` in order (for a
/// [`Script`], whose SQLite form binds them as `?`); `literals` close each row (values every
/// row shares, written into the statement).
fn multi_row<const N: usize>(
    head: &str,
    rows: impl ExactSizeIterator<Item = [Arg; N]>,
    literals: &str,
) -> (String, Vec<Arg>) {
    let mut sql = format!("{head}VALUES ");
    let mut args = Vec::with_capacity(rows.len() * N);
    for (i, row) in rows.enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        sql.push_str(&script::numbered(i * N + 1, N));
        sql.push_str(literals);
        sql.push(')');
        args.extend(row);
    }
    (sql, args)
}

/// Whether a batch of results is the usual kind, written in one go (see
/// [`record_attempts_statement`], [`record_attempts_script`]): not too large for one
/// statement's parameters, disabling no endpoint (its event is written only if the change
/// finds it active, which needs a transaction in code), writing no event, and changing each
/// endpoint's health once (two changes of one row in one PostgreSQL statement would not both
/// hold).
fn usual_results(records: &[&AttemptRecord], health: &[EndpointHealth], events: &[&NewEvent]) -> bool {
    let two_changes = |h: &EndpointHealth| h.last_success_at.is_some() && matches!(h.failing_since, Some(Some(_)));
    records.len() <= INSERT_CHUNK && events.is_empty() && !health.iter().any(|h| h.disable.is_some() || two_changes(h))
}

/// PostgreSQL: a usual batch of results as one statement (data-modifying `WITH` queries),
/// which runs as its own transaction: one round trip where `BEGIN`, the insert, the update, a
/// health update per endpoint and `COMMIT` took five or more, most of the database's work per
/// event at low load.
fn record_attempts_statement(
    records: &[&AttemptRecord],
    health: &[EndpointHealth],
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let mut q = sqlx::QueryBuilder::new("WITH attempts AS (");
    q.push(INSERT_ATTEMPTS);
    push_rows!(q, records, attempt_row);
    q.push(")");
    for (i, h) in health.iter().enumerate() {
        if let Some(at) = h.last_success_at {
            q.push(format_args!(", health{i} AS (UPDATE webhooks SET last_success_at = "))
                .push_bind(at)
                .push(", failing_since = NULL WHERE id = ")
                .push_bind(&h.webhook_id)
                .push(" AND (last_success_at IS NULL OR last_success_at < ")
                .push_bind(at)
                .push("))");
        } else if let Some(Some(since)) = h.failing_since {
            q.push(format_args!(", health{i} AS (UPDATE webhooks SET failing_since = "))
                .push_bind(since)
                .push(" WHERE id = ")
                .push_bind(&h.webhook_id)
                .push(" AND failing_since IS NULL)");
        }
    }
    q.push(" ").push(UPDATE_DELIVERIES);
    push_rows!(q, records, delivery_update_row);
    q.push(UPDATE_DELIVERIES_TAIL);
    q
}

/// SQLite: a usual batch of results as a [`Script`], committed by the group writer with the
/// publishes and fan-outs waiting beside it: one hand-off to SQLite's thread and a share of one
/// disk flush, where a transaction of its own took six hand-offs and a flush.
fn record_attempts_script(records: &[&AttemptRecord], health: &[EndpointHealth]) -> Script {
    let mut script = Script::default();
    let (sql, args) = multi_row(INSERT_ATTEMPTS, records.iter().map(|r| attempt_row(r)), "");
    script.push(sql, args);
    let (mut sql, args) = multi_row(UPDATE_DELIVERIES, records.iter().map(|r| delivery_update_row(r)), "");
    sql.push_str(UPDATE_DELIVERIES_TAIL);
    script.push(sql, args);
    for h in health {
        if let Some(at) = h.last_success_at {
            script.push(HEALTHY, vec![at.into(), (&h.webhook_id).into(), at.into()]);
        } else if let Some(Some(since)) = h.failing_since {
            script.push(FAILING, vec![since.into(), (&h.webhook_id).into()]);
        }
    }
    script
}

impl Store {
    /// Turns up to `limit` not-yet-fanned-out events into deliveries, one per active endpoint
    /// that `matches`, and marks the events fanned out, all in one transaction: the one-call
    /// form of [`Store::plan_fan_out`] and [`Store::write_fan_out`] (the dispatcher uses the
    /// two steps, to send while the rows are written).
    ///
    /// Each new delivery for which `lease.take` says yes is created already leased to
    /// `lease.node` (the caller sends it at once, from memory, without claiming it again); the
    /// others are created due now, for any node to claim. Either way the row exists before
    /// anything is sent, so a crash loses nothing: an unsent leased delivery is claimed again
    /// when its lease runs out.
    pub async fn fan_out(
        &self,
        limit: i64,
        now: DateTime<Utc>,
        lease: &mut Lease<'_>,
        matches: impl Fn(&Webhook, &EventRow) -> bool,
    ) -> StoreResult<FanOut> {
        let Some(planned) = self.plan_fan_out(None, limit, now, lease, matches).await? else {
            return Ok(FanOut::default());
        };
        self.write_fan_out(planned.write).await?;
        Ok(planned.out)
    }

    /// [`Store::fan_out`] in two steps, so the dispatcher can send the leased deliveries
    /// while their rows are written ([`Store::write_fan_out`]), not after: with a durable
    /// setting that write is a disk flush, most of the time from publish to arrival at low
    /// load. `None` when there is nothing to fan out.
    ///
    /// - **SQLite**: one node per database, one writer, and one dispatcher that writes its
    ///   plans in order, one at a time: the events after the cursor, or after `after` when
    ///   that is further (the last event of a plan not written yet), are exactly those not
    ///   fanned out (migration 0003); they are read outside the write transaction, and the
    ///   writes join the group commit.
    /// - **PostgreSQL**: several nodes may share the database: each takes (and removes) the
    ///   queued events it locks (migration postgres/0003); the plan is a transaction left
    ///   open, in which the write inserts the deliveries and commits, and a rollback puts the
    ///   events back. `after` is not
    ///   needed: another plan skips the rows this one locked.
    pub async fn plan_fan_out(
        &self,
        after: Option<i64>,
        limit: i64,
        now: DateTime<Utc>,
        lease: &mut Lease<'_>,
        matches: impl Fn(&Webhook, &EventRow) -> bool,
    ) -> StoreResult<Option<PlannedFanOut>> {
        match self.backend() {
            Backend::Sqlite { read, .. } => {
                let select = format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE seq > MAX((SELECT seq FROM fanout_cursor WHERE id = 1), $1) \
                     ORDER BY seq LIMIT {limit}"
                );
                let events = sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(select))
                    .bind(after.unwrap_or(0))
                    .fetch_all(read)
                    .await?;
                let Some(last_seq) = events.last().map(|e| e.seq) else { return Ok(None) };
                let hooks = sqlx::query_as::<_, Webhook>(ACTIVE_WEBHOOKS).fetch_all(read).await?;
                let created = plan_deliveries(&events, &hooks, lease, &matches);
                let mut script = Script::default();
                for chunk in created.chunks(INSERT_CHUNK) {
                    let (sql, args) = insert_deliveries(chunk, &events, &hooks, now, lease);
                    script.push(sql, args);
                }
                // Never backwards: a plan is written only after the one before it.
                script.push("UPDATE fanout_cursor SET seq = MAX(seq, $1) WHERE id = 1", vec![Arg::from(last_seq)]);
                let out = fanned_out(events, hooks, created, now, lease);
                Ok(Some(PlannedFanOut { out, write: FanOutWrite(Write::Script(script)) }))
            }
            Backend::Postgres(pool) => {
                // The pick is a materialized CTE, run once: as `DELETE ... WHERE seq IN (SELECT
                // ... LIMIT n)` the plan could run the subquery again, and a batch of 500 took
                // up to 3,700 events in one 3.6 s statement (seen in the benchmark's log).
                let select = format!(
                    "WITH picked AS MATERIALIZED (SELECT seq FROM outbox_pending ORDER BY seq LIMIT {limit} \
                     FOR UPDATE SKIP LOCKED), \
                     taken AS (DELETE FROM outbox_pending q USING picked WHERE q.seq = picked.seq RETURNING q.seq) \
                     SELECT {EVENT_COLUMNS} FROM events WHERE seq IN (SELECT seq FROM taken) ORDER BY seq"
                );
                // The queue swings from empty to tens of thousands of rows within a second, so
                // the planner's row count for it is always stale; taking it for small, it
                // sorted the whole queue for each batch (90 ms at 20,000 rows). The index on
                // `seq` is the right path at every size. The setting is left for the rest of
                // the transaction (resetting it was a round trip of its own): the inserts and
                // their key checks use indexes anyway, and the endpoint list, which only a
                // scan can read, is scanned anyway (its cost is then estimated as huge: see
                // `jit` in `Store::connect`).
                //
                // `BEGIN`, the setting, the pick and the endpoint list go in one round trip
                // (see `OpenTransaction`): they are all that stands between a commit and its
                // first send.
                let statements = format!("BEGIN; SET LOCAL enable_seqscan = off; {select}; {ACTIVE_WEBHOOKS}");
                let (tx, results) = OpenTransaction::begin_reading(pool, &statements).await?;
                let [_, _, events, hooks]: [Vec<PgRow>; 4] = results.try_into().map_err(|r: Vec<_>| {
                    StoreError::Db(sqlx::Error::Protocol(format!("the fan-out read {} results, not 4", r.len())))
                })?;
                if events.is_empty() {
                    return Ok(None);
                }
                let events = events.iter().map(EventRow::from_row).collect::<Result<Vec<_>, _>>()?;
                let hooks = hooks.iter().map(Webhook::from_row).collect::<Result<Vec<_>, _>>()?;
                let created = plan_deliveries(&events, &hooks, lease, &matches);
                let inserts = created
                    .chunks(INSERT_CHUNK)
                    .map(|chunk| insert_deliveries(chunk, &events, &hooks, now, lease))
                    .collect();
                let out = fanned_out(events, hooks, created, now, lease);
                Ok(Some(PlannedFanOut { out, write: FanOutWrite(Write::Transaction(tx, inserts)) }))
            }
        }
    }

    /// How many plans of [`Store::plan_fan_out`] may be written at once. SQLite: one, in
    /// order (each starts after the one before, and its cursor must not pass a plan not
    /// written). PostgreSQL: each is its own transaction on its own connection, so a few,
    /// bounded to leave the pool to the API.
    pub fn fan_out_writes_at_once(&self) -> usize {
        match self.backend() {
            Backend::Sqlite { .. } => 1,
            Backend::Postgres(_) => 4,
        }
    }

    /// Writes a plan of [`Store::plan_fan_out`]: its deliveries, and its events marked fanned out.
    pub async fn write_fan_out(&self, write: FanOutWrite) -> StoreResult<()> {
        match write.0 {
            Write::Script(script) => {
                self.run_script(script).await?;
            }
            Write::Transaction(mut tx, inserts) => {
                for (sql, args) in inserts {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
                    for arg in args {
                        q = crate::store::script::bind_arg!(q, arg);
                    }
                    q.execute(tx.conn()).await?;
                }
                tx.commit().await?
            }
        }
        Ok(())
    }

    /// Claims up to `limit` due deliveries for `node` until `lease_until`. A delivery whose
    /// lease ran out (its node died) is due again.
    /// Deliveries to the endpoints in `skip` (this node has enough of theirs in hand) are
    /// left for later or for other nodes.
    pub async fn claim_deliveries(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
        skip: &[String],
    ) -> StoreResult<Vec<Delivery>> {
        with_pool!(self, write, |pool| {
            let mut q = query_builder(pool, "UPDATE deliveries SET lease_owner = ");
            q.push_bind(node).push(", lease_expires_at = ").push_bind(lease_until);
            q.push(" WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ");
            q.push_bind(now).push(" AND (lease_expires_at IS NULL OR lease_expires_at <= ").push_bind(now).push(")");
            if !skip.is_empty() {
                q.push(" AND webhook_id NOT IN (");
                let mut list = q.separated(", ");
                for id in skip {
                    list.push_bind(id);
                }
                q.push(")");
            }
            q.push(format_args!(" ORDER BY next_attempt_at LIMIT {limit}{}) RETURNING *", lock_clause(self.backend())));
            Ok(q.build_query_as::<Delivery>().fetch_all(pool).await?)
        })
    }

    /// Vacuums PostgreSQL's outbox queue (`outbox_pending`, migration postgres/0003), so the
    /// fan-out scan reads a few live pages rather than every event taken since autovacuum
    /// last ran (it looks at a table once a minute at most; at 1,000 events/s the queue then
    /// spans hundreds of pages and a fan-out took milliseconds). Cheap on a table this small;
    /// skipped while another node vacuums it. SQLite keeps no queue.
    pub async fn vacuum_outbox(&self) -> StoreResult<()> {
        if let Backend::Postgres(pool) = self.backend() {
            sqlx::query("VACUUM (SKIP_LOCKED, TRUNCATE FALSE) outbox_pending").execute(pool).await?;
        }
        Ok(())
    }

    /// Extends every lease `node` holds on a pending delivery to `until`.
    ///
    /// On PostgreSQL, rows locked by someone else are skipped, not waited for: they are being
    /// recorded as attempted (their lease ends anyway) or claimed after their lease ran out.
    /// Waiting made a deadlock with `record_attempts`, which locks the same rows in another
    /// order (seen in the sustained benchmark).
    pub async fn renew_leases(&self, node: &str, until: DateTime<Utc>) -> StoreResult<u64> {
        let sql = format!(
            "UPDATE deliveries SET lease_expires_at = $1 WHERE id IN (SELECT id FROM deliveries \
             WHERE lease_owner = $2 AND status = 'pending' AND lease_expires_at < $1{})",
            lock_clause(self.backend())
        );
        with_pool!(self, write, |pool| {
            let done = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(until).bind(node).execute(pool).await?;
            Ok(done.rows_affected())
        })
    }

    pub async fn events_by_ids(&self, ids: &[String]) -> StoreResult<Vec<EventRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_pool!(self, read, |pool| {
            let mut q = query_builder(pool, &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id IN ("));
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(id);
            }
            q.push(")");
            Ok(q.build_query_as::<EventRow>().fetch_all(pool).await?)
        })
    }

    /// Writes a batch of attempt results, endpoint health changes and the operational events
    /// they caused, in one transaction: one multi-row `INSERT` of attempts and one `UPDATE` of
    /// their deliveries per chunk, not a statement per row.
    pub async fn record_attempts(
        &self,
        records: &[&AttemptRecord],
        health: &[EndpointHealth],
        events: &[&NewEvent],
    ) -> StoreResult<()> {
        if usual_results(records, health, events) {
            let _timer = self.metrics().db_timer("write");
            match self.backend() {
                Backend::Postgres(pool) => {
                    record_attempts_statement(records, health).build().persistent(false).execute(pool).await?;
                }
                Backend::Sqlite { .. } => {
                    self.run_script(record_attempts_script(records, health)).await?;
                }
            }
            self.notify_events();
            return Ok(());
        }
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            for chunk in records.chunks(INSERT_CHUNK) {
                let mut q = query_builder(pool, INSERT_ATTEMPTS);
                push_rows!(q, chunk, attempt_row);
                q.build().persistent(false).execute(&mut *tx).await?;
                let mut q = query_builder(pool, UPDATE_DELIVERIES);
                push_rows!(q, chunk, delivery_update_row);
                q.push(UPDATE_DELIVERIES_TAIL);
                q.build().persistent(false).execute(&mut *tx).await?;
            }
            for h in health {
                if let Some(at) = h.last_success_at {
                    sqlx::query(HEALTHY).bind(at).bind(&h.webhook_id).bind(at).execute(&mut *tx).await?;
                }
                if let Some(Some(since)) = h.failing_since {
                    sqlx::query(FAILING).bind(since).bind(&h.webhook_id).execute(&mut *tx).await?;
                }
                if let Some(disable) = &h.disable {
                    // Conditional, so exactly one change disables it: concurrent writers (other
                    // nodes) wait for this row's lock and then find it inactive.
                    let done = sqlx::query(
                        "UPDATE webhooks SET active = FALSE, disabled_reason = $1, disabled_at = $2, updated_at = $2 \
                         WHERE id = $3 AND active = TRUE",
                    )
                    .bind(&disable.reason)
                    .bind(crate::store::now())
                    .bind(&h.webhook_id)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 1 {
                        crate::store::events::insert_event!(&mut *tx, &disable.event)?;
                    }
                }
            }
            for e in events {
                crate::store::events::insert_event!(&mut *tx, e)?;
            }
            tx.commit().await?;
            self.notify_events();
            Ok(())
        })
    }

    /// Makes a delivery due now again (manual retry): its retry schedule starts over, its
    /// attempts keep counting (their numbers continue).
    pub async fn retry_delivery_now(&self, project_id: &str, id: &str, now: DateTime<Utc>) -> StoreResult<Delivery> {
        let delivery = with_pool!(self, write, |pool| {
            sqlx::query_as::<_, Delivery>(
                "UPDATE deliveries SET status = 'pending', schedule_from = attempts, next_attempt_at = $1, lease_owner = NULL, \
                 lease_expires_at = NULL, completed_at = NULL, updated_at = $1 \
                 WHERE project_id = $2 AND id = $3 RETURNING *",
            )
            .bind(now)
            .bind(project_id)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .ok_or(StoreError::NotFound("delivery"))
        })?;
        self.notify_events();
        Ok(delivery)
    }

    /// Queues a new delivery to `webhook` for every event of its project in `[since, until)`
    /// that `matches` (for `only_failed`: only events whose last delivery to it failed).
    pub async fn replay(
        &self,
        webhook: &Webhook,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        only_failed: bool,
        now: DateTime<Utc>,
        matches: impl Fn(&Webhook, &EventRow) -> bool,
    ) -> StoreResult<usize> {
        let select = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE project_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
             ORDER BY seq"
        );
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let events = sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(select))
                .bind(&webhook.project_id)
                .bind(since)
                .bind(until)
                .fetch_all(&mut *tx)
                .await?;
            let mut queued = 0;
            for event in events.iter().filter(|e| matches(webhook, e)) {
                if only_failed {
                    let failed: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM deliveries WHERE webhook_id = $1 AND event_id = $2 AND status = 'failed' \
                         AND NOT EXISTS (SELECT 1 FROM deliveries d2 WHERE d2.webhook_id = $1 AND d2.event_id = $2 \
                         AND d2.status <> 'failed')",
                    )
                    .bind(&webhook.id)
                    .bind(&event.id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if failed == 0 {
                        continue;
                    }
                }
                sqlx::query(INSERT_DELIVERY)
                    .bind(crate::store::new_id())
                    .bind(&webhook.project_id)
                    .bind(&webhook.id)
                    .bind(&event.id)
                    .bind(event.seq)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                queued += 1;
            }
            tx.commit().await?;
            self.notify_events();
            Ok(queued)
        })
    }

    /// How many deliveries are pending, and the oldest pending one's due time.
    pub async fn pending_deliveries(&self) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        with_pool!(self, read, |pool| {
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'").fetch_one(pool).await?;
            let oldest: Option<DateTime<Utc>> =
                sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'")
                    .fetch_one(pool)
                    .await?;
            Ok((count, oldest))
        })
    }
}
