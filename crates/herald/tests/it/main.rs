//! Integration tests: each drives the real HTTP server (bound on a loopback port) over a
//! fresh database, once on SQLite and once on PostgreSQL (see `common::both_backends!`).

mod common;
mod log_capture;
mod receiver;

mod architecture;
mod auth_matrix;
mod chat;
mod chat_docs;
mod cli;
mod cli_ops;
mod client;
mod client_liveops;
mod connections;
mod durability;
mod errors;
mod examples;
mod formats;
mod interop;
mod liveops;
mod openapi;
mod ops;
mod outbox;
mod realtime;
mod schema;
mod socket_client;
mod tenancy;
mod users;
mod versions;
mod webhooks;
mod worlds;
