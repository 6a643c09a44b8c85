//! What game clients see (`/api/v1/client/*`): client keys, the languages a client reads,
//! and the answers assembled from parts (maintenance, worlds, the version check, notices).
//!
//! Each part of [`ClientBootstrap`] comes from its own function, so a part can change source
//! without touching the others: game-wide maintenance and the whitelist come from
//! `domain::maintenance`, notices from `domain::notices`, worlds and the version check from
//! their own stores.

use std::{collections::BTreeMap, net::IpAddr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use super::validate::Checks;
use crate::{
    auth::keys,
    domain::{DomainError, DomainResult},
    events::EventContext,
    store::{
        self, PageRequest, Store,
        client_keys::ClientKey,
        orgs::Project,
        worlds::{GameWorld, WorldFilter},
    },
};

// ---------------------------------------------------------------------------------------
// Client keys

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewClientKey {
    pub name: String,
    /// The client channels (`PC`, `iOS`, ...) the key may ask about; absent or empty: any.
    pub channels: Option<Vec<String>>,
}

/// A client key as created: the only time its full value (`hc_...`) is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedClientKey {
    #[serde(flatten)]
    pub key: ClientKey,
    pub key_value: String,
}

/// Most channels one key may be limited to.
const MAX_KEY_CHANNELS: usize = 20;

pub async fn create_key(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    input: NewClientKey,
) -> DomainResult<CreatedClientKey> {
    let channels = input.channels.unwrap_or_default();
    let mut c = Checks::default();
    c.text("name", &input.name, 1, 100);
    if channels.len() > MAX_KEY_CHANNELS {
        c.fail("channels", format!("at most {MAX_KEY_CHANNELS} channels"));
    }
    for channel in &channels {
        c.ident("channels", channel, 32, &[]);
    }
    c.finish()?;
    let project = store.get_project(project_id).await?;
    let (id, key_value, secret_hash) = keys::generate_client();
    let key = ClientKey {
        id,
        organization_id: project.organization_id,
        project_id: project.id,
        name: input.name,
        secret_hash,
        channels: Json(channels),
        created_at: store::now(),
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_client_key(ctx, &key).await?;
    Ok(CreatedClientKey { key, key_value })
}

// ---------------------------------------------------------------------------------------
// Languages

/// Whether `tag` is a language code as clients send them: `en`, `pt-BR`, `zh-Hant-TW`
/// (letters and digits in parts of 1 to 8, joined by `-`, the first part letters only).
pub fn is_language_tag(tag: &str) -> bool {
    tag.len() <= 35
        && tag.split('-').enumerate().all(|(i, part)| {
            (1..=8).contains(&part.len())
                && if i == 0 {
                    part.bytes().all(|b| b.is_ascii_alphabetic())
                } else {
                    part.bytes().all(|b| b.is_ascii_alphanumeric())
                }
        })
}

/// Most languages of a client's preference list that are looked at.
const MAX_PREFERENCES: usize = 6;

/// The languages a client reads, best first: its `lang` parameter (400 if malformed), then
/// its `Accept-Language` list by weight (malformed entries and `*` are skipped, as browsers'
/// lists are trusted loosely). Lower-cased.
pub fn preferences(lang: Option<&str>, accept_language: Option<&str>) -> DomainResult<Vec<String>> {
    let mut out = Vec::new();
    if let Some(lang) = lang {
        if !is_language_tag(lang) {
            return Err(DomainError::invalid_query("lang must be a language code such as `en` or `pt-BR`"));
        }
        out.push(lang.to_ascii_lowercase());
    }
    if let Some(header) = accept_language {
        let mut weighted: Vec<(u16, String)> = header
            .split(',')
            .filter_map(|entry| {
                let mut parts = entry.split(';');
                let tag = parts.next()?.trim();
                let q = parts.find_map(|p| p.trim().strip_prefix("q=")).map_or(Some(1.0), |q| q.trim().parse().ok())?;
                let q: f32 = q;
                (is_language_tag(tag) && q > 0.0 && q <= 1.0).then(|| ((q * 1000.0) as u16, tag.to_ascii_lowercase()))
            })
            .collect();
        // Stable: equal weights keep the client's order.
        weighted.sort_by_key(|w| std::cmp::Reverse(w.0));
        out.extend(weighted.into_iter().map(|(_, tag)| tag));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|tag| seen.insert(tag.clone()));
    out.truncate(MAX_PREFERENCES);
    Ok(out)
}

/// The text of `messages` (keyed by language code) for `language`: the exact language, else
/// its primary language (`pt-BR` finds `pt`), else a regional form of it (`pt` finds `pt-PT`).
fn for_language<'a>(messages: &'a BTreeMap<String, String>, language: &str) -> Option<&'a str> {
    let primary = language.split('-').next().unwrap_or(language);
    messages
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(language))
        .or_else(|| messages.iter().find(|(k, _)| k.eq_ignore_ascii_case(primary)))
        .or_else(|| {
            messages
                .iter()
                .find(|(k, _)| k.split('-').next().is_some_and(|p| p.eq_ignore_ascii_case(primary)) && k.contains('-'))
        })
        .map(|(_, v)| v.as_str())
}

