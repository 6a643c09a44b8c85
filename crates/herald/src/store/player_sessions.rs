//! Player sessions: the rows behind player session tokens (see `domain::player_session`).

use chrono::{DateTime, Utc};

use super::{Store, StoreError, StoreResult, with_pool};
use crate::events::NewEvent;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlayerSession {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn insert_player_session(&self, s: &PlayerSession) -> StoreResult<()> {
        with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO player_sessions (id, project_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, \
                 $4, $5)",
            )
            .bind(&s.id)
            .bind(&s.project_id)
            .bind(&s.user_id)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn get_player_session(&self, id: &str) -> StoreResult<PlayerSession> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, PlayerSession>("SELECT * FROM player_sessions WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("session"))
        })
    }

    /// Revokes the player's live sessions and records `event` with the ids revoked, in one
    /// transaction. Returns those ids (none: nothing was live, and no event is written).
    pub async fn revoke_player_sessions(
        &self,
        project_id: &str,
        user_id: &str,
        now: DateTime<Utc>,
        event: impl FnOnce(&[String]) -> NewEvent,
    ) -> StoreResult<Vec<String>> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let ids: Vec<String> = sqlx::query_scalar(
                "UPDATE player_sessions SET revoked_at = $3 WHERE project_id = $1 AND user_id = $2 AND revoked_at IS \
                 NULL AND expires_at > $3 RETURNING id",
            )
            .bind(project_id)
            .bind(user_id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            if ids.is_empty() {
                return Ok(ids);
            }
            super::events::insert_event!(&mut *tx, &event(&ids))?;
            // Sessions long expired are of no use to anyone: drop the player's old rows.
            sqlx::query("DELETE FROM player_sessions WHERE project_id = $1 AND user_id = $2 AND expires_at < $3")
                .bind(project_id)
                .bind(user_id)
                .bind(now - chrono::TimeDelta::days(1))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            self.notify_events();
            Ok(ids)
        })
    }
}
