//! `keys`, `client-keys`, `admins`: credentials made, listed and revoked straight in the
//! database (first set-up and recovery, when no key is at hand).

use std::io::BufRead;

use clap::{Args, Subcommand};

use crate::{
    auth,
    domain::tenancy,
    events::EventContext,
    store::{PageRequest, Store, StoreError},
};

#[derive(Subcommand)]
pub(super) enum KeysCommand {
    /// Create a key and print it (shown once).
    Create(CreateKey),
    /// List keys (never their secrets).
    List {
        /// Organization id or slug (default: all).
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke a key by id.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub(super) enum ClientKeysCommand {
    /// Create a client key and print it (shown once).
    Create {
        /// Project id (default: the `default` project of the `default` organization).
        #[arg(long)]
        project: Option<String>,
        /// Comma-separated client channels the key may ask about, e.g. `PC,iOS` (default: any).
        #[arg(long, value_delimiter = ',')]
        channels: Vec<String>,
        #[arg(long, default_value = "cli client key")]
        name: String,
    },
    /// List a project's client keys (never their secrets).
    List {
        /// Project id (default: the `default` project of the `default` organization).
        #[arg(long)]
        project: Option<String>,
    },
    /// Revoke a client key by id.
    Revoke { id: String },
}

#[derive(Args)]
pub(super) struct CreateKey {
    /// Organization id or slug (default: the `default` organization).
    #[arg(long)]
    org: Option<String>,
    /// Bind the key to this project id.
    #[arg(long, conflicts_with = "instance")]
    project: Option<String>,
    /// An instance key: reaches every organization (can create organizations).
    #[arg(long)]
    instance: bool,
    /// Comma-separated scopes, e.g. `users:read,worlds:write` or `admin`.
    #[arg(long, value_delimiter = ',', default_value = "admin")]
    scopes: Vec<String>,
    #[arg(long, default_value = "cli key")]
    name: String,
}

#[derive(Subcommand)]
pub(super) enum AdminsCommand {
    /// Create an admin account. The password is read from HERALD_ADMIN_PASSWORD or stdin.
    Create {
        #[arg(long)]
        email: String,
        /// Organization id or slug (default: the `default` organization).
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

/// An organization by id or slug; `None` means `default`.
async fn find_org(store: &Store, org: Option<&str>) -> anyhow::Result<String> {
    let wanted = org.unwrap_or("default");
    match store.get_organization(wanted).await {
        Ok(o) => return Ok(o.id),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(store.get_organization_by_slug(wanted).await.map_err(|_| anyhow::anyhow!("no organization `{wanted}`"))?.id)
}

fn cli_events() -> EventContext {
    EventContext { request_id: None, actor: Some("cli".into()) }
}

pub(super) async fn keys(cmd: KeysCommand, store: &Store) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create(args) => {
            let scopes = (args.scopes.iter())
                .map(|scope| {
                    auth::Scope::parse(scope)
                        .ok_or_else(|| anyhow::anyhow!("unknown scope `{scope}`; known: {}", auth::Scope::names()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let (org, project) = if args.instance {
                (None, None)
            } else if let Some(project) = &args.project {
                let p = store.get_project(project).await.map_err(|_| anyhow::anyhow!("no project `{project}`"))?;
                (Some(p.organization_id), Some(p.id))
            } else {
                (Some(find_org(store, args.org.as_deref()).await?), None)
            };
            let (key, value) = tenancy::new_api_key(args.name, org, project, scopes);
            store.insert_api_key(&cli_events(), &key).await?;
            let reach = match (&key.organization_id, &key.project_id) {
                (None, _) => "instance".to_string(),
                (Some(o), None) => format!("organization {o}"),
                (Some(_), Some(p)) => format!("project {p}"),
            };
            eprintln!("created key {} ({reach}; scopes {}). Shown once:", key.id, auth::Scope::list(&key.scopes.0));
            println!("{value}");
        }
        KeysCommand::List { org } => {
            let org = match org {
                Some(o) => Some(find_org(store, Some(&o)).await?),
                None => None,
            };
            let mut page = 1;
            println!("{:<16}  {:<10}  {:<36}  {:<24}  NAME", "ID", "STATE", "PROJECT", "SCOPES");
            loop {
                let keys = store.list_api_keys(org.as_deref(), None, PageRequest { page, limit: 100 }).await?;
                for k in &keys.items {
                    let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                    let project = k.project_id.as_deref().unwrap_or(if k.organization_id.is_some() {
                        "(organization)"
                    } else {
                        "(instance)"
                    });
                    println!(
                        "{:<16}  {:<10}  {:<36}  {:<24}  {}",
                        k.id,
                        state,
                        project,
                        auth::Scope::list(&k.scopes.0),
                        k.name
                    );
                }
                if i64::from(page) * 100 >= keys.total {
                    break;
                }
                page += 1;
            }
        }
        KeysCommand::Revoke { id } => {
            store.revoke_api_key(&cli_events(), &id).await.map_err(|e| anyhow::anyhow!("cannot revoke `{id}`: {e}"))?;
            println!("revoked {id} (running servers stop accepting it within auth.key_cache_ttl_secs)");
        }
    }
    Ok(())
}

/// The project `wanted`, or the `default` project of the `default` organization.
async fn find_project(store: &Store, wanted: Option<&str>) -> anyhow::Result<String> {
    if let Some(id) = wanted {
        return Ok(store.get_project(id).await.map_err(|_| anyhow::anyhow!("no project `{id}`"))?.id);
    }
    let org = find_org(store, None).await?;
    let projects = store.list_projects(Some(&org), None, PageRequest { page: 1, limit: 100 }).await?;
    projects
        .items
        .into_iter()
        .find(|p| p.slug == "default")
        .map(|p| p.id)
        .ok_or_else(|| anyhow::anyhow!("no `default` project: name one with --project <id>"))
}

pub(super) async fn client_keys(cmd: ClientKeysCommand, store: &Store) -> anyhow::Result<()> {
    match cmd {
        ClientKeysCommand::Create { project, channels, name } => {
            let project = find_project(store, project.as_deref()).await?;
            let input = crate::domain::client::NewClientKey { name, channels: Some(channels) };
            let created =
                crate::domain::client::create_key(store, &cli_events(), &project, input).await.map_err(|e| {
                    let details: Vec<String> =
                        e.details().iter().map(|d| format!("{}: {}", d.field, d.message)).collect();
                    anyhow::anyhow!("{} {}", e, details.join("; "))
                })?;
            let channels =
                if created.key.channels.0.is_empty() { "any".into() } else { created.key.channels.0.join(",") };
            eprintln!("created client key {} (project {project}; channels {channels}). Shown once:", created.key.id);
            println!("{}", created.key_value);
        }
        ClientKeysCommand::List { project } => {
            let project = find_project(store, project.as_deref()).await?;
            let mut page = 1;
            println!("{:<16}  {:<10}  {:<24}  NAME", "ID", "STATE", "CHANNELS");
            loop {
                let keys = store.list_client_keys(&project, PageRequest { page, limit: 100 }).await?;
                for k in &keys.items {
                    let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                    let channels = if k.channels.0.is_empty() { "(any)".into() } else { k.channels.0.join(",") };
                    println!("{:<16}  {:<10}  {:<24}  {}", k.id, state, channels, k.name);
                }
                if i64::from(page) * 100 >= keys.total {
                    break;
                }
                page += 1;
            }
        }
        ClientKeysCommand::Revoke { id } => {
            let key = store.get_client_key(&id).await.map_err(|e| anyhow::anyhow!("cannot revoke `{id}`: {e}"))?;
            store.revoke_client_key(&cli_events(), &key.project_id, &id).await?;
            println!("revoked client key {id} (running servers stop accepting it within auth.key_cache_ttl_secs)");
        }
    }
    Ok(())
}

pub(super) async fn admins(cmd: AdminsCommand, store: &Store) -> anyhow::Result<()> {
    match cmd {
        AdminsCommand::Create { email, org, role } => {
            let org = find_org(store, org.as_deref()).await?;
            let password = match std::env::var("HERALD_ADMIN_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    eprintln!("password (one line on stdin):");
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let admin = tenancy::new_admin_user(&org, &email, &password, Some(role)).map_err(|e| {
                let details: Vec<String> = e.details().iter().map(|d| format!("{}: {}", d.field, d.message)).collect();
                anyhow::anyhow!("{} {}", e, details.join("; "))
            })?;
            store.insert_admin_user(&cli_events(), &admin).await?;
            println!("created admin {} ({}) in organization {org}", admin.email, admin.id);
        }
    }
    Ok(())
}
