//! Who the client is, behind trusted proxies.

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
