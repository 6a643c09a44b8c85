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

// The classification below is written out by hand: std's `IpAddr::is_global` is still
// unstable, and the crates that classify addresses do not look inside the IPv6 forms that
// carry an IPv4 address (IPv4-compatible, -mapped, -translated, 6to4, Teredo), through which
// an internal IPv4 host can be reached under a public-looking IPv6 address.

/// IPv4 blocks the production profile refuses: every block of the IANA IPv4 Special-Purpose
/// Address Registry (including the few marked globally reachable: anycast services such as
/// AS112 and AMT, where no webhook receiver runs), multicast, and the reserved 240.0.0.0/4.
const V4_REFUSED: &[Ipv4Net] = &[
    Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8), // "this network" (and 0.0.0.0/32)
    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8), // private use
    Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10), // shared address space (carrier-grade NAT)
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8), // loopback
    Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16), // link-local, incl. 169.254.169.254 (cloud metadata)
    Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12), // private use
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24), // IETF protocol assignments (all its /29 and /32s)
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 2, 0), 24), // documentation (TEST-NET-1)
    Ipv4Net::new_assert(Ipv4Addr::new(192, 31, 196, 0), 24), // AS112-v4
    Ipv4Net::new_assert(Ipv4Addr::new(192, 52, 193, 0), 24), // AMT
    Ipv4Net::new_assert(Ipv4Addr::new(192, 88, 99, 0), 24), // deprecated 6to4 relay anycast, 6a44 relay
    Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16), // private use
    Ipv4Net::new_assert(Ipv4Addr::new(192, 175, 48, 0), 24), // AS112 direct delegation
    Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15), // benchmarking
    Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24), // documentation (TEST-NET-3)
    Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4), // multicast
    Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4), // reserved, incl. 255.255.255.255 (broadcast)
];

/// IPv6 unicast is allocated from 2000::/3 only; everything outside it is refused, which covers
/// these blocks of the IANA IPv6 Special-Purpose Address Registry: ::1/128, ::/128,
/// 64:ff9b::/96 and 64:ff9b:1::/48 (NAT64, which would reach any IPv4 address), 100::/64 and
/// 100:0:0:1::/64 (discard, dummy), 5f00::/16 (SRv6 SIDs), fc00::/7 (unique local, incl.
/// fd00:ec2::254, the AWS metadata address), fe80::/10 (link-local); also fec0::/10 (the
/// deprecated site-local block, still routed inside some networks) and ff00::/8 (multicast).
/// The forms that carry an IPv4 address are judged by it first ([`embedded_ipv4`]).
const V6_GLOBAL_UNICAST: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// The registry's blocks inside 2000::/3, refused too.
const V6_REFUSED: &[Ipv6Net] = &[
    // IETF protocol assignments: PCP, TURN, DNS-SD anycast, benchmarking, AMT, AS112-v6, ORCHID,
    // ORCHIDv2, drone DETs. Teredo (2001::/32) inside it is judged by its IPv4 addresses.
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    Ipv6Net::new_assert(Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0), 48), // AS112 direct delegation
    Ipv6Net::new_assert(Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),     // documentation
];

/// The IPv4 addresses an IPv6 address stands for, when it is one of the forms that carry them:
/// IPv4-compatible `::a.b.c.d` (::/96, deprecated), IPv4-mapped
/// `::ffff:a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d` (SIIT), 6to4 `2002:aabb:ccdd::/48`,
/// and Teredo `2001:0:SSSS:SSSS:flags:port:CCCC:CCCC` (server IPv4 in bits 32-63, client IPv4
/// in the last 32 bits, inverted). Packets to these may reach (or be relayed to) that IPv4 host.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Vec<Ipv4Addr>> {
    let s = v6.segments();
    let bits = u128::from(v6);
    let low = Ipv4Addr::from(bits as u32);
    match s {
        // `::` and `::1` are the unspecified and loopback addresses, not IPv4-compatible ones
        // (refused all the same, being outside 2000::/3).
        [0, 0, 0, 0, 0, 0, _, _] if u32::from(low) > 1 => Some(vec![low]),
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(vec![low]),
        [0x2002, hi, lo, ..] => Some(vec![Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))]),
        [0x2001, 0, hi, lo, ..] => {
            Some(vec![Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)), Ipv4Addr::from(!(bits as u32))])
        }
        _ => None,
    }
}

