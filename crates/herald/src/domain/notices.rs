//! Notices: localized announcements with a window and targeting. `notice.published` and
//! `notice.ended` are written when a notice becomes visible and stops being visible, on time
//! (by the scheduler, see [`schedule`]).

use std::{cmp::Ordering, collections::BTreeMap};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::types::Json;

use super::{
    retry_on_stale,
    schedule::{self, Announce, Phase, Transition},
    validate::{Checks, nullable},
    versions::compare_versions,
};
use crate::{
    domain::DomainResult,
    events::{EventContext, types},
    store::{self, Store, StoreError, notices::Notice},
};

pub const KINDS: &[&str] = &["notice", "banner", "popup"];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewNotice {
    /// Titles keyed by language code; at least one.
    pub title: BTreeMap<String, String>,
    /// Bodies keyed by language code.
    pub body: Option<BTreeMap<String, String>>,
    /// `notice` (default), `banner` or `popup`.
    pub kind: Option<String>,
    /// Higher first (default 0).
    pub priority: Option<i64>,
    /// Shown only on these client channels (default: all).
    pub channels: Option<Vec<String>>,
    /// Shown only on these sub-channels (default: all).
    pub sub_channels: Option<Vec<String>>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    /// Default `true`.
    pub enabled: Option<bool>,
    #[serde(alias = "starts_at")]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(alias = "ends_at")]
    pub ends_at: Option<DateTime<Utc>>,
}

/// `PUT`/`PATCH /notices/{id}`: the fields given are changed; `null` clears an optional one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NoticePatch {
    pub title: Option<BTreeMap<String, String>>,
    pub body: Option<BTreeMap<String, String>>,
    pub kind: Option<String>,
    pub priority: Option<i64>,
    pub channels: Option<Vec<String>>,
    pub sub_channels: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub min_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub max_version: Option<Option<String>>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable", alias = "starts_at")]
    pub starts_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable", alias = "ends_at")]
    pub ends_at: Option<Option<DateTime<Utc>>>,
}

fn check(n: &Notice) -> DomainResult<()> {
    let mut c = Checks::default();
    c.one_of("kind", &n.kind, KINDS);
    if n.title.0.is_empty() {
        c.fail("title", "give at least one language, like {\"en\": \"...\"}");
    }
    for (field, texts, max) in [("title", &n.title.0, 200), ("body", &n.body.0, 10_000)] {
        if texts.len() > 50 {
            c.fail(field, "at most 50 languages");
        }
        for (lang, text) in texts {
            c.ident(field, lang, 16, &[]);
            c.text(&format!("{field}.{lang}"), text, 1, max);
        }
    }
    for (field, list) in [("channels", &n.channels.0), ("subChannels", &n.sub_channels.0)] {
        if list.len() > 50 {
            c.fail(field, "at most 50 entries");
        }
        for v in list {
            c.text(field, v, 1, 64);
        }
    }
    c.opt_text("minVersion", n.min_version.as_deref(), 64);
    c.opt_text("maxVersion", n.max_version.as_deref(), 64);
    if let (Some(min), Some(max)) = (&n.min_version, &n.max_version)
        && compare_versions(min, max) == Ordering::Greater
    {
        c.fail("maxVersion", "must not be lower than minVersion");
    }
    if let (Some(start), Some(end)) = (n.starts_at, n.ends_at)
        && end <= start
    {
        c.fail("endsAt", "must be after startsAt");
    }
    c.finish()
}

fn transition_type(t: Transition) -> Option<&'static str> {
    match t {
        Transition::Started { .. } => Some(types::NOTICE_PUBLISHED),
        Transition::Ended { .. } => Some(types::NOTICE_ENDED),
        // Creating or changing a notice writes `notice.created` / `notice.updated`, which say
        // when it will show.
        Transition::Scheduled | Transition::Cancelled => None,
    }
}

fn announce(transitions: &[Transition]) -> Vec<Announce> {
    let shown: Vec<Transition> = transitions.iter().copied().filter(|t| transition_type(*t).is_some()).collect();
    schedule::announce(&shown, |t| transition_type(t).unwrap_or(types::NOTICE_UPDATED))
}

pub async fn create(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    input: NewNotice,
    now: DateTime<Utc>,
) -> DomainResult<Notice> {
    let at = store::now();
    let mut n = Notice {
        id: store::new_id(),
        project_id: project_id.to_owned(),
        kind: input.kind.unwrap_or_else(|| "notice".into()),
        priority: input.priority.unwrap_or(0),
        title: Json(input.title),
        body: Json(input.body.unwrap_or_default()),
        channels: Json(input.channels.unwrap_or_default()),
        sub_channels: Json(input.sub_channels.unwrap_or_default()),
        min_version: input.min_version,
        max_version: input.max_version,
        enabled: input.enabled.unwrap_or(true),
        starts_at: input.starts_at.map(store::truncate),
        ends_at: input.ends_at.map(store::truncate),
        phase: Phase::Idle.as_str().to_owned(),
        created_at: at,
        updated_at: at,
        active: false,
    };
    check(&n)?;
    let (phase, transitions) = schedule::on_change(Phase::Idle, schedule::Window::OFF, n.window(), now);
    n.phase = phase.as_str().to_owned();
    let mut events = vec![(types::NOTICE_CREATED, None)];
    events.extend(announce(&transitions));
    store.insert_notice(ctx, &n, &events).await?;
    Ok(n.at(now))
}

