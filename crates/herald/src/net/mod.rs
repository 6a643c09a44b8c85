//! Serving connections: the accept loop and each connection's limits.
//!
//! - **A cap on open connections** (`http.max_connections`, by default what the open-file
//!   limit leaves after a reserve for the database and webhook deliveries): past it a new
//!   connection is closed at once, logged and counted, so sockets can never use up the file
//!   descriptors the server needs to answer anyone.
//! - **Accept errors never stop the server**: `EMFILE` and the like are logged and counted,
//!   and accepting resumes after a short back-off.
//! - **A request head must arrive in time** (`http.header_read_timeout_secs`, hyper's HTTP/1
//!   header timer): a client that opens a connection and sends nothing, or one header line
//!   every few seconds (slowloris), is disconnected.
//! - **Idle connections close** (`http.idle_timeout_secs`): no request in progress for that
//!   long, on HTTP/1.1 and HTTP/2 alike.
//! - **Stalled writes fail** (`http.write_stall_timeout_secs`, [`StallGuard`]).
//!
//! axum's `serve` sets none of these and offers no way to, so the loop is here, built from
//! hyper-util's connection builder as axum's is (same protocols, HTTP/2 WebSockets, upgrades,
//! graceful shutdown).

mod client_address;
mod limits;
mod serve;
mod stall;

pub use client_address::client_address;
pub use limits::{Connections, Limits, connection_cap};
pub use serve::{Accept, PeerAddr, serve};
pub use stall::StallGuard;
