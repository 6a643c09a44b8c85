//! The game-client routes, `/api/v1/client/*`, and the client keys that open them.
//!
//! A game client calls with a client key (`X-Client-Key: hc_...`, shipped in the build) or a
//! player session token (`Authorization: Bearer <token>`, from `POST /users/{id}/session-token`),
//! or both. Neither is accepted anywhere else (`extract::Caller` refuses them), and API keys
//! are not accepted here: a game server asks the server routes.
//!
//! Answers are client view types (`domain::client`), never store rows. Each carries a weak
//! `ETag` (of its content; `serverTime` is left out, so an unchanged answer keeps its tag) and
//! honours `If-None-Match` with 304; `Cache-Control: private, max-age` is `client.cache_max_age_secs`
//! or less, never past the next known change (a maintenance window opening or closing).
//! Assembled answers are kept per node ([`ClientState::answers`]) like `GET /game-worlds`'s
//! (`api::cache`): invalidated by [`crate::store::Store::client_generation`] on this node's
//! changes, and after `client.answer_cache_ms` for other nodes'.
//!
//! The routes sit behind two layers of their own ([`layers`]): CORS for web games
//! (`client.cors_allowed_origins`, tower-http's `CorsLayer`) and a per-address rate limit
//! (`client.rate_limit_per_sec`; the address comes from the connection or, behind a trusted
//! proxy, from `X-Forwarded-For`: [`client_address`]).

mod answers;
mod caller;
mod client_keys;
mod layers;
mod requests;
mod state;

pub use answers::*;
pub use caller::*;
pub use client_keys::*;
pub use layers::*;
pub use requests::*;
pub use state::*;

use std::{net::IpAddr, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    PageBody, created,
    extract::{Json, Paging, Path, ProjectScope, Query, scopes},
    rate_limit::AddressRateLimiter,
};
use crate::{
    auth::{client::ClientKeyCache, keys},
    config::Config,
    domain::{
        client::{
            self, Assembled, ClientBootstrap, ClientMaintenance, ClientMe, ClientNotice, ClientRequest, ClientWorld,
            CreatedClientKey, NewClientKey, VersionCheck,
        },
        player_session::{self, Player},
    },
    error::{ApiError, ApiResult},
    net::PeerAddr,
    state::{AppState, State},
    store::{StoreError, client_keys::ClientKey},
};

// ---------------------------------------------------------------------------------------
// Routes

/// Everything a game client needs at start, in one answer: game-wide maintenance, the
/// visible worlds (with `inMaintenance` and the message in the client's language), the
/// version check (with `channel` and `version`), active notices, and the server time.
#[utoipa::path(get, path = "/bootstrap", tag = "client", params(BuildQuery),
    security(("client_key" = []), ("bearer" = [])),
    responses((status = 200, body = BootstrapAnswer), (status = 304, description = "unchanged since the `ETag` sent in `If-None-Match`")))]
pub async fn bootstrap(
    s: State,
    caller: ClientCaller,
    headers: HeaderMap,
    Query(q): Query<BuildQuery>,
) -> ApiResult<Response> {
    let ask = Ask::new(&s, &headers, q)?;
    caller.allow_channel(ask.channel.as_deref())?;
    let assemble = async || Ok(client::bootstrap(&s.store, &ask.request(&s, &caller.project_id).await?).await?);
    let shared = cached(&s, ask.key("bootstrap", &caller.project_id), ask.now, assemble()).await?;
    let prepared = for_caller(&s, &caller, ask.now, shared, assemble()).await?;
    Ok(respond(&s, &headers, &prepared, ask.now, true))
}

/// The visible worlds, in display order, as clients see them.
#[utoipa::path(get, path = "/game-worlds", tag = "client", params(LangQuery),
    security(("client_key" = []), ("bearer" = [])),
    responses((status = 200, body = ClientWorlds), (status = 304, description = "unchanged since the `ETag` sent in `If-None-Match`")))]
