//! `herald-bench`: drives one scenario against a running Herald for a fixed time over N
//! keep-alive HTTP/1.1 connections and prints throughput and latency percentiles as JSON.
//! `--scenario webhooks` instead measures webhook delivery end to end (see [`webhooks`]).
//!
//! Hand-written rather than `oha`/`wrk` because the write scenario needs a distinct body per
//! request (usernames are unique) and because it keeps the numbers reproducible from
//! `cargo run` alone.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

mod sockets;
mod webhooks;

#[derive(Clone, Copy, ValueEnum)]
enum Scenario {
    /// `GET /api/v1/game-worlds` (first page of 20).
    GetWorlds,
    /// `POST /api/v1/users` with a new username each time.
    PostUsers,
    /// `POST /api/v1/chat/channels/{id}/messages` to one channel (the first of `--channels-file`).
    ChatSendOne,
    /// The same, each message to the next channel of `--channels-file` in turn.
    ChatSendSpread,
    /// `GET /api/v1/chat/channels/{id}/messages?limit=50` on the first channel.
    ChatHistory,
    /// Publish events and time their webhook deliveries to the benchmark receiver
    /// (uses the `(webhooks)` options; `--connections` and `--seconds` do not apply).
    Webhooks,
    /// Hold player sockets and time the fan-out of maintenance events to all of them
    /// (uses the `(sockets)` options).
    Sockets,
    /// `GET /api/v1/client/bootstrap?channel=PC&version=1.0.0&lang=en` with a client key
    /// (`--key hc_...`), each time in full: a client's first start.
    ClientBootstrap,
    /// The same, sending `If-None-Match` with the `ETag` the connection last received: a
    /// client starting again with its cached answer (counts 304s in `not_modified`).
    ClientBootstrapRevalidate,
}

/// The bootstrap request of the client scenarios.
const BOOTSTRAP: &str = "/api/v1/client/bootstrap?channel=PC&version=1.0.0&lang=en";

#[derive(Parser)]
struct Args {
    /// Herald's address, e.g. 127.0.0.1:8080.
    #[arg(long)]
    addr: String,
    /// An API key with the scopes the scenario needs.
    #[arg(long, env = "HERALD_BENCH_KEY")]
    key: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Concurrent connections (each keeps one request in flight).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds to run after a 1 s warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Chat scenarios: a file of channel ids, one per line.
    #[arg(long)]
    channels_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    webhooks: webhooks::WebhookArgs,
    #[command(flatten)]
    sockets: sockets::SocketArgs,
}

