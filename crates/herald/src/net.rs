//! Serving connections: the accept loop and each connection's limits.
//!
//! - **A cap on open connections** (`http.max_connections`, by default what the open-file
//!   limit leaves after a reserve for the database and webhook deliveries): past it a new
//!   connection is closed at once, logged and counted, so sockets can never use up the file
//!   descriptors the server needs to answer anyone.
//! - **Accept errors never stop the server**: `EMFILE` and the like are logged and counted,
//!   and accepting resumes after a short back-off.
//! - **A request head must arrive in time** (`http.header_read_timeout_secs`, hyper's HTTP/1
//!   header timer): a client that opens a connection and sends nothing, or one header line
//!   every few seconds (slowloris), is disconnected.
//! - **Idle connections close** (`http.idle_timeout_secs`): no request in progress for that
//!   long, on HTTP/1.1 and HTTP/2 alike.
//! - **Stalled writes fail** (`http.write_stall_timeout_secs`, [`StallGuard`]).
//!
//! axum's `serve` sets none of these and offers no way to, so the loop is here, built from
//! hyper-util's connection builder as axum's is (same protocols, HTTP/2 WebSockets, upgrades,
//! graceful shutdown).

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use axum::{Router, body::Body, extract::ConnectInfo};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore, watch},
    time::Sleep,
};
use tower::ServiceExt;

use crate::config::Config;

/// The limits every connection is served with (see `http.*` in docs/CONFIG.md).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_stall_timeout: Duration,
}

impl Limits {
    pub fn new(config: &Config) -> Limits {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        Limits {
            header_read_timeout: secs(config.http.header_read_timeout_secs),
            idle_timeout: secs(config.http.idle_timeout_secs),
            write_stall_timeout: secs(config.http.write_stall_timeout_secs),
        }
    }
}

/// File descriptors kept for everything but client connections: a margin for the process
/// (logs, the SQLite files, DNS), plus, per database connection, the connection (SQLite opens
/// the database, its WAL and its shared-memory file: three), plus one per webhook delivery
/// in flight.
fn reserved_descriptors(config: &Config) -> u64 {
    64 + 3 * (u64::from(config.database.max_connections) + 1) + config.webhooks.max_in_flight as u64
}

/// The connection cap in effect: `http.max_connections`, or when 0 what the process's
/// open-file limit leaves after [`reserved_descriptors`] (at least half of the limit).
pub fn connection_cap(config: &Config) -> usize {
    let configured = config.http.max_connections;
    let Some(files) = open_file_limit() else {
        return if configured == 0 { 10_000 } else { configured };
    };
    let auto = files.saturating_sub(reserved_descriptors(config)).max(files / 2).max(1);
    let auto = usize::try_from(auto).unwrap_or(usize::MAX);
    match configured {
        0 => auto,
        n if n > auto => {
            tracing::warn!(
                max_connections = n,
                open_file_limit = files,
                "http.max_connections is above what the open-file limit leaves ({auto}): accepting may fail with \
                 `Too many open files` before the cap is reached"
            );
            n
        }
        n => n,
    }
}

#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// The node's connections: the cap's permits and the counters `GET /metrics` reads.
pub struct Connections {
    permits: Arc<Semaphore>,
    cap: usize,
    /// Connections closed at once because the cap was reached.
    pub refused: AtomicU64,
    /// Failed `accept` calls (other than a client resetting before it was accepted).
    pub accept_errors: AtomicU64,
}

impl Connections {
    pub fn new(cap: usize) -> Connections {
        let cap = cap.clamp(1, Semaphore::MAX_PERMITS);
        Connections {
            permits: Arc::new(Semaphore::new(cap)),
            cap,
            refused: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Client connections open now (a WebSocket counts until it closes).
    pub fn open(&self) -> usize {
        self.cap - self.permits.available_permits()
    }
}

/// Where connections come from: a TCP listener, or in unit tests a scripted source.
pub trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    type Io = TcpStream;
    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        TcpListener::accept(self).await
    }
}

