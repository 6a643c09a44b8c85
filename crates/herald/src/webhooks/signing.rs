//! The headers that identify and sign a delivery, per payload format.
//!
//! Every format carries the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), so any receiver can deduplicate by event id and verify with the
//! standard libraries, and the seeds' `x-webhook-signature` / `x-webhook-timestamp`. A format
//! adds the headers its own receivers check:
//!
//! | format  | header                          | value                                   |
//! |---------|---------------------------------|-----------------------------------------|
//! | gatrix  | `x-gatrix-signature`            | hex HMAC-SHA256 of the body             |
//! | aghanim | `X-Aghanim-Signature`           | hex HMAC-SHA256 of the body             |
//! | aghanim | `X-Aghanim-Signature-Timestamp` | unix seconds of the send                |
//!
//! `webhook-signature` holds one signature per secret while a rotation overlaps (receivers
//! check any). The single-value headers cannot (the seeds' receivers compare the whole value),
//! so they are signed with the current secret only.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::store::webhooks::WebhookFormat;

const HERALD_USER_AGENT: &str = concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION"));
/// Aghanim's receivers are written against requests from `Aghanim/0.1.0`; say that Herald's
/// are compatible with them, the way browsers name the agent they are compatible with.
const AGHANIM_USER_AGENT: &str = concat!("Aghanim/0.1.0 (compatible; Herald-Webhooks/", env!("CARGO_PKG_VERSION"), ")");

/// Header names a format sets; an endpoint's custom headers may not use them.
pub const SIGNING_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-webhook-signature",
    "x-webhook-timestamp",
    "x-gatrix-signature",
    "x-aghanim-signature",
    "x-aghanim-signature-timestamp",
];

/// Sets the headers of one send of `body` as event `msg_id` at `at` in `h` (replacing any
/// of the same name), signed with `secrets` (the current one first). Into the request's own
/// map: no second map per send.
pub fn headers(
    format: WebhookFormat,
    secrets: &[&str],
    msg_id: &str,
    at: SystemTime,
    body: &[u8],
    h: &mut HeaderMap,
) -> Result<(), String> {
    let unix = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let text = |v: String| HeaderValue::try_from(v).map_err(|_| "request failed: invalid header value".to_string());
    let standard: Vec<String> =
        secrets.iter().filter_map(|s| herald_webhooks::sign_standard(s, msg_id, unix, body).ok()).collect();
    let simple = secrets.first().map(|s| herald_webhooks::sign_simple(s, body)).unwrap_or_default();
    let agent = if format == WebhookFormat::Aghanim { AGHANIM_USER_AGENT } else { HERALD_USER_AGENT };
    h.insert(header::USER_AGENT, HeaderValue::from_static(agent));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert("webhook-id", text(msg_id.to_owned())?);
    h.insert("webhook-timestamp", HeaderValue::from(unix));
    h.insert("webhook-signature", text(standard.join(" "))?);
    h.insert("x-webhook-timestamp", text(super::rfc3339(chrono::DateTime::<chrono::Utc>::from(at)))?);
    match format {
        WebhookFormat::Gatrix => {
            h.insert(HeaderName::from_static("x-gatrix-signature"), text(simple.clone())?);
        }
        WebhookFormat::Aghanim => {
            h.insert(HeaderName::from_static("x-aghanim-signature"), text(simple.clone())?);
            h.insert(HeaderName::from_static("x-aghanim-signature-timestamp"), HeaderValue::from(unix));
        }
        WebhookFormat::Herald | WebhookFormat::Bkend | WebhookFormat::Gromach => {}
    }
    h.insert("x-webhook-signature", text(simple)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::{SIGNING_HEADERS, WebhookFormat, headers};

    #[test]
    fn each_format_signs_in_its_own_headers() {
        let at = UNIX_EPOCH + Duration::from_secs(1_725_548_450);
        let body = br#"{"event":"user.created"}"#;
        let secrets = ["new-secret-1", "old-secret-1"];
        for format in WebhookFormat::ALL {
            let mut h = http::HeaderMap::new();
            headers(format, &secrets, "evt1", at, body, &mut h).expect("headers");
            let get = |name: &str| h.get(name).map(|v| v.to_str().expect("ascii").to_owned());
            // The standard headers, with both secrets during a rotation.
            assert_eq!(get("webhook-id").as_deref(), Some("evt1"));
            assert_eq!(get("webhook-timestamp").as_deref(), Some("1725548450"));
            let standard = get("webhook-signature").expect("standard signature");
            for secret in secrets {
                herald_webhooks::verify_standard(secret, "evt1", "1725548450", &standard, body, 1_725_548_450, 300)
                    .unwrap_or_else(|e| panic!("{format}: {secret}: {e:?}"));
            }
            let current = herald_webhooks::sign_simple("new-secret-1", body);
            assert_eq!(get("x-webhook-signature"), Some(current.clone()), "{format}");
            let own = match format {
                WebhookFormat::Gatrix => vec![("x-gatrix-signature", current.clone())],
                WebhookFormat::Aghanim => vec![
                    ("x-aghanim-signature", current.clone()),
                    ("x-aghanim-signature-timestamp", "1725548450".to_owned()),
                ],
                _ => vec![],
            };
            for (name, value) in &own {
                assert_eq!(get(name).as_ref(), Some(value), "{format}: {name}");
            }
            for name in SIGNING_HEADERS.iter().filter(|n| n.starts_with("x-gatrix") || n.starts_with("x-aghanim")) {
                assert_eq!(h.contains_key(*name), own.iter().any(|(n, _)| n == name), "{format}: {name}");
            }
            let agent = get("user-agent").expect("agent");
            assert_eq!(agent.starts_with("Aghanim/0.1.0"), format == WebhookFormat::Aghanim, "{agent}");
        }
    }
}
