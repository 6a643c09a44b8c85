//! The handshake: who a socket is (a player session token or an API key), the rooms it
//! starts in, and the maintenance gate for players.

#[allow(unused_imports)]
use super::*;

/// The handshake's `auth` object.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Handshake {
    pub(super) token: Option<String>,
    /// For an organization or instance key: which project's events.
    pub(super) project_id: Option<String>,
    /// For an API key: the patterns to start with (default `["*"]`).
    pub(super) events: Option<Vec<String>>,
    /// For a player: the game client's channel (`PC`, `Android`, as in `/client-versions`),
    /// so it hears of notices for that channel and of versions there that must update.
    pub(super) channel: Option<String>,
}

/// Why a handshake is refused: the client sees the text in `connect_error` (`err.message`).
#[derive(Debug)]
pub(super) struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Connect middleware: authenticates, applies the per-project limit, and records who the
/// socket is. Nothing is sent to a socket refused here.
pub(super) async fn admit(
    s: SocketRef,
    TryData(auth): TryData<Handshake>,
    State(gw): State<Arc<Gateway>>,
) -> Result<(), Refused> {
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
pub(super) async fn maintenance_gate(gw: &Gateway, s: &SocketRef, player: &Player) -> Result<(), String> {
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
pub(super) fn socket_address(s: &SocketRef, trusted: &[ipnet::IpNet]) -> Option<std::net::IpAddr> {
    let parts = s.req_parts();
    let peer = parts.extensions.get::<axum::extract::ConnectInfo<crate::net::PeerAddr>>()?.0.0.ip();
    crate::net::client_address(Some(peer), &parts.headers, trusted)
}

/// The rooms a socket starts in: its subscriptions (server), or its project's players, its
/// own, its session's and its channels' rooms (player).
pub(super) async fn rooms_of(gw: &Gateway, identity: &Identity, patterns: &[String]) -> Vec<String> {
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

pub(super) async fn server_identity(
    app: &AppState,
    token: &str,
    auth: &Handshake,
) -> Result<(Identity, Vec<String>), String> {
    let principal = app.keys.authenticate(&app.store, token).await.map_err(|e| e.message)?;
    if !principal.has_scope(crate::auth::Scope::EventsRead) {
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

pub(super) fn check_patterns(patterns: &[String]) -> Result<(), String> {
    if patterns.len() > 100 {
        return Err("at most 100 event patterns".into());
    }
    match patterns.iter().find(|p| !crate::domain::webhooks::is_pattern(p)) {
        Some(bad) => Err(format!("`{bad}` is not an event type, `*`, or a prefix pattern like `user.*`")),
        None => Ok(()),
    }
}
