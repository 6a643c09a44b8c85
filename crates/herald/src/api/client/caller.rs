//! Who is calling: a client key and/or a player session token.

#[allow(unused_imports)]
use super::*;

/// A game client: its project, and the client key and/or player session it presented.
pub struct ClientCaller {
    pub project_id: String,
    pub key: Option<Arc<ClientKey>>,
    pub player: Option<Player>,
    pub address: Option<IpAddr>,
}

impl ClientCaller {
    /// 403 if the client key is limited to channels and `channel` is not one of them.
    pub(super) fn allow_channel(&self, channel: Option<&str>) -> ApiResult<()> {
        if let (Some(key), Some(channel)) = (&self.key, channel)
            && !key.channels.0.is_empty()
            && !key.channels.0.iter().any(|c| c == channel)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "channel_not_allowed",
                format!(
                    "this client key is for the channels {}; it cannot ask about `{channel}`",
                    key.channels.0.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The player, or 401 saying that this route needs a session token.
    pub(super) fn require_player(&self) -> ApiResult<&Player> {
        self.player.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "session_token_required",
                "this route answers about one player: send the player's session token as `Authorization: Bearer \
                 <token>` (from POST /api/v1/users/{id}/session-token); a client key alone is not enough",
            )
        })
    }
}

pub(super) fn header_str<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

pub(super) fn server_credential() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "client_credential_required",
        "the client routes take a client key (`X-Client-Key: hc_...`) or a player session token (`Authorization: \
         Bearer <token>`), not an API key",
    )
}

impl FromRequestParts<AppState> for ClientCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<ClientCaller> {
        let mut client_key = header_str(parts, "x-client-key");
        let mut session = None;
        if let Some(key) = header_str(parts, "x-api-key") {
            if !keys::looks_like_client_key(key) {
                return Err(server_credential());
            }
            client_key = client_key.or(Some(key));
        }
        if let Some(auth) = header_str(parts, "authorization") {
            let token = match auth.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
                _ => return Err(ApiError::unauthorized("the Authorization header must be `Bearer <token>`")),
            };
            if keys::looks_like_client_key(token) {
                client_key = client_key.or(Some(token));
            } else if keys::looks_like_api_key(token) {
                return Err(server_credential());
            } else {
                session = Some(token);
            }
        }
        if client_key.is_none() && session.is_none() {
            return Err(ApiError::unauthorized(
                "missing credentials: send `X-Client-Key: hc_...` (a client key) or `Authorization: Bearer <player \
                 session token>`",
            ));
        }
        let key = match client_key {
            Some(presented) => Some(state.client.keys.authenticate(&state.store, presented).await?),
            None => None,
        };
        let player = match session {
            Some(token) => {
                Some(player_session::verify(&state.store, &state.jwt, token).await.map_err(ApiError::unauthorized)?)
            }
            None => None,
        };
        let project_id = match (&key, &player) {
            (Some(key), Some(player)) if key.project_id != player.project_id => {
                return Err(ApiError::unauthorized("the client key and the session token are of different projects"));
            }
            (Some(key), _) => key.project_id.clone(),
            (None, Some(player)) => player.project_id.clone(),
            (None, None) => unreachable!("one credential was required above"),
        };
        let span = tracing::Span::current();
        match (&key, &player) {
            (_, Some(player)) => span.record("actor", format!("player:{}", player.user_id).as_str()),
            (Some(key), None) => span.record("actor", format!("client_key:{}", key.id).as_str()),
            (None, None) => &span,
        };
        span.record("project", project_id.as_str());
        let address = parts.extensions.get::<ClientAddress>().and_then(|a| a.0);
        Ok(ClientCaller { project_id, key, player, address })
    }
}
