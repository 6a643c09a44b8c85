//! Connection limits: the cap on open connections and the timeouts each is served with.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use tokio::sync::Semaphore;

use crate::config::Config;

/// The limits every connection is served with (see `http.*` in docs/CONFIG.md).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_stall_timeout: Duration,
}

impl Limits {
    pub fn new(config: &Config) -> Limits {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        Limits {
            header_read_timeout: secs(config.http.header_read_timeout_secs),
            idle_timeout: secs(config.http.idle_timeout_secs),
            write_stall_timeout: secs(config.http.write_stall_timeout_secs),
        }
    }
}

/// File descriptors kept for everything but client connections: a margin for the process
/// (logs, the SQLite files, DNS), plus, per database connection, the connection (SQLite opens
/// the database, its WAL and its shared-memory file: three), plus one per webhook delivery
/// in flight.
fn reserved_descriptors(config: &Config) -> u64 {
    64 + 3 * (u64::from(config.database.max_connections) + 1) + config.webhooks.max_in_flight as u64
}

/// The connection cap in effect: `http.max_connections`, or when 0 what the process's
/// open-file limit leaves after [`reserved_descriptors`] (at least half of the limit).
pub fn connection_cap(config: &Config) -> usize {
    let configured = config.http.max_connections;
    let Some(files) = open_file_limit() else {
        return if configured == 0 { 10_000 } else { configured };
    };
    let auto = files.saturating_sub(reserved_descriptors(config)).max(files / 2).max(1);
    let auto = usize::try_from(auto).unwrap_or(usize::MAX);
    match configured {
        0 => auto,
        n if n > auto => {
            tracing::warn!(
                max_connections = n,
                open_file_limit = files,
                "http.max_connections is above what the open-file limit leaves ({auto}): accepting may fail with \
                 `Too many open files` before the cap is reached"
            );
            n
        }
        n => n,
    }
}

#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// The node's connections: the cap's permits and the counters `GET /metrics` reads.
pub struct Connections {
    pub(super) permits: Arc<Semaphore>,
    pub(super) cap: usize,
    /// Connections closed at once because the cap was reached.
    pub refused: AtomicU64,
    /// Failed `accept` calls (other than a client resetting before it was accepted).
    pub accept_errors: AtomicU64,
}

impl Connections {
    pub fn new(cap: usize) -> Connections {
        let cap = cap.clamp(1, Semaphore::MAX_PERMITS);
        Connections {
            permits: Arc::new(Semaphore::new(cap)),
            cap,
            refused: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Client connections open now (a WebSocket counts until it closes).
    pub fn open(&self) -> usize {
        self.cap - self.permits.available_permits()
    }
}
