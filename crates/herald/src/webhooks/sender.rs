//! Sending one signed webhook request, and the SSRF guard of the production profile.

use std::{
    collections::BTreeMap,
    error::Error as _,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use ipnet::IpNet;
use reqwest::dns::{Name, Resolve, Resolving};

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

/// A DNS resolver that drops addresses the guard refuses, so the check holds at connect time
/// (a name that resolved to a public address when saved cannot be re-pointed inside).
struct GuardedResolver(Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| guard.allows(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("refused: `{}` resolves only to internal addresses", name.as_str()).into());
            }
            Ok(Box::new(allowed.into_iter()) as Box<dyn Iterator<Item = SocketAddr> + Send>)
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
    pub retry_after_secs: Option<u64>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    guard: Arc<Guard>,
}

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
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION")))
            // Per host, not per endpoint: several endpoints often share one host, so keep as
            // many idle connections as there can be sends in flight (else they churn).
            .pool_max_idle_per_host(config.max_in_flight.max(1))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10));
        if guard.production {
            builder = builder.dns_resolver(Arc::new(GuardedResolver(guard.clone())));
        }
        Ok(Sender { client: builder.build()?, guard })
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    pub async fn send(&self, out: Outgoing<'_>) -> Outcome {
        let started = Instant::now();
        let fail = |error: String| Outcome {
            status: None,
            latency: started.elapsed(),
            headers: BTreeMap::new(),
            body: None,
            error: Some(error),
            retry_after_secs: None,
        };
        // Parsed once here and handed to the client as is.
        let url = match reqwest::Url::parse(out.url) {
            Ok(url) => url,
            Err(e) => return fail(format!("not a valid URL: {e}")),
        };
        // IP-literal URLs never reach the resolver: check them here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal
            && !self.guard.allows(ip)
        {
            return fail(format!("refused: {ip} is an internal address"));
        }
        let now = std::time::SystemTime::now();
        let unix = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let signatures: Vec<String> = out
            .secrets
            .iter()
            .filter_map(|s| herald_webhooks::sign_standard(s, out.msg_id, unix, &out.body).ok())
            .collect();
        let simple = out.secrets.first().map(|s| herald_webhooks::sign_simple(s, &out.body)).unwrap_or_default();
        let mut request = self.client.post(url).timeout(out.timeout);
        for (name, value) in out.headers {
            if !RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                request = request.header(name, value);
            }
        }
        let request = request
            .header("content-type", "application/json")
            .header("webhook-id", out.msg_id)
            .header("webhook-timestamp", unix.to_string())
            .header("webhook-signature", signatures.join(" "))
            .header("x-webhook-signature", simple)
            .header("x-webhook-timestamp", super::rfc3339(chrono::DateTime::<chrono::Utc>::from(now)))
            .body(out.body);
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return fail(describe(&e, out.timeout)),
        };
        let status = response.status().as_u16();
        let headers: BTreeMap<String, String> = response
            .headers()
            .iter()
            .take(50)
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).chars().take(512).collect()))
            .collect();
        let retry_after_secs = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut body = Vec::new();
        let mut error = None;
        while body.len() < MAX_LOGGED_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    error = Some(describe(&e, out.timeout));
                    break;
                }
            }
        }
        body.truncate(MAX_LOGGED_BODY);
        // A body cut off by the timeout is a timeout: the answer did not arrive in time.
        let status = if error.is_some() { None } else { Some(status) };
        Outcome {
            status,
            latency: started.elapsed(),
            headers,
            body: Some(String::from_utf8_lossy(&body).into_owned()),
            error,
            retry_after_secs,
        }
    }
}

/// An error's text without its URL (which may carry tokens), with its causes.
fn describe(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    let mut text = if err.is_connect() { "connection failed".to_string() } else { "request failed".to_string() };
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::is_internal;

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
