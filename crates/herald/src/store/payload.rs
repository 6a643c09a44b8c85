//! Event payloads that differ from the row they describe: the rows of resources that hold a
//! secret ([`super::orgs::Project`], [`super::webhooks::Webhook`], [`super::auth::AdminUser`])
//! derive neither `Serialize` nor `ToSchema`, so what an event carries about them is written out here, without the
//! secret and the columns only the server reads.
//!
//! The API answers with the same shapes (`GET /projects` lists [`Project`], `GET
//! /admin-users` [`AdminUser`]; `WebhookView` flattens [`Webhook`]), so each is also the OpenAPI schema of that name.
//!
//! Here rather than in `events/`: they are made from store rows and name store types
//! ([`WebhookFormat`]), and `events/` does not import the store (the store imports it).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{auth, orgs, webhooks::WebhookFormat};
use crate::vocab::AdminRole;

// An admin account as events carry it and the API shows it: everything but its password hash.
// (Plain comments on these types: a doc comment would become the schema's description, and the
// served OpenAPI description stays as it was.)
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUser {
    pub id: String,
    pub organization_id: String,
    pub email: String,
    #[schema(value_type = String)]
    pub role: AdminRole,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// A project is one game. `secret_key` is never serialized with it (nor put in events): the
/// project details route adds it explicitly for admins.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub slug: String,
    pub app_key: String,
    /// The language client answers fall back to when the client's own has no text
    /// (`GET /client/*`): a language code such as `en` or `pt-BR`.
    pub default_language: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

// A webhook endpoint as events carry it: no secrets, no project id (the event has it), no
// timeout in milliseconds (the API shows `timeout` in seconds beside it, `WebhookView`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    pub name: Option<String>,
    pub url: String,
    pub description: Option<String>,
    /// Event type patterns: exact names, `*`, or prefixes like `user.*`.
    pub events: Vec<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub active: bool,
    pub headers: BTreeMap<String, String>,
    /// Deliveries per second (per node); `None`: unlimited.
    pub rate_limit: Option<i32>,
    /// The payload format its receiver reads (`herald` unless set).
    pub format: WebhookFormat,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&auth::AdminUser> for AdminUser {
    fn from(a: &auth::AdminUser) -> AdminUser {
        AdminUser {
            id: a.id.clone(),
            organization_id: a.organization_id.clone(),
            email: a.email.clone(),
            role: a.role,
            created_at: a.created_at,
            updated_at: a.updated_at,
            last_login_at: a.last_login_at,
        }
    }
}

impl From<&orgs::Project> for Project {
    fn from(p: &orgs::Project) -> Project {
        Project {
            id: p.id.clone(),
            organization_id: p.organization_id.clone(),
            name: p.name.clone(),
            slug: p.slug.clone(),
            app_key: p.app_key.clone(),
            default_language: p.default_language.clone(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

impl From<&super::webhooks::Webhook> for Webhook {
    fn from(w: &super::webhooks::Webhook) -> Webhook {
        Webhook {
            id: w.id.clone(),
            name: w.name.clone(),
            url: w.url.clone(),
            description: w.description.clone(),
            events: w.events.0.clone(),
            previous_secret_expires_at: w.previous_secret_expires_at,
            active: w.active,
            headers: w.headers.0.clone(),
            rate_limit: w.rate_limit,
            format: w.format,
            disabled_reason: w.disabled_reason.clone(),
            disabled_at: w.disabled_at,
            last_success_at: w.last_success_at,
            failing_since: w.failing_since,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}
