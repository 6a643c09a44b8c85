//! The socket.io fan-out benchmark: holds `--sockets` player connections on one Herald node,
//! reports the server's memory per socket, then toggles a world's maintenance `--rounds`
//! times and times each event from its `occurredAt` (set just before its commit) to its
//! arrival at every socket: first as `world_maintenance_started`/`_ended` (the alias, sent
//! first), then under its dotted name.
//!
//! The clients speak engine.io/socket.io over a WebSocket by hand (open, connect, events,
//! pings): the protocol is a few text frames, and a full client per socket would cost the
//! load generator more than the server it measures.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::mpsc};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

#[derive(clap::Args)]
pub struct SocketArgs {
    /// (sockets) Player connections to hold.
    #[arg(long, default_value_t = 10_000)]
    pub sockets: usize,
    /// (sockets) Maintenance toggles (events fanned out to every socket).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// (sockets) A player session token (all sockets use it).
    #[arg(long, default_value = "")]
    pub token: String,
    /// (sockets) The world to toggle (its id in the API path).
    #[arg(long, default_value = "")]
    pub world: String,
    /// (sockets) Herald's process id, to read its memory.
    #[arg(long)]
    pub pid: Option<u32>,
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) a process has used, in milliseconds, from `/proc/<pid>/stat`
/// (`self` for this process). Assumes the usual 100 clock ticks per second.
fn cpu_ms(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10)
}

