//! Which sockets an event reaches, under which names: a pure function of the event, so the
//! rules can be read (and tested) in one place. The feed (`feed.rs`) carries the steps out.
//!
//! Sockets are grouped in rooms named after who they are:
//!
//! | room                  | members                                                   |
//! |-----------------------|-----------------------------------------------------------|
//! | `k/{project}/{pattern}` | server sockets (API key) subscribed to `pattern`        |
//! | `p/{project}`         | every player socket of the project                        |
//! | `u/{project}/{user}`  | the sockets of one player                                 |
//! | `s/{session}`         | the sockets of one player session token                   |
//! | `c/{project}/{channel}` | the sockets of the channel's subscribers                |
//! | `v/{project}/{client channel}` | player sockets that said their client channel (`PC`, `Android`; lower-cased) at the handshake |
//!
//! The kind comes first and project ids hold no `/`, so no two rooms share a name.

use serde_json::Value;

use crate::{events::types, store::events::EventRow};

/// What the feed does for one event, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Emit each of `packets` (`name`, payload), in order, to every socket in any of `rooms`
    /// (once per socket). An event's alias and its dotted name form one step, so the feed can
    /// hand both to a socket together and its connection writes them in one go.
    Emit { rooms: Vec<String>, packets: Vec<(String, Payload)> },
    /// The sockets in room `of` join `room`.
    Join { of: String, room: String },
    /// The sockets in room `of` leave `room`.
    Leave { of: String, room: String },
    /// The sockets in `room` are disconnected.
    Disconnect { room: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The event envelope, as webhooks carry it.
    Envelope,
    /// The envelope plus the fields the seeds' client reads (`alias_json`).
    Alias,
    /// A chat message in the socket form (`message_json`).
    Message,
}

/// The seeds' names for some events (the Gatrix client listens for these).
pub fn alias(event_type: &str) -> Option<&'static str> {
    match event_type {
        types::USER_CREATED => Some("user_registered"),
        types::USER_LOGIN => Some("user_login"),
        types::WORLD_MAINTENANCE_STARTED => Some("world_maintenance_started"),
        types::WORLD_MAINTENANCE_ENDED => Some("world_maintenance_ended"),
        _ => None,
    }
}

pub fn key_room(project: &str, pattern: &str) -> String {
    format!("k/{project}/{pattern}")
}
pub fn players_room(project: &str) -> String {
    format!("p/{project}")
}
pub fn user_room(project: &str, user: &str) -> String {
    format!("u/{project}/{user}")
}
pub fn session_room(session: &str) -> String {
    format!("s/{session}")
}
pub fn channel_room(project: &str, channel: &str) -> String {
    format!("c/{project}/{channel}")
}
/// Client channels are matched without regard to case, as the version lookup does.
pub fn client_channel_room(project: &str, client_channel: &str) -> String {
    format!("v/{project}/{}", client_channel.to_lowercase())
}

/// Client version statuses that mean a running client must act (update, or stop): a version
/// created or changed into one is pushed to the player sockets of its channel.
pub const ACTION_STATUSES: &[&str] = &["forced_update", "maintenance", "offline"];

/// The patterns that select `event_type`: `*`, each prefix (`a.*`, `a.b.*`), and the type.
fn patterns_of(event_type: &str) -> Vec<String> {
    let mut out = vec!["*".to_owned()];
    for (i, _) in event_type.match_indices('.') {
        out.push(format!("{}.*", &event_type[..i]));
    }
    out.push(event_type.to_owned());
    out
}

fn emit(rooms: Vec<String>, name: &str, payload: Payload) -> Step {
    Step::Emit { rooms, packets: vec![(name.to_owned(), payload)] }
}

