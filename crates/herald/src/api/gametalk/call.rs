//! One GameTalk call: failures as result codes, authentication by the secret key, the answer.

#[allow(unused_imports)]
use super::*;

/// A failed call: its result code and message.
pub(super) struct Fail(pub(super) i64, pub(super) String);

impl From<ChatError> for Fail {
    fn from(e: ChatError) -> Self {
        use codes::*;
        match e {
            ChatError::Invalid(field, message) | ChatError::InvalidQuery(field, message) => {
                Fail(INVALID_PARAMETER, format!("{field}: {message}"))
            }
            ChatError::ChannelNotFound => Fail(CHANNEL_NOT_FOUND, "channel not found".into()),
            ChatError::TagNotFound => Fail(TAG_NOT_FOUND, "tag not found".into()),
            ChatError::UserNotFound => Fail(USER_NOT_FOUND, "user not found".into()),
            ChatError::AlreadySubscribed => {
                Fail(ALREADY_SUBSCRIBED, "the user already subscribes to this channel".into())
            }
            ChatError::NotSubscribed => Fail(NOT_SUBSCRIBED, "the user does not subscribe to this channel".into()),
            ChatError::MessageNotFound
            | ChatError::Conflict(_)
            | ChatError::Forbidden(_)
            | ChatError::RateLimited(_) => Fail(INVALID_PARAMETER, "invalid request".into()),
            ChatError::Store(StoreError::Unavailable(e)) => {
                tracing::error!(error = %e, "database unavailable");
                Fail(UNAVAILABLE, "database unavailable, try again".into())
            }
            ChatError::Store(e) => {
                tracing::error!(error = %e, "gametalk call failed");
                Fail(INTERNAL_ERROR, "internal server error".into())
            }
        }
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        ChatError::from(e).into()
    }
}

/// The caller's transaction id (echoed when it is printable ASCII of at most 128 characters),
/// or a new one.
pub(super) fn transaction_id(headers: &HeaderMap) -> String {
    headers
        .get(TRANSACTION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The whole answer: HTTP 200, the transaction header, `header` plus the call's fields.
pub(super) fn respond<F: serde::Serialize>(transaction: String, outcome: Result<F, Fail>) -> Response {
    let (code, message, fields) = match outcome {
        Ok(fields) => (0, "SUCCESS".to_string(), Some(fields)),
        Err(Fail(code, message)) => (code, message, None),
    };
    let header = Header {
        transaction_id: transaction.clone(),
        is_successful: code == 0,
        result_code: code,
        result_message: message,
    };
    // Through a `Value`, whose keys are sorted: the bytes stay those Herald has always sent.
    let body = serde_json::to_value(Reply { header, fields }).unwrap_or_else(|e| {
        // Strings, numbers and booleans cannot fail to serialize; were it to happen, the
        // caller still gets a GameTalk answer.
        tracing::error!(error = %e, "gametalk answer does not serialize");
        json!({"header": {"transactionId": transaction, "isSuccessful": false,
                          "resultCode": codes::INTERNAL_ERROR, "resultMessage": "internal server error"}})
    });
    let mut response = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&transaction) {
        response.headers_mut().insert(TRANSACTION_HEADER, v);
    }
    response
}

/// An authenticated GameTalk call: the project of the app key, and how its events are signed.
pub(super) struct Call {
    pub(super) project: Project,
    pub(super) ctx: EventContext,
}

pub(super) async fn authenticate(
    s: &AppState,
    headers: &HeaderMap,
    app_key: &str,
    transaction: &str,
) -> Result<Call, Fail> {
    let project = match s.store.get_project_by_app_key(app_key).await {
        Ok(p) => p,
        Err(StoreError::NotFound(_)) => return Err(Fail(codes::APPKEY_NOT_FOUND, "unknown appKey".into())),
        Err(e) => return Err(e.into()),
    };
    let given = headers.get("x-secret-key").map(|v| v.as_bytes()).unwrap_or_default();
    if given.is_empty() || !bool::from(given.ct_eq(project.secret_key.expose_secret().as_bytes())) {
        return Err(Fail(codes::INVALID_SECRET_KEY, "X-Secret-Key is missing or does not match the project".into()));
    }
    let ctx = EventContext { request_id: Some(transaction.to_owned()), actor: Some("gametalk".into()) };
    Ok(Call { project, ctx })
}

/// Runs one GameTalk call: authenticates it, runs `work`, and answers in GameTalk's form.
pub(super) async fn answer<F: serde::Serialize>(
    s: &AppState,
    headers: &HeaderMap,
    app_key: &str,
    work: impl AsyncFnOnce(Call) -> Result<F, Fail>,
) -> Response {
    let tx = transaction_id(headers);
    let outcome = match authenticate(s, headers, app_key, &tx).await {
        Ok(call) => work(call).await,
        Err(fail) => Err(fail),
    };
    respond(tx, outcome)
}

/// A JSON body; an empty one counts as `{}`.
pub(super) fn body<T: DeserializeOwned>(raw: &Bytes) -> Result<T, Fail> {
    let raw: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) { b"{}" } else { raw };
    serde_json::from_slice(raw).map_err(|e| Fail(codes::INVALID_PARAMETER, format!("request body: {e}")))
}

/// The query parameters (last value wins).
pub(super) fn query(raw: Option<String>) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

pub(super) fn number(q: &std::collections::HashMap<String, String>, name: &str) -> Result<Option<i64>, Fail> {
    q.get(name)
        .map(|v| v.trim().parse::<i64>())
        .transpose()
        .map_err(|_| Fail(codes::INVALID_PARAMETER, format!("{name}: must be a whole number")))
}

pub(super) fn paging(q: &std::collections::HashMap<String, String>) -> Result<(i64, i64), Fail> {
    Ok(chat::paging(number(q, "page")?, number(q, "size")?)?)
}

/// The user of Subscribe and Unsubscribe Channel.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GameTalkUserRef)]
pub(super) struct UserRef {
    /// The player's id.
    #[schema(required = true, nullable = false, min_length = 1)]
    pub(super) user_id: Option<String>,
}
