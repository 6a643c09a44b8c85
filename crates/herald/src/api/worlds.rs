use axum::{
    http::header,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    PageBody, created,
    extract::{Json, Paging, Path, ProjectScope, Query, scopes},
};
use crate::{
    domain::worlds::{self, MaintenanceChange, NewWorld, WorldPatch},
    error::ApiResult,
    state::State,
    store::{self, worlds::GameWorld, worlds::WorldFilter},
};

/// A world as the API shows it: with `inMaintenance` for the current time.
type WorldView = GameWorld;

/// `inMaintenance` is computed at the wall-clock time (`store::now`); changes decide their
/// maintenance transitions at the app's clock (`s.clock`, the same time outside tests, where
/// it is moved by hand to drive the scheduler).
fn view(world: GameWorld) -> WorldView {
    world.at(store::now())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    page: Option<u32>,
    limit: Option<u32>,
    visible: Option<bool>,
    /// Worlds whose `inMaintenance` is this now (maintenance in effect), not the stored switch.
    maintenance: Option<bool>,
    tag: Option<String>,
}

/// Served from [`super::cache`] when this node has an answer for the same query that is
/// still current; see there for when a change becomes visible.
#[utoipa::path(get, path = "/game-worlds", tag = "worlds", params(ListQuery), responses((status = 200, body = PageBody<GameWorld>)))]
pub async fn list(
    s: State,
    scope: ProjectScope<scopes::WorldsRead>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let now = store::now();
    let filter = WorldFilter { visible: q.visible, maintenance: q.maintenance, tag: q.tag, now };
    if let Some(tag) = &filter.tag {
        let mut c = crate::domain::validate::Checks::default();
        c.ident("tag", tag, 32, &[':']);
        c.finish().map_err(|e| crate::error::ApiError::bad_request("invalid_query", e.to_string()))?;
    }
    let key = format!(
        "{}|{}|{}|{:?}|{:?}|{:?}",
        scope.project_id, req.page, req.limit, filter.visible, filter.maintenance, filter.tag
    );
    // Read the generation before the database: a change committed in between makes this
    // answer stale at once.
    let generation = s.store.worlds_generation();
    if let Some(body) = s.list_cache.get(&key, generation) {
        return Ok(json_bytes(body));
    }
    let page = s.store.list_worlds(&scope.project_id, &filter, req).await?;
    // A `maintenance` filter's answer changes when any world's window opens or closes, also
    // one it does not list (a window that opens later); otherwise only the listed worlds'
    // `inMaintenance` can change.
    let boundary = match filter.maintenance {
        Some(_) => s.store.next_maintenance_boundary(&scope.project_id, now).await?,
        None => next_boundary(&page.items, now),
    };
    let valid_for = boundary.map(|at| (at - now).to_std().unwrap_or_default());
    let body = Bytes::from(
        serde_json::to_vec(&PageBody::new(page, req, |w| w.at(now))).map_err(crate::error::ApiError::internal)?,
    );
    s.list_cache.put(key, generation, body.clone(), valid_for);
    Ok(json_bytes(body))
}

/// The first maintenance window start or end after `now` among `worlds`: `inMaintenance`
/// may change then.
fn next_boundary(worlds: &[GameWorld], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    worlds
        .iter()
        .filter(|w| w.maintenance)
        .flat_map(|w| [w.maintenance_starts_at, w.maintenance_ends_at])
        .flatten()
        .filter(|t| *t > now)
        .min()
}

fn json_bytes(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[utoipa::path(post, path = "/game-worlds", tag = "worlds", request_body = NewWorld, responses((status = 201, body = GameWorld)))]
pub async fn create(
    s: State,
    scope: ProjectScope<scopes::WorldsWrite>,
    Json(input): Json<NewWorld>,
) -> ApiResult<Response> {
    let world = worlds::create(&s.store, &scope.events(), &scope.project_id, input, s.clock.now()).await?;
    Ok(created(view(world)))
}

/// `{id}` is the world's id or its `worldId`.
#[utoipa::path(get, path = "/game-worlds/{id}", tag = "worlds", params(("id" = String, Path, description = "the world's id or its worldId")), responses((status = 200, body = GameWorld)))]
pub async fn get(
    s: State,
    scope: ProjectScope<scopes::WorldsRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<WorldView>> {
    Ok(Json(s.store.get_world(&scope.project_id, &id).await?.at(store::now())))
}

#[utoipa::path(method(put, patch), path = "/game-worlds/{id}", tag = "worlds", params(("id" = String, Path)), request_body = WorldPatch, responses((status = 200, body = GameWorld)))]
pub async fn update(
    s: State,
    scope: ProjectScope<scopes::WorldsWrite>,
    Path(id): Path<String>,
    Json(patch): Json<WorldPatch>,
) -> ApiResult<Json<WorldView>> {
    let now = s.clock.now();
    Ok(Json(view(worlds::update(&s.store, &scope.events(), &scope.project_id, &id, patch, now).await?)))
}

#[utoipa::path(put, path = "/game-worlds/{id}/maintenance", tag = "worlds", params(("id" = String, Path)), request_body = MaintenanceChange, responses((status = 200, body = GameWorld)))]
pub async fn maintenance(
    s: State,
    scope: ProjectScope<scopes::WorldsWrite>,
    Path(id): Path<String>,
    Json(change): Json<MaintenanceChange>,
) -> ApiResult<Json<WorldView>> {
    let now = s.clock.now();
    Ok(Json(view(worlds::set_maintenance(&s.store, &scope.events(), &scope.project_id, &id, change, now).await?)))
}

#[utoipa::path(delete, path = "/game-worlds/{id}", tag = "worlds", params(("id" = String, Path)), responses((status = 200, body = GameWorld, description = "the deleted world")))]
pub async fn delete(
    s: State,
    scope: ProjectScope<scopes::WorldsWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<WorldView>> {
    Ok(Json(view(worlds::delete(&s.store, &scope.events(), &scope.project_id, &id).await?)))
}
