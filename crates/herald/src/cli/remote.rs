//! Operator commands that talk to a running Herald over its API: `webhooks`, `deliveries`,
//! `events tail`, `users import`.
//!
//! Over HTTP rather than straight to the database, so they work the same against one node or
//! a cluster, need an API key rather than database credentials, go through the same checks,
//! scopes and events as any client, and leave the dispatcher (which may run on another node)
//! to act on what they ask.

use std::{
    collections::BTreeSet,
    io::{IsTerminal, Write},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::config::Config;

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

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Print the latest events, then new ones as they are stored, until interrupted.
    Tail {
        /// Only types matching this pattern: an exact type, `*`, or a prefix like `user.*`.
        #[arg(long = "type", default_value = "*")]
        pattern: String,
        /// How many past events to print first.
        #[arg(long, default_value_t = 10)]
        last: usize,
        /// One JSON object per line instead of a summary line.
        #[arg(long)]
        json: bool,
        /// How often to ask for new events, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create players from a CSV file with a header row: `username` (required), `id`,
    /// `email`, `displayName`, `avatarUrl`, `role`, `status`, `metadata` (JSON).
    Import {
        file: PathBuf,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Check the file only; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// An API client with the caller's credentials. Never prints the key.
pub struct Remote {
    base: String,
    key: String,
    project: Option<String>,
    http: reqwest::Client,
}

/// Output ended because the reader went away (`herald events tail | head`): not an error.
#[derive(Debug, thiserror::Error)]
#[error("output closed")]
pub struct OutputClosed;

/// Writes one line to stdout; a closed pipe ends the command quietly instead of panicking.
fn out(line: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(OutputClosed.into()),
        Err(e) => Err(e.into()),
    }
}

impl Remote {
    pub fn new(target: &Target, config: &Config) -> anyhow::Result<Remote> {
        let key = target
            .key
            .clone()
            .filter(|k| !k.trim().is_empty())
            .context("no API key: set HERALD_API_KEY (or pass --key)")?;
        let base = match &target.url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let mut addr = config.listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        Ok(Remote { base, key: key.trim().to_owned(), project: target.project.clone(), http })
    }

    /// Calls the API; retries what the server asks to retry (429, 503) after `Retry-After`.
    /// An error answer becomes `status code: message`.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut tries = 0;
        loop {
            let mut req =
                self.http.request(method.clone(), format!("{}{path}", self.base)).header("X-API-Key", &self.key);
            if let Some(project) = &self.project {
                req = req.header("X-Project-Id", project);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req.send().await.map_err(|e| {
                // reqwest's message holds the URL only, never headers.
                anyhow::anyhow!("cannot reach Herald at {} ({e}); is it running? (--url / HERALD_URL)", self.base)
            })?;
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let bytes = resp.bytes().await?;
            let value: Value =
                if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
            if status.is_success() {
                return Ok(value);
            }
            tries += 1;
            if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) && tries < 5 {
                tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1).min(30))).await;
                continue;
            }
            return Err(ApiFailure::from_answer(status, &value).into());
        }
    }

    /// Every item of a paged list (`?page=&limit=100`).
    async fn all_pages(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        for page in 1.. {
            let body = self.call(Method::GET, &format!("{path}?page={page}&limit=100"), None).await?;
            let batch = body["items"].as_array().cloned().unwrap_or_default();
            let done = batch.len() < 100;
            items.extend(batch);
            if done {
                break;
            }
        }
        Ok(items)
    }
}

/// An error answer of the API.
#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiFailure {
    fn from_answer(status: StatusCode, body: &Value) -> ApiFailure {
        let error = &body["error"];
        let mut message = error["message"].as_str().unwrap_or("no message").to_owned();
        if let Some(details) = error["details"].as_array().filter(|d| d.len() > 1) {
            let fields: Vec<String> = details
                .iter()
                .map(|d| format!("{}: {}", d["field"].as_str().unwrap_or("?"), d["message"].as_str().unwrap_or("?")))
                .collect();
            message = fields.join("; ");
        }
        ApiFailure { status: status.as_u16(), code: error["code"].as_str().unwrap_or("error").to_owned(), message }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints rows as columns padded to their widest cell (the last column is not padded).
fn table(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| if i == last { c } else { format!("{c:<w$}", w = widths[i]) })
            .collect::<Vec<_>>()
            .join("  ")
    };
    out(&line(header.iter().map(|h| h.to_string()).collect()))?;
    for row in rows {
        out(&line(row.clone()))?;
    }
    Ok(())
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
            let rows: Vec<Vec<String>> = hooks
                .iter()
                .map(|h| {
                    let state = match (h["active"].as_bool(), h["disabledReason"].as_str()) {
                        (Some(true), _) => "active".to_owned(),
                        (_, Some(reason)) => format!("disabled: {reason}"),
                        _ => "inactive".to_owned(),
                    };
                    let events: Vec<String> =
                        h["events"].as_array().map(|a| a.iter().map(text).collect()).unwrap_or_default();
                    vec![text(&h["id"]), state, text(&h["format"]), events.join(","), text(&h["url"])]
                })
                .collect();
            table(&["ID", "STATE", "FORMAT", "EVENTS", "URL"], &rows)
        }
        WebhooksCommand::Test { id, json } => {
            let result = remote.call(Method::POST, &format!("/api/v1/webhooks/{id}/test"), Some(&json!({}))).await?;
            if json {
                return out(&result.to_string());
            }
            let verdict = if result["success"] == true { "succeeded" } else { "failed" };
            out(&format!(
                "{verdict}: status {}, {} ms{}",
                text(&result["statusCode"]),
                text(&result["latencyMs"]),
                result["error"].as_str().map(|e| format!(", error: {e}")).unwrap_or_default()
            ))?;
            if let Some(body) = result["responseBody"].as_str().filter(|b| !b.is_empty()) {
                out(&format!("response: {body}"))?;
            }
            if result["success"] == true { Ok(()) } else { bail!("the endpoint did not accept the test event") }
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
            let result = remote.call(Method::POST, &format!("/api/v1/webhooks/{id}/replay"), Some(&body)).await?;
            out(&format!("queued {} deliveries for {id}", text(&result["queued"])))
        }
    }
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

