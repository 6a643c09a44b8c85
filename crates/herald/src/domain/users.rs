//! Players: validation, creation, partial updates and the events each change implies.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sqlx::types::Json;

use super::{
    retry_on_stale,
    validate::{Checks, nullable},
};
use crate::vocab::UserStatus;
use crate::{
    domain::DomainResult,
    events::{EventContext, types},
    store::{self, Store, users::User},
};

const MAX_METADATA_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    /// The game's own player id; generated when absent.
    pub id: Option<String>,
    pub username: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
    pub metadata: Option<Value>,
}

/// A partial update (PUT and PATCH alike): absent fields stay, `null` clears a nullable one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserPatch {
    pub username: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub avatar_url: Option<Option<String>>,
    pub role: Option<String>,
    pub status: Option<String>,
    pub metadata: Option<Value>,
    /// Setting it records a sign-in (event `user.login`), as the seed's `PUT` does.
    #[serde(default, deserialize_with = "nullable")]
    pub last_login_at: Option<Option<DateTime<Utc>>>,
}

/// Checks `user` as built from a request; `status` is the status the request named, if it
/// named one (checked here, in the order of the other fields, though the row holds it parsed).
fn check_user(user: &User, status: Option<&str>) -> DomainResult<()> {
    let mut c = Checks::default();
    c.ident("id", &user.id, 128, &[':', '@']);
    c.username("username", &user.username, 64);
    if let Some(email) = &user.email {
        c.email("email", email);
    }
    c.opt_text("displayName", user.display_name.as_deref(), 100);
    if let Some(url) = &user.avatar_url {
        c.url("avatarUrl", url);
    }
    check_role(&mut c, &user.role);
    if let Some(status) = status {
        c.one_of("status", status, UserStatus::NAMES);
    }
    if !user.metadata.0.is_object() {
        c.fail("metadata", "must be a JSON object");
    } else if super::validate::json_has_nul(&user.metadata.0) {
        c.fail("metadata", "must not contain NUL (\\u0000) characters");
    } else if user.metadata.0.to_string().len() > MAX_METADATA_BYTES {
        c.fail("metadata", format!("must be at most {MAX_METADATA_BYTES} bytes as JSON"));
    }
    c.finish()
}

/// Roles are the studio's own words (`player`, `admin`, `moderator`, ...): lower-case
/// identifiers of up to 32 characters.
pub fn check_role(c: &mut Checks, role: &str) {
    if role.is_empty()
        || role.len() > 32
        || !role.starts_with(|ch: char| ch.is_ascii_lowercase())
        || !role.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
    {
        c.fail("role", "must be a lower-case word of up to 32 characters (letters, digits, `_`), e.g. `player`");
    }
}

pub async fn create(store: &Store, ctx: &EventContext, project_id: &str, input: NewUser) -> DomainResult<User> {
    let now = store::now();
    let user = User {
        project_id: project_id.to_owned(),
        id: input.id.unwrap_or_else(store::new_id),
        username: super::validate::normalize(&input.username),
        email: input.email,
        display_name: input.display_name,
        avatar_url: input.avatar_url,
        role: input.role.unwrap_or_else(|| "player".into()),
        status: input.status.as_deref().and_then(UserStatus::parse).unwrap_or(UserStatus::Active),
        metadata: Json(input.metadata.unwrap_or_else(|| Value::Object(Default::default()))),
        created_at: now,
        updated_at: now,
        last_login_at: None,
    };
    check_user(&user, input.status.as_deref())?;
    store.insert_user(ctx, &user).await?;
    Ok(user)
}

/// Applies `patch`, emitting `user.updated`, plus `player.update` when profile fields
/// (username, email, display name, avatar) changed and `user.login` when `lastLoginAt` moved.
/// Retries when a concurrent update got there first, so no change is lost.
pub async fn update(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    id: &str,
    patch: UserPatch,
) -> DomainResult<User> {
    let patch = &patch;
    retry_on_stale(|| async move {
        let current = store.get_user(project_id, id).await?;
        let mut user = current.clone();
        if let Some(v) = &patch.username {
            user.username = super::validate::normalize(v);
        }
        if let Some(v) = &patch.email {
            user.email = v.clone();
        }
        if let Some(v) = &patch.display_name {
            user.display_name = v.clone();
        }
        if let Some(v) = &patch.avatar_url {
            user.avatar_url = v.clone();
        }
        if let Some(v) = &patch.role {
            user.role = v.clone();
        }
        if let Some(v) = patch.status.as_deref().and_then(UserStatus::parse) {
            user.status = v;
        }
        if let Some(v) = &patch.metadata {
            user.metadata = Json(v.clone());
        }
        if let Some(v) = patch.last_login_at {
            user.last_login_at = v.map(store::truncate);
        }
        check_user(&user, patch.status.as_deref())?;
        user.updated_at = store::next_updated_at(current.updated_at);

        let mut events = vec![types::USER_UPDATED];
        let profile_changed = user.username != current.username
            || user.email != current.email
            || user.display_name != current.display_name
            || user.avatar_url != current.avatar_url;
        if profile_changed {
            events.push(types::PLAYER_UPDATE);
        }
        if user.last_login_at.is_some() && user.last_login_at != current.last_login_at {
            events.push(types::USER_LOGIN);
        }
        store.update_user(ctx, &user, current.updated_at, &events).await?;
        Ok(user)
    })
    .await
}

/// Records a sign-in now: sets `lastLoginAt` and emits `user.login`.
pub async fn record_login(store: &Store, ctx: &EventContext, project_id: &str, id: &str) -> DomainResult<User> {
    let patch = UserPatch { last_login_at: Some(Some(store::now())), ..Default::default() };
    update(store, ctx, project_id, id, patch).await
}
