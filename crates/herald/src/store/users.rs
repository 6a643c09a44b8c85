//! Players (users) of a project.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

use super::script::Script;
use super::{
    Page, PageRequest, Store, StoreError, StoreResult, conflict_on_unique, contains_pattern, expect_one_row,
    fetch_page, with_pool, write_with_events,
};
use crate::events::{EventContext, NewEvent, types};

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(skip)]
    pub project_id: String,
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub role: String,
    #[schema(value_type = String)]
    pub status: crate::vocab::UserStatus,
    #[schema(value_type = Object)]
    pub metadata: Json<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    pub role: Option<String>,
    pub status: Option<String>,
    /// Case-insensitive substring of username, email or display name.
    pub q: Option<String>,
}

const USERNAME_TAKEN: &str = "a user with this username already exists in the project";
const USER_ID_TAKEN: &str = "a user with this id already exists in the project";

/// The outbox event for `user` (its organization is implied by the project).
pub fn user_event(ctx: &EventContext, event_type: &'static str, user: &User) -> NewEvent {
    NewEvent::about(ctx, event_type, (None, Some(&user.project_id)), "user", &user.id, user)
}

impl Store {
    pub async fn insert_user(&self, ctx: &EventContext, user: &User) -> StoreResult<()> {
        let mut script = Script::default();
        script.push(
            "INSERT INTO users (project_id, id, username, email, display_name, avatar_url, role, status, metadata, \
             created_at, updated_at, last_login_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            vec![
                (&user.project_id).into(),
                (&user.id).into(),
                (&user.username).into(),
                (&user.email).into(),
                (&user.display_name).into(),
                (&user.avatar_url).into(),
                (&user.role).into(),
                user.status.as_str().into(),
                (&user.metadata).into(),
                user.created_at.into(),
                user.updated_at.into(),
                user.last_login_at.into(),
            ],
        );
        script.event(user_event(ctx, types::USER_CREATED, user));
        self.run_script(script).await.map(drop).map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                // Tell which key clashed: the primary key (id) or the username.
                let msg = db.message();
                if msg.contains("username") || db.constraint().is_some_and(|c| c.contains("username")) {
                    StoreError::Conflict(USERNAME_TAKEN.into())
                } else {
                    StoreError::Conflict(USER_ID_TAKEN.into())
                }
            }
            _ => StoreError::from(e),
        })
    }

    pub async fn get_user(&self, project_id: &str, id: &str) -> StoreResult<User> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, User>("SELECT * FROM users WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("user"))
        })
    }

    pub async fn list_users(&self, project_id: &str, f: &UserFilter, page: PageRequest) -> StoreResult<Page<User>> {
        let pattern = f.q.as_deref().map(contains_pattern);
        with_pool!(self, read, |pool| {
            fetch_page(pool, "created_at, id", page, |q| {
                q.push("FROM users WHERE project_id = ").push_bind(project_id);
                if let Some(role) = &f.role {
                    q.push(" AND role = ").push_bind(role.as_str());
                }
                if let Some(status) = &f.status {
                    q.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(pattern) = &pattern {
                    q.push(" AND (");
                    let mut any = q.separated(" OR ");
                    for column in ["username", "coalesce(email, '')", "coalesce(display_name, '')"] {
                        any.push(format_args!("lower({column}) LIKE "));
                        any.push_bind_unseparated(pattern.as_str()).push_unseparated(" ESCAPE '\\'");
                    }
                    q.push(")");
                }
            })
            .await
        })
    }

    /// Writes `user` if it is unchanged since `read_at`, with one event per `event_types`.
    pub async fn update_user(
        &self,
        ctx: &EventContext,
        user: &User,
        read_at: DateTime<Utc>,
        event_types: &[&'static str],
    ) -> StoreResult<()> {
        let events: Vec<NewEvent> = event_types.iter().map(|t| user_event(ctx, t, user)).collect();
        write_with_events!(self, &events, |tx| {
            let done = sqlx::query(
                "UPDATE users SET username = $1, email = $2, display_name = $3, avatar_url = $4, role = $5, \
                 status = $6, metadata = $7, updated_at = $8, last_login_at = $9 \
                 WHERE project_id = $10 AND id = $11 AND updated_at = $12",
            )
            .bind(&user.username)
            .bind(&user.email)
            .bind(&user.display_name)
            .bind(&user.avatar_url)
            .bind(&user.role)
            .bind(user.status)
            .bind(&user.metadata)
            .bind(user.updated_at)
            .bind(user.last_login_at)
            .bind(&user.project_id)
            .bind(&user.id)
            .bind(read_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique(USERNAME_TAKEN))?;
            expect_one_row(done.rows_affected())?
        })?;
        Ok(())
    }

    pub async fn delete_user(&self, ctx: &EventContext, project_id: &str, id: &str) -> StoreResult<User> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let user = sqlx::query_as::<_, User>("DELETE FROM users WHERE project_id = $1 AND id = $2 RETURNING *")
                .bind(project_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("user"))?;
            super::events::insert_event!(&mut *tx, &user_event(ctx, types::USER_DELETED, &user))?;
            tx.commit().await?;
            self.notify_events();
            Ok(user)
        })
    }
}
