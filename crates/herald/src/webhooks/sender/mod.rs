//! Sending one signed webhook request, and the SSRF guard of the production profile.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{
        Client,
        connect::{HttpConnector, dns::Name},
    },
    rt::{TokioExecutor, TokioTimer},
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::config::{WebhookProfile, WebhooksConfig};

/// Keep at most this much of a response body in the attempt log.
pub const MAX_LOGGED_BODY: usize = 4096;

mod guard;
pub use guard::*;

/// One request to send.
pub struct Outgoing<'a> {
    pub url: &'a str,
    pub body: Bytes,
    /// `webhook-id`: the event id, the same on every retry.
    pub msg_id: &'a str,
    /// Which headers sign it.
    pub format: crate::store::webhooks::WebhookFormat,
    /// The current secret, then the previous one while a rotation is under way.
    pub secrets: Vec<&'a str>,
    pub headers: &'a BTreeMap<String, String>,
    pub timeout: Duration,
}

/// What came back (or did not).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Option<u16>,
    pub latency: Duration,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub error: Option<String>,
    pub retry_after: Option<super::RetryAfter>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The webhook HTTP client: hyper's pooled client used directly. (reqwest, used before, wraps
/// the same client in redirect and retry layers Herald does not use, and parsed each request's
/// URL three times; that was a tenth of Herald's CPU per delivery.)
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
    guard: Arc<Guard>,
}

/// Whether a custom header may not use `name` (any case): one of HTTP itself that the
/// sender sets, or one of any format's signing headers.
pub fn is_reserved_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["content-type", "content-length", "host", "user-agent"].contains(&name.as_str())
        || super::signing::SIGNING_HEADERS.contains(&name.as_str())
}

impl Sender {
    pub fn new(config: &WebhooksConfig) -> anyhow::Result<Sender> {
        Self::with_guard(config, Guard::new(config)?)
    }

    fn with_guard(config: &WebhooksConfig, guard: Guard) -> anyhow::Result<Sender> {
        let guard = Arc::new(guard);
        let mut http = HttpConnector::new_with_resolver(GuardedResolver(guard.clone()));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            // Per host, not per endpoint: several endpoints often share one host, so keep as
            // many idle connections as there can be sends in flight (else they churn).
            .pool_max_idle_per_host(config.max_in_flight.max(1))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(tls);
        Ok(Sender { client, guard })
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    pub async fn send(&self, out: Outgoing<'_>) -> Outcome {
        let started = Instant::now();
        let timeout = out.timeout;
        let result = match tokio::time::timeout(timeout, self.exchange(out)).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
        };
        match result {
            Ok(mut outcome) => {
                outcome.latency = started.elapsed();
                outcome
            }
            Err(error) => Outcome {
                status: None,
                latency: started.elapsed(),
                headers: BTreeMap::new(),
                body: None,
                error: Some(error),
                retry_after: None,
            },
        }
    }

    /// The request and its answer, up to [`MAX_LOGGED_BODY`] of the body; an error is the
    /// text for the attempt log. The caller bounds it with the endpoint's timeout.
    async fn exchange(&self, out: Outgoing<'_>) -> Result<Outcome, String> {
        let uri = parse_uri(out.url)?;
        self.guard.check_target(&uri).map_err(|why| format!("refused: {why}"))?;
        let mut request = Request::post(uri);
        let headers = request.headers_mut().ok_or("request failed: invalid request")?;
        for (name, value) in out.headers {
            if is_reserved_header(name) {
                continue;
            }
            let name =
                HeaderName::try_from(name.as_str()).map_err(|_| format!("invalid custom header name `{name}`"))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("invalid value of custom header `{name}`"))?;
            headers.append(name, value);
        }
        super::signing::headers(
            out.format,
            &out.secrets,
            out.msg_id,
            std::time::SystemTime::now(),
            &out.body,
            headers,
        )?;
        let request = request.body(Full::new(out.body)).map_err(|e| format!("request failed: {e}"))?;
        let response = self.client.request(request).await.map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        let headers: BTreeMap<String, String> = response
            .headers()
            .iter()
            .take(50)
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).chars().take(512).collect()))
            .collect();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(super::RetryAfter::parse);
        let mut incoming = response.into_body();
        let mut body = Vec::new();
        while body.len() < MAX_LOGGED_BODY {
            match incoming.frame().await {
                Some(Ok(frame)) => {
                    if let Some(chunk) = frame.data_ref() {
                        body.extend_from_slice(chunk);
                    }
                }
                None => break,
                // Cut off mid-body: the answer did not arrive whole, so it is no answer.
                Some(Err(e)) => return Err(format!("reading the response failed: {}", chain(&e))),
            }
        }
        body.truncate(MAX_LOGGED_BODY);
        Ok(Outcome {
            status: Some(status),
            latency: Duration::ZERO,
            headers,
            body: Some(String::from_utf8_lossy(&body).into_owned()),
            error: None,
            retry_after,
        })
    }
}

/// The URL as the client takes it. Saved URLs were checked by `url::Url` (which also accepts
/// international host names, normalized to punycode), so fall back to its form.
fn parse_uri(raw: &str) -> Result<Uri, String> {
    if let Ok(uri) = raw.parse::<Uri>()
        && uri.scheme().is_some()
        && uri.host().is_some()
    {
        return Ok(uri);
    }
    let url = url::Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    url.as_str().parse::<Uri>().map_err(|e| format!("not a valid URL: {e}"))
}

/// An error's text without its URL (which may carry tokens), with its causes.
fn describe(err: &hyper_util::client::legacy::Error) -> String {
    let head = if err.is_connect() { "connection failed" } else { "request failed" };
    format!("{head}: {}", chain(err))
}

/// The causes of an error, joined, without the error's own (generic) text.
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() { err.to_string() } else { parts.join(": ") }
}

#[cfg(test)]
mod tests;
