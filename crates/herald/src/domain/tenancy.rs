//! Organizations, projects, API keys and admin accounts: who owns what, and who may act.

use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use super::{
    retry_on_stale,
    validate::{Checks, slugify},
};
use crate::auth::Scope;
use crate::secret::Secret;
use crate::vocab::AdminRole;
use crate::{
    auth::{self, Principal, keys},
    domain::{DomainError, DomainResult},
    events::EventContext,
    store::{self, Store, StoreError, api_keys::ApiKey, auth::AdminUser, orgs::Organization, orgs::Project},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOrganization {
    pub name: String,
    pub slug: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamePatch {
    pub name: Option<String>,
    pub slug: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewProject {
    pub name: String,
    pub slug: Option<String>,
    /// The language client answers fall back to (`en` when absent).
    pub default_language: Option<String>,
    /// Required for instance credentials; others create in their own organization.
    pub organization_id: Option<String>,
}

/// A project's language when none is given.
pub const DEFAULT_LANGUAGE: &str = "en";

/// A project's fields that may change (`PUT`/`PATCH /projects/{id}`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub slug: Option<String>,
    /// The language client answers fall back to, e.g. `en` or `pt-BR`.
    pub default_language: Option<String>,
}

fn check_language(language: &str) -> DomainResult<()> {
    if crate::domain::client::is_language_tag(language) {
        Ok(())
    } else {
        Err(DomainError::invalid_field(
            "defaultLanguage",
            "must be a language code such as `en` or `pt-BR` (letters and digits in parts joined by `-`)",
        ))
    }
}

fn check_named(name: &str, slug: &str) -> DomainResult<()> {
    let mut c = Checks::default();
    c.text("name", name, 1, 100);
    if slug.is_empty()
        || slug.len() > 64
        || !slug.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
    {
        c.fail("slug", "must be 1 to 64 characters of lower-case letters, digits and `-`");
    }
    c.finish()
}

fn slug_for(name: &str, slug: Option<String>) -> String {
    slug.unwrap_or_else(|| {
        let s = slugify(name);
        if s.is_empty() { keys::random_token(6).to_lowercase().replace(['_', '-'], "x") } else { s }
    })
}

pub fn new_organization(name: String, slug: Option<String>) -> DomainResult<Organization> {
    let now = store::now();
    let org = Organization { id: store::new_id(), slug: slug_for(&name, slug), name, created_at: now, updated_at: now };
    check_named(&org.name, &org.slug)?;
    Ok(org)
}

pub fn new_project(organization_id: &str, name: String, slug: Option<String>) -> DomainResult<Project> {
    let now = store::now();
    let project = Project {
        id: store::new_id(),
        organization_id: organization_id.to_owned(),
        slug: slug_for(&name, slug),
        name,
        app_key: keys::random_token(15),
        secret_key: Secret::new(keys::random_token(24)),
        default_language: DEFAULT_LANGUAGE.to_owned(),
        created_at: now,
        updated_at: now,
    };
    check_named(&project.name, &project.slug)?;
    Ok(project)
}

pub async fn create_organization(
    store: &Store,
    caller: &Principal,
    ctx: &EventContext,
    input: NewOrganization,
) -> DomainResult<Organization> {
    if !caller.is_instance() {
        return Err(DomainError::forbidden("only instance credentials can create organizations"));
    }
    let org = new_organization(input.name, input.slug)?;
    store.insert_organization(ctx, &org).await?;
    Ok(org)
}

/// The organization `id`, if the caller reaches it as a whole; 404 otherwise.
pub async fn reachable_organization(store: &Store, caller: &Principal, id: &str) -> DomainResult<Organization> {
    if !caller.reaches_organization(id) {
        return Err(DomainError::not_found("organization"));
    }
    Ok(store.get_organization(id).await?)
}

pub async fn update_organization(
    store: &Store,
    caller: &Principal,
    ctx: &EventContext,
    id: &str,
    patch: NamePatch,
) -> DomainResult<Organization> {
    let patch = &patch;
    retry_on_stale(|| async move {
        let current = reachable_organization(store, caller, id).await?;
        let mut org = current.clone();
        if let Some(name) = &patch.name {
            org.name = name.clone();
        }
        if let Some(slug) = &patch.slug {
            org.slug = slug.clone();
        }
        check_named(&org.name, &org.slug)?;
        org.updated_at = store::next_updated_at(current.updated_at);
        store.update_organization(ctx, &org, current.updated_at).await?;
        Ok(org)
    })
    .await
}

/// The project `id`, if the caller reaches it; 404 otherwise (whether or not it exists).
pub async fn reachable_project(store: &Store, caller: &Principal, id: &str) -> DomainResult<Project> {
    match store.get_project(id).await {
        Ok(project) if caller.reaches_project(&project) => Ok(project),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(DomainError::not_found("project")),
        Err(e) => Err(e.into()),
    }
}

pub async fn create_project(
    store: &Store,
    caller: &Principal,
    ctx: &EventContext,
    input: NewProject,
) -> DomainResult<Project> {
    if caller.project_id.is_some() {
        return Err(DomainError::forbidden(
            "a project key cannot create projects; use an organization-level credential",
        ));
    }
    let org_id = match (&caller.organization_id, input.organization_id) {
        (Some(own), None) => own.clone(),
        (Some(own), Some(named)) if *own == named => named,
        (Some(_), Some(_)) => return Err(DomainError::not_found("organization")),
        (None, Some(named)) => store.get_organization(&named).await?.id,
        (None, None) => {
            return Err(DomainError::invalid_field(
                "organizationId",
                "instance credentials must name the organization",
            ));
        }
    };
    let mut project = new_project(&org_id, input.name, input.slug)?;
    if let Some(language) = input.default_language {
        check_language(&language)?;
        project.default_language = language;
    }
    store.insert_project(ctx, &project).await?;
    Ok(project)
}

/// Applies `change` to a reachable project and writes it (name/slug edits, secret rotation).
pub async fn modify_project(
    store: &Store,
    caller: &Principal,
    ctx: &EventContext,
    id: &str,
    regenerate_secret: bool,
    patch: ProjectPatch,
) -> DomainResult<Project> {
    let patch = &patch;
    retry_on_stale(|| async move {
        let current = reachable_project(store, caller, id).await?;
        let mut project = current.clone();
        if let Some(name) = &patch.name {
            project.name = name.clone();
        }
        if let Some(slug) = &patch.slug {
            project.slug = slug.clone();
        }
        check_named(&project.name, &project.slug)?;
        if let Some(language) = &patch.default_language {
            check_language(language)?;
            project.default_language = language.clone();
        }
        project.updated_at = store::next_updated_at(current.updated_at);
        let written = if regenerate_secret {
            project.secret_key = Secret::new(keys::random_token(24));
            store.regenerate_project_secret(ctx, &project, current.updated_at).await
        } else {
            store.update_project(ctx, &project, current.updated_at).await
        };
        written?;
        Ok(project)
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<String>,
    /// Bind the key to one project; absent: an organization-level key.
    pub project_id: Option<String>,
    /// For instance callers: the organization the key belongs to.
    pub organization_id: Option<String>,
}

/// A key as created: the only time its full value is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    pub key_value: String,
}

/// Builds a key (not yet stored) for `organization_id`/`project_id` with `scopes`.
pub fn new_api_key(
    name: String,
    organization_id: Option<String>,
    project_id: Option<String>,
    scopes: Vec<Scope>,
) -> (ApiKey, String) {
    let (id, full, secret_hash) = keys::generate();
    let key = ApiKey {
        id,
        organization_id,
        project_id,
        name,
        secret_hash,
        scopes: Json(scopes),
        created_at: store::now(),
        last_used_at: None,
        revoked_at: None,
    };
    (key, full)
}

pub async fn create_api_key(
    store: &Store,
    caller: &Principal,
    ctx: &EventContext,
    input: NewApiKey,
) -> DomainResult<CreatedKey> {
    let mut c = Checks::default();
    c.text("name", &input.name, 1, 100);
    c.finish()?;
    let scopes = check_grantable(caller, &input.scopes)?;
    let (org_id, project_id) = match (&caller.project_id, input.project_id) {
        // A project key can only make keys for its own project.
        (Some(own), None) => (caller.organization_id.clone(), Some(own.clone())),
        (Some(_), Some(named)) | (None, Some(named)) => {
            let project = reachable_project(store, caller, &named).await?;
            (Some(project.organization_id), Some(project.id))
        }
        (None, None) => match (&caller.organization_id, input.organization_id) {
            (Some(own), None) => (Some(own.clone()), None),
            (Some(own), Some(named)) if *own == named => (Some(named), None),
            (Some(_), Some(_)) => return Err(DomainError::not_found("organization")),
            (None, Some(named)) => (Some(store.get_organization(&named).await?.id), None),
            (None, None) => {
                return Err(DomainError::invalid_field(
                    "organizationId",
                    "name the organization (instance keys are created with the CLI only)",
                ));
            }
        },
    };
    let (key, key_value) = new_api_key(input.name, org_id, project_id, scopes);
    store.insert_api_key(ctx, &key).await?;
    Ok(CreatedKey { key, key_value })
}

/// Whether `caller` manages `key`: its own organization's keys (org-level and instance
/// callers), or its own project's keys (project callers).
pub fn manages_key(caller: &Principal, key: &ApiKey) -> bool {
    match (&caller.organization_id, &caller.project_id) {
        (None, _) => true,
        (Some(org), None) => key.organization_id.as_deref() == Some(org),
        (Some(_), Some(project)) => key.project_id.as_deref() == Some(project),
    }
}

pub async fn reachable_key(store: &Store, caller: &Principal, id: &str) -> DomainResult<ApiKey> {
    match store.get_api_key(id).await {
        Ok(key) if manages_key(caller, &key) => Ok(key),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(DomainError::not_found("API key")),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAdminUser {
    pub email: String,
    pub password: String,
    pub role: Option<String>,
    pub organization_id: Option<String>,
}

pub const MIN_PASSWORD_CHARS: usize = 10;

pub fn new_admin_user(
    organization_id: &str,
    email: &str,
    password: &str,
    role: Option<String>,
) -> DomainResult<AdminUser> {
    let role = role.as_deref().unwrap_or(AdminRole::Admin.as_str());
    let email = email.trim().to_lowercase();
    let mut c = Checks::default();
    c.email("email", &email);
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > 1024 {
        c.fail("password", format!("must be {MIN_PASSWORD_CHARS} to 1024 characters long"));
    }
    c.one_of("role", role, AdminRole::NAMES);
    c.finish()?;
    let role = AdminRole::parse(role).ok_or_else(|| DomainError::invalid_field("role", "unknown role"))?;
    let now = store::now();
    Ok(AdminUser {
        id: store::new_id(),
        organization_id: organization_id.to_owned(),
        email,
        password_hash: Secret::new(auth::password::hash(password).map_err(DomainError::internal)?),
        role,
        created_at: now,
        updated_at: now,
        last_login_at: None,
    })
}

/// The organization an organization-wide action of `caller` applies to (`named` for
/// instance callers).
pub async fn target_organization(store: &Store, caller: &Principal, named: Option<&str>) -> DomainResult<String> {
    if caller.project_id.is_some() {
        return Err(DomainError::forbidden("this needs an organization-level credential"));
    }
    match (&caller.organization_id, named) {
        (Some(own), None) => Ok(own.clone()),
        (Some(own), Some(named)) if own == named => Ok(own.clone()),
        (Some(_), Some(_)) => Err(DomainError::not_found("organization")),
        (None, Some(named)) => Ok(store.get_organization(named).await?.id),
        (None, None) => Err(DomainError::invalid_query("instance credentials must name the organizationId")),
    }
}

/// Checks that `scopes` are known and that `granter` may hand each of them out; the scopes.
pub fn check_grantable(granter: &Principal, scopes: &[String]) -> DomainResult<Vec<Scope>> {
    if scopes.is_empty() {
        return Err(DomainError::invalid_field("scopes", "give at least one scope"));
    }
    let mut granted = Vec::with_capacity(scopes.len());
    for name in scopes {
        let Some(scope) = Scope::parse(name) else {
            return Err(DomainError::invalid_field(
                "scopes",
                format!("unknown scope `{name}`; known scopes: {}", Scope::names()),
            ));
        };
        if !granter.has_scope(scope) {
            return Err(DomainError::forbidden(format!("you cannot grant the scope `{scope}`, which you lack")));
        }
        granted.push(scope);
    }
    Ok(granted)
}
