//! The player's own view (`GET /api/v1/client/me`).

#[allow(unused_imports)]
use super::*;

/// A player's own profile: no `metadata` (game servers keep their own data there).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientPlayer {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// `GET /client/me`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientMe {
    pub player: ClientPlayer,
    /// Game-wide maintenance as it applies to this player (`bypass`: whitelisted).
    pub maintenance: GameMaintenance,
    /// Whether maintenance keeps this player out now.
    pub maintenance_applies: bool,
}

pub async fn me(
    store: &Store,
    req: &ClientRequest,
    user_id: &str,
    address: Option<IpAddr>,
) -> DomainResult<Assembled<ClientMe>> {
    let user = store.get_user(&req.project.id, user_id).await?;
    let mut game = game_maintenance(store, req).await?;
    if game.answer.in_maintenance
        && maintenance_bypass(store, &req.project.id, Some(&user.id), address, req.now).await?
    {
        game.answer.bypass = true;
        game.answer.in_maintenance = false;
    }
    let maintenance_applies = game.answer.in_maintenance;
    Ok(Assembled {
        answer: ClientMe {
            player: ClientPlayer {
                id: user.id,
                username: user.username,
                display_name: user.display_name,
                avatar_url: user.avatar_url,
                email: user.email,
                created_at: user.created_at,
                last_login_at: user.last_login_at,
            },
            maintenance: game.answer,
            maintenance_applies,
        },
        next_change: game.next_change,
    })
}
