//! Game-wide maintenance, the whitelist that bypasses it, and the maintenance state a client
//! sees ([`maintenance_state`]), which combines game-wide and world maintenance.

use std::{collections::BTreeMap, net::IpAddr};

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use super::{
    retry_on_stale,
    schedule::{self, Transition},
    validate::Checks,
};
use crate::{
    domain::DomainResult,
    events::{EventContext, types},
    store::{
        self, Store, StoreError,
        maintenance::{ProjectMaintenance, WhitelistEntry},
        worlds::GameWorld,
    },
};

/// `PUT /maintenance`. `starts_at`/`ends_at` are accepted in either case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GameMaintenanceChange {
    pub enabled: bool,
    /// Messages for players, keyed by language code (`en`, `ko`, `zh-Hans`).
    pub messages: Option<BTreeMap<String, String>>,
    /// When it opens (now if missing); a later time schedules it.
    #[serde(alias = "starts_at")]
    pub starts_at: Option<DateTime<Utc>>,
    /// When it closes by itself (never if missing).
    #[serde(alias = "ends_at")]
    pub ends_at: Option<DateTime<Utc>>,
}

fn check_messages(c: &mut Checks, messages: &BTreeMap<String, String>) {
    if messages.len() > 50 {
        c.fail("messages", "at most 50 languages");
    }
    for (lang, text) in messages {
        c.ident("messages", lang, 16, &[]);
        c.text(&format!("messages.{lang}"), text, 1, 2000);
    }
}

fn check_window(c: &mut Checks, starts_at: Option<DateTime<Utc>>, ends_at: Option<DateTime<Utc>>) {
    if let (Some(start), Some(end)) = (starts_at, ends_at)
        && end <= start
    {
        c.fail("endsAt", "must be after startsAt");
    }
}

fn transition_type(t: Transition) -> &'static str {
    match t {
        Transition::Scheduled => types::MAINTENANCE_SCHEDULED,
        Transition::Started { .. } => types::MAINTENANCE_STARTED,
        Transition::Ended { .. } => types::MAINTENANCE_ENDED,
        Transition::Cancelled => types::MAINTENANCE_CANCELLED,
    }
}

/// The project's game-wide maintenance at `now` (off if never set).
pub async fn get(store: &Store, project_id: &str, now: DateTime<Utc>) -> DomainResult<ProjectMaintenance> {
    Ok(store
        .get_project_maintenance(project_id)
        .await?
        .unwrap_or_else(|| ProjectMaintenance::off(project_id, now))
        .at(now))
}

/// Sets game-wide maintenance: on (with messages and an optional window) or off (clearing
/// them). Writes `maintenance.updated` and the transitions the change decides
/// ([`schedule::on_change`]); a window that opens later is fired by the scheduler.
pub async fn set(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    change: GameMaintenanceChange,
    now: DateTime<Utc>,
) -> DomainResult<ProjectMaintenance> {
    let mut c = Checks::default();
    if let Some(m) = &change.messages {
        check_messages(&mut c, m);
    }
    check_window(&mut c, change.starts_at, change.ends_at);
    c.finish()?;
    let change = &change;
    retry_on_stale(|| async move {
        let stored = store.get_project_maintenance(project_id).await?;
        let read_at = stored.as_ref().map(|m| m.updated_at);
        let current = stored.unwrap_or_else(|| ProjectMaintenance::off(project_id, now));
        let mut next = current.clone();
        next.enabled = change.enabled;
        if change.enabled {
            next.messages = Json(change.messages.clone().unwrap_or_default());
            next.starts_at = change.starts_at.map(store::truncate);
            next.ends_at = change.ends_at.map(store::truncate);
        } else {
            next.messages = Json(BTreeMap::new());
            next.starts_at = None;
            next.ends_at = None;
        }
        next.updated_at = match read_at {
            Some(at) => store::next_updated_at(at),
            None => store::now(),
        };
        let (phase, transitions) = schedule::on_change(current.phase(), current.window(), next.window(), now);
        next.phase = phase.as_str().to_owned();
        let mut events = vec![(types::MAINTENANCE_UPDATED, None)];
        events.extend(schedule::announce(&transitions, transition_type));
        store.put_project_maintenance(ctx, &next, read_at, &events).await?;
        Ok(next.at(now))
    })
    .await
}

