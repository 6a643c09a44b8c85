//! The real-time feed: follows the outbox on every node and hands each committed event to
//! the sockets [`route::plan`] names.
//!
//! Every node reads the whole outbox itself (`Store::feed_next`), so an event written on any
//! node reaches sockets on all of them, and it is read only after its transaction committed.
//! Reading is woken three ways: by this node's own commits (`Store::events_written`), by the
//! PostgreSQL notification `herald_events` that other nodes send after theirs, and by a poll
//! (`realtime.poll_interval_ms`) should a notification be lost. Notifications carry no data
//! (events are read from the table), so PostgreSQL's 8000-byte payload limit does not apply.
//!
//! Events are handed out one at a time, in outbox order, so a channel's messages reach each
//! socket in order.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use serde_json::{Value, value::RawValue};
use socketioxide::{SendError, SocketError, SocketIo, extract::SocketRef};
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};

use super::{Gateway, Slow, route};
use crate::{
    store::{
        Backend,
        events::{EventRow, FeedCursor},
    },
    webhooks::envelope_body,
};

/// Events read per query.
const BATCH: i64 = 500;
/// PostgreSQL notification channels: "new events were committed" and typing notes.
const EVENTS_CHANNEL: &str = "herald_events";
const TYPING_CHANNEL: &str = "herald_typing";
/// After a wake-up on PostgreSQL, how long to keep looking often: an event is readable only
/// once every older transaction has ended, which may be a moment after its own commit.
const HURRY_FOR: Duration = Duration::from_millis(250);
const HURRY_EVERY: Duration = Duration::from_millis(10);

/// Starts the feed; it runs until `stop` turns true.
pub fn spawn(io: SocketIo, gw: Arc<Gateway>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(run(io, gw, stop))
}

