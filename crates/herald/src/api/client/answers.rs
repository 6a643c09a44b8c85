//! Answers: ETag, 304, Cache-Control, and the per-node answer cache.

#[allow(unused_imports)]
use super::*;

/// An answer ready to send: its JSON, its entity tag, and when it may change by itself.
pub struct Prepared {
    pub(super) body: Bytes,
    pub(super) etag: HeaderValue,
    pub(super) next_change: Option<DateTime<Utc>>,
    /// Whether the answer shows maintenance keeping players out: only then can the whitelist
    /// change it for one client (see [`bootstrap`]).
    pub(super) keeps_out: bool,
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
pub(super) async fn for_caller<T: ClientAnswer>(
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
    pub(super) fn new<T: ClientAnswer>(assembled: &Assembled<T>) -> ApiResult<Prepared> {
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
pub(super) fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let own = etag.as_bytes().strip_prefix(b"W/").unwrap_or(etag.as_bytes());
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |tag| {
            let tag = tag.trim();
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == own
        },
    )
}

pub(super) fn respond(
    s: &AppState,
    headers: &HeaderMap,
    prepared: &Prepared,
    now: DateTime<Utc>,
    server_time: bool,
) -> Response {
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
pub(super) fn with_server_time(content: &Bytes, now: DateTime<Utc>) -> Bytes {
    let time = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let rest = content.strip_prefix(b"{").unwrap_or(content);
    let separator = if rest.starts_with(b"}") { "" } else { "," };
    let mut out = Vec::with_capacity(content.len() + 40);
    out.extend_from_slice(format!("{{\"serverTime\":\"{time}\"{separator}").as_bytes());
    out.extend_from_slice(rest);
    Bytes::from(out)
}

/// The answer cached under `key`, or `assemble`d now (and cached until the next change).
pub(super) async fn cached<T: ClientAnswer>(
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
