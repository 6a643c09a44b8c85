use axum::response::Response;
use serde::Deserialize;

use super::{
    PageBody, created,
    extract::{Json, OptionalJson, Paging, Path, ProjectScope, Query, scopes},
};
use crate::vocab::UserStatus;
use crate::{
    domain::{
        player_session::{self, SessionRequest, SessionToken},
        users::{self, NewUser, UserPatch},
    },
    error::{ApiError, ApiResult},
    state::State,
    store::users::{User, UserFilter},
};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// From 1.
    page: Option<u32>,
    /// 1 to 100 (20).
    limit: Option<u32>,
    role: Option<String>,
    /// `active`, `inactive`, `suspended` or `banned`.
    status: Option<String>,
    /// Case-insensitive substring of username, email or display name.
    q: Option<String>,
}

#[utoipa::path(get, path = "/users", tag = "users", params(ListQuery), responses((status = 200, body = PageBody<User>)))]
pub async fn list(
    s: State,
    scope: ProjectScope<scopes::UsersRead>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<PageBody<User>>> {
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    if let Some(status) = &q.status
        && UserStatus::parse(status).is_none()
    {
        return Err(ApiError::bad_request("invalid_query", format!("status must be one of: {}", UserStatus::names())));
    }
    if q.q.as_ref().is_some_and(|q| q.chars().count() > 100) {
        return Err(ApiError::bad_request("invalid_query", "q must be at most 100 characters"));
    }
    let filter = UserFilter { role: q.role, status: q.status, q: q.q.filter(|q| !q.is_empty()) };
    let page = s.store.list_users(&scope.project_id, &filter, req).await?;
    Ok(Json(PageBody::new(page, req, |u| u)))
}

#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser, responses((status = 201, body = User)))]
pub async fn create(
    s: State,
    scope: ProjectScope<scopes::UsersWrite>,
    Json(input): Json<NewUser>,
) -> ApiResult<Response> {
    Ok(created(users::create(&s.store, &scope.events(), &scope.project_id, input).await?))
}

#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = String, Path, description = "the player's id")), responses((status = 200, body = User)))]
pub async fn get(s: State, scope: ProjectScope<scopes::UsersRead>, Path(id): Path<String>) -> ApiResult<Json<User>> {
    Ok(Json(s.store.get_user(&scope.project_id, &id).await?))
}

#[utoipa::path(method(put, patch), path = "/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UserPatch, responses((status = 200, body = User)))]
pub async fn update(
    s: State,
    scope: ProjectScope<scopes::UsersWrite>,
    Path(id): Path<String>,
    Json(patch): Json<UserPatch>,
) -> ApiResult<Json<User>> {
    Ok(Json(users::update(&s.store, &scope.events(), &scope.project_id, &id, patch).await?))
}

#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = String, Path)), responses((status = 200, body = User, description = "the deleted player")))]
pub async fn delete(
    s: State,
    scope: ProjectScope<scopes::UsersWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    Ok(Json(s.store.delete_user(&scope.events(), &scope.project_id, &id).await?))
}

/// A game server reports that the player signed in.
#[utoipa::path(post, path = "/users/{id}/login", tag = "users", params(("id" = String, Path)), responses((status = 200, body = User)))]
pub async fn login(s: State, scope: ProjectScope<scopes::UsersWrite>, Path(id): Path<String>) -> ApiResult<Json<User>> {
    Ok(Json(users::record_login(&s.store, &scope.events(), &scope.project_id, &id).await?))
}

/// A game server asks for a session token for the player's game client (socket.io gateway).
#[utoipa::path(post, path = "/users/{id}/session-token", tag = "users", params(("id" = String, Path)), request_body(content = Option<SessionRequest>, description = "optional"), responses((status = 201, body = SessionToken)))]
pub async fn session_token(
    s: State,
    scope: ProjectScope<scopes::UsersWrite>,
    Path(id): Path<String>,
    OptionalJson(input): OptionalJson<SessionRequest>,
) -> ApiResult<Response> {
    let token: SessionToken =
        player_session::issue(&s.store, &s.jwt, &s.config.realtime, &scope.project_id, &id, input).await?;
    Ok(created(token))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Revoked {
    /// Ids of the sessions revoked.
    revoked: Vec<String>,
}

/// Revokes every live session token of the player; their sockets are disconnected.
#[utoipa::path(delete, path = "/users/{id}/sessions", tag = "users", params(("id" = String, Path)), responses((status = 200, body = Revoked)))]
pub async fn revoke_sessions(
    s: State,
    scope: ProjectScope<scopes::UsersWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<Revoked>> {
    let revoked = player_session::revoke(&s.store, &scope.events(), &scope.project_id, &id).await?;
    Ok(Json(Revoked { revoked }))
}
