//! Client versions and the lookup a game client makes at start-up.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::{
    retry_on_stale,
    validate::{Checks, nullable},
};
use crate::vocab::VersionStatus;
use crate::{
    domain::DomainResult,
    events::EventContext,
    store::{self, Store, StoreError, versions::ClientVersion},
};

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

/// Checks `v` as built from a request; `status` is the status the request named, if it named
/// one (checked here, in the order of the other fields, though the row holds it parsed).
fn check_version(v: &ClientVersion, status: Option<&str>) -> DomainResult<()> {
    let mut c = Checks::default();
    c.ident("channel", &v.channel, 32, &[]);
    if !v.sub_channel.is_empty() {
        c.ident("subChannel", &v.sub_channel, 32, &[]);
    }
    c.ident("version", &v.version, 32, &['+']);
    if let Some(status) = status {
        c.one_of("status", status, VersionStatus::NAMES);
    }
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
) -> DomainResult<ClientVersion> {
    let now = store::now();
    let v = ClientVersion {
        id: store::new_id(),
        project_id: project_id.to_owned(),
        channel: input.channel,
        sub_channel: input.sub_channel.unwrap_or_default(),
        version: input.version,
        status: input.status.as_deref().and_then(VersionStatus::parse).unwrap_or(VersionStatus::Online),
        update_url: input.update_url,
        notes: input.notes,
        version_key: None,
        created_at: now,
        updated_at: now,
    };
    let v = ClientVersion { version_key: Some(version_key(&v.version)), ..v };
    check_version(&v, input.status.as_deref())?;
    store.insert_client_version(ctx, &v).await?;
    Ok(v)
}

pub async fn update(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    id: &str,
    patch: VersionPatch,
) -> DomainResult<ClientVersion> {
    let patch = &patch;
    retry_on_stale(|| async move {
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
        if let Some(x) = patch.status.as_deref().and_then(VersionStatus::parse) {
            v.status = x;
        }
        if let Some(x) = &patch.update_url {
            v.update_url = x.clone();
        }
        if let Some(x) = &patch.notes {
            v.notes = x.clone();
        }
        check_version(&v, patch.status.as_deref())?;
        v.version_key = Some(version_key(&v.version));
        v.updated_at = store::next_updated_at(current.updated_at);
        store.update_client_version(ctx, &v, current.updated_at).await?;
        Ok(v)
    })
    .await
}

/// A version's place in the order the lookup uses, and (through [`VersionKey::canonical`])
/// its identity: versions with equal keys are one version.
///
/// Semantic-version precedence (semver 2.0) extended to game builds that are not semver.
/// Hand-written rather than the `semver` crate, which rejects `1.10`, `1.2.3.4567` and
/// `2024.11.30`, all of which games register:
/// - build metadata (from the first `+`) is ignored;
/// - the pre-release starts at the first `-`: a version with one is older than the same
///   version without (`2.0.0-rc.1` < `2.0.0`);
/// - the core is split on `.` and compared part by part, a missing part counting as `0`
///   (`1.10` = `1.10.0`, `1.2.3.4567` > `1.2.3`); numeric parts compare as numbers, of any
///   length, leading zeros ignored;
/// - pre-release identifiers (split on `.`) compare as semver says: numbers numerically,
///   numbers before text, text by ASCII, and a longer list wins when the shorter is its
///   prefix (`alpha` < `alpha.1` < `alpha.beta` < `beta` < `beta.2` < `beta.11` < `rc.1`).
///
/// Non-numeric core parts (`v1`, `3_hotfix`) compare as text, after numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionKey {
    /// Trailing zero parts dropped, so the derived equality treats `1.10` as `1.10.0`.
    core: Vec<Part>,
    pre: Option<Vec<Part>>,
}

/// A dot-separated part. The variant order makes numbers sort before text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    /// Digits without leading zeros (`"0"` for zero), after their count: ordering by
    /// (length, digits) is numeric ordering for numbers of any size.
    Num(usize, String),
    Text(String),
}

impl Part {
    fn parse(s: &str) -> Part {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let digits = s.trim_start_matches('0');
            let digits = if digits.is_empty() { "0" } else { digits };
            Part::Num(digits.len(), digits.to_owned())
        } else {
            Part::Text(s.to_owned())
        }
    }

    fn is_zero(&self) -> bool {
        matches!(self, Part::Num(_, d) if d == "0")
    }

    fn as_str(&self) -> &str {
        match self {
            Part::Num(_, s) | Part::Text(s) => s,
        }
    }
}

impl VersionKey {
    pub fn parse(version: &str) -> VersionKey {
        let without_build = version.split_once('+').map_or(version, |(v, _)| v);
        let (core, pre) = match without_build.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (without_build, None),
        };
        let mut core: Vec<Part> = core.split('.').map(Part::parse).collect();
        while core.last().is_some_and(Part::is_zero) {
            core.pop();
        }
        VersionKey { core, pre: pre.map(|p| p.split('.').map(Part::parse).collect()) }
    }

    /// The one spelling of this version (stored as `version_key`, unique per channel and
    /// subChannel): `1.10.0` and `01.10+build.5` both give `1.10`.
    pub fn canonical(&self) -> String {
        let join = |parts: &[Part]| parts.iter().map(Part::as_str).collect::<Vec<_>>().join(".");
        // An all-zero core is empty after trimming; `0` cannot be a text part, so this
        // spelling is no other version's.
        let mut out = if self.core.is_empty() { "0".to_owned() } else { join(&self.core) };
        if let Some(pre) = &self.pre {
            out.push('-');
            out.push_str(&join(pre));
        }
        out
    }
}