/// Fires the game-wide maintenance transitions due at `now`; returns how many.
pub(crate) async fn fire_due(store: &Store, now: DateTime<Utc>) -> DomainResult<usize> {
    let ctx = EventContext::system();
    let mut fired = 0;
    for current in store.project_maintenance_due(now).await? {
        let (phase, transitions) = schedule::due(current.phase(), current.window(), now);
        if transitions.is_empty() {
            continue;
        }
        let mut next = current.clone();
        next.phase = phase.as_str().to_owned();
        next.updated_at = store::next_updated_at(current.updated_at);
        let events = schedule::announce(&transitions, transition_type);
        match store.put_project_maintenance(&ctx, &next, Some(current.updated_at), &events).await {
            // Another node fired it, or staff changed it (and decided its transitions).
            Err(StoreError::Stale) => continue,
            other => other?,
        }
        fired += transitions.len();
    }
    Ok(fired)
}

/// `POST /maintenance/whitelist`: exactly one of `playerId` and `ipRange`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWhitelistEntry {
    /// A player's user id (the `id` of `/users`, the player of a session token).
    pub player_id: Option<String>,
    /// An IPv4 or IPv6 address or CIDR range (`203.0.113.0/24`, `2001:db8::/32`).
    pub ip_range: Option<String>,
    pub note: Option<String>,
    /// When the entry stops applying (never if missing).
    pub expires_at: Option<DateTime<Utc>>,
}

/// `ip_range` parsed: a CIDR range (host bits cleared) or a single address (`/32`, `/128`).
/// IPv4-mapped IPv6 addresses are taken as the IPv4 address they carry.
pub fn parse_range(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(match net.addr() {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() && net.prefix_len() >= 96 => {
                IpNet::new(IpAddr::V4(v6.to_ipv4_mapped()?), net.prefix_len() - 96).ok()?.trunc()
            }
            _ => net.trunc(),
        });
    }
    s.parse::<IpAddr>().ok().map(|ip| IpNet::from(ip.to_canonical()))
}

pub async fn add_to_whitelist(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    input: NewWhitelistEntry,
    now: DateTime<Utc>,
) -> DomainResult<WhitelistEntry> {
    let mut c = Checks::default();
    let range = match (&input.player_id, &input.ip_range) {
        (Some(player), None) => {
            c.ident("playerId", player, 128, &[]);
            None
        }
        (None, Some(range)) => {
            let parsed = parse_range(range);
            if parsed.is_none() {
                c.fail(
                    "ipRange",
                    "must be an IPv4 or IPv6 address or CIDR range, like 203.0.113.0/24 or 2001:db8::/32",
                );
            }
            parsed
        }
        _ => {
            c.fail("playerId", "give exactly one of playerId and ipRange");
            None
        }
    };
    c.opt_text("note", input.note.as_deref(), 500);
    if input.expires_at.is_some_and(|at| at <= now) {
        c.fail("expiresAt", "must be in the future");
    }
    c.finish()?;
    let entry = WhitelistEntry {
        id: store::new_id(),
        project_id: project_id.to_owned(),
        player_id: input.player_id,
        ip_range: range.map(|r| r.to_string()),
        note: input.note,
        expires_at: input.expires_at.map(store::truncate),
        created_at: store::now(),
    };
    store.insert_whitelist_entry(ctx, &entry).await?;
    Ok(entry)
}

/// Whether the whitelist lets `player_id` or `client_ip` through at `now`.
pub async fn whitelisted(
    store: &Store,
    project_id: &str,
    player_id: Option<&str>,
    client_ip: Option<IpAddr>,
    now: DateTime<Utc>,
) -> DomainResult<bool> {
    if player_id.is_none() && client_ip.is_none() {
        return Ok(false);
    }
    let ip = client_ip.map(|ip| ip.to_canonical());
    let entries = store.whitelist_candidates(project_id, player_id, now).await?;
    Ok(entries.iter().any(|e| {
        (player_id.is_some() && e.player_id.as_deref() == player_id)
            || (ip.is_some_and(|ip| e.ip_range.as_deref().and_then(parse_range).is_some_and(|net| net.contains(&ip))))
    }))
}

/// Whether, and why, a player is kept out at `now`: what the client routes and sockets ask.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceState {
    /// Whether this player is kept out now: maintenance applies (game-wide, or the world's)
    /// and the whitelist does not let them through.
    pub in_maintenance: bool,
    /// Maintenance applies now, but the whitelist lets this player or address through.
    pub bypass: bool,
    /// Whether the maintenance in effect (or, when none is, the next one scheduled) is
    /// game-wide (`game`) or the world's own (`world`); `null` when there is none.
    pub scope: Option<&'static str>,
    /// The messages of that maintenance, keyed by language code.
    pub messages: BTreeMap<String, String>,
    /// A world's message without a language (`maintenanceMessage`), if it has one.
    pub message: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// The maintenance state of `project` (and of `world`, if given) at `now`, for a player
