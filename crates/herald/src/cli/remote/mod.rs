//! Operator commands that talk to a running Herald over its API: `webhooks`, `deliveries`,
//! `events tail`, `users import`.
//!
//! Over HTTP rather than straight to the database, so they work the same against one node or
//! a cluster, need an API key rather than database credentials, go through the same checks,
//! scopes and events as any client, and leave the dispatcher (which may run on another node)
//! to act on what they ask.

mod client;
mod deliveries;
mod events;
mod output;
mod users;
mod webhooks;

use clap::Args;

pub use self::{
    client::Remote,
    deliveries::{DeliveriesCommand, deliveries},
    events::{EventsCommand, tail},
    output::OutputClosed,
    users::{UsersCommand, import_users},
    webhooks::{WebhooksCommand, webhooks},
};

/// Where the server is and who is asking.
#[derive(Args, Clone)]
pub struct Target {
    /// Herald's base URL. Default: the `listen` address of the configuration.
    #[arg(long, global = true, env = "HERALD_URL")]
    url: Option<String>,
    /// An API key (`hk_...`). Prefer the environment variable: a flag shows in `ps`.
    #[arg(long, global = true, env = "HERALD_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// The project to act in, for an organization-level or instance key (`X-Project-Id`).
    #[arg(long, global = true, env = "HERALD_PROJECT_ID")]
    project: Option<String>,
}