impl Ord for VersionKey {
    fn cmp(&self, other: &Self) -> Ordering {
        // Vec ordering is part by part with a shorter prefix first, which with trailing
        // zeros trimmed is "a missing part is 0" for the core, and semver's rule for
        // pre-releases.
        self.core.cmp(&other.core).then_with(|| match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => a.cmp(b),
        })
    }
}

impl PartialOrd for VersionKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two version strings by [`VersionKey`].
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    VersionKey::parse(a).cmp(&VersionKey::parse(b))
}

/// The stored form of `version` that makes equal versions collide (see [`VersionKey`]).
pub fn version_key(version: &str) -> String {
    VersionKey::parse(version).canonical()
}

/// Fills `version_key` of versions registered before it existed (migration 0006 cannot
/// compute it in SQL). A version equal to one already holding the key (both spellings were
/// registered before) keeps none and is logged: delete one of the two. Returns how many
/// were filled.
pub async fn backfill_version_keys(store: &Store) -> anyhow::Result<usize> {
    let mut filled = 0;
    for (id, version) in store.client_versions_without_key().await? {
        match store.set_client_version_key(&id, &version_key(&version)).await {
            Ok(()) => filled += 1,
            Err(StoreError::Conflict(_)) => tracing::warn!(
                client_version = %id, version = %version,
                "this client version equals another registered in the same channel and subChannel \
                 (e.g. 1.10 and 1.10.0); delete one of them"
            ),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
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
) -> DomainResult<LookupAnswer> {
    let all = store.client_versions_of_channel(project_id, channel, sub_channel).await?;
    let asked = VersionKey::parse(version);
    let keyed: Vec<(VersionKey, &ClientVersion)> = all.iter().map(|v| (VersionKey::parse(&v.version), v)).collect();
    let latest = keyed
        .iter()
        .filter(|(_, v)| matches!(v.status, VersionStatus::Online | VersionStatus::RecommendedUpdate))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, v)| *v);
    // `1.10` finds `1.10.0`; the exact spelling wins if (from before keys) both exist.
    let this = keyed.iter().filter(|(k, _)| *k == asked).min_by_key(|(_, v)| v.version != version).map(|(_, v)| *v);
    let action = match this.map(|v| v.status) {
        Some(VersionStatus::Online) => "play",
        Some(VersionStatus::RecommendedUpdate) => "update_available",
        Some(VersionStatus::ForcedUpdate) => "update_required",
        Some(VersionStatus::Maintenance) => "maintenance",
        Some(VersionStatus::Offline) => "unavailable",
        None => match latest {
            Some(l) if VersionKey::parse(&l.version) > asked => "update_required",
            _ => "unavailable",
        },
    };
    Ok(LookupAnswer {
        channel: channel.to_owned(),
        sub_channel: sub_channel.to_owned(),
        version: version.to_owned(),
        known: this.is_some(),
        status: this.map(|v| v.status.to_string()),
        action,
        latest_version: latest.map(|l| l.version.clone()),
        update_url: this.and_then(|v| v.update_url.clone()).or_else(|| latest.and_then(|l| l.update_url.clone())),
        notes: this.and_then(|v| v.notes.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::{compare_versions, version_key};
    use std::cmp::Ordering::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("1.10.0", "1.9.2"), Greater);
        assert_eq!(compare_versions("1.2", "1.2.0"), Equal);
        assert_eq!(compare_versions("1.2.3.4", "1.2.3"), Greater);
        assert_eq!(compare_versions("2.0.0-beta", "2.0.0-alpha"), Greater);
        assert_eq!(compare_versions("99999999999999999999999.1", "99999999999999999999998.2"), Greater);
    }

    #[test]
    fn semver_precedence() {
        // semver.org, section 11, in increasing order.
        let spec = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0-rc.1",
            "2.0.0",
        ];
        for (i, a) in spec.iter().enumerate() {
            for (j, b) in spec.iter().enumerate() {
                assert_eq!(compare_versions(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
        assert_eq!(compare_versions("2.0.0+build.1", "2.0.0+build.2"), Equal, "build metadata is ignored");
        assert_eq!(compare_versions("2.0.0-rc.1+exp", "2.0.0-rc.1"), Equal);
        assert_eq!(compare_versions("1.0.0-x-y", "1.0.0-x"), Greater, "a hyphen inside a pre-release is text");
    }

    #[test]
    fn game_builds_compare_part_by_part() {
        assert_eq!(compare_versions("1.2.3.4567", "1.2.3.999"), Greater);
        assert_eq!(compare_versions("2024.11.30", "2024.9.1"), Greater);
        assert_eq!(compare_versions("2024.01.05", "2024.1.5"), Equal, "leading zeros do not count");
        assert_eq!(compare_versions("1.2.3.0", "1.2.3"), Equal);
        assert_eq!(compare_versions("1.2.3.0.1", "1.2.3"), Greater);
        assert_eq!(compare_versions("v2", "10"), Greater, "text parts sort after numbers");
    }

    #[test]
    fn equal_versions_share_one_key() {
        for (a, b) in [("1.10", "1.10.0"), ("1.10", "01.010.0.0"), ("2.0.0+build.5", "2.0"), ("0.0", "0")] {
            assert_eq!(version_key(a), version_key(b), "{a} = {b}");
        }
        for (a, b) in [("1.10", "1.1"), ("1.0.0-rc.1", "1.0.0"), ("1.0.0-rc.1", "1.0.0-rc.1.0"), ("v1", "1")] {
            assert_ne!(version_key(a), version_key(b), "{a} != {b}");
        }
        assert_eq!(version_key("01.10.0+b"), "1.10");
        assert_eq!(version_key("1.0.0-rc.01"), "1-rc.1");
        assert_eq!(version_key("0.0.0"), "0");
    }
}
