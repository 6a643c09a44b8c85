//! Game worlds and their maintenance state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::{
    Page, PageRequest, Store, StoreError, StoreResult, conflict_on_unique, expect_one_row, fetch_page,
    windows::{Announce, Phase, Window, WindowColumns, event_data},
    with_pool, write_with_events,
};
use crate::events::{EventContext, NewEvent, types};

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameWorld {
    pub id: String,
    #[serde(skip)]
    pub project_id: String,
    pub world_id: String,
    pub name: String,
    pub description: Option<String>,
    pub visible: bool,
    pub display_order: i64,
    #[schema(value_type = Vec<String>)]
    pub tags: Json<Vec<String>>,
    /// The maintenance switch staff set, with its optional window
    /// (`maintenanceStartsAt`/`maintenanceEndsAt`); `inMaintenance` says whether it is in
    /// effect now.
    pub maintenance: bool,
    pub maintenance_message: Option<String>,
    /// Per-language messages, keyed by language code.
    #[schema(value_type = BTreeMap<String, String>)]
    pub maintenance_messages: Json<BTreeMap<String, String>>,
    pub maintenance_starts_at: Option<DateTime<Utc>>,
    pub maintenance_ends_at: Option<DateTime<Utc>>,
    /// What has been announced about the window ([`Phase`]).
    #[serde(skip)]
    pub maintenance_phase: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Whether players are kept out right now: `maintenance` is on and now is inside its
    /// window (a missing start or end is unbounded). Computed, not stored.
    #[sqlx(skip)]
    pub in_maintenance: bool,
}

impl GameWorld {
    /// The world with `in_maintenance` computed for `now`.
    pub fn at(mut self, now: DateTime<Utc>) -> GameWorld {
        self.in_maintenance = self.maintenance_active(now);
        self
    }

    /// Whether players are kept out at `now`: maintenance is on and `now` is inside its window
    /// (an open end counts as unbounded).
    pub fn maintenance_active(&self, now: DateTime<Utc>) -> bool {
        self.window().active(now)
    }

    pub fn window(&self) -> Window {
        Window { on: self.maintenance, starts_at: self.maintenance_starts_at, ends_at: self.maintenance_ends_at }
    }

    pub fn phase(&self) -> Phase {
        Phase::parse(&self.maintenance_phase)
    }
}

#[derive(Debug, Clone)]
pub struct WorldFilter {
    pub visible: Option<bool>,
    /// Whether maintenance is in effect at `now` (`inMaintenance`), not the stored switch.
    pub maintenance: Option<bool>,
    pub tag: Option<String>,
    /// The time `maintenance` is judged at.
    pub now: DateTime<Utc>,
}

const WORLD_ID_TAKEN: &str = "a game world with this worldId already exists in the project";

pub fn world_event(ctx: &EventContext, event_type: &'static str, world: &GameWorld) -> NewEvent {
    NewEvent::about(ctx, event_type, (None, Some(&world.project_id)), "world", &world.id, world)
}

/// The event announcing `event`: a start or end carries the world as of the moment it took
/// effect (`inMaintenance` then) and that moment as `effectiveAt`.
fn announced(ctx: &EventContext, (event_type, at): &Announce, world: &GameWorld) -> NewEvent {
    let data = match at {
        Some(at) => event_data(&world.clone().at(*at), Some(*at)),
        None => event_data(world, None),
    };
    NewEvent::about(ctx, event_type, (None, Some(&world.project_id)), "world", &world.id, &data)
}

/// The columns the scheduler reads: worlds with a maintenance transition due at `$1`.
/// Where a world keeps its maintenance window (see `store::windows`).
const WINDOWS: WindowColumns = WindowColumns {
    table: "game_worlds",
    phase: "maintenance_phase",
    on: "maintenance",
    starts_at: "maintenance_starts_at",
    ends_at: "maintenance_ends_at",
};

impl Store {
    pub async fn insert_world(
        &self,
        ctx: &EventContext,
        world: &GameWorld,
        event_types: &[Announce],
    ) -> StoreResult<()> {
        let events: Vec<NewEvent> = event_types.iter().map(|t| announced(ctx, t, world)).collect();
        write_with_events!(self, &events, |tx| {
            sqlx::query(
                "INSERT INTO game_worlds (id, project_id, world_id, name, description, visible, display_order, tags, \
                 maintenance, maintenance_message, maintenance_messages, maintenance_starts_at, maintenance_ends_at, \
                 created_at, updated_at, maintenance_phase) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind(&world.id)
            .bind(&world.project_id)
            .bind(&world.world_id)
            .bind(&world.name)
            .bind(&world.description)
            .bind(world.visible)
            .bind(world.display_order)
            .bind(&world.tags)
            .bind(world.maintenance)
            .bind(&world.maintenance_message)
            .bind(&world.maintenance_messages)
            .bind(world.maintenance_starts_at)
            .bind(world.maintenance_ends_at)
            .bind(world.created_at)
            .bind(world.updated_at)
            .bind(&world.maintenance_phase)
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique(WORLD_ID_TAKEN))?
        })?;
        self.worlds_changed();
        self.schedule_changed();
        Ok(())
    }

