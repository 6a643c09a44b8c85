//! Herald: a self-hosted game-platform backend. See `docs/ARCHITECTURE.md` for the map.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod ids;
pub mod metrics;
pub mod net;
pub mod realtime;
pub mod scheduler;
pub mod secret;
pub mod state;
pub mod store;
pub mod text_enum;
pub mod vocab;
pub mod webhooks;
