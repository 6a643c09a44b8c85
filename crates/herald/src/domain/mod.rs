//! Domain logic in plain functions: validation, defaults, read-modify-write with retries,
//! and which events a change implies. Handlers call these; these call the store.

pub mod bootstrap;
pub mod chat;
pub mod client;
mod error;
pub mod events;
pub mod maintenance;
pub mod notices;
pub mod player_session;
mod retry;
pub mod schedule;
pub mod session;
pub mod tenancy;
pub mod users;
pub mod validate;
pub mod versions;
pub mod webhooks;
pub mod worlds;

pub use error::{DomainError, DomainResult, FieldError, OUT_OF_STORAGE_RETRY_SECS};
pub use retry::{STALE_TRIES, retry_on_stale};
