//! Live operations: game-wide maintenance, its whitelist, and notices. Maintenance and the
//! whitelist need the worlds scopes (`worlds:read` / `worlds:write`), as world maintenance
//! does; notices too: they are shown beside the worlds a client lists.

use axum::response::Response;
use serde::Deserialize;

use super::{
    PageBody, created,
    extract::{Json, Paging, Path, ProjectScope, Query, scopes},
};
use crate::{
    domain::{
        maintenance::{self, GameMaintenanceChange, NewWhitelistEntry},
        notices::{self, NewNotice, NoticePatch},
    },
    error::ApiResult,
    state::State,
    store::{
        maintenance::{ProjectMaintenance, WhitelistEntry},
        notices::Notice,
    },
};

#[utoipa::path(get, path = "/maintenance", tag = "maintenance", responses((status = 200, body = ProjectMaintenance, description = "the game-wide maintenance; off if never set")))]
pub async fn get_maintenance(s: State, scope: ProjectScope<scopes::WorldsRead>) -> ApiResult<Json<ProjectMaintenance>> {
    Ok(Json(maintenance::get(&s.store, &scope.project_id, s.clock.now()).await?))
}

/// Switches game-wide maintenance on (now, or for a window: a later `startsAt` schedules it)
/// or off. Every world is in maintenance while it is in effect.
#[utoipa::path(put, path = "/maintenance", tag = "maintenance", request_body = GameMaintenanceChange, responses((status = 200, body = ProjectMaintenance)))]
pub async fn set_maintenance(
    s: State,
    scope: ProjectScope<scopes::WorldsWrite>,
    Json(change): Json<GameMaintenanceChange>,
) -> ApiResult<Json<ProjectMaintenance>> {
    Ok(Json(maintenance::set(&s.store, &scope.events(), &scope.project_id, change, s.clock.now()).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    page: Option<u32>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/maintenance/whitelist", tag = "maintenance", params(PageQuery), responses((status = 200, body = PageBody<WhitelistEntry>)))]
pub async fn list_whitelist(
    s: State,
    scope: ProjectScope<scopes::WorldsRead>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<PageBody<WhitelistEntry>>> {
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let page = s.store.list_whitelist(&scope.project_id, req).await?;
    Ok(Json(PageBody::new(page, req, |e| e)))
}

/// Adds a player (`playerId`) or an address range (`ipRange`, IPv4 or IPv6 CIDR) that
/// maintenance does not keep out.
#[utoipa::path(post, path = "/maintenance/whitelist", tag = "maintenance", request_body = NewWhitelistEntry, responses((status = 201, body = WhitelistEntry)))]
pub async fn add_whitelist(
    s: State,
    scope: ProjectScope<scopes::WorldsWrite>,
    Json(input): Json<NewWhitelistEntry>,
) -> ApiResult<Response> {
    let entry =
        maintenance::add_to_whitelist(&s.store, &scope.events(), &scope.project_id, input, s.clock.now()).await?;
    Ok(created(entry))
}

#[utoipa::path(delete, path = "/maintenance/whitelist/{id}", tag = "maintenance", params(("id" = String, Path)), responses((status = 200, body = WhitelistEntry, description = "the deleted entry")))]
pub async fn delete_whitelist(
    s: State,
    scope: ProjectScope<scopes::WorldsWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<WhitelistEntry>> {
    Ok(Json(s.store.delete_whitelist_entry(&scope.events(), &scope.project_id, &id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoticeQuery {
    page: Option<u32>,
    limit: Option<u32>,
    /// Only notices shown now (enabled and inside their window).
    active: Option<bool>,
}

#[utoipa::path(get, path = "/notices", tag = "notices", params(NoticeQuery), responses((status = 200, body = PageBody<Notice>)))]
pub async fn list_notices(
    s: State,
    scope: ProjectScope<scopes::WorldsRead>,
    Query(q): Query<NoticeQuery>,
) -> ApiResult<Json<PageBody<Notice>>> {
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let now = s.clock.now();
    let page = s.store.list_notices(&scope.project_id, q.active.filter(|a| *a).map(|_| now), req).await?;
    Ok(Json(PageBody::new(page, req, |n| n.at(now))))
}

/// A notice that starts later (`startsAt`) is published (`notice.published`, and pushed to
/// player sockets) when it starts; one without `startsAt` at once.
#[utoipa::path(post, path = "/notices", tag = "notices", request_body = NewNotice, responses((status = 201, body = Notice)))]
pub async fn create_notice(
    s: State,
    scope: ProjectScope<scopes::WorldsWrite>,
    Json(input): Json<NewNotice>,
) -> ApiResult<Response> {
    Ok(created(notices::create(&s.store, &scope.events(), &scope.project_id, input, s.clock.now()).await?))
}

#[utoipa::path(get, path = "/notices/{id}", tag = "notices", params(("id" = String, Path)), responses((status = 200, body = Notice)))]
pub async fn get_notice(
    s: State,
    scope: ProjectScope<scopes::WorldsRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<Notice>> {
    Ok(Json(s.store.get_notice(&scope.project_id, &id).await?.at(s.clock.now())))
}

#[utoipa::path(method(put, patch), path = "/notices/{id}", tag = "notices", params(("id" = String, Path)), request_body = NoticePatch, responses((status = 200, body = Notice)))]
pub async fn update_notice(
    s: State,
    scope: ProjectScope<scopes::WorldsWrite>,
    Path(id): Path<String>,
    Json(patch): Json<NoticePatch>,
) -> ApiResult<Json<Notice>> {
    Ok(Json(notices::update(&s.store, &scope.events(), &scope.project_id, &id, patch, s.clock.now()).await?))
}

#[utoipa::path(delete, path = "/notices/{id}", tag = "notices", params(("id" = String, Path)), responses((status = 200, body = Notice, description = "the deleted notice")))]
pub async fn delete_notice(
    s: State,
    scope: ProjectScope<scopes::WorldsWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<Notice>> {
    Ok(Json(notices::delete(&s.store, &scope.events(), &scope.project_id, &id, s.clock.now()).await?))
}
