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

/// What the client routes keep on a node.
pub struct ClientState {
    pub keys: ClientKeyCache,
    limiter: AddressRateLimiter,
    trusted_proxies: Vec<IpNet>,
    answers: super::cache::ResponseCache<Arc<Prepared>>,
    max_age_secs: u64,
}

impl ClientState {
    pub fn new(config: &Config) -> anyhow::Result<ClientState> {
        let trusted_proxies = config
            .http
            .trusted_proxies
            .iter()
            .map(|cidr| {
                cidr.parse::<IpNet>()
                    .or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| anyhow::anyhow!("http.trusted_proxies: {cidr:?} is not a CIDR block or an address"))
            })
            .collect::<anyhow::Result<_>>()?;
        for origin in &config.client.cors_allowed_origins {
            let valid = origin == "*"
                || url::Url::parse(origin).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.path() == "/"
                        && !origin.trim_end_matches('/').ends_with('/')
                        && u.query().is_none()
                });
            anyhow::ensure!(
                valid,
                "client.cors_allowed_origins: {origin:?} is not an origin such as \"https://play.example.com\" (or \"*\")"
            );
        }
        Ok(ClientState {
            keys: ClientKeyCache::new(Duration::from_secs(config.auth.key_cache_ttl_secs)),
            limiter: AddressRateLimiter::for_addresses(
                config.client.rate_limit_per_sec,
                config.client.rate_limit_burst,
            ),
            trusted_proxies,
            answers: super::cache::ResponseCache::new(Duration::from_millis(config.client.answer_cache_ms)),
            max_age_secs: config.client.cache_max_age_secs,
        })
    }

    /// Housekeeping: idle rate-limit buckets forgotten.
    pub fn upkeep(&self) {
        self.limiter.forget_idle();
    }
}

// ---------------------------------------------------------------------------------------
// The client's address, CORS and the rate limit

/// The client's address as [`client_address`] found it, for handlers (the whitelist).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddress(pub Option<IpAddr>);

/// Middleware of the client routes: finds the client's address and applies its rate limit.
async fn guard(axum::extract::State(state): axum::extract::State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<PeerAddr>>().map(|ci| ci.0.0.ip());
    let address = crate::net::client_address(peer, req.headers(), &state.client.trusted_proxies);
    if let Some(address) = address
        && let Err(refused) = state.client.limiter.check(address)
    {
        return refused.into_response();
    }
    req.extensions_mut().insert(ClientAddress(address));
    next.run(req).await
}

