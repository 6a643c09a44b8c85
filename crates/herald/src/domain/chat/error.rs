//! Chat errors: what a chat rule refused, which each chat API maps to its own wire form.

#[allow(unused_imports)]
use super::*;

#[derive(Debug)]
pub enum ChatError {
    /// A field to fix, and what is wrong with it.
    Invalid(String, String),
    /// A query parameter to fix (a history cursor or page size), and what is wrong with it.
    InvalidQuery(String, String),
    ChannelNotFound,
    TagNotFound,
    UserNotFound,
    MessageNotFound,
    AlreadySubscribed,
    NotSubscribed,
    Conflict(String),
    Forbidden(String),
    /// Too many messages; seconds until the next is accepted.
    RateLimited(u64),
    Store(StoreError),
}

pub type ChatResult<T> = Result<T, ChatError>;

pub(super) fn invalid(field: &str, message: impl Into<String>) -> ChatError {
    ChatError::Invalid(field.to_owned(), message.into())
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound("channel") => ChatError::ChannelNotFound,
            StoreError::NotFound("tag") => ChatError::TagNotFound,
            StoreError::NotFound("user") => ChatError::UserNotFound,
            StoreError::NotFound("message") => ChatError::MessageNotFound,
            StoreError::NotFound("subscription") => ChatError::NotSubscribed,
            StoreError::Conflict(m) => ChatError::Conflict(m),
            other => ChatError::Store(other),
        }
    }
}

impl From<ChatError> for DomainError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Invalid(field, message) => DomainError::validation(vec![FieldError::new(field, message)]),
            ChatError::InvalidQuery(param, message) => DomainError::InvalidQuery {
                details: vec![FieldError::new(&param, &message)],
                message: format!("{param}: {message}"),
            },
            ChatError::ChannelNotFound => DomainError::not_found("channel"),
            ChatError::TagNotFound => DomainError::not_found("tag"),
            ChatError::UserNotFound => DomainError::not_found("user"),
            ChatError::MessageNotFound => DomainError::not_found("message"),
            ChatError::AlreadySubscribed => DomainError::conflict("the user already subscribes to this channel"),
            ChatError::NotSubscribed => DomainError::Forbidden {
                code: "not_subscribed",
                message: "the user does not subscribe to this channel; subscribe first".into(),
            },
            ChatError::Conflict(m) => DomainError::conflict(m),
            ChatError::Forbidden(m) => DomainError::forbidden(m),
            ChatError::RateLimited(secs) => DomainError::RateLimited {
                message: format!("too many messages from this user; retry in {secs} s"),
                retry_after_secs: secs,
            },
            ChatError::Store(e) => e.into(),
        }
    }
}
