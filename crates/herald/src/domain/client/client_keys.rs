//! Client keys: what ships inside a game build to open the client routes.

#[allow(unused_imports)]
use super::*;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewClientKey {
    pub name: String,
    /// The client channels (`PC`, `iOS`, ...) the key may ask about; absent or empty: any.
    pub channels: Option<Vec<String>>,
}

/// A client key as created: the only time its full value (`hc_...`) is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedClientKey {
    #[serde(flatten)]
    pub key: ClientKey,
    pub key_value: String,
}

/// Most channels one key may be limited to.
const MAX_KEY_CHANNELS: usize = 20;

pub async fn create_key(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    input: NewClientKey,
) -> DomainResult<CreatedClientKey> {
    let channels = input.channels.unwrap_or_default();
    let mut c = Checks::default();
    c.text("name", &input.name, 1, 100);
    if channels.len() > MAX_KEY_CHANNELS {
        c.fail("channels", format!("at most {MAX_KEY_CHANNELS} channels"));
    }
    for channel in &channels {
        c.ident("channels", channel, 32, &[]);
    }
    c.finish()?;
    let project = store.get_project(project_id).await?;
    let (id, key_value, secret_hash) = keys::generate_client();
    let key = ClientKey {
        id,
        organization_id: project.organization_id,
        project_id: project.id,
        name: input.name,
        secret_hash,
        channels: Json(channels),
        created_at: store::now(),
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_client_key(ctx, &key).await?;
    Ok(CreatedClientKey { key, key_value })
}