/// The client routes' own layers: the rate limit, and CORS when origins are configured.
pub fn layers(router: axum::Router<AppState>, state: &AppState) -> axum::Router<AppState> {
    let router = router.layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    match cors(&state.config.client.cors_allowed_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([axum::http::Method::GET])
            .allow_headers([
                header::AUTHORIZATION,
                header::ACCEPT_LANGUAGE,
                header::IF_NONE_MATCH,
                header::HeaderName::from_static("x-client-key"),
            ])
            .expose_headers([header::ETAG, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

// ---------------------------------------------------------------------------------------
// Who is calling

/// A game client: its project, and the client key and/or player session it presented.
pub struct ClientCaller {
    pub project_id: String,
    pub key: Option<Arc<ClientKey>>,
    pub player: Option<Player>,
    pub address: Option<IpAddr>,
}

impl ClientCaller {
    /// 403 if the client key is limited to channels and `channel` is not one of them.
    fn allow_channel(&self, channel: Option<&str>) -> ApiResult<()> {
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
    fn require_player(&self) -> ApiResult<&Player> {
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

fn header_str<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

fn server_credential() -> ApiError {
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

// ---------------------------------------------------------------------------------------
// Answers: ETag, 304, Cache-Control

/// An answer ready to send: its JSON, its entity tag, and when it may change by itself.
pub struct Prepared {
    body: Bytes,
    etag: HeaderValue,
    next_change: Option<DateTime<Utc>>,
    /// Whether the answer shows maintenance keeping players out: only then can the whitelist
    /// change it for one client (see [`bootstrap`]).
    keeps_out: bool,
}

/// An answer of the client routes.
pub trait ClientAnswer: Serialize {
    /// See [`Prepared::keeps_out`].
    fn keeps_out(&self) -> bool {
        false
    }

    /// Makes this the answer a whitelisted client gets: nothing keeps it out.
    fn bypass(&mut self) {}
}

impl ClientAnswer for client::ClientBootstrap {
    fn keeps_out(&self) -> bool {
        self.maintenance.in_maintenance || self.worlds.iter().any(|w| w.in_maintenance)
    }

    fn bypass(&mut self) {
        client::apply_bypass(self);
    }
}
impl ClientAnswer for ClientWorlds {
    fn keeps_out(&self) -> bool {
        self.items.iter().any(|w| w.in_maintenance)
    }

    fn bypass(&mut self) {
        self.items.iter_mut().for_each(|w| w.in_maintenance = false);
    }
}
impl ClientAnswer for client::ClientMaintenance {
    fn keeps_out(&self) -> bool {
        self.maintenance.in_maintenance || self.worlds.iter().any(|w| w.in_maintenance)
    }

    fn bypass(&mut self) {
        self.maintenance.bypass = true;
        self.maintenance.in_maintenance = false;
        self.worlds.iter_mut().for_each(|w| w.in_maintenance = false);
    }
}
impl ClientAnswer for client::VersionCheck {}
impl ClientAnswer for ClientNotices {}
impl ClientAnswer for client::ClientMe {}

/// The answer for `caller`: the shared (cached) one, or, while that shows maintenance
/// keeping players out and the whitelist lets this player or address through, one assembled
/// for it alone. The whitelist is read only in that rare case, so everyone else is served
/// without a query.
async fn for_caller<T: ClientAnswer>(
    s: &AppState,
    caller: &ClientCaller,
    now: DateTime<Utc>,
    shared: Arc<Prepared>,
    assemble: impl Future<Output = ApiResult<Assembled<T>>>,
) -> ApiResult<Arc<Prepared>> {
    let player = caller.player.as_ref().map(|p| p.user_id.as_str());
    if !shared.keeps_out
        || !client::maintenance_bypass(&s.store, &caller.project_id, player, caller.address, now).await?
    {
        return Ok(shared);
    }
    let mut own = assemble.await?;
    own.answer.bypass();
    Ok(Arc::new(Prepared::new(&own)?))
}

impl Prepared {
    fn new<T: ClientAnswer>(assembled: &Assembled<T>) -> ApiResult<Prepared> {
        let body = Bytes::from(serde_json::to_vec(&assembled.answer).map_err(ApiError::internal)?);
        // Weak: equal content, not byte-equal representation (the bootstrap's `serverTime`
        // is not part of the tag).
        let digest = Sha256::digest(&body);
        let etag =
            HeaderValue::from_str(&format!("W/\"{}\"", hex::encode(&digest[..16]))).map_err(ApiError::internal)?;
        Ok(Prepared { body, etag, next_change: assembled.next_change, keeps_out: assembled.answer.keeps_out() })
    }
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 prescribes for it).
fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let own = etag.as_bytes().strip_prefix(b"W/").unwrap_or(etag.as_bytes());
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |tag| {
            let tag = tag.trim();
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == own
        },
    )
}

fn respond(s: &AppState, headers: &HeaderMap, prepared: &Prepared, now: DateTime<Utc>, server_time: bool) -> Response {
    let until_change = prepared.next_change.map(|at| u64::try_from((at - now).num_seconds()).unwrap_or(0));
    let max_age = until_change.map_or(s.client.max_age_secs, |secs| secs.min(s.client.max_age_secs));
    let cache_control =
        if max_age == 0 { "private, no-cache".to_owned() } else { format!("private, max-age={max_age}") };
    let mut response = if not_modified(headers, &prepared.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = if server_time { with_server_time(&prepared.body, now) } else { prepared.body.clone() };
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, prepared.etag.clone());
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        h.insert(header::CACHE_CONTROL, value);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Language, Authorization, X-Client-Key"));
    response
}

/// `{"serverTime": "...", ...content}`: the content object with the time put first, without
/// serializing the content again (it is cached as bytes).
fn with_server_time(content: &Bytes, now: DateTime<Utc>) -> Bytes {
    let time = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let rest = content.strip_prefix(b"{").unwrap_or(content);
    let separator = if rest.starts_with(b"}") { "" } else { "," };
    let mut out = Vec::with_capacity(content.len() + 40);
    out.extend_from_slice(format!("{{\"serverTime\":\"{time}\"{separator}").as_bytes());
    out.extend_from_slice(rest);
    Bytes::from(out)
}

/// The answer cached under `key`, or `assemble`d now (and cached until the next change).
async fn cached<T: ClientAnswer>(
    s: &AppState,
    key: String,
    now: DateTime<Utc>,
    assemble: impl Future<Output = ApiResult<Assembled<T>>>,
) -> ApiResult<Arc<Prepared>> {
    // Read the generation before the database: a change committed in between makes this
    // answer stale at once.
    let generation = s.store.client_generation();
    if let Some(hit) = s.client.answers.get(&key, generation) {
        return Ok(hit);
    }
    let prepared = Arc::new(Prepared::new(&assemble.await?)?);
    let valid_for = prepared.next_change.map(|at| (at - now).to_std().unwrap_or_default());
    s.client.answers.put(key, generation, prepared.clone(), valid_for);
    Ok(prepared)
}

// ---------------------------------------------------------------------------------------
// Requests

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildQuery {
    /// The client's channel (`PC`, `iOS`, ...): with `version`, asks for the version check.
    channel: Option<String>,
    sub_channel: Option<String>,
    /// The client's version, e.g. `1.2.3`.
    version: Option<String>,
    /// The language to show texts in (else `Accept-Language`, else the project's default).
    lang: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LangQuery {
    /// The language to show texts in (else `Accept-Language`, else the project's default).
    lang: Option<String>,
}

fn check_ident(name: &str, value: Option<&str>) -> ApiResult<()> {
    if let Some(value) = value {
        let mut c = crate::domain::validate::Checks::default();
        c.ident(name, value, 32, &['+']);
        c.finish().map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    }
    Ok(())
}

/// Builds the request context (the project read only when an answer is assembled).
struct Ask {
    channel: Option<String>,
    sub_channel: String,
    version: Option<String>,
    languages: Vec<String>,
    now: DateTime<Utc>,
}

impl Ask {
    fn new(s: &AppState, headers: &HeaderMap, q: BuildQuery) -> ApiResult<Ask> {
        check_ident("channel", q.channel.as_deref())?;
        check_ident("subChannel", q.sub_channel.as_deref())?;
        check_ident("version", q.version.as_deref())?;
        if q.version.is_some() && q.channel.is_none() {
            return Err(ApiError::bad_request("invalid_query", "version needs channel: ?channel=PC&version=1.2.3"));
        }
        let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
        Ok(Ask {
            channel: q.channel,
            sub_channel: q.sub_channel.unwrap_or_default(),
            version: q.version,
            languages: client::preferences(q.lang.as_deref(), accept)?,
            now: s.clock.now(),
        })
    }

    fn lang_only(s: &AppState, headers: &HeaderMap, q: LangQuery) -> ApiResult<Ask> {
        Ask::new(s, headers, BuildQuery { channel: None, sub_channel: None, version: None, lang: q.lang })
    }

    /// The cache key of `kind` for this ask in `project_id`.
    fn key(&self, kind: &str, project_id: &str) -> String {
        format!(
            "{kind}|{project_id}|{}|{}|{}|{}",
            self.channel.as_deref().unwrap_or(""),
            self.sub_channel,
            self.version.as_deref().unwrap_or(""),
            self.languages.join(",")
        )
    }

    async fn request(&self, s: &AppState, project_id: &str) -> ApiResult<ClientRequest> {
        let project = match s.store.get_project(project_id).await {
            Ok(project) => project,
            // The project was deleted after the credential was checked.
            Err(StoreError::NotFound(_)) => return Err(ApiError::unauthorized("invalid client key")),
            Err(e) => return Err(e.into()),
        };
        Ok(ClientRequest {
            project,
            channel: self.channel.clone(),
            sub_channel: self.sub_channel.clone(),
            version: self.version.clone(),
            languages: self.languages.clone(),
            now: self.now,
        })
    }
}

/// `GET /client/bootstrap` as described: [`ClientBootstrap`] with the server time first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapAnswer {
    /// The server's clock when it answered (not part of the `ETag`: on a 304, read the
    /// `Date` header).
    server_time: DateTime<Utc>,
    #[serde(flatten)]
    bootstrap: ClientBootstrap,
}

/// `GET /client/game-worlds`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientWorlds {
    items: Vec<ClientWorld>,
}

/// `GET /client/notices`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientNotices {
    items: Vec<ClientNotice>,
}

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

// ---------------------------------------------------------------------------------------
// Client keys (managed with the server credentials: scope `admin` in the project)

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyPageQuery {
    page: Option<u32>,
    limit: Option<u32>,
}

/// The project's client keys (never their values).
#[utoipa::path(get, path = "/client-keys", tag = "client", params(KeyPageQuery), responses((status = 200, body = PageBody<ClientKey>)))]
pub async fn list_keys(
    s: State,
    scope: ProjectScope<scopes::Admin>,
    Query(q): Query<KeyPageQuery>,
) -> ApiResult<Json<PageBody<ClientKey>>> {
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let page = s.store.list_client_keys(&scope.project_id, req).await?;
    Ok(Json(PageBody::new(page, req, |k| k)))
}

/// A new client key for the project, to ship inside game builds; its value (`hc_...`) is in
/// this answer only.
#[utoipa::path(post, path = "/client-keys", tag = "client", request_body = NewClientKey, responses((status = 201, body = CreatedClientKey, description = "the key, with `keyValue` shown this once")))]
pub async fn create_key(
    s: State,
    scope: ProjectScope<scopes::Admin>,
    Json(input): Json<NewClientKey>,
) -> ApiResult<Response> {
    Ok(created(client::create_key(&s.store, &scope.events(), &scope.project_id, input).await?))
}

/// Revokes the client key at once on this node (other nodes: within `auth.key_cache_ttl_secs`);
/// it stays listed, with `revokedAt`.
#[utoipa::path(delete, path = "/client-keys/{id}", tag = "client", params(("id" = String, Path)), responses((status = 200, body = ClientKey)))]
pub async fn revoke_key(
    s: State,
    scope: ProjectScope<scopes::Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientKey>> {
    let revoked = s.store.revoke_client_key(&scope.events(), &scope.project_id, &id).await?;
    s.client.keys.invalidate(&revoked.id);
    Ok(Json(revoked))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn the_address_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net"), "::1/128".parse().expect("net")];
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let from = |peer: &str, xff: &[&str]| crate::net::client_address(Some(ip(peer)), &headers(xff), &trusted);
        assert_eq!(from("203.0.113.9", &["198.51.100.1"]), Some(ip("203.0.113.9")), "untrusted peer: header ignored");
        assert_eq!(from("10.0.0.2", &["198.51.100.1"]), Some(ip("198.51.100.1")));
        assert_eq!(
            from("10.0.0.2", &["6.6.6.6, 198.51.100.1, 10.0.0.7"]),
            Some(ip("198.51.100.1")),
            "forged head ignored"
        );
        assert_eq!(from("10.0.0.2", &["6.6.6.6", "198.51.100.1"]), Some(ip("198.51.100.1")), "several header lines");
        assert_eq!(from("::1", &["2001:db8::5"]), Some(ip("2001:db8::5")));
        assert_eq!(from("10.0.0.2", &[]), Some(ip("10.0.0.2")), "no header: the proxy itself");
        assert_eq!(from("10.0.0.2", &["garbage, 10.0.0.3"]), Some(ip("10.0.0.3")), "garbage stops the walk");
        assert_eq!(from("10.0.0.2", &["198.51.100.1:4711"]), Some(ip("198.51.100.1")), "with a port");
    }

    #[test]
    fn cors_origins_are_checked_at_start() {
        let with = |origins: &[&str]| {
            let mut config = Config::default();
            config.client.cors_allowed_origins = origins.iter().map(|o| o.to_string()).collect();
            ClientState::new(&config).map(|_| ())
        };
        assert!(with(&["https://play.example.com", "http://localhost:3000", "*"]).is_ok());
        for bad in ["play.example.com", "https://play.example.com/game", "ftp://x.example.com", "https://"] {
            assert!(with(&[bad]).is_err(), "{bad}");
        }
        let mut config = Config::default();
        config.http.trusted_proxies = vec!["10.0.0.0/33".into()];
        assert!(ClientState::new(&config).is_err(), "a bad CIDR stops the start");
    }

    #[test]
    fn server_time_is_put_first() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z").expect("time").with_timezone(&Utc);
        let out = with_server_time(&Bytes::from_static(br#"{"a":1}"#), now);
        assert_eq!(&out[..], br#"{"serverTime":"2026-01-02T03:04:05.678Z","a":1}"#);
        let out = with_server_time(&Bytes::from_static(b"{}"), now);
        assert_eq!(&out[..], br#"{"serverTime":"2026-01-02T03:04:05.678Z"}"#);
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let etag = HeaderValue::from_static("W/\"abc\"");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).expect("header"));
            not_modified(&h, &etag)
        };
        assert!(with("W/\"abc\""));
        assert!(with("\"abc\""));
        assert!(with("\"x\", W/\"abc\""));
        assert!(with("*"));
        assert!(!with("W/\"abd\""));
        assert!(!not_modified(&HeaderMap::new(), &etag));
    }
}
