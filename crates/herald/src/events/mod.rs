//! Events: what every change writes to the outbox, and the catalog of built-in types.
//!
//! An event is recorded by the store in the same transaction as its change (see
//! `store::events`); delivering it (webhooks, sockets) happens later, from the outbox.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// Who caused a change and under which request: carried into every event it writes.
#[derive(Debug, Clone, Default)]
pub struct EventContext {
    pub request_id: Option<String>,
    /// `key:<id>`, `admin:<id>` or `system`.
    pub actor: Option<String>,
}

impl EventContext {
    pub fn system() -> Self {
        EventContext { request_id: None, actor: Some("system".into()) }
    }
}

/// An event about to be written to the outbox.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub organization_id: Option<String>,
    pub project_id: Option<String>,
    pub event_type: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub data: Value,
    pub request_id: Option<String>,
    pub actor: Option<String>,
    pub idempotency_key: Option<String>,
    pub sandbox: bool,
    pub occurred_at: DateTime<Utc>,
}

impl NewEvent {
    /// An event about one resource, carrying its new state (or, for deletions, its last).
    pub fn about(
        ctx: &EventContext,
        event_type: &'static str,
        scope: (Option<&str>, Option<&str>),
        resource_type: &'static str,
        resource_id: &str,
        state: &impl Serialize,
    ) -> Self {
        NewEvent {
            id: crate::ids::new_id(),
            organization_id: scope.0.map(str::to_owned),
            project_id: scope.1.map(str::to_owned),
            event_type: event_type.to_owned(),
            resource_type: Some(resource_type.to_owned()),
            resource_id: Some(resource_id.to_owned()),
            data: serde_json::to_value(state).unwrap_or(Value::Null),
            request_id: ctx.request_id.clone(),
            actor: ctx.actor.clone(),
            idempotency_key: None,
            sandbox: false,
            occurred_at: crate::clock::now(),
        }
    }
}

/// The built-in event types. Custom types are registered per project (events API).
pub mod types {
    pub const ORGANIZATION_CREATED: &str = "organization.created";
    pub const ORGANIZATION_UPDATED: &str = "organization.updated";
    pub const ORGANIZATION_DELETED: &str = "organization.deleted";
    pub const PROJECT_CREATED: &str = "project.created";
    pub const PROJECT_UPDATED: &str = "project.updated";
    pub const PROJECT_DELETED: &str = "project.deleted";
    pub const PROJECT_SECRET_KEY_REGENERATED: &str = "project.secret_key_regenerated";
    pub const API_KEY_CREATED: &str = "api_key.created";
    pub const API_KEY_REVOKED: &str = "api_key.revoked";
    pub const CLIENT_KEY_CREATED: &str = "client_key.created";
    pub const CLIENT_KEY_REVOKED: &str = "client_key.revoked";
    pub const ADMIN_USER_CREATED: &str = "admin_user.created";
    pub const ADMIN_USER_DELETED: &str = "admin_user.deleted";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_UPDATED: &str = "user.updated";
    pub const USER_DELETED: &str = "user.deleted";
    pub const USER_LOGIN: &str = "user.login";
    /// A player's session tokens were revoked: their sockets are disconnected.
    pub const USER_SESSIONS_REVOKED: &str = "user.sessions_revoked";
    pub const PLAYER_UPDATE: &str = "player.update";
    pub const WORLD_CREATED: &str = "world.created";
    pub const WORLD_UPDATED: &str = "world.updated";
    pub const WORLD_DELETED: &str = "world.deleted";
    pub const WORLD_MAINTENANCE_STARTED: &str = "world.maintenance_started";
    pub const WORLD_MAINTENANCE_ENDED: &str = "world.maintenance_ended";
    /// A world's maintenance window that opens later was set or changed.
    pub const WORLD_MAINTENANCE_SCHEDULED: &str = "world.maintenance_scheduled";
    /// A scheduled world maintenance window was withdrawn before it opened.
    pub const WORLD_MAINTENANCE_CANCELLED: &str = "world.maintenance_cancelled";
    /// Game-wide maintenance was changed (every change; the transitions follow it).
    pub const MAINTENANCE_UPDATED: &str = "maintenance.updated";
    pub const MAINTENANCE_SCHEDULED: &str = "maintenance.scheduled";
    pub const MAINTENANCE_STARTED: &str = "maintenance.started";
    pub const MAINTENANCE_ENDED: &str = "maintenance.ended";
    pub const MAINTENANCE_CANCELLED: &str = "maintenance.cancelled";
    pub const MAINTENANCE_WHITELIST_CREATED: &str = "maintenance.whitelist.created";
    pub const MAINTENANCE_WHITELIST_DELETED: &str = "maintenance.whitelist.deleted";
    pub const NOTICE_CREATED: &str = "notice.created";
    pub const NOTICE_UPDATED: &str = "notice.updated";
    pub const NOTICE_DELETED: &str = "notice.deleted";
    /// A notice became visible (its start came, or it was created or switched on inside its
    /// window).
    pub const NOTICE_PUBLISHED: &str = "notice.published";
    /// A published notice stopped being visible (its end came, or it was switched off,
    /// moved or deleted).
    pub const NOTICE_ENDED: &str = "notice.ended";
    pub const CLIENT_VERSION_CREATED: &str = "client_version.created";
    pub const CLIENT_VERSION_UPDATED: &str = "client_version.updated";
    pub const CLIENT_VERSION_DELETED: &str = "client_version.deleted";
    pub const WEBHOOK_CREATED: &str = "webhook.created";
    pub const WEBHOOK_UPDATED: &str = "webhook.updated";
    pub const WEBHOOK_DELETED: &str = "webhook.deleted";
    pub const WEBHOOK_SECRET_ROTATED: &str = "webhook.secret_rotated";
    pub const WEBHOOK_DELIVERY_EXHAUSTED: &str = "webhook.delivery_exhausted";
    pub const WEBHOOK_ENDPOINT_DISABLED: &str = "webhook.endpoint_disabled";
    pub const CHAT_TAG_CREATED: &str = "chat.tag.created";
    pub const CHAT_TAG_UPDATED: &str = "chat.tag.updated";
    pub const CHAT_TAG_DELETED: &str = "chat.tag.deleted";
    pub const CHAT_CHANNEL_CREATED: &str = "chat.channel.created";
    pub const CHAT_CHANNEL_UPDATED: &str = "chat.channel.updated";
    pub const CHAT_CHANNEL_DELETED: &str = "chat.channel.deleted";
    pub const CHAT_SUBSCRIBED: &str = "chat.subscribed";
    pub const CHAT_UNSUBSCRIBED: &str = "chat.unsubscribed";
    pub const CHAT_USER_UPDATED: &str = "chat.user.updated";
    pub const CHAT_USER_DELETED: &str = "chat.user.deleted";
    pub const CHAT_MESSAGE_CREATED: &str = "chat.message.created";
    pub const CHAT_MESSAGE_UPDATED: &str = "chat.message.updated";
    pub const CHAT_MESSAGE_DELETED: &str = "chat.message.deleted";
    /// Sent by `POST /webhooks/{id}/test`; never stored in the outbox.
    pub const TEST: &str = "test";

