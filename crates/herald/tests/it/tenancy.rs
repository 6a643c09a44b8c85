//! Organizations, projects, API keys, admin accounts and their logins: who may create what,
//! what is shown (and never shown), and the events each change writes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, assert_error, send};

crate::both_backends!(
    only_instance_keys_create_organizations,
    organizations_list_get_update_delete,
    organization_with_projects_cannot_be_deleted,
    projects_show_their_secret_key_in_details_only,
    project_slugs_are_unique_per_organization,
    project_keys_cannot_create_or_delete_projects,
    deleting_a_project_or_organization_disables_its_keys,
    api_key_value_is_shown_once,
    api_key_scopes_are_validated,
    api_keys_reach_only_their_own_organization,
    api_key_last_used_at_is_recorded,
    admin_users_are_managed_by_organization_credentials,
    admin_login_gives_a_working_jwt,
    login_failures_look_the_same,
    refresh_rotates_and_a_reused_token_revokes_the_rest,
    deleting_an_admin_stops_its_tokens,
    me_describes_the_caller,
);

const PASSWORD: &str = "correct horse battery staple";

fn with(app: &TestApp, key: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.with_key(key, method, path)
}

/// A JSON request with `key`; returns status and body.
async fn call(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = with(app, key, method, path);
    if let Some(body) = body {
        req = req.json(&body);
    }
    send(req).await
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().unwrap_or_else(|| panic!("an id in {body}")).to_string()
}

fn ids_of(list: &Value) -> Vec<String> {
    list["items"].as_array().expect("items").iter().map(id_of).collect()
}

/// Creates an organization with the instance key; returns its body.
async fn create_org(app: &TestApp, instance_key: &str, body: Value) -> Value {
    let (status, org) = call(app, instance_key, Method::POST, "/api/v1/organizations", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    org
}

/// Creates an admin account in the default organization; returns its body.
async fn create_admin(app: &TestApp, org_key: &str, email: &str) -> Value {
    let (status, admin) =
        call(app, org_key, Method::POST, "/api/v1/admin-users", Some(json!({"email": email, "password": PASSWORD})))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{admin}");
    admin
}

async fn login(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value) {
    send(app.anon(Method::POST, "/api/v1/auth/login").json(&json!({"email": email, "password": password}))).await
}

async fn refresh(app: &TestApp, token: &Value) -> (StatusCode, Value) {
    send(app.anon(Method::POST, "/api/v1/auth/refresh").json(&json!({"refreshToken": token}))).await
}

/// A request with `Authorization: Bearer <token>`.
fn bearer(app: &TestApp, token: &Value, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.anon(method, path).bearer_auth(token.as_str().expect("a token string"))
}

fn rfc3339(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("an RFC 3339 time, not {value}"))
}

