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
        ..block("2001::/23", "IETF protocol assignments", &["2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:200::"])
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
        let resolved =
            resolver.call(name.parse().expect("a name")).await.map(|addrs| addrs.map(|a| a.ip()).collect::<Vec<_>>());
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