/// The event under the seeds' alias (where it has one, first: it is what the seeds' clients
/// wait for), then under its dotted name.
fn emit_named(rooms: Vec<String>, event_type: &str) -> Step {
    let mut packets = Vec::with_capacity(2);
    if let Some(alias) = alias(event_type) {
        packets.push((alias.to_owned(), Payload::Alias));
    }
    packets.push((event_type.to_owned(), Payload::Envelope));
    Step::Emit { rooms, packets }
}

fn str_field<'a>(data: &'a Value, field: &str) -> Option<&'a str> {
    data.get(field).and_then(Value::as_str)
}

/// Every step for `event`. Events outside a project reach no socket.
pub fn plan(event: &EventRow) -> Vec<Step> {
    let Some(project) = event.project_id.as_deref() else { return Vec::new() };
    let t = event.event_type.as_str();
    let data = &event.data.0;
    let mut steps = Vec::new();

    // Server sockets: by subscription, under the dotted name and the seeds' alias.
    let key_rooms: Vec<String> = patterns_of(t).iter().map(|p| key_room(project, p)).collect();
    steps.push(emit_named(key_rooms, t));

    // Players: world maintenance, their own profile, and the channels they subscribe to.
    let resource_user = (event.resource_type.as_deref() == Some("user")).then_some(event.resource_id.as_deref());
    match t {
        // Maintenance reaches players when it is scheduled, opens, closes or is withdrawn:
        // `*_started` / `*_ended` are written when the window really opens and closes (the
        // scheduler), so the seeds' aliases follow that timing too.
        types::WORLD_MAINTENANCE_STARTED
        | types::WORLD_MAINTENANCE_ENDED
        | types::WORLD_MAINTENANCE_SCHEDULED
        | types::WORLD_MAINTENANCE_CANCELLED
        | types::MAINTENANCE_SCHEDULED
        | types::MAINTENANCE_STARTED
        | types::MAINTENANCE_ENDED
        | types::MAINTENANCE_CANCELLED => {
            steps.push(emit_named(vec![players_room(project)], t));
        }
        // A notice reaches the players of the channels it targets (all players when it
        // targets none) when it is published and when it ends.
        types::NOTICE_PUBLISHED | types::NOTICE_ENDED => {
            let channels: Vec<&str> = data
                .get("channels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let rooms = if channels.is_empty() {
                vec![players_room(project)]
            } else {
                channels.iter().map(|c| client_channel_room(project, c)).collect()
            };
            steps.push(emit(rooms, t, Payload::Envelope));
        }
        // A version that must not be played any more reaches the players of its channel.
        types::CLIENT_VERSION_CREATED | types::CLIENT_VERSION_UPDATED => {
            let (Some(status), Some(channel)) = (str_field(data, "status"), str_field(data, "channel")) else {
                return steps;
            };
            if ACTION_STATUSES.contains(&status) {
                steps.push(emit(vec![client_channel_room(project, channel)], t, Payload::Envelope));
            }
        }
        types::USER_UPDATED | types::USER_LOGIN | types::USER_DELETED | types::USER_SESSIONS_REVOKED => {
            let Some(Some(user)) = resource_user else { return steps };
            let room = user_room(project, user);
            steps.push(emit_named(vec![room.clone()], t));
            let inactive = t == types::USER_UPDATED && str_field(data, "status").is_some_and(|s| s != "active");
            if t == types::USER_DELETED || inactive {
                steps.push(Step::Disconnect { room });
            } else if t == types::USER_SESSIONS_REVOKED {
                let sessions = data.get("sessionIds").and_then(Value::as_array).into_iter().flatten();
                for id in sessions.filter_map(Value::as_str) {
                    steps.push(Step::Disconnect { room: session_room(id) });
                }
            }
        }
        types::CHAT_USER_UPDATED | types::CHAT_USER_DELETED => {
            if let Some(user) = str_field(data, "userId").or(event.resource_id.as_deref()) {
                steps.push(emit(vec![user_room(project, user)], t, Payload::Envelope));
            }
        }
        types::CHAT_SUBSCRIBED | types::CHAT_UNSUBSCRIBED => {
            let (Some(channel), Some(user)) = (str_field(data, "channelId"), str_field(data, "userId")) else {
                return steps;
            };
            let room = channel_room(project, channel);
            let of = user_room(project, user);
            if t == types::CHAT_SUBSCRIBED {
                steps.push(Step::Join { of, room: room.clone() });
                steps.push(emit(vec![room], t, Payload::Envelope));
            } else {
                steps.push(emit(vec![room.clone()], t, Payload::Envelope));
                steps.push(Step::Leave { of, room });
            }
        }
        types::CHAT_CHANNEL_UPDATED | types::CHAT_CHANNEL_DELETED => {
            let Some(channel) = event.resource_id.as_deref() else { return steps };
            let room = channel_room(project, channel);
            steps.push(emit(vec![room.clone()], t, Payload::Envelope));
            if t == types::CHAT_CHANNEL_DELETED {
                steps.push(Step::Leave { of: room.clone(), room });
            }
        }
        types::CHAT_MESSAGE_CREATED | types::CHAT_MESSAGE_UPDATED | types::CHAT_MESSAGE_DELETED => {
            let Some(channel) = str_field(data, "channelId") else { return steps };
            let room = channel_room(project, channel);
            let name = match t {
                types::CHAT_MESSAGE_CREATED => "message",
                types::CHAT_MESSAGE_UPDATED => "message_updated",
                _ => "message_deleted",
            };
            let packets = vec![(name.to_owned(), Payload::Message), (t.to_owned(), Payload::Envelope)];
            steps.push(Step::Emit { rooms: vec![room], packets });
        }
        _ => {}
    }
    steps
}

