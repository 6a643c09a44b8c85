use serde::Serialize;

use super::extract::{Caller, Json};
use crate::{
    app::State,
    auth::PrincipalKind,
    domain::session::{self, Login, Refresh, Tokens},
    error::ApiResult,
};

#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = Login, responses((status = 200, body = Tokens)))]
pub async fn login(s: State, Json(input): Json<Login>) -> ApiResult<Json<Tokens>> {
    Ok(Json(session::login(&s.store, &s.jwt, &s.config.auth, input).await?))
}

#[utoipa::path(post, path = "/auth/refresh", tag = "auth", security(()), request_body = Refresh, responses((status = 200, body = Tokens)))]
pub async fn refresh(s: State, Json(input): Json<Refresh>) -> ApiResult<Json<Tokens>> {
    Ok(Json(session::refresh(&s.store, &s.jwt, &s.config.auth, input).await?))
}

/// Who the presented credential is: handy to check a key or token.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    kind: &'static str,
    id: String,
    organization_id: Option<String>,
    project_id: Option<String>,
    scopes: Vec<String>,
}

#[utoipa::path(get, path = "/me", tag = "auth", responses((status = 200, body = Me)))]
pub async fn me(caller: Caller) -> Json<Me> {
    let p = caller.principal;
    let (kind, id) = match p.kind {
        PrincipalKind::ApiKey { id } => ("api_key", id),
        PrincipalKind::Admin { id } => ("admin", id),
    };
    Json(Me { kind, id, organization_id: p.organization_id, project_id: p.project_id, scopes: p.scopes })
}