/// Picks a localized text: the client's languages in order, then the project's default
/// language, then the text given without a language (`untagged`), then any of `messages`.
pub fn localize(
    messages: &BTreeMap<String, String>,
    untagged: Option<&str>,
    preferences: &[String],
    default_language: &str,
) -> Option<String> {
    preferences
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(default_language))
        .find_map(|lang| for_language(messages, lang))
        .or(untagged)
        .or_else(|| messages.values().next().map(String::as_str))
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------------
// What a client asks, and the parts of the answer

/// One client request's context: whose project, which build, which languages, when.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    pub project: Project,
    pub channel: Option<String>,
    pub sub_channel: String,
    pub version: Option<String>,
    /// Best first (see [`preferences`]).
    pub languages: Vec<String>,
    pub now: DateTime<Utc>,
}

/// Game-wide maintenance as a client sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameMaintenance {
    /// Whether game-wide maintenance is switched on (possibly for a later window).
    pub enabled: bool,
    /// Whether it keeps this client out now (switched on, inside its window, no bypass).
    pub in_maintenance: bool,
    /// Whether this client is let through maintenance (whitelisted player or address).
    pub bypass: bool,
    /// In the client's language (see `lang`).
    pub message: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

impl GameMaintenance {
    fn off() -> GameMaintenance {
        GameMaintenance {
            enabled: false,
            in_maintenance: false,
            bypass: false,
            message: None,
            starts_at: None,
            ends_at: None,
        }
    }
}

/// A game world as a client sees it: no internal id, the maintenance message localized.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientWorld {
    pub world_id: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub display_order: i64,
    /// Whether players are kept out now: the world's or the game-wide maintenance applies.
    pub in_maintenance: bool,
    /// The maintenance message in the client's language, while maintenance is switched on.
    pub maintenance_message: Option<String>,
    pub maintenance_starts_at: Option<DateTime<Utc>>,
    pub maintenance_ends_at: Option<DateTime<Utc>>,
}

/// A notice (news, banner, popup) as a client sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientNotice {
    pub id: String,
    /// `notice`, `banner` or `popup`.
    pub kind: String,
    pub priority: i64,
    /// In the client's language.
    pub title: Option<String>,
    pub body: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// The version check of `GET /client-versions/lookup`, without the version's notes (staff
/// text, not meant for players).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionCheck {
    pub channel: String,
    pub sub_channel: String,
    pub version: String,
    /// Whether this exact version is registered.
    pub known: bool,
    /// `play`, `update_available`, `update_required`, `maintenance` or `unavailable`.
    pub action: &'static str,
    pub latest_version: Option<String>,
    pub update_url: Option<String>,
}

/// Everything a client needs at start (`GET /client/bootstrap`), without `serverTime`,
/// which the API adds to each answer (so that this can be cached).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientBootstrap {
    pub maintenance: GameMaintenance,
    /// Visible worlds, in display order.
    pub worlds: Vec<ClientWorld>,
    /// `null` when the request names no `channel` and `version`.
    pub version_check: Option<VersionCheck>,
    pub notices: Vec<ClientNotice>,
}

/// An answer and the first time after `now` it may change by itself (a window opening or
/// closing): caches must not keep it past that.
#[derive(Debug, Clone)]
pub struct Assembled<T> {
    pub answer: T,
    pub next_change: Option<DateTime<Utc>>,
}

pub fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Game-wide maintenance of the project (`PUT /api/v1/maintenance`), its messages in the
/// client's language, and its next window boundary after `req.now`.
pub async fn game_maintenance(store: &Store, req: &ClientRequest) -> DomainResult<Assembled<GameMaintenance>> {
    let game = super::maintenance::get(store, &req.project.id, req.now).await?;
    if !game.enabled {
        return Ok(Assembled { answer: GameMaintenance::off(), next_change: None });
    }
    let next_change = [game.starts_at, game.ends_at].into_iter().flatten().filter(|t| *t > req.now).min();
    let message = localize(&game.messages.0, None, &req.languages, &req.project.default_language);
    let answer = GameMaintenance {
        enabled: true,
        in_maintenance: game.in_maintenance,
        bypass: false,
        message,
        starts_at: game.starts_at,
        ends_at: game.ends_at,
    };
    Ok(Assembled { answer, next_change })
}

