//! Game worlds and maintenance mode.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::types::Json;

use super::{
    retry_on_stale,
    schedule::{self, Announce, Phase, Transition},
    validate::{Checks, nullable},
};
use crate::{
    domain::DomainResult,
    events::{EventContext, types},
    store::{self, Store, StoreError, worlds::GameWorld},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWorld {
    pub world_id: String,
    pub name: String,
    pub description: Option<String>,
    pub visible: Option<bool>,
    pub display_order: Option<i64>,
    pub tags: Option<Vec<String>>,
    /// Start in maintenance (the seed sends `maintenance: false`).
    pub maintenance: Option<bool>,
    pub maintenance_message: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorldPatch {
    pub world_id: Option<String>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    pub visible: Option<bool>,
    pub display_order: Option<i64>,
    pub tags: Option<Vec<String>>,
    pub maintenance: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub maintenance_message: Option<Option<String>>,
}

/// `PUT /game-worlds/{id}/maintenance`. `starts_at`/`ends_at` are accepted in either case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceChange {
    pub enabled: bool,
    pub message: Option<String>,
    pub messages: Option<BTreeMap<String, String>>,
    #[serde(alias = "starts_at")]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(alias = "ends_at")]
    pub ends_at: Option<DateTime<Utc>>,
}

fn check_world(w: &GameWorld) -> DomainResult<()> {
    let mut c = Checks::default();
    c.ident("worldId", &w.world_id, 64, &[]);
    c.text("name", &w.name, 1, 100);
    c.opt_text("description", w.description.as_deref(), 1000);
    if w.tags.0.len() > 20 {
        c.fail("tags", "at most 20 tags");
    }
    for tag in &w.tags.0 {
        c.ident("tags", tag, 32, &[':']);
    }
    c.opt_text("maintenanceMessage", w.maintenance_message.as_deref(), 2000);
    for (lang, text) in &w.maintenance_messages.0 {
        c.ident("messages", lang, 16, &[]);
        c.text(&format!("messages.{lang}"), text, 1, 2000);
    }
    if let (Some(start), Some(end)) = (w.maintenance_starts_at, w.maintenance_ends_at)
        && end <= start
    {
        c.fail("endsAt", "must be after startsAt");
    }
    c.finish()
}

/// The event type announcing `t` for a world.
fn transition_type(t: Transition) -> &'static str {
    match t {
        Transition::Scheduled => types::WORLD_MAINTENANCE_SCHEDULED,
        Transition::Started { .. } => types::WORLD_MAINTENANCE_STARTED,
        Transition::Ended { .. } => types::WORLD_MAINTENANCE_ENDED,
        Transition::Cancelled => types::WORLD_MAINTENANCE_CANCELLED,
    }
}

/// A change from `before` to `after` at `now`: the maintenance phase it leaves `after` in,
/// and its events: `world.updated`, then the maintenance transitions it decides
/// ([`schedule::on_change`]; a window that opens later is announced as scheduled and fired by
/// the scheduler when it opens).
fn change_events(before: &GameWorld, after: &mut GameWorld, now: DateTime<Utc>) -> Vec<Announce> {
    let (phase, transitions) = schedule::on_change(before.phase(), before.window(), after.window(), now);
    after.maintenance_phase = phase.as_str().to_owned();
    let mut events = vec![(types::WORLD_UPDATED, None)];
    events.extend(schedule::announce(&transitions, transition_type));
    events
}

pub async fn create(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    input: NewWorld,
    clock_now: DateTime<Utc>,
) -> DomainResult<GameWorld> {
    let now = store::now();
    let mut world = GameWorld {
        id: store::new_id(),
        project_id: project_id.to_owned(),
        world_id: input.world_id,
        name: input.name,
        description: input.description,
        visible: input.visible.unwrap_or(true),
        display_order: input.display_order.unwrap_or(0),
        tags: Json(input.tags.unwrap_or_default()),
        maintenance: input.maintenance.unwrap_or(false),
        maintenance_message: input.maintenance_message,
        maintenance_messages: Json(BTreeMap::new()),
        maintenance_starts_at: None,
        maintenance_ends_at: None,
        maintenance_phase: Phase::Idle.as_str().to_owned(),
        created_at: now,
        updated_at: now,
        in_maintenance: false,
    };
    check_world(&world)?;
    let (phase, transitions) = schedule::on_change(Phase::Idle, schedule::Window::OFF, world.window(), clock_now);
    world.maintenance_phase = phase.as_str().to_owned();
    let world = world.at(clock_now);
    let mut events = vec![(types::WORLD_CREATED, None)];
    events.extend(schedule::announce(&transitions, transition_type));
    store.insert_world(ctx, &world, &events).await?;
    Ok(world)
}