pub async fn game_worlds(
    s: State,
    caller: ClientCaller,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> ApiResult<Response> {
    let ask = Ask::lang_only(&s, &headers, q)?;
    let assemble = async || {
        let req = ask.request(&s, &caller.project_id).await?;
        let game = client::game_maintenance(&s.store, &req).await?;
        let worlds = client::worlds(&s.store, &req, &game.answer).await?;
        Ok(Assembled {
            answer: ClientWorlds { items: worlds.answer },
            next_change: client::earliest(game.next_change, worlds.next_change),
        })
    };
    let shared = cached(&s, ask.key("worlds", &caller.project_id), ask.now, assemble()).await?;
    let prepared = for_caller(&s, &caller, ask.now, shared, assemble()).await?;
    Ok(respond(&s, &headers, &prepared, ask.now, false))
}

/// The version check for the client's build: what `GET /client-versions/lookup` answers
/// servers, without the version's notes.
#[utoipa::path(get, path = "/versions/lookup", tag = "client", params(BuildQuery),
    security(("client_key" = []), ("bearer" = [])),
    responses((status = 200, body = VersionCheck), (status = 304, description = "unchanged since the `ETag` sent in `If-None-Match`")))]
pub async fn version_lookup(
    s: State,
    caller: ClientCaller,
    headers: HeaderMap,
    Query(q): Query<BuildQuery>,
) -> ApiResult<Response> {
    let ask = Ask::new(&s, &headers, q)?;
    if ask.channel.is_none() || ask.version.is_none() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "channel and version are required, e.g. ?channel=PC&subChannel=Steam&version=1.2.3",
        ));
    }
    caller.allow_channel(ask.channel.as_deref())?;
    let prepared = cached(&s, ask.key("lookup", &caller.project_id), ask.now, async {
        let req = ask.request(&s, &caller.project_id).await?;
        let check = client::version_check(&s.store, &req).await?;
        check
            .map(|answer| Assembled { answer, next_change: None })
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no version check")))
    })
    .await?;
    Ok(respond(&s, &headers, &prepared, ask.now, false))
}

/// The notices active now for the client's channel and version.
#[utoipa::path(get, path = "/notices", tag = "client", params(BuildQuery),
    security(("client_key" = []), ("bearer" = [])),
    responses((status = 200, body = ClientNotices), (status = 304, description = "unchanged since the `ETag` sent in `If-None-Match`")))]
pub async fn notices(
    s: State,
    caller: ClientCaller,
    headers: HeaderMap,
    Query(q): Query<BuildQuery>,
) -> ApiResult<Response> {
    let ask = Ask::new(&s, &headers, q)?;
    caller.allow_channel(ask.channel.as_deref())?;
    let prepared = cached(&s, ask.key("notices", &caller.project_id), ask.now, async {
        let req = ask.request(&s, &caller.project_id).await?;
        let notices = client::active_notices(&s.store, &req).await?;
        Ok(Assembled { answer: ClientNotices { items: notices.answer }, next_change: notices.next_change })
    })
    .await?;
    Ok(respond(&s, &headers, &prepared, ask.now, false))
}

/// Game-wide maintenance, and the worlds whose maintenance is switched on.
#[utoipa::path(get, path = "/maintenance", tag = "client", params(LangQuery),
    security(("client_key" = []), ("bearer" = [])),
    responses((status = 200, body = ClientMaintenance), (status = 304, description = "unchanged since the `ETag` sent in `If-None-Match`")))]
pub async fn maintenance(
    s: State,
    caller: ClientCaller,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> ApiResult<Response> {
    let ask = Ask::lang_only(&s, &headers, q)?;
    let assemble = async || Ok(client::maintenance(&s.store, &ask.request(&s, &caller.project_id).await?).await?);
    let shared = cached(&s, ask.key("maintenance", &caller.project_id), ask.now, assemble()).await?;
    let prepared = for_caller(&s, &caller, ask.now, shared, assemble()).await?;
    Ok(respond(&s, &headers, &prepared, ask.now, false))
}

/// The player's own profile, and whether maintenance keeps them out. Needs the player's
/// session token (a client key alone: 401 `session_token_required`).
#[utoipa::path(get, path = "/me", tag = "client", params(LangQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ClientMe), (status = 304, description = "unchanged since the `ETag` sent in `If-None-Match`")))]
pub async fn me(s: State, caller: ClientCaller, headers: HeaderMap, Query(q): Query<LangQuery>) -> ApiResult<Response> {
    let player = caller.require_player()?;
    let ask = Ask::lang_only(&s, &headers, q)?;
    let req = ask.request(&s, &caller.project_id).await?;
    let assembled = client::me(&s.store, &req, &player.user_id, caller.address).await?;
    Ok(respond(&s, &headers, &Prepared::new(&assembled)?, ask.now, false))
}

/// The `/api/v1/client` routes (game clients).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(bootstrap))
        .routes(routes!(game_worlds))
        .routes(routes!(version_lookup))
        .routes(routes!(notices))
        .routes(routes!(maintenance))
        .routes(routes!(me))
}
