//! The real-time feed: follows the outbox on every node and hands each committed event to
//! the sockets [`route::plan`] names.
//!
//! Every node reads the whole outbox itself (`Store::feed_next`), so an event written on any
//! node reaches sockets on all of them, and it is read only after its transaction committed.
//! Reading is woken three ways: by this node's own commits (`Store::events_written`), by the
//! word other nodes send after theirs (`Store::node_notices`; PostgreSQL notifications, which
//! carry no data), and by a poll (`realtime.poll_interval_ms`) should a notification be lost.
//!
//! Events are handed out one at a time, in outbox order, so a channel's messages reach each
//! socket in order.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use serde_json::{Value, value::RawValue};
use socketioxide::{BroadcastError, SendError, SocketError, SocketIo};
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};

use super::{Gateway, route};
use crate::{
    store::{
        events::{EventRow, FeedCursor},
        nodes::{NodeNotice, NodeNotices},
    },
    webhooks::envelope_body,
};

/// Events read per query.
const BATCH: i64 = 500;
/// After a wake-up in a cluster, how long to keep looking often: there an event is readable
/// only once every older transaction has ended, which may be a moment after its own commit.
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
    // Where other nodes can commit events (one database shared by a cluster), follow their word.
    let notices = store.node_notices();
    let clustered = notices.is_some();
    let follower = notices.map(|n| tokio::spawn(follow(n, io.clone(), gw.clone(), remote.clone())));
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
    // This node committed events: the other nodes are told before anything is read.
    let mut announce = false;
    while !*stop.borrow() {
        cursor = if gw.stats.connected.load(Ordering::SeqCst) > 0 {
            if announce {
                store.announce_events().await;
            }
            drain(&io, &gw, cursor).await
        } else {
            skip_to_now(&gw, cursor, announce).await
        };
        announce = false;
        let wait = if clustered && Instant::now() < hurry_until { HURRY_EVERY } else { poll };
        tokio::select! {
            _ = local.realtime.notified() => {
                hurry_until = Instant::now() + HURRY_FOR;
                announce = true;
            }
            _ = remote.notified() => hurry_until = Instant::now() + HURRY_FOR,
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
    if let Some(f) = follower {
        f.abort();
    }
}

/// With no socket on this node, every event's route does nothing: rather than read each one
/// (a read of every event a game server publishes, on a node that may never have a socket),
/// moves the cursor to what is committed now. A socket is counted before it joins any room:
/// one counted after this read hears every event committed after it; one counted while the
/// read was under way may already have joined rooms whose events the read passed, so then the
/// cursor stays where it was (that socket may hear a few events from just before it came,
/// never miss one). `announce`: tells the other nodes this node committed events, in the same
/// round trip.
async fn skip_to_now(gw: &Gateway, cursor: FeedCursor, announce: bool) -> FeedCursor {
    let store = &gw.app.store;
    let now = if announce { store.announce_events_and_feed_start().await } else { store.feed_start().await };
    match now {
        Ok(_) if gw.stats.connected.load(Ordering::SeqCst) > 0 => cursor,
        Ok(now) => now,
        Err(e) => {
            tracing::warn!(error = %e, "real-time feed cannot read the outbox; retrying");
            cursor
        }
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
                    // Emitting only queues packets; the connections' writer tasks send them.
                    // Let them run before the next event, or a burst (a 1,000-event batch)
                    // would overflow the buffers of clients that read perfectly well.
                    tokio::task::yield_now().await;
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
    let mut payloads = Payloads { event, envelope: None, alias: None, message: None };
    for step in steps {
        match step {
            route::Step::Emit { rooms, packets } => {
                let frames: Vec<(String, Box<RawValue>)> =
                    packets.into_iter().filter_map(|(name, payload)| Some((name, payloads.get(payload)?))).collect();
                emit_all(io, gw, rooms, &frames).await;
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

/// An event's payloads, each serialized once (on first use) and copied into every packet.
struct Payloads<'a> {
    event: &'a EventRow,
    envelope: Option<Box<RawValue>>,
    alias: Option<Box<RawValue>>,
    message: Option<Box<RawValue>>,
}

impl Payloads<'_> {
    fn get(&mut self, payload: route::Payload) -> Option<Box<RawValue>> {
        let event = self.event;
        let envelope = self
            .envelope
            .get_or_insert_with(|| {
                String::from_utf8(envelope_body(event))
                    .ok()
                    .and_then(|s| RawValue::from_string(s).ok())
                    .unwrap_or_default()
            })
            .clone();
        let raw = match payload {
            route::Payload::Envelope => envelope,
            route::Payload::Alias => self
                .alias
                .get_or_insert_with(|| {
                    // The envelope already serialized, as a value to add fields to.
                    let value = serde_json::from_str(envelope.get()).unwrap_or(Value::Null);
                    serde_json::value::to_raw_value(&route::alias_json(value, event)).unwrap_or_default()
                })
                .clone(),
            route::Payload::Message => self
                .message
                .get_or_insert_with(|| {
                    serde_json::value::to_raw_value(&route::message_json(&event.data.0)).unwrap_or_default()
                })
                .clone(),
        };
        // `RawValue::default()` is `null`: a payload that could not be serialized is not sent.
        (raw.get() != "null").then_some(raw)
    }
}

/// Emits `frames` (event name, payload), in order, to every socket in `rooms`.
///
/// One frame is a room broadcast, serialized once. Several are handed to each socket in turn,
/// all of them before the next socket's: its connection's writer then finds them together and
/// sends them in one write, and the client reads them in one. (Broadcasting each frame to the
/// room woke most writers for the first frame alone: two writes per socket, two reads by its
/// client. With 10,000 sockets, handing them over together took Herald's CPU per event from
/// 164 to 152 ms and the benchmark clients' from 253 to 220 ms, and the p99 from ~235 to
/// 203 ms.)
///
/// A socket whose buffer is full (a client too slow to read) misses the packet; its next
/// heartbeat ping cannot be queued either, and engine.io closes it then (within
/// `realtime.ping_interval_secs`), so its memory stays bounded by
/// `realtime.max_buffered_packets`.
pub(crate) async fn emit_all(io: &SocketIo, gw: &Gateway, rooms: Vec<String>, frames: &[(String, Box<RawValue>)]) {
    match frames {
        [] => {}
        [(name, data)] => emit_to(io, gw, rooms, name, data.as_ref()).await,
        _ => {
            let (mut sent, mut full) = (0u64, 0u64);
            for socket in io.to(rooms).sockets() {
                for (name, data) in frames {
                    match socket.emit(name, data.as_ref()) {
                        Ok(()) => sent += 1,
                        Err(SendError::Socket(SocketError::InternalChannelFull)) => full += 1,
                        Err(_) => {}
                    }
                }
            }
            gw.stats.dropped_packets.fetch_add(full, Ordering::Relaxed);
            gw.stats.messages_out.fetch_add(sent, Ordering::Relaxed);
        }
    }
}

/// Emits `name` to every socket in `rooms`, serialized once (see [`emit_all`]).
pub(crate) async fn emit_to<T: serde::Serialize + ?Sized>(
    io: &SocketIo,
    gw: &Gateway,
    rooms: Vec<String>,
    name: &str,
    data: &T,
) {
    let recipients = io.to(rooms.clone()).sockets().len() as u64;
    if recipients == 0 {
        return;
    }
    let failed = match io.to(rooms).emit(name, data).await {
        Ok(()) => 0,
        Err(BroadcastError::Socket(errors)) => {
            let full = errors.iter().filter(|e| matches!(e, SocketError::InternalChannelFull)).count() as u64;
            gw.stats.dropped_packets.fetch_add(full, Ordering::Relaxed);
            errors.len() as u64
        }
        Err(e) => {
            tracing::warn!(error = %e, event = name, "cannot emit to sockets");
            recipients
        }
    };
    gw.stats.messages_out.fetch_add(recipients.saturating_sub(failed), Ordering::Relaxed);
}

/// Follows the other nodes: their commits wake the feed; their typing notes are shown to this
/// node's sockets. Stops (and stops listening) when aborted.
async fn follow(mut notices: NodeNotices, io: SocketIo, gw: Arc<Gateway>, wake: Arc<Notify>) {
    while let Some(notice) = notices.recv().await {
        match notice {
            NodeNotice::EventsCommitted => wake.notify_one(),
            NodeNotice::Typing(note) => typing_from_elsewhere(&io, &gw, &note).await,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TypingNote {
    node: String,
    room: String,
    note: Value,
}

/// Sends a typing note to the other nodes, if there are any (`Store::share_typing`).
pub(crate) async fn share_typing(gw: &Gateway, room: &str, note: &Value) {
    let payload = TypingNote { node: gw.node_id.clone(), room: room.to_owned(), note: note.clone() };
    let payload = serde_json::to_string(&payload).unwrap_or_default();
    gw.app.store.share_typing(&payload).await;
}

async fn typing_from_elsewhere(io: &SocketIo, gw: &Gateway, payload: &str) {
    let Ok(t) = serde_json::from_str::<TypingNote>(payload) else { return };
    if t.node == gw.node_id {
        return;
    }
    emit_to(io, gw, vec![t.room], "typing", &t.note).await;
}
