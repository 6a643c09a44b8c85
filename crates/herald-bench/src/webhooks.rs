//! `--scenario webhooks`: webhook delivery throughput and latency, end to end.
//!
//! Registers the custom event type `bench.tick` and `--endpoints` webhooks pointing at the
//! shared benchmark receiver (`/work/shared/bench/webhook-receiver`, endpoint k at `/ep/k`),
//! clears the receiver, then publishes `--events` events, one per `POST /api/v1/events` (`--single`) or
//! `--batch` per `POST /api/v1/events/batch`, as fast as `--publishers` connections go or at a fixed `--rate`. Each event's publish
//! request and response times are kept by the event id Herald returns; the receiver records
//! each delivery's arrival time and `webhook-id` header (the event id). When the receiver
//! has every delivery (or `--drain-timeout` runs out) the bench pulls its dump and prints one
//! JSON line: publish rate, delivery rate, latency from publish response to arrival, and
//! duplicates and missing deliveries.
//!
//! Both clocks are this machine's wall clock (`SystemTime`), so latencies are only
//! meaningful with Herald, the receiver and the bench on one host.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, client::conn::http1};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// The custom event type the bench publishes.
const EVENT_TYPE: &str = "bench.tick";

#[derive(clap::Args)]
pub struct WebhookArgs {
    /// (webhooks) The benchmark receiver's address; endpoint k gets `http://ADDR/ep/k`.
    #[arg(long, default_value = "127.0.0.1:9100")]
    receiver: String,
    /// (webhooks) Events to publish.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// (webhooks) Webhook endpoints, each subscribed to every event (deliveries = events x endpoints).
    #[arg(long, default_value_t = 1)]
    endpoints: usize,
    /// (webhooks) Events per `POST /api/v1/events/batch` request (at most 1000).
    #[arg(long, default_value_t = 100)]
    batch: u64,
    /// (webhooks) Publish each event alone with `POST /api/v1/events`, as game servers do
    /// (instead of `--batch` events per `POST /api/v1/events/batch`; needs `--batch 1`).
    #[arg(long)]
    single: bool,
    /// (webhooks) Pad each event's JSON `data` to about this many bytes (0: just `{"n": i}`).
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// (webhooks) Publish at this many events/s (latency run); absent: as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// (webhooks) Concurrent publishing connections, each with one batch in flight.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// (webhooks) Seconds to wait for the last deliveries once publishing is done.
    #[arg(long, default_value_t = 60)]
    drain_timeout: u64,
}

fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    addr: String,
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn { addr: addr.to_owned(), sender })
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut builder = Request::builder().method(method).uri(path).header("host", &self.addr);
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        let request = match body {
            Some(b) => builder.header("content-type", "application/json").body(Full::new(Bytes::from(b)))?,
            None => builder.body(Full::new(Bytes::new()))?,
        };
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// A Herald API call that must succeed; returns its JSON body.
    async fn api(&mut self, method: &str, path: &str, key: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, bytes) = self.call(method, path, Some(key), body.map(|b| b.to_string().into_bytes())).await?;
        anyhow::ensure!(status.is_success(), "{method} {path}: {status}: {}", String::from_utf8_lossy(&bytes));
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

/// What one publishing connection did.
#[derive(Default)]
struct Published {
    /// (event id, request sent, response received), unix ns.
    events: Vec<(String, u64, u64)>,
    failed_events: u64,
    first_error: Option<String>,
    /// How far behind its schedule a batch was sent, at worst (rate runs).
    max_behind: Duration,
}

