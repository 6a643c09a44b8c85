//! What a client request carries: its build, its languages.

#[allow(unused_imports)]
use super::*;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildQuery {
    /// The client's channel (`PC`, `iOS`, ...): with `version`, asks for the version check.
    pub(super) channel: Option<String>,
    pub(super) sub_channel: Option<String>,
    /// The client's version, e.g. `1.2.3`.
    pub(super) version: Option<String>,
    /// The language to show texts in (else `Accept-Language`, else the project's default).
    pub(super) lang: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LangQuery {
    /// The language to show texts in (else `Accept-Language`, else the project's default).
    pub(super) lang: Option<String>,
}

pub(super) fn check_ident(name: &str, value: Option<&str>) -> ApiResult<()> {
    if let Some(value) = value {
        let mut c = crate::domain::validate::Checks::default();
        c.ident(name, value, 32, &['+']);
        c.finish().map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    }
    Ok(())
}

/// Builds the request context (the project read only when an answer is assembled).
pub(super) struct Ask {
    pub(super) channel: Option<String>,
    pub(super) sub_channel: String,
    pub(super) version: Option<String>,
    pub(super) languages: Vec<String>,
    pub(super) now: DateTime<Utc>,
}

impl Ask {
    pub(super) fn new(s: &AppState, headers: &HeaderMap, q: BuildQuery) -> ApiResult<Ask> {
        check_ident("channel", q.channel.as_deref())?;
        check_ident("subChannel", q.sub_channel.as_deref())?;
        check_ident("version", q.version.as_deref())?;
        if q.version.is_some() && q.channel.is_none() {
            return Err(ApiError::bad_request("invalid_query", "version needs channel: ?channel=PC&version=1.2.3"));
        }
        let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
        Ok(Ask {
            channel: q.channel,
            sub_channel: q.sub_channel.unwrap_or_default(),
            version: q.version,
            languages: client::preferences(q.lang.as_deref(), accept)?,
            now: s.clock.now(),
        })
    }

    pub(super) fn lang_only(s: &AppState, headers: &HeaderMap, q: LangQuery) -> ApiResult<Ask> {
        Ask::new(s, headers, BuildQuery { channel: None, sub_channel: None, version: None, lang: q.lang })
    }

    /// The cache key of `kind` for this ask in `project_id`.
    pub(super) fn key(&self, kind: &str, project_id: &str) -> String {
        format!(
            "{kind}|{project_id}|{}|{}|{}|{}",
            self.channel.as_deref().unwrap_or(""),
            self.sub_channel,
            self.version.as_deref().unwrap_or(""),
            self.languages.join(",")
        )
    }

    pub(super) async fn request(&self, s: &AppState, project_id: &str) -> ApiResult<ClientRequest> {
        let project = match s.store.get_project(project_id).await {
            Ok(project) => project,
            // The project was deleted after the credential was checked.
            Err(StoreError::NotFound(_)) => return Err(ApiError::unauthorized("invalid client key")),
            Err(e) => return Err(e.into()),
        };
        Ok(ClientRequest {
            project,
            channel: self.channel.clone(),
            sub_channel: self.sub_channel.clone(),
            version: self.version.clone(),
            languages: self.languages.clone(),
            now: self.now,
        })
    }
}

/// `GET /client/bootstrap` as described: [`ClientBootstrap`] with the server time first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapAnswer {
    /// The server's clock when it answered (not part of the `ETag`: on a 304, read the
    /// `Date` header).
    pub(super) server_time: DateTime<Utc>,
    #[serde(flatten)]
    pub(super) bootstrap: ClientBootstrap,
}

/// `GET /client/game-worlds`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientWorlds {
    pub(super) items: Vec<ClientWorld>,
}

/// `GET /client/notices`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientNotices {
    pub(super) items: Vec<ClientNotice>,
}
