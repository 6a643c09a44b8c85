//! Client keys, managed with the server credentials (scope `admin` in the project).

#[allow(unused_imports)]
use super::*;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyPageQuery {
    pub(super) page: Option<u32>,
    pub(super) limit: Option<u32>,
}

/// The project's client keys (never their values).
#[utoipa::path(get, path = "/client-keys", tag = "client", params(KeyPageQuery), responses((status = 200, body = PageBody<ClientKey>)))]
pub async fn list_keys(
    s: State,
    scope: ProjectScope<scopes::Admin>,
    Query(q): Query<KeyPageQuery>,
) -> ApiResult<Json<PageBody<ClientKey>>> {
    let req = Paging { page: q.page, limit: q.limit }.request()?;
    let page = s.store.list_client_keys(&scope.project_id, req).await?;
    Ok(Json(PageBody::new(page, req, |k| k)))
}

/// A new client key for the project, to ship inside game builds; its value (`hc_...`) is in
/// this answer only.
#[utoipa::path(post, path = "/client-keys", tag = "client", request_body = NewClientKey, responses((status = 201, body = CreatedClientKey, description = "the key, with `keyValue` shown this once")))]
pub async fn create_key(
    s: State,
    scope: ProjectScope<scopes::Admin>,
    Json(input): Json<NewClientKey>,
) -> ApiResult<Response> {
    Ok(created(client::create_key(&s.store, &scope.events(), &scope.project_id, input).await?))
}

/// Revokes the client key at once on this node (other nodes: within `auth.key_cache_ttl_secs`);
/// it stays listed, with `revokedAt`.
#[utoipa::path(delete, path = "/client-keys/{id}", tag = "client", params(("id" = String, Path)), responses((status = 200, body = ClientKey)))]
pub async fn revoke_key(
    s: State,
    scope: ProjectScope<scopes::Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientKey>> {
    let revoked = s.store.revoke_client_key(&scope.events(), &scope.project_id, &id).await?;
    s.client.keys.invalidate(&revoked.id);
    Ok(Json(revoked))
}