/// Addresses the production profile refuses unless allow-listed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => V4_REFUSED.iter().any(|n| n.contains(&v4)),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4s) => v4s.into_iter().any(|v4| is_internal(IpAddr::V4(v4))),
            None => !V6_GLOBAL_UNICAST.contains(&v6) || V6_REFUSED.iter().any(|n| n.contains(&v6)),
        },
    }
}

/// Looks a host name up: the system resolver, or a fixed table in unit tests.
type Lookup = fn(String, u16) -> BoxFuture<std::io::Result<Vec<SocketAddr>>>;
type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

fn system_lookup(host: String, port: u16) -> BoxFuture<std::io::Result<Vec<SocketAddr>>> {
    Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect()) })
}

/// Why the production profile refuses a target. The texts work both as a field error when an
/// endpoint is saved and, after `refused: `, as an attempt's error.
fn plain_http_refused() -> String {
    "plain http:// is refused by the production profile: use https://".into()
}

fn internal_ip_refused(ip: IpAddr) -> String {
    // `::7f00:1` does not show it is 127.0.0.1: say what the address stands for.
    let carried = match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map(|v4s| {
            let v4s: Vec<String> = v4s.iter().map(Ipv4Addr::to_string).collect();
            format!(" (standing for {})", v4s.join(" and "))
        }),
        IpAddr::V4(_) => None,
    };
    let carried = carried.unwrap_or_default();
    format!(
        "{ip}{carried} is an internal or special-purpose address (loopback, private, link-local, metadata, ...): \
         add its network to webhooks.allow_networks if that is intended"
    )
}

fn internal_name_refused(host: &str) -> String {
    format!(
        "`{host}` resolves only to internal or special-purpose addresses (loopback, private, link-local, \
         metadata, ...): add their network to webhooks.allow_networks if that is intended"
    )
}

/// Which targets deliveries may reach. One rule, applied when an endpoint is saved
/// ([`Guard::check_url`]), when it is sent to ([`Sender::send`]: scheme and IP literals, then
/// every address the resolver returns), and when `herald serve` starts ([`Guard::refusal`]).
#[derive(Debug, Clone)]
pub struct Guard {
    production: bool,
    allow: Vec<IpNet>,
    lookup: Lookup,
}

/// Why [`Guard::resolve`] found no address to use.
enum Unusable {
    /// The name resolves only to addresses the profile refuses.
    Refused(String),
    /// The name does not resolve (now): not the profile's doing.
    Unresolved(String),
}

