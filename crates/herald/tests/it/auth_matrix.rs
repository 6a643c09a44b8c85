//! The authentication and authorization matrix: every authenticated route of `/api/v1`,
//! against every way a credential can be missing, forged, revoked, too weak, or from
//! somewhere else.
//!
//! The routes are data ([`routes`]): method, path, what the route needs, and what a caller
//! from another project or organization gets when it aims the route at the default project.
//! `route_table_matches_the_router` fails when `src/api/mod.rs` has a route this table lacks
//! (or the other way round), so a new route has to be added here, and every test below then
//! checks it.

use std::collections::{BTreeSet, HashMap};

use herald::auth::jwt::{Claims, JwtKeys};
use herald::secret::ExposeSecret;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, assert_error, send};

crate::both_backends!(
    route_table_matches_the_router,
    missing_and_bad_credentials_are_401,
    revoked_key_is_rejected_at_once,
    wrong_scope_is_403_and_the_right_scope_passes,
    lacking_scope_is_403_before_the_body_is_validated,
    outsiders_cannot_reach_the_default_project,
    org_credentials_must_name_a_reachable_project,
    client_credentials_are_refused_outside_the_client_routes,
);

/// What a route needs of its caller.
#[derive(Clone, Copy, Debug)]
enum Needs {
    /// Any valid credential.
    Credential,
    /// The scope `admin`, from a credential that reaches far enough.
    Admin(Reach),
    /// This scope, inside one project: the key's own, or the one `X-Project-Id` names.
    Project(&'static str),
}

/// How far an admin credential must reach.
#[derive(Clone, Copy, Debug)]
enum Reach {
    /// A project key will do.
    Project,
    /// An organization-level credential; a project admin key gets this status.
    Organization(StatusCode),
    /// An instance key; an organization admin key gets this status.
    Instance(StatusCode),
}

/// What an outsider (a key of another project, or an organization key of another
/// organization) gets when it aims the route at the default project's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outsider {
    /// The route acts on the caller's own things only: there is nothing to aim.
    Own,
    /// Addressed by id: 404, and nothing changes.
    NotFound,
    /// Such a caller may not use the route at all: 403, whatever it aims at.
    Forbidden,
    /// A list: 200, with none of the default organization's or project's resources.
    Excludes,
    /// With `projectId` of the default project in the body: 404.
    NamesProject,
    /// With `organizationId` of the default organization in the body: 404.
    NamesOrganization,
    /// The version lookup: answers as if the default project's versions did not exist.
    Lookup,
}

struct Route {
    method: Method,
    /// As written in `src/api/mod.rs` (under `/api/v1`); `{id}` is filled from [`Fixtures`].
    path: &'static str,
    query: &'static str,
    needs: Needs,
    /// A valid body, so that a refusal is about the credential and not the input.
    body: Option<Value>,
    other_project: Outsider,
    other_org: Outsider,
}

