//! Extractors that turn every malformed request into the API's one error shape, and the
//! caller context ([`Caller`], [`Scoped`], [`ProjectScope`]) every authenticated route starts
//! from; the scope a route needs is part of its extractor's type ([`Scope`]).

use axum::{
    extract::{
        FromRequest, FromRequestParts,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::{StatusCode, request::Parts},
};
use serde::Deserialize;

use crate::{
    auth::{Principal, PrincipalKind, keys},
    error::{ApiError, ApiResult, FieldError},
    events::EventContext,
    state::AppState,
    store::{PageRequest, StoreError, orgs::Project},
};

/// `axum::Json`, with rejections in Herald's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

/// `axum::extract::Query`, with rejections in Herald's error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path`, with rejections in Herald's error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// A JSON body that may be left out: an empty body (with or without `Content-Type`, as many
/// HTTP clients send `Content-Type: application/json` whatever the body) means "no options"
/// and gives `T::default()`; any other body is read as [`Json`] is.
pub struct OptionalJson<T>(pub T);

impl<T: serde::de::DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> ApiResult<Self> {
        let headers = req.headers().clone();
        // Bytes honours the body limit (DefaultBodyLimit), as Json does.
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError::from(JsonRejection::BytesRejection(rejection)))?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        // A body: read exactly as `Json` reads one (Content-Type check included).
        let mut again = axum::extract::Request::new(axum::body::Body::from(body));
        *again.headers_mut() = headers;
        let Json(value) = Json::<T>::from_request(again, state).await?;
        Ok(OptionalJson(value))
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(e) => ApiError::bad_request("invalid_json", e.body_text()),
            JsonRejection::JsonDataError(e) => match body_field_error(&e) {
                Some(field) => ApiError::validation(vec![field]),
                None => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", e.body_text()),
            },
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this server accepts",
            ),
            other => ApiError::bad_request("invalid_body", other.body_text()),
        }
    }
}

/// The field a JSON body of the wrong shape got wrong, from serde's error: axum deserializes
/// through `serde_path_to_error`, which knows where in the body it was, and serde_json says
/// what was wrong only in its message ("unknown field `format`, expected one of ...").
fn body_field_error(rejection: &axum::extract::rejection::JsonDataError) -> Option<FieldError> {
    let mut source = std::error::Error::source(rejection);
    let err = loop {
        let current = source?;
        if let Some(err) = current.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>() {
            break err;
        }
        source = current.source();
    };
    let text = err.inner().to_string();
    // serde_json adds " at line L column C": the field's path says more.
    let text = text.rsplit_once(" at line ").map_or(text.as_str(), |(message, _)| message);
    let path = err.path().to_string();
    let parent = if path == "." { String::new() } else { path.clone() };
    // The path ends at the unknown field itself, but at the object holding a missing one.
    let child = |name: &str| {
        if parent == name || parent.ends_with(&format!(".{name}")) {
            parent.clone()
        } else if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        }
    };
    let quoted = |prefix: &str| text.strip_prefix(prefix).and_then(|rest| rest.split('`').next()).map(str::to_owned);
    let (code, field, message) = if let Some(name) = quoted("unknown field `") {
        let expected = text.split_once(", expected ").map(|(_, e)| e.replace('`', "")).unwrap_or_default();
        let message = if expected.is_empty() {
            "is not a field of this request".to_owned()
        } else {
            format!("is not a field of this request; expected {expected}")
        };
        ("unknown_field", child(&name), message)
    } else if let Some(name) = quoted("missing field `") {
        ("missing_field", child(&name), "is required".to_owned())
    } else if text.starts_with("invalid type") {
        ("invalid_type", path, text.to_owned())
    } else {
        ("invalid_value", path, text.to_owned())
    };
    let field = if field == "." || field.is_empty() { "body".to_owned() } else { field };
    Some(FieldError { field, code, message })
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

/// `page` and `limit` of a list request, validated: `page` from 1, `limit` 1..=100 (20).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Paging {
    pub page: Option<u32>,
    pub limit: Option<u32>,
}

pub const MAX_LIMIT: u32 = 100;
pub const DEFAULT_LIMIT: u32 = 20;

impl Paging {
    pub fn request(self) -> ApiResult<PageRequest> {
        let page = self.page.unwrap_or(1);
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if page == 0 {
            return Err(ApiError::bad_request("invalid_query", "page starts at 1"));
        }
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request("invalid_query", format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        Ok(PageRequest { page, limit })
    }
}

/// An authenticated caller, with the request's id for the events it causes.
pub struct Caller {
    pub principal: Principal,
    pub request_id: Option<String>,
}

impl Caller {
    pub fn events(&self) -> EventContext {
        EventContext { request_id: self.request_id.clone(), actor: Some(self.principal.actor()) }
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Caller> {
        let request_id = header(parts, "x-request-id").map(str::to_owned);
        let token = match (header(parts, "x-api-key"), header(parts, "authorization")) {
            (Some(key), _) => key.trim(),
            (None, Some(auth)) => match auth.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
                _ => {
                    return Err(ApiError::unauthorized("the Authorization header must be `Bearer <token>`"));
                }
            },
            (None, None) => {
                return Err(ApiError::unauthorized(
                    "missing credentials: send `X-API-Key: <key>` or `Authorization: Bearer <key or token>`",
                ));
            }
        };
        // Client credentials reach `/api/v1/client/*` only (`api::client`), whatever they are
        // worth there: said plainly here, so a game team sees why a server route refuses.
        if keys::looks_like_client_key(token) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "client_key_not_allowed",
                "client keys (hc_...) are accepted only on /api/v1/client/*; this route needs an API key (hk_...) \
                 or an admin token",
            ));
        }
        let principal = if keys::looks_like_api_key(token) {
            state.keys.authenticate(&state.store, token).await?
        } else {
            authenticate_jwt(state, token).await?
        };
        let actor = principal.actor();
        let span = tracing::Span::current();
        span.record("actor", actor.as_str());
        if let Some(org) = &principal.organization_id {
            span.record("org", org.as_str());
        }
        if let Some(project) = &principal.project_id {
            span.record("project", project.as_str());
        }
        state.rate_limiter.check(&actor)?;
        Ok(Caller { principal, request_id })
    }
}