/// The notices active now for the request's channel, sub-channel and version, highest
/// priority first, in the client's language; and the next time one starts or ends.
pub async fn active_notices(store: &Store, req: &ClientRequest) -> DomainResult<Assembled<Vec<ClientNotice>>> {
    let project = &req.project.id;
    let sub_channel = Some(req.sub_channel.as_str()).filter(|s| !s.is_empty());
    let active = super::notices::active_notices(
        store,
        project,
        req.channel.as_deref(),
        sub_channel,
        req.version.as_deref(),
        req.now,
    )
    .await?;
    let default_language = &req.project.default_language;
    let answer = active
        .into_iter()
        .map(|n| ClientNotice {
            title: localize(&n.title.0, None, &req.languages, default_language),
            body: localize(&n.body.0, None, &req.languages, default_language),
            id: n.id,
            kind: n.kind,
            priority: n.priority,
            starts_at: n.starts_at,
            ends_at: n.ends_at,
        })
        .collect();
    Ok(Assembled { answer, next_change: store.next_notice_boundary(project, req.now).await? })
}

/// Whether the maintenance whitelist lets this player or address through at `now`. Called
/// per request, and only when the shared (cached) answer shows maintenance keeping players
/// out; [`apply_bypass`] then adjusts a copy.
pub async fn maintenance_bypass(
    store: &Store,
    project_id: &str,
    player: Option<&str>,
    address: Option<IpAddr>,
    now: DateTime<Utc>,
) -> DomainResult<bool> {
    super::maintenance::whitelisted(store, project_id, player, address, now).await
}

/// The answer as a whitelisted client sees it: nothing keeps it out.
pub fn apply_bypass(answer: &mut ClientBootstrap) {
    answer.maintenance.bypass = true;
    answer.maintenance.in_maintenance = false;
    for world in &mut answer.worlds {
        world.in_maintenance = false;
    }
}

/// Most worlds a client answer lists.
pub const MAX_WORLDS: u32 = 1000;

async fn visible_worlds(store: &Store, req: &ClientRequest) -> DomainResult<Vec<GameWorld>> {
    let filter = WorldFilter { visible: Some(true), maintenance: None, tag: None, now: req.now };
    Ok(store.list_worlds(&req.project.id, &filter, PageRequest { page: 1, limit: MAX_WORLDS }).await?.items)
}

/// The project's visible worlds as a client sees them, given the game-wide maintenance.
pub async fn worlds(
    store: &Store,
    req: &ClientRequest,
    game: &GameMaintenance,
) -> DomainResult<Assembled<Vec<ClientWorld>>> {
    let rows = visible_worlds(store, req).await?;
    let next_change = rows.iter().filter_map(|w| world_boundary(w, req.now)).min();
    let worlds = rows.into_iter().map(|w| client_world(w, req, game)).collect();
    Ok(Assembled { answer: worlds, next_change })
}

/// One world's maintenance, in [`ClientMaintenance`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorldMaintenance {
    pub world_id: String,
    pub in_maintenance: bool,
    /// In the client's language.
    pub message: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// `GET /client/maintenance`: game-wide maintenance, and the visible worlds whose own
/// maintenance is switched on (in effect now, or scheduled) or that the game-wide one closes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientMaintenance {
    pub maintenance: GameMaintenance,
    pub worlds: Vec<WorldMaintenance>,
}

pub async fn maintenance(store: &Store, req: &ClientRequest) -> DomainResult<Assembled<ClientMaintenance>> {
    let game = game_maintenance(store, req).await?;
    let rows = visible_worlds(store, req).await?;
    let next_change = earliest(game.next_change, rows.iter().filter_map(|w| world_boundary(w, req.now)).min());
    let worlds = rows
        .into_iter()
        .filter(|w| w.maintenance || game.answer.in_maintenance)
        .map(|w| client_world(w, req, &game.answer))
        .map(|w| WorldMaintenance {
            world_id: w.world_id,
            in_maintenance: w.in_maintenance,
            message: w.maintenance_message,
            starts_at: w.maintenance_starts_at,
            ends_at: w.maintenance_ends_at,
        })
        .collect();
    Ok(Assembled { answer: ClientMaintenance { maintenance: game.answer, worlds }, next_change })
}

/// The world's next maintenance window start or end after `now`.
fn world_boundary(w: &GameWorld, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !w.maintenance {
        return None;
    }
    [w.maintenance_starts_at, w.maintenance_ends_at].into_iter().flatten().filter(|t| *t > now).min()
}

fn client_world(w: GameWorld, req: &ClientRequest, game: &GameMaintenance) -> ClientWorld {
    let own = w.maintenance_active(req.now);
    let maintenance_message = if w.maintenance {
        localize(
            &w.maintenance_messages.0,
            w.maintenance_message.as_deref(),
            &req.languages,
            &req.project.default_language,
        )
    } else if game.in_maintenance {
        game.message.clone()
    } else {
        None
    };
    ClientWorld {
        in_maintenance: own || game.in_maintenance,
        maintenance_message,
        maintenance_starts_at: w.maintenance.then_some(w.maintenance_starts_at).flatten(),
        maintenance_ends_at: w.maintenance.then_some(w.maintenance_ends_at).flatten(),
        world_id: w.world_id,
        name: w.name,
        description: w.description,
        tags: w.tags.0,
        display_order: w.display_order,
    }
}

