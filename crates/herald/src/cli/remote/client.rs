//! The API client the remote commands share.

use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

use super::Target;
use crate::config::Config;

/// An API client with the caller's credentials. Never prints the key.
pub struct Remote {
    base: String,
    key: String,
    project: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    pub fn new(target: &Target, config: &Config) -> anyhow::Result<Remote> {
        let key = target
            .key
            .clone()
            .filter(|k| !k.trim().is_empty())
            .context("no API key: set HERALD_API_KEY (or pass --key)")?;
        let base = match &target.url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let mut addr = config.listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        Ok(Remote { base, key: key.trim().to_owned(), project: target.project.clone(), http })
    }

    /// Calls the API; retries what the server asks to retry (429, 503) after `Retry-After`.
    /// An error answer becomes `status code: message`.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut tries = 0;
        loop {
            let mut req =
                self.http.request(method.clone(), format!("{}{path}", self.base)).header("X-API-Key", &self.key);
            if let Some(project) = &self.project {
                req = req.header("X-Project-Id", project);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req.send().await.map_err(|e| {
                // reqwest's message holds the URL only, never headers.
                anyhow::anyhow!("cannot reach Herald at {} ({e}); is it running? (--url / HERALD_URL)", self.base)
            })?;
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let bytes = resp.bytes().await?;
            let value: Value =
                if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
            if status.is_success() {
                return Ok(value);
            }
            tries += 1;
            if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) && tries < 5 {
                tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1).min(30))).await;
                continue;
            }
            return Err(ApiFailure::from_answer(status, &value).into());
        }
    }

    /// Calls the API and reads its answer as a `T`.
    pub(super) async fn call_as<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<T> {
        let answer = self.call(method, path, body).await?;
        typed(&answer)
    }

    /// Every item of a paged list (`?page=&limit=100`), as answered (`--json` prints them so).
    pub(super) async fn all_pages(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        for page in 1.. {
            let body: Page<Value> = self.call_as(Method::GET, &format!("{path}?page={page}&limit=100"), None).await?;
            let batch = body.items;
            let done = batch.len() < 100;
            items.extend(batch);
            if done {
                break;
            }
        }
        Ok(items)
    }
}

/// An error answer of the API.
#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// The API's error body, as far as it is there (a proxy's error page has none of it).
#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorAnswer {
    error: ErrorInfo,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorInfo {
    code: Option<String>,
    message: Option<String>,
    details: Vec<ErrorDetail>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorDetail {
    field: Option<String>,
    message: Option<String>,
}

impl ApiFailure {
    fn from_answer(status: StatusCode, body: &Value) -> ApiFailure {
        let ErrorInfo { code, message, details } = ErrorAnswer::deserialize(body).unwrap_or_default().error;
        let mut message = message.unwrap_or_else(|| "no message".to_owned());
        if details.len() > 1 {
            let fields: Vec<String> = details
                .iter()
                .map(|d| format!("{}: {}", d.field.as_deref().unwrap_or("?"), d.message.as_deref().unwrap_or("?")))
                .collect();
            message = fields.join("; ");
        }
        ApiFailure { status: status.as_u16(), code: code.unwrap_or_else(|| "error".to_owned()), message }
    }
}

/// One page of a list answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Page<T> {
    pub items: Vec<T>,
    /// The next page's cursor, on lists paged by cursor (deliveries, events).
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `answer` read as a `T`: what a command needs of an answer, named and typed.
pub(super) fn typed<T: DeserializeOwned>(answer: &Value) -> anyhow::Result<T> {
    T::deserialize(answer).map_err(|e| anyhow::anyhow!("unexpected answer from Herald ({e}): is it the same version?"))
}
