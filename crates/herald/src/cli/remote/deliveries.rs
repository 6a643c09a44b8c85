//! `herald deliveries list`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::{
    Remote,
    output::{out, table, text},
};

#[derive(Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        /// Only deliveries that used up their retries (or hit 410 Gone).
        #[arg(long, conflicts_with = "status")]
        failed: bool,
        /// `pending`, `succeeded` or `failed`.
        #[arg(long)]
        status: Option<String>,
        /// One endpoint only (default: every endpoint of the project).
        #[arg(long)]
        webhook: Option<String>,
        /// At most this many per endpoint.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

pub async fn deliveries(remote: &Remote, cmd: DeliveriesCommand) -> anyhow::Result<()> {
    let DeliveriesCommand::List { failed, status, webhook, limit, json } = cmd;
    let status = if failed { Some("failed".to_owned()) } else { status };
    let hooks = match webhook {
        Some(id) => vec![id],
        None => remote.all_pages("/api/v1/webhooks").await?.iter().map(|h| text(&h["id"])).collect(),
    };
    let mut all = Vec::new();
    for hook in hooks {
        let mut cursor: Option<String> = None;
        let mut taken = 0;
        while taken < limit {
            let mut path = format!("/api/v1/webhooks/{hook}/deliveries?limit={}", (limit - taken).min(100));
            if let Some(s) = &status {
                path.push_str(&format!("&status={s}"));
            }
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = remote.call(Method::GET, &path, None).await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            taken += items.len();
            all.extend(items);
            match page["nextCursor"].as_str() {
                Some(c) if taken < limit => cursor = Some(c.to_owned()),
                _ => break,
            }
        }
    }
    if json {
        return out(&Value::Array(all).to_string());
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|d| {
            vec![
                text(&d["id"]),
                text(&d["webhookId"]),
                text(&d["eventId"]),
                text(&d["status"]),
                text(&d["attemptCount"]),
                text(&d["lastStatusCode"]),
                text(&d["updatedAt"]),
                text(&d["lastError"]),
            ]
        })
        .collect();
    table(&["DELIVERY", "WEBHOOK", "EVENT", "STATUS", "ATTEMPTS", "LAST CODE", "UPDATED", "LAST ERROR"], &rows)
}
