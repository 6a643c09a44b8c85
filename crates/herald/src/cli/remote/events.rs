//! `herald events tail`.

use std::{collections::BTreeSet, time::Duration};

use anyhow::bail;
use clap::Subcommand;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{
    Remote,
    client::{Page, typed},
    output::{OutputClosed, out},
};

/// What the summary line shows of an event.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    sequence: i64,
    /// As the API wrote it (RFC 3339).
    occurred_at: String,
    resource: Option<Resource>,
}

#[derive(Deserialize)]
struct Resource {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
}

/// An event as answered (`--json` prints it so) and what the summary needs of it.
struct Tailed {
    raw: Value,
    event: Summary,
}

/// The events of a page.
fn events(page: Page<Value>) -> anyhow::Result<Vec<Tailed>> {
    page.items.into_iter().map(|raw| Ok(Tailed { event: typed(&raw)?, raw })).collect()
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
    let print = |Tailed { raw, event: e }: &Tailed| -> anyhow::Result<()> {
        if json {
            return out(&raw.to_string());
        }
        let resource = match e.resource.as_ref().map(|r| (r.kind.as_deref(), r.id.as_deref())) {
            Some((Some(t), Some(id))) => format!("{t}/{id}"),
            _ => "-".into(),
        };
        out(&format!("{}  #{:<7} {:<32} {resource}  {}", e.occurred_at, e.sequence, e.kind, e.id))
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
    let newest: Page<Summary> = remote.call_as(Method::GET, "/api/v1/events?limit=1", None).await?;
    let mut floor = newest.items.first().map_or(0, |e| e.sequence);
    let mut past: Vec<Tailed> = Vec::new();
    let mut cursor: Option<String> = None;
    while past.len() < last {
        let page: Page<Value> =
            remote.call_as(Method::GET, &page_path((last - past.len()).min(100), cursor.as_deref()), None).await?;
        cursor = page.next_cursor.clone();
        past.extend(events(page)?.into_iter().filter(|e| e.event.sequence <= floor));
        if cursor.is_none() {
            break;
        }
    }
    past.truncate(last);
    past.reverse();
    for e in &past {
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
            let page: Page<Value> = remote.call_as(Method::GET, &page_path(100, cursor.as_deref()), None).await?;
            cursor = page.next_cursor.clone();
            for e in events(page)? {
                let seq = e.event.sequence;
                if seq <= floor {
                    break 'pages;
                }
                if !printed.contains(&seq) {
                    new.push(e);
                }
            }
            if cursor.is_none() {
                break;
            }
        }
        new.sort_by_key(|e| e.event.sequence);
        for e in &new {
            print(e)?;
            printed.insert(e.event.sequence);
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