/// Reads the world, applies `change`, and writes it with the implied events; retried when a
/// concurrent update got there first.
async fn modify(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    id: &str,
    now: DateTime<Utc>,
    change: impl Fn(&mut GameWorld),
) -> DomainResult<GameWorld> {
    let change = &change;
    retry_on_stale(|| async move {
        let current = store.get_world(project_id, id).await?;
        let mut world = current.clone();
        change(&mut world);
        check_world(&world)?;
        world.updated_at = store::next_updated_at(current.updated_at);
        let events = change_events(&current, &mut world, now);
        // Events carry whether the world is in maintenance as of this change.
        let world = world.at(now);
        store.update_world(ctx, &world, current.updated_at, &events).await?;
        Ok(world)
    })
    .await
}

pub async fn update(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    id: &str,
    patch: WorldPatch,
    now: DateTime<Utc>,
) -> DomainResult<GameWorld> {
    modify(store, ctx, project_id, id, now, |w| {
        if let Some(v) = &patch.world_id {
            w.world_id = v.clone();
        }
        if let Some(v) = &patch.name {
            w.name = v.clone();
        }
        if let Some(v) = &patch.description {
            w.description = v.clone();
        }
        if let Some(v) = patch.visible {
            w.visible = v;
        }
        if let Some(v) = patch.display_order {
            w.display_order = v;
        }
        if let Some(v) = &patch.tags {
            w.tags = Json(v.clone());
        }
        if let Some(v) = patch.maintenance {
            w.maintenance = v;
            if !v {
                // Switching off clears message and window, as the maintenance route does, so
                // a later switch-on does not revive a stale (possibly ended) window.
                w.maintenance_message = None;
                w.maintenance_messages = Json(BTreeMap::new());
                w.maintenance_starts_at = None;
                w.maintenance_ends_at = None;
            }
        }
        if let Some(v) = &patch.maintenance_message {
            w.maintenance_message = v.clone();
        }
    })
    .await
}

/// Switches maintenance on (with message and optional window) or off (clearing them).
pub async fn set_maintenance(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    id: &str,
    change: MaintenanceChange,
    now: DateTime<Utc>,
) -> DomainResult<GameWorld> {
    modify(store, ctx, project_id, id, now, |w| {
        w.maintenance = change.enabled;
        if change.enabled {
            w.maintenance_message = change.message.clone();
            w.maintenance_messages = Json(change.messages.clone().unwrap_or_default());
            w.maintenance_starts_at = change.starts_at.map(store::truncate);
            w.maintenance_ends_at = change.ends_at.map(store::truncate);
        } else {
            w.maintenance_message = None;
            w.maintenance_messages = Json(BTreeMap::new());
            w.maintenance_starts_at = None;
            w.maintenance_ends_at = None;
        }
    })
    .await
}

/// Fires the world maintenance transitions due at `now` (see [`schedule`]); returns how many.
pub(crate) async fn fire_due(store: &Store, now: DateTime<Utc>) -> DomainResult<usize> {
    let ctx = EventContext::system();
    let mut fired = 0;
    for current in store.worlds_due(now).await? {
        let (phase, transitions) = schedule::due(current.phase(), current.window(), now);
        if transitions.is_empty() {
            continue;
        }
        let mut world = current.clone();
        world.maintenance_phase = phase.as_str().to_owned();
        world.updated_at = store::next_updated_at(current.updated_at);
        let events = schedule::announce(&transitions, transition_type);
        match store.update_world(&ctx, &world, current.updated_at, &events).await {
            // Another node fired it, or staff changed the world (and decided its transitions).
            Err(StoreError::Stale) => continue,
            other => other?,
        }
        fired += transitions.len();
    }
    Ok(fired)
}

pub async fn delete(store: &Store, ctx: &EventContext, project_id: &str, id: &str) -> DomainResult<GameWorld> {
    // Accept the worldId too, like the other routes.
    let world = store.get_world(project_id, id).await?;
    Ok(store.delete_world(ctx, project_id, &world.id).await?)
}
