//! Organizations and projects.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    Page, PageRequest, Store, StoreError, StoreResult, conflict_on_unique, expect_one_row, fetch_page, with_pool,
    write_with_events,
};
use crate::events::{EventContext, NewEvent, types};

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A project is one game. It holds its secret key, so it has no `Serialize`: events and
/// answers carry [`super::payload::Project`] (the project details route adds the key
/// explicitly for admins).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Project {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub slug: String,
    pub app_key: String,
    pub secret_key: crate::secret::Secret,
    /// The language client answers fall back to when the client's own has no text
    /// (`GET /client/*`): a language code such as `en` or `pt-BR`.
    pub default_language: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Inserts an [`Organization`] through `$conn`; evaluates to the `StoreResult`.
macro_rules! insert_org {
    ($conn:expr, $org:expr) => {{
        let org: &$crate::store::orgs::Organization = $org;
        sqlx::query("INSERT INTO organizations (id, name, slug, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&org.id)
            .bind(&org.name)
            .bind(&org.slug)
            .bind(org.created_at)
            .bind(org.updated_at)
            .execute($conn)
            .await
            .map_err($crate::store::conflict_on_unique($crate::store::orgs::ORG_SLUG_TAKEN))
    }};
}
pub(crate) use insert_org;

/// Inserts a [`Project`] through `$conn`; evaluates to the `StoreResult`.
macro_rules! insert_project {
    ($conn:expr, $project:expr) => {{
        let project: &$crate::store::orgs::Project = $project;
        sqlx::query(
            "INSERT INTO projects (id, organization_id, name, slug, app_key, secret_key, default_language, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&project.id)
        .bind(&project.organization_id)
        .bind(&project.name)
        .bind(&project.slug)
        .bind(&project.app_key)
        .bind(&project.secret_key)
        .bind(&project.default_language)
        .bind(project.created_at)
        .bind(project.updated_at)
        .execute($conn)
        .await
        .map_err($crate::store::conflict_on_unique($crate::store::orgs::PROJECT_SLUG_TAKEN))
    }};
}
pub(crate) use insert_project;

pub(crate) const ORG_SLUG_TAKEN: &str = "an organization with this slug already exists";
pub(crate) const PROJECT_SLUG_TAKEN: &str = "a project with this slug already exists in the organization";

pub(crate) fn org_event(ctx: &EventContext, event_type: &'static str, org: &Organization) -> NewEvent {
    NewEvent::about(ctx, event_type, (Some(&org.id), None), "organization", &org.id, org)
}

pub(crate) fn project_event(ctx: &EventContext, event_type: &'static str, project: &Project) -> NewEvent {
    NewEvent::about(
        ctx,
        event_type,
        (Some(&project.organization_id), Some(&project.id)),
        "project",
        &project.id,
        &super::payload::Project::from(project),
    )
}

impl Store {
    pub async fn insert_organization(&self, ctx: &EventContext, org: &Organization) -> StoreResult<()> {
        let event = org_event(ctx, types::ORGANIZATION_CREATED, org);
        write_with_events!(self, [&event], |tx| insert_org!(&mut *tx, org)?)?;
        Ok(())
    }

    pub async fn get_organization(&self, id: &str) -> StoreResult<Organization> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, Organization>("SELECT * FROM organizations WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("organization"))
        })
    }

    /// Organizations, optionally only `only` (the one an organization-level caller may see).
    pub async fn list_organizations(&self, only: Option<&str>, page: PageRequest) -> StoreResult<Page<Organization>> {
        with_pool!(self, read, |pool| {
            fetch_page(pool, "created_at, id", page, |q| {
                q.push("FROM organizations WHERE 1 = 1");
                if let Some(id) = only {
                    q.push(" AND id = ").push_bind(id);
                }
            })
            .await
        })
    }

    pub async fn update_organization(
        &self,
        ctx: &EventContext,
        org: &Organization,
        read_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let event = org_event(ctx, types::ORGANIZATION_UPDATED, org);
        write_with_events!(self, [&event], |tx| {
            let done = sqlx::query(
                "UPDATE organizations SET name = $1, slug = $2, updated_at = $3 WHERE id = $4 AND updated_at = $5",
            )
            .bind(&org.name)
            .bind(&org.slug)
            .bind(org.updated_at)
            .bind(&org.id)
            .bind(read_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique(ORG_SLUG_TAKEN))?;
            expect_one_row(done.rows_affected())?
        })?;
        Ok(())
    }

    /// Deletes an organization that has no projects left (409 otherwise).
    pub async fn delete_organization(&self, ctx: &EventContext, id: &str) -> StoreResult<Organization> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let projects: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM projects WHERE organization_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            if projects > 0 {
                return Err(StoreError::Conflict(format!(
                    "the organization still has {projects} project(s); delete them first"
                )));
            }
            let org = sqlx::query_as::<_, Organization>("DELETE FROM organizations WHERE id = $1 RETURNING *")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("organization"))?;
            super::events::insert_event!(&mut *tx, &org_event(ctx, types::ORGANIZATION_DELETED, &org))?;
            tx.commit().await?;
            self.notify_events();
            Ok(org)
        })
    }

    pub async fn count_organizations(&self) -> StoreResult<i64> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM organizations").fetch_one(pool).await?)
        })
    }

    pub async fn insert_project(&self, ctx: &EventContext, project: &Project) -> StoreResult<()> {
        let event = project_event(ctx, types::PROJECT_CREATED, project);
        write_with_events!(self, [&event], |tx| insert_project!(&mut *tx, project)?)?;
        Ok(())
    }

    pub async fn get_project(&self, id: &str) -> StoreResult<Project> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, Project>("SELECT * FROM projects WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("project"))
        })
    }

    pub async fn get_project_by_app_key(&self, app_key: &str) -> StoreResult<Project> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, Project>("SELECT * FROM projects WHERE app_key = $1")
                .bind(app_key)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("project"))
        })
    }

    /// Projects, optionally of one organization and/or only one project.
    pub async fn list_projects(
        &self,
        organization_id: Option<&str>,
        only: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Project>> {
        with_pool!(self, read, |pool| {
            fetch_page(pool, "created_at, id", page, |q| {
                q.push("FROM projects WHERE 1 = 1");
                if let Some(org) = organization_id {
                    q.push(" AND organization_id = ").push_bind(org);
                }
                if let Some(id) = only {
                    q.push(" AND id = ").push_bind(id);
                }
            })
            .await
        })
    }

    pub async fn update_project(
        &self,
        ctx: &EventContext,
        project: &Project,
        read_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write_project(ctx, types::PROJECT_UPDATED, project, read_at).await
    }

    pub async fn regenerate_project_secret(
        &self,
        ctx: &EventContext,
        project: &Project,
        read_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write_project(ctx, types::PROJECT_SECRET_KEY_REGENERATED, project, read_at).await
    }

    async fn write_project(
        &self,
        ctx: &EventContext,
        event_type: &'static str,
        project: &Project,
        read_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let event = project_event(ctx, event_type, project);
        write_with_events!(self, [&event], |tx| {
            let done = sqlx::query(
                "UPDATE projects SET name = $1, slug = $2, secret_key = $3, updated_at = $4, default_language = $7 \
                 WHERE id = $5 AND updated_at = $6",
            )
            .bind(&project.name)
            .bind(&project.slug)
            .bind(&project.secret_key)
            .bind(project.updated_at)
            .bind(&project.id)
            .bind(read_at)
            .bind(&project.default_language)
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique(PROJECT_SLUG_TAKEN))?;
            expect_one_row(done.rows_affected())?
        })?;
        self.client_view_changed();
        Ok(())
    }

    /// Deletes a project and, by cascade, everything in it.
    pub async fn delete_project(&self, ctx: &EventContext, id: &str) -> StoreResult<Project> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let project = sqlx::query_as::<_, Project>("DELETE FROM projects WHERE id = $1 RETURNING *")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("project"))?;
            super::events::insert_event!(&mut *tx, &project_event(ctx, types::PROJECT_DELETED, &project))?;
            tx.commit().await?;
            self.worlds_changed(); // its worlds went with it
            self.notify_events();
            Ok(project)
        })
    }
}

impl Store {
    pub async fn get_organization_by_slug(&self, slug: &str) -> StoreResult<Organization> {
        with_pool!(self, read, |pool| {
            sqlx::query_as::<_, Organization>("SELECT * FROM organizations WHERE slug = $1")
                .bind(slug)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("organization"))
        })
    }
}
