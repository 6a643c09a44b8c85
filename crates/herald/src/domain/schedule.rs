//! Timed windows (world and game-wide maintenance, notices): when each one's transitions
//! fire, decided by pure functions, and the pass that fires the due ones on every node.
//!
//! A window is a switch with an optional start and end. What has been announced about it is
//! its [`Phase`], stored beside it: `idle` (nothing), `pending` (announced as scheduled, its
//! start not yet fired) or `active` (its start fired, its end not yet). A staff change
//! decides its transitions at once ([`on_change`]); the rest are fired by [`fire_due`] when
//! their time comes ([`due`]). Both write the new phase with a compare-and-set on the row's
//! `updated_at`, in the transaction that writes the events: when two nodes (or a node and a
//! staff change) race, one write wins and the other finds the row changed and re-reads, so a
//! transition fires exactly once. A node that was down fires what it missed on its first pass,
//! each transition with the time it was due (`effectiveAt` in the event).

use chrono::{DateTime, Utc};

pub use crate::store::windows::{Announce, Phase, Window, event_data};
use crate::{domain::DomainResult, store::Store};

/// What is announced, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A window that opens later was set or changed.
    Scheduled,
    /// The window opened; `at` is when it was due (its start), or the change's time.
    Started { at: DateTime<Utc> },
    /// The window closed; `at` is its end, or the time it was switched off.
    Ended { at: DateTime<Utc> },
    /// A window announced as scheduled was switched off or moved into the past before it
    /// opened.
    Cancelled,
}

/// The phase and transitions of a staff change from `before` to `after` at `now`, from
/// `phase`. An unchanged window announces nothing (a new message is only an update).
pub fn on_change(phase: Phase, before: Window, after: Window, now: DateTime<Utc>) -> (Phase, Vec<Transition>) {
    if before == after {
        return (phase, Vec::new());
    }
    let mut out = Vec::new();
    if !after.on {
        match phase {
            Phase::Active => out.push(Transition::Ended { at: now }),
            Phase::Pending => out.push(Transition::Cancelled),
            Phase::Idle => {}
        }
        return (Phase::Idle, out);
    }
    let started = after.starts_at.is_none_or(|s| s <= now);
    let over = after.ends_at.is_some_and(|e| e <= now);
    if phase == Phase::Active {
        if started && !over {
            // Still in effect, with new bounds: nothing opens or closes.
            return (Phase::Active, out);
        }
        out.push(Transition::Ended { at: now });
    }
    if !started {
        out.push(Transition::Scheduled);
        return (Phase::Pending, out);
    }
    if over {
        // A window wholly in the past is never in effect: nothing opens. One announced as
        // scheduled is withdrawn.
        if phase == Phase::Pending {
            out.push(Transition::Cancelled);
        }
        return (Phase::Idle, out);
    }
    out.push(Transition::Started { at: now });
    (Phase::Active, out)
}

/// The transitions due at `now` from `phase`, each at the time it was due, and the phase
/// after them. A window whose start and end both passed (a node down over it) fires both.
pub fn due(phase: Phase, w: Window, now: DateTime<Utc>) -> (Phase, Vec<Transition>) {
    let mut phase = phase;
    let mut out = Vec::new();
    if phase == Phase::Pending && w.on && w.starts_at.is_none_or(|s| s <= now) {
        out.push(Transition::Started { at: w.starts_at.unwrap_or(now) });
        phase = Phase::Active;
    }
    if phase == Phase::Active
        && let Some(end) = w.ends_at.filter(|e| *e <= now)
    {
        out.push(Transition::Ended { at: end });
        phase = Phase::Idle;
    }
    (phase, out)
}

/// When the next transition of a window in `phase` is due, if one is.
pub fn next_due(phase: Phase, w: Window) -> Option<DateTime<Utc>> {
    match phase {
        Phase::Pending if w.on => w.starts_at,
        Phase::Active => w.ends_at,
        _ => None,
    }
}

/// What one pass fired.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fired {
    pub transitions: usize,
}

/// Fires every transition due at `now`, in every project: world and game-wide maintenance,
/// notices. Safe on every node at once (see the module's comment); what another node fired
/// first is skipped.
pub async fn fire_due(store: &Store, now: DateTime<Utc>) -> DomainResult<Fired> {
    let mut fired = Fired::default();
    fired.transitions += super::worlds::fire_due(store, now).await?;
    fired.transitions += super::maintenance::fire_due(store, now).await?;
    fired.transitions += super::notices::fire_due(store, now).await?;
    Ok(fired)
}