/// `events tail`: the newest events first, then polls. Events are listed newest first by
/// `sequence`; on PostgreSQL a sequence number is taken at insert and its transaction may
/// commit after a later one's, so each poll looks back a margin below the highest number
/// printed and prints what it has not printed yet.
pub async fn tail(
    remote: &Remote,
    cmd: EventsCommand,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    const LOOK_BACK: i64 = 1000;
    let EventsCommand::Tail { pattern, last, json, interval_ms } = cmd;
    if !crate::domain::webhooks::is_pattern(&pattern) {
        bail!("`{pattern}` is not an event type, `*`, or a prefix pattern like `user.*`");
    }
    // The server filters by `type` (every request below names the pattern).
    let print = |e: &Value| -> anyhow::Result<()> {
        if json {
            return out(&e.to_string());
        }
        let resource = match (e["resource"]["type"].as_str(), e["resource"]["id"].as_str()) {
            (Some(t), Some(id)) => format!("{t}/{id}"),
            _ => "-".into(),
        };
        out(&format!(
            "{}  #{:<7} {:<32} {resource}  {}",
            text(&e["occurredAt"]),
            text(&e["sequence"]),
            text(&e["type"]),
            text(&e["id"])
        ))
    };
    // The server filters by the pattern, so `--last N` is the last N matching events.
    let page_path = |limit: usize, cursor: Option<&str>| {
        let mut path = format!("/api/v1/events?limit={limit}&type={}", url_escape(&pattern));
        if let Some(c) = cursor {
            path.push_str("&cursor=");
            path.push_str(c);
        }
        path
    };
    // The newest event, matching or not, sets where following starts.
    let newest = remote.call(Method::GET, "/api/v1/events?limit=1", None).await?;
    let mut floor = newest["items"][0]["sequence"].as_i64().unwrap_or(0);
    let mut events: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    while events.len() < last {
        let page =
            remote.call(Method::GET, &page_path((last - events.len()).min(100), cursor.as_deref()), None).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        events.extend(items.into_iter().filter(|e| e["sequence"].as_i64().unwrap_or_default() <= floor));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    events.truncate(last);
    events.reverse();
    for e in &events {
        print(e)?;
    }
    // What was there at the start is history; above `floor`, `printed` says what was shown.
    let mut printed: BTreeSet<i64> = BTreeSet::new();
    tokio::pin!(stop);
    let reader_gone = reader_gone();
    tokio::pin!(reader_gone);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            // Nothing is written while no event comes, so a closed pipe would otherwise be
            // noticed only at the next event.
            () = &mut reader_gone => return Err(OutputClosed.into()),
            () = tokio::time::sleep(Duration::from_millis(interval_ms.max(100))) => {}
        }
        let mut new = Vec::new();
        let mut cursor: Option<String> = None;
        'pages: loop {
            let page = remote.call(Method::GET, &page_path(100, cursor.as_deref()), None).await?;
            for e in page["items"].as_array().cloned().unwrap_or_default() {
                let seq = e["sequence"].as_i64().unwrap_or_default();
                if seq <= floor {
                    break 'pages;
                }
                if !printed.contains(&seq) {
                    new.push(e);
                }
            }
            match page["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        new.sort_by_key(|e| e["sequence"].as_i64().unwrap_or_default());
        for e in &new {
            print(e)?;
            printed.insert(e["sequence"].as_i64().unwrap_or_default());
        }
        if let Some(&top) = printed.last() {
            floor = floor.max(top - LOOK_BACK);
            printed = printed.split_off(&floor);
        }
    }
}

