//! The delivery log: deliveries and their attempts as the API reads them, test deliveries,
//! and the clean-up of finished ones past retention.

use super::*;

impl Store {
    pub async fn get_delivery(&self, project_id: &str, id: &str) -> StoreResult<Delivery> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, Delivery>("SELECT * FROM deliveries WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("delivery"))
        })
    }

    pub async fn attempts_of(&self, delivery_id: &str) -> StoreResult<Vec<Attempt>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, Attempt>("SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt")
                .bind(delivery_id)
                .fetch_all(pool)
                .await?)
        })
    }

    pub async fn deliveries_of_event(&self, project_id: &str, event_id: &str) -> StoreResult<Vec<Delivery>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, Delivery>(
                "SELECT * FROM deliveries WHERE project_id = $1 AND event_id = $2 ORDER BY created_at, id",
            )
            .bind(project_id)
            .bind(event_id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Deliveries of one endpoint, newest first, after the cursor `(created_at, id)`.
    pub async fn list_deliveries(
        &self,
        webhook_id: &str,
        status: Option<&str>,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as::<_, Delivery>(
                "SELECT * FROM deliveries WHERE webhook_id = $1 AND ($2 IS NULL OR status = $2) \
                 AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) \
                 ORDER BY created_at DESC, id DESC LIMIT $5",
            )
            .bind(webhook_id)
            .bind(status)
            .bind(before.as_ref().map(|b| b.0))
            .bind(before.as_ref().map(|b| b.1.clone()))
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Records a test ping (`POST /webhooks/{id}/test`) as a finished delivery with its one
    /// attempt, so it shows in the endpoint's delivery log.
    pub async fn insert_test_delivery(&self, d: &Delivery, attempt: &Attempt) -> StoreResult<()> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO deliveries (id, project_id, webhook_id, event_id, event_seq, status, attempts, \
                 next_attempt_at, last_status_code, last_error, created_at, updated_at, completed_at, is_test) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10, $11, $12, TRUE)",
            )
            .bind(&d.id)
            .bind(&d.project_id)
            .bind(&d.webhook_id)
            .bind(&d.event_id)
            .bind(d.event_seq)
            .bind(d.status)
            .bind(d.attempts)
            .bind(d.last_status_code)
            .bind(&d.last_error)
            .bind(d.created_at)
            .bind(d.updated_at)
            .bind(d.completed_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO delivery_attempts (id, delivery_id, attempt, attempted_at, status_code, latency_ms, \
                 response_headers, response_body, error, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
            )
            .bind(&attempt.id)
            .bind(&attempt.delivery_id)
            .bind(attempt.attempt)
            .bind(attempt.attempted_at)
            .bind(attempt.status_code)
            .bind(attempt.latency_ms)
            .bind(&attempt.response_headers)
            .bind(&attempt.response_body)
            .bind(&attempt.error)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Deletes finished deliveries (and their attempts) completed before `before`, and
    /// idempotency keys older than `keys_before`. Returns deliveries removed.
    pub async fn clean_up(&self, before: DateTime<Utc>, keys_before: DateTime<Utc>) -> StoreResult<u64> {
        with_pool!(self, write, |pool| {
            let done = sqlx::query("DELETE FROM deliveries WHERE completed_at IS NOT NULL AND completed_at < $1")
                .bind(before)
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(keys_before).execute(pool).await?;
            Ok(done.rows_affected())
        })
    }
}
