//! The accept loop and each connection's service (hyper-util's builder).

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
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
    sync::{Notify, OwnedSemaphorePermit, watch},
};
use tower::ServiceExt;

use super::{Connections, Limits, StallGuard};

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
}
