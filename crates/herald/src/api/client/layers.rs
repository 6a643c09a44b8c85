//! The client's address, CORS and the rate limit: the client routes' own layers.

#[allow(unused_imports)]
use super::*;

/// The client's address as [`client_address`] found it, for handlers (the whitelist).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddress(pub Option<IpAddr>);

/// Middleware of the client routes: finds the client's address and applies its rate limit.
pub(super) async fn guard(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req.extensions().get::<ConnectInfo<PeerAddr>>().map(|ci| ci.0.0.ip());
    let address = crate::net::client_address(peer, req.headers(), &state.client.trusted_proxies);
    if let Some(address) = address
        && let Err(refused) = state.client.limiter.check(address)
    {
        return refused.into_response();
    }
    req.extensions_mut().insert(ClientAddress(address));
    next.run(req).await
}

/// The client routes' own layers: the rate limit, and CORS when origins are configured.
pub fn layers(router: axum::Router<AppState>, state: &AppState) -> axum::Router<AppState> {
    let router = router.layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    match cors(&state.config.client.cors_allowed_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

pub(super) fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([axum::http::Method::GET])
            .allow_headers([
                header::AUTHORIZATION,
                header::ACCEPT_LANGUAGE,
                header::IF_NONE_MATCH,
                header::HeaderName::from_static("x-client-key"),
            ])
            .expose_headers([header::ETAG, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn the_address_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net"), "::1/128".parse().expect("net")];
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let from = |peer: &str, xff: &[&str]| crate::net::client_address(Some(ip(peer)), &headers(xff), &trusted);
        assert_eq!(from("203.0.113.9", &["198.51.100.1"]), Some(ip("203.0.113.9")), "untrusted peer: header ignored");
        assert_eq!(from("10.0.0.2", &["198.51.100.1"]), Some(ip("198.51.100.1")));
        assert_eq!(
            from("10.0.0.2", &["6.6.6.6, 198.51.100.1, 10.0.0.7"]),
            Some(ip("198.51.100.1")),
            "forged head ignored"
        );
        assert_eq!(from("10.0.0.2", &["6.6.6.6", "198.51.100.1"]), Some(ip("198.51.100.1")), "several header lines");
        assert_eq!(from("::1", &["2001:db8::5"]), Some(ip("2001:db8::5")));
        assert_eq!(from("10.0.0.2", &[]), Some(ip("10.0.0.2")), "no header: the proxy itself");
        assert_eq!(from("10.0.0.2", &["garbage, 10.0.0.3"]), Some(ip("10.0.0.3")), "garbage stops the walk");
        assert_eq!(from("10.0.0.2", &["198.51.100.1:4711"]), Some(ip("198.51.100.1")), "with a port");
    }

    #[test]
    fn cors_origins_are_checked_at_start() {
        let with = |origins: &[&str]| {
            let mut config = Config::default();
            config.client.cors_allowed_origins = origins.iter().map(|o| o.to_string()).collect();
            ClientState::new(&config).map(|_| ())
        };
        assert!(with(&["https://play.example.com", "http://localhost:3000", "*"]).is_ok());
        for bad in ["play.example.com", "https://play.example.com/game", "ftp://x.example.com", "https://"] {
            assert!(with(&[bad]).is_err(), "{bad}");
        }
        let mut config = Config::default();
        config.http.trusted_proxies = vec!["10.0.0.0/33".into()];
        assert!(ClientState::new(&config).is_err(), "a bad CIDR stops the start");
    }

    #[test]
    fn server_time_is_put_first() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z").expect("time").with_timezone(&Utc);
        let out = with_server_time(&Bytes::from_static(br#"{"a":1}"#), now);
        assert_eq!(&out[..], br#"{"serverTime":"2026-01-02T03:04:05.678Z","a":1}"#);
        let out = with_server_time(&Bytes::from_static(b"{}"), now);
        assert_eq!(&out[..], br#"{"serverTime":"2026-01-02T03:04:05.678Z"}"#);
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let etag = HeaderValue::from_static("W/\"abc\"");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).expect("header"));
            not_modified(&h, &etag)
        };
        assert!(with("W/\"abc\""));
        assert!(with("\"abc\""));
        assert!(with("\"x\", W/\"abc\""));
        assert!(with("*"));
        assert!(!with("W/\"abd\""));
        assert!(!not_modified(&HeaderMap::new(), &etag));
    }
}