impl Route {
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn query(mut self, query: &'static str) -> Self {
        self.query = query;
        self
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn in_project(&self) -> bool {
        matches!(self.needs, Needs::Project(_))
    }

    /// Whether the path names one resource (`{id}`, `{name}`).
    fn has_target(&self) -> bool {
        self.path.contains('{')
    }

    fn url(&self, id: &str) -> String {
        let mut url = format!("/api/v1{}", fill(self.path, id));
        if !self.query.is_empty() {
            url.push('?');
            url.push_str(self.query);
        }
        url
    }
}

/// `path` with its `{id}` or `{name}` replaced by `id`.
fn fill(path: &str, id: &str) -> String {
    // The fixture channel's message is the project's first: id 1.
    path.replace("{id}", id).replace("{name}", id).replace("{message_id}", "1")
}

fn route(method: Method, path: &'static str, needs: Needs, other_project: Outsider, other_org: Outsider) -> Route {
    Route { method, path, query: "", needs, body: None, other_project, other_org }
}

/// A route inside one project: outsiders of either kind fare the same.
fn in_project(method: Method, path: &'static str, scope: &'static str, other: Outsider) -> Route {
    route(method, path, Needs::Project(scope), other, other)
}

/// Routes that need no credential at all.
const UNAUTHENTICATED: &[(&str, &str)] = &[("POST", "/auth/login"), ("POST", "/auth/refresh")];

/// The game-client routes: a client key or a player session token, nothing else (tests/it/client.rs).
const CLIENT_ROUTES: &[(&str, &str)] = &[
    ("GET", "/client/bootstrap"),
    ("GET", "/client/game-worlds"),
    ("GET", "/client/versions/lookup"),
    ("GET", "/client/notices"),
    ("GET", "/client/maintenance"),
    ("GET", "/client/me"),
];

/// Every authenticated route of `api::router()`.
fn routes() -> Vec<Route> {
    use Needs::{Admin, Credential};
    use Outsider::*;
    const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;
    const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
    let any_key = Admin(Reach::Project);
    let org_level = |status| Admin(Reach::Organization(status));
    vec![
        route(Method::GET, "/me", Credential, Own, Own),
        // Organizations. A project key lists its own organization (shared with the other
        // project), but cannot act on it as a whole.
        route(Method::GET, "/organizations", any_key, Own, Excludes),
        route(Method::POST, "/organizations", Admin(Reach::Instance(FORBIDDEN)), Forbidden, Forbidden)
            .body(json!({"name": "Matrix Org"})),
        route(Method::GET, "/organizations/{id}", org_level(NOT_FOUND), NotFound, NotFound),
        route(Method::PUT, "/organizations/{id}", org_level(NOT_FOUND), NotFound, NotFound)
            .body(json!({"name": "Renamed Org"})),
        route(Method::PATCH, "/organizations/{id}", org_level(NOT_FOUND), NotFound, NotFound)
            .body(json!({"name": "Patched Org"})),
        route(Method::DELETE, "/organizations/{id}", org_level(NOT_FOUND), NotFound, NotFound),
        // Projects.
        route(Method::GET, "/projects", any_key, Excludes, Excludes),
        route(Method::POST, "/projects", org_level(FORBIDDEN), Forbidden, NamesOrganization)
            .body(json!({"name": "Matrix Game"})),
        route(Method::GET, "/projects/{id}", any_key, NotFound, NotFound),
        route(Method::PUT, "/projects/{id}", any_key, NotFound, NotFound).body(json!({"name": "Renamed Game"})),
        route(Method::PATCH, "/projects/{id}", any_key, NotFound, NotFound).body(json!({"name": "Patched Game"})),
        // A project key may not delete any project, its own included: 403 whatever the id.
        route(Method::DELETE, "/projects/{id}", org_level(FORBIDDEN), Forbidden, NotFound),
        route(Method::POST, "/projects/{id}/secret-key/regenerate", any_key, NotFound, NotFound),
        // API keys.
        route(Method::GET, "/api-keys", any_key, Excludes, Excludes),
        route(Method::POST, "/api-keys", any_key, NamesProject, NamesProject)
            .body(json!({"name": "matrix", "scopes": ["users:read"]})),
        route(Method::GET, "/api-keys/{id}", any_key, NotFound, NotFound),
        route(Method::DELETE, "/api-keys/{id}", any_key, NotFound, NotFound),
        // Client keys: a project's own, managed with the scope `admin` there.
        in_project(Method::GET, "/client-keys", "admin", Excludes),
        in_project(Method::POST, "/client-keys", "admin", Own).body(json!({"name": "matrix client"})),
        in_project(Method::DELETE, "/client-keys/{id}", "admin", NotFound),
        // Admin accounts belong to an organization: project keys cannot manage them.
        route(Method::GET, "/admin-users", org_level(FORBIDDEN), Forbidden, Excludes),
        route(Method::POST, "/admin-users", org_level(FORBIDDEN), Forbidden, NamesOrganization)
            .body(json!({"email": "matrix@example.com", "password": "matrix-password-1"})),
        route(Method::DELETE, "/admin-users/{id}", org_level(NOT_FOUND), NotFound, NotFound),
        // Players.
        in_project(Method::GET, "/users", "users:read", Excludes),
        in_project(Method::POST, "/users", "users:write", Own).body(json!({"username": "matrix"})),
        in_project(Method::GET, "/users/{id}", "users:read", NotFound),
        in_project(Method::PUT, "/users/{id}", "users:write", NotFound).body(json!({"displayName": "Put"})),
        in_project(Method::PATCH, "/users/{id}", "users:write", NotFound).body(json!({"displayName": "Patched"})),
        in_project(Method::DELETE, "/users/{id}", "users:write", NotFound),
        in_project(Method::POST, "/users/{id}/login", "users:write", NotFound),
        in_project(Method::POST, "/users/{id}/session-token", "users:write", NotFound),
        in_project(Method::DELETE, "/users/{id}/sessions", "users:write", NotFound),
        // Game worlds.
        in_project(Method::GET, "/game-worlds", "worlds:read", Excludes),
        in_project(Method::POST, "/game-worlds", "worlds:write", Own)
            .body(json!({"worldId": "matrix", "name": "Matrix"})),
        in_project(Method::GET, "/game-worlds/{id}", "worlds:read", NotFound),
        in_project(Method::PUT, "/game-worlds/{id}", "worlds:write", NotFound).body(json!({"name": "Put"})),
        in_project(Method::PATCH, "/game-worlds/{id}", "worlds:write", NotFound).body(json!({"name": "Patched"})),
        in_project(Method::DELETE, "/game-worlds/{id}", "worlds:write", NotFound),
        in_project(Method::PUT, "/game-worlds/{id}/maintenance", "worlds:write", NotFound)
            .body(json!({"enabled": true, "message": "matrix"})),
        // Live operations: game-wide maintenance (the caller's own project), its whitelist,
        // notices.
        in_project(Method::GET, "/maintenance", "worlds:read", Own),
        in_project(Method::PUT, "/maintenance", "worlds:write", Own).body(json!({"enabled": false})),
        in_project(Method::GET, "/maintenance/whitelist", "worlds:read", Excludes),
        in_project(Method::POST, "/maintenance/whitelist", "worlds:write", Own).body(json!({"playerId": "matrix"})),
        in_project(Method::DELETE, "/maintenance/whitelist/{id}", "worlds:write", NotFound),
        in_project(Method::GET, "/notices", "worlds:read", Excludes),
        in_project(Method::POST, "/notices", "worlds:write", Own).body(json!({"title": {"en": "matrix"}})),
        in_project(Method::GET, "/notices/{id}", "worlds:read", NotFound),
        in_project(Method::PUT, "/notices/{id}", "worlds:write", NotFound).body(json!({"priority": 1})),
        in_project(Method::PATCH, "/notices/{id}", "worlds:write", NotFound).body(json!({"priority": 2})),
        in_project(Method::DELETE, "/notices/{id}", "worlds:write", NotFound),
        // Client versions.
        in_project(Method::GET, "/client-versions", "versions:read", Excludes),
        in_project(Method::POST, "/client-versions", "versions:write", Own)
            .body(json!({"channel": "PC", "version": "9.9.9"})),
        in_project(Method::GET, "/client-versions/lookup", "versions:read", Lookup).query("channel=PC&version=1.0.0"),
        in_project(Method::GET, "/client-versions/{id}", "versions:read", NotFound),
        in_project(Method::PUT, "/client-versions/{id}", "versions:write", NotFound).body(json!({"notes": "put"})),
        in_project(Method::PATCH, "/client-versions/{id}", "versions:write", NotFound)
            .body(json!({"notes": "patched"})),
        in_project(Method::DELETE, "/client-versions/{id}", "versions:write", NotFound),
        // The event catalog and events.
        in_project(Method::GET, "/event-types", "events:read", Excludes),
        in_project(Method::POST, "/event-types", "events:publish", Own).body(json!({"name": "matrix.made"})),
        in_project(Method::GET, "/event-types/{name}", "events:read", NotFound),
        in_project(Method::PUT, "/event-types/{name}", "events:publish", NotFound).body(json!({"description": "put"})),
        in_project(Method::PATCH, "/event-types/{name}", "events:publish", NotFound)
            .body(json!({"description": "patched"})),
        in_project(Method::DELETE, "/event-types/{name}", "events:publish", NotFound),
        in_project(Method::GET, "/events", "events:read", Excludes),
        in_project(Method::POST, "/events", "events:publish", Own)
            .body(json!({"type": "matrix.fixture", "data": {"n": 1}})),
        in_project(Method::POST, "/events/batch", "events:publish", Own)
            .body(json!({"events": [{"type": "matrix.fixture", "data": {"n": 2}}]})),
        in_project(Method::GET, "/events/{id}", "events:read", NotFound),
        // Webhooks and their deliveries. Reading an endpoint's secret needs `webhooks:write`.
        in_project(Method::GET, "/webhooks", "webhooks:read", Excludes),
        in_project(Method::POST, "/webhooks", "webhooks:write", Own)
            .body(json!({"url": "http://127.0.0.1:9/matrix", "events": ["matrix.none"]})),
        in_project(Method::GET, "/webhooks/{id}", "webhooks:read", NotFound),
        in_project(Method::PUT, "/webhooks/{id}", "webhooks:write", NotFound).body(json!({"name": "put"})),
        in_project(Method::PATCH, "/webhooks/{id}", "webhooks:write", NotFound).body(json!({"name": "patched"})),
        in_project(Method::DELETE, "/webhooks/{id}", "webhooks:write", NotFound),
        in_project(Method::POST, "/webhooks/{id}/disable", "webhooks:write", NotFound),
        in_project(Method::POST, "/webhooks/{id}/enable", "webhooks:write", NotFound),
        in_project(Method::GET, "/webhooks/{id}/secret", "webhooks:write", NotFound),
        in_project(Method::POST, "/webhooks/{id}/secret/rotate", "webhooks:write", NotFound),
        in_project(Method::POST, "/webhooks/{id}/test", "webhooks:write", NotFound),
        in_project(Method::POST, "/webhooks/{id}/replay", "webhooks:write", NotFound)
            .body(json!({"since": "2000-01-01T00:00:00Z"})),
        in_project(Method::GET, "/webhooks/{id}/deliveries", "webhooks:read", NotFound),
        in_project(Method::GET, "/deliveries/{id}", "webhooks:read", NotFound),
        in_project(Method::POST, "/deliveries/{id}/retry", "webhooks:write", NotFound),
        // Chat: tags and messages (the GameTalk API has its own auth, tested in chat.rs).
        in_project(Method::GET, "/chat/tags", "chat:read", Excludes),
        in_project(Method::POST, "/chat/tags", "chat:write", Own).body(json!({"name": "matrix tag"})),
        in_project(Method::GET, "/chat/tags/{id}", "chat:read", NotFound),
        in_project(Method::PUT, "/chat/tags/{id}", "chat:write", NotFound).body(json!({"description": "put"})),
        in_project(Method::PATCH, "/chat/tags/{id}", "chat:write", NotFound).body(json!({"description": "patched"})),
        in_project(Method::DELETE, "/chat/tags/{id}", "chat:write", NotFound),
        in_project(Method::GET, "/chat/channels/{id}/messages", "chat:read", NotFound),
        in_project(Method::POST, "/chat/channels/{id}/messages", "chat:write", NotFound)
            .body(json!({"text": "matrix"})),
        in_project(Method::PUT, "/chat/channels/{id}/messages/{message_id}", "chat:write", NotFound)
            .body(json!({"text": "put"})),
        in_project(Method::PATCH, "/chat/channels/{id}/messages/{message_id}", "chat:write", NotFound)
            .body(json!({"text": "patched"})),
        // Last of the message routes: it deletes the fixture message the others edit.
        in_project(Method::DELETE, "/chat/channels/{id}/messages/{message_id}", "chat:write", NotFound),
    ]
}

/// `(METHOD, path)` of every `/api/v1` route, from the OpenAPI description: the router is
/// built from the same `routes!` that describe it, and `openapi::every_route_is_documented`
/// makes sure nothing is served around them.
fn routes_in_router_source() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in crate::openapi::spec()["paths"].as_object().expect("paths") {
        let Some(path) = path.strip_prefix("/api/v1") else { continue };
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                found.insert((method.to_uppercase(), path.to_string()));
            }
        }
    }
    assert!(found.len() > 20, "found only {found:?} in the description");
    found
}

