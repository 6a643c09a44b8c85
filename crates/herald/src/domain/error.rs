//! What can go wrong in the domain, said in the domain's words: which rule a request broke,
//! with a machine-readable code and a message for people. Nothing here knows HTTP or sockets:
//! `api::error` gives each variant its HTTP status and body, `realtime` its acknowledgement.

use std::fmt;

use serde::Serialize;

use crate::store::{self, StoreError};

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

/// `Retry-After` when the database is out of storage: freeing space takes an operator, so
/// clients should not come back every second.
pub const OUT_OF_STORAGE_RETRY_SECS: u64 = 10;

#[derive(Debug)]
pub enum DomainError {
    /// The request's content is not acceptable: every field to fix (`validation_error`).
    Invalid(Vec<FieldError>),
    /// A query parameter to fix (`invalid_query`), with the fields when known.
    InvalidQuery { message: String, details: Vec<FieldError> },
    /// The thing named does not exist, or is out of the caller's reach (`not_found`).
    NotFound(&'static str),
    /// The request contradicts the resource's state. `code` is `conflict` unless clients
    /// need to tell the case apart (`user_not_active`).
    Conflict { code: &'static str, message: String },
    /// The caller may not do this. `code` is `forbidden` unless clients need to tell the case
    /// apart (`not_subscribed`).
    Forbidden { code: &'static str, message: String },
    /// The credential presented is wrong (`unauthorized`).
    Unauthorized(String),
    /// Too many requests; seconds until the next is accepted (`rate_limited`).
    RateLimited { message: String, retry_after_secs: u64 },
    /// The database is unreachable or refused a write (`Unavailable`), failed (`Db`), or an
    /// optimistic update kept losing races (`Stale`, a conflict: [`super::retry_on_stale`]
    /// retries it first). The store's `NotFound` and `Conflict` become the variants above.
    Store(StoreError),
    /// A fault of the server; the cause is logged, never shown.
    Internal(anyhow::Error),
}

pub type DomainResult<T> = Result<T, DomainError>;

impl DomainError {
    pub fn validation(details: Vec<FieldError>) -> Self {
        DomainError::Invalid(details)
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        DomainError::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn invalid_query(message: impl Into<String>) -> Self {
        DomainError::InvalidQuery { message: message.into(), details: Vec::new() }
    }

    pub fn not_found(what: &'static str) -> Self {
        DomainError::NotFound(what)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        DomainError::Conflict { code: "conflict", message: message.into() }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        DomainError::Forbidden { code: "forbidden", message: message.into() }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        DomainError::Unauthorized(message.into())
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        DomainError::Internal(err.into())
    }

    /// Machine-readable, stable: clients switch on it.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Invalid(_) => "validation_error",
            DomainError::InvalidQuery { .. } => "invalid_query",
            DomainError::NotFound(_) => "not_found",
            DomainError::Conflict { code, .. } | DomainError::Forbidden { code, .. } => code,
            DomainError::Store(StoreError::Stale) => "conflict",
            DomainError::Unauthorized(_) => "unauthorized",
            DomainError::RateLimited { .. } => "rate_limited",
            DomainError::Store(StoreError::Unavailable(_)) => "unavailable",
            DomainError::Store(_) | DomainError::Internal(_) => "internal_error",
        }
    }

    /// The fields to fix, when the error is about fields.
    pub fn details(&self) -> &[FieldError] {
        match self {
            DomainError::Invalid(details) | DomainError::InvalidQuery { details, .. } => details,
            _ => &[],
        }
    }

    /// Seconds a client should wait before it tries again, when waiting helps.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            DomainError::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
            _ if self.out_of_storage() => Some(OUT_OF_STORAGE_RETRY_SECS),
            DomainError::Store(StoreError::Unavailable(_)) => Some(1),
            _ => None,
        }
    }

    /// The database refused a write for want of storage (`GET /readyz` reports it).
    pub fn out_of_storage(&self) -> bool {
        matches!(self, DomainError::Store(StoreError::Unavailable(e)) if store::out_of_resources(e))
    }

    /// Logs the cause of a server-side fault, which the answer does not reveal; nothing for
    /// errors of the request.
    pub fn log_cause(&self) {
        match self {
            DomainError::Store(StoreError::Unavailable(e)) if self.out_of_storage() => {
                tracing::error!(error = %e, "database refused a write: out of storage or resources");
            }
            DomainError::Store(StoreError::Unavailable(e)) => tracing::error!(error = %e, "database unavailable"),
            DomainError::Store(StoreError::Stale) => {}
            DomainError::Store(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            DomainError::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            _ => {}
        }
    }
}

/// The message for people: says what to fix (or, for faults, that it is not theirs).
impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainError::Invalid(details) => match details.as_slice() {
                [one] => write!(f, "{}: {}", one.field, one.message),
                _ => write!(f, "{} fields are invalid; see details", details.len()),
            },
            DomainError::InvalidQuery { message, .. }
            | DomainError::Conflict { message, .. }
            | DomainError::Forbidden { message, .. }
            | DomainError::RateLimited { message, .. } => f.write_str(message),
            DomainError::Unauthorized(message) => f.write_str(message),
            DomainError::NotFound(what) => write!(f, "{what} not found"),
            DomainError::Store(StoreError::Unavailable(_)) if self.out_of_storage() => {
                f.write_str("the database cannot take writes now (out of storage); try again later")
            }
            DomainError::Store(StoreError::Unavailable(_)) => f.write_str("database unavailable, try again"),
            DomainError::Store(StoreError::Stale) => {
                f.write_str("the resource changed while it was being updated; retry")
            }
            DomainError::Store(_) | DomainError::Internal(_) => f.write_str("internal server error"),
        }
    }
}

impl std::error::Error for DomainError {}

impl From<StoreError> for DomainError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => DomainError::NotFound(what),
            StoreError::Conflict(message) => DomainError::conflict(message),
            other => DomainError::Store(other),
        }
    }
}