async fn only_instance_keys_create_organizations(app: TestApp) {
    let instance_key = app.instance_key().await;
    let org_key = app.org_admin_key().await;

    let org = create_org(&app, &instance_key, json!({"name": "Acme Games"})).await;
    assert_eq!(org["name"], "Acme Games");
    assert_eq!(org["slug"], "acme-games", "the slug is made from the name");
    rfc3339(&org["createdAt"]);

    // Admin keys of an organization or a project may not.
    for key in [&org_key, &app.key] {
        let (status, body) =
            call(&app, key, Method::POST, "/api/v1/organizations", Some(json!({"name": "Sneaky"}))).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, body) = call(
        &app,
        &instance_key,
        Method::POST,
        "/api/v1/organizations",
        Some(json!({"name": "Acme Again", "slug": "acme-games"})),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    for bad in [
        json!({"name": ""}),
        json!({"name": "Ok", "slug": "Not A Slug"}),
        json!({"name": "Ok", "slug": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "Ok", "color": "red"}),
    ] {
        let (status, body) = call(&app, &instance_key, Method::POST, "/api/v1/organizations", Some(bad.clone())).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    }

    let (status, list) = call(&app, &instance_key, Method::GET, "/api/v1/organizations", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids_of(&list), [app.org_id.clone(), id_of(&org)], "only Acme was added");
    assert_eq!(app.event_types("organization", &id_of(&org)).await, ["organization.created"]);
}

async fn organizations_list_get_update_delete(app: TestApp) {
    let instance_key = app.instance_key().await;
    let org_key = app.org_admin_key().await;
    let org = create_org(&app, &instance_key, json!({"name": "Blue Studio", "slug": "blue"})).await;
    let id = id_of(&org);
    let path = format!("/api/v1/organizations/{id}");

    let (status, got) = call(&app, &instance_key, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, org);
    // The default organization's key sees only its own organization.
    let (status, list) = call(&app, &org_key, Method::GET, "/api/v1/organizations", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids_of(&list), [app.org_id.as_str()]);
    assert_eq!(list["total"], 1);
    let (status, body) = call(&app, &org_key, Method::GET, &path, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, own) = call(&app, &org_key, Method::GET, &format!("/api/v1/organizations/{}", app.org_id), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["slug"], "default");

    let (status, renamed) = call(&app, &instance_key, Method::PATCH, &path, Some(json!({"name": "Blue Games"}))).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Blue Games");
    assert_eq!(renamed["slug"], "blue", "an absent field is kept");
    assert!(rfc3339(&renamed["updatedAt"]) > rfc3339(&org["updatedAt"]));
    assert_eq!(renamed["createdAt"], org["createdAt"]);
    let (status, reslugged) = call(&app, &instance_key, Method::PUT, &path, Some(json!({"slug": "blue-games"}))).await;
    assert_eq!(status, StatusCode::OK, "{reslugged}");
    assert_eq!((reslugged["name"].as_str(), reslugged["slug"].as_str()), (Some("Blue Games"), Some("blue-games")));
    // Another organization's slug is taken; the failed update changes nothing.
    let (status, body) = call(&app, &instance_key, Method::PATCH, &path, Some(json!({"slug": "default"}))).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, body) = call(&app, &instance_key, Method::PATCH, &path, Some(json!({"name": ""}))).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let (_, got) = call(&app, &instance_key, Method::GET, &path, None).await;
    assert_eq!(got, reslugged);
    // An organization's own key may rename it; another organization's key may not touch it.
    let (status, body) = call(&app, &org_key, Method::PATCH, &path, Some(json!({"name": "Mine Now"}))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = call(
        &app,
        &org_key,
        Method::PATCH,
        &format!("/api/v1/organizations/{}", app.org_id),
        Some(json!({"name": "Default Renamed"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&app, &org_key, Method::DELETE, &path, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    let (status, deleted) = call(&app, &instance_key, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["id"], id.as_str());
    let (status, body) = call(&app, &instance_key, Method::GET, &path, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = call(&app, &instance_key, Method::DELETE, &path, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    assert_eq!(
        app.event_types("organization", &id).await,
        ["organization.created", "organization.updated", "organization.updated", "organization.deleted"]
    );
    assert_eq!(app.event_types("organization", &app.org_id).await, ["organization.created", "organization.updated"]);
}

async fn organization_with_projects_cannot_be_deleted(app: TestApp) {
    let instance_key = app.instance_key().await;
    let org = create_org(&app, &instance_key, json!({"name": "Busy"})).await;
    let org_id = id_of(&org);
    let (status, project) = call(
        &app,
        &instance_key,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"name": "Busy Game", "organizationId": org_id})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let path = format!("/api/v1/organizations/{org_id}");

    let (status, body) = call(&app, &instance_key, Method::DELETE, &path, None).await;
    let msg = assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert!(msg.contains("project"), "says why: {msg}");
    let (status, _) = call(&app, &instance_key, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "still there");
    let (status, _) =
        call(&app, &instance_key, Method::GET, &format!("/api/v1/projects/{}", id_of(&project)), None).await;
    assert_eq!(status, StatusCode::OK, "its project too");
    // The default organization, with its project, is refused as well.
    let org_key = app.org_admin_key().await;
    let (status, body) =
        call(&app, &org_key, Method::DELETE, &format!("/api/v1/organizations/{}", app.org_id), None).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(app.event_types("organization", &org_id).await, ["organization.created"]);

    // Once its projects are gone, it can go.
    let (status, _) =
        call(&app, &instance_key, Method::DELETE, &format!("/api/v1/projects/{}", id_of(&project)), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&app, &instance_key, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.event_types("organization", &org_id).await, ["organization.created", "organization.deleted"]);
}

async fn projects_show_their_secret_key_in_details_only(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let (status, project) =
        call(&app, &org_key, Method::POST, "/api/v1/projects", Some(json!({"name": "Space Game"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let id = id_of(&project);
    let path = format!("/api/v1/projects/{id}");
    assert_eq!(project["organizationId"], app.org_id.as_str());
    assert_eq!(project["slug"], "space-game");
    let secret = project["secretKey"].as_str().expect("secretKey in the details").to_string();
    let app_key = project["appKey"].as_str().expect("appKey in the details").to_string();
    assert!(secret.len() >= 32 && app_key.len() >= 16, "{project}");
    assert_ne!(secret, app_key);

    let (status, got) = call(&app, &org_key, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, project, "the details show the same secretKey and appKey");

    let (status, list) = call(&app, &org_key, Method::GET, "/api/v1/projects", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids_of(&list), [app.project_id.clone(), id.clone()]);
    for item in list["items"].as_array().expect("items") {
        assert!(item.get("secretKey").is_none(), "a list never shows secretKey: {item}");
        assert!(item["appKey"].is_string(), "{item}");
    }
    assert!(!list.to_string().contains(&secret));

    let (status, regenerated) =
        call(&app, &org_key, Method::POST, &format!("{path}/secret-key/regenerate"), None).await;
    assert_eq!(status, StatusCode::OK, "{regenerated}");
    let new_secret = regenerated["secretKey"].as_str().expect("secretKey").to_string();
    assert_ne!(new_secret, secret);
    assert_eq!(regenerated["appKey"], app_key.as_str(), "the app key stays");
    let (_, got) = call(&app, &org_key, Method::GET, &path, None).await;
    assert_eq!(got["secretKey"], new_secret.as_str());

    let (status, renamed) = call(&app, &org_key, Method::PATCH, &path, Some(json!({"name": "Space Game 2"}))).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Space Game 2");
    assert_eq!(renamed["slug"], "space-game");
    assert_eq!(renamed["secretKey"], new_secret.as_str(), "a rename keeps the secret");

    // Resources inside the project go with it.
    let (status, _) = send(
        with(&app, &org_key, Method::POST, "/api/v1/users")
            .header("X-Project-Id", &id)
            .json(&json!({"username": "astronaut"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, deleted) = call(&app, &org_key, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert!(deleted.get("secretKey").is_none(), "{deleted}");
    let (status, body) = call(&app, &org_key, Method::GET, &path, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = send(with(&app, &org_key, Method::GET, "/api/v1/users").header("X-Project-Id", &id)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    assert_eq!(
        app.event_types("project", &id).await,
        ["project.created", "project.secret_key_regenerated", "project.updated", "project.deleted"]
    );
    // Events go out to webhooks: they never carry the secret key.
    let events = app.store.events_for_resource("project", &id).await.expect("events");
    for event in &events {
        let data = event.data.0.to_string();
        assert!(!data.contains(&secret) && !data.contains(&new_secret), "{data}");
        assert!(event.data.0.get("secretKey").is_none(), "{data}");
        assert_eq!(event.organization_id.as_deref(), Some(app.org_id.as_str()));
    }
}

async fn project_slugs_are_unique_per_organization(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let instance_key = app.instance_key().await;
    let create = |key: &str, body: Value| {
        let key = key.to_string();
        let app = &app;
        async move { call(app, &key, Method::POST, "/api/v1/projects", Some(body)).await }
    };

    let (status, first) = create(&org_key, json!({"name": "Dup", "slug": "dup"})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, body) = create(&org_key, json!({"name": "Dup Two", "slug": "dup"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, body) = create(&org_key, json!({"name": "Dup"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    // Another organization may use the same slug.
    let other = create_org(&app, &instance_key, json!({"name": "Other Org"})).await;
    let (status, elsewhere) =
        create(&instance_key, json!({"name": "Dup", "slug": "dup", "organizationId": id_of(&other)})).await;
    assert_eq!(status, StatusCode::CREATED, "{elsewhere}");
    assert_eq!(elsewhere["organizationId"], id_of(&other).as_str());

    // Renaming onto a taken slug is a conflict and changes nothing.
    let (status, second) = create(&org_key, json!({"name": "Second"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("/api/v1/projects/{}", id_of(&second));
    let (status, body) = call(&app, &org_key, Method::PUT, &path, Some(json!({"slug": "dup"}))).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let (_, got) = call(&app, &org_key, Method::GET, &path, None).await;
    assert_eq!(got, second);
    assert_eq!(app.event_types("project", &id_of(&second)).await, ["project.created"]);

    // Where the project goes must be clear and reachable.
    let (status, body) = create(&instance_key, json!({"name": "Nowhere"})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let (status, body) = create(&instance_key, json!({"name": "Nowhere", "organizationId": "no-such-org"})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = create(&org_key, json!({"name": "Trespass", "organizationId": id_of(&other)})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, named_own) = create(&org_key, json!({"name": "Named", "organizationId": app.org_id})).await;
    assert_eq!(status, StatusCode::CREATED, "{named_own}");
    for bad in [json!({"name": ""}), json!({"name": "Bad", "slug": "Bad_Slug"}), json!({"name": "Bad", "extra": 1})] {
        let (status, body) = create(&org_key, bad).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    }
}

async fn project_keys_cannot_create_or_delete_projects(app: TestApp) {
    let (sibling, _) = app.other_project().await;
    let before = app.store.count_events().await.expect("count");
    let (status, body) = app.post("/api/v1/projects", json!({"name": "Sibling"})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let own = format!("/api/v1/projects/{}", app.project_id);
    let (status, body) = app.delete(&own).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(app.store.count_events().await.expect("count"), before, "nothing changed");
    let (status, got) = app.get(&own).await;
    assert_eq!(status, StatusCode::OK, "the project is still there");
    // It may still look after its own project.
    assert!(got["secretKey"].is_string());
    let (status, renamed) = app.patch(&own, json!({"name": "Renamed By Key"})).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    let (status, list) = app.get("/api/v1/projects").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids_of(&list), [app.project_id.as_str()], "a project key lists its own project only");
    let (status, body) = app.get(&format!("/api/v1/projects/{sibling}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

/// Deleting a project or organization deletes its keys; like a revoked key, they stop
/// working at once on this node, though it had them cached.
async fn deleting_a_project_or_organization_disables_its_keys(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let (project, key) = app.other_project().await;
    let (status, _) = call(&app, &key, Method::GET, "/api/v1/users", None).await;
    assert_eq!(status, StatusCode::OK, "the key works (and this node has it cached)");
    let (status, _) = call(&app, &org_key, Method::DELETE, &format!("/api/v1/projects/{project}"), None).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/api/v1/me", "/api/v1/users"] {
        let (status, body) = call(&app, &key, Method::GET, path, None).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let (status, body) = call(&app, &key, Method::POST, "/api/v1/users", Some(json!({"username": "ghost"}))).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, keys) = call(&app, &org_key, Method::GET, "/api/v1/api-keys?limit=100", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(keys["items"].as_array().expect("items").iter().all(|k| k["projectId"] != project.as_str()), "{keys}");

    let instance_key = app.instance_key().await;
    let org = create_org(&app, &instance_key, json!({"name": "Short Lived"})).await;
    let (status, created) = call(
        &app,
        &instance_key,
        Method::POST,
        "/api/v1/api-keys",
        Some(json!({"name": "its admin", "scopes": ["admin"], "organizationId": id_of(&org)})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let its_key = created["keyValue"].as_str().expect("keyValue");
    let (status, _) = call(&app, its_key, Method::GET, "/api/v1/organizations", None).await;
    assert_eq!(status, StatusCode::OK);
    // It deletes its own organization, and with it itself.
    let (status, _) =
        call(&app, its_key, Method::DELETE, &format!("/api/v1/organizations/{}", id_of(&org)), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&app, its_key, Method::GET, "/api/v1/organizations", None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = call(&app, its_key, Method::POST, "/api/v1/projects", Some(json!({"name": "Orphan"}))).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn api_key_value_is_shown_once(app: TestApp) {
    let (status, created) =
        app.post("/api/v1/api-keys", json!({"name": "game server", "scopes": ["users:read", "worlds:write"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = id_of(&created);
    let value = created["keyValue"].as_str().expect("keyValue, once").to_string();
    assert!(value.starts_with(&format!("hk_{id}_")), "{value}");
    assert_eq!(created["name"], "game server");
    assert_eq!(created["scopes"], json!(["users:read", "worlds:write"]));
    assert_eq!(created["projectId"], app.project_id.as_str(), "a project key makes keys for its project");
    assert_eq!(created["organizationId"], app.org_id.as_str());
    assert!(created["lastUsedAt"].is_null() && created["revokedAt"].is_null(), "{created}");
    let secret = &value[20..];

    let (status, got) = app.get(&format!("/api/v1/api-keys/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, list) = app.get("/api/v1/api-keys").await;
    assert_eq!(status, StatusCode::OK);
    let listed = list["items"].as_array().expect("items").iter().find(|k| k["id"] == id.as_str()).expect("listed");
    for shown in [&got, listed] {
        let mut expected = created.clone();
        expected.as_object_mut().expect("object").remove("keyValue");
        assert_eq!(shown, &expected, "the same key, without its value");
    }
    for item in list["items"].as_array().expect("items") {
        let fields: Vec<&String> = item.as_object().expect("object").keys().collect();
        assert!(
            fields.iter().all(|f| !f.to_lowercase().contains("hash") && !f.to_lowercase().contains("secret")),
            "{fields:?}"
        );
        assert!(item.get("keyValue").is_none(), "{item}");
    }
    assert!(!list.to_string().contains(secret) && !got.to_string().contains(secret));
    // Nor do the events (they go out to webhooks).
    let events = app.store.events_for_resource("api_key", &id).await.expect("events");
    assert_eq!(events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(), ["api_key.created"]);
    assert!(!events[0].data.0.to_string().contains(secret), "{:?}", events[0].data.0);
    assert!(events[0].data.0.get("keyValue").is_none());

    // The value works, with exactly its scopes.
    let (status, _) = call(&app, &value, Method::GET, "/api/v1/users", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        call(&app, &value, Method::POST, "/api/v1/game-worlds", Some(json!({"worldId": "w", "name": "W"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = call(&app, &value, Method::POST, "/api/v1/users", Some(json!({"username": "nope"}))).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

async fn api_key_scopes_are_validated(app: TestApp) {
    let (_, before) = app.get("/api/v1/api-keys").await;
    for (bad, field) in [
        (json!({"name": "k", "scopes": ["users:delete"]}), Some("scopes")),
        (json!({"name": "k", "scopes": ["users:read", "root"]}), Some("scopes")),
        (json!({"name": "k", "scopes": []}), Some("scopes")),
        (json!({"name": "", "scopes": ["users:read"]}), Some("name")),
        (json!({"name": "k", "scopes": "users:read"}), None),
        (json!({"name": "k"}), None),
    ] {
        let (status, body) = app.post("/api/v1/api-keys", bad.clone()).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        if let Some(field) = field {
            assert_eq!(body["error"]["details"][0]["field"], field, "{bad}: {body}");
        }
    }
    let (status, body) = app.post("/api/v1/api-keys", json!({"name": "k", "scopes": ["users:delete"]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("users:delete"), "names it: {body}");

    // Only an admin credential mints keys: a key cannot grant scopes it lacks, nor even the
    // ones it has.
    let (_, users_key) = app.create_key(&["users:write"]).await;
    for scopes in [json!(["chat:read"]), json!(["admin"]), json!(["users:read"])] {
        let (status, body) =
            call(&app, &users_key, Method::POST, "/api/v1/api-keys", Some(json!({"name": "k", "scopes": scopes})))
                .await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let (_, after) = app.get("/api/v1/api-keys").await;
    assert_eq!(after["total"].as_i64(), before["total"].as_i64().map(|t| t + 1), "only users_key was made");

    // Every known scope can be granted by an admin key.
    let all: Vec<&str> = herald::auth::Scope::ALL.iter().map(|s| s.as_str()).collect();
    let (status, body) = app.post("/api/v1/api-keys", json!({"name": "everything", "scopes": all})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn api_keys_reach_only_their_own_organization(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let instance_key = app.instance_key().await;
    let other = create_org(&app, &instance_key, json!({"name": "Far Away"})).await;
    let other_id = id_of(&other);
    let (other_project, _) = app.other_project().await;

    // An organization key makes organization-level keys, or keys for any of its projects.
    let (status, org_level) =
        call(&app, &org_key, Method::POST, "/api/v1/api-keys", Some(json!({"name": "ops", "scopes": ["users:read"]})))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{org_level}");
    assert!(org_level["projectId"].is_null());
    assert_eq!(org_level["organizationId"], app.org_id.as_str());
    let (status, bound) = call(
        &app,
        &org_key,
        Method::POST,
        "/api/v1/api-keys",
        Some(json!({"name": "other game", "scopes": ["users:read"], "projectId": other_project})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{bound}");
    assert_eq!(bound["projectId"], other_project.as_str());
    // Not for another organization.
    for body in [
        json!({"name": "x", "scopes": ["users:read"], "organizationId": other_id}),
        json!({"name": "x", "scopes": ["users:read"], "projectId": "no-such-project"}),
    ] {
        let (status, resp) = call(&app, &org_key, Method::POST, "/api/v1/api-keys", Some(body)).await;
        assert_error(status, &resp, StatusCode::NOT_FOUND, "not_found");
    }
    // A project key only for its own project.
    let (status, resp) =
        app.post("/api/v1/api-keys", json!({"name": "x", "scopes": ["users:read"], "projectId": other_project})).await;
    assert_error(status, &resp, StatusCode::NOT_FOUND, "not_found");
    // An instance key must say which organization.
    let (status, resp) = call(
        &app,
        &instance_key,
        Method::POST,
        "/api/v1/api-keys",
        Some(json!({"name": "x", "scopes": ["users:read"]})),
    )
    .await;
    assert_error(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let (status, far) = call(
        &app,
        &instance_key,
        Method::POST,
        "/api/v1/api-keys",
        Some(json!({"name": "far", "scopes": ["admin"], "organizationId": other_id})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{far}");
    assert_eq!(far["organizationId"], other_id.as_str());

    // Who sees which keys: the organization all of its own, a project key its project's.
    let (_, org_list) = call(&app, &org_key, Method::GET, "/api/v1/api-keys?limit=100", None).await;
    let org_ids = ids_of(&org_list);
    assert!(org_ids.contains(&id_of(&org_level)) && org_ids.contains(&id_of(&bound)), "{org_list}");
    assert!(!org_ids.contains(&id_of(&far)), "another organization's key: {org_list}");
    for item in org_list["items"].as_array().expect("items") {
        assert_eq!(item["organizationId"], app.org_id.as_str(), "{item}");
    }
    let (_, project_list) = app.get("/api/v1/api-keys?limit=100").await;
    for item in project_list["items"].as_array().expect("items") {
        assert_eq!(item["projectId"], app.project_id.as_str(), "{item}");
    }
    let (status, body) = app.get(&format!("/api/v1/api-keys/{}", id_of(&org_level))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = call(&app, &org_key, Method::GET, &format!("/api/v1/api-keys/{}", id_of(&far)), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, _) = call(&app, &instance_key, Method::GET, &format!("/api/v1/api-keys/{}", id_of(&far)), None).await;
    assert_eq!(status, StatusCode::OK);
    // A project key cannot revoke the organization's keys.
    let (status, body) = app.delete(&format!("/api/v1/api-keys/{}", id_of(&org_level))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.event_types("api_key", &id_of(&org_level)).await, ["api_key.created"]);
}

async fn api_key_last_used_at_is_recorded(app: TestApp) {
    let (id, value) = app.create_key(&["worlds:read"]).await;
    let path = format!("/api/v1/api-keys/{id}");
    let (_, unused) = app.get(&path).await;
    assert!(unused["lastUsedAt"].is_null(), "{unused}");
    let before_use = chrono::Utc::now();
    let (status, _) = call(&app, &value, Method::GET, "/api/v1/game-worlds", None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, used) = app.get(&path).await;
    let at = rfc3339(&used["lastUsedAt"]);
    assert!(at >= rfc3339(&used["createdAt"]), "{used}");
    assert!(at >= before_use - chrono::TimeDelta::seconds(1) && at <= chrono::Utc::now(), "{used}");
    // A failed attempt (wrong secret) does not count as use.
    let (other_id, other) = app.create_key(&["worlds:read"]).await;
    let tampered = format!("{}{}", &other[..20], &value[20..]);
    let (status, _) = call(&app, &tampered, Method::GET, "/api/v1/game-worlds", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, other_key) = app.get(&format!("/api/v1/api-keys/{other_id}")).await;
    assert!(other_key["lastUsedAt"].is_null(), "{other_key}");
}

async fn admin_users_are_managed_by_organization_credentials(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let admin = create_admin(&app, &org_key, "  Ops@Example.COM ").await;
    let id = id_of(&admin);
    assert_eq!(admin["email"], "ops@example.com", "trimmed and lower-cased");
    assert_eq!(admin["role"], "admin");
    assert_eq!(admin["organizationId"], app.org_id.as_str());
    assert!(admin["lastLoginAt"].is_null());
    let fields: Vec<&String> = admin.as_object().expect("object").keys().collect();
    assert!(fields.iter().all(|f| !f.to_lowercase().contains("password")), "{fields:?}");
    assert!(!admin.to_string().contains(PASSWORD));

    let (status, list) = call(&app, &org_key, Method::GET, "/api/v1/admin-users", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"], json!([admin]));

    let before = app.store.count_events().await.expect("count");
    let post = |key: String, body: Value| {
        let app = &app;
        async move { call(app, &key, Method::POST, "/api/v1/admin-users", Some(body)).await }
    };
    let (status, body) = post(org_key.clone(), json!({"email": "OPS@example.com", "password": PASSWORD})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    for bad in [
        json!({"email": "new@example.com", "password": "short"}),
        json!({"email": "not-an-email", "password": PASSWORD}),
        json!({"email": "new@example.com", "password": PASSWORD, "role": "superuser"}),
        json!({"email": "new@example.com"}),
    ] {
        let (status, body) = post(org_key.clone(), bad).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    }
    // A project key cannot make or list organization admins.
    let (status, body) = post(app.key.clone(), json!({"email": "new@example.com", "password": PASSWORD})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app.get("/api/v1/admin-users").await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app.delete(&format!("/api/v1/admin-users/{id}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.store.count_events().await.expect("count"), before, "nothing changed");

    // An instance key names the organization; the owner role is allowed.
    let instance_key = app.instance_key().await;
    let (status, body) = post(instance_key.clone(), json!({"email": "boss@example.com", "password": PASSWORD})).await;
    assert!(status.is_client_error(), "{status} {body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("organizationId"), "says what is missing: {body}");
    let (status, owner) = post(
        instance_key.clone(),
        json!({"email": "boss@example.com", "password": PASSWORD, "role": "owner", "organizationId": app.org_id}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{owner}");
    assert_eq!(owner["role"], "owner");

    let events = app.store.events_for_resource("admin_user", &id).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "admin_user.created");
    assert!(!events[0].data.0.to_string().to_lowercase().contains("password"), "{:?}", events[0].data.0);
}

async fn admin_login_gives_a_working_jwt(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let admin = create_admin(&app, &org_key, "ops@example.com").await;
    let admin_id = id_of(&admin);

    let (status, tokens) = login(&app, "OPS@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["tokenType"], "Bearer");
    assert_eq!(tokens["expiresIn"], 900);
    assert_eq!(tokens["accessToken"].as_str().map(|t| t.split('.').count()), Some(3), "a JWT: {tokens}");
    assert!(tokens["refreshToken"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(tokens["admin"]["id"], admin_id.as_str());
    assert!(tokens["admin"].get("passwordHash").is_none());
    let access = &tokens["accessToken"];

    let (status, me) = send(bearer(&app, access, Method::GET, "/api/v1/me")).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        me,
        json!({"kind": "admin", "id": admin_id, "organizationId": app.org_id, "projectId": null, "scopes": ["admin"]})
    );

    // Inside a project, with X-Project-Id.
    let (status, body) = send(bearer(&app, access, Method::GET, "/api/v1/users")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "project_required");
    let (status, user) = send(
        bearer(&app, access, Method::POST, "/api/v1/users")
            .header("X-Project-Id", &app.project_id)
            .json(&json!({"username": "made_by_admin"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let events = app.store.events_for_resource("user", &id_of(&user)).await.expect("events");
    assert_eq!(events[0].actor.as_deref(), Some(format!("admin:{admin_id}").as_str()));
    let (status, list) =
        send(bearer(&app, access, Method::GET, "/api/v1/users").header("X-Project-Id", &app.project_id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1);
    // Not in another organization's project.
    let instance_key = app.instance_key().await;
    let other = create_org(&app, &instance_key, json!({"name": "Elsewhere"})).await;
    let (status, far) = call(
        &app,
        &instance_key,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"name": "Far", "organizationId": id_of(&other)})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) =
        send(bearer(&app, access, Method::GET, "/api/v1/users").header("X-Project-Id", id_of(&far))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // Organization-wide routes work too: it is an organization admin.
    let (status, projects) = send(bearer(&app, access, Method::GET, "/api/v1/projects")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids_of(&projects), [app.project_id.as_str()]);
    let (status, key) = send(
        bearer(&app, access, Method::POST, "/api/v1/api-keys").json(&json!({"name": "by admin", "scopes": ["admin"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");

    // The login is recorded.
    let (_, admins) = call(&app, &org_key, Method::GET, "/api/v1/admin-users", None).await;
    assert!(admins["items"][0]["lastLoginAt"].is_string(), "{admins}");
}

async fn login_failures_look_the_same(app: TestApp) {
    let org_key = app.org_admin_key().await;
    create_admin(&app, &org_key, "ops@example.com").await;
    let (status, wrong_password) = login(&app, "ops@example.com", "not the password").await;
    let wrong_password = assert_error(status, &wrong_password, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, unknown) = login(&app, "nobody@example.com", PASSWORD).await;
    let unknown = assert_error(status, &unknown, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(wrong_password, unknown, "the answer does not tell which accounts exist");
    let (status, body) = login(&app, "", "").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) =
        send(app.anon(Method::POST, "/api/v1/auth/login").json(&json!({"email": "ops@example.com"}))).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    // A failed login does not count as one.
    let (_, admins) = call(&app, &org_key, Method::GET, "/api/v1/admin-users", None).await;
    assert!(admins["items"][0]["lastLoginAt"].is_null(), "{admins}");
}

async fn refresh_rotates_and_a_reused_token_revokes_the_rest(app: TestApp) {
    let org_key = app.org_admin_key().await;
    create_admin(&app, &org_key, "ops@example.com").await;
    let (_, first) = login(&app, "ops@example.com", PASSWORD).await;
    let (status, second) = refresh(&app, &first["refreshToken"]).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["refreshToken"], first["refreshToken"]);
    assert!(second["accessToken"].is_string());
    let (status, me) = send(bearer(&app, &second["accessToken"], Method::GET, "/api/v1/me")).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["kind"], "admin");

    // The first refresh token was used: presenting it again is a replay.
    let (status, body) = refresh(&app, &first["refreshToken"]).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    // ...which revokes every refresh token of the account, the unused one included.
    let (status, body) = refresh(&app, &second["refreshToken"]).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    // Logging in again starts afresh.
    let (status, third) = login(&app, "ops@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let (status, fourth) = refresh(&app, &third["refreshToken"]).await;
    assert_eq!(status, StatusCode::OK, "{fourth}");

    // Malformed and forged refresh tokens.
    let third_token = third["refreshToken"].as_str().expect("token");
    let (third_id, _) = third_token.split_once('.').expect("id.secret");
    for bad in [json!("no-dot"), json!("a.b"), json!(""), json!(format!("{third_id}.wrongsecret"))] {
        let (status, body) = refresh(&app, &bad).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // An access token is not a refresh token.
    let (status, body) = refresh(&app, &fourth["accessToken"]).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn deleting_an_admin_stops_its_tokens(app: TestApp) {
    let org_key = app.org_admin_key().await;
    let admin = create_admin(&app, &org_key, "leaver@example.com").await;
    let id = id_of(&admin);
    let (_, tokens) = login(&app, "leaver@example.com", PASSWORD).await;
    let (status, _) = send(bearer(&app, &tokens["accessToken"], Method::GET, "/api/v1/me")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, deleted) = call(&app, &org_key, Method::DELETE, &format!("/api/v1/admin-users/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["id"], id.as_str());

    let (status, body) = send(bearer(&app, &tokens["accessToken"], Method::GET, "/api/v1/me")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = send(
        bearer(&app, &tokens["accessToken"], Method::GET, "/api/v1/users").header("X-Project-Id", &app.project_id),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = refresh(&app, &tokens["refreshToken"]).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = login(&app, "leaver@example.com", PASSWORD).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    let (status, body) = call(&app, &org_key, Method::DELETE, &format!("/api/v1/admin-users/{id}"), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.event_types("admin_user", &id).await, ["admin_user.created", "admin_user.deleted"]);
    // The email is free again.
    create_admin(&app, &org_key, "leaver@example.com").await;
}

async fn me_describes_the_caller(app: TestApp) {
    let (status, me) = app.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me,
        json!({
            "kind": "api_key",
            "id": &app.key[3..19],
            "organizationId": app.org_id,
            "projectId": app.project_id,
            "scopes": ["admin"],
        })
    );
    let (scoped_id, scoped) = app.create_key(&["chat:read", "worlds:read"]).await;
    let (status, me) = call(&app, &scoped, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::OK, "/me needs no particular scope");
    assert_eq!((me["id"].as_str(), &me["scopes"]), (Some(scoped_id.as_str()), &json!(["chat:read", "worlds:read"])));
    let org_key = app.org_admin_key().await;
    let (_, me) = call(&app, &org_key, Method::GET, "/api/v1/me", None).await;
    assert_eq!((me["organizationId"].as_str(), me["projectId"].is_null()), (Some(app.org_id.as_str()), true));
    let instance_key = app.instance_key().await;
    let (_, me) = call(&app, &instance_key, Method::GET, "/api/v1/me", None).await;
    assert!(me["organizationId"].is_null() && me["projectId"].is_null(), "{me}");
    let (status, body) = send(app.anon(Method::GET, "/api/v1/me")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
}

/// A client bound to the loopback address `ip` (Linux routes all of 127/8 to loopback), so
/// that the server sees logins come from different addresses.
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip.parse::<std::net::IpAddr>().expect("ip")).build().expect("client")
}

async fn login_from(app: &TestApp, client: &reqwest::Client, password: &str) -> (StatusCode, Value, Option<u64>) {
    let body = json!({"email": "ops@example.com", "password": password});
    let resp = client.post(app.url("/api/v1/auth/login")).json(&body).send().await.expect("sent");
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
    let status = resp.status();
    let body: Value = resp.json().await.expect("JSON");
    crate::log_capture::secrets_in(&body);
    crate::openapi::check_response("POST", "/api/v1/auth/login", status.as_u16(), &body);
    (status, body, retry_after)
}

/// Failed admin logins back off exponentially per address and per account (429 with
/// `Retry-After`, before the password is even checked), yet an attacker cannot lock the admin
/// out: from another address the right password works after the account's short cap. The
/// server's clock is moved by hand, so nothing here waits. (Memory only: one backend.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_admin_logins_back_off_without_locking_the_admin_out() {
    let app = TestApp::spawn(crate::common::Backend::Sqlite).await.expect("app");
    // The defaults: 5 free failures, the account's block capped at 10 s (config.rs).
    let org_key = app.org_admin_key().await;
    create_admin(&app, &org_key, "ops@example.com").await;
    crate::log_capture::secret(PASSWORD);
    let (attacker, admin) = (client_from("127.0.0.2"), client_from("127.0.0.3"));

    // Five free failures, then each failure blocks the next attempt twice as long.
    let mut failures = 0;
    for _ in 0..5 {
        let (status, body, _) = login_from(&app, &attacker, "guess").await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
        failures += 1;
    }
    let mut waits = Vec::new();
    for _ in 0..6 {
        let (status, body, _) = login_from(&app, &attacker, "guess").await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
        failures += 1;
        // Blocked now, even with the right password: it is not checked.
        let (status, body, retry_after) = login_from(&app, &attacker, PASSWORD).await;
        let message = assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let wait = retry_after.expect("Retry-After");
        assert!(message.contains(&format!("retry in {wait} s")), "{message}");
        waits.push(wait);
        app.clock.advance(chrono::TimeDelta::seconds(i64::try_from(wait).expect("secs")));
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32], "exponential, per address");

    // The account itself is blocked only up to its short cap: from another address the admin
    // waits that long (10 s) and gets in, while the attacker's address stays blocked.
    let (status, body, _) = login_from(&app, &attacker, "guess").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    failures += 1;
    let (status, body, retry_after) = login_from(&app, &admin, PASSWORD).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(retry_after, Some(10), "the account's cap, not the attacker's address's block");
    app.clock.advance(chrono::TimeDelta::seconds(10));
    let (status, tokens, _) = login_from(&app, &admin, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, body, retry_after) = login_from(&app, &attacker, PASSWORD).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(retry_after.is_some_and(|s| s > 10), "{retry_after:?}");

    // Counted, and logged with the address but never the password.
    let resp = app.anon(Method::GET, "/metrics").send().await.expect("scrape");
    let text = resp.text().await.expect("text");
    assert!(text.contains(&format!("herald_admin_login_failures_total {failures}\n")), "{failures}:\n{text}");
    assert!(text.contains("herald_admin_login_throttled_total 8\n"), "{text}");
    let logged = crate::log_capture::lines_with(&["admin login failed", "127.0.0.2"]);
    assert!(!logged.is_empty(), "failed logins are logged with the client address");
    assert!(logged.iter().all(|l| !l.contains(PASSWORD) && !l.contains("guess")), "{logged:?}");
}
