//! Sending one signed webhook request, and the SSRF guard of the production profile.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
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
use ipnet::IpNet;

use crate::config::{WebhookProfile, WebhooksConfig};

/// Keep at most this much of a response body in the attempt log.
pub const MAX_LOGGED_BODY: usize = 4096;

/// Addresses the production profile refuses unless allow-listed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local() // includes 169.254.169.254, the cloud metadata address
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xC0) == 64) // 100.64.0.0/10, carrier-grade NAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24, IETF protocol assignments
                || (o[0] == 198 && (o[1] & 0xFE) == 18) // 198.18.0.0/15, benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xFE00) == 0xFC00 // fc00::/7 unique local (incl. fd00:ec2::254 metadata)
                || (seg0 & 0xFFC0) == 0xFE80 // fe80::/10 link-local
                || (seg0 == 0x64 && v6.segments()[1] == 0xff9b) // 64:ff9b::/96 NAT64 of anything
        }
    }
}

/// Which target addresses deliveries may reach.
#[derive(Debug, Clone)]
pub struct Guard {
    production: bool,
    allow: Vec<IpNet>,
}

impl Guard {
    pub fn new(config: &WebhooksConfig) -> anyhow::Result<Guard> {
        let allow = config
            .allow_networks
            .iter()
            .map(|n| n.parse::<IpNet>().map_err(|e| anyhow::anyhow!("webhooks.allow_networks: `{n}`: {e}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(Guard { production: config.profile == WebhookProfile::Production, allow })
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        !self.production || !is_internal(ip) || self.allow.iter().any(|n| n.contains(&ip))
    }

    /// Checks an endpoint URL when it is saved: scheme, and (production) where it resolves.
    /// Returns a message saying what to fix.
    pub async fn check_url(&self, raw: &str) -> Result<(), String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
        match (url.scheme(), self.production) {
            ("https", _) | ("http", false) => {}
            ("http", true) => return Err("must use https:// (the production profile refuses plain http)".into()),
            _ => return Err("must be an http:// or https:// URL".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials; use custom headers instead".into());
        }
        let host = url.host_str().ok_or("must have a host")?;
        if !self.production {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("host `{host}` does not resolve: {e}"))?
                .collect(),
        };
        if addrs.iter().any(|a| self.allows(a.ip())) {
            Ok(())
        } else {
            Err(format!(
                "host `{host}` resolves to an internal address (loopback, private, link-local or metadata); \
                 add its network to webhooks.allow_networks if that is intended"
            ))
        }
    }
}

/// The client's DNS resolver. In the production profile it drops addresses the guard
/// refuses, so the check holds at connect time (a name that resolved to a public address when
/// saved cannot be re-pointed inside); in development it keeps every address.
#[derive(Clone)]
struct GuardedResolver(Arc<Guard>);

type Resolved = std::vec::IntoIter<SocketAddr>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = Resolved;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Resolved, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guard = self.0.clone();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = addrs.filter(|a| guard.allows(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("refused: `{}` resolves only to internal addresses", name.as_str()).into());
            }
            Ok(allowed.into_iter())
        })
    }
}

/// One request to send.
pub struct Outgoing<'a> {
    pub url: &'a str,
    pub body: Bytes,
    /// `webhook-id`: the event id, the same on every retry.
    pub msg_id: &'a str,
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

const USER_AGENT: HeaderValue = HeaderValue::from_static(concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION")));

/// Headers a custom header may not replace.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-webhook-signature",
    "x-webhook-timestamp",
];

impl Sender {
    pub fn new(config: &WebhooksConfig) -> anyhow::Result<Sender> {
        let guard = Arc::new(Guard::new(config)?);
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
        // IP-literal URLs never reach the resolver: check them here.
        if let Some(ip) = uri.host().and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok())
            && !self.guard.allows(ip)
        {
            return Err(format!("refused: {ip} is an internal address"));
        }
        let now = std::time::SystemTime::now();
        let unix = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let signatures: Vec<String> = out
            .secrets
            .iter()
            .filter_map(|s| herald_webhooks::sign_standard(s, out.msg_id, unix, &out.body).ok())
            .collect();
        let simple = out.secrets.first().map(|s| herald_webhooks::sign_simple(s, &out.body)).unwrap_or_default();
        let mut request = Request::post(uri);
        let headers = request.headers_mut().ok_or("request failed: invalid request")?;
        for (name, value) in out.headers {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                continue;
            }
            let name =
                HeaderName::try_from(name.as_str()).map_err(|_| format!("invalid custom header name `{name}`"))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("invalid value of custom header `{name}`"))?;
            headers.append(name, value);
        }
        let text = |v: String| HeaderValue::try_from(v).map_err(|_| "request failed: invalid header value".to_string());
        headers.insert(header::USER_AGENT, USER_AGENT);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("webhook-id", text(out.msg_id.to_owned())?);
        headers.insert("webhook-timestamp", HeaderValue::from(unix));
        headers.insert("webhook-signature", text(signatures.join(" "))?);
        headers.insert("x-webhook-signature", text(simple)?);
        headers.insert("x-webhook-timestamp", text(super::rfc3339(chrono::DateTime::<chrono::Utc>::from(now)))?);
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
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use super::{Outgoing, Sender, is_internal};
    use crate::config::{WebhookProfile, WebhooksConfig};

    fn production() -> Sender {
        let config = WebhooksConfig { profile: WebhookProfile::Production, ..WebhooksConfig::default() };
        Sender::new(&config).expect("sender")
    }

    async fn send(sender: &Sender, url: &str) -> super::Outcome {
        let headers = BTreeMap::new();
        sender
            .send(Outgoing {
                url,
                body: bytes::Bytes::from_static(b"{}"),
                msg_id: "msg_1",
                secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                headers: &headers,
                timeout: Duration::from_secs(5),
            })
            .await
    }

    /// The check at send time, for endpoints saved before their name was re-pointed inside:
    /// a host name resolving only to loopback is refused by the resolver, an IP literal
    /// before any connection is made.
    #[tokio::test]
    async fn production_sends_refuse_internal_addresses() {
        let sender = production();
        let by_name = send(&sender, "https://localhost:9/hook").await;
        assert_eq!(by_name.status, None);
        assert!(
            by_name.error.as_deref().is_some_and(|e| e.contains("resolves only to internal addresses")),
            "{by_name:?}"
        );
        let literal = send(&sender, "https://127.0.0.1:9/hook").await;
        assert_eq!(literal.error.as_deref(), Some("refused: 127.0.0.1 is an internal address"));
        let v6 = send(&sender, "https://[::1]:9/hook").await;
        assert_eq!(v6.error.as_deref(), Some("refused: ::1 is an internal address"));
    }

    #[tokio::test]
    async fn connection_errors_say_what_failed() {
        let sender = Sender::new(&WebhooksConfig::default()).expect("sender");
        // Port 9 (discard) is closed on loopback: the connection is refused.
        let outcome = send(&sender, "http://127.0.0.1:9/hook").await;
        assert_eq!(outcome.status, None);
        assert!(outcome.error.as_deref().is_some_and(|e| e.starts_with("connection failed: ")), "{outcome:?}");
    }

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "172.32.0.1"] {
            assert!(!is_internal(ip.parse().expect("ip")), "{ip}");
        }
    }
}
