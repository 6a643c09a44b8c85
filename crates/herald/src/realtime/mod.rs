//! The socket.io gateway (`/socket.io/`, protocol v5): who may connect, what each socket may
//! ask, and what it receives. Three parts:
//!
//! - this file: the handshake (`auth: {token}`: a player session token or an API key) and
//!   the events a client sends (`subscribe`, `join_channel`, `send_message`, ...);
//! - [`route`]: which rooms and names each outbox event goes to (pure);
//! - [`feed`]: follows the outbox after commit and carries the routes out, on every node.
//!
//! socketioxide does the protocol; nothing here speaks engine.io.

pub mod feed;
pub mod route;

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

/// The handshake's `auth` object.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Handshake {
    token: Option<String>,
    /// For an organization or instance key: which project's events.
    project_id: Option<String>,
    /// For an API key: the patterns to start with (default `["*"]`).
    events: Option<Vec<String>>,
    /// For a player: the game client's channel (`PC`, `Android`, as in `/client-versions`),
    /// so it hears of notices for that channel and of versions there that must update.
    channel: Option<String>,
}

/// Why a handshake is refused: the client sees the text in `connect_error` (`err.message`).
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Connect middleware: authenticates, applies the per-project limit, and records who the
/// socket is. Nothing is sent to a socket refused here.
async fn admit(s: SocketRef, TryData(auth): TryData<Handshake>, State(gw): State<Arc<Gateway>>) -> Result<(), Refused> {
    let refused = |msg: String| {
        gw.stats.refused.fetch_add(1, Ordering::Relaxed);
        Refused(msg)
    };
    let auth = auth.map_err(|_| refused("send `auth: {token}` in the handshake".into()))?;
    let token = auth.token.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| refused("missing token".into()))?;
    let (identity, patterns) = if keys::parse(token).is_some() {
        server_identity(&gw.app, token, &auth).await.map_err(refused)?
    } else {
        let player = player_session::verify(&gw.app.store, &gw.app.jwt, token).await.map_err(refused)?;
        maintenance_gate(&gw, &s, &player).await.map_err(refused)?;
        (Identity::Player(player), Vec::new())
    };
    let mut rooms = rooms_of(&gw, &identity, &patterns).await;
    if let (Identity::Player(p), Some(channel)) = (&identity, auth.channel.as_deref().filter(|c| !c.is_empty())) {
        if channel.len() > 64 {
            return Err(refused("`channel` is at most 64 characters".into()));
        }
        rooms.push(route::client_channel_room(&p.project_id, channel));
    }
    gw.count_in(identity.project_id()).map_err(refused)?;
    // Set up here, before the server confirms the connection: a client may send its first
    // request the moment it is connected, and the connect handler runs only after that.
    s.extensions.insert(identity.clone());
    s.join(rooms);
    s.on_disconnect(async |s: SocketRef, State(gw): State<Arc<Gateway>>, reason: DisconnectReason| {
        if reason == DisconnectReason::HeartbeatTimeout {
            gw.stats.heartbeat_timeouts.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(identity) = s.extensions.get::<Identity>() {
            gw.count_out(identity.project_id());
        }
    });
    match identity {
        Identity::Server { .. } => {
            s.on("subscribe", subscribe);
            s.on("unsubscribe", unsubscribe);
        }
        Identity::Player(_) => {
            // Answered, so a client using the server sockets' request learns why it gets nothing.
            s.on("subscribe", player_subscribe);
            s.on("unsubscribe", player_subscribe);
            s.on("join_channel", join_channel);
            s.on("leave_channel", leave_channel);
            s.on("send_message", send_message);
            s.on("typing", typing);
        }
    }
    Ok(())
}

