//! Word between the nodes of a cluster for the real-time feed: "events were committed here"
//! (so the others read the outbox now rather than at their next poll) and typing notes (not
//! stored). On PostgreSQL they travel as notifications on two channels (`pg_notify`, and a
//! `PgListener` per node); a SQLite database has one node, so there is no one to tell.
//! Notifications carry no event data (events are read from the table; the payload of "events
//! were committed" is only the sending node's random id), so PostgreSQL's 8000-byte payload
//! limit does not apply to them.

use std::{sync::Arc, time::Duration};

use tokio::{sync::mpsc, task::JoinHandle};

use sqlx::Row;

use super::{
    Backend, Store, StoreResult,
    events::{self, FeedCursor},
};

/// Notification channels: "new events were committed" and typing notes.
const EVENTS_CHANNEL: &str = "herald_events";
const TYPING_CHANNEL: &str = "herald_typing";
/// Notices waiting to be taken. A feed this far behind loses notices: typing notes, or a
/// wake-up, whose events its next poll (`realtime.poll_interval_ms`) then finds.
const QUEUE: usize = 1024;

/// What another node said.
#[derive(Debug)]
pub enum NodeNotice {
    /// Events may have been committed that this node has not read: another node committed
    /// some, or the notification connection was (re)opened and some may have been missed.
    EventsCommitted,
    /// A typing note, as [`Store::share_typing`] was given it.
    Typing(String),
}

/// The other nodes' notices, followed until this is dropped.
pub struct NodeNotices {
    rx: mpsc::Receiver<NodeNotice>,
    task: JoinHandle<()>,
}

impl NodeNotices {
    /// The next notice; `None` once the database is closed.
    pub async fn recv(&mut self) -> Option<NodeNotice> {
        self.rx.recv().await
    }
}

impl Drop for NodeNotices {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Store {
    /// Follows the other nodes' notices, or `None` when there can be no other node (SQLite).
    /// Reconnects after a lost connection.
    pub fn node_notices(&self) -> Option<NodeNotices> {
        let Backend::Postgres(pool) = self.backend() else { return None };
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(listen(pool.clone(), self.node_id.clone(), tx));
        Some(NodeNotices { rx, task })
    }

    /// Tells the other nodes that events were committed on this one; they read them from the
    /// table themselves. Best effort: their poll finds what a lost notification announced.
    pub async fn announce_events(&self) {
        if let Backend::Postgres(pool) = self.backend() {
            let _ =
                sqlx::query("SELECT pg_notify($1, $2)").bind(EVENTS_CHANNEL).bind(&*self.node_id).execute(pool).await;
        }
    }

    /// [`Store::announce_events`] and [`Store::feed_start`] in one round trip: what the feed
    /// of a node with no socket does after this node committed events (at one event per
    /// request, the two statements were a third of the database's statements).
    pub async fn announce_events_and_feed_start(&self) -> StoreResult<FeedCursor> {
        let Backend::Postgres(pool) = self.backend() else { return self.feed_start().await };
        let sql = format!("SELECT {}, pg_notify($1, $2)", events::SNAPSHOT_XMIN);
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(EVENTS_CHANNEL).bind(&*self.node_id).fetch_one(pool).await?;
        let xmin = events::parse_xmin(&row.try_get::<String, _>(0)?)?;
        Ok(FeedCursor::at_xmin(xmin))
    }

    /// Sends a typing note to the other nodes; best effort, as typing notes are.
    pub async fn share_typing(&self, note: &str) {
        if let Backend::Postgres(pool) = self.backend() {
            let _ = sqlx::query("SELECT pg_notify($1, $2)").bind(TYPING_CHANNEL).bind(note).execute(pool).await;
        }
    }
}

/// Follows the notifications; `own`: the payload of this node's own word about events, which
/// comes back to it too and is not news (its own commits wake its readers directly): at one
/// event per request, reading again after each was a quarter of the feed's queries.
async fn listen(pool: sqlx::PgPool, own: Arc<str>, tx: mpsc::Sender<NodeNotice>) {
    let wake = |tx: &mpsc::Sender<NodeNotice>| {
        let _ = tx.try_send(NodeNotice::EventsCommitted);
    };
    while !pool.is_closed() {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(_) if pool.is_closed() => return,
            Err(e) => {
                tracing::warn!(error = %e, "real-time feed cannot listen for other nodes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen_all([EVENTS_CHANNEL, TYPING_CHANNEL]).await {
            tracing::warn!(error = %e, "real-time feed cannot listen for other nodes; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Whatever was committed while the connection was down is found by this read.
        wake(&tx);
        loop {
            match listener.recv().await {
                Ok(n) if n.channel() == EVENTS_CHANNEL => {
                    if n.payload() != &*own {
                        wake(&tx);
                    }
                }
                Ok(n) => {
                    let _ = tx.try_send(NodeNotice::Typing(n.payload().to_owned()));
                }
                Err(_) if pool.is_closed() => return,
                Err(e) => {
                    tracing::warn!(error = %e, "real-time feed lost its notification connection");
                    wake(&tx);
                    break;
                }
            }
        }
    }
}