/// Errors that concern one client, not the listener: nothing to wait for.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Back-off after a failed accept: from 10 ms, doubling, up to 1 s (hyper 0.14's and axum's
/// choice for `EMFILE`: descriptors come back as connections close).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The cap's warning is repeated at most this often while connections are being refused.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on connections from `listener` until `shutdown` resolves; then stops
/// accepting, lets every connection finish its requests (HTTP/1 closes when idle, HTTP/2
/// sends GOAWAY), and returns. Upgraded connections (WebSockets) are not waited for, as
/// with axum's `serve`.
pub async fn serve<A: Accept>(
    mut listener: A,
    router: Router,
    limits: Limits,
    connections: Arc<Connections>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(());
    // Every connection task holds a receiver; `closed()` resolves when the last one ends.
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut refused_logged: Option<(Instant, u64)> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (io, peer) = match accepted {
            Ok(conn) => {
                backoff = ACCEPT_BACKOFF_MIN;
                conn
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                connections.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot accept a connection");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut shutdown => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Ok(permit) = connections.permits.clone().try_acquire_owned() else {
            // Closed at once: holding it (to answer 503) would hold the descriptor the cap
            // is there to keep free.
            drop(io);
            let refused = connections.refused.fetch_add(1, Ordering::Relaxed) + 1;
            let now = Instant::now();
            if refused_logged.is_none_or(|(at, _)| now.duration_since(at) >= REFUSED_LOG_EVERY) {
                let since = refused - refused_logged.map_or(0, |(_, n)| n);
                tracing::warn!(
                    max_connections = connections.cap,
                    refused = since,
                    "connection limit reached (http.max_connections): new connections are closed until some end"
                );
                refused_logged = Some((now, refused));
            }
            continue;
        };
        let io = Counted { inner: StallGuard::new(io, limits.write_stall_timeout), _permit: permit };
        tokio::spawn(serve_connection(io, peer, router.clone(), limits, stop_rx.clone(), done_rx.clone()));
    }
    drop(listener);
    drop(done_rx);
    let _ = stop_tx.send(());
    done_tx.closed().await;
}

