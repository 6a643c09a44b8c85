//! The GameTalk envelope and the shapes its answers, paths and queries are documented with.

#[allow(unused_imports)]
use super::*;

/// The `header` of every GameTalk answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkHeader)]
pub struct Header {
    /// The caller's `X-GT-Transaction-Id`, or one Herald made up.
    pub(super) transaction_id: String,
    pub(super) is_successful: bool,
    /// 0 on success; otherwise a code of docs/CHAT.md.
    pub(super) result_code: i64,
    /// `SUCCESS`, or what went wrong (naming the field to fix).
    pub(super) result_message: String,
}

/// Every GameTalk answer: HTTP 200, `header`, and on success the call's own fields (`F`).
#[derive(serde::Serialize)]
pub(super) struct Reply<F> {
    pub(super) header: Header,
    #[serde(flatten)]
    pub(super) fields: Option<F>,
}

/// The fields of a call that answers with `header` alone.
#[derive(serde::Serialize)]
pub(super) struct NoFields {}

/// Every GameTalk answer has `header`; on success, the call's own fields follow it.
#[derive(utoipa::ToSchema)]
#[schema(as = GameTalkAnswer)]
#[allow(dead_code)] // a schema only: `Reply` is what is sent
pub struct Answer {
    pub(super) header: Header,
}

/// Create Channel, Get Channel: the channel (absent when the call failed).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = GameTalkChannelResult)]
pub struct ChannelResult {
    #[schema(required = false)]
    pub(super) result: GameTalkChannel,
}

/// Get Channel List: a page of channels, oldest first (absent when the call failed).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkChannelPage)]
pub struct ChannelPage {
    #[schema(required = false)]
    pub(super) paging_info: PagingInfo,
    #[schema(required = false)]
    pub(super) channel_list: Vec<GameTalkChannel>,
}

/// Get Subscriber: a page of the channel's subscribers (absent when the call failed).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkSubscriberPage)]
pub struct SubscriberPage {
    #[schema(required = false)]
    pub(super) paging_info: PagingInfo,
    #[schema(required = false)]
    pub(super) user_list: Vec<GameTalkUser>,
}

/// Get Tag List: a page of tags (absent when the call failed).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkTagPage)]
pub struct TagPage {
    #[schema(required = false)]
    pub(super) paging_info: PagingInfo,
    #[schema(required = false)]
    pub(super) tag_list: Vec<GameTalkTag>,
}

/// Get Tag: the tag (absent when the call failed).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = GameTalkTagResult)]
pub struct TagResult {
    #[schema(required = false)]
    pub(super) result: GameTalkTag,
}

/// Get User: the user (absent when the call failed).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = GameTalkUserResult)]
pub struct UserResult {
    #[schema(required = false)]
    pub(super) user: GameTalkUser,
}

/// What a GameTalk call without fields of its own answers, for the description.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum Answered {
    /// always 200; success or failure is in `header`
    #[response(status = 200)]
    Answer(Answer),
}

/// What a GameTalk call with the fields `F` answers, for the description: always HTTP 200,
/// `header` (`GameTalkAnswer`) and, on success, the fields of `F`. The schemas it names are
/// registered in `api::openapi::ApiDoc`.
pub(super) struct AnsweredWith<F>(std::marker::PhantomData<F>);

impl<F: ToSchema> utoipa::IntoResponses for AnsweredWith<F> {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let schema = AllOfBuilder::new()
            .item(Ref::from_schema_name(Answer::name()))
            .item(Ref::from_schema_name(F::name()))
            .build();
        let schema = RefOr::T(Schema::AllOf(schema));
        let response = ResponseBuilder::new()
            .description("always 200; success or failure is in `header`, and the call's fields follow on success")
            .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
            .build();
        [("200".to_owned(), RefOr::T(response))].into()
    }
}

/// The path parameter of every GameTalk route, for the description.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct AppKey {
    /// the project's appKey
    pub(super) app_key: String,
}

/// The optional transaction header of every GameTalk call, for the description.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(super) struct TransactionId {
    /// echoed in the answer's `X-GT-Transaction-Id` header and `header.transactionId`
    /// (printable ASCII, at most 128 characters; otherwise Herald makes one up)
    #[param(rename = "X-GT-Transaction-Id", nullable = false)]
    pub(super) transaction_id: Option<String>,
}

/// The query of Get Tag List and Get Subscriber, for the description (`query` reads it).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct PageParams {
    /// the page, from 0 (default 0)
    #[param(minimum = 0)]
    pub(super) page: Option<i64>,
    /// items per page, 1 to 100
    #[param(minimum = 1, maximum = 100)]
    pub(super) size: i64,
}

/// How `tagIdList` combines (lower case is accepted too).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
pub(super) enum TagType {
    OR,
    AND,
}

/// The query of Get Channel List, for the description (`query` reads it).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct ChannelListParams {
    /// the page, from 0 (default 0)
    #[param(minimum = 0)]
    pub(super) page: Option<i64>,
    /// items per page, 1 to 100
    #[param(minimum = 1, maximum = 100)]
    pub(super) size: i64,
    /// how `tagIdList` combines: `OR` (default: channels with any of the tags) or `AND` (all)
    #[param(rename = "tagType", inline)]
    pub(super) tag_type: Option<TagType>,
    /// tag ids separated by commas, e.g. `1,2,3`
    #[param(rename = "tagIdList", example = "1,2")]
    pub(super) tag_id_list: Option<String>,
}
