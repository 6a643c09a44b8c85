//! The GameTalk v1.1 wire format: how channels, tags, users and pages look in GameTalk
//! answers and in the data of chat events.

#[allow(unused_imports)]
use super::*;

/// GameTalk's date form: ISO 8601 with an offset, whole seconds.
pub fn date(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// A channel as GameTalk shows it (`result` of Create and Get Channel, `channelList`, and
/// the data of the channel events).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkChannel)]
pub struct GameTalkChannel {
    /// The project's appKey.
    pub app_key: String,
    pub id: String,
    /// Always `PUBLIC`.
    #[serde(rename = "type")]
    #[schema(example = "PUBLIC")]
    pub channel_type: String,
    pub name: String,
    #[schema(required = true)]
    pub nickname: Option<String>,
    /// Deleted when its last subscriber leaves.
    pub auto_delete: bool,
    /// Always `false`: a deleted channel is gone.
    pub deleted: bool,
    /// The id of the channel's last message sent through Herald (0 when none).
    pub last_message_id: i64,
    pub subscriber_count: i64,
    pub tag_list: Vec<GameTalkTagRef>,
    pub reg_user: String,
    #[schema(format = DateTime, example = "2026-11-23T19:40:00+00:00")]
    pub reg_date: String,
    pub mod_user: String,
    #[schema(format = DateTime, example = "2026-11-23T19:40:00+00:00")]
    pub mod_date: String,
}

/// A tag of a channel.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = GameTalkTagRef)]
pub struct GameTalkTagRef {
    pub id: i64,
    pub name: String,
}

impl GameTalkChannel {
    pub fn new(app_key: &str, c: &Channel) -> Self {
        let r = &c.row;
        GameTalkChannel {
            app_key: app_key.to_owned(),
            id: r.id.clone(),
            channel_type: r.channel_type.clone(),
            name: r.name.clone(),
            nickname: r.nickname.clone(),
            auto_delete: r.auto_delete,
            deleted: false,
            last_message_id: r.last_message_id,
            subscriber_count: r.subscriber_count,
            tag_list: c.tags.iter().map(|(id, name)| GameTalkTagRef { id: *id, name: name.clone() }).collect(),
            reg_user: r.reg_user.clone(),
            reg_date: date(r.created_at),
            mod_user: r.mod_user.clone(),
            mod_date: date(r.updated_at),
        }
    }
}

/// A tag as GameTalk shows it (`result` of Get Tag, `tagList`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkTag)]
pub struct GameTalkTag {
    pub app_key: String,
    pub id: i64,
    pub name: String,
    #[schema(required = true)]
    pub description: Option<String>,
    pub reg_user: String,
    #[schema(format = DateTime, example = "2026-11-23T19:40:00+00:00")]
    pub reg_date: String,
    pub mod_user: String,
    #[schema(format = DateTime, example = "2026-11-23T19:40:00+00:00")]
    pub mod_date: String,
}

impl GameTalkTag {
    pub fn new(app_key: &str, t: &Tag) -> Self {
        GameTalkTag {
            app_key: app_key.to_owned(),
            id: t.id,
            name: t.name.clone(),
            description: t.description.clone(),
            reg_user: t.reg_user.clone(),
            reg_date: date(t.created_at),
            mod_user: t.mod_user.clone(),
            mod_date: date(t.updated_at),
        }
    }
}

/// A user as GameTalk shows it (`user` of Get User, `userList` of Get Subscriber).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkUser)]
pub struct GameTalkUser {
    pub app_key: String,
    /// The player's id.
    pub user_id: String,
    /// The chat nickname; until one is set, the player's display name, else username.
    #[schema(required = true)]
    pub nickname: Option<String>,
    #[schema(required = true)]
    pub language_code: Option<String>,
    /// `false` after Delete User Info, until Update User sets a profile again.
    pub valid: bool,
    #[schema(required = true, format = DateTime, example = "2026-11-23T19:40:00+00:00")]
    pub last_login_date: Option<String>,
    /// The player's creation time (in a subscriber list: the subscription's).
    #[schema(format = DateTime, example = "2026-11-23T19:40:00+00:00")]
    pub reg_date: String,
}

impl GameTalkUser {
    pub fn new(app_key: &str, u: &ChatUser) -> Self {
        GameTalkUser {
            app_key: app_key.to_owned(),
            user_id: u.user_id.clone(),
            nickname: u.nickname.clone(),
            language_code: u.language_code.clone(),
            valid: u.valid,
            last_login_date: u.last_login_at.map(date),
            reg_date: date(u.reg_at),
        }
    }
}

/// A GameTalk shape as JSON, for event data.
fn to_json(v: impl Serialize) -> Value {
    // Plain structs of strings, numbers and booleans: serializing them cannot fail.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub fn channel_json(app_key: &str, c: &Channel) -> Value {
    to_json(GameTalkChannel::new(app_key, c))
}

pub fn user_json(app_key: &str, u: &ChatUser) -> Value {
    to_json(GameTalkUser::new(app_key, u))
}

/// Page request of the GameTalk lists: `page` from 0, `size` mandatory, 1..=100.
pub fn paging(page: Option<i64>, size: Option<i64>) -> ChatResult<(i64, i64)> {
    let size = size.ok_or_else(|| invalid("size", "is required (1 to 100)"))?;
    if !(1..=MAX_PAGE).contains(&size) {
        return Err(invalid("size", "must be between 1 and 100"));
    }
    let page = page.unwrap_or(0);
    if !(0..=MAX_PAGE_NUMBER).contains(&page) {
        return Err(invalid("page", format!("must be between 0 and {MAX_PAGE_NUMBER} (pages count from 0)")));
    }
    Ok((page, size))
}

/// GameTalk's `pagingInfo`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkPagingInfo)]
pub struct PagingInfo {
    /// Whether this is page 0.
    pub first: bool,
    /// Whether no page follows.
    pub last: bool,
    /// How many items this page holds.
    pub number_of_elements: i64,
    /// The page number, from 0.
    pub page: i64,
    pub size: i64,
    pub total_elements: i64,
    pub total_pages: i64,
}

impl PagingInfo {
    pub fn new(page: i64, size: i64, count: usize, total: i64) -> Self {
        let pages = (total + size - 1) / size;
        PagingInfo {
            first: page == 0,
            last: page + 1 >= pages,
            number_of_elements: count as i64,
            page,
            size,
            total_elements: total,
            total_pages: pages,
        }
    }
}
