//! Players as chat sees them: their chat profiles.

use super::*;

impl Store {
    pub async fn get_chat_user(&self, project_id: &str, user_id: &str) -> StoreResult<ChatUser> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, ChatUser>(
                "SELECT u.id AS user_id, COALESCE(p.nickname, u.display_name, u.username) AS nickname, \
                 p.language_code, COALESCE(p.valid, TRUE) AS valid, u.last_login_at, u.created_at AS reg_at \
                 FROM users u LEFT JOIN chat_profiles p ON p.project_id = u.project_id AND p.user_id = u.id \
                 WHERE u.project_id = $1 AND u.id = $2",
            )
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .ok_or(StoreError::NotFound("user"))
        })
    }

    /// Sets a player's chat nickname and language (the player must exist).
    pub async fn put_chat_profile(
        &self,
        project_id: &str,
        user_id: &str,
        nickname: &str,
        language_code: &str,
        event: impl FnOnce() -> NewEvent,
    ) -> StoreResult<()> {
        let now = crate::store::now();
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound("user"));
            }
            sqlx::query(
                "INSERT INTO chat_profiles (project_id, user_id, nickname, language_code, valid, updated_at) \
                 VALUES ($1, $2, $3, $4, TRUE, $5) ON CONFLICT (project_id, user_id) DO UPDATE SET \
                 nickname = excluded.nickname, language_code = excluded.language_code, valid = TRUE, \
                 updated_at = excluded.updated_at",
            )
            .bind(project_id)
            .bind(user_id)
            .bind(nickname)
            .bind(language_code)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            insert_event!(&mut *tx, &event())?;
            tx.commit().await?;
            self.notify_events();
            Ok(())
        })
    }
}
