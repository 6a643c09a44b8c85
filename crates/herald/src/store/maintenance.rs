//! Game-wide maintenance (one row per project) and the maintenance whitelist.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::{
    Page, PageRequest, Store, StoreError, StoreResult, conflict_on_unique, expect_one_row,
    windows::{Announce, Phase, Window, WindowColumns, event_data},
    with_pool, write_with_events,
};
use crate::events::{EventContext, NewEvent, types};

/// The game-wide maintenance of a project.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectMaintenance {
    #[serde(skip)]
    pub project_id: String,
    /// The switch staff set, with its optional window; `inMaintenance` says whether it is in
    /// effect now.
    pub enabled: bool,
    /// Messages for players, keyed by language code.
    #[schema(value_type = BTreeMap<String, String>)]
    pub messages: Json<BTreeMap<String, String>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// What has been announced ([`Phase`]).
    #[serde(skip)]
    pub phase: String,
    pub updated_at: DateTime<Utc>,
    /// Whether the game is in maintenance now: enabled and inside its window. Computed.
    #[sqlx(skip)]
    pub in_maintenance: bool,
}

impl ProjectMaintenance {
    /// The state of a project that never set any: off.
    pub fn off(project_id: &str, now: DateTime<Utc>) -> ProjectMaintenance {
        ProjectMaintenance {
            project_id: project_id.to_owned(),
            enabled: false,
            messages: Json(BTreeMap::new()),
            starts_at: None,
            ends_at: None,
            phase: Phase::Idle.as_str().to_owned(),
            updated_at: now,
            in_maintenance: false,
        }
    }

    pub fn window(&self) -> Window {
        Window { on: self.enabled, starts_at: self.starts_at, ends_at: self.ends_at }
    }

    pub fn phase(&self) -> Phase {
        Phase::parse(&self.phase)
    }

    /// With `in_maintenance` computed for `now`.
    pub fn at(mut self, now: DateTime<Utc>) -> ProjectMaintenance {
        self.in_maintenance = self.window().active(now);
        self
    }
}

fn announced(ctx: &EventContext, (event_type, at): &Announce, m: &ProjectMaintenance) -> NewEvent {
    let data = match at {
        Some(at) => event_data(&m.clone().at(*at), Some(*at)),
        None => event_data(m, None),
    };
    NewEvent::about(ctx, event_type, (None, Some(&m.project_id)), "maintenance", &m.project_id, &data)
}

/// One whitelist entry: a player (user id) or an address range.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhitelistEntry {
    pub id: String,
    #[serde(skip)]
    pub project_id: String,
    /// A player's user id (the `id` of `/users`).
    pub player_id: Option<String>,
    /// An IPv4 or IPv6 range in CIDR form (a single address is `/32` or `/128`).
    pub ip_range: Option<String>,
    pub note: Option<String>,
    /// After this time the entry no longer applies.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

fn whitelist_event(ctx: &EventContext, event_type: &'static str, e: &WhitelistEntry) -> NewEvent {
    NewEvent::about(ctx, event_type, (None, Some(&e.project_id)), "maintenance_whitelist", &e.id, e)
}

const ALREADY_LISTED: &str = "this player or address range is already on the whitelist";

/// Where a project keeps its game-wide maintenance window (see `store::windows`).
const WINDOWS: WindowColumns = WindowColumns {
    table: "project_maintenance",
    phase: "phase",
    on: "enabled",
    starts_at: "starts_at",
    ends_at: "ends_at",
};