/// One resource of each kind, all in the default project (and organization), to fill `{id}`.
struct Fixtures {
    org: String,
    project: String,
    key: String,
    admin: String,
    user: String,
    world: String,
    version: String,
    event_type: String,
    /// The `user.created` event of `user`.
    event: String,
    webhook: String,
    /// The webhook's delivery of `event`, attempted once (and failed: its URL answers 404).
    delivery: String,
    /// The bootstrap key's id.
    bootstrap_key: String,
    chat_tag: String,
    /// A chat channel holding one message (id 1).
    channel: String,
    /// A maintenance whitelist entry.
    whitelisted: String,
    notice: String,
    client_key: String,
}

/// The id part of a full key `hk_<id>_<secret>`.
fn key_id(key: &str) -> String {
    key[3..19].to_string()
}

/// Creates a resource in `collection` (of the default project or organization) through the
/// API; returns its id (an event type's name). `n` keeps names unique.
async fn new_resource(app: &TestApp, org_key: &str, collection: &str, n: usize) -> String {
    let (key, path, body) = match collection {
        "projects" => (org_key, "/api/v1/projects", json!({"name": format!("Game {n}")})),
        "api-keys" => {
            (app.key.as_str(), "/api/v1/api-keys", json!({"name": format!("key {n}"), "scopes": ["users:read"]}))
        }
        "admin-users" => (
            org_key,
            "/api/v1/admin-users",
            json!({"email": format!("admin{n}@example.com"), "password": "fixture-password-1"}),
        ),
        "users" => (app.key.as_str(), "/api/v1/users", json!({"username": format!("player{n}")})),
        "game-worlds" => (
            app.key.as_str(),
            "/api/v1/game-worlds",
            json!({"worldId": format!("world{n}"), "name": format!("World {n}")}),
        ),
        "client-versions" => {
            (app.key.as_str(), "/api/v1/client-versions", json!({"channel": "PC", "version": format!("1.0.{n}")}))
        }
        // The first is `matrix.fixture`, the type the publishing routes of the table send.
        "event-types" => {
            let name = if n == 0 { "matrix.fixture".to_string() } else { format!("matrix.type{n}") };
            (app.key.as_str(), "/api/v1/event-types", json!({"name": name}))
        }
        // Delivered to a route this server does not have: every attempt fails with a 404.
        "chat/tags" => (app.key.as_str(), "/api/v1/chat/tags", json!({"name": format!("tag {n}")})),
        "maintenance" => {
            (app.key.as_str(), "/api/v1/maintenance/whitelist", json!({"ipRange": format!("10.{n}.0.0/16")}))
        }
        "notices" => (app.key.as_str(), "/api/v1/notices", json!({"title": {"en": format!("notice {n}")}})),
        "client-keys" => (app.key.as_str(), "/api/v1/client-keys", json!({"name": format!("client key {n}")})),
        "webhooks" => (
            app.key.as_str(),
            "/api/v1/webhooks",
            json!({"url": app.url(&format!("/webhook-sink/{n}")), "events": ["user.created"]}),
        ),
        other => panic!("no fixture for {other}"),
    };
    let (status, created) = send(app.with_key(key, Method::POST, path).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "creating {collection}: {created}");
    match &created["id"] {
        Value::Number(n) => n.to_string(),
        id => id.as_str().or(created["name"].as_str()).expect("id or name").to_string(),
    }
}