async fn authenticate_jwt(state: &AppState, token: &str) -> ApiResult<Principal> {
    let Some(claims) = state.jwt.verify(token) else {
        if state.jwt.verify_player(token).is_some() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "player_token_not_allowed",
                "player session tokens are accepted only on /api/v1/client/* (and by the socket.io gateway); \
                 this route needs an API key (hk_...) or an admin token",
            ));
        }
        return Err(ApiError::unauthorized("invalid or expired token"));
    };
    // The account may have been deleted since the token was issued.
    let admin = match state.store.get_admin_user(&claims.sub).await {
        Ok(admin) => admin,
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::unauthorized("invalid or expired token"));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Principal {
        kind: PrincipalKind::Admin { id: admin.id },
        organization_id: Some(admin.organization_id),
        project_id: None,
        scopes: vec![crate::auth::Scope::Admin],
    })
}

/// A scope a route needs, as a type the route's extractor ([`ProjectScope`], [`Scoped`])
/// checks while it reads the request head. axum runs the head extractors before the one
/// that reads the body, so a caller lacking the scope gets 403 before its body is read or
/// validated: authorization comes before validation (a check in the handler's body came after
/// `Json` had already answered 422: issue 16). And a route cannot forget the check: it names
/// its scope in its signature.
pub trait Scope {
    const SCOPE: crate::auth::Scope;
}

/// The scopes of [`crate::auth::Scope`], as types for [`ProjectScope`] and [`Scoped`]: each is
/// named as its variant, so a route says `Scoped<scopes::UsersRead>`.
pub mod scopes {
    macro_rules! scopes {
        ($($ty:ident)*) => {
            $(
                #[doc = concat!("The scope [`crate::auth::Scope::", stringify!($ty), "`].")]
                pub struct $ty;
                impl super::Scope for $ty {
                    const SCOPE: crate::auth::Scope = crate::auth::Scope::$ty;
                }
            )*
        };
    }
    scopes! {
        Admin UsersRead UsersWrite WorldsRead WorldsWrite VersionsRead VersionsWrite
        WebhooksRead WebhooksWrite EventsRead EventsPublish ChatRead ChatWrite
    }
}

/// A [`Caller`] holding the scope `S` (403 otherwise), checked before the body is read.
pub struct Scoped<S: Scope> {
    pub caller: Caller,
    scope: std::marker::PhantomData<fn() -> S>,
}

impl<S: Scope> std::ops::Deref for Scoped<S> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<S: Scope> FromRequestParts<AppState> for Scoped<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Scoped<S>> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.principal.require(S::SCOPE)?;
        Ok(Scoped { caller, scope: std::marker::PhantomData })
    }
}

/// A caller acting inside one project, holding the scope `S` there: the key's own project,
/// or the one named by the `X-Project-Id` header (required for organization-level and
/// instance credentials). The project is resolved first (a project the caller does not reach
/// is 404, whatever its scopes), then the scope is checked (403), both before the body is read.
pub struct ProjectScope<S: Scope> {
    pub caller: Caller,
    pub project_id: String,
    scope: std::marker::PhantomData<fn() -> S>,
}

impl<S: Scope> ProjectScope<S> {
    pub fn events(&self) -> EventContext {
        self.caller.events()
    }
}

impl<S: Scope> FromRequestParts<AppState> for ProjectScope<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<ProjectScope<S>> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let named = header(parts, "x-project-id").map(str::trim).filter(|s| !s.is_empty());
        let project_id = match (&caller.principal.project_id, named) {
            (Some(own), None) => own.clone(),
            (Some(own), Some(named)) if own == named => own.clone(),
            (Some(_), Some(_)) => return Err(ApiError::not_found("project")),
            (None, None) => {
                return Err(ApiError::bad_request(
                    "project_required",
                    "this credential is not bound to one project: name the project with the `X-Project-Id` header",
                ));
            }
            (None, Some(named)) => {
                let project: Project = match state.store.get_project(named).await {
                    Ok(project) => project,
                    Err(StoreError::NotFound(_)) => return Err(ApiError::not_found("project")),
                    Err(e) => return Err(e.into()),
                };
                if !caller.principal.reaches_project(&project) {
                    return Err(ApiError::not_found("project"));
                }
                project.id
            }
        };
        if caller.principal.project_id.is_none() {
            tracing::Span::current().record("project", project_id.as_str());
        }
        caller.principal.require(S::SCOPE)?;
        Ok(ProjectScope { caller, project_id, scope: std::marker::PhantomData })
    }
}
