//! `herald deliveries list`.

use clap::Subcommand;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{
    Remote,
    client::{Page, typed},
    output::{out, table, text},
};

/// What `deliveries list` shows of a delivery.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivery {
    id: String,
    webhook_id: String,
    event_id: String,
    status: String,
    attempt_count: i64,
    last_status_code: Option<i64>,
    /// As the API wrote it (RFC 3339).
    updated_at: String,
    last_error: Option<String>,
}

/// An endpoint, for its id.
#[derive(Deserialize)]
struct Endpoint {
    id: String,
}

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
        None => {
            let hooks = remote.all_pages("/api/v1/webhooks").await?;
            hooks.iter().map(|h| typed(h).map(|h: Endpoint| h.id)).collect::<anyhow::Result<_>>()?
        }
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
            let page: Page<Value> = remote.call_as(Method::GET, &path, None).await?;
            taken += page.items.len();
            all.extend(page.items);
            match page.next_cursor {
                Some(c) if taken < limit => cursor = Some(c),
                _ => break,
            }
        }
    }
    if json {
        return out(&Value::Array(all).to_string());
    }
    let mut rows = Vec::with_capacity(all.len());
    for delivery in &all {
        let d: Delivery = typed(delivery)?;
        rows.push(vec![
            d.id,
            d.webhook_id,
            d.event_id,
            d.status,
            d.attempt_count.to_string(),
            text(d.last_status_code),
            d.updated_at,
            text(d.last_error),
        ]);
    }
    table(&["DELIVERY", "WEBHOOK", "EVENT", "STATUS", "ATTEMPTS", "LAST CODE", "UPDATED", "LAST ERROR"], &rows)
}