/// Refuses a player socket while game-wide maintenance keeps the player out (the whitelist
/// lets a player or address through). Sockets connected before it began stay, and hear
/// `maintenance.started` and later `maintenance.ended`. World maintenance does not refuse a
/// socket: a socket is not in a world.
async fn maintenance_gate(gw: &Gateway, s: &SocketRef, player: &Player) -> Result<(), String> {
    let store = &gw.app.store;
    let now = gw.app.clock.now();
    let game = match store.get_project_maintenance(&player.project_id).await {
        Ok(Some(game)) if game.window().active(now) => game,
        Ok(_) => return Ok(()),
        Err(e) => return Err(format!("cannot check maintenance now: {e}")),
    };
    let ip = socket_address(s, &gw.trusted_proxies);
    let state = maintenance::combine(store, &player.project_id, Some(&game), None, now, Some(&player.user_id), ip)
        .await
        .map_err(|e| format!("cannot check maintenance now: {e}"))?;
    if !state.in_maintenance {
        return Ok(());
    }
    let until = state.ends_at.map(|t| format!(" until {}", crate::webhooks::rfc3339(t))).unwrap_or_default();
    Err(format!("maintenance: the game is in maintenance{until}; GET /api/v1/client/maintenance tells when it ends"))
}

/// The client's address (see [`crate::net::client_address`]).
fn socket_address(s: &SocketRef, trusted: &[ipnet::IpNet]) -> Option<std::net::IpAddr> {
    let parts = s.req_parts();
    let peer = parts.extensions.get::<axum::extract::ConnectInfo<crate::net::PeerAddr>>()?.0.0.ip();
    crate::net::client_address(Some(peer), &parts.headers, trusted)
}

/// The rooms a socket starts in: its subscriptions (server), or its project's players, its
/// own, its session's and its channels' rooms (player).
async fn rooms_of(gw: &Gateway, identity: &Identity, patterns: &[String]) -> Vec<String> {
    let project = identity.project_id();
    match identity {
        Identity::Server { .. } => patterns.iter().map(|p| route::key_room(project, p)).collect(),
        Identity::Player(player) => {
            let mut rooms = vec![
                route::players_room(project),
                route::user_room(project, &player.user_id),
                route::session_room(&player.session_id),
            ];
            match gw.app.store.channels_of_user(project, &player.user_id).await {
                Ok(channels) => rooms.extend(channels.iter().map(|c| route::channel_room(project, c))),
                Err(e) => tracing::warn!(error = %e, "cannot read a player's channels at connect"),
            }
            rooms
        }
    }
}

async fn server_identity(app: &AppState, token: &str, auth: &Handshake) -> Result<(Identity, Vec<String>), String> {
    let principal = app.keys.authenticate(&app.store, token).await.map_err(|e| e.message)?;
    if !principal.has_scope("events:read") {
        return Err("this API key lacks the scope `events:read`".into());
    }
    let project_id = match (&principal.project_id, &auth.project_id) {
        (Some(own), None) => own.clone(),
        (Some(own), Some(asked)) if own == asked => own.clone(),
        (_, Some(asked)) => {
            let project = match app.store.get_project(asked).await {
                Ok(p) => p,
                Err(StoreError::NotFound(_)) => return Err("no such project".into()),
                Err(e) => return Err(format!("cannot check the project now: {e}")),
            };
            if !principal.reaches_project(&project) {
                return Err("no such project".into());
            }
            project.id
        }
        (None, None) => return Err("this key reaches several projects: add `projectId` to `auth`".into()),
    };
    let patterns = auth.events.clone().unwrap_or_else(|| vec!["*".into()]);
    check_patterns(&patterns)?;
    let (crate::auth::PrincipalKind::ApiKey { id: key_id } | crate::auth::PrincipalKind::Admin { id: key_id }) =
        principal.kind;
    Ok((Identity::Server { project_id, key_id }, patterns))
}

