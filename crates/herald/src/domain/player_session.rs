//! Player session tokens: short-lived JWTs a game server asks for on a player's behalf
//! (`POST /users/{id}/session-token`) and hands to the game client, which presents it to the
//! socket.io gateway. Each names a `player_sessions` row, so it can be revoked before it
//! expires.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    auth::jwt::{JwtKeys, PlayerClaims},
    config::RealtimeConfig,
    domain::{DomainError, DomainResult},
    events::{EventContext, NewEvent, types},
    store::{self, Store, StoreError, player_sessions::PlayerSession},
};

/// Shortest lifetime a request may ask for, in seconds.
const MIN_TTL_SECS: u64 = 60;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionRequest {
    /// Lifetime in seconds; `realtime.session_token_ttl_secs` when absent.
    pub ttl_secs: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionToken {
    pub token: String,
    pub token_type: &'static str,
    pub session_id: String,
    pub user_id: String,
    pub expires_in: u64,
    pub expires_at: DateTime<Utc>,
}

/// Who a valid session token speaks for.
#[derive(Debug, Clone)]
pub struct Player {
    pub project_id: String,
    pub user_id: String,
    pub session_id: String,
}

fn user_inactive(status: &str) -> DomainError {
    DomainError::Conflict {
        code: "user_not_active",
        message: format!("the user's status is `{status}`; only active users get session tokens"),
    }
}

pub async fn issue(
    store: &Store,
    jwt: &JwtKeys,
    config: &RealtimeConfig,
    project_id: &str,
    user_id: &str,
    input: SessionRequest,
) -> DomainResult<SessionToken> {
    let max = config.max_session_token_ttl_secs;
    let ttl = input.ttl_secs.unwrap_or(config.session_token_ttl_secs);
    if !(MIN_TTL_SECS..=max.max(MIN_TTL_SECS)).contains(&ttl) {
        return Err(DomainError::invalid_field("ttlSecs", format!("must be {MIN_TTL_SECS} to {max} seconds")));
    }
    let user = store.get_user(project_id, user_id).await?;
    if user.status != crate::vocab::UserStatus::Active {
        return Err(user_inactive(user.status.as_str()));
    }
    let now = store::now();
    let expires_at = now + TimeDelta::seconds(i64::try_from(ttl).unwrap_or(i64::MAX / 2_000_000));
    let session = PlayerSession {
        id: store::new_id(),
        project_id: project_id.to_owned(),
        user_id: user.id.clone(),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    store.insert_player_session(&session).await?;
    let claims = PlayerClaims {
        sub: user.id.clone(),
        prj: project_id.to_owned(),
        sid: session.id.clone(),
        iat: now.timestamp(),
        exp: expires_at.timestamp(),
        typ: "player".into(),
    };
    let token = jwt.issue(&claims).map_err(DomainError::internal)?;
    Ok(SessionToken {
        token,
        token_type: "Bearer",
        session_id: session.id,
        user_id: user.id,
        expires_in: ttl,
        expires_at,
    })
}

/// Revokes every live session token of the player: they are refused from now on, and
/// sockets using them are disconnected (event `user.sessions_revoked`). Returns the ids
/// revoked.
pub async fn revoke(store: &Store, ctx: &EventContext, project_id: &str, user_id: &str) -> DomainResult<Vec<String>> {
    let user = store.get_user(project_id, user_id).await?;
    Ok(store
        .revoke_player_sessions(project_id, &user.id, store::now(), |ids| {
            let data = json!({"userId": user.id, "sessionIds": ids});
            NewEvent::about(ctx, types::USER_SESSIONS_REVOKED, (None, Some(project_id)), "user", &user.id, &data)
        })
        .await?)
}

/// Why a presented token is refused (the socket client sees this text in `connect_error`).
pub const INVALID_TOKEN: &str = "invalid or expired token";

/// The player a session token speaks for, if the token is valid, unexpired and unrevoked,
/// and the player still exists and is active.
pub async fn verify(store: &Store, jwt: &JwtKeys, token: &str) -> Result<Player, String> {
    let claims = jwt.verify_player(token).ok_or(INVALID_TOKEN)?;
    let session = match store.get_player_session(&claims.sid).await {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => return Err(INVALID_TOKEN.into()),
        Err(e) => return Err(format!("cannot check the token now: {e}")),
    };
    if session.project_id != claims.prj || session.user_id != claims.sub {
        return Err(INVALID_TOKEN.into());
    }
    if session.revoked_at.is_some() {
        return Err("this session token has been revoked".into());
    }
    if session.expires_at <= store::now() {
        return Err(INVALID_TOKEN.into());
    }
    match store.get_user(&session.project_id, &session.user_id).await {
        Ok(user) if user.status == crate::vocab::UserStatus::Active => {}
        Ok(user) => return Err(format!("the player's status is `{}`", user.status)),
        Err(StoreError::NotFound(_)) => return Err(INVALID_TOKEN.into()),
        Err(e) => return Err(format!("cannot check the token now: {e}")),
    }
    Ok(Player { project_id: session.project_id, user_id: session.user_id, session_id: session.id })
}