/// The earliest time any window in any project has a transition due, after `now` or not.
pub async fn next_due_at(store: &Store) -> DomainResult<Option<DateTime<Utc>>> {
    let times = [
        store.next_world_transition().await?,
        store.next_project_maintenance_transition().await?,
        store.next_notice_transition().await?,
    ];
    Ok(times.into_iter().flatten().min())
}

/// The events announcing `transitions`, named by `name`.
pub fn announce(transitions: &[Transition], name: impl Fn(Transition) -> &'static str) -> Vec<Announce> {
    transitions
        .iter()
        .map(|t| match *t {
            Transition::Started { at } | Transition::Ended { at } => (name(*t), Some(at)),
            other => (name(other), None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).single().expect("date") + TimeDelta::hours(h)
    }

    const OFF: Window = Window::OFF;

    fn win(s: Option<i64>, e: Option<i64>) -> Window {
        Window { on: true, starts_at: s.map(t), ends_at: e.map(t) }
    }

    #[test]
    fn a_future_window_is_scheduled_then_starts_and_ends_on_time() {
        let (p, out) = on_change(Phase::Idle, OFF, win(Some(2), Some(4)), t(0));
        assert_eq!((p, out), (Phase::Pending, vec![Transition::Scheduled]));
        assert_eq!(due(p, win(Some(2), Some(4)), t(1)), (Phase::Pending, vec![]));
        let (p, out) = due(p, win(Some(2), Some(4)), t(2));
        assert_eq!((p, out), (Phase::Active, vec![Transition::Started { at: t(2) }]));
        assert_eq!(next_due(p, win(Some(2), Some(4))), Some(t(4)));
        assert_eq!(due(p, win(Some(2), Some(4)), t(5)), (Phase::Idle, vec![Transition::Ended { at: t(4) }]));
    }

    #[test]
    fn a_node_down_over_the_whole_window_fires_both_with_their_times() {
        let (p, out) = due(Phase::Pending, win(Some(2), Some(4)), t(9));
        assert_eq!((p, out), (Phase::Idle, vec![Transition::Started { at: t(2) }, Transition::Ended { at: t(4) }]));
    }

    #[test]
    fn changes_before_the_start_never_start_it() {
        let (p, out) = on_change(Phase::Pending, win(Some(2), None), win(Some(3), None), t(1));
        assert_eq!((p, out), (Phase::Pending, vec![Transition::Scheduled]));
        let (p, out) = on_change(Phase::Pending, win(Some(2), None), OFF, t(1));
        assert_eq!((p, out), (Phase::Idle, vec![Transition::Cancelled]));
        assert_eq!(due(p, OFF, t(5)), (Phase::Idle, vec![]));
        let (p, out) = on_change(Phase::Pending, win(Some(2), None), win(Some(-3), Some(-2)), t(1));
        assert_eq!((p, out), (Phase::Idle, vec![Transition::Cancelled]));
    }

    #[test]
    fn switching_on_and_off_now_fires_at_once() {
        let (p, out) = on_change(Phase::Idle, OFF, win(None, None), t(0));
        assert_eq!((p, out), (Phase::Active, vec![Transition::Started { at: t(0) }]));
        let (p, out) = on_change(p, win(None, None), win(None, Some(5)), t(1));
        assert_eq!((p, out), (Phase::Active, vec![]), "a new end while in effect announces nothing");
        let (p, out) = on_change(p, win(None, Some(5)), win(Some(3), Some(5)), t(1));
        assert_eq!((p, out), (Phase::Pending, vec![Transition::Ended { at: t(1) }, Transition::Scheduled]));
        let (p, out) = on_change(Phase::Active, win(None, None), OFF, t(1));
        assert_eq!((p, out), (Phase::Idle, vec![Transition::Ended { at: t(1) }]));
        let (p, out) = on_change(Phase::Idle, OFF, win(Some(-5), Some(-4)), t(0));
        assert_eq!((p, out), (Phase::Idle, vec![]), "a window wholly past starts nothing");
    }
}
