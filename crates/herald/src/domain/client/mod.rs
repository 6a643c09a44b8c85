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

mod client_keys;
mod languages;
mod me;

pub use client_keys::*;
pub use languages::*;
pub use me::*;

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
