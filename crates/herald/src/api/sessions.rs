use axum::{extract::ConnectInfo, http::StatusCode};
use serde::Serialize;

use super::extract::{Caller, Json};
use crate::{
    auth::PrincipalKind,
    domain::{
        DomainError,
        session::{self, Login, Refresh, Tokens},
    },
    error::{ApiError, ApiResult},
    metrics as m,
    net::PeerAddr,
    state::State,
};

/// Throttled per account and per client address (`auth::throttle`): a throttled attempt is
/// answered 429 before its password is checked, so it costs no hashing and tells nothing.
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = Login, responses((status = 200, body = Tokens)))]
pub async fn login(
    s: State,
    peer: Option<axum::Extension<ConnectInfo<PeerAddr>>>,
    Json(input): Json<Login>,
) -> ApiResult<Json<Tokens>> {
    let address = peer.map(|p| p.0.0.0.ip());
    let account = input.email.clone();
    let metrics = s.store.metrics();
    if let Some(wait) = s.login_throttle.check(&account, address, s.clock.now()) {
        // Whole seconds, rounded up: a client that waits this long is let through.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        metrics.record(|| metrics::counter!(m::ADMIN_LOGIN_THROTTLED).increment(1));
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many failed logins for this account or from this address; retry in {secs} s"),
        )
        .with_retry_after(secs.max(1)));
    }
    match session::login(&s.store, &s.jwt, &s.config.auth, input).await {
        Ok(tokens) => {
            s.login_throttle.succeeded(&account, address);
            Ok(Json(tokens))
        }
        Err(e @ DomainError::Unauthorized(_)) => {
            let failures = s.login_throttle.failed(&account, address, s.clock.now());
            metrics.record(|| metrics::counter!(m::ADMIN_LOGIN_FAILURES).increment(1));
            // Never the password, nor the email as typed (a password typed into it by mistake).
            tracing::warn!(
                client = address.map(|a| a.to_string()).unwrap_or_default(),
                account_failures = failures.account,
                address_failures = failures.address,
                "admin login failed: wrong email or password"
            );
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
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
    #[schema(value_type = Vec<String>)]
    scopes: Vec<crate::auth::Scope>,
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