/// One connection: hyper's HTTP/1 or HTTP/2 server, with the idle timer and graceful
/// shutdown around it.
async fn serve_connection<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: I,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<()>,
    _done: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::default());
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = requests.begin();
        let mut req = req.map(Body::new);
        // What `into_make_service_with_connect_info` would insert: `/metrics` reads it.
        req.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
        let call = router.clone().oneshot(req);
        async move {
            let response = call.await?;
            // The request counts as in progress until its response body is sent.
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &busy;
                    frame
                }))
            }))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's header timer runs whenever the server waits for a request head: from accept,
    // and between requests of a kept-alive connection.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    // The CONNECT protocol carries WebSockets over HTTP/2 (as axum enables it).
    builder.http2().timer(TokioTimer::new()).enable_connect_protocol();
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    // hyper's header timer starts only once the protocol is known, and the auto builder
    // waits for the first 24 bytes (the HTTP/2 preface's length) to know it, with no timeout:
    // a client sending nothing, or a few bytes, would hold the connection. So the first
    // request must have started within the header timeout, whatever the protocol.
    let first_request = tokio::time::sleep(limits.header_read_timeout);
    let mut first_request = std::pin::pin!(first_request);
    let mut awaiting_first = true;
    let mut closing = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                break;
            }
            () = &mut first_request, if awaiting_first => {
                awaiting_first = false;
                if !activity.started.load(Ordering::Acquire) {
                    tracing::debug!(%peer, "no request head in time: closing the connection");
                    break;
                }
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.idle_for(limits.idle_timeout), if !closing => {
                tracing::debug!(%peer, "closing an idle connection");
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Requests in progress on one connection, for the idle timer.
#[derive(Default)]
struct Activity {
    /// A request has begun on this connection.
    started: AtomicBool,
    in_flight: AtomicUsize,
    changed: Notify,
}

/// A request in progress; dropped when its response body is finished (or abandoned).
struct Busy(Arc<Activity>);

impl Activity {
    fn begin(self: &Arc<Self>) -> Busy {
        self.started.store(true, Ordering::Release);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        Busy(self.clone())
    }

    /// Resolves once no request has been in progress for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the count is read, so a change in between is not missed.
            changed.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                if tokio::time::timeout(timeout, changed).await.is_err() {
                    return;
                }
            } else {
                changed.await;
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// A client connection holding its place under the cap until it closes (an upgraded
/// WebSocket takes its IO along, place included).
struct Counted<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The client's address, for handlers that ask (`ConnectInfo<PeerAddr>`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// A stream whose writes fail with `TimedOut` once one has waited `timeout` without the
/// peer taking a byte, and keep failing after that (the connection is then only good for
/// closing). Time spent idle, with nothing to write, does not count.
///
/// Why: a client that stops reading (a frozen game client, a dead NAT mapping) fills the
/// kernel's socket buffers, and the task writing to it then waits forever. engineioxide's
/// WebSocket writer waits inside such a write, where it does not see its session being closed
/// by the heartbeat, so without a bound the socket would never be disconnected and would keep
/// its buffers and its place in the per-project connection count. tokio and hyper offer read
/// timeouts, not a bound on a stalled write, hence this small wrapper.
pub struct StallGuard<S> {
    inner: S,
    timeout: Duration,
    /// Started when a write first waits; cleared when a write goes through.
    stalled: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl<S> StallGuard<S> {
    pub fn new(inner: S, timeout: Duration) -> StallGuard<S> {
        StallGuard { inner, timeout, stalled: None, failed: false }
    }

    /// Maps a write's poll: progress resets the clock, waiting runs it.
    fn guard<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(sleep.as_mut().poll(cx));
                self.failed = true;
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")))
            }
        }
    }

    fn refused<T>() -> Poll<io::Result<T>> {
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.failed {
            return Self::refused();
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.failed {
            return Self::refused();
        }
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.failed {
            return Self::refused();
        }
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The client's address: the connection's, or, when the connection comes from a trusted
/// proxy (`http.trusted_proxies`), the last address of `X-Forwarded-For` that is not itself a trusted proxy (each
/// proxy appends the address it was called from; only the entries trusted proxies appended
/// are believed, so a client cannot choose its address by sending the header itself).
pub fn client_address(
    peer: Option<std::net::IpAddr>,
    headers: &http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> Option<std::net::IpAddr> {
    use std::net::IpAddr;
    // An IPv4 peer on a dual-stack socket shows as `::ffff:a.b.c.d`: compare it as IPv4.
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    let hops = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    for hop in hops.iter().rev().flat_map(|v| v.rsplit(',')) {
        let hop = hop.trim();
        let Some(ip) = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        else {
            // Garbage: what lies beyond it cannot be told apart from what a client made up.
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    /// Fails `errors` times with `EMFILE`, then hands out `conn`, then waits forever.
    struct Scripted {
        errors: usize,
        conn: Option<DuplexStream>,
    }

    impl Accept for Scripted {
        type Io = DuplexStream;
        async fn accept(&mut self) -> io::Result<(DuplexStream, SocketAddr)> {
            if self.errors > 0 {
                self.errors -= 1;
                return Err(io::Error::from_raw_os_error(24)); // EMFILE: too many open files
            }
            match self.conn.take() {
                Some(conn) => Ok((conn, SocketAddr::from(([127, 0, 0, 1], 9)))),
                None => std::future::pending().await,
            }
        }
    }

    #[tokio::test]
    async fn accept_errors_are_counted_and_accepting_goes_on() {
        let (server_end, mut client) = tokio::io::duplex(4096);
        let connections = Arc::new(Connections::new(8));
        let router = Router::new().route("/", axum::routing::get(|| async { "still here" }));
        let limits = Limits {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            write_stall_timeout: Duration::from_secs(5),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve(
            Scripted { errors: 3, conn: Some(server_end) },
            router,
            limits,
            connections.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        client.write_all(b"GET / HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n\r\n").await.expect("write");
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("still here"), "{answer}");
        assert_eq!(connections.accept_errors.load(Ordering::Relaxed), 3);
        let _ = stop.send(());
        served.await.expect("serve returns after shutdown");
    }

    #[tokio::test]
    async fn a_write_the_peer_never_takes_fails_and_later_ones_too() {
        // A duplex pipe with a 16-byte buffer whose far end never reads.
        let (near, _far) = tokio::io::duplex(16);
        let mut guarded = StallGuard::new(near, Duration::from_millis(50));
        guarded.write_all(&[0; 16]).await.expect("fits in the buffer");
        let err = guarded.write_all(&[0; 1]).await.expect_err("the buffer is full and nobody reads");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(guarded.write_all(&[0; 1]).await.is_err(), "the connection stays failed");
    }

    // On paused time the reader's 5 ms naps and the 50 ms limit are exact: on a loaded machine
    // (CI running the whole suite) real sleeps overshoot and cut a reader that was keeping up.
    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut() {
        let (near, mut far) = tokio::io::duplex(16);
        let reader = tokio::spawn(async move {
            let mut buf = [0; 8];
            let mut total = 0;
            while total < 256 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                total += tokio::io::AsyncReadExt::read(&mut far, &mut buf).await.expect("read");
            }
        });
        // Each write waits for the reader, but never 50 ms without progress.
        let mut guarded = StallGuard::new(near, Duration::from_millis(50));
        guarded.write_all(&[0; 256]).await.expect("a reader taking bytes is never cut");
        reader.await.expect("reader");
    }
}