fn check_patterns(patterns: &[String]) -> Result<(), String> {
    if patterns.len() > 100 {
        return Err("at most 100 event patterns".into());
    }
    match patterns.iter().find(|p| !crate::domain::webhooks::is_pattern(p)) {
        Some(bad) => Err(format!("`{bad}` is not an event type, `*`, or a prefix pattern like `user.*`")),
        None => Ok(()),
    }
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
        self.stats.connected.fetch_add(1, Ordering::Relaxed);
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

/// The acknowledgement of a request: `{ok: true, ...}` or `{ok: false, error: {code, message}}`.
fn ok(extra: Value) -> Value {
    let mut v = json!({"ok": true});
    if let (Some(map), Value::Object(more)) = (v.as_object_mut(), extra) {
        map.extend(more);
    }
    v
}

fn fail(code: &str, message: impl Into<String>) -> Value {
    json!({"ok": false, "error": {"code": code, "message": message.into()}})
}

/// A domain error as a socket answer: its code and message, and `retryAfter` when waiting helps.
fn domain_fail(e: impl Into<DomainError>) -> Value {
    let e = e.into();
    e.log_cause();
    let mut v = fail(e.code(), e.to_string());
    if let Some(secs) = e.retry_after_secs() {
        v["error"]["retryAfter"] = json!(secs);
    }
    v
}

/// Reads a request's data into `T`, or the acknowledgement that says what is wrong.
fn request<T: serde::de::DeserializeOwned>(data: Result<Value, impl std::fmt::Display>) -> Result<T, Value> {
    let value = data.map_err(|e| fail("invalid_request", format!("unreadable data: {e}")))?;
    serde_json::from_value(value).map_err(|e| fail("invalid_request", e.to_string()))
}

fn answer(ack: AckSender, reply: Value) {
    // A client that asked for no acknowledgement gets none; a closed socket cannot get one.
    let _ = ack.send(&reply);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsRequest {
    events: Vec<String>,
}

async fn subscribe(s: SocketRef, TryData(data): TryData<Value>, ack: AckSender, State(gw): State<Arc<Gateway>>) {
    gw.stats.messages_in.fetch_add(1, Ordering::Relaxed);
    let Some(identity) = s.extensions.get::<Identity>() else { return };
    let reply = match request::<EventsRequest>(data) {
        Ok(req) => match check_patterns(&req.events) {
            Ok(()) => {
                s.join(req.events.iter().map(|p| route::key_room(identity.project_id(), p)).collect::<Vec<_>>());
                ok(json!({"events": server_patterns(&s, identity.project_id())}))
            }
            Err(msg) => fail("invalid_events", msg),
        },
        Err(reply) => reply,
    };
    answer(ack, reply);
}

async fn unsubscribe(s: SocketRef, TryData(data): TryData<Value>, ack: AckSender, State(gw): State<Arc<Gateway>>) {
    gw.stats.messages_in.fetch_add(1, Ordering::Relaxed);
    let Some(identity) = s.extensions.get::<Identity>() else { return };
    let reply = match request::<EventsRequest>(data) {
        Ok(req) => {
            s.leave(req.events.iter().map(|p| route::key_room(identity.project_id(), p)).collect::<Vec<_>>());
            ok(json!({"events": server_patterns(&s, identity.project_id())}))
        }
        Err(reply) => reply,
    };
    answer(ack, reply);
}

/// `subscribe` / `unsubscribe` from a player socket: what a player receives is fixed by who
/// they are (their project's maintenance, their own profile, their channels), so there is
/// nothing to choose; the answer says so and points to `join_channel`.
async fn player_subscribe(s: SocketRef, ack: AckSender, State(gw): State<Arc<Gateway>>) {
    gw.stats.messages_in.fetch_add(1, Ordering::Relaxed);
    if player_of(&s).is_none() {
        return;
    }
    answer(
        ack,
        fail(
            "forbidden",
            "player sockets cannot choose event patterns: they receive their game's world maintenance, their own \
             profile changes and the messages of the channels they joined; use `join_channel` / `leave_channel` \
             to follow a channel (event subscriptions are for sockets authenticated with an API key)",
        ),
    );
}

/// The patterns a server socket is subscribed to now.
fn server_patterns(s: &SocketRef, project: &str) -> Vec<String> {
    let prefix = route::key_room(project, "");
    let mut patterns: Vec<String> =
        s.rooms().iter().filter_map(|r| r.strip_prefix(prefix.as_str()).map(str::to_owned)).collect();
    patterns.sort();
    patterns
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChannelRequest {
    channel_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MessageRequest {
    channel_id: String,
    text: String,
    data: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TypingRequest {
    channel_id: String,
    #[serde(default = "yes")]
    typing: bool,
}

fn yes() -> bool {
    true
}

fn player_of(s: &SocketRef) -> Option<Player> {
    match s.extensions.get::<Identity>()? {
        Identity::Player(p) => Some(p),
        Identity::Server { .. } => None,
    }
}

fn player_ctx(p: &Player) -> EventContext {
    EventContext { request_id: None, actor: Some(format!("player:{}", p.user_id)) }
}

/// The project's GameTalk app key, which chat events carry.
async fn app_key(gw: &Gateway, project_id: &str) -> Result<String, Value> {
    gw.app.store.get_project(project_id).await.map(|p| p.app_key).map_err(domain_fail)
}

/// Runs a player's request: counts it, reads its data as `T`, and acknowledges with what
/// `handle` answers. Sockets of servers have no player requests and get no answer.
async fn player_request<T: serde::de::DeserializeOwned>(
    s: SocketRef,
    data: Result<Value, impl std::fmt::Display>,
    ack: AckSender,
    gw: &Gateway,
    handle: impl AsyncFnOnce(&SocketRef, Player, T) -> Result<Value, Value>,
) {
    gw.stats.messages_in.fetch_add(1, Ordering::Relaxed);
    let Some(p) = player_of(&s) else { return };
    let reply = match request(data) {
        Ok(req) => handle(&s, p, req).await,
        Err(reply) => Err(reply),
    };
    answer(ack, reply.unwrap_or_else(|e| e));
}

async fn join_channel(s: SocketRef, TryData(data): TryData<Value>, ack: AckSender, State(gw): State<Arc<Gateway>>) {
    player_request(s, data, ack, &gw, async |s, p, req: ChannelRequest| {
        let key = app_key(&gw, &p.project_id).await?;
        let store = &gw.app.store;
        match chat::subscribe(store, &player_ctx(&p), &key, &p.project_id, &req.channel_id, Some(p.user_id.clone()))
            .await
        {
            Ok(()) | Err(ChatError::AlreadySubscribed) => {}
            Err(e) => return Err(domain_fail(e)),
        }
        s.join(route::channel_room(&p.project_id, &req.channel_id));
        Ok(ok(json!({"channelId": req.channel_id})))
    })
    .await;
}

async fn leave_channel(s: SocketRef, TryData(data): TryData<Value>, ack: AckSender, State(gw): State<Arc<Gateway>>) {
    player_request(s, data, ack, &gw, async |s, p, req: ChannelRequest| {
        let key = app_key(&gw, &p.project_id).await?;
        let store = &gw.app.store;
        chat::unsubscribe(store, &player_ctx(&p), &key, &p.project_id, &req.channel_id, Some(p.user_id.clone()))
            .await
            .map_err(domain_fail)?;
        s.leave(route::channel_room(&p.project_id, &req.channel_id));
        Ok(ok(json!({"channelId": req.channel_id})))
    })
    .await;
}

async fn send_message(s: SocketRef, TryData(data): TryData<Value>, ack: AckSender, State(gw): State<Arc<Gateway>>) {
    player_request(s, data, ack, &gw, async |_, p, req: MessageRequest| {
        let app = &gw.app;
        let input = SendMessage { user_id: Some(p.user_id.clone()), text: req.text, data: req.data };
        let m = chat::send_message(
            &app.store,
            &app.chat_limiter,
            &app.config.chat,
            &player_ctx(&p),
            &p.project_id,
            &req.channel_id,
            input,
        )
        .await
        .map_err(domain_fail)?;
        Ok(ok(json!({"id": m.id, "channelId": m.channel_id, "time": m.created_at})))
    })
    .await;
}

/// `typing`: shown to the channel's other sockets on this node, and (PostgreSQL) sent to the
/// other nodes through the feed. Not stored; only a subscriber's socket may send it.
async fn typing(s: SocketRef, TryData(data): TryData<Value>, ack: AckSender, State(gw): State<Arc<Gateway>>) {
    player_request(s, data, ack, &gw, async |s, p, req: TypingRequest| {
        let room = route::channel_room(&p.project_id, &req.channel_id);
        if !s.rooms().iter().any(|r| *r == room) {
            return Err(fail("not_subscribed", "join the channel first"));
        }
        let note = json!({"channelId": req.channel_id, "userId": p.user_id, "typing": req.typing});
        let _ = s.to(room.clone()).emit("typing", &note).await;
        feed::share_typing(&gw, &room, &note).await;
        Ok(ok(json!({})))
    })
    .await;
}
