use axum::response::Response;
use serde::Deserialize;

use super::{
    PageBody, created,
    extract::{Json, Paging, Path, ProjectScope, Query, scopes},
};
use crate::vocab::VersionStatus;
use crate::{
    domain::versions::{self, LookupAnswer, NewVersion, VersionPatch},
    error::{ApiError, ApiResult},
    state::State,
    store::versions::{ClientVersion, VersionFilter},
};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    page: Option<u32>,
    limit: Option<u32>,
    channel: Option<String>,
    sub_channel: Option<String>,
    status: Option<String>,
}

#[utoipa::path(get, path = "/client-versions", tag = "versions", params(ListQuery), responses((status = 200, body = PageBody<ClientVersion>)))]
pub async fn list(
    s: State,
    scope: ProjectScope<scopes::VersionsRead>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<PageBody<ClientVersion>>> {
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    if let Some(status) = &q.status
        && VersionStatus::parse(status).is_none()
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("status must be one of: {}", VersionStatus::names()),
        ));
    }
    let filter = VersionFilter { channel: q.channel, sub_channel: q.sub_channel, status: q.status };
    let page = s.store.list_client_versions(&scope.project_id, &filter, req).await?;
    Ok(Json(PageBody::new(page, req, |v| v)))
}

#[utoipa::path(post, path = "/client-versions", tag = "versions", request_body = NewVersion, responses((status = 201, body = ClientVersion)))]
pub async fn create(
    s: State,
    scope: ProjectScope<scopes::VersionsWrite>,
    Json(input): Json<NewVersion>,
) -> ApiResult<Response> {
    Ok(created(versions::create(&s.store, &scope.events(), &scope.project_id, input).await?))
}

#[utoipa::path(get, path = "/client-versions/{id}", tag = "versions", params(("id" = String, Path)), responses((status = 200, body = ClientVersion)))]
pub async fn get(
    s: State,
    scope: ProjectScope<scopes::VersionsRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientVersion>> {
    Ok(Json(s.store.get_client_version(&scope.project_id, &id).await?))
}

#[utoipa::path(method(put, patch), path = "/client-versions/{id}", tag = "versions", params(("id" = String, Path)), request_body = VersionPatch, responses((status = 200, body = ClientVersion)))]
pub async fn update(
    s: State,
    scope: ProjectScope<scopes::VersionsWrite>,
    Path(id): Path<String>,
    Json(patch): Json<VersionPatch>,
) -> ApiResult<Json<ClientVersion>> {
    Ok(Json(versions::update(&s.store, &scope.events(), &scope.project_id, &id, patch).await?))
}

#[utoipa::path(delete, path = "/client-versions/{id}", tag = "versions", params(("id" = String, Path)), responses((status = 200, body = ClientVersion, description = "the deleted version")))]
pub async fn delete(
    s: State,
    scope: ProjectScope<scopes::VersionsWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientVersion>> {
    Ok(Json(s.store.delete_client_version(&scope.events(), &scope.project_id, &id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    channel: Option<String>,
    sub_channel: Option<String>,
    version: Option<String>,
}

#[utoipa::path(get, path = "/client-versions/lookup", tag = "versions", params(LookupQuery), responses((status = 200, body = LookupAnswer)))]
pub async fn lookup(
    s: State,
    scope: ProjectScope<scopes::VersionsRead>,
    Query(q): Query<LookupQuery>,
) -> ApiResult<Json<LookupAnswer>> {
    let (Some(channel), Some(version)) = (q.channel, q.version) else {
        return Err(ApiError::bad_request(
            "invalid_query",
            "channel and version are required, e.g. ?channel=PC&subChannel=Steam&version=1.2.3",
        ));
    };
    let sub_channel = q.sub_channel.unwrap_or_default();
    Ok(Json(versions::lookup(&s.store, &scope.project_id, &channel, &sub_channel, &version).await?))
}