async fn run(io: SocketIo, gw: Arc<Gateway>, mut stop: watch::Receiver<bool>) {
    let store = gw.app.store.clone();
    let poll = Duration::from_millis(gw.app.config.realtime.poll_interval_ms.max(10));
    let local = store.events_written();
    let remote = Arc::new(Notify::new());
    let postgres = match store.backend() {
        Backend::Postgres(pool) => Some(pool.clone()),
        Backend::Sqlite { .. } => None,
    };
    let listener = postgres.clone().map(|pool| tokio::spawn(listen(pool, io.clone(), gw.clone(), remote.clone())));
    let mut cursor = loop {
        match store.feed_start().await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "real-time feed cannot start; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    let mut hurry_until = Instant::now();
    while !*stop.borrow() {
        cursor = drain(&io, &gw, cursor).await;
        let wait = if postgres.is_some() && Instant::now() < hurry_until { HURRY_EVERY } else { poll };
        tokio::select! {
            _ = local.realtime.notified() => {
                hurry_until = Instant::now() + HURRY_FOR;
                if let Some(pool) = &postgres {
                    // Tell the other nodes; they read the events from the table themselves.
                    let _ = sqlx::query("SELECT pg_notify($1, '')").bind(EVENTS_CHANNEL).execute(pool).await;
                }
            }
            _ = remote.notified() => hurry_until = Instant::now() + HURRY_FOR,
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
    if let Some(l) = listener {
        l.abort();
    }
}

/// Hands out every event committed since `cursor`; returns where it got to.
async fn drain(io: &SocketIo, gw: &Gateway, mut cursor: FeedCursor) -> FeedCursor {
    loop {
        match gw.app.store.feed_next(cursor, BATCH).await {
            Ok((events, next)) => {
                cursor = next;
                if events.is_empty() {
                    return cursor;
                }
                for event in &events {
                    deliver(io, gw, event).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "real-time feed cannot read the outbox; retrying");
                return cursor;
            }
        }
    }
}

/// Carries out the route of one event.
pub(crate) async fn deliver(io: &SocketIo, gw: &Gateway, event: &EventRow) {
    let steps = route::plan(event);
    if steps.is_empty() {
        return;
    }
    // Serialized once, copied into each socket's packet.
    let envelope = String::from_utf8(envelope_body(event)).ok().and_then(|s| RawValue::from_string(s).ok());
    let mut message: Option<Value> = None;
    let mut alias: Option<Value> = None;
    for step in steps {
        match step {
            route::Step::Emit { rooms, name, payload } => {
                let sockets = io.to(rooms).sockets();
                if sockets.is_empty() {
                    continue;
                }
                match payload {
                    route::Payload::Envelope => {
                        if let Some(envelope) = &envelope {
                            emit_each(gw, &sockets, &name, envelope.as_ref());
                        }
                    }
                    route::Payload::Alias => {
                        let alias = alias.get_or_insert_with(|| {
                            let envelope = serde_json::from_slice(&envelope_body(event)).unwrap_or(Value::Null);
                            route::alias_json(envelope, event)
                        });
                        emit_each(gw, &sockets, &name, &*alias);
                    }
                    route::Payload::Message => {
                        let message = message.get_or_insert_with(|| route::message_json(&event.data.0));
                        emit_each(gw, &sockets, &name, &*message);
                    }
                }
            }
            route::Step::Join { of, room } => {
                let _ = io.to(of).join(room).await;
            }
            route::Step::Leave { of, room } => {
                let _ = io.to(of).leave(room).await;
            }
            route::Step::Disconnect { room } => {
                let _ = io.to(room).disconnect().await;
            }
        }
    }
}

/// Emits to each socket on its own, so one too slow to read (its buffer full) is found and
/// disconnected rather than left to grow. If the buffer is too full to take even the
/// disconnect, the next heartbeat ping fails the same way and engine.io closes it then.
pub(crate) fn emit_each<T: serde::Serialize + ?Sized>(gw: &Gateway, sockets: &[SocketRef], name: &str, data: &T) {
    let mut sent = 0;
    for s in sockets {
        match s.emit(name, data) {
            Ok(()) => sent += 1,
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                let first = s.extensions.get::<Slow>().is_none_or(|slow| !slow.0.swap(true, Ordering::Relaxed));
                if first {
                    gw.stats.dropped_slow.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(sid = %s.id, "disconnecting a socket too slow to read");
                }
                let _ = s.clone().disconnect();
            }
            Err(_) => {}
        }
    }
    gw.stats.messages_out.fetch_add(sent, Ordering::Relaxed);
}

/// Follows PostgreSQL notifications: other nodes' commits wake the feed; their typing notes
/// are shown to this node's sockets. Reconnects after a lost connection.
async fn listen(pool: sqlx::PgPool, io: SocketIo, gw: Arc<Gateway>, wake: Arc<Notify>) {
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
        wake.notify_one();
        loop {
            match listener.recv().await {
                Ok(n) if n.channel() == EVENTS_CHANNEL => wake.notify_one(),
                Ok(n) => typing_from_elsewhere(&io, &gw, n.payload()),
                Err(_) if pool.is_closed() => return,
                Err(e) => {
                    tracing::warn!(error = %e, "real-time feed lost its notification connection");
                    wake.notify_one();
                    break;
                }
            }
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TypingNote {
    node: String,
    room: String,
    note: Value,
}

/// Sends a typing note to the other nodes (PostgreSQL); SQLite has no other nodes.
pub(crate) async fn share_typing(gw: &Gateway, room: &str, note: &Value, _from: &SocketRef) {
    if let Backend::Postgres(pool) = gw.app.store.backend() {
        let payload = TypingNote { node: gw.node_id.clone(), room: room.to_owned(), note: note.clone() };
        let payload = serde_json::to_string(&payload).unwrap_or_default();
        let _ = sqlx::query("SELECT pg_notify($1, $2)").bind(TYPING_CHANNEL).bind(payload).execute(pool).await;
    }
}

fn typing_from_elsewhere(io: &SocketIo, gw: &Gateway, payload: &str) {
    let Ok(t) = serde_json::from_str::<TypingNote>(payload) else { return };
    if t.node == gw.node_id {
        return;
    }
    let sockets = io.to(t.room).sockets();
    emit_each(gw, &sockets, "typing", &t.note);
}
