//! Assembles the server: the router with its middleware over the shared state
//! (`crate::state`), and serving with graceful shutdown.

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::DefaultBodyLimit, http::HeaderName};
use tokio::net::TcpListener;
use tower_http::{
    LatencyUnit,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer},
};

use crate::{
    api,
    config::Config,
    domain::bootstrap::{self, Bootstrapped},
    realtime,
    state::AppState,
    store::Store,
    webhooks::{Clock, dispatcher::Dispatcher},
};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The router, and (when `realtime.enabled`) the socket.io gateway mounted on it, whose feed
/// [`Server::run`] starts.
pub fn router(state: AppState) -> (Router, Option<(socketioxide::SocketIo, Arc<realtime::Gateway>)>) {
    let config = &state.config;
    let gateway = config.realtime.enabled.then(|| realtime::layer(state.clone()));
    let (documented, spec) = api::openapi::documented_routes_with(|client| api::client::layers(client, &state));
    let mut router = documented
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", spec))
        .merge(api::ops::router())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.http.body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(config.http.body_limit_bytes, api::ops::body_limit))
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_secs(config.http.request_timeout_secs),
            api::ops::deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(state.store.clone(), api::ops::track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Millis))
                .on_failure(DefaultOnFailure::new().level(tracing::Level::ERROR).latency_unit(LatencyUnit::Millis)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state);
    let gateway = gateway.map(|(layer, io, gw)| {
        // Outside the HTTP layers: a socket lives longer than the request timeout.
        router = std::mem::take(&mut router).layer(layer);
        (io, gw)
    });
    (router, gateway)
}

/// The span of one request. The log line written when it ends carries these fields with the
/// status and latency; the tenant (`org`, `project`) and `actor` (`key:<id>`, `admin:<id>`)
/// are filled in once the caller is known (`api::extract`). Never a header
/// value or query string: those may hold credentials.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |p| p.as_str());
    tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        request_id,
        org = tracing::field::Empty,
        project = tracing::field::Empty,
        actor = tracing::field::Empty,
    )
}

/// A server ready to run: bound, migrated, bootstrapped.
pub struct Server {
    pub listener: TcpListener,
    pub state: AppState,
    /// Set on the very first start only: the defaults created and the admin key to show.
    pub bootstrapped: Option<Bootstrapped>,
}

impl Server {
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        Self::build_with(config, Clock::System).await
    }

    /// Like [`Server::build`], with the clock the dispatcher schedules by (tests move it by hand).
    pub async fn build_with(config: Config, clock: Clock) -> anyhow::Result<Server> {
        let store = Store::connect(&config).await?;
        store.migrate().await?;
        crate::domain::versions::backfill_version_keys(&store).await?;
        let bootstrapped = bootstrap::bootstrap(&store).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let state = AppState::new(config, store, clock).await?;
        Ok(Server { listener, state, bootstrapped })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves (and, if configured, dispatches webhooks) until `shutdown` resolves, then stops
    /// accepting, lets in-flight requests and deliveries finish, and closes the database.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = self.state.clone();
        let dispatcher = state.config.webhooks.dispatcher.then(|| {
            Dispatcher::new(
                state.store.clone(),
                state.sender.clone(),
                state.config.webhooks.clone(),
                state.clock.clone(),
            )
            .with_liveness(state.dispatcher.clone())
            .spawn()
        });
        let upkeep = tokio::spawn(upkeep(state.clone()));
        let scheduler = tokio::spawn(crate::scheduler::run(state.store.clone(), state.clock.clone()));
        let (router, gateway) = router(self.state);
        let (stop_feed, feed_stopped) = tokio::sync::watch::channel(false);
        let feed = gateway.map(|(io, gw)| realtime::feed::spawn(io, gw, feed_stopped));
        crate::net::serve(
            self.listener,
            router,
            crate::net::Limits::new(&state.config),
            state.connections.clone(),
            shutdown,
        )
        .await;
        upkeep.abort();
        scheduler.abort();
        let _ = stop_feed.send(true);
        if let Some(feed) = feed {
            let _ = feed.await;
        }
        if let Some(d) = dispatcher {
            d.shutdown().await;
        }
        state.store.close().await;
        Ok(())
    }
}

/// Housekeeping of in-memory state every few seconds: histogram samples folded into
/// buckets, idle rate-limit buckets and old login failures forgotten.
async fn upkeep(state: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        state.store.metrics().upkeep();
        state.rate_limiter.forget_idle();
        state.client.upkeep();
        state.login_throttle.forget_idle(state.clock.now());
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM, quietly: for commands that follow something until
/// stopped (`events tail`), where the server's "shutting down" line would be noise.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// signal that comes between the two (a supervisor's SIGTERM right after "listening") is then
/// kept for the future instead of killing the process.
pub fn interrupted() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let int = signal(SignalKind::interrupt()).ok();
        let term = signal(SignalKind::terminate()).ok();
        async fn next(signal: Option<Signal>) {
            match signal {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        async move {
            tokio::select! { () = next(int) => {}, () = next(term) => {} }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// [`interrupted`], then says that the server is stopping.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let signal = interrupted();
    async move {
        signal.await;
        tracing::info!("shutting down: finishing in-flight requests");
    }
}