    /// A world by its id or, failing that, by its `worldId`.
    pub async fn get_world(&self, project_id: &str, id_or_world_id: &str) -> StoreResult<GameWorld> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, GameWorld>(
                "SELECT * FROM game_worlds WHERE project_id = $1 AND (id = $2 OR world_id = $2) \
                 ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1",
            )
            .bind(project_id)
            .bind(id_or_world_id)
            .fetch_optional(pool)
            .await?
            .ok_or(StoreError::NotFound("game world"))
        })
    }

    pub async fn list_worlds(
        &self,
        project_id: &str,
        f: &WorldFilter,
        page: PageRequest,
    ) -> StoreResult<Page<GameWorld>> {
        // Tags are a JSON array of plain strings (validated: no quotes or escapes), so the
        // quoted tag appears verbatim in the array's text on both backends.
        let tag_pattern = f.tag.as_ref().map(|tag| super::contains_pattern(&format!("\"{tag}\"")));
        with_pool!(self, read, |pool| {
            fetch_page(pool, "display_order, created_at, id", page, |q| {
                q.push("FROM game_worlds WHERE project_id = ").push_bind(project_id);
                if let Some(visible) = f.visible {
                    q.push(if visible { " AND visible = TRUE" } else { " AND visible = FALSE" });
                }
                if let Some(maintenance) = f.maintenance {
                    // `inMaintenance` at `now`, the rule of `GameWorld::maintenance_active` in
                    // SQL, so the filter agrees with what the items show and paging counts the
                    // right set.
                    q.push(if maintenance { " AND " } else { " AND NOT " });
                    q.push("(maintenance = TRUE AND (maintenance_starts_at IS NULL OR maintenance_starts_at <= ");
                    q.push_bind(f.now).push(") AND (maintenance_ends_at IS NULL OR ");
                    q.push_bind(f.now).push(" < maintenance_ends_at))");
                }
                if let Some(pattern) = &tag_pattern {
                    q.push(" AND lower(CAST(tags AS TEXT)) LIKE ").push_bind(pattern.as_str()).push(" ESCAPE '\\'");
                }
            })
            .await
        })
    }

    /// The first maintenance window start or end after `now` among the project's worlds with
    /// maintenance switched on: `inMaintenance` of one of them, and so which worlds a
    /// `maintenance` filter lists, may change then.
    pub async fn next_maintenance_boundary(
        &self,
        project_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let windows: Vec<Window> = with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT maintenance_starts_at, maintenance_ends_at FROM game_worlds WHERE project_id = $1 \
                 AND maintenance = TRUE AND (maintenance_starts_at > $2 OR maintenance_ends_at > $2)",
            )
            .bind(project_id)
            .bind(now)
            .fetch_all(pool)
            .await
        })?;
        Ok(windows.into_iter().flat_map(|(start, end)| [start, end]).flatten().filter(|t| *t > now).min())
    }

    pub async fn update_world(
        &self,
        ctx: &EventContext,
        world: &GameWorld,
        read_at: DateTime<Utc>,
        event_types: &[Announce],
    ) -> StoreResult<()> {
        let events: Vec<NewEvent> = event_types.iter().map(|t| announced(ctx, t, world)).collect();
        write_with_events!(self, &events, |tx| {
            let done = sqlx::query(
                "UPDATE game_worlds SET world_id = $1, name = $2, description = $3, visible = $4, display_order = $5, \
                 tags = $6, maintenance = $7, maintenance_message = $8, maintenance_messages = $9, \
                 maintenance_starts_at = $10, maintenance_ends_at = $11, updated_at = $12, maintenance_phase = $16 \
                 WHERE id = $13 AND project_id = $14 AND updated_at = $15",
            )
            .bind(&world.world_id)
            .bind(&world.name)
            .bind(&world.description)
            .bind(world.visible)
            .bind(world.display_order)
            .bind(&world.tags)
            .bind(world.maintenance)
            .bind(&world.maintenance_message)
            .bind(&world.maintenance_messages)
            .bind(world.maintenance_starts_at)
            .bind(world.maintenance_ends_at)
            .bind(world.updated_at)
            .bind(&world.id)
            .bind(&world.project_id)
            .bind(read_at)
            .bind(&world.maintenance_phase)
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique(WORLD_ID_TAKEN))?;
            expect_one_row(done.rows_affected())?
        })?;
        self.worlds_changed();
        self.schedule_changed();
        Ok(())
    }

    /// Worlds, in every project, with a maintenance transition due at `now`.
    pub async fn worlds_due(&self, now: DateTime<Utc>) -> StoreResult<Vec<GameWorld>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, GameWorld>(sqlx::AssertSqlSafe(WINDOWS.due_query()))
                .bind(now)
                .fetch_all(pool)
                .await?)
        })
    }

    /// The earliest pending start or active end of any world's maintenance window.
    pub async fn next_world_transition(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.next_window_transition(&WINDOWS).await
    }

    pub async fn delete_world(&self, ctx: &EventContext, project_id: &str, id: &str) -> StoreResult<GameWorld> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let world =
                sqlx::query_as::<_, GameWorld>("DELETE FROM game_worlds WHERE project_id = $1 AND id = $2 RETURNING *")
                    .bind(project_id)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound("game world"))?;
            super::events::insert_event!(&mut *tx, &world_event(ctx, types::WORLD_DELETED, &world))?;
            tx.commit().await?;
            self.worlds_changed();
            self.notify_events();
            Ok(world)
        })
    }
}
