//! Admin accounts, their refresh tokens, and server-wide settings.

use chrono::{DateTime, Utc};

use super::{
    Page, PageRequest, Store, StoreError, StoreResult, conflict_on_unique, fetch_page, with_pool, write_with_events,
};
use crate::events::{EventContext, NewEvent, types};

/// An admin account. It holds its password hash, so it has no `Serialize`: events and answers
/// carry [`super::payload::AdminUser`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminUser {
    pub id: String,
    pub organization_id: String,
    pub email: String,
    /// argon2id; a `Secret` although it is a hash: a leaked one can be attacked offline.
    pub password_hash: crate::secret::Secret,
    pub role: crate::vocab::AdminRole,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshToken {
    pub id: String,
    pub admin_user_id: String,
    pub token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

fn admin_event(ctx: &EventContext, event_type: &'static str, admin: &AdminUser) -> NewEvent {
    let payload = super::payload::AdminUser::from(admin);
    NewEvent::about(ctx, event_type, (Some(&admin.organization_id), None), "admin_user", &admin.id, &payload)
}

impl Store {
    pub async fn insert_admin_user(&self, ctx: &EventContext, admin: &AdminUser) -> StoreResult<()> {
        let event = admin_event(ctx, types::ADMIN_USER_CREATED, admin);
        write_with_events!(self, [&event], |tx| {
            sqlx::query(
                "INSERT INTO admin_users (id, organization_id, email, password_hash, role, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&admin.id)
            .bind(&admin.organization_id)
            .bind(&admin.email)
            .bind(&admin.password_hash)
            .bind(admin.role)
            .bind(admin.created_at)
            .bind(admin.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique("an admin account with this email already exists"))?
        })?;
        Ok(())
    }

    pub async fn get_admin_user(&self, id: &str) -> StoreResult<AdminUser> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, AdminUser>("SELECT * FROM admin_users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("admin user"))
        })
    }

    pub async fn find_admin_by_email(&self, email: &str) -> StoreResult<Option<AdminUser>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, AdminUser>("SELECT * FROM admin_users WHERE email = $1")
                .bind(email)
                .fetch_optional(pool)
                .await?)
        })
    }

    pub async fn list_admin_users(&self, organization_id: &str, page: PageRequest) -> StoreResult<Page<AdminUser>> {
        with_pool!(self, read, |pool| {
            fetch_page(pool, "created_at, id", page, |q| {
                q.push("FROM admin_users WHERE organization_id = ").push_bind(organization_id);
            })
            .await
        })
    }

    pub async fn delete_admin_user(
        &self,
        ctx: &EventContext,
        organization_id: &str,
        id: &str,
    ) -> StoreResult<AdminUser> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let admin = sqlx::query_as::<_, AdminUser>(
                "DELETE FROM admin_users WHERE organization_id = $1 AND id = $2 RETURNING *",
            )
            .bind(organization_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("admin user"))?;
            super::events::insert_event!(&mut *tx, &admin_event(ctx, types::ADMIN_USER_DELETED, &admin))?;
            tx.commit().await?;
            self.notify_events();
            Ok(admin)
        })
    }

    /// Stores a new refresh token and records the login time.
    pub async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO refresh_tokens (id, admin_user_id, token_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&token.id)
            .bind(&token.admin_user_id)
            .bind(&token.token_hash)
            .bind(token.created_at)
            .bind(token.expires_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE admin_users SET last_login_at = $1 WHERE id = $2")
                .bind(token.created_at)
                .bind(&token.admin_user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn get_refresh_token(&self, id: &str) -> StoreResult<Option<RefreshToken>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, RefreshToken>("SELECT * FROM refresh_tokens WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// Marks a refresh token used; false if it was already used (a replay).
    pub async fn use_refresh_token(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        with_pool!(self, write, |pool| {
            let done = sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Revokes every refresh token of an admin (used when a token is replayed).
    pub async fn revoke_refresh_tokens_of(&self, admin_user_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        with_pool!(self, write, |pool| {
            sqlx::query("UPDATE refresh_tokens SET used_at = coalesce(used_at, $1) WHERE admin_user_id = $2")
                .bind(at)
                .bind(admin_user_id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Returns the setting `key`, first storing `value` if it has none. Every node sharing
    /// the database gets the same answer, whoever got there first.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> StoreResult<String> {
        with_pool!(self, write, |pool| {
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(pool)
                .await?;
            Ok(sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_one(pool)
                .await?)
        })
    }

    /// First start: creates the default organization, project and admin key in one
    /// transaction, guarded by a settings row so that exactly one node ever does it. Returns
    /// false (and writes nothing) if it was done before.
    pub async fn bootstrap(
        &self,
        ctx: &EventContext,
        org: &super::orgs::Organization,
        project: &super::orgs::Project,
        key: &super::api_keys::ApiKey,
    ) -> StoreResult<bool> {
        let events = [
            super::orgs::org_event(ctx, types::ORGANIZATION_CREATED, org),
            super::orgs::project_event(ctx, types::PROJECT_CREATED, project),
            super::api_keys::key_event(ctx, types::API_KEY_CREATED, key),
        ];
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let claimed = sqlx::query(
                "INSERT INTO settings (key, value) VALUES ('bootstrapped', $1) ON CONFLICT (key) DO NOTHING",
            )
            .bind(super::now().to_rfc3339())
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() == 0 {
                return Ok(false);
            }
            super::orgs::insert_org!(&mut *tx, org)?;
            super::orgs::insert_project!(&mut *tx, project)?;
            super::api_keys::insert_key!(&mut *tx, key)?;
            for event in &events {
                super::events::insert_event!(&mut *tx, event)?;
            }
            tx.commit().await?;
            self.notify_events();
            Ok(true)
        })
    }
}
