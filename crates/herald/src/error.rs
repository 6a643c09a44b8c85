//! The one error type every handler returns, and the one place it becomes an HTTP response:
//! `{"error": {"code": "...", "message": "...", "details": [...]}}`.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

use crate::store::StoreError;

/// One problem with one input field, listed in `error.details`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's path in the body: `email`, `events[1]`, `data.amount`.
    pub field: String,
    /// Machine-readable: `unknown_field`, `missing_field`, `invalid_type` (a string where a
    /// number belongs), `invalid_value` (an unknown enum value, a number out of range), or
    /// `invalid` (a well-formed value this field does not accept).
    pub code: &'static str,
    /// For people: says what to fix.
    pub message: String,
}

impl FieldError {
    /// A well-formed value the field does not accept (code `invalid`).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), code: "invalid", message: message.into() }
    }
}

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

/// `Retry-After` when the database is out of storage: freeing space takes an operator, so
/// clients should not come back every second.
pub const OUT_OF_STORAGE_RETRY_SECS: u64 = 10;

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(message) => ApiError::conflict(message),
            // Domain code retries stale updates; one reaching here lost too many races.
            StoreError::Stale => ApiError::conflict("the resource changed while it was being updated; retry"),
            StoreError::Unavailable(e) if crate::store::out_of_resources(&e) => {
                tracing::error!(error = %e, "database refused a write: out of storage or resources");
                ApiError {
                    out_of_storage: true,
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "the database cannot take writes now (out of storage); try again later",
                    )
                    .with_retry_after(OUT_OF_STORAGE_RETRY_SECS)
                }
            }
            StoreError::Unavailable(e) => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "database unavailable, try again")
                    .with_retry_after(1)
            }
            StoreError::Db(e) => ApiError::internal(e),
        }
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