impl Store {
    /// The project's game-wide maintenance, if it was ever set.
    pub async fn get_project_maintenance(&self, project_id: &str) -> StoreResult<Option<ProjectMaintenance>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, ProjectMaintenance>("SELECT * FROM project_maintenance WHERE project_id = $1")
                .bind(project_id)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// Writes `m` if the stored row is still the one read at `read_at` (`None`: there was
    /// none), with its events. [`StoreError::Stale`] when it changed meanwhile.
    pub async fn put_project_maintenance(
        &self,
        ctx: &EventContext,
        m: &ProjectMaintenance,
        read_at: Option<DateTime<Utc>>,
        event_types: &[Announce],
    ) -> StoreResult<()> {
        let events: Vec<NewEvent> = event_types.iter().map(|t| announced(ctx, t, m)).collect();
        write_with_events!(self, &events, |tx| {
            let done =
                match read_at {
                    // Two first writes race on the primary key: the loser re-reads.
                    None => sqlx::query(
                        "INSERT INTO project_maintenance (project_id, enabled, messages, starts_at, ends_at, phase, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (project_id) DO NOTHING",
                    )
                    .bind(&m.project_id)
                    .bind(m.enabled)
                    .bind(&m.messages)
                    .bind(m.starts_at)
                    .bind(m.ends_at)
                    .bind(&m.phase)
                    .bind(m.updated_at)
                    .execute(&mut *tx)
                    .await?,
                    Some(read_at) => {
                        sqlx::query(
                            "UPDATE project_maintenance SET enabled = $2, messages = $3, starts_at = $4, ends_at = $5, \
                     phase = $6, updated_at = $7 WHERE project_id = $1 AND updated_at = $8",
                        )
                        .bind(&m.project_id)
                        .bind(m.enabled)
                        .bind(&m.messages)
                        .bind(m.starts_at)
                        .bind(m.ends_at)
                        .bind(&m.phase)
                        .bind(m.updated_at)
                        .bind(read_at)
                        .execute(&mut *tx)
                        .await?
                    }
                };
            expect_one_row(done.rows_affected())?
        })?;
        // Cached world lists do not show it, but client answers may.
        self.worlds_changed();
        self.schedule_changed();
        Ok(())
    }

    /// Projects whose game-wide maintenance has a transition due at `now`.
    pub async fn project_maintenance_due(&self, now: DateTime<Utc>) -> StoreResult<Vec<ProjectMaintenance>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, ProjectMaintenance>(sqlx::AssertSqlSafe(WINDOWS.due_query()))
                .bind(now)
                .fetch_all(pool)
                .await?)
        })
    }

    /// The earliest pending start or active end of any project's game-wide maintenance.
    pub async fn next_project_maintenance_transition(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.next_window_transition(&WINDOWS).await
    }

    pub async fn insert_whitelist_entry(&self, ctx: &EventContext, e: &WhitelistEntry) -> StoreResult<()> {
        let event = whitelist_event(ctx, types::MAINTENANCE_WHITELIST_CREATED, e);
        write_with_events!(self, [&event], |tx| {
            sqlx::query(
                "INSERT INTO maintenance_whitelist (id, project_id, player_id, ip_range, note, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&e.id)
            .bind(&e.project_id)
            .bind(&e.player_id)
            .bind(&e.ip_range)
            .bind(&e.note)
            .bind(e.expires_at)
            .bind(e.created_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique(ALREADY_LISTED))?
        })
    }

    pub async fn list_whitelist(&self, project_id: &str, page: PageRequest) -> StoreResult<Page<WhitelistEntry>> {
        with_pool!(self, read, |pool| {
            super::fetch_page(pool, "created_at, id", page, |q| {
                q.push("FROM maintenance_whitelist WHERE project_id = ").push_bind(project_id);
            })
            .await
        })
    }

    /// Entries that apply at `now`: unexpired, naming `player_id` or holding an address range
    /// (ranges are matched by the caller: the database has no common CIDR type).
    pub async fn whitelist_candidates(
        &self,
        project_id: &str,
        player_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<WhitelistEntry>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, WhitelistEntry>(
                "SELECT * FROM maintenance_whitelist WHERE project_id = $1 \
                 AND (expires_at IS NULL OR expires_at > $2) AND (ip_range IS NOT NULL OR player_id = $3)",
            )
            .bind(project_id)
            .bind(now)
            .bind(player_id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// The first expiry after `now` among the project's whitelist entries.
    pub async fn next_whitelist_expiry(
        &self,
        project_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_scalar::<_, DateTime<Utc>>(
                "SELECT expires_at FROM maintenance_whitelist WHERE project_id = $1 AND expires_at > $2 \
                 ORDER BY expires_at LIMIT 1",
            )
            .bind(project_id)
            .bind(now)
            .fetch_optional(pool)
            .await?)
        })
    }

    pub async fn delete_whitelist_entry(
        &self,
        ctx: &EventContext,
        project_id: &str,
        id: &str,
    ) -> StoreResult<WhitelistEntry> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let entry = sqlx::query_as::<_, WhitelistEntry>(
                "DELETE FROM maintenance_whitelist WHERE project_id = $1 AND id = $2 RETURNING *",
            )
            .bind(project_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("whitelist entry"))?;
            super::events::insert_event!(
                &mut *tx,
                &whitelist_event(ctx, types::MAINTENANCE_WHITELIST_DELETED, &entry)
            )?;
            tx.commit().await?;
            self.notify_events();
            Ok(entry)
        })
    }
}
