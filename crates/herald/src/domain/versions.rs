//! Client versions and the lookup a game client makes at start-up.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::validate::{Checks, nullable};
use crate::{
    error::ApiResult,
    events::EventContext,
    store::{self, Store, StoreError, versions::ClientVersion},
};

pub const STATUSES: &[&str] = &["online", "offline", "recommended_update", "forced_update", "maintenance"];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewVersion {
    pub channel: String,
    pub sub_channel: Option<String>,
    pub version: String,
    pub status: Option<String>,
    pub update_url: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionPatch {
    pub channel: Option<String>,
    pub sub_channel: Option<String>,
    pub version: Option<String>,
    pub status: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub update_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub notes: Option<Option<String>>,
}

fn check_version(v: &ClientVersion) -> ApiResult<()> {
    let mut c = Checks::default();
    c.ident("channel", &v.channel, 32, &[]);
    if !v.sub_channel.is_empty() {
        c.ident("subChannel", &v.sub_channel, 32, &[]);
    }
    c.ident("version", &v.version, 32, &['+']);
    c.one_of("status", &v.status, STATUSES);
    if let Some(url) = &v.update_url {
        c.url("updateUrl", url);
    }
    c.opt_text("notes", v.notes.as_deref(), 2000);
    c.finish()
}

pub async fn create(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    input: NewVersion,
) -> ApiResult<ClientVersion> {
    let now = store::now();
    let v = ClientVersion {
        id: store::new_id(),
        project_id: project_id.to_owned(),
        channel: input.channel,
        sub_channel: input.sub_channel.unwrap_or_default(),
        version: input.version,
        status: input.status.unwrap_or_else(|| "online".into()),
        update_url: input.update_url,
        notes: input.notes,
        created_at: now,
        updated_at: now,
    };
    check_version(&v)?;
    store.insert_client_version(ctx, &v).await?;
    Ok(v)
}

pub async fn update(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    id: &str,
    patch: VersionPatch,
) -> ApiResult<ClientVersion> {
    loop {
        let current = store.get_client_version(project_id, id).await?;
        let mut v = current.clone();
        if let Some(x) = &patch.channel {
            v.channel = x.clone();
        }
        if let Some(x) = &patch.sub_channel {
            v.sub_channel = x.clone();
        }
        if let Some(x) = &patch.version {
            v.version = x.clone();
        }
        if let Some(x) = &patch.status {
            v.status = x.clone();
        }
        if let Some(x) = &patch.update_url {
            v.update_url = x.clone();
        }
        if let Some(x) = &patch.notes {
            v.notes = x.clone();
        }
        check_version(&v)?;
        v.updated_at = store::next_updated_at(current.updated_at);
        match store.update_client_version(ctx, &v, current.updated_at).await {
            Err(StoreError::Stale) => continue,
            other => other?,
        }
        return Ok(v);
    }
}

/// Compares version strings part by part (split on `.`, `-`, `+`): numeric parts as
/// numbers, others as text, so `1.10.0` > `1.9.2` and `1.2.3.4` works (builds are not
/// always semver).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| s.split(['.', '-', '+']).map(str::to_owned).collect::<Vec<_>>();
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let (x, y) = (pa.get(i).map(String::as_str).unwrap_or("0"), pb.get(i).map(String::as_str).unwrap_or("0"));
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(nx), Ok(ny)) => nx.cmp(&ny),
            _ => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// What a game client should do: `play`, `update_available`, `update_required`,
/// `maintenance` or `unavailable`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LookupAnswer {
    pub channel: String,
    pub sub_channel: String,
    pub version: String,
    /// Whether this exact version is registered.
    pub known: bool,
    /// The registered status of this version (`null` if unknown).
    pub status: Option<String>,
    pub action: &'static str,
    /// Newest registered version that clients may play (status `online` or `recommended_update`).
    pub latest_version: Option<String>,
    /// Where to update: this version's URL, else the latest version's.
    pub update_url: Option<String>,
    pub notes: Option<String>,
}

/// Answers for `(channel, sub_channel, version)`. A registered version acts on its status
/// (`online` -> play, `recommended_update` -> update_available, `forced_update` ->
/// update_required, `maintenance` -> maintenance, `offline` -> unavailable). An unregistered
/// version must update if a newer playable one exists, and is unavailable otherwise.
pub async fn lookup(
    store: &Store,
    project_id: &str,
    channel: &str,
    sub_channel: &str,
    version: &str,
) -> ApiResult<LookupAnswer> {
    let all = store.client_versions_of_channel(project_id, channel, sub_channel).await?;
    let latest = all
        .iter()
        .filter(|v| v.status == "online" || v.status == "recommended_update")
        .max_by(|a, b| compare_versions(&a.version, &b.version));
    let this = all.iter().find(|v| v.version == version);
    let action = match this.map(|v| v.status.as_str()) {
        Some("online") => "play",
        Some("recommended_update") => "update_available",
        Some("forced_update") => "update_required",
        Some("maintenance") => "maintenance",
        Some(_) => "unavailable",
        None => match latest {
            Some(l) if compare_versions(&l.version, version) == Ordering::Greater => "update_required",
            _ => "unavailable",
        },
    };
    Ok(LookupAnswer {
        channel: channel.to_owned(),
        sub_channel: sub_channel.to_owned(),
        version: version.to_owned(),
        known: this.is_some(),
        status: this.map(|v| v.status.clone()),
        action,
        latest_version: latest.map(|l| l.version.clone()),
        update_url: this.and_then(|v| v.update_url.clone()).or_else(|| latest.and_then(|l| l.update_url.clone())),
        notes: this.and_then(|v| v.notes.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::compare_versions;
    use std::cmp::Ordering::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("1.10.0", "1.9.2"), Greater);
        assert_eq!(compare_versions("1.2", "1.2.0"), Equal);
        assert_eq!(compare_versions("1.2.3.4", "1.2.3"), Greater);
        assert_eq!(compare_versions("2.0.0-beta", "2.0.0-alpha"), Greater);
    }
}
