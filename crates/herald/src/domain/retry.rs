//! The optimistic read-modify-write: read a row, change it, write it back only if nobody
//! wrote it meanwhile (`StoreError::Stale` otherwise), and then start over from a fresh read.

use super::{DomainError, chat::ChatError};
use crate::store::StoreError;

/// Tries of a read-modify-write before it gives up with the conflict a stale update maps to
/// (409 `conflict`, "the resource changed while it was being updated; retry"). A try fails
/// stale only when another writer committed between its read and its write, and the next try
/// reads after that commit, so a writer loses at most once per other writer's commit: 32
/// tries let 32 concurrent changes of one row all succeed (the suite sends 20 at once,
/// `outbox::concurrent_patches_lose_no_field`; 8 tries failed it), while a row rewritten
/// without end answers 409 instead of spinning.
pub const STALE_TRIES: usize = 32;

/// An error that may say "the row changed since it was read".
pub trait MaybeStale {
    fn is_stale(&self) -> bool;
}

impl MaybeStale for StoreError {
    fn is_stale(&self) -> bool {
        matches!(self, StoreError::Stale)
    }
}

impl MaybeStale for DomainError {
    fn is_stale(&self) -> bool {
        matches!(self, DomainError::Store(StoreError::Stale))
    }
}

impl MaybeStale for ChatError {
    fn is_stale(&self) -> bool {
        matches!(self, ChatError::Store(StoreError::Stale))
    }
}

/// Runs `attempt` (read, change, conditional write) until it does not fail stale, at most
/// [`STALE_TRIES`] times; the last stale failure is returned as it is.
///
/// Takes a closure returning a future (`|| async move { .. }`) rather than an async closure:
/// the future of an `AsyncFnMut` cannot be shown to be `Send` (rustc reports "implementation
/// of `Send` is not general enough" in the handlers that await it).
pub async fn retry_on_stale<T, E: MaybeStale, F>(mut attempt: impl FnMut() -> F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.is_stale() && tries < STALE_TRIES => tries += 1,
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_write_is_retried_until_it_succeeds() {
        let tries = &std::cell::Cell::new(0);
        let written = retry_on_stale(|| async move {
            tries.set(tries.get() + 1);
            if tries.get() < 3 { Err(DomainError::Store(StoreError::Stale)) } else { Ok(tries.get()) }
        })
        .await;
        assert_eq!(written.ok(), Some(3));
    }

    #[tokio::test]
    async fn a_write_that_keeps_losing_gives_up_with_a_conflict() {
        let tries = &std::cell::Cell::new(0);
        let written: Result<(), DomainError> = retry_on_stale(|| async move {
            tries.set(tries.get() + 1);
            Err(StoreError::Stale.into())
        })
        .await;
        assert_eq!(tries.get(), STALE_TRIES);
        let e = written.expect_err("gives up");
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("conflict", "the resource changed while it was being updated; retry")
        );
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let tries = &std::cell::Cell::new(0);
        let written: Result<(), DomainError> = retry_on_stale(|| async move {
            tries.set(tries.get() + 1);
            Err(DomainError::not_found("user"))
        })
        .await;
        assert_eq!(tries.get(), 1);
        assert!(matches!(written, Err(DomainError::NotFound("user"))));
    }
}
