//! First start: a default organization, project and admin key, created exactly once.

use crate::{
    domain::tenancy,
    events::EventContext,
    store::{Store, orgs::Organization, orgs::Project},
};

/// What the first start created; the key is shown once and never again.
pub struct Bootstrapped {
    pub organization: Organization,
    pub project: Project,
    pub key_value: String,
}

/// Creates the defaults if this database was never bootstrapped. `None` if it was.
pub async fn bootstrap(store: &Store) -> anyhow::Result<Option<Bootstrapped>> {
    let organization =
        tenancy::new_organization("Default".into(), Some("default".into())).map_err(|e| anyhow::anyhow!("{e}"))?;
    let project = tenancy::new_project(&organization.id, "Default".into(), Some("default".into()))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (key, key_value) = tenancy::new_api_key(
        "bootstrap admin key".into(),
        Some(organization.id.clone()),
        Some(project.id.clone()),
        vec![crate::auth::Scope::Admin],
    );
    if store.bootstrap(&EventContext::system(), &organization, &project, &key).await? {
        Ok(Some(Bootstrapped { organization, project, key_value }))
    } else {
        Ok(None)
    }
}
