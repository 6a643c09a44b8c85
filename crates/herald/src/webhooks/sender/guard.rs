//! The SSRF guard of the production profile: which addresses and names deliveries may reach.

use super::*;

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
pub(super) type Lookup = fn(String, u16) -> BoxFuture<std::io::Result<Vec<SocketAddr>>>;
pub(super) type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

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
    pub(super) production: bool,
    pub(super) allow: Vec<IpNet>,
    pub(super) lookup: Lookup,
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
    pub(super) fn check_target(&self, uri: &Uri) -> Result<(), String> {
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
pub(super) struct GuardedResolver(pub(super) Arc<Guard>);

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