pub async fn run(addr: &str, key: &str, args: &SocketArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.token.is_empty() && !args.world.is_empty(), "--token and --world are required");
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let rss_before = rss_kib(args.pid);
    let (latencies, mut arrivals) = mpsc::unbounded_channel::<(usize, bool, u64)>();
    let connected = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let started = Instant::now();
    for _ in 0..args.sockets {
        let permit = gate.clone().acquire_owned().await?;
        let (url, token) = (format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"), args.token.clone());
        let (latencies, connected) = (latencies.clone(), connected.clone());
        tokio::spawn(async move {
            let result = client(&url, &token, permit, &connected, latencies).await;
            if let Err(e) = result {
                eprintln!("socket: {e}");
            }
        });
    }
    while connected.load(Ordering::Relaxed) < args.sockets {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(300), "only {connected:?} sockets connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_held = rss_kib(args.pid);

    let mut all = Histogram::<u64>::new(3)?;
    let mut second = Histogram::<u64>::new(3)?;
    let mut last_arrival = Histogram::<u64>::new(3)?;
    let mut missing = 0usize;
    let server_pid = args.pid.map(|p| p.to_string());
    let cpu_before = (server_pid.as_deref().and_then(cpu_ms), cpu_ms("self"));
    for round in 0..args.rounds {
        toggle(addr, key, &args.world, round % 2 == 0).await?;
        let mut got = 0;
        let mut slowest = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut got_second = 0;
        while got_second < args.sockets {
            match tokio::time::timeout_at(deadline, arrivals.recv()).await {
                Ok(Some((r, false, micros))) if r == round => {
                    got += 1;
                    slowest = slowest.max(micros);
                    all.record(micros.max(1))?;
                }
                Ok(Some((r, true, micros))) if r == round => {
                    got_second += 1;
                    second.record(micros.max(1))?;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        missing += args.sockets - got;
        last_arrival.record(slowest.max(1))?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Includes the 200 ms pauses between rounds, when both sides are idle.
    let per_event =
        |before: Option<u64>, after: Option<u64>| Some((after? - before?) as f64 / args.rounds.max(1) as f64);
    let server_cpu = per_event(cpu_before.0, server_pid.as_deref().and_then(cpu_ms));
    let client_cpu = per_event(cpu_before.1, cpu_ms("self"));
    let rss_after = rss_kib(args.pid);
    let per_socket = match (rss_before, rss_held) {
        (Some(b), Some(h)) => Some(((h.saturating_sub(b)) as f64 * 1024.0 / args.sockets as f64).round()),
        _ => None,
    };
    println!(
        "{}",
        serde_json::json!({
            "sockets": args.sockets,
            "connect_s": (connect_secs * 10.0).round() / 10.0,
            "rss_before_mib": rss_before.map(|k| k / 1024),
            "rss_held_mib": rss_held.map(|k| k / 1024),
            "rss_after_mib": rss_after.map(|k| k / 1024),
            "bytes_per_socket": per_socket,
            "rounds": args.rounds,
            "receipts": all.len(),
            "missing": missing,
            "p50_ms": all.value_at_quantile(0.50) as f64 / 1000.0,
            "p99_ms": all.value_at_quantile(0.99) as f64 / 1000.0,
            "max_ms": all.max() as f64 / 1000.0,
            "last_socket_p50_ms": last_arrival.value_at_quantile(0.50) as f64 / 1000.0,
            "last_socket_max_ms": last_arrival.max() as f64 / 1000.0,
            "dotted_name_p50_ms": second.value_at_quantile(0.50) as f64 / 1000.0,
            "dotted_name_p99_ms": second.value_at_quantile(0.99) as f64 / 1000.0,
            "server_cpu_ms_per_event": server_cpu,
            "client_cpu_ms_per_event": client_cpu,
        })
    );
    anyhow::ensure!(missing == 0, "{missing} receipts missing");
    Ok(())
}

/// One player connection: handshake, then answer pings and time the maintenance aliases.
async fn client(
    url: &str,
    token: &str,
    permit: tokio::sync::OwnedSemaphorePermit,
    connected: &AtomicUsize,
    latencies: mpsc::UnboundedSender<(usize, bool, u64)>,
) -> anyhow::Result<()> {
    // tungstenite zero-fills its whole read buffer (128 KiB by default) before every read:
    // with 10,000 sockets that memset was 40% of the clients' CPU. Herald's side (engineioxide)
    // reads into 4 KiB; so do these clients.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false).await?;
    let (mut sink, mut stream) = ws.split();
    let open = stream.next().await.ok_or_else(|| anyhow::anyhow!("closed"))??;
    anyhow::ensure!(open.to_text()?.starts_with('0'), "no open packet");
    sink.send(Message::text(format!(r#"40{{"token":"{token}"}}"#))).await?;
    let answer = loop {
        let msg = stream.next().await.ok_or_else(|| anyhow::anyhow!("closed"))??;
        if msg.to_text()? == "2" {
            sink.send(Message::text("3")).await?;
            continue;
        }
        break msg;
    };
    anyhow::ensure!(answer.to_text()?.starts_with("40"), "refused: {answer}");
    connected.fetch_add(1, Ordering::Relaxed);
    drop(permit);
    let mut round = 0usize;
    while let Some(msg) = stream.next().await {
        let Message::Text(text) = msg? else { continue };
        let text = text.as_str();
        if text == "2" {
            sink.send(Message::text("3")).await?;
        } else if text.starts_with(r#"42["world_maintenance_"#) || text.starts_with(r#"42["world.maintenance_"#) {
            // The alias comes first, then the dotted name: time both, the first is the event's
            // arrival. `occurredAt` is found by text, not by parsing (client CPU is shared).
            let arrived = chrono::Utc::now();
            let at = text
                .split_once(r#""occurredAt":""#)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(at, _)| at)
                .unwrap_or_default();
            let at = chrono::DateTime::parse_from_rfc3339(at)?;
            let micros = (arrived - at.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0).max(0);
            let dotted = text.as_bytes().get(9) == Some(&b'.');
            let _ = latencies.send((round, dotted, micros as u64));
            if dotted {
                round += 1;
            }
        }
    }
    Ok(())
}

/// `PUT /api/v1/game-worlds/{world}/maintenance {enabled}`.
async fn toggle(addr: &str, key: &str, world: &str, enabled: bool) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let body = format!(r#"{{"enabled":{enabled}}}"#);
    let request = Request::builder()
        .method("PUT")
        .uri(format!("/api/v1/game-worlds/{world}/maintenance"))
        .header("host", addr)
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(status.is_success(), "toggle: {status} {}", String::from_utf8_lossy(&body));
    Ok(())
}