/// Resolves when whoever reads standard output has gone (`herald events tail | head -2` once
/// `head` exits). On Unix the kernel reports an error condition on a pipe's write end whose
/// reader closed, which epoll delivers without anything being written. Output that cannot be
/// watched (a regular file) never ends this way.
async fn reader_gone() {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use tokio::io::{Interest, unix::AsyncFd};
        // A duplicate of fd 1: the same pipe, in a descriptor this function owns.
        if let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() {
            // SAFETY: `fd` is an open descriptor owned by the `AsyncFd` until it is dropped,
            // and `OwnedFd::as_raw_fd` always returns that same descriptor.
            let watched = unsafe { AsyncFd::register_with_interest(fd, Interest::ERROR) };
            if let Ok(watched) = watched
                && let Ok(mut ready) = watched.ready(Interest::ERROR).await
            {
                ready.clear_ready();
                return;
            }
        }
    }
    std::future::pending::<()>().await
}

/// Percent-encodes a query value (patterns hold only `a-z0-9._-*`, but a user may type more).
fn url_escape(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The CSV columns `users import` reads, and the API field each becomes.
const USER_COLUMNS: &[(&str, &str)] = &[
    ("id", "id"),
    ("username", "username"),
    ("email", "email"),
    ("displayname", "displayName"),
    ("display_name", "displayName"),
    ("avatarurl", "avatarUrl"),
    ("avatar_url", "avatarUrl"),
    ("role", "role"),
    ("status", "status"),
    ("metadata", "metadata"),
];

/// Reads the file into request bodies, each with its line number. Fails on the first
/// problem with the file itself (unknown column, bad metadata JSON, missing username).
fn read_users(file: &std::path::Path) -> anyhow::Result<Vec<(u64, Value)>> {
    let mut reader = csv::Reader::from_path(file).with_context(|| format!("cannot read {}", file.display()))?;
    let headers = reader.headers()?.clone();
    let mut fields = Vec::new();
    for h in &headers {
        let field = USER_COLUMNS.iter().find(|(col, _)| col.eq_ignore_ascii_case(h.trim())).map(|(_, f)| *f);
        let Some(field) = field else {
            bail!(
                "unknown column `{h}`; the columns are id, username, email, displayName, avatarUrl, role, status, metadata"
            );
        };
        fields.push(field);
    }
    if !fields.contains(&"username") {
        bail!("the file has no `username` column");
    }
    let mut users = Vec::new();
    for record in reader.records() {
        let record = record?;
        let line = record.position().map_or(0, |p| p.line());
        let mut user = Map::new();
        for (field, value) in fields.iter().zip(record.iter()) {
            if value.is_empty() {
                continue;
            }
            let value = if *field == "metadata" {
                serde_json::from_str(value).with_context(|| format!("line {line}: metadata is not JSON"))?
            } else {
                Value::String(value.to_owned())
            };
            user.insert((*field).to_owned(), value);
        }
        if !user.contains_key("username") {
            bail!("line {line}: username is empty");
        }
        users.push((line, Value::Object(user)));
    }
    Ok(users)
}

/// Summary of an import.
pub struct Imported {
    pub created: usize,
    pub failed: usize,
}

pub async fn import_users(
    remote: Option<&Remote>,
    file: &std::path::Path,
    concurrency: usize,
) -> anyhow::Result<Imported> {
    let users = read_users(file)?;
    let Some(remote) = remote else {
        out(&format!("{}: {} players, the file is well-formed (dry run: nothing sent)", file.display(), users.len()))?;
        return Ok(Imported { created: 0, failed: 0 });
    };
    let bar = indicatif::ProgressBar::new(users.len() as u64);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} players ({per_sec}, {eta} left)")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut results = futures_util::stream::iter(users)
        .map(|(line, user)| async move { (line, remote.call(Method::POST, "/api/v1/users", Some(&user)).await) })
        .buffer_unordered(concurrency.clamp(1, 64));
    let (mut created, mut failed) = (0, 0);
    while let Some((line, result)) = results.next().await {
        bar.inc(1);
        match result {
            Ok(_) => created += 1,
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("line {line}: {e}"));
            }
        }
    }
    bar.finish_and_clear();
    out(&format!("created {created}, failed {failed}"))?;
    Ok(Imported { created, failed })
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

    #[test]
    fn csv_rows_become_request_bodies() {
        let dir = std::env::temp_dir().join(format!("herald-import-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("players.csv");
        std::fs::write(
            &file,
            "username,Display_Name,metadata,email\nann,Ann,\"{\"\"level\"\": 3}\",\nbob,,,bob@example.com\n",
        )
        .expect("write");
        let users = read_users(&file).expect("read");
        assert_eq!(users[0], (2, json!({"username": "ann", "displayName": "Ann", "metadata": {"level": 3}})));
        assert_eq!(users[1], (3, json!({"username": "bob", "email": "bob@example.com"})));
        std::fs::write(&file, "username,nickname\nann,a\n").expect("write");
        let err = read_users(&file).expect_err("unknown column").to_string();
        assert!(err.contains("unknown column `nickname`"), "{err}");
        std::fs::write(&file, "username,metadata\nann,{oops\n").expect("write");
        assert!(read_users(&file).expect_err("bad JSON").to_string().contains("line 2"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
