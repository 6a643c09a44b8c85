//! The one error type every handler returns, and the one place it becomes an HTTP response:
//! `{"error": {"code": "...", "message": "...", "details": [...]}}`. Domain errors
//! ([`DomainError`], [`ChatError`]) get their HTTP status here and nowhere else.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

pub use crate::domain::{FieldError, OUT_OF_STORAGE_RETRY_SECS};
use crate::{
    domain::{DomainError, chat::ChatError},
    store::StoreError,
};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Machine-readable, stable: clients switch on it.
    pub code: &'static str,
    /// For people: says what to fix.
    pub message: String,
    pub details: Vec<FieldError>,
    pub retry_after_secs: Option<u64>,
    /// The database refused a write for want of storage: the HTTP layer counts it and
    /// `GET /readyz` reports it (`api::ops::track`).
    pub out_of_storage: bool,
}

/// Marks a response whose request the database refused for want of storage.
#[derive(Clone, Copy, Debug)]
pub struct OutOfStorage;

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after_secs: None,
            out_of_storage: false,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: the request parsed but its content is not acceptable.
    pub fn validation(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid; see details", details.len()),
        };
        ApiError { details, ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", message) }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// Logs the cause chain and answers 500 without revealing it.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        let err = err.into();
        tracing::error!(error = format!("{err:#}"), "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal server error")
    }
}

/// Every domain error becomes its answer here: the domain names the rule broken and its
/// code, this picks the HTTP status.
impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        err.log_cause();
        let status = match &err {
            DomainError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DomainError::InvalidQuery { .. } => StatusCode::BAD_REQUEST,
            DomainError::NotFound(_) => StatusCode::NOT_FOUND,
            // Domain code retries stale updates; one reaching here lost too many races.
            DomainError::Conflict { .. } | DomainError::Store(StoreError::Stale) => StatusCode::CONFLICT,
            DomainError::Forbidden { .. } => StatusCode::FORBIDDEN,
            DomainError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            DomainError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            DomainError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            DomainError::Store(_) | DomainError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            code: err.code(),
            message: err.to_string(),
            details: err.details().to_vec(),
            retry_after_secs: err.retry_after_secs(),
            out_of_storage: err.out_of_storage(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        DomainError::from(err).into()
    }
}

impl From<ChatError> for ApiError {
    fn from(err: ChatError) -> Self {
        DomainError::from(err).into()
    }
}

impl ApiError {
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code, "message": self.message, "details": self.details }
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.out_of_storage {
            response.extensions_mut().insert(OutOfStorage);
        }
        response
    }
}
