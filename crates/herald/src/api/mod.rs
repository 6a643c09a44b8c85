//! The HTTP surface under `/api/v1`: one module per resource, each handler thin (extract,
//! check scope, call `domain`, shape the answer).

pub mod cache;
mod chat;
pub mod client;
mod events;
pub mod extract;
pub mod gametalk;
mod liveops;
pub mod openapi;
pub mod ops;
pub mod rate_limit;
mod sessions;
mod tenancy;
mod users;
mod versions;
mod webhooks;
mod worlds;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::ApiError,
    state::AppState,
    store::{Page, PageRequest},
};

/// One page of a list: the items and where they stand in the whole.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageBody<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub limit: u32,
    pub total: i64,
    pub total_pages: i64,
}

impl<T> PageBody<T> {
    pub fn new<U>(page: Page<U>, req: PageRequest, map: impl FnMut(U) -> T) -> Self {
        let limit = i64::from(req.limit);
        PageBody {
            items: page.items.into_iter().map(map).collect(),
            page: req.page,
            limit: req.limit,
            total: page.total,
            total_pages: (page.total + limit - 1) / limit,
        }
    }
}

/// `201 Created` with a JSON body.
pub fn created<T: Serialize>(body: T) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

/// Every `/api/v1` route, each added with `routes!` and so documented by its handler's
/// `#[utoipa::path]` (`tests/it/openapi.rs` fails on a `.route(`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sessions::login))
        .routes(routes!(sessions::refresh))
        .routes(routes!(sessions::me))
        .routes(routes!(tenancy::list_orgs, tenancy::create_org))
        .routes(routes!(tenancy::get_org, tenancy::update_org, tenancy::delete_org))
        .routes(routes!(tenancy::list_projects, tenancy::create_project))
        .routes(routes!(tenancy::get_project, tenancy::update_project, tenancy::delete_project))
        .routes(routes!(tenancy::regenerate_secret))
        .routes(routes!(tenancy::list_keys, tenancy::create_key))
        .routes(routes!(tenancy::get_key, tenancy::revoke_key))
        .routes(routes!(client::list_keys, client::create_key))
        .routes(routes!(client::revoke_key))
        .routes(routes!(tenancy::list_admins, tenancy::create_admin))
        .routes(routes!(tenancy::delete_admin))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::update, users::delete))
        .routes(routes!(users::login))
        .routes(routes!(users::session_token))
        .routes(routes!(users::revoke_sessions))
        .routes(routes!(worlds::list, worlds::create))
        .routes(routes!(worlds::get, worlds::update, worlds::delete))
        .routes(routes!(worlds::maintenance))
        .routes(routes!(liveops::get_maintenance, liveops::set_maintenance))
        .routes(routes!(liveops::list_whitelist, liveops::add_whitelist))
        .routes(routes!(liveops::delete_whitelist))
        .routes(routes!(liveops::list_notices, liveops::create_notice))
        .routes(routes!(liveops::get_notice, liveops::update_notice, liveops::delete_notice))
        .routes(routes!(versions::list, versions::create))
        .routes(routes!(versions::lookup))
        .routes(routes!(versions::get, versions::update, versions::delete))
        .routes(routes!(events::list_types, events::create_type))
        .routes(routes!(events::get_type, events::update_type, events::delete_type))
        .routes(routes!(events::list, events::publish))
        .routes(routes!(events::publish_batch))
        .routes(routes!(events::get))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::enable))
        .routes(routes!(webhooks::disable))
        .routes(routes!(webhooks::get_secret))
        .routes(routes!(webhooks::rotate))
        .routes(routes!(webhooks::test))
        .routes(routes!(webhooks::replay))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::delivery))
        .routes(routes!(webhooks::retry))
        .routes(routes!(chat::list_tags, chat::create_tag))
        .routes(routes!(chat::get_tag, chat::update_tag, chat::delete_tag))
        .routes(routes!(chat::history, chat::send_message))
        .routes(routes!(chat::edit_message, chat::delete_message))
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route; see docs/API.md for the routes")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
}
