//! A PostgreSQL transaction begun in the same round trip as the queries that read in it.
//!
//! sqlx's `Transaction` sends `BEGIN` on a round trip of its own, and a custom `BEGIN`
//! statement's rows are read and thrown away; nothing in sqlx reads rows in the round trip
//! that begins a transaction. The dispatcher's fan-out begins one, takes events from the queue
//! and reads the endpoints before it can send anything: three round trips between a publish
//! and its delivery, each a wait for PostgreSQL to be scheduled on a busy machine. As one
//! multi-statement simple query (`sqlx::raw_sql`) they are one. This type then does by hand
//! what `Transaction` does: commits on request, and rolls back what is dropped unfinished.

use futures_util::TryStreamExt;
use sqlx::{
    Either, PgConnection, Postgres,
    pool::PoolConnection,
    postgres::{PgPool, PgRow},
};

use super::StoreResult;

pub(crate) struct OpenTransaction {
    /// `None` once committed or handed to the rollback.
    conn: Option<PoolConnection<Postgres>>,
}

impl OpenTransaction {
    /// Runs `statements` (no parameters: one simple query), the first of which is `BEGIN`,
    /// and returns the rows of each statement, in order: one list per statement, empty for
    /// those that return none.
    pub(crate) async fn begin_reading(
        pool: &PgPool,
        statements: &str,
    ) -> StoreResult<(OpenTransaction, Vec<Vec<PgRow>>)> {
        debug_assert!(statements.trim_start().starts_with("BEGIN"));
        let mut open = OpenTransaction { conn: Some(pool.acquire().await?) };
        let mut results = Vec::new();
        let mut rows = Vec::new();
        let mut stream = sqlx::raw_sql(sqlx::AssertSqlSafe(statements.to_owned())).fetch_many(open.conn());
        while let Some(item) = stream.try_next().await? {
            match item {
                Either::Right(row) => rows.push(row),
                // A statement is complete.
                Either::Left(_) => results.push(std::mem::take(&mut rows)),
            }
        }
        drop(stream);
        Ok((open, results))
    }

    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        match self.conn.as_mut() {
            Some(conn) => conn,
            None => unreachable!("an OpenTransaction is used only until it is committed"),
        }
    }

    pub(crate) async fn commit(mut self) -> StoreResult<()> {
        sqlx::raw_sql("COMMIT").execute(self.conn()).await?;
        self.conn = None;
        Ok(())
    }
}

impl Drop for OpenTransaction {
    /// Rolls back in the background (`Transaction` queues its `ROLLBACK` the same way, to be
    /// sent before the connection's next use); with no runtime left, closes the connection,
    /// which ends the transaction on the server.
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_err() {
                        conn.close_on_drop();
                    }
                });
            }
            Err(_) => conn.close_on_drop(),
        }
    }
}
