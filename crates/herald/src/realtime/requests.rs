//! The requests a socket may send (`subscribe`, `join_channel`, `send_message`, ...) and
//! their acknowledgements.

#[allow(unused_imports)]
use super::*;

/// The acknowledgement of a request: `{ok: true, ...}` or `{ok: false, error: {code, message}}`.
pub(super) fn ok(extra: Value) -> Value {
    let mut v = json!({"ok": true});
    if let (Some(map), Value::Object(more)) = (v.as_object_mut(), extra) {
        map.extend(more);
    }
    v
}

pub(super) fn fail(code: &str, message: impl Into<String>) -> Value {
    json!({"ok": false, "error": {"code": code, "message": message.into()}})
}

/// A domain error as a socket answer: its code and message, and `retryAfter` when waiting helps.
pub(super) fn domain_fail(e: impl Into<DomainError>) -> Value {
    let e = e.into();
    e.log_cause();
    let mut v = fail(e.code(), e.to_string());
    if let Some(secs) = e.retry_after_secs() {
        v["error"]["retryAfter"] = json!(secs);
    }
    v
}

/// Reads a request's data into `T`, or the acknowledgement that says what is wrong.
pub(super) fn request<T: serde::de::DeserializeOwned>(data: Result<Value, impl std::fmt::Display>) -> Result<T, Value> {
    let value = data.map_err(|e| fail("invalid_request", format!("unreadable data: {e}")))?;
    serde_json::from_value(value).map_err(|e| fail("invalid_request", e.to_string()))
}

pub(super) fn answer(ack: AckSender, reply: Value) {
    // A client that asked for no acknowledgement gets none; a closed socket cannot get one.
    let _ = ack.send(&reply);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsRequest {
    pub(super) events: Vec<String>,
}

pub(super) async fn subscribe(
    s: SocketRef,
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(gw): State<Arc<Gateway>>,
) {
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

pub(super) async fn unsubscribe(
    s: SocketRef,
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(gw): State<Arc<Gateway>>,
) {
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
pub(super) async fn player_subscribe(s: SocketRef, ack: AckSender, State(gw): State<Arc<Gateway>>) {
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
pub(super) fn server_patterns(s: &SocketRef, project: &str) -> Vec<String> {
    let prefix = route::key_room(project, "");
    let mut patterns: Vec<String> =
        s.rooms().iter().filter_map(|r| r.strip_prefix(prefix.as_str()).map(str::to_owned)).collect();
    patterns.sort();
    patterns
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ChannelRequest {
    pub(super) channel_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct MessageRequest {
    pub(super) channel_id: String,
    pub(super) text: String,
    pub(super) data: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct TypingRequest {
    pub(super) channel_id: String,
    #[serde(default = "yes")]
    pub(super) typing: bool,
}

pub(super) fn yes() -> bool {
    true
}

pub(super) fn player_of(s: &SocketRef) -> Option<Player> {
    match s.extensions.get::<Identity>()? {
        Identity::Player(p) => Some(p),
        Identity::Server { .. } => None,
    }
}

pub(super) fn player_ctx(p: &Player) -> EventContext {
    EventContext { request_id: None, actor: Some(format!("player:{}", p.user_id)) }
}

/// The project's GameTalk app key, which chat events carry.
pub(super) async fn app_key(gw: &Gateway, project_id: &str) -> Result<String, Value> {
    gw.app.store.get_project(project_id).await.map(|p| p.app_key).map_err(domain_fail)
}

/// Runs a player's request: counts it, reads its data as `T`, and acknowledges with what
/// `handle` answers. Sockets of servers have no player requests and get no answer.
pub(super) async fn player_request<T: serde::de::DeserializeOwned>(
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

pub(super) async fn join_channel(
    s: SocketRef,
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(gw): State<Arc<Gateway>>,
) {
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

pub(super) async fn leave_channel(
    s: SocketRef,
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(gw): State<Arc<Gateway>>,
) {
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

pub(super) async fn send_message(
    s: SocketRef,
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(gw): State<Arc<Gateway>>,
) {
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
pub(super) async fn typing(
    s: SocketRef,
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(gw): State<Arc<Gateway>>,
) {
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