/// The payload of an aliased event: the envelope, plus what the seeds' Gatrix client reads
/// from it: `user` and `userId` for user events, `worldId` and `world` for world events.
pub fn alias_json(mut envelope: Value, event: &EventRow) -> Value {
    let data = &event.data.0;
    if let Some(map) = envelope.as_object_mut() {
        match event.resource_type.as_deref() {
            Some("user") => {
                map.insert("userId".into(), data.get("id").cloned().unwrap_or(Value::Null));
                map.insert("user".into(), data.clone());
            }
            Some("world") => {
                map.insert("worldId".into(), data.get("worldId").cloned().unwrap_or(Value::Null));
                map.insert("world".into(), data.clone());
            }
            _ => {}
        }
    }
    envelope
}

/// A chat message as sockets receive it (`message`, `message_updated`, `message_deleted`),
/// from the data of a `chat.message.*` event.
pub fn message_json(data: &Value) -> Value {
    let field = |name: &str| data.get(name).cloned().unwrap_or(Value::Null);
    serde_json::json!({
        "channelId": field("channelId"),
        "id": field("id"),
        "sender": field("userId"),
        "text": field("text"),
        "data": field("data"),
        "time": field("createdAt"),
        "updatedAt": field("updatedAt"),
        "deleted": field("deleted"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sqlx::types::Json;

    use super::*;

    fn event(t: &str, resource: Option<(&str, &str)>, data: Value) -> EventRow {
        EventRow {
            seq: 1,
            id: "e1".into(),
            organization_id: None,
            project_id: Some("p1".into()),
            event_type: t.into(),
            resource_type: resource.map(|r| r.0.to_owned()),
            resource_id: resource.map(|r| r.1.to_owned()),
            data: Json(data),
            request_id: None,
            actor: None,
            idempotency_key: None,
            sandbox: false,
            occurred_at: chrono::Utc::now(),
        }
    }

    fn emitted(steps: &[Step]) -> Vec<(Vec<String>, String)> {
        steps
            .iter()
            .flat_map(|s| match s {
                Step::Emit { rooms, packets } => {
                    packets.iter().map(|(name, _)| (rooms.clone(), name.clone())).collect()
                }
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn server_sockets_get_dotted_names_and_aliases_by_pattern() {
        let steps = plan(&event("user.created", Some(("user", "u1")), json!({})));
        let rooms = vec!["k/p1/*".to_owned(), "k/p1/user.*".to_owned(), "k/p1/user.created".to_owned()];
        assert_eq!(emitted(&steps), vec![(rooms.clone(), "user_registered".into()), (rooms, "user.created".into())]);
    }

    #[test]
    fn players_get_maintenance_their_profile_and_their_channels_only() {
        let steps = plan(&event("world.maintenance_started", Some(("world", "w1")), json!({})));
        assert!(emitted(&steps).contains(&(vec!["p/p1".into()], "world_maintenance_started".into())));

        let steps = plan(&event("user.updated", Some(("user", "u1")), json!({"status": "active"})));
        assert!(emitted(&steps).contains(&(vec!["u/p1/u1".into()], "user.updated".into())));
        assert!(!steps.iter().any(|s| matches!(s, Step::Disconnect { .. })));

        let steps = plan(&event("user.created", Some(("user", "u1")), json!({})));
        assert!(emitted(&steps).iter().all(|(rooms, _)| rooms.iter().all(|r| r.starts_with("k/"))));

        let steps = plan(&event("chat.message.created", None, json!({"channelId": "c1", "id": 7})));
        assert!(emitted(&steps).contains(&(vec!["c/p1/c1".into()], "message".into())));
    }

    #[test]
    fn membership_follows_subscriptions_and_bans_disconnect() {
        let steps = plan(&event("chat.subscribed", None, json!({"channelId": "c1", "userId": "u1"})));
        let join = steps.iter().position(|s| *s == Step::Join { of: "u/p1/u1".into(), room: "c/p1/c1".into() });
        let told = steps.iter().position(|s| matches!(s, Step::Emit { rooms, .. } if rooms == &["c/p1/c1"]));
        assert!(join.expect("joins") < told.expect("told"), "the new subscriber hears of its own join: {steps:?}");
        let steps = plan(&event("chat.unsubscribed", None, json!({"channelId": "c1", "userId": "u1"})));
        assert_eq!(steps.last(), Some(&Step::Leave { of: "u/p1/u1".into(), room: "c/p1/c1".into() }));
        let steps = plan(&event("user.updated", Some(("user", "u1")), json!({"status": "suspended"})));
        assert_eq!(steps.last(), Some(&Step::Disconnect { room: "u/p1/u1".into() }));
        let steps = plan(&event("user.sessions_revoked", Some(("user", "u1")), json!({"sessionIds": ["s1", "s2"]})));
        assert!(steps.contains(&Step::Disconnect { room: "s/s2".into() }));
    }

    #[test]
    fn notices_and_versions_reach_their_client_channels() {
        let steps = plan(&event("notice.published", Some(("notice", "n1")), json!({"channels": ["PC", "Android"]})));
        assert!(emitted(&steps).contains(&(vec!["v/p1/pc".into(), "v/p1/android".into()], "notice.published".into())));
        let steps = plan(&event("notice.ended", Some(("notice", "n1")), json!({"channels": []})));
        assert!(emitted(&steps).contains(&(vec!["p/p1".into()], "notice.ended".into())));
        let steps = plan(&event("client_version.updated", None, json!({"channel": "PC", "status": "forced_update"})));
        assert!(emitted(&steps).contains(&(vec!["v/p1/pc".into()], "client_version.updated".into())));
        let steps = plan(&event("client_version.updated", None, json!({"channel": "PC", "status": "online"})));
        assert!(emitted(&steps).iter().all(|(rooms, _)| rooms.iter().all(|r| r.starts_with("k/"))));
    }

    #[test]
    fn events_outside_a_project_reach_nobody() {
        let mut e = event("organization.created", None, json!({}));
        e.project_id = None;
        assert!(plan(&e).is_empty());
    }
}