/// A chat channel of the default project (made through the GameTalk API) holding one message,
/// the project's first (id 1).
async fn channel_with_message(app: &TestApp) -> String {
    let (_, project) = app.get(&format!("/api/v1/projects/{}", app.project_id)).await;
    let (app_key, secret) =
        (project["appKey"].as_str().expect("appKey"), project["secretKey"].as_str().expect("secret"));
    let (_, created) = send(
        app.anon(Method::POST, &format!("/game-talk/v1.1/appkeys/{app_key}/channels"))
            .header("X-Secret-Key", secret)
            .json(&json!({"name": "matrix", "autoDelete": false})),
    )
    .await;
    let channel = created["result"]["id"].as_str().expect("channel id").to_string();
    let (status, message) =
        app.post(&format!("/api/v1/chat/channels/{channel}/messages"), json!({"text": "fixture"})).await;
    assert_eq!((status, message["id"].as_i64()), (StatusCode::CREATED, Some(1)), "{message}");
    channel
}

/// Waits until the webhook's one delivery has had its first attempt (the dispatcher works in
/// the background), so that nothing about it changes any more; returns the delivery's id.
async fn first_attempt_done(app: &TestApp, webhook: &str) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, page) = app.get(&format!("/api/v1/webhooks/{webhook}/deliveries")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let (_, hook) = app.get(&format!("/api/v1/webhooks/{webhook}")).await;
        let delivery = &page["items"][0];
        if delivery["attemptCount"].as_i64().is_some_and(|n| n >= 1) && hook["failingSince"].is_string() {
            assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
            return delivery["id"].as_str().expect("id").to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "no attempt yet: {page} {hook}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

impl Fixtures {
    async fn create(app: &TestApp, org_key: &str) -> Fixtures {
        // The webhook first, so that creating the user makes a delivery.
        let webhook = new_resource(app, org_key, "webhooks", 0).await;
        let user = new_resource(app, org_key, "users", 0).await;
        let events = app.store.events_for_resource("user", &user).await.expect("events");
        let event = events.first().expect("user.created").id.clone();
        let delivery = first_attempt_done(app, &webhook).await;
        Fixtures {
            org: app.org_id.clone(),
            project: app.project_id.clone(),
            key: new_resource(app, org_key, "api-keys", 0).await,
            admin: new_resource(app, org_key, "admin-users", 0).await,
            user,
            world: new_resource(app, org_key, "game-worlds", 0).await,
            // Version 1.0.0: the one the lookup route asks about.
            version: new_resource(app, org_key, "client-versions", 0).await,
            event_type: new_resource(app, org_key, "event-types", 0).await,
            event,
            webhook,
            delivery,
            bootstrap_key: key_id(&app.key),
            chat_tag: new_resource(app, org_key, "chat/tags", 0).await,
            channel: channel_with_message(app).await,
            whitelisted: new_resource(app, org_key, "maintenance", 0).await,
            notice: new_resource(app, org_key, "notices", 0).await,
            client_key: new_resource(app, org_key, "client-keys", 0).await,
        }
    }

    /// The resource `{id}` (or `{name}`) stands for in `path`.
    fn id_for(&self, path: &str) -> &str {
        match path.split('/').nth(1) {
            Some("organizations") => &self.org,
            Some("projects") => &self.project,
            Some("api-keys") => &self.key,
            Some("admin-users") => &self.admin,
            Some("users") => &self.user,
            Some("game-worlds") => &self.world,
            Some("client-versions") => &self.version,
            Some("event-types") => &self.event_type,
            Some("events") => &self.event,
            Some("webhooks") => &self.webhook,
            Some("deliveries") => &self.delivery,
            Some("maintenance") => &self.whitelisted,
            Some("notices") => &self.notice,
            Some("client-keys") => &self.client_key,
            Some("chat") => match path.split('/').nth(2) {
                Some("tags") => &self.chat_tag,
                Some("channels") => &self.channel,
                _ => "",
            },
            _ => "",
        }
    }

    /// Every id (and name) an outsider must never see.
    fn ids(&self) -> BTreeSet<String> {
        [
            &self.org,
            &self.project,
            &self.key,
            &self.admin,
            &self.user,
            &self.world,
            &self.version,
            &self.event_type,
            &self.event,
            &self.webhook,
            &self.delivery,
            &self.bootstrap_key,
            &self.channel,
            &self.whitelisted,
            &self.notice,
            &self.client_key,
            // The tag's id is a small number; its name is what a list can be checked for.
            &"tag 0".to_string(),
        ]
        .into_iter()
        .cloned()
        .collect()
    }

    /// Each fixture as its owner reads it.
    async fn snapshot(&self, app: &TestApp, org_key: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for (key, path) in [
            (org_key, format!("/api/v1/organizations/{}", self.org)),
            (org_key, "/api/v1/admin-users".to_string()),
            (&app.key, format!("/api/v1/projects/{}", self.project)),
            (&app.key, format!("/api/v1/api-keys/{}", self.key)),
            (&app.key, format!("/api/v1/users/{}", self.user)),
            (&app.key, format!("/api/v1/game-worlds/{}", self.world)),
            (&app.key, format!("/api/v1/client-versions/{}", self.version)),
            (&app.key, format!("/api/v1/event-types/{}", self.event_type)),
            (&app.key, format!("/api/v1/events/{}", self.event)),
            (&app.key, format!("/api/v1/webhooks/{}", self.webhook)),
            (&app.key, format!("/api/v1/webhooks/{}/secret", self.webhook)),
            (&app.key, format!("/api/v1/deliveries/{}", self.delivery)),
            (&app.key, format!("/api/v1/chat/tags/{}", self.chat_tag)),
            (&app.key, format!("/api/v1/chat/channels/{}/messages", self.channel)),
        ] {
            let (status, body) = send(app.with_key(key, Method::GET, &path)).await;
            assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
            out.push(body);
        }
        out
    }
}

/// Another organization with one project and an organization-level admin key, all made
/// through the API with an instance key.
struct Elsewhere {
    org: String,
    project: String,
    key: String,
}

impl Elsewhere {
    async fn create(app: &TestApp, instance_key: &str) -> Elsewhere {
        let (status, org) =
            send(app.with_key(instance_key, Method::POST, "/api/v1/organizations").json(&json!({"name": "Elsewhere"})))
                .await;
        assert_eq!(status, StatusCode::CREATED, "{org}");
        let org = org["id"].as_str().expect("id").to_string();
        let (status, project) = send(
            app.with_key(instance_key, Method::POST, "/api/v1/projects")
                .json(&json!({"name": "Far Game", "organizationId": org})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{project}");
        let (status, key) = send(
            app.with_key(instance_key, Method::POST, "/api/v1/api-keys")
                .json(&json!({"name": "far admin", "scopes": ["admin"], "organizationId": org})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        assert!(key["projectId"].is_null(), "an organization-level key: {key}");
        Elsewhere {
            org,
            project: project["id"].as_str().expect("id").to_string(),
            key: key["keyValue"].as_str().expect("keyValue").to_string(),
        }
    }
}

/// Sends `route` aimed at `id` with `headers`, and `body` as JSON if any.
async fn call_with(
    app: &TestApp,
    route: &Route,
    id: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut req = app.anon(route.method.clone(), &route.url(id));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    send(req).await
}

/// Sends `route` aimed at `id` with `headers` and the route's own body.
async fn call(app: &TestApp, route: &Route, id: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    call_with(app, route, id, headers, route.body.as_ref()).await
}

fn api_key(key: &str) -> [(&'static str, &str); 1] {
    [("X-API-Key", key)]
}

/// `X-API-Key: key`, plus `X-Project-Id: project` on routes inside a project.
fn key_headers<'a>(route: &Route, key: &'a str, project: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![("X-API-Key", key)];
    if let (true, Some(project)) = (route.in_project(), project) {
        headers.push(("X-Project-Id", project));
    }
    headers
}

async fn count_events(app: &TestApp) -> i64 {
    app.store.count_events().await.expect("count events")
}

/// The signing keys the server uses for admin JWTs.
async fn server_jwt_keys(app: &TestApp) -> JwtKeys {
    let secret = if app.config.auth.jwt_secret.expose_secret().is_empty() {
        app.store.setting_or_insert("jwt_secret", "never used: the server made one at start").await.expect("jwt secret")
    } else {
        app.config.auth.jwt_secret.expose_secret().to_owned()
    };
    JwtKeys::new(secret.as_bytes())
}

fn claims(sub: &str, org: &str, exp_from_now: i64, typ: &str) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: sub.into(),
        org: org.into(),
        role: "admin".into(),
        iat: now,
        exp: now + exp_from_now,
        typ: typ.into(),
    }
}

async fn route_table_matches_the_router(app: TestApp) {
    let table = routes();
    let mut listed = BTreeSet::new();
    for route in &table {
        assert!(listed.insert((route.method.to_string(), route.path.to_string())), "{} is listed twice", route.name());
    }
    let mut declared = listed.clone();
    for (method, path) in UNAUTHENTICATED.iter().chain(CLIENT_ROUTES) {
        assert!(declared.insert((method.to_string(), path.to_string())));
    }
    let client: BTreeSet<(String, String)> =
        CLIENT_ROUTES.iter().map(|(method, path)| (method.to_string(), path.to_string())).collect();
    let in_router = routes_in_router_source();
    let missing: Vec<_> = in_router.difference(&declared).collect();
    assert!(missing.is_empty(), "routes of the API missing from the auth matrix (add them to routes()): {missing:?}");
    let stale: Vec<_> = declared.difference(&in_router).collect();
    assert!(stale.is_empty(), "routes in the auth matrix that the API no longer has: {stale:?}");

    // The running server agrees, method by method: a listed method asks for credentials,
    // any other method of a listed path is 405.
    let paths: BTreeSet<&str> = declared.iter().map(|(_, path)| path.as_str()).collect();
    for path in paths {
        let url = format!("/api/v1{}", fill(path, "some-id"));
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let key = (method.to_string(), path.to_string());
            let (status, body) = send(app.anon(method.clone(), &url)).await;
            if !declared.contains(&key) {
                assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            } else if listed.contains(&key) || client.contains(&key) {
                assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
            } else {
                assert!(
                    !matches!(
                        status,
                        StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                    ),
                    "{method} {path} needs no credentials: {status} {body}"
                );
            }
        }
    }
}

async fn missing_and_bad_credentials_are_401(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let f = Fixtures::create(&app, &org_key).await;
    let (_, another_key) = app.create_key(&["users:read"]).await;
    // The bootstrap key's id with a well-formed secret that is not its own.
    let tampered = format!("{}{}", &app.key[..20], &another_key[20..]);
    assert_ne!(tampered, app.key);
    assert_eq!(key_id(&tampered), key_id(&app.key));

    // Tokens minted with the server's own signing key work, so the ones below fail for the
    // reason each names.
    let server_keys = server_jwt_keys(&app).await;
    let good = server_keys.issue(&claims(&f.admin, &f.org, 600, "access")).expect("issue");
    let (status, me) =
        send(app.anon(Method::GET, "/api/v1/me").bearer_auth(&good).header("X-Project-Id", &app.project_id)).await;
    assert_eq!(status, StatusCode::OK, "a well-made token works: {me}");
    let expired = server_keys.issue(&claims(&f.admin, &f.org, -3600, "access")).expect("issue");
    let not_access = server_keys.issue(&claims(&f.admin, &f.org, 600, "refresh")).expect("issue");
    let no_such_admin = server_keys.issue(&claims("no-such-admin", &f.org, 600, "access")).expect("issue");
    let forged =
        JwtKeys::new(b"not the server's signing key").issue(&claims(&f.admin, &f.org, 600, "access")).expect("issue");
    let garbage_jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJub2JvZHkifQ.c2lnbmF0dXJl";
    let bearer = |token: &str| format!("Bearer {token}");

    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no credentials", vec![]),
        ("an unknown key", vec![("X-API-Key", "hk_0000000000000000_x".into())]),
        ("an unknown key as Bearer", vec![("Authorization", bearer("hk_0000000000000000_x"))]),
        ("a malformed key", vec![("X-API-Key", "hk_nothex_x".into())]),
        ("JWT-looking garbage", vec![("Authorization", bearer(garbage_jwt))]),
        ("JWT-looking garbage as X-API-Key", vec![("X-API-Key", garbage_jwt.into())]),
        ("a tampered key", vec![("X-API-Key", tampered.clone())]),
        ("a tampered key as Bearer", vec![("Authorization", bearer(&tampered))]),
        ("an expired JWT", vec![("Authorization", bearer(&expired))]),
        ("a non-access JWT", vec![("Authorization", bearer(&not_access))]),
        ("a JWT of no admin", vec![("Authorization", bearer(&no_such_admin))]),
        ("a forged JWT", vec![("Authorization", bearer(&forged))]),
        ("Basic authentication", vec![("Authorization", "Basic YWRtaW46YWRtaW4=".into())]),
        ("an empty Bearer", vec![("Authorization", "Bearer".into())]),
    ];

    let snapshot = f.snapshot(&app, &org_key).await;
    let before = count_events(&app).await;
    for route in routes() {
        let id = f.id_for(route.path);
        for (what, headers) in &cases {
            let mut headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            if route.in_project() {
                // Named rightly, so the credential is the only thing wrong.
                headers.push(("X-Project-Id", &app.project_id));
            }
            let (status, body) = call(&app, &route, id, &headers).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{} with {what}: {body}",
                route.name()
            );
        }
    }
    assert_eq!(count_events(&app).await, before, "a rejected request changes nothing");
    assert_eq!(f.snapshot(&app, &org_key).await, snapshot, "the fixtures are as they were");
    // The bootstrap key still works after its id was presented with a wrong secret.
    let (status, _) = app.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
}

async fn revoked_key_is_rejected_at_once(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let f = Fixtures::create(&app, &org_key).await;
    let (status, created) = send(
        app.with_key(&org_key, Method::POST, "/api/v1/api-keys")
            .json(&json!({"name": "to revoke", "scopes": ["admin"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let value = created["keyValue"].as_str().expect("keyValue").to_string();
    assert!(created["projectId"].is_null(), "organization-level: {created}");

    // Used, so this node has it cached.
    for path in ["/api/v1/me", "/api/v1/projects", "/api/v1/users"] {
        let (status, body) =
            send(app.with_key(&value, Method::GET, path).header("X-Project-Id", &app.project_id)).await;
        assert_eq!(status, StatusCode::OK, "{path} before revocation: {body}");
    }

    let (status, revoked) = send(app.with_key(&org_key, Method::DELETE, &format!("/api/v1/api-keys/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revokedAt"].is_string(), "{revoked}");

    let before = count_events(&app).await;
    for route in routes() {
        let headers = key_headers(&route, &value, Some(&app.project_id));
        let (status, body) = call(&app, &route, f.id_for(route.path), &headers).await;
        let msg = assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(msg.contains("revoked"), "{}: {msg}", route.name());
    }
    assert_eq!(count_events(&app).await, before, "a revoked key changes nothing");

    // Revoked keys stay listed, marked.
    let (status, listed) = send(app.with_key(&org_key, Method::GET, "/api/v1/api-keys")).await;
    assert_eq!(status, StatusCode::OK);
    let item = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|k| k["id"] == id.as_str())
        .expect("the revoked key is still listed");
    assert_eq!(item["revokedAt"], revoked["revokedAt"]);
    assert_eq!(app.event_types("api_key", &id).await, ["api_key.created", "api_key.revoked"]);

    // The same for a project key presented as `Authorization: Bearer`, revoked by the
    // bootstrap key.
    let (project_key_id, project_key) = app.create_key(&["users:read"]).await;
    let get_users = || send(app.anon(Method::GET, "/api/v1/users").bearer_auth(&project_key));
    assert_eq!(get_users().await.0, StatusCode::OK);
    let (status, _) = app.delete(&format!("/api/v1/api-keys/{project_key_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get_users().await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
}

/// The scope `<area>:<access>` of `scope`'s area (`users` of `users:write`), if Herald has one.
fn sibling_scope(scope: &str, access: &str) -> Option<&'static str> {
    let area = scope.split(':').next().unwrap_or_default();
    let name = format!("{area}:{access}");
    herald::auth::Scope::parse(&name).map(herald::auth::Scope::as_str)
}

/// Project keys with exactly the scopes asked for, made on demand through the API.
struct ScopedKeys(HashMap<&'static str, String>);

impl ScopedKeys {
    async fn get(&mut self, app: &TestApp, scope: &'static str) -> String {
        if let Some(key) = self.0.get(scope) {
            return key.clone();
        }
        let (_, key) = app.create_key(&[scope]).await;
        self.0.insert(scope, key.clone());
        key
    }
}

async fn wrong_scope_is_403_and_the_right_scope_passes(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let instance_key = app.instance_key().await;
    let f = Fixtures::create(&app, &org_key).await;
    let mut keys = ScopedKeys(HashMap::new());
    let weak = keys.get(&app, "metrics:read").await;
    let users_write = keys.get(&app, "users:write").await;
    // Made now: making them later would write events in the middle of the count.
    for route in routes() {
        if let Needs::Project(scope) = route.needs
            && let Some(read) = sibling_scope(scope, "read")
        {
            keys.get(&app, read).await;
        }
    }

    let before = count_events(&app).await;
    for route in routes() {
        let id = f.id_for(route.path);
        let denied = |status: StatusCode, body: &Value, with: &str| {
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("forbidden")),
                "{} with {with}: {body}",
                route.name()
            );
        };
        match route.needs {
            Needs::Credential => {}
            Needs::Admin(reach) => {
                for (with, key) in [("metrics:read", &weak), ("users:write", &users_write)] {
                    let (status, body) = call(&app, &route, id, &api_key(key)).await;
                    denied(status, &body, with);
                }
                // An admin key that does not reach far enough.
                let (lesser, status_wanted) = match reach {
                    Reach::Project => continue,
                    Reach::Organization(status) => (&app.key, status),
                    Reach::Instance(status) => (&org_key, status),
                };
                let (status, body) = call(&app, &route, id, &api_key(lesser)).await;
                let code = if status_wanted == StatusCode::NOT_FOUND { "not_found" } else { "forbidden" };
                assert_eq!(
                    (status, body["error"]["code"].as_str()),
                    (status_wanted, Some(code)),
                    "{} with an admin key of too little reach: {body}",
                    route.name()
                );
            }
            Needs::Project(scope) => {
                assert_ne!(scope, "metrics:read", "the weak key must lack the scope");
                let (status, body) = call(&app, &route, id, &api_key(&weak)).await;
                denied(status, &body, "metrics:read");
                if !scope.starts_with("users:") {
                    let (status, body) = call(&app, &route, id, &api_key(&users_write)).await;
                    denied(status, &body, "users:write");
                }
                // Reading does not imply writing (nor publishing).
                if let Some(read) = sibling_scope(scope, "read").filter(|read| *read != scope) {
                    let key = keys.get(&app, read).await;
                    let (status, body) = call(&app, &route, id, &api_key(&key)).await;
                    denied(status, &body, read);
                }
            }
        }
    }
    assert_eq!(count_events(&app).await, before, "a refused request changes nothing");

    // The least credential the table says suffices does succeed: a project key with just the
    // needed scope (or its `:write` twin for reads), or an admin key of just enough reach.
    // DELETEs get a resource of their own.
    let mut n = 100;
    for route in routes() {
        let mut id = f.id_for(route.path).to_string();
        let mut own_key = None;
        if route.method == Method::DELETE {
            n += 1;
            if route.path.starts_with("/organizations/") {
                // An empty organization, deleted by its own organization-level key.
                let far = Elsewhere::create(&app, &instance_key).await;
                let (status, body) =
                    send(app.with_key(&instance_key, Method::DELETE, &format!("/api/v1/projects/{}", far.project)))
                        .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                id = far.org;
                own_key = Some(far.key);
            } else if route.path.starts_with("/chat/channels/") {
                // The fixture message: its route comes last of the message routes.
                id = f.channel.clone();
            } else if route.path.starts_with("/chat/") {
                id = new_resource(&app, &org_key, "chat/tags", n).await;
            } else {
                id = new_resource(&app, &org_key, route.path.split('/').nth(1).unwrap_or(""), n).await;
            }
        }
        let credentials: Vec<(String, String)> = match (route.needs, own_key) {
            (_, Some(key)) => vec![("the organization's own key".into(), key)],
            (Needs::Credential, _) => vec![("metrics:read".into(), weak.clone())],
            (Needs::Admin(Reach::Project), _) => vec![("a project admin key".into(), app.key.clone())],
            (Needs::Admin(Reach::Organization(_)), _) => {
                vec![("an organization admin key".into(), org_key.clone())]
            }
            (Needs::Admin(Reach::Instance(_)), _) => {
                vec![("an instance key".into(), instance_key.clone())]
            }
            (Needs::Project(scope), _) => {
                let mut creds = vec![(scope.to_string(), keys.get(&app, scope).await)];
                if let Some(write) = sibling_scope(scope, "write").filter(|_| scope.ends_with(":read")) {
                    creds.push((write.to_string(), keys.get(&app, write).await));
                }
                creds
            }
        };
        for (with, key) in &credentials {
            let (status, body) = call(&app, &route, &id, &api_key(key)).await;
            assert!(status.is_success(), "{} with {with}: {status} {body}", route.name());
        }
    }
}

async fn outsiders_cannot_reach_the_default_project(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let instance_key = app.instance_key().await;
    let f = Fixtures::create(&app, &org_key).await;
    let (other_project, other_key) = app.other_project().await;
    let far = Elsewhere::create(&app, &instance_key).await;
    let hidden = f.ids();
    let table = routes();

    // Whether a list item is (or is part of) the default organization's or project's things.
    let shows_default = |item: &Value| {
        ["id", "name"].iter().any(|field| hidden.contains(item[field].as_str().unwrap_or_default()))
            || item["projectId"] == json!(f.project)
    };

    let snapshot = f.snapshot(&app, &org_key).await;
    let before = count_events(&app).await;
    type Pick = fn(&Route) -> Outsider;
    let outsiders: [(&str, &str, Option<&str>, Pick); 2] = [
        ("a key of another project", &other_key, None, |r| r.other_project),
        ("an organization key of another organization", &far.key, Some(&far.project), |r| r.other_org),
    ];
    for (who, key, own_project, pick) in outsiders {
        for route in &table {
            let id = f.id_for(route.path);
            let headers = key_headers(route, key, own_project);
            let what = format!("{} by {who}", route.name());
            match pick(route) {
                Outsider::Own => {}
                Outsider::NotFound => {
                    let (status, body) = call(&app, route, id, &headers).await;
                    assert_eq!(
                        (status, body["error"]["code"].as_str()),
                        (StatusCode::NOT_FOUND, Some("not_found")),
                        "{what}: {body}"
                    );
                }
                Outsider::Forbidden => {
                    let (status, body) = call(&app, route, id, &headers).await;
                    assert_eq!(
                        (status, body["error"]["code"].as_str()),
                        (StatusCode::FORBIDDEN, Some("forbidden")),
                        "{what}: {body}"
                    );
                }
                Outsider::NamesProject | Outsider::NamesOrganization => {
                    let mut body = route.body.clone().expect("a body to name it in");
                    if pick(route) == Outsider::NamesProject {
                        body["projectId"] = json!(f.project);
                    } else {
                        body["organizationId"] = json!(f.org);
                    }
                    let (status, body) = call_with(&app, route, id, &headers, Some(&body)).await;
                    assert_eq!(
                        (status, body["error"]["code"].as_str()),
                        (StatusCode::NOT_FOUND, Some("not_found")),
                        "{what}: {body}"
                    );
                }
                Outsider::Excludes => {
                    let (status, body) = call(&app, route, id, &headers).await;
                    assert_eq!(status, StatusCode::OK, "{what}: {body}");
                    let items = body["items"].as_array().expect("items");
                    if body.get("total").is_some() {
                        assert_eq!(body["total"], items.len(), "{what}: the total counts only what it shows");
                    }
                    for item in items {
                        assert!(!shows_default(item), "{what} shows {item}");
                    }
                }
                Outsider::Lookup => {
                    let (status, body) = call(&app, route, id, &headers).await;
                    assert_eq!(status, StatusCode::OK, "{what}: {body}");
                    assert_eq!(body["known"], false, "{what}: {body}");
                    assert!(body["latestVersion"].is_null(), "{what}: {body}");
                }
            }
            // Naming the default project from outside is 404 on every project route.
            if route.in_project() {
                let headers = [("X-API-Key", key), ("X-Project-Id", f.project.as_str())];
                let (status, body) = call(&app, route, id, &headers).await;
                assert_eq!(
                    (status, body["error"]["code"].as_str()),
                    (StatusCode::NOT_FOUND, Some("not_found")),
                    "{what} with X-Project-Id of the default project: {body}"
                );
            }
        }
    }
    assert_eq!(count_events(&app).await, before, "outsiders changed nothing");
    assert_eq!(f.snapshot(&app, &org_key).await, snapshot, "the default project's resources are as they were");

    // The owner does see what the outsiders could not: the lists and ids were real.
    for route in &table {
        let checked = [route.other_project, route.other_org];
        let headers = key_headers(route, &org_key, Some(&f.project));
        if checked.contains(&Outsider::Excludes) {
            let (status, body) = call(&app, route, "", &headers).await;
            assert_eq!(status, StatusCode::OK, "{}: {body}", route.name());
            let items = body["items"].as_array().expect("items");
            assert!(items.iter().any(shows_default), "{} by the owner shows the fixtures: {body}", route.name());
        }
        if checked.contains(&Outsider::Lookup) {
            let (status, body) = call(&app, route, "", &headers).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["known"], true, "{body}");
        }
    }
    // The other project's key works in its own project.
    let (status, me) = send(app.with_key(&other_key, Method::GET, "/api/v1/me")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["projectId"], json!(other_project));
}

async fn org_credentials_must_name_a_reachable_project(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let instance_key = app.instance_key().await;
    let f = Fixtures::create(&app, &org_key).await;
    let far = Elsewhere::create(&app, &instance_key).await;
    let table: Vec<Route> = routes().into_iter().filter(Route::in_project).collect();
    assert!(table.len() > 15, "the project routes are in the table");

    let before = count_events(&app).await;
    for route in &table {
        let id = f.id_for(route.path);
        for (who, key) in [("an organization key", &org_key), ("an instance key", &instance_key)] {
            let (status, body) = call(&app, route, id, &api_key(key)).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("project_required")),
                "{} by {who} without X-Project-Id: {body}",
                route.name()
            );
        }
        for (what, project) in
            [("a project of another organization", far.project.as_str()), ("no project", "no-such-project")]
        {
            let headers = [("X-API-Key", org_key.as_str()), ("X-Project-Id", project)];
            let (status, body) = call(&app, route, id, &headers).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (StatusCode::NOT_FOUND, Some("not_found")),
                "{} by an organization key naming {what}: {body}",
                route.name()
            );
        }
    }
    assert_eq!(count_events(&app).await, before, "nothing changed");

    // Named rightly, the same credentials are let in (reads only, so nothing changes).
    for route in table.iter().filter(|r| r.method == Method::GET) {
        let id = f.id_for(route.path);
        for (who, key, project) in [
            ("an organization key", &org_key, &f.project),
            ("an instance key", &instance_key, &f.project),
            ("an instance key", &instance_key, &far.project),
            ("the project's own key", &app.key, &f.project),
        ] {
            let headers = [("X-API-Key", key.as_str()), ("X-Project-Id", project.as_str())];
            let (status, body) = call(&app, route, id, &headers).await;
            let want = if project == &far.project && route.has_target() {
                StatusCode::NOT_FOUND // the fixture is not in that project
            } else {
                StatusCode::OK
            };
            assert_eq!(status, want, "{} by {who} naming {project}: {body}", route.name());
        }
    }
}

/// Authorization comes before validation: a credential lacking the route's scope gets 403
/// whatever the body, so a refused caller learns nothing about what the route takes. (Before
/// issue 16 the body was read and validated first: 422 on 16 routes.)
async fn lacking_scope_is_403_before_the_body_is_validated(app: TestApp) {
    let (_, weak) = app.create_key(&["metrics:read"]).await;
    let bodies: [(&str, &str); 3] = [
        ("a body of the wrong shape", r#"{"noSuchField": [1, 2, 3]}"#),
        ("a body that is not JSON", "{not json"),
        ("a body of the wrong type", "[]"),
    ];
    let before = count_events(&app).await;
    let mut checked = 0;
    for route in routes() {
        if matches!(route.needs, Needs::Credential) {
            continue;
        }
        for (what, body) in bodies {
            let req = app
                .with_key(&weak, route.method.clone(), &route.url("no-such-id"))
                .header("content-type", "application/json")
                .body(body);
            let (status, answer) = send(req).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("forbidden")),
                "{} by a key lacking its scope, with {what}: {answer}",
                route.name()
            );
        }
        checked += 1;
    }
    assert!(checked > 60, "{checked} routes");
    assert_eq!(count_events(&app).await, before, "a refused request changes nothing");
}

/// A client key (`hc_...`, shipped inside game builds) and a player session token open the
/// client routes only: every other route refuses them with 403 and a code saying so, however
/// they are presented, and nothing changes.
async fn client_credentials_are_refused_outside_the_client_routes(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let f = Fixtures::create(&app, &org_key).await;
    let (status, key) = app.post("/api/v1/client-keys", json!({"name": "in the build"})).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let client_key = key["keyValue"].as_str().expect("keyValue").to_string();
    let (status, token) = app.post(&format!("/api/v1/users/{}/session-token", f.user), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let token = token["token"].as_str().expect("token").to_string();
    // Both work where they belong.
    for headers in [vec![("X-Client-Key", client_key.clone())], vec![("Authorization", format!("Bearer {token}"))]] {
        let mut req = app.anon(Method::GET, "/api/v1/client/bootstrap");
        for (name, value) in &headers {
            req = req.header(*name, value);
        }
        let (status, body) = send(req).await;
        assert_eq!(status, StatusCode::OK, "{headers:?}: {body}");
    }

    let bearer = |t: &str| format!("Bearer {t}");
    let cases: Vec<(&str, (&str, String), &str)> = vec![
        ("a client key as X-API-Key", ("X-API-Key", client_key.clone()), "client_key_not_allowed"),
        ("a client key as Bearer", ("Authorization", bearer(&client_key)), "client_key_not_allowed"),
        ("a player session token", ("Authorization", bearer(&token)), "player_token_not_allowed"),
    ];
    let snapshot = f.snapshot(&app, &org_key).await;
    let before = count_events(&app).await;
    let mut checked = 0;
    for route in routes() {
        let id = f.id_for(route.path);
        for (what, (name, value), code) in &cases {
            let mut headers = vec![(*name, value.as_str())];
            if route.in_project() {
                headers.push(("X-Project-Id", app.project_id.as_str()));
            }
            let (status, body) = call(&app, &route, id, &headers).await;
            let message = assert_error(status, &body, StatusCode::FORBIDDEN, code);
            assert!(
                message.contains("/api/v1/client/"),
                "{} with {what}: the message says where it works: {message}",
                route.name()
            );
        }
        checked += 1;
    }
    assert!(checked > 70, "{checked} routes");
    assert_eq!(count_events(&app).await, before, "a refused request changes nothing");
    assert_eq!(f.snapshot(&app, &org_key).await, snapshot, "the fixtures are as they were");
}