/// The version check for the request's build, if it names `channel` and `version`.
pub async fn version_check(store: &Store, req: &ClientRequest) -> DomainResult<Option<VersionCheck>> {
    let (Some(channel), Some(version)) = (&req.channel, &req.version) else { return Ok(None) };
    let found = super::versions::lookup(store, &req.project.id, channel, &req.sub_channel, version).await?;
    Ok(Some(VersionCheck {
        channel: found.channel,
        sub_channel: found.sub_channel,
        version: found.version,
        known: found.known,
        action: found.action,
        latest_version: found.latest_version,
        update_url: found.update_url,
    }))
}

/// The bootstrap answer, assembled from its parts.
pub async fn bootstrap(store: &Store, req: &ClientRequest) -> DomainResult<Assembled<ClientBootstrap>> {
    let game = game_maintenance(store, req).await?;
    let worlds = worlds(store, req, &game.answer).await?;
    let notices = active_notices(store, req).await?;
    let version_check = version_check(store, req).await?;
    Ok(Assembled {
        next_change: earliest(earliest(game.next_change, worlds.next_change), notices.next_change),
        answer: ClientBootstrap {
            maintenance: game.answer,
            worlds: worlds.answer,
            version_check,
            notices: notices.answer,
        },
    })
}

// ---------------------------------------------------------------------------------------
// The player's own view

/// A player's own profile: no `metadata` (game servers keep their own data there).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientPlayer {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// `GET /client/me`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientMe {
    pub player: ClientPlayer,
    /// Game-wide maintenance as it applies to this player (`bypass`: whitelisted).
    pub maintenance: GameMaintenance,
    /// Whether maintenance keeps this player out now.
    pub maintenance_applies: bool,
}

pub async fn me(
    store: &Store,
    req: &ClientRequest,
    user_id: &str,
    address: Option<IpAddr>,
) -> DomainResult<Assembled<ClientMe>> {
    let user = store.get_user(&req.project.id, user_id).await?;
    let mut game = game_maintenance(store, req).await?;
    if game.answer.in_maintenance
        && maintenance_bypass(store, &req.project.id, Some(&user.id), address, req.now).await?
    {
        game.answer.bypass = true;
        game.answer.in_maintenance = false;
    }
    let maintenance_applies = game.answer.in_maintenance;
    Ok(Assembled {
        answer: ClientMe {
            player: ClientPlayer {
                id: user.id,
                username: user.username,
                display_name: user.display_name,
                avatar_url: user.avatar_url,
                email: user.email,
                created_at: user.created_at,
                last_login_at: user.last_login_at,
            },
            maintenance: game.answer,
            maintenance_applies,
        },
        next_change: game.next_change,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn language_tags() {
        for good in ["en", "pt-BR", "zh-Hant-TW", "es-419"] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in ["", "-", "en-", "e n", "en_US", "123", "toolongpart9", "en-*"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn preferences_follow_weights_then_order() {
        let p = preferences(Some("ko"), Some("fr;q=0.5, de-CH, en;q=0.8, *;q=0.1, bad_tag, it;q=0")).expect("ok");
        assert_eq!(p, ["ko", "de-ch", "en", "fr"]);
        assert!(preferences(Some("not a tag"), None).is_err());
        assert_eq!(preferences(None, None).expect("ok"), Vec::<String>::new());
    }

    #[test]
    fn localization_falls_back_in_order() {
        let m = messages(&[("en", "E"), ("ja", "J"), ("ko", "K"), ("pt-PT", "P")]);
        let prefs = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(localize(&m, None, &prefs(&["ja"]), "ko").as_deref(), Some("J"), "the client's language");
        assert_eq!(localize(&m, None, &prefs(&["ja-jp"]), "ko").as_deref(), Some("J"), "its primary language");
        assert_eq!(localize(&m, None, &prefs(&["pt-br"]), "ko").as_deref(), Some("P"), "a regional form");
        assert_eq!(localize(&m, None, &prefs(&["de", "fr"]), "ko").as_deref(), Some("K"), "the default");
        assert_eq!(localize(&m, Some("U"), &prefs(&["de"]), "zh").as_deref(), Some("U"), "the untagged text");
        assert_eq!(localize(&m, None, &prefs(&["de"]), "zh").as_deref(), Some("E"), "any message");
        assert_eq!(localize(&BTreeMap::new(), None, &prefs(&["de"]), "zh"), None);
    }
}