pub async fn run(addr: &str, key: &str, args: &WebhookArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=1000).contains(&args.batch), "--batch must be 1 to 1000");
    anyhow::ensure!(!args.single || args.batch == 1, "--single publishes one event per request: --batch 1");
    anyhow::ensure!(args.endpoints >= 1 && args.events >= 1 && args.publishers >= 1, "nothing to do");
    let mut receiver = Conn::open(&args.receiver).await.context("is the webhook receiver running?")?;
    let mut api = Conn::open(addr).await?;

    // The event type (already there from an earlier run is fine).
    let body = json!({"name": EVENT_TYPE, "description": "herald-bench webhook delivery benchmark"});
    let (status, bytes) =
        api.call("POST", "/api/v1/event-types", Some(key), Some(body.to_string().into_bytes())).await?;
    anyhow::ensure!(
        status.is_success() || status == StatusCode::CONFLICT,
        "registering {EVENT_TYPE}: {status}: {}",
        String::from_utf8_lossy(&bytes)
    );

    // Endpoints of earlier (or aborted) runs against this receiver would get deliveries too.
    let base = format!("http://{}/ep/", args.receiver);
    let stale = disable_webhooks(&mut api, key, &base).await?;
    if stale > 0 {
        eprintln!("disabled {stale} webhook(s) left by an earlier run");
    }
    let mut hooks = Vec::with_capacity(args.endpoints);
    for k in 0..args.endpoints {
        let body = json!({"url": format!("{base}{k}"), "events": [EVENT_TYPE], "name": format!("herald-bench {k}")});
        let created = api.api("POST", "/api/v1/webhooks", key, Some(body)).await?;
        hooks.push(created["id"].as_str().context("webhook without id")?.to_owned());
    }
    let (status, _) = receiver.call("GET", "/__reset", None, None).await?;
    anyhow::ensure!(status.is_success(), "receiver reset: {status}");

    let published = publish(addr, key, args).await?;

    // Publish times by event id.
    let mut times: HashMap<String, (u64, u64)> = HashMap::with_capacity(args.events as usize);
    let mut failed_events = 0;
    let mut first_error = None;
    let mut max_behind = Duration::ZERO;
    for p in published {
        failed_events += p.failed_events;
        first_error = first_error.or(p.first_error);
        max_behind = max_behind.max(p.max_behind);
        for (id, sent, got) in p.events {
            times.insert(id, (sent, got));
        }
    }
    let events_ok = times.len() as u64;
    let publish_start = times.values().map(|t| t.0).min().unwrap_or(0);
    let publish_end = times.values().map(|t| t.1).max().unwrap_or(0);
    let expected = events_ok * args.endpoints as u64;

    // Wait for the receiver to have them all (its count may include deliveries that are not
    // ours, so the dump has the last word).
    let paths: HashSet<String> = (0..args.endpoints).map(|k| format!("/ep/{k}")).collect();
    let deadline = Instant::now() + Duration::from_secs(args.drain_timeout);
    let mut last_report = Instant::now();
    let (tally, timed_out) = loop {
        let (status, bytes) = receiver.call("GET", "/__stats", None, None).await?;
        anyhow::ensure!(status.is_success(), "receiver stats: {status}");
        let stats: Value = serde_json::from_slice(&bytes)?;
        let have = stats["unique_deliveries"].as_u64().unwrap_or(0);
        let timed_out = Instant::now() >= deadline;
        if have >= expected || timed_out {
            let (status, dump) = receiver.call("GET", "/__dump", None, None).await?;
            anyhow::ensure!(status.is_success(), "receiver dump: {status}");
            let tally = Tally::of(std::str::from_utf8(&dump).context("receiver dump is not UTF-8")?, &times, &paths);
            if tally.first_arrival.len() as u64 >= expected || timed_out {
                break (tally, timed_out);
            }
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            eprintln!("waiting for deliveries: {have} of {expected}");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Leave no live endpoint behind: the next run registers its own. On a new connection:
    // the first one sat idle through a long run, past the server's idle timeout.
    let mut api = Conn::open(addr).await?;
    for id in &hooks {
        api.api("POST", &format!("/api/v1/webhooks/{id}/disable"), key, None).await?;
    }

    let Tally { first_arrival, received, foreign } = tally;
    let delivered = first_arrival.len() as u64;
    let duplicates = received - foreign - delivered;

    // Latency: arrival minus the publish response (the commit happened before it), and
    // minus the publish request (an upper bound).
    let mut from_response = Histogram::<u64>::new(3)?;
    let mut from_request = Histogram::<u64>::new(3)?;
    let mut negative = 0u64;
    let (mut first, mut last) = (u64::MAX, 0u64);
    for ((id, _), &arrival) in &first_arrival {
        let (sent, got) = times[id];
        first = first.min(arrival);
        last = last.max(arrival);
        if arrival < got {
            negative += 1;
        }
        from_response.record(arrival.saturating_sub(got) / 1000)?;
        from_request.record(arrival.saturating_sub(sent) / 1000)?;
    }
    let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9;
    let rate = |n: u64, s: f64| if s > 0.0 { (n as f64 / s).round() } else { 0.0 };
    let ms = |h: &Histogram<u64>, q: f64| (h.value_at_quantile(q) as f64 / 1000.0 * 100.0).round() / 100.0;
    let publish_s = secs(publish_start, publish_end);
    let delivery_s = if delivered > 0 { secs(first, last) } else { 0.0 };
    let missing = expected - delivered;
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    // In this order (serde_json's maps sort their keys).
    let fields: Vec<(&str, Value)> = vec![
        ("mode", json!(if args.rate.is_some() { "rate" } else { "throughput" })),
        ("endpoints", json!(args.endpoints)),
        ("events", json!(events_ok)),
        ("publish_failed", json!(failed_events)),
        ("request", json!(if args.single { "POST /api/v1/events" } else { "POST /api/v1/events/batch" })),
        ("batch", json!(args.batch)),
        ("payload_bytes", json!(args.payload_bytes)),
        ("publishers", json!(args.publishers)),
        ("target_rate", json!(args.rate)),
        ("publish_s", json!(round3(publish_s))),
        ("publish_rate", json!(rate(events_ok, publish_s))),
        ("publish_behind_max_ms", json!(max_behind.as_millis() as u64)),
        ("deliveries_expected", json!(expected)),
        ("delivered", json!(delivered)),
        ("duplicates", json!(duplicates)),
        ("missing", json!(missing)),
        ("foreign", json!(foreign)),
        ("delivery_s", json!(round3(delivery_s))),
        ("delivery_rate", json!(rate(delivered, delivery_s))),
        ("end_to_end_rate", json!(rate(delivered, if delivered > 0 { secs(publish_start, last) } else { 0.0 }))),
        ("drain_after_publish_s", json!(if delivered > 0 { round3(secs(publish_end, last)) } else { 0.0 })),
        ("latency_p50_ms", json!(ms(&from_response, 0.50))),
        ("latency_p90_ms", json!(ms(&from_response, 0.90))),
        ("latency_p99_ms", json!(ms(&from_response, 0.99))),
        ("latency_max_ms", json!(from_response.max() as f64 / 1000.0)),
        ("latency_from_request_p50_ms", json!(ms(&from_request, 0.50))),
        ("latency_from_request_p99_ms", json!(ms(&from_request, 0.99))),
        ("arrived_before_publish_response", json!(negative)),
        ("timed_out", json!(timed_out)),
    ];
    let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", Value::from(*k))).collect();
    println!("{{{}}}", fields.join(","));
    if let Some(e) = first_error {
        eprintln!("first publish error: {e}");
    }
    anyhow::ensure!(failed_events == 0, "{failed_events} events failed to publish");
    anyhow::ensure!(missing == 0, "{missing} of {expected} deliveries missing after the drain timeout");
    Ok(())
}

/// The receiver's records, matched with what was published.
struct Tally {
    /// First arrival (unix ns) of each (event id, endpoint path) published in this run.
    first_arrival: HashMap<(String, String), u64>,
    /// Requests received in all, repeats included.
    received: u64,
    /// Received requests for events or endpoints not of this run.
    foreign: u64,
}

impl Tally {
    /// From `/__dump`: lines `arrival_unix_ns \t id \t path`.
    fn of(dump: &str, times: &HashMap<String, (u64, u64)>, paths: &HashSet<String>) -> Tally {
        let mut tally = Tally { first_arrival: HashMap::with_capacity(times.len()), received: 0, foreign: 0 };
        for line in dump.lines() {
            let mut cols = line.split('\t');
            let (Some(ns), Some(id), Some(path)) = (cols.next(), cols.next(), cols.next()) else { continue };
            let Ok(ns) = ns.parse::<u64>() else { continue };
            tally.received += 1;
            if !times.contains_key(id) || !paths.contains(path) {
                tally.foreign += 1;
                continue;
            }
            let t = tally.first_arrival.entry((id.to_owned(), path.to_owned())).or_insert(ns);
            *t = (*t).min(ns);
        }
        tally
    }
}

/// Disables every active webhook whose URL starts with `prefix`. Returns how many.
async fn disable_webhooks(api: &mut Conn, key: &str, prefix: &str) -> anyhow::Result<usize> {
    let mut ids = Vec::new();
    for page in 1.. {
        let list = api.api("GET", &format!("/api/v1/webhooks?limit=100&page={page}"), key, None).await?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        for w in &items {
            if w["active"].as_bool() == Some(true) && w["url"].as_str().is_some_and(|u| u.starts_with(prefix)) {
                ids.push(w["id"].as_str().unwrap_or_default().to_owned());
            }
        }
        if items.len() < 100 {
            break;
        }
    }
    for id in &ids {
        api.api("POST", &format!("/api/v1/webhooks/{id}/disable"), key, None).await?;
    }
    Ok(ids.len())
}

/// Publishes all events over `--publishers` connections; batch k goes out at
/// `k * batch / rate` seconds after the start when a rate is set.
async fn publish(addr: &str, key: &str, args: &WebhookArgs) -> anyhow::Result<Vec<Published>> {
    let batches = args.events.div_ceil(args.batch);
    let next = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut workers = Vec::with_capacity(args.publishers);
    for _ in 0..args.publishers {
        let mut conn = Conn::open(addr).await?;
        let (key, next) = (key.to_owned(), next.clone());
        let (events, batch, rate, single, pad) = (args.events, args.batch, args.rate, args.single, args.payload_bytes);
        workers.push(tokio::spawn(async move {
            let mut out = Published::default();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= batches {
                    break;
                }
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64((k * batch) as f64 / rate);
                    tokio::time::sleep_until(due).await;
                    out.max_behind = out.max_behind.max(tokio::time::Instant::now().saturating_duration_since(due));
                }
                let first = k * batch;
                let count = batch.min(events - first);
                let items: Vec<Value> =
                    (first..first + count).map(|i| json!({"type": EVENT_TYPE, "data": data(i, pad)})).collect();
                let (path, body) = match items.as_slice() {
                    [one] if single => ("/api/v1/events", one.to_string()),
                    _ => ("/api/v1/events/batch", json!({ "events": items }).to_string()),
                };
                let sent = unix_ns();
                let (status, bytes) = conn.call("POST", path, Some(&key), Some(body.into_bytes())).await?;
                let got = unix_ns();
                if !status.is_success() {
                    out.failed_events += count;
                    out.first_error.get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&bytes)));
                    continue;
                }
                let answer: Value = serde_json::from_slice(&bytes)?;
                if single {
                    if let Some(id) = answer["id"].as_str() {
                        out.events.push((id.to_owned(), sent, got));
                    }
                    continue;
                }
                for item in answer["items"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    if let Some(id) = item["event"]["id"].as_str() {
                        out.events.push((id.to_owned(), sent, got));
                    }
                }
            }
            anyhow::Ok(out)
        }));
    }
    let mut out = Vec::with_capacity(workers.len());
    for w in workers {
        out.push(w.await??);
    }
    Ok(out)
}

/// Event `i`'s data: `{"n": i}`, padded with a `pad` string to about `bytes` bytes of JSON.
fn data(i: u64, bytes: usize) -> Value {
    let bare = json!({ "n": i });
    let room = bytes.saturating_sub(bare.to_string().len() + r#","pad":"""#.len());
    if room == 0 { bare } else { json!({ "n": i, "pad": "x".repeat(room) }) }
}