impl Guard {
    pub fn new(config: &WebhooksConfig) -> anyhow::Result<Guard> {
        let allow = config
            .allow_networks
            .iter()
            .map(|n| n.parse::<IpNet>().map_err(|e| anyhow::anyhow!("webhooks.allow_networks: `{n}`: {e}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(Guard { production: config.profile == WebhookProfile::Production, allow, lookup: system_lookup })
    }

    pub fn is_production(&self) -> bool {
        self.production
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        !self.production || !is_internal(ip) || self.allow.iter().any(|n| n.contains(&ip))
    }

    /// The scheme rule; `Err` says why.
    fn check_scheme(&self, scheme: &str) -> Result<(), String> {
        match (scheme, self.production) {
            ("https", _) | ("http", false) => Ok(()),
            ("http", true) => Err(plain_http_refused()),
            _ => Err("must be an http:// or https:// URL".into()),
        }
    }

    /// The addresses of `host` this profile may connect to (all of them in development).
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Unusable> {
        let addrs = (self.lookup)(host.to_owned(), port)
            .await
            .map_err(|e| Unusable::Unresolved(format!("host `{host}` does not resolve: {e}")))?;
        let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| self.allows(a.ip())).collect();
        if allowed.is_empty() { Err(Unusable::Refused(internal_name_refused(host))) } else { Ok(allowed) }
    }

    /// Checks an endpoint URL when it is saved: scheme, and (production) where it resolves.
    /// Returns a message saying what to fix.
    pub async fn check_url(&self, raw: &str) -> Result<(), String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
        self.check_scheme(url.scheme())?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials; use custom headers instead".into());
        }
        let host = url.host().ok_or("must have a host")?;
        if !self.production {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        match host {
            url::Host::Ipv4(ip) if !self.allows(ip.into()) => Err(internal_ip_refused(ip.into())),
            url::Host::Ipv6(ip) if !self.allows(ip.into()) => Err(internal_ip_refused(ip.into())),
            url::Host::Ipv4(_) | url::Host::Ipv6(_) => Ok(()),
            url::Host::Domain(name) => match self.resolve(name, port).await {
                Ok(_) => Ok(()),
                Err(Unusable::Refused(why) | Unusable::Unresolved(why)) => Err(why),
            },
        }
    }

    /// Why this profile will refuse to send to a saved endpoint URL, if it will: for the
    /// start-up warning of `herald serve`. A name that does not resolve now is not reported
    /// (that is not the profile's doing, and may pass). Never contains the URL's path or query,
    /// which may carry tokens.
    pub async fn refusal(&self, raw: &str) -> Option<String> {
        if !self.production {
            return None;
        }
        let Ok(url) = url::Url::parse(raw) else { return Some("not a valid URL".into()) };
        if let Err(why) = self.check_scheme(url.scheme()) {
            return Some(why);
        }
        let port = url.port_or_known_default().unwrap_or(443);
        match url.host()? {
            url::Host::Ipv4(ip) => (!self.allows(ip.into())).then(|| internal_ip_refused(ip.into())),
            url::Host::Ipv6(ip) => (!self.allows(ip.into())).then(|| internal_ip_refused(ip.into())),
            url::Host::Domain(name) => match self.resolve(name, port).await {
                Err(Unusable::Refused(why)) => Some(why),
                Ok(_) | Err(Unusable::Unresolved(_)) => None,
            },
        }
    }

    /// The check at send time, before any connection: the scheme (an `http://` endpoint saved
    /// in the development profile is not sent in production) and an IP-literal host (which
    /// never reaches the resolver). Host names are checked by the resolver, address by address.
    fn check_target(&self, uri: &Uri) -> Result<(), String> {
        self.check_scheme(uri.scheme_str().unwrap_or_default())?;
        if let Some(ip) = uri.host().and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok())
            && !self.allows(ip)
        {
            return Err(internal_ip_refused(ip));
        }
        Ok(())
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
    type Future = BoxFuture<Result<Resolved, BoxError>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guard = self.0.clone();
        Box::pin(async move {
            match guard.resolve(name.as_str(), 0).await {
                Ok(addrs) => Ok(addrs.into_iter()),
                Err(Unusable::Refused(why)) => Err(format!("refused: {why}").into()),
                Err(Unusable::Unresolved(why)) => Err(why.into()),
            }
        })
    }
}

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
mod tests {
    use std::{
        collections::BTreeMap,
        net::{IpAddr, SocketAddr},
        time::Duration,
    };

    use ipnet::IpNet;
    use tower_service::Service;

    use super::{BoxFuture, Guard, GuardedResolver, Outgoing, Sender};
    use crate::config::{WebhookProfile, WebhooksConfig};

    fn production_config() -> WebhooksConfig {
        WebhooksConfig { profile: WebhookProfile::Production, ..WebhooksConfig::default() }
    }

    fn production() -> Sender {
        Sender::new(&production_config()).expect("sender")
    }

