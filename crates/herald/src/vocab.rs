//! The closed sets of names Herald stores and sends (scopes, roles, statuses), each a
//! [`text_enum!`]: compared as values, stored and sent as their names, as before. Ground
//! floor: the store, the domain, `auth` and `api` all use them, so they depend on nothing.

use crate::text_enum::text_enum;

text_enum! {
    /// Every scope a key may hold. `admin` implies all of them; `x:write` implies `x:read`.
    pub enum Scope {
        Admin = "admin",
        UsersRead = "users:read",
        UsersWrite = "users:write",
        WorldsRead = "worlds:read",
        WorldsWrite = "worlds:write",
        VersionsRead = "versions:read",
        VersionsWrite = "versions:write",
        WebhooksRead = "webhooks:read",
        WebhooksWrite = "webhooks:write",
        EventsRead = "events:read",
        EventsPublish = "events:publish",
        ChatRead = "chat:read",
        ChatWrite = "chat:write",
        MetricsRead = "metrics:read",
    }
}

impl Scope {
    /// Whether holding `self` grants `needed`.
    pub fn grants(self, needed: Scope) -> bool {
        use Scope::*;
        self == Admin
            || self == needed
            || matches!(
                (self, needed),
                (UsersWrite, UsersRead)
                    | (WorldsWrite, WorldsRead)
                    | (VersionsWrite, VersionsRead)
                    | (WebhooksWrite, WebhooksRead)
                    | (ChatWrite, ChatRead)
            )
    }

    /// Scopes as a comma-separated list (`users:read,admin`).
    pub fn list(scopes: &[Scope]) -> String {
        scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
    }
}

text_enum! {
    /// An admin account's role (`owner` or `admin`; they may do the same today).
    pub enum AdminRole {
        Owner = "owner",
        Admin = "admin",
    }
}

text_enum! {
    /// Where a webhook delivery stands: `pending` (due at `nextAttemptAt`, or being sent),
    /// then `succeeded` or `failed` for good.
    pub enum DeliveryStatus {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

text_enum! {
    /// A player's account status: `active` players may sign in; `suspended` and `deleted`
    /// ones may not (session tokens and sockets are refused).
    pub enum UserStatus {
        Active = "active",
        Suspended = "suspended",
        Deleted = "deleted",
    }
}

text_enum! {
    /// A registered client version's status, which decides the lookup's `action`.
    pub enum VersionStatus {
        Online = "online",
        Offline = "offline",
        RecommendedUpdate = "recommended_update",
        ForcedUpdate = "forced_update",
        Maintenance = "maintenance",
    }
}

#[cfg(test)]
mod tests {
    use super::Scope;

    /// `admin` grants everything, `x:write` grants `x:read`, nothing else grants more than
    /// itself: the rule as it was written over scope names.
    #[test]
    fn scopes_grant_as_their_names_say() {
        let by_name = |held: &str, needed: &str| {
            held == "admin"
                || held == needed
                || (needed.ends_with(":read")
                    && held.strip_suffix(":write").is_some_and(|p| Some(p) == needed.strip_suffix(":read")))
        };
        for held in Scope::ALL {
            for needed in Scope::ALL {
                assert_eq!(held.grants(*needed), by_name(held.as_str(), needed.as_str()), "{held} -> {needed}");
            }
        }
        assert_eq!(Scope::parse("users:write"), Some(Scope::UsersWrite));
        assert_eq!(Scope::parse("root"), None);
    }
}
