//! `herald webhooks list | test | replay`.

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Remote,
    client::typed,
    output::{out, table, text},
};

/// What `webhooks list` shows of an endpoint.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    id: String,
    url: String,
    events: Vec<String>,
    format: String,
    active: bool,
    disabled_reason: Option<String>,
}

/// The answer of `POST /webhooks/{id}/test`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestAnswer {
    success: bool,
    status_code: Option<u16>,
    latency_ms: u64,
    response_body: Option<String>,
    error: Option<String>,
}

/// The answer of `POST /webhooks/{id}/replay`.
#[derive(Deserialize)]
struct ReplayAnswer {
    queued: u64,
}

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// List the project's webhook endpoints.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Send a `test` event to an endpoint now and show how it answered.
    Test {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Queue again the events of a time range for an endpoint.
    Replay {
        id: String,
        /// Start of the range: RFC 3339 (`2026-11-23T10:00:00Z`) or an age (`30m`, `2h`, `1d`).
        #[arg(long)]
        since: String,
        /// End of the range (same forms); default: now.
        #[arg(long)]
        until: Option<String>,
        /// Only events whose delivery to this endpoint failed.
        #[arg(long)]
        failed_only: bool,
    },
}

/// RFC 3339, or an age before now: `90s`, `30m`, `2h`, `7d`.
pub fn parse_time(input: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(input) {
        return Ok(t.with_timezone(&Utc));
    }
    let (number, unit) = input.split_at(input.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let n: i64 =
        number.parse().map_err(|_| anyhow::anyhow!("`{input}` is neither RFC 3339 nor an age like 30m, 2h, 1d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("`{input}`: the unit of an age is s, m, h or d"),
    };
    Ok(now - chrono::TimeDelta::seconds(secs))
}

pub async fn webhooks(remote: &Remote, cmd: WebhooksCommand) -> anyhow::Result<()> {
    match cmd {
        WebhooksCommand::List { json } => {
            let hooks = remote.all_pages("/api/v1/webhooks").await?;
            if json {
                return out(&Value::Array(hooks).to_string());
            }
            let mut rows = Vec::with_capacity(hooks.len());
            for hook in &hooks {
                let h: Endpoint = typed(hook)?;
                let state = match (h.active, h.disabled_reason) {
                    (true, _) => "active".to_owned(),
                    (false, Some(reason)) => format!("disabled: {reason}"),
                    (false, None) => "inactive".to_owned(),
                };
                rows.push(vec![h.id, state, h.format, h.events.join(","), h.url]);
            }
            table(&["ID", "STATE", "FORMAT", "EVENTS", "URL"], &rows)
        }
        WebhooksCommand::Test { id, json } => {
            let result = remote.call(Method::POST, &format!("/api/v1/webhooks/{id}/test"), Some(&json!({}))).await?;
            if json {
                return out(&result.to_string());
            }
            let result: TestAnswer = typed(&result)?;
            let verdict = if result.success { "succeeded" } else { "failed" };
            out(&format!(
                "{verdict}: status {}, {} ms{}",
                text(result.status_code),
                result.latency_ms,
                result.error.map(|e| format!(", error: {e}")).unwrap_or_default()
            ))?;
            if let Some(body) = result.response_body.filter(|b| !b.is_empty()) {
                out(&format!("response: {body}"))?;
            }
            if result.success { Ok(()) } else { bail!("the endpoint did not accept the test event") }
        }
        WebhooksCommand::Replay { id, since, until, failed_only } => {
            let now = Utc::now();
            let mut body = json!({
                "since": parse_time(&since, now)?.to_rfc3339(),
                "status": if failed_only { "failed" } else { "all" },
            });
            if let Some(until) = until {
                body["until"] = json!(parse_time(&until, now)?.to_rfc3339());
            }
            let result: ReplayAnswer =
                remote.call_as(Method::POST, &format!("/api/v1/webhooks/{id}/replay"), Some(&body)).await?;
            out(&format!("queued {} deliveries for {id}", result.queued))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        let now = Utc::now();
        assert_eq!(parse_time("2h", now).expect("age"), now - chrono::TimeDelta::hours(2));
        assert_eq!(parse_time("90s", now).expect("age"), now - chrono::TimeDelta::seconds(90));
        let t = parse_time("2026-11-23T10:00:00Z", now).expect("rfc3339");
        assert_eq!(t.to_rfc3339(), "2026-11-23T10:00:00+00:00");
        assert!(parse_time("2 weeks", now).is_err());
        assert!(parse_time("5y", now).is_err());
    }
}