    /// A DNS stand-in: `ip-<32 hex digits>.test` resolves to that IPv6 address,
    /// `ip4-<8 hex digits>.test` to that IPv4 address, anything else to nothing.
    fn fake_lookup(host: String, port: u16) -> BoxFuture<std::io::Result<Vec<SocketAddr>>> {
        let parsed = host.strip_suffix(".test").and_then(|h| {
            if let Some(hex) = h.strip_prefix("ip4-") {
                u32::from_str_radix(hex, 16).ok().map(|v| IpAddr::from(std::net::Ipv4Addr::from(v)))
            } else {
                u128::from_str_radix(h.strip_prefix("ip-")?, 16).ok().map(|v| IpAddr::from(std::net::Ipv6Addr::from(v)))
            }
        });
        Box::pin(async move {
            parsed
                .map(|ip| vec![SocketAddr::new(ip, port)])
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such test host"))
        })
    }

    fn name_of(ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => format!("ip4-{:08x}.test", u32::from(v4)),
            IpAddr::V6(v6) => format!("ip-{:032x}.test", u128::from(v6)),
        }
    }

    fn literal(ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        }
    }

    async fn send(sender: &Sender, url: &str) -> super::Outcome {
        let headers = BTreeMap::new();
        sender
            .send(Outgoing {
                url,
                body: bytes::Bytes::from_static(b"{}"),
                msg_id: "msg_1",
                format: crate::store::webhooks::WebhookFormat::Herald,
                secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                headers: &headers,
                timeout: Duration::from_secs(5),
            })
            .await
    }

    /// One block of the IANA IPv4 or IPv6 Special-Purpose Address Registry (or one the filter
    /// refuses besides), written out from the registries here, apart from the code's tables.
    /// Its first and last addresses and `refused` must be refused; `accepted_inside` (the forms
    /// that carry a public IPv4 address) and `outside` (public addresses just outside it) must
    /// be accepted.
    struct Block {
        net: &'static str,
        name: &'static str,
        refused: &'static [&'static str],
        accepted_inside: &'static [&'static str],
        outside: &'static [&'static str],
    }

    const fn block(net: &'static str, name: &'static str, outside: &'static [&'static str]) -> Block {
        Block { net, name, refused: &[], accepted_inside: &[], outside }
    }

    const REGISTRY: &[Block] = &[
        // IANA IPv4 Special-Purpose Address Registry.
        Block { refused: &["0.1.2.3"], ..block("0.0.0.0/8", "this network", &["1.0.0.0"]) },
        block("0.0.0.0/32", "this host on this network", &[]),
        block("10.0.0.0/8", "private use", &["9.255.255.255", "11.0.0.0"]),
        block("100.64.0.0/10", "shared address space", &["100.63.255.255", "100.128.0.0"]),
        block("127.0.0.0/8", "loopback", &["126.255.255.255", "128.0.0.0"]),
        Block {
            refused: &["169.254.169.254"],
            ..block("169.254.0.0/16", "link local", &["169.253.255.255", "169.255.0.0"])
        },
        block("172.16.0.0/12", "private use", &["172.15.255.255", "172.32.0.0"]),
        block("192.0.0.0/24", "IETF protocol assignments", &["191.255.255.255", "192.0.1.0"]),
        block("192.0.0.0/29", "IPv4 service continuity prefix", &[]),
        block("192.0.0.8/32", "IPv4 dummy address", &[]),
        block("192.0.0.9/32", "port control protocol anycast", &[]),
        block("192.0.0.10/32", "TURN anycast", &[]),
        block("192.0.0.170/32", "NAT64/DNS64 discovery", &[]),
        block("192.0.0.171/32", "NAT64/DNS64 discovery", &[]),
        block("192.0.2.0/24", "documentation (TEST-NET-1)", &["192.0.1.255", "192.0.3.0"]),
        block("192.31.196.0/24", "AS112-v4", &["192.31.195.255", "192.31.197.0"]),
        block("192.52.193.0/24", "AMT", &["192.52.192.255", "192.52.194.0"]),
        block("192.88.99.0/24", "deprecated 6to4 relay anycast", &["192.88.98.255", "192.88.100.0"]),
        block("192.88.99.2/32", "6a44 relay anycast", &[]),
        block("192.168.0.0/16", "private use", &["192.167.255.255", "192.169.0.0"]),
        block("192.175.48.0/24", "direct delegation AS112 service", &["192.175.47.255", "192.175.49.0"]),
        block("198.18.0.0/15", "benchmarking", &["198.17.255.255", "198.20.0.0"]),
        block("198.51.100.0/24", "documentation (TEST-NET-2)", &["198.51.99.255", "198.51.101.0"]),
        block("203.0.113.0/24", "documentation (TEST-NET-3)", &["203.0.112.255", "203.0.114.0"]),
        block("240.0.0.0/4", "reserved", &[]),
        block("255.255.255.255/32", "limited broadcast", &[]),
        // IPv4 refused besides (IANA multicast address space registry).
        block("224.0.0.0/4", "multicast", &["223.255.255.255"]),
        // IANA IPv6 Special-Purpose Address Registry.
        block("::1/128", "loopback", &[]),
        block("::/128", "unspecified", &[]),
        Block {
            refused: &["::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254"],
            accepted_inside: &["::ffff:8.8.8.8"],
            ..block("::ffff:0:0/96", "IPv4-mapped", &[])
        },
        Block {
            refused: &["64:ff9b::8.8.8.8", "64:ff9b::127.0.0.1"],
            ..block("64:ff9b::/96", "IPv4-IPv6 translation (NAT64)", &[])
        },
        Block { refused: &["64:ff9b:1::8.8.8.8"], ..block("64:ff9b:1::/48", "local-use IPv4-IPv6 translation", &[]) },
        block("100::/64", "discard-only", &[]),
        block("100:0:0:1::/64", "dummy IPv6 prefix", &[]),
        Block {
            refused: &["2001:100::1", "2001:1::4"],
            ..block(
                "2001::/23",
                "IETF protocol assignments",
                &["2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:200::"],
            )
        },
        Block {
            // Server 65.54.227.120 (bits 32-63), client the last 32 bits inverted.
            refused: &[
                "2001:0:4136:e378:8000:63bf:80ff:fffe", // client 127.0.0.1
                "2001:0:a00:1:8000:63bf:f7f7:f7f7",     // server 10.0.0.1
                "2001:0:4136:e378:8000:63bf:3f57:fefd", // client 192.168.1.2
            ],
            accepted_inside: &["2001:0:4136:e378:8000:63bf:f7f7:f7f7"], // client 8.8.8.8
            ..block("2001::/32", "Teredo", &[])
        },
        block("2001:1::1/128", "port control protocol anycast", &[]),
        block("2001:1::2/128", "TURN anycast", &[]),
        block("2001:1::3/128", "DNS-SD service registration protocol anycast", &[]),
        block("2001:2::/48", "benchmarking", &[]),
        block("2001:3::/32", "AMT", &[]),
        block("2001:4:112::/48", "AS112-v6", &[]),
        block("2001:10::/28", "deprecated ORCHID", &[]),
        block("2001:20::/28", "ORCHIDv2", &[]),
        block("2001:30::/28", "drone remote ID DETs", &[]),
        block("2001:db8::/32", "documentation", &["2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::"]),
        Block {
            refused: &["2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:c0a8:101::1", "2002:a00:1::1"],
            accepted_inside: &["2002:808:808::1"],
            ..block("2002::/16", "6to4", &["2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2003::"])
        },
        block(
            "2620:4f:8000::/48",
            "direct delegation AS112 service",
            &["2620:4f:7fff:ffff:ffff:ffff:ffff:ffff", "2620:4f:8001::"],
        ),
        block("3fff::/20", "documentation", &["3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff:1000::"]),
        block("5f00::/16", "segment routing (SRv6) SIDs", &[]),
        Block { refused: &["fd00:ec2::254"], ..block("fc00::/7", "unique-local", &[]) },
        block("fe80::/10", "link-local unicast", &[]),
        // IPv6 refused besides: deprecated forms that reach an IPv4 host or a site's network.
        Block {
            refused: &["::127.0.0.1", "::10.0.0.1", "::169.254.169.254"],
            accepted_inside: &["::8.8.8.8"],
            ..block("::/96", "IPv4-compatible (deprecated)", &[])
        },
        Block {
            refused: &["::ffff:0:127.0.0.1", "::ffff:0:10.0.0.1"],
            accepted_inside: &["::ffff:0:8.8.8.8"],
            ..block("::ffff:0:0:0/96", "IPv4-translated (SIIT)", &[])
        },
        Block { refused: &["fec0::1"], ..block("fec0::/10", "site-local (deprecated)", &[]) },
        block("ff00::/8", "multicast", &[]),
    ];

    /// Every address of the table, with whether production refuses it and why.
    fn cases() -> Vec<(IpAddr, bool, String)> {
        let mut cases = Vec::new();
        for b in REGISTRY {
            let net: IpNet = b.net.parse().unwrap_or_else(|e| panic!("{}: {e}", b.net));
            let ip = |s: &str| -> IpAddr { s.parse().unwrap_or_else(|e| panic!("{s}: {e}")) };
            let what = |s: &str| format!("{} ({}) {s}", b.net, b.name);
            for edge in [net.network(), net.broadcast()] {
                cases.push((edge, true, what("edge")));
            }
            for s in b.refused {
                assert!(net.contains(&ip(s)), "{}", what(s));
                cases.push((ip(s), true, what(s)));
            }
            for s in b.accepted_inside {
                assert!(net.contains(&ip(s)), "{}", what(s));
                cases.push((ip(s), false, what(s)));
            }
            for s in b.outside {
                assert!(!net.contains(&ip(s)), "{}", what(s));
                cases.push((ip(s), false, what(s)));
            }
        }
        cases
    }

    #[test]
    fn production_refuses_every_special_purpose_block() {
        let guard = Guard::new(&production_config()).expect("guard");
        let development = Guard::new(&WebhooksConfig::default()).expect("guard");
        for (ip, refused, what) in cases() {
            assert_eq!(guard.allows(ip), !refused, "{ip}: {what}");
            assert!(development.allows(ip), "development allows {ip}");
        }
    }

    /// Saving an endpoint: the same rule for IP literals and for names that resolve there.
    #[tokio::test]
    async fn registration_applies_the_rule_to_literals_and_resolved_names() {
        let guard = Guard { lookup: fake_lookup, ..Guard::new(&production_config()).expect("guard") };
        for (ip, refused, what) in cases() {
            for url in [format!("https://{}/hook", literal(ip)), format!("https://{}/hook", name_of(ip))] {
                let checked = guard.check_url(&url).await;
                if refused {
                    let why = checked.expect_err(&url);
                    assert!(why.contains("internal or special-purpose address"), "{url} ({what}): {why}");
                } else {
                    assert_eq!(checked, Ok(()), "{url} ({what})");
                }
            }
        }
    }

    /// Sending: an IP literal is refused before any connection; a name is refused by the
    /// client's resolver when it resolves only to refused addresses, and resolves to the
    /// address otherwise (not connected to here: those are public addresses).
    #[tokio::test]
    async fn sends_apply_the_rule_to_literals_and_resolved_names() {
        let config = production_config();
        let guard = Guard { lookup: fake_lookup, ..Guard::new(&config).expect("guard") };
        let sender = Sender::with_guard(&config, guard.clone()).expect("sender");
        let mut resolver = GuardedResolver(std::sync::Arc::new(guard));
        for (ip, refused, what) in cases() {
            let name = name_of(ip);
            let resolved = resolver
                .call(name.parse().expect("a name"))
                .await
                .map(|addrs| addrs.map(|a| a.ip()).collect::<Vec<_>>());
            if !refused {
                assert_eq!(resolved.ok(), Some(vec![ip]), "{ip}: {what}");
                continue;
            }
            assert!(resolved.is_err(), "{ip}: {what}");
            let by_literal = send(&sender, &format!("https://{}:9/hook", literal(ip))).await;
            assert_eq!(by_literal.status, None);
            let why = by_literal.error.unwrap_or_default();
            assert!(why.starts_with(&format!("refused: {ip}")), "{why}");
            assert!(why.contains("is an internal or special-purpose address"), "{why}");
            let by_name = send(&sender, &format!("https://{name}:9/hook")).await;
            let why = by_name.error.unwrap_or_default();
            assert!(why.contains(&format!("refused: `{name}` resolves only to internal")), "{ip} ({what}): {why}");
        }
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
            by_name.error.as_deref().is_some_and(|e| e.contains("resolves only to internal or special-purpose")),
            "{by_name:?}"
        );
        for (url, ip) in [("https://127.0.0.1:9/hook", "127.0.0.1"), ("https://[::1]:9/hook", "::1")] {
            let refused = send(&sender, url).await;
            assert!(
                refused.error.as_deref().is_some_and(|e| e.starts_with(&format!("refused: {ip} is an internal"))),
                "{refused:?}"
            );
        }
    }

    /// An `http://` endpoint (saved in the development profile) is not sent to in production,
    /// even where its address is allowed: the scheme is checked at send time too.
    #[tokio::test]
    async fn production_sends_refuse_plain_http() {
        let config = WebhooksConfig { allow_networks: vec!["127.0.0.0/8".into()], ..production_config() };
        let sender = Sender::new(&config).expect("sender");
        let outcome = send(&sender, "http://127.0.0.1:9/hook").await;
        assert_eq!(outcome.status, None);
        assert_eq!(
            outcome.error.as_deref(),
            Some("refused: plain http:// is refused by the production profile: use https://")
        );
        // The same address over https is allowed (and fails only because nothing listens).
        let outcome = send(&sender, "https://127.0.0.1:9/hook").await;
        assert!(outcome.error.as_deref().is_some_and(|e| e.starts_with("connection failed: ")), "{outcome:?}");
    }

    /// What `herald serve` lists at start: the reason, never the URL's path or query.
    #[tokio::test]
    async fn refusal_names_the_reason_without_the_path() {
        let guard = Guard { lookup: fake_lookup, ..Guard::new(&production_config()).expect("guard") };
        let http = guard.refusal("http://example.com/hook?token=s3cr3t").await.expect("refused");
        assert!(http.contains("plain http://") && !http.contains("s3cr3t"), "{http}");
        let compat = guard.refusal("https://[::127.0.0.1]/hook?token=s3cr3t").await.expect("refused");
        assert!(compat.starts_with("::7f00:1 (standing for 127.0.0.1) is an internal"), "{compat}");
        assert!(!compat.contains("s3cr3t"), "{compat}");
        let name = name_of("2002:7f00:1::1".parse().expect("ip"));
        assert!(guard.refusal(&format!("https://{name}/x")).await.is_some());
        assert_eq!(guard.refusal(&format!("https://{}/x", name_of("8.8.8.8".parse().expect("ip")))).await, None);
        // A name that does not resolve now is no refusal of the profile's.
        assert_eq!(guard.refusal("https://unknown.test/x").await, None);
        let development = Guard::new(&WebhooksConfig::default()).expect("guard");
        assert_eq!(development.refusal("http://127.0.0.1/x").await, None);
    }

    #[tokio::test]
    async fn connection_errors_say_what_failed() {
        let sender = Sender::new(&WebhooksConfig::default()).expect("sender");
        // Port 9 (discard) is closed on loopback: the connection is refused.
        let outcome = send(&sender, "http://127.0.0.1:9/hook").await;
        assert_eq!(outcome.status, None);
        assert!(outcome.error.as_deref().is_some_and(|e| e.starts_with("connection failed: ")), "{outcome:?}");
    }
}
