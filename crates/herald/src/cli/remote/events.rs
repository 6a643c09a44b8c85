//! `herald events tail`.

use std::{collections::BTreeSet, time::Duration};

use anyhow::bail;
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::{
    Remote,
    output::{OutputClosed, out, text},
};

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