struct Totals {
    ok: AtomicU64,
    failed: AtomicU64,
    /// 304 answers (counted in `ok` too).
    not_modified: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Scenario::Webhooks = args.scenario {
        return webhooks::run(&args.addr, &args.key, &args.webhooks).await;
    }
    if let Scenario::Sockets = args.scenario {
        return sockets::run(&args.addr, &args.key, &args.sockets).await;
    }
    let channels: Arc<Vec<String>> = Arc::new(match &args.channels_file {
        Some(path) => {
            std::fs::read_to_string(path)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
        }
        None => Vec::new(),
    });
    if matches!(args.scenario, Scenario::ChatSendOne | Scenario::ChatSendSpread | Scenario::ChatHistory) {
        anyhow::ensure!(!channels.is_empty(), "chat scenarios need --channels-file with at least one channel id");
    }
    let totals = Arc::new(Totals { ok: AtomicU64::new(0), failed: AtomicU64::new(0), not_modified: AtomicU64::new(0) });
    let warmup_end = Instant::now() + Duration::from_secs(1);
    let end = warmup_end + Duration::from_secs(args.seconds);
    let mut workers = Vec::new();
    for worker in 0..args.connections {
        let (addr, key, scenario, totals) = (args.addr.clone(), args.key.clone(), args.scenario, totals.clone());
        let channels = channels.clone();
        workers.push(tokio::spawn(async move {
            run_worker(worker, &addr, &key, scenario, &channels, warmup_end, end, &totals).await
        }));
    }
    let mut histogram = Histogram::<u64>::new(3)?;
    for w in workers {
        histogram.add(w.await??)?;
    }
    let ok = totals.ok.load(Ordering::Relaxed);
    let failed = totals.failed.load(Ordering::Relaxed);
    let not_modified = totals.not_modified.load(Ordering::Relaxed);
    let secs = args.seconds as f64;
    println!(
        "{}",
        serde_json::json!({
            "requests": ok + failed,
            "failed": failed,
            "requests_per_s": (ok as f64 / secs).round(),
            "not_modified": not_modified,
            "not_modified_rate": if ok == 0 { 0.0 } else { (not_modified as f64 / ok as f64 * 1000.0).round() / 1000.0 },
            "p50_ms": histogram.value_at_quantile(0.50) as f64 / 1000.0,
            "p99_ms": histogram.value_at_quantile(0.99) as f64 / 1000.0,
            "max_ms": histogram.max() as f64 / 1000.0,
            "connections": args.connections,
            "seconds": args.seconds,
        })
    );
    anyhow::ensure!(failed == 0, "{failed} requests failed");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_worker(
    worker: usize,
    addr: &str,
    key: &str,
    scenario: Scenario,
    channels: &[String],
    warmup_end: Instant,
    end: Instant,
    totals: &Totals,
) -> anyhow::Result<Histogram<u64>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut n: u64 = 0;
    // The ETag this connection last received (revalidating scenario).
    let mut etag: Option<hyper::header::HeaderValue> = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        n += 1;
        let key_header = match scenario {
            Scenario::ClientBootstrap | Scenario::ClientBootstrapRevalidate => "x-client-key",
            _ => "x-api-key",
        };
        let builder = Request::builder().header("host", addr).header(key_header, key);
        let request = match scenario {
            Scenario::ClientBootstrap => builder.method("GET").uri(BOOTSTRAP).body(Full::new(Bytes::new()))?,
            Scenario::ClientBootstrapRevalidate => {
                let builder = match &etag {
                    Some(tag) => builder.header("if-none-match", tag.clone()),
                    None => builder,
                };
                builder.method("GET").uri(BOOTSTRAP).body(Full::new(Bytes::new()))?
            }
            Scenario::GetWorlds => builder.method("GET").uri("/api/v1/game-worlds").body(Full::new(Bytes::new()))?,
            Scenario::Webhooks | Scenario::Sockets => unreachable!("run by their own modules"),
            Scenario::ChatSendOne | Scenario::ChatSendSpread => {
                let channel = match scenario {
                    Scenario::ChatSendSpread => &channels[(worker + n as usize * 7919) % channels.len()],
                    _ => &channels[0],
                };
                let body =
                    format!(r#"{{"text":"message {n} from bench worker {worker}: gg, see you in the next round"}}"#);
                builder
                    .method("POST")
                    .uri(format!("/api/v1/chat/channels/{channel}/messages"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))?
            }
            Scenario::ChatHistory => builder
                .method("GET")
                .uri(format!("/api/v1/chat/channels/{}/messages?limit=50", channels[0]))
                .body(Full::new(Bytes::new()))?,
            Scenario::PostUsers => {
                let body =
                    format!(r#"{{"username":"bench_{worker}_{n}_{}","email":"b{n}@example.com"}}"#, std::process::id());
                builder
                    .method("POST")
                    .uri("/api/v1/users")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))?
            }
        };
        sender.ready().await?;
        let started = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        if let Some(tag) = response.headers().get("etag") {
            etag = Some(tag.clone());
        }
        response.into_body().collect().await?;
        let elapsed = started.elapsed();
        if started >= warmup_end {
            if status == hyper::StatusCode::NOT_MODIFIED {
                totals.ok.fetch_add(1, Ordering::Relaxed);
                totals.not_modified.fetch_add(1, Ordering::Relaxed);
            } else if status.is_success() {
                totals.ok.fetch_add(1, Ordering::Relaxed);
            } else {
                totals.failed.fetch_add(1, Ordering::Relaxed);
            }
            histogram.record(elapsed.as_micros() as u64)?;
        }
    }
    Ok(histogram)
}