/// (`player_id`) at `client_ip`. A world is in maintenance when the game is or it is
/// itself; the game-wide messages and window win when both are. The whitelist is read only
/// when maintenance applies.
pub async fn maintenance_state(
    store: &Store,
    project_id: &str,
    world: Option<&GameWorld>,
    now: DateTime<Utc>,
    player_id: Option<&str>,
    client_ip: Option<IpAddr>,
) -> DomainResult<MaintenanceState> {
    let game = store.get_project_maintenance(project_id).await?;
    combine(store, project_id, game.as_ref(), world, now, player_id, client_ip).await
}

/// [`maintenance_state`] with the game-wide state already read (a bootstrap answer lists
/// many worlds and reads it once).
pub async fn combine(
    store: &Store,
    project_id: &str,
    game: Option<&ProjectMaintenance>,
    world: Option<&GameWorld>,
    now: DateTime<Utc>,
    player_id: Option<&str>,
    client_ip: Option<IpAddr>,
) -> DomainResult<MaintenanceState> {
    let game_window = game.map(ProjectMaintenance::window).unwrap_or(schedule::Window::OFF);
    let world_window = world.map(GameWorld::window).unwrap_or(schedule::Window::OFF);
    let game_now = game_window.active(now);
    let world_now = world_window.active(now);
    let upcoming = |w: schedule::Window| w.on && w.starts_at.is_some_and(|s| s > now);
    let scope = if game_now {
        Some("game")
    } else if world_now {
        Some("world")
    } else if upcoming(game_window) {
        Some("game")
    } else if upcoming(world_window) {
        Some("world")
    } else {
        None
    };
    let applies = game_now || world_now;
    let bypass = applies && whitelisted(store, project_id, player_id, client_ip, now).await?;
    let (messages, message, starts_at, ends_at) = match (scope, game, world) {
        (Some("game"), Some(g), _) => (g.messages.0.clone(), None, g.starts_at, g.ends_at),
        (Some("world"), _, Some(w)) => (
            w.maintenance_messages.0.clone(),
            w.maintenance_message.clone(),
            w.maintenance_starts_at,
            w.maintenance_ends_at,
        ),
        _ => (BTreeMap::new(), None, None, None),
    };
    Ok(MaintenanceState { in_maintenance: applies && !bypass, bypass, scope, messages, message, starts_at, ends_at })
}

/// The first time after `now` at which anything a client of `project` is shown may change by
/// the clock alone: a maintenance window (game-wide or a world's) or a notice opens or closes,
/// or a whitelist entry expires. Answers may be cached until then (`Cache-Control`).
pub async fn next_change_at(
    store: &Store,
    project_id: &str,
    now: DateTime<Utc>,
) -> DomainResult<Option<DateTime<Utc>>> {
    let game = store.get_project_maintenance(project_id).await?;
    let game_next = game
        .filter(|g| g.enabled)
        .into_iter()
        .flat_map(|g| [g.starts_at, g.ends_at])
        .flatten()
        .filter(|t| *t > now)
        .min();
    let times = [
        game_next,
        store.next_maintenance_boundary(project_id, now).await?,
        store.next_notice_boundary(project_id, now).await?,
        store.next_whitelist_expiry(project_id, now).await?,
    ];
    Ok(times.into_iter().flatten().min())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_normalized() {
        assert_eq!(parse_range("203.0.113.7/24").map(|n| n.to_string()).as_deref(), Some("203.0.113.0/24"));
        assert_eq!(parse_range("203.0.113.7").map(|n| n.to_string()).as_deref(), Some("203.0.113.7/32"));
        assert_eq!(parse_range("::ffff:203.0.113.7").map(|n| n.to_string()).as_deref(), Some("203.0.113.7/32"));
        assert_eq!(parse_range("2001:db8::1/32").map(|n| n.to_string()).as_deref(), Some("2001:db8::/32"));
        assert!(parse_range("300.1.1.1").is_none());
        assert!(parse_range("1.2.3.4/33").is_none());
        assert!(parse_range("example.com").is_none());
    }
}
