use axum::response::Response;
use serde::Deserialize;

use super::{
    PageBody, created,
    extract::{Json, Paging, Path, ProjectScope, Query},
};
use crate::{
    app::State,
    domain::worlds::{self, MaintenanceChange, NewWorld, WorldPatch},
    error::ApiResult,
    store::{self, worlds::GameWorld, worlds::WorldFilter},
};

/// A world as the API shows it: with `inMaintenance` for the current time.
type WorldView = GameWorld;

fn view(world: GameWorld) -> WorldView {
    world.at(store::now())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    page: Option<u32>,
    limit: Option<u32>,
    visible: Option<bool>,
    maintenance: Option<bool>,
    tag: Option<String>,
}

pub async fn list(s: State, scope: ProjectScope, Query(q): Query<ListQuery>) -> ApiResult<Json<PageBody<WorldView>>> {
    scope.require("worlds:read")?;
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let filter = WorldFilter { visible: q.visible, maintenance: q.maintenance, tag: q.tag };
    if let Some(tag) = &filter.tag {
        let mut c = crate::domain::validate::Checks::default();
        c.ident("tag", tag, 32, &[':']);
        c.finish().map_err(|e| crate::error::ApiError::bad_request("invalid_query", e.message))?;
    }
    let page = s.store.list_worlds(&scope.project_id, &filter, req).await?;
    Ok(Json(PageBody::new(page, req, view)))
}

pub async fn create(s: State, scope: ProjectScope, Json(input): Json<NewWorld>) -> ApiResult<Response> {
    scope.require("worlds:write")?;
    let world = worlds::create(&s.store, &scope.events(), &scope.project_id, input).await?;
    Ok(created(view(world)))
}

/// `{id}` is the world's id or its `worldId`.
pub async fn get(s: State, scope: ProjectScope, Path(id): Path<String>) -> ApiResult<Json<WorldView>> {
    scope.require("worlds:read")?;
    Ok(Json(s.store.get_world(&scope.project_id, &id).await?.at(store::now())))
}

pub async fn update(
    s: State,
    scope: ProjectScope,
    Path(id): Path<String>,
    Json(patch): Json<WorldPatch>,
) -> ApiResult<Json<WorldView>> {
    scope.require("worlds:write")?;
    Ok(Json(worlds::update(&s.store, &scope.events(), &scope.project_id, &id, patch).await?.at(store::now())))
}

pub async fn maintenance(
    s: State,
    scope: ProjectScope,
    Path(id): Path<String>,
    Json(change): Json<MaintenanceChange>,
) -> ApiResult<Json<WorldView>> {
    scope.require("worlds:write")?;
    Ok(Json(worlds::set_maintenance(&s.store, &scope.events(), &scope.project_id, &id, change).await?.at(store::now())))
}

pub async fn delete(s: State, scope: ProjectScope, Path(id): Path<String>) -> ApiResult<Json<WorldView>> {
    scope.require("worlds:write")?;
    Ok(Json(worlds::delete(&s.store, &scope.events(), &scope.project_id, &id).await?.at(store::now())))
}
