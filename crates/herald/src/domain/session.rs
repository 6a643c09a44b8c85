//! Admin login: password -> short-lived JWT access token + rotating refresh token.
//! A refresh token works once; presenting a used one revokes all of that admin's sessions
//! (it means the token was stolen or replayed).

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use crate::secret::ExposeSecret;
use crate::{
    auth::{jwt::Claims, jwt::JwtKeys, keys, password},
    config::AuthConfig,
    domain::{DomainError, DomainResult},
    store::{self, Store, auth::AdminUser, auth::RefreshToken},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Refresh {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub admin: store::payload::AdminUser,
}

fn bad_login() -> DomainError {
    DomainError::unauthorized("wrong email or password")
}

pub async fn login(store: &Store, jwt: &JwtKeys, cfg: &AuthConfig, input: Login) -> DomainResult<Tokens> {
    let admin = store.find_admin_by_email(&input.email.trim().to_lowercase()).await?;
    // Verify against a dummy hash for unknown emails so timing does not reveal accounts.
    let stored = admin.as_ref().map_or(password::dummy_hash(), |a| a.password_hash.expose_secret()).to_owned();
    let pw = input.password;
    let ok =
        tokio::task::spawn_blocking(move || password::verify(&pw, &stored)).await.map_err(DomainError::internal)?;
    match admin {
        Some(admin) if ok => issue(store, jwt, cfg, admin).await,
        _ => Err(bad_login()),
    }
}

pub async fn refresh(store: &Store, jwt: &JwtKeys, cfg: &AuthConfig, input: Refresh) -> DomainResult<Tokens> {
    let invalid = || DomainError::unauthorized("invalid or expired refresh token");
    let (id, secret) = input.refresh_token.split_once('.').ok_or_else(invalid)?;
    let token = store.get_refresh_token(id).await?.ok_or_else(invalid)?;
    if !keys::verify(secret, &token.token_hash) {
        return Err(invalid());
    }
    let now = store::now();
    if token.expires_at <= now {
        return Err(invalid());
    }
    if !store.use_refresh_token(&token.id, now).await? {
        store.revoke_refresh_tokens_of(&token.admin_user_id, now).await?;
        return Err(invalid());
    }
    let admin = store.get_admin_user(&token.admin_user_id).await.map_err(|_| invalid())?;
    issue(store, jwt, cfg, admin).await
}

async fn issue(store: &Store, jwt: &JwtKeys, cfg: &AuthConfig, admin: AdminUser) -> DomainResult<Tokens> {
    let now = store::now();
    let ttl = i64::try_from(cfg.access_token_ttl_secs).unwrap_or(i64::MAX / 2);
    let claims = Claims {
        sub: admin.id.clone(),
        org: admin.organization_id.clone(),
        role: admin.role.to_string(),
        iat: now.timestamp(),
        exp: now.timestamp().saturating_add(ttl),
        typ: "access".into(),
    };
    let access_token = jwt.issue(&claims).map_err(DomainError::internal)?;
    let secret = keys::random_token(32);
    let refresh_ttl = TimeDelta::seconds(i64::try_from(cfg.refresh_token_ttl_secs).unwrap_or(i64::MAX / 2_000_000));
    let token = RefreshToken {
        id: store::new_id(),
        admin_user_id: admin.id.clone(),
        token_hash: keys::hash(&secret),
        created_at: now,
        expires_at: now + refresh_ttl,
        used_at: None,
    };
    store.insert_refresh_token(&token).await?;
    Ok(Tokens {
        access_token,
        token_type: "Bearer",
        expires_in: cfg.access_token_ttl_secs,
        refresh_token: format!("{}.{secret}", token.id),
        refresh_expires_in: cfg.refresh_token_ttl_secs,
        admin: (&AdminUser { last_login_at: Some(now), ..admin }).into(),
    })
}
