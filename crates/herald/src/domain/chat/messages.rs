//! Chat messages: send, edit, soft delete, and the history.

#[allow(unused_imports)]
use super::*;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessage {
    /// The sender; absent for a message from the game server itself.
    pub user_id: Option<String>,
    pub text: String,
    pub data: Option<Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditMessage {
    /// When given, the edit is made on this player's behalf: it must be the sender.
    pub user_id: Option<String>,
    pub text: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub data: Option<Option<Value>>,
}

fn check_message(config: &ChatConfig, text: &str, data: Option<&Value>) -> ChatResult<()> {
    let max = config.max_message_length;
    if text.trim().is_empty() {
        return Err(invalid("text", "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(invalid("text", format!("must be at most {max} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid("text", "must not contain control characters (other than newline and tab)"));
    }
    if let Some(data) = data {
        if super::super::validate::json_has_nul(data) {
            return Err(invalid("data", "must not contain NUL characters"));
        }
        if data.to_string().len() > MAX_DATA_BYTES {
            return Err(invalid("data", format!("must be at most {MAX_DATA_BYTES} bytes as JSON")));
        }
    }
    Ok(())
}

fn message_event(ctx: &EventContext, t: &'static str, m: &Message) -> NewEvent {
    let data = serde_json::to_value(m).unwrap_or(Value::Null);
    event(ctx, t, &m.project_id, "chat_message", &m.id.to_string(), data)
}

pub async fn send_message(
    store: &Store,
    limiter: &RateLimiter,
    config: &ChatConfig,
    ctx: &EventContext,
    project_id: &str,
    channel_id: &str,
    input: SendMessage,
) -> ChatResult<Message> {
    check_message(config, &input.text, input.data.as_ref())?;
    if let Some(user_id) = &input.user_id {
        store.channel_exists(project_id, channel_id).await?;
        if !store.is_subscribed(channel_id, user_id).await? {
            return Err(ChatError::NotSubscribed);
        }
        limiter.check(project_id, user_id).map_err(ChatError::RateLimited)?;
    }
    let ctx = ctx.clone();
    Ok(store
        .insert_message(NewMessage {
            project_id: project_id.to_owned(),
            channel_id: channel_id.to_owned(),
            user_id: input.user_id,
            text: input.text,
            data: input.data,
            event: Box::new(move |m| message_event(&ctx, types::CHAT_MESSAGE_CREATED, m)),
        })
        .await?)
}

/// The message to change, when `acting_for` (if given) sent it.
async fn own_message(
    store: &Store,
    project_id: &str,
    channel_id: &str,
    id: i64,
    acting_for: Option<&str>,
) -> ChatResult<Message> {
    let m = store.get_message(project_id, channel_id, id).await?;
    if m.deleted {
        return Err(ChatError::MessageNotFound);
    }
    if let Some(user) = acting_for
        && m.user_id.as_deref() != Some(user)
    {
        return Err(ChatError::Forbidden("only the sender (or the game server) may change a message".into()));
    }
    Ok(m)
}

pub async fn edit_message(
    store: &Store,
    config: &ChatConfig,
    ctx: &EventContext,
    project_id: &str,
    channel_id: &str,
    id: i64,
    input: EditMessage,
) -> ChatResult<Message> {
    let input = &input;
    retry_on_stale(|| async move {
        let mut m = own_message(store, project_id, channel_id, id, input.user_id.as_deref()).await?;
        let previous = m.updated_at;
        if let Some(text) = &input.text {
            m.text = text.clone();
        }
        if let Some(data) = &input.data {
            m.data = data.clone().map(sqlx::types::Json);
        }
        check_message(config, &m.text, m.data.as_ref().map(|d| &d.0))?;
        m.updated_at = store::next_updated_at(previous);
        store.update_message(&m, previous, &message_event(ctx, types::CHAT_MESSAGE_UPDATED, &m)).await?;
        Ok(m)
    })
    .await
}

/// Soft delete: the message keeps its id and place in the history, without its text and data.
pub async fn delete_message(
    store: &Store,
    ctx: &EventContext,
    project_id: &str,
    channel_id: &str,
    id: i64,
    acting_for: Option<&str>,
) -> ChatResult<Message> {
    retry_on_stale(|| async move {
        let mut m = own_message(store, project_id, channel_id, id, acting_for).await?;
        let previous = m.updated_at;
        (m.text, m.data, m.deleted) = (String::new(), None, true);
        m.updated_at = store::next_updated_at(previous);
        store.update_message(&m, previous, &message_event(ctx, types::CHAT_MESSAGE_DELETED, &m)).await?;
        Ok(m)
    })
    .await
}

pub async fn history(
    store: &Store,
    project_id: &str,
    channel_id: &str,
    before: Option<&str>,
    after: Option<&str>,
    limit: Option<i64>,
) -> ChatResult<Vec<Message>> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ChatError::InvalidQuery("limit".into(), "must be between 1 and 100".into()));
    }
    let from = match (before, after) {
        (Some(_), Some(_)) => {
            return Err(ChatError::InvalidQuery("before".into(), "give either before or after, not both".into()));
        }
        (Some(b), None) => {
            let (at, id) = decode_position("before", b)?;
            HistoryFrom::Before(at, id)
        }
        (None, Some(a)) => {
            let (at, id) = decode_position("after", a)?;
            HistoryFrom::After(at, id)
        }
        (None, None) => HistoryFrom::Latest,
    };
    store.channel_exists(project_id, channel_id).await?;
    Ok(store.history(channel_id, from, limit).await?)
}