    /// Every built-in type, for the catalog and the docs.
    pub const ALL: &[&str] = &[
        ORGANIZATION_CREATED,
        ORGANIZATION_UPDATED,
        ORGANIZATION_DELETED,
        PROJECT_CREATED,
        PROJECT_UPDATED,
        PROJECT_DELETED,
        PROJECT_SECRET_KEY_REGENERATED,
        API_KEY_CREATED,
        API_KEY_REVOKED,
        CLIENT_KEY_CREATED,
        CLIENT_KEY_REVOKED,
        ADMIN_USER_CREATED,
        ADMIN_USER_DELETED,
        USER_CREATED,
        USER_UPDATED,
        USER_DELETED,
        USER_LOGIN,
        USER_SESSIONS_REVOKED,
        PLAYER_UPDATE,
        WORLD_CREATED,
        WORLD_UPDATED,
        WORLD_DELETED,
        WORLD_MAINTENANCE_STARTED,
        WORLD_MAINTENANCE_ENDED,
        WORLD_MAINTENANCE_SCHEDULED,
        WORLD_MAINTENANCE_CANCELLED,
        MAINTENANCE_UPDATED,
        MAINTENANCE_SCHEDULED,
        MAINTENANCE_STARTED,
        MAINTENANCE_ENDED,
        MAINTENANCE_CANCELLED,
        MAINTENANCE_WHITELIST_CREATED,
        MAINTENANCE_WHITELIST_DELETED,
        NOTICE_CREATED,
        NOTICE_UPDATED,
        NOTICE_DELETED,
        NOTICE_PUBLISHED,
        NOTICE_ENDED,
        CLIENT_VERSION_CREATED,
        CLIENT_VERSION_UPDATED,
        CLIENT_VERSION_DELETED,
        WEBHOOK_CREATED,
        WEBHOOK_UPDATED,
        WEBHOOK_DELETED,
        WEBHOOK_SECRET_ROTATED,
        WEBHOOK_DELIVERY_EXHAUSTED,
        WEBHOOK_ENDPOINT_DISABLED,
        CHAT_TAG_CREATED,
        CHAT_TAG_UPDATED,
        CHAT_TAG_DELETED,
        CHAT_CHANNEL_CREATED,
        CHAT_CHANNEL_UPDATED,
        CHAT_CHANNEL_DELETED,
        CHAT_SUBSCRIBED,
        CHAT_UNSUBSCRIBED,
        CHAT_USER_UPDATED,
        CHAT_USER_DELETED,
        CHAT_MESSAGE_CREATED,
        CHAT_MESSAGE_UPDATED,
        CHAT_MESSAGE_DELETED,
    ];
}
