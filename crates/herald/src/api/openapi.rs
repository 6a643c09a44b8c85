//! The OpenAPI 3.1 description of `/api/v1` and the GameTalk routes, generated from the
//! handlers' `#[utoipa::path]` annotations and the types' `ToSchema` derives (utoipa), served
//! at `/openapi.json`, with Swagger UI at `/docs` (utoipa-swagger-ui, its files compiled into
//! the binary: no CDN).
//!
//! The routers are `utoipa_axum::router::OpenApiRouter`s built with `routes!`, which
//! registers a handler and documents it in one step, so a route cannot be served without
//! being described (`tests/it/openapi.rs` checks what remains: see there).

use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::{
        RefOr, Response,
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The error body every failing `/api/v1` call answers with.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: error.rs builds the body
pub struct ErrorBody {
    error: ErrorDetails,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetails {
    /// Machine-readable, stable: switch on it (`validation_error`, `not_found`, ...).
    code: String,
    /// For people: what to fix.
    message: String,
    /// One entry per invalid field.
    details: Vec<crate::error::FieldError>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        // Shown at the top of the Swagger page (/docs), as Markdown. Herald has no public
        // site, so the guides are named by their path in the source tree.
        description = "Self-hosted game-platform backend: platform API, chat (GameTalk v1.1 compatible), events and webhooks.

The guides are in the `docs/` folder of Herald's source, next to its `README.md` (running, testing, configuring):

- `docs/API.md`: every route, authentication and scopes, errors, paging, events
- `docs/WEBHOOKS.md`: registering endpoints, what arrives, verifying signatures, retries, replay, custom events; complete receivers in `examples/webhook-receiver-node` and `examples/webhook-receiver-python`
- `docs/CHAT.md`: the GameTalk v1.1-compatible chat API, tags, messages and history
- `docs/GAME-CLIENTS.md`: what game clients call at start (`/api/v1/client/*`, client keys), with JavaScript and C# examples
- `docs/REALTIME.md`: socket.io for game servers and clients (keys, player session tokens)
- `docs/CLI.md`: the `herald` command line
- `docs/CONFIG.md`: every setting
- `docs/OPERATIONS.md`: health checks, metrics, logs, several nodes, backups, upgrades

This description is served as `/openapi.json`.",
    ),
    modifiers(&Security),
    security(("api_key" = []), ("bearer" = [])),
    components(schemas(
        ErrorBody,
        ErrorDetails,
        crate::error::FieldError,
        // GameTalk's routes name their answer through `gametalk::Answered` and
        // `AnsweredWith<fields>` (IntoResponses), which refer to these schemas (and they to
        // theirs) without registering them.
        super::gametalk::Answer,
        super::gametalk::Header,
        super::gametalk::ChannelResult,
        super::gametalk::ChannelPage,
        super::gametalk::SubscriberPage,
        super::gametalk::TagPage,
        super::gametalk::TagResult,
        super::gametalk::UserResult
    )),
)]
pub struct ApiDoc;

/// `X-API-Key: hk_...` or `Authorization: Bearer <key or admin JWT>`.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
        components.add_security_scheme(
            "secret_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Secret-Key"))),
        );
        components.add_security_scheme(
            "client_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Client-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The documented routes (`/api/v1` and GameTalk) and their whole description: `ApiDoc`
/// with every route merged in, and the error answers added to each `/api/v1` operation.
/// The server mounts the router and serves the description; the tests read the same one.
pub fn documented_routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    documented_routes_with(|client| client)
}

/// [`documented_routes`], with `client_layers` around the game-client routes
/// (`/api/v1/client/*`: CORS and their rate limit, see `api::client::layers`).
pub fn documented_routes_with(
    client_layers: impl FnOnce(axum::Router<AppState>) -> axum::Router<AppState>,
) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", super::router())
        .nest("/game-talk/v1.1/appkeys/{app_key}", super::gametalk::router())
        .split_for_parts();
    let (client, client_spec) = OpenApiRouter::new().nest("/api/v1/client", super::client::router()).split_for_parts();
    spec.merge(client_spec);
    Errors.modify(&mut spec);
    // Their own 405 answer before their layers: the server's (set later on the whole router)
    // would replace the layered one, and CORS preflights (OPTIONS) would get 405.
    let client = client_layers(client.method_not_allowed_fallback(super::method_not_allowed));
    (router.merge(client), spec)
}

/// Every `/api/v1` operation may fail with the error body: 4XX for the caller's mistakes
/// (400, 401, 403, 404, 409, 413, 415, 422, 429), 5XX when Herald or its database cannot
/// answer (503 with `Retry-After`). GameTalk operations list 413 only.
struct Errors;

impl Modify for Errors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = || -> RefOr<Response> {
            RefOr::T(
                utoipa::openapi::ResponseBuilder::new()
                    .description("An error: `{\"error\": {code, message, details}}`")
                    .content(
                        "application/json",
                        utoipa::openapi::ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api/v1");
            for op in
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
            {
                if api {
                    op.responses.responses.entry("4XX".into()).or_insert_with(error);
                    op.responses.responses.entry("5XX".into()).or_insert_with(error);
                } else {
                    // GameTalk answers in its own envelope, except for what the HTTP layer
                    // refuses before a handler runs: a body over `http.body_limit_bytes`.
                    op.responses.responses.entry("413".into()).or_insert_with(error);
                }
            }
        }
    }
}
