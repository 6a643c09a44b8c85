//! Chat tags.

use super::*;

impl Store {
    pub async fn insert_tag(&self, tag: &Tag, event: impl FnOnce(&Tag) -> NewEvent) -> StoreResult<Tag> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO chat_tags (project_id, name, description, reg_user, created_at, mod_user, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&tag.project_id)
            .bind(&tag.name)
            .bind(&tag.description)
            .bind(&tag.reg_user)
            .bind(tag.created_at)
            .bind(&tag.mod_user)
            .bind(tag.updated_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(crate::store::conflict_on_unique(TAG_TAKEN))?;
            let saved = Tag { id, ..tag.clone() };
            insert_event!(&mut *tx, &event(&saved))?;
            tx.commit().await?;
            self.notify_events();
            Ok(saved)
        })
    }

    pub async fn get_tag(&self, project_id: &str, id: i64) -> StoreResult<Tag> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, Tag>("SELECT * FROM chat_tags WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("tag"))
        })
    }

    /// The tags of `ids` that exist in the project.
    pub async fn tags_by_ids(&self, project_id: &str, ids: &[i64]) -> StoreResult<Vec<Tag>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_pool!(self, read, |pool| {
            let mut q = query_builder(pool, "SELECT * FROM chat_tags WHERE project_id = ");
            q.push_bind(project_id).push(" AND id IN (");
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            q.push(") ORDER BY id");
            Ok(q.build_query_as::<Tag>().fetch_all(pool).await?)
        })
    }

    /// One page of the project's tags, by id.
    pub async fn list_tags(&self, project_id: &str, page: PageRequest) -> StoreResult<Page<Tag>> {
        with_pool!(self, read, |pool| {
            fetch_page(pool, "id", page, |q| {
                q.push("FROM chat_tags WHERE project_id = ").push_bind(project_id);
            })
            .await
        })
    }

    /// Saves `tag` if it is still as read (`previous` is its `updated_at` then); `Stale` if not.
    pub async fn update_tag(&self, tag: &Tag, previous: DateTime<Utc>, event: &NewEvent) -> StoreResult<()> {
        write_with_events!(self, [event], |tx| {
            let done = sqlx::query(
                "UPDATE chat_tags SET name = $1, description = $2, mod_user = $3, updated_at = $4 \
                 WHERE project_id = $5 AND id = $6 AND updated_at = $7",
            )
            .bind(&tag.name)
            .bind(&tag.description)
            .bind(&tag.mod_user)
            .bind(tag.updated_at)
            .bind(&tag.project_id)
            .bind(tag.id)
            .bind(previous)
            .execute(&mut *tx)
            .await
            .map_err(crate::store::conflict_on_unique(TAG_TAKEN))?;
            crate::store::expect_one_row(done.rows_affected())?;
        })
    }

    /// Deletes a tag; channels simply lose it.
    pub async fn delete_tag(&self, project_id: &str, id: i64, event: &NewEvent) -> StoreResult<()> {
        write_with_events!(self, [event], |tx| {
            let done = sqlx::query("DELETE FROM chat_tags WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("tag"));
            }
        })
    }
}
