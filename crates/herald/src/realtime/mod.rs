//! The socket.io gateway (`/socket.io/`, protocol v5): who may connect, what each socket may
//! ask, and what it receives. Three parts (this file: the gateway's state and its socket.io layer):
//!
//! - [`handshake`]: who a socket is (`auth: {token}`: a player session token or an API key),
//!   and [`requests`]: the events a client sends (`subscribe`, `join_channel`, `send_message`, ...);
//! - [`route`]: which rooms and names each outbox event goes to (pure);
//! - [`feed`]: follows the outbox after commit and carries the routes out, on every node.
//!
//! socketioxide does the protocol; nothing here speaks engine.io.

pub mod feed;
mod handshake;
mod requests;
pub mod route;

use handshake::*;
use requests::*;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::{
    SocketIo,
    extract::{AckSender, SocketRef, State, TryData},
    handler::ConnectHandler,
    layer::SocketIoLayer,
    socket::DisconnectReason,
};

use crate::{
    auth::keys,
    domain::{
        DomainError,
        chat::{self, ChatError, SendMessage},
        maintenance,
        player_session::{self, Player},
    },
    events::EventContext,
    state::AppState,
    store::StoreError,
};

/// Who a socket is, fixed at the handshake.
#[derive(Debug, Clone)]
pub enum Identity {
    /// A game server or tool, with an API key holding `events:read`.
    Server { project_id: String, key_id: String },
    /// A game client, with a player session token.
    Player(Player),
}

impl Identity {
    pub fn project_id(&self) -> &str {
        match self {
            Identity::Server { project_id, .. } => project_id,
            Identity::Player(p) => &p.project_id,
        }
    }
}

/// Counters for `/metrics` (see docs/REALTIME.md).
#[derive(Default)]
pub struct Stats {
    pub connected: AtomicI64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    /// Packets not queued because the client's buffer was full (it reads too slowly).
    pub dropped_packets: AtomicU64,
    /// Sockets closed because a heartbeat failed: the client was gone, or too slow to read
    /// for even the ping to be queued.
    pub heartbeat_timeouts: AtomicU64,
    pub refused: AtomicU64,
}

/// Shared by every socket handler (socketioxide state) and the feed.
pub struct Gateway {
    pub app: AppState,
    /// Shared with the app state, where `GET /metrics` reads it.
    pub stats: Arc<Stats>,
    /// Tells this node's own typing notes apart when they come back from PostgreSQL.
    pub node_id: String,
    /// Connected sockets per project on this node, for `max_connections_per_project`.
    per_project: Mutex<HashMap<String, usize>>,
    /// `http.trusted_proxies`, parsed: whose `X-Forwarded-For` names a socket's address.
    trusted_proxies: Vec<ipnet::IpNet>,
}

/// The socket.io layer to mount on the router, its handle (to emit), and the gateway.
pub fn layer(app: AppState) -> (SocketIoLayer, SocketIo, Arc<Gateway>) {
    let cfg = app.config.realtime.clone();
    let trusted_proxies =
        app.config.http.trusted_proxies.iter().filter_map(|p| crate::domain::maintenance::parse_range(p)).collect();
    let gateway = Arc::new(Gateway {
        stats: app.realtime_stats.clone(),
        app,
        node_id: crate::store::new_id(),
        per_project: Mutex::default(),
        trusted_proxies,
    });
    // One bound for every way a client sends data: a polling request's body (`max_payload`),
    // a WebSocket message and each of its frames (tungstenite reads a message whole before
    // engine.io sees it, so without these a 15 MB message was buffered and parsed), and
    // binary attachments (Herald's requests are JSON, so a packet's attachments together get
    // the same bound; held until their packet completes, even before the socket.io connect).
    let max_payload = usize::try_from(cfg.max_payload_bytes).unwrap_or(usize::MAX);
    let (layer, io) = SocketIo::builder()
        .max_payload(cfg.max_payload_bytes)
        .ws_max_message_size(max_payload)
        .ws_max_frame_size(max_payload)
        .with_parser(socketioxide::ParserConfig::common().max_incoming_binary_buf_size(max_payload))
        .max_buffer_size(cfg.max_buffered_packets.max(1))
        .ping_interval(Duration::from_secs(cfg.ping_interval_secs.max(1)))
        .ping_timeout(Duration::from_secs(cfg.ping_timeout_secs.max(1)))
        .with_state(gateway.clone())
        .build_layer();
    io.ns("/", on_connect.with(admit));
    (layer, io, gateway)
}

impl Gateway {
    fn count_in(&self, project_id: &str) -> Result<(), String> {
        let limit = self.app.config.realtime.max_connections_per_project;
        let mut counts = self.per_project.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(project_id.to_owned()).or_default();
        if limit > 0 && *n >= limit {
            return Err(format!("this project already has {limit} connected sockets on this server"));
        }
        *n += 1;
        // SeqCst: the feed reads it after its outbox reads to tell whether a socket came
        // meanwhile (`feed::skip_to_now`).
        self.stats.connected.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn count_out(&self, project_id: &str) {
        let mut counts = self.per_project.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(project_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(project_id);
            }
        }
        self.stats.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Everything is set up by [`admit`]; socketioxide needs a connect handler all the same.
async fn on_connect(_s: SocketRef) {}
