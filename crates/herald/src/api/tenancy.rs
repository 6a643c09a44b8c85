//! Organizations, projects, API keys and admin accounts.

use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{
    PageBody, created,
    extract::{Json, Paging, Path, Query, Scoped, scopes},
};
use crate::secret::ExposeSecret;
use crate::{
    domain::tenancy::{self, NamePatch, NewAdminUser, NewApiKey, NewOrganization, NewProject, ProjectPatch},
    error::{ApiError, ApiResult},
    state::State,
    store::{StoreError, api_keys::ApiKey, orgs::Organization, payload::AdminUser, payload::Project},
};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageQuery {
    page: Option<u32>,
    limit: Option<u32>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgPageQuery {
    page: Option<u32>,
    limit: Option<u32>,
    organization_id: Option<String>,
}

#[utoipa::path(get, path = "/organizations", tag = "tenancy", params(PageQuery), responses((status = 200, body = PageBody<Organization>)))]
pub async fn list_orgs(
    s: State,
    caller: Scoped<scopes::Admin>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<PageBody<Organization>>> {
    let p = &caller.principal;
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let page = s.store.list_organizations(p.organization_id.as_deref(), req).await?;
    Ok(Json(PageBody::new(page, req, |o| o)))
}

#[utoipa::path(post, path = "/organizations", tag = "tenancy", request_body = NewOrganization, responses((status = 201, body = Organization)))]
pub async fn create_org(
    s: State,
    caller: Scoped<scopes::Admin>,
    Json(input): Json<NewOrganization>,
) -> ApiResult<Response> {
    let org = tenancy::create_organization(&s.store, &caller.principal, &caller.events(), input).await?;
    Ok(created(org))
}

#[utoipa::path(get, path = "/organizations/{id}", tag = "tenancy", params(("id" = String, Path)), responses((status = 200, body = Organization)))]
pub async fn get_org(s: State, caller: Scoped<scopes::Admin>, Path(id): Path<String>) -> ApiResult<Json<Organization>> {
    Ok(Json(tenancy::reachable_organization(&s.store, &caller.principal, &id).await?))
}

#[utoipa::path(method(put, patch), path = "/organizations/{id}", tag = "tenancy", params(("id" = String, Path)), request_body = NamePatch, responses((status = 200, body = Organization)))]
pub async fn update_org(
    s: State,
    caller: Scoped<scopes::Admin>,
    Path(id): Path<String>,
    Json(patch): Json<NamePatch>,
) -> ApiResult<Json<Organization>> {
    Ok(Json(tenancy::update_organization(&s.store, &caller.principal, &caller.events(), &id, patch).await?))
}

#[utoipa::path(delete, path = "/organizations/{id}", tag = "tenancy", params(("id" = String, Path)), responses((status = 200, body = Organization)))]
pub async fn delete_org(
    s: State,
    caller: Scoped<scopes::Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<Organization>> {
    let org = tenancy::reachable_organization(&s.store, &caller.principal, &id).await?;
    let deleted = s.store.delete_organization(&caller.events(), &org.id).await?;
    // Its keys went with it: they must stop working now, not when the key cache expires.
    s.keys.invalidate_organization(&deleted.id);
    s.client.keys.invalidate_organization(&deleted.id);
    Ok(Json(deleted))
}

/// A project's details, with its secret key (the GameTalk `X-Secret-Key`).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectDetails {
    #[serde(flatten)]
    project: Project,
    secret_key: String,
}

impl From<crate::store::orgs::Project> for ProjectDetails {
    fn from(project: crate::store::orgs::Project) -> Self {
        // The one answer that carries the project's secret key, on purpose.
        let secret_key = project.secret_key.expose_secret().to_owned();
        ProjectDetails { project: (&project).into(), secret_key }
    }
}

#[utoipa::path(get, path = "/projects", tag = "tenancy", params(OrgPageQuery), responses((status = 200, body = PageBody<Project>)))]
pub async fn list_projects(
    s: State,
    caller: Scoped<scopes::Admin>,
    Query(q): Query<OrgPageQuery>,
) -> ApiResult<Json<PageBody<Project>>> {
    let p = &caller.principal;
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let org = match (&p.organization_id, q.organization_id.as_deref()) {
        (Some(own), Some(named)) if own != named => {
            return Err(ApiError::not_found("organization"));
        }
        (Some(own), _) => Some(own.as_str()),
        (None, named) => named,
    };
    let page = s.store.list_projects(org, p.project_id.as_deref(), req).await?;
    Ok(Json(PageBody::new(page, req, |p| Project::from(&p))))
}

#[utoipa::path(post, path = "/projects", tag = "tenancy", request_body = NewProject, responses((status = 201, body = ProjectDetails)))]
pub async fn create_project(
    s: State,
    caller: Scoped<scopes::Admin>,
    Json(input): Json<NewProject>,
) -> ApiResult<Response> {
    let project = tenancy::create_project(&s.store, &caller.principal, &caller.events(), input).await?;
    Ok(created(ProjectDetails::from(project)))
}

#[utoipa::path(get, path = "/projects/{id}", tag = "tenancy", params(("id" = String, Path)), responses((status = 200, body = ProjectDetails)))]
pub async fn get_project(
    s: State,
    caller: Scoped<scopes::Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProjectDetails>> {
    Ok(Json(tenancy::reachable_project(&s.store, &caller.principal, &id).await?.into()))
}

#[utoipa::path(method(put, patch), path = "/projects/{id}", tag = "tenancy", params(("id" = String, Path)), request_body = ProjectPatch, responses((status = 200, body = ProjectDetails)))]
pub async fn update_project(
    s: State,
    caller: Scoped<scopes::Admin>,
    Path(id): Path<String>,
    Json(patch): Json<ProjectPatch>,
) -> ApiResult<Json<ProjectDetails>> {
    let project = tenancy::modify_project(&s.store, &caller.principal, &caller.events(), &id, false, patch).await?;
    Ok(Json(project.into()))
}

#[utoipa::path(post, path = "/projects/{id}/secret-key/regenerate", tag = "tenancy", params(("id" = String, Path)), responses((status = 200, body = ProjectDetails)))]
pub async fn regenerate_secret(
    s: State,
    caller: Scoped<scopes::Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProjectDetails>> {
    let project =
        tenancy::modify_project(&s.store, &caller.principal, &caller.events(), &id, true, ProjectPatch::default())
            .await?;
    Ok(Json(project.into()))
}

#[utoipa::path(delete, path = "/projects/{id}", tag = "tenancy", params(("id" = String, Path)), responses((status = 200, body = Project)))]
pub async fn delete_project(
    s: State,
    caller: Scoped<scopes::Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<Project>> {
    let p = &caller.principal;
    if p.project_id.is_some() {
        return Err(ApiError::forbidden("a project key cannot delete projects; use an organization-level credential"));
    }
    let project = tenancy::reachable_project(&s.store, p, &id).await?;
    let deleted = s.store.delete_project(&caller.events(), &project.id).await?;
    // Its keys went with it: they must stop working now, not when the key cache expires.
    s.keys.invalidate_project(&deleted.id);
    s.client.keys.invalidate_project(&deleted.id);
    Ok(Json(Project::from(&deleted)))
}

#[utoipa::path(get, path = "/api-keys", tag = "tenancy", params(OrgPageQuery), responses((status = 200, body = PageBody<ApiKey>)))]
pub async fn list_keys(
    s: State,
    caller: Scoped<scopes::Admin>,
    Query(q): Query<OrgPageQuery>,
) -> ApiResult<Json<PageBody<ApiKey>>> {
    let p = &caller.principal;
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let org = match (&p.organization_id, q.organization_id.as_deref()) {
        (Some(own), Some(named)) if own != named => {
            return Err(ApiError::not_found("organization"));
        }
        (Some(own), _) => Some(own.as_str()),
        (None, named) => named,
    };
    let page = s.store.list_api_keys(org, p.project_id.as_deref(), req).await?;
    Ok(Json(PageBody::new(page, req, |k| k)))
}

#[utoipa::path(post, path = "/api-keys", tag = "tenancy", request_body = NewApiKey, responses((status = 201, body = crate::domain::tenancy::CreatedKey, description = "the key, with `keyValue` shown this once")))]
pub async fn create_key(s: State, caller: Scoped<scopes::Admin>, Json(input): Json<NewApiKey>) -> ApiResult<Response> {
    Ok(created(tenancy::create_api_key(&s.store, &caller.principal, &caller.events(), input).await?))
}

#[utoipa::path(get, path = "/api-keys/{id}", tag = "tenancy", params(("id" = String, Path)), responses((status = 200, body = ApiKey)))]
pub async fn get_key(s: State, caller: Scoped<scopes::Admin>, Path(id): Path<String>) -> ApiResult<Json<ApiKey>> {
    Ok(Json(tenancy::reachable_key(&s.store, &caller.principal, &id).await?))
}

/// Revokes the key (it stays listed, with `revokedAt`).
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "tenancy", params(("id" = String, Path)), responses((status = 200, body = ApiKey)))]
pub async fn revoke_key(s: State, caller: Scoped<scopes::Admin>, Path(id): Path<String>) -> ApiResult<Json<ApiKey>> {
    let key = tenancy::reachable_key(&s.store, &caller.principal, &id).await?;
    let revoked = s.store.revoke_api_key(&caller.events(), &key.id).await?;
    s.keys.invalidate(&key.id);
    Ok(Json(revoked))
}

#[utoipa::path(get, path = "/admin-users", tag = "tenancy", params(OrgPageQuery), responses((status = 200, body = PageBody<AdminUser>)))]
pub async fn list_admins(
    s: State,
    caller: Scoped<scopes::Admin>,
    Query(q): Query<OrgPageQuery>,
) -> ApiResult<Json<PageBody<AdminUser>>> {
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let org = tenancy::target_organization(&s.store, &caller.principal, q.organization_id.as_deref()).await?;
    let page = s.store.list_admin_users(&org, req).await?;
    Ok(Json(PageBody::new(page, req, |a| AdminUser::from(&a))))
}

#[utoipa::path(post, path = "/admin-users", tag = "tenancy", request_body = NewAdminUser, responses((status = 201, body = AdminUser)))]
pub async fn create_admin(
    s: State,
    caller: Scoped<scopes::Admin>,
    Json(input): Json<NewAdminUser>,
) -> ApiResult<Response> {
    let org = tenancy::target_organization(&s.store, &caller.principal, input.organization_id.as_deref()).await?;
    let admin =
        tokio::task::spawn_blocking(move || tenancy::new_admin_user(&org, &input.email, &input.password, input.role))
            .await
            .map_err(ApiError::internal)??;
    s.store.insert_admin_user(&caller.events(), &admin).await?;
    Ok(created(AdminUser::from(&admin)))
}

#[utoipa::path(delete, path = "/admin-users/{id}", tag = "tenancy", params(("id" = String, Path)), responses((status = 200, body = AdminUser)))]
pub async fn delete_admin(
    s: State,
    caller: Scoped<scopes::Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<AdminUser>> {
    let p = &caller.principal;
    let admin = match s.store.get_admin_user(&id).await {
        Ok(admin) if p.reaches_organization(&admin.organization_id) => admin,
        Ok(_) | Err(StoreError::NotFound(_)) => return Err(ApiError::not_found("admin user")),
        Err(e) => return Err(e.into()),
    };
    let deleted = s.store.delete_admin_user(&caller.events(), &admin.organization_id, &admin.id).await?;
    Ok(Json(AdminUser::from(&deleted)))
}