pub async fn update(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    id: &str,
    patch: NoticePatch,
    now: DateTime<Utc>,
) -> DomainResult<Notice> {
    let patch = &patch;
    retry_on_stale(|| async move {
        let current = store.get_notice(project_id, id).await?;
        let mut n = current.clone();
        if let Some(v) = &patch.title {
            n.title = Json(v.clone());
        }
        if let Some(v) = &patch.body {
            n.body = Json(v.clone());
        }
        if let Some(v) = &patch.kind {
            n.kind = v.clone();
        }
        if let Some(v) = patch.priority {
            n.priority = v;
        }
        if let Some(v) = &patch.channels {
            n.channels = Json(v.clone());
        }
        if let Some(v) = &patch.sub_channels {
            n.sub_channels = Json(v.clone());
        }
        if let Some(v) = &patch.min_version {
            n.min_version = v.clone();
        }
        if let Some(v) = &patch.max_version {
            n.max_version = v.clone();
        }
        if let Some(v) = patch.enabled {
            n.enabled = v;
        }
        if let Some(v) = patch.starts_at {
            n.starts_at = v.map(store::truncate);
        }
        if let Some(v) = patch.ends_at {
            n.ends_at = v.map(store::truncate);
        }
        check(&n)?;
        n.updated_at = store::next_updated_at(current.updated_at);
        let (phase, transitions) = schedule::on_change(current.phase(), current.window(), n.window(), now);
        n.phase = phase.as_str().to_owned();
        let mut events = vec![(types::NOTICE_UPDATED, None)];
        events.extend(announce(&transitions));
        store.update_notice(ctx, &n, current.updated_at, &events).await?;
        Ok(n.at(now))
    })
    .await
}

/// Deletes a notice; one that was showing ends (`notice.ended`) first.
pub async fn delete(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    id: &str,
    now: DateTime<Utc>,
) -> DomainResult<Notice> {
    retry_on_stale(|| async move {
        let n = store.get_notice(project_id, id).await?;
        let mut events = Vec::new();
        if n.phase() == Phase::Active {
            events.push((types::NOTICE_ENDED, Some(now)));
        }
        events.push((types::NOTICE_DELETED, None));
        store.delete_notice(ctx, &n, n.updated_at, &events).await?;
        Ok(n.at(now))
    })
    .await
}

/// Fires the notice transitions due at `now`; returns how many.
pub(crate) async fn fire_due(store: &Store, now: DateTime<Utc>) -> DomainResult<usize> {
    let ctx = EventContext::system();
    let mut fired = 0;
    for current in store.notices_due(now).await? {
        let (phase, transitions) = schedule::due(current.phase(), current.window(), now);
        if transitions.is_empty() {
            continue;
        }
        let mut n = current.clone();
        n.phase = phase.as_str().to_owned();
        n.updated_at = store::next_updated_at(current.updated_at);
        match store.update_notice(&ctx, &n, current.updated_at, &announce(&transitions)).await {
            // Another node fired it, or staff changed it (and decided its transitions).
            Err(StoreError::Stale) => continue,
            other => other?,
        }
        fired += transitions.len();
    }
    Ok(fired)
}

/// Whether `n` is meant for a client on `channel`/`sub_channel` at `version`. A client that
/// does not say its version sees only notices without version bounds.
pub fn targets(n: &Notice, channel: Option<&str>, sub_channel: Option<&str>, version: Option<&str>) -> bool {
    let listed = |list: &[String], value: Option<&str>| {
        list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l.eq_ignore_ascii_case(v)))
    };
    let in_range = match version {
        Some(v) => {
            n.min_version.as_deref().is_none_or(|min| compare_versions(v, min) != Ordering::Less)
                && n.max_version.as_deref().is_none_or(|max| compare_versions(v, max) != Ordering::Greater)
        }
        None => n.min_version.is_none() && n.max_version.is_none(),
    };
    listed(&n.channels.0, channel) && listed(&n.sub_channels.0, sub_channel) && in_range
}

/// The notices a client on `channel`/`sub_channel` at `version` is shown at `now`, highest
/// priority first (then newest).
pub async fn active_notices(
    store: &Store,
    project_id: &str,
    channel: Option<&str>,
    sub_channel: Option<&str>,
    version: Option<&str>,
    now: DateTime<Utc>,
) -> DomainResult<Vec<Notice>> {
    let all = store.notices_active_at(project_id, now).await?;
    Ok(all.into_iter().filter(|n| targets(n, channel, sub_channel, version)).map(|n| n.at(now)).collect())
}
