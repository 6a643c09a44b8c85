//! The `herald` command line: run the server, migrate, and manage keys and admin accounts
//! straight in the database (for first set-up and recovery, when no key is at hand); and the
//! operator commands that talk to a running server ([`remote`]).

mod remote;

use std::{io::BufRead, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};

use crate::{
    app::{Server, interrupted, shutdown_signal},
    auth,
    config::{Config, LogFormat},
    domain::tenancy,
    events::EventContext,
    store::{PageRequest, Store, StoreError},
};

#[derive(Parser)]
#[command(name = "herald", version, about = "Self-hosted game-platform backend")]
struct Cli {
    /// TOML config file (default: ./herald.toml if it exists). Env: HERALD_CONFIG.
    #[arg(long, global = true, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates the database first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Copy every row of one Herald database into a new, empty one: SQLite to PostgreSQL, or
    /// back. Stop the servers first. The destination is migrated, then filled in one
    /// transaction.
    MigrateData {
        /// The database to copy, e.g. `sqlite://herald-data/herald.db` (not changed).
        #[arg(long)]
        from: String,
        /// The empty database to fill, e.g. `postgres://herald:secret@db.internal/herald`.
        #[arg(long)]
        to: String,
    },
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage client keys (`hc_...`, shipped in game builds; the `/api/v1/client/*` routes only).
    #[command(subcommand)]
    ClientKeys(ClientKeysCommand),
    /// Manage admin accounts (password login).
    #[command(subcommand)]
    Admins(AdminsCommand),
    /// Webhook endpoints of a running server: list, test, replay.
    Webhooks {
        #[command(flatten)]
        target: remote::Target,
        #[command(subcommand)]
        command: remote::WebhooksCommand,
    },
    /// Webhook deliveries of a running server.
    Deliveries {
        #[command(flatten)]
        target: remote::Target,
        #[command(subcommand)]
        command: remote::DeliveriesCommand,
    },
    /// Events of a running server.
    Events {
        #[command(flatten)]
        target: remote::Target,
        #[command(subcommand)]
        command: remote::EventsCommand,
    },
    /// Players of a running server.
    Users {
        #[command(flatten)]
        target: remote::Target,
        #[command(subcommand)]
        command: remote::UsersCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum KeysCommand {
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
enum ClientKeysCommand {
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
struct CreateKey {
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
enum AdminsCommand {
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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Version = cli.command {
        println!("herald {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<remote::OutputClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: escapes in a log file or a pipe are noise.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// A command that reads an SQLite database must not create an empty one where it expected the
/// server's.
fn sqlite_file_must_exist(url: &str) -> anyhow::Result<()> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = path.split('?').next().unwrap_or(path);
        anyhow::ensure!(
            std::path::Path::new(path).exists(),
            "no database at {path}: start the server once (`herald serve`) or run `herald migrate`, \
             or set HERALD_DATABASE_URL to the server's database"
        );
    }
    Ok(())
}

/// `migrate-data`: the source is only read (and must be at this binary's schema); the
/// destination is migrated, then filled.
async fn migrate_data(config: &Config, from: &str, to: &str) -> anyhow::Result<()> {
    sqlite_file_must_exist(from)?;
    let source = Store::connect(&Config { database_url: from.to_owned(), ..config.clone() }).await?;
    let dest = open_store(&Config { database_url: to.to_owned(), ..config.clone() }).await?;
    let report = crate::store::transfer::copy(&source, &dest, |table, rows| {
        eprintln!("  {table:<20} {rows:>9} rows");
    })
    .await?;
    let rows: u64 = report.tables.iter().map(|(_, n)| n).sum();
    println!(
        "copied {rows} rows in {} tables from {} to {}; start Herald on the new database with \
         HERALD_DATABASE_URL set to it",
        report.tables.len(),
        source.backend_name(),
        dest.backend_name()
    );
    source.close().await;
    dest.close().await;
    Ok(())
}

/// The store, migrated: for `serve`, `migrate`, and the commands that write.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(config).await?;
    store.migrate().await?;
    Ok(store)
}

/// The store for a command that only reads: it applies no migration (a read must not change
/// the schema under running servers), and refuses a database whose schema is behind.
async fn open_store_to_read(config: &Config) -> anyhow::Result<Store> {
    sqlite_file_must_exist(&config.effective_database_url())?;
    let store = Store::connect(config).await?;
    let behind = match store.schema_state().await {
        Ok(state) => state.missing.len(),
        Err(StoreError::Db(_)) => usize::MAX,
        Err(e) => return Err(e.into()),
    };
    match behind {
        0 => Ok(store),
        usize::MAX => {
            anyhow::bail!("the database has no Herald schema: run `herald migrate` (or start the server) first")
        }
        n => anyhow::bail!(
            "the database schema is {n} migration(s) behind this herald: run `herald migrate` \
             (or start the new version's server) first"
        ),
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            open_store(&config).await?;
            println!("migrations applied ({})", config.effective_database_url().split(':').next().unwrap_or("?"));
            Ok(())
        }
        Command::MigrateData { from, to } => migrate_data(&config, &from, &to).await,
        Command::Keys(cmd @ KeysCommand::List { .. }) => keys(cmd, &open_store_to_read(&config).await?).await,
        Command::Keys(cmd) => keys(cmd, &open_store(&config).await?).await,
        Command::ClientKeys(cmd @ ClientKeysCommand::List { .. }) => {
            client_keys(cmd, &open_store_to_read(&config).await?).await
        }
        Command::ClientKeys(cmd) => client_keys(cmd, &open_store(&config).await?).await,
        Command::Admins(cmd) => admins(cmd, &open_store(&config).await?).await,
        Command::Version => Ok(()),
        Command::Webhooks { target, command } => {
            remote::webhooks(&remote::Remote::new(&target, &config)?, command).await
        }
        Command::Deliveries { target, command } => {
            remote::deliveries(&remote::Remote::new(&target, &config)?, command).await
        }
        Command::Events { target, command } => {
            remote::tail(&remote::Remote::new(&target, &config)?, command, interrupted()).await
        }
        Command::Users { target, command: remote::UsersCommand::Import { file, concurrency, dry_run } } => {
            let server = if dry_run { None } else { Some(remote::Remote::new(&target, &config)?) };
            let imported = remote::import_users(server.as_ref(), &file, concurrency).await?;
            anyhow::ensure!(
                imported.failed == 0,
                "{} of {} players were not created",
                imported.failed,
                imported.failed + imported.created
            );
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Every socket.io connection holds a file descriptor: raise the soft limit to the hard one
    // (commonly 1,024 soft against 512 K or more hard).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
    // Installed before anything is printed: whoever reads "listening" may stop us at once.
    let shutdown = shutdown_signal();
    // The hints below reach the same database only with the same settings.
    let same_database = if config.database_url.is_empty() {
        ""
    } else {
        "\n  (run it with this server's database_url: the same HERALD_DATABASE_URL or config file)"
    };
    let server = Server::build(config).await?;
    let addr = server.local_addr()?;
    let base = format!("http://{addr}");
    match &server.bootstrapped {
        Some(b) => {
            // Printed to stdout once, never logged: the only copy of the key.
            println!(
                "Herald first start: created organization `default` ({}) and project `default` ({}).",
                b.organization.id, b.project.id
            );
            println!("Admin API key for project `default` (shown once, store it now):\n\n    {}\n", b.key_value);
            println!("Try it:  curl -H 'X-API-Key: {}' {base}/api/v1/users", b.key_value);
            println!(
                "More keys (e.g. an organization-level one): {} keys create --scopes admin{same_database}",
                self_command()
            );
        }
        None => println!("Need an admin key? Run: {} keys create --scopes admin{same_database}", self_command()),
    }
    tracing::info!(%addr, backend = server.state.store.backend_name(), "Herald listening");
    println!("Herald listening on {base}");
    if server.state.sender.guard().is_production() {
        // Beside the server, not before it: the check looks host names up.
        let (store, sender) = (server.state.store.clone(), server.state.sender.clone());
        tokio::spawn(async move { warn_refused_endpoints(&store, sender.guard()).await });
    }
    server.run(shutdown).await
}

/// Says at start which saved endpoints the production profile will refuse to send to (saved
/// in the development profile with `http://` or an internal target): their deliveries fail,
/// each attempt recording why, until the URL or `webhooks.allow_networks` is changed. Ids and
/// reasons only: a URL's path or query may carry a token.
async fn warn_refused_endpoints(store: &Store, guard: &crate::webhooks::sender::Guard) {
    match crate::domain::webhooks::refused_endpoints(store, guard).await {
        Ok(refused) if refused.is_empty() => {
            tracing::info!("webhooks: every active endpoint passes the production profile's checks")
        }
        Ok(refused) => {
            for r in &refused {
                tracing::warn!(
                    webhook = %r.webhook_id,
                    project = %r.project_id,
                    reason = %r.reason,
                    "webhook endpoint refused by the production profile: its deliveries fail until its URL changes"
                );
            }
            tracing::warn!(
                count = refused.len(),
                "webhooks: {} active endpoint(s) listed above will be refused by the production profile",
                refused.len()
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "webhooks: cannot check the saved endpoints against the production profile")
        }
    }
}

/// How the person who started this server runs `herald` again, for the hints it prints: the
/// same `cargo run` when started through cargo (the README's way, before anything is
/// installed), `herald` when that is what the `PATH` finds, and the binary's full path
/// otherwise. A hint must work when pasted as printed.
fn self_command() -> String {
    let exe = std::env::current_exe().ok();
    // `cargo run` sets CARGO for the program it runs.
    if std::env::var_os("CARGO").is_some() {
        let release = exe.as_ref().and_then(|e| e.parent()).is_some_and(|dir| dir.ends_with("release"));
        return if release { "cargo run --release --".into() } else { "cargo run --".into() };
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join("herald")).find(|candidate| candidate.is_file())
    });
    match (exe, on_path) {
        (Some(exe), Some(found)) if found.canonicalize().ok() == exe.canonicalize().ok() => "herald".into(),
        (Some(exe), _) => exe.display().to_string(),
        (None, _) => "herald".into(),
    }
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

async fn keys(cmd: KeysCommand, store: &Store) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create(args) => {
            for scope in &args.scopes {
                anyhow::ensure!(
                    auth::SCOPES.contains(&scope.as_str()),
                    "unknown scope `{scope}`; known: {}",
                    auth::SCOPES.join(", ")
                );
            }
            let (org, project) = if args.instance {
                (None, None)
            } else if let Some(project) = &args.project {
                let p = store.get_project(project).await.map_err(|_| anyhow::anyhow!("no project `{project}`"))?;
                (Some(p.organization_id), Some(p.id))
            } else {
                (Some(find_org(store, args.org.as_deref()).await?), None)
            };
            let (key, value) = tenancy::new_api_key(args.name, org, project, args.scopes);
            store.insert_api_key(&cli_events(), &key).await?;
            let reach = match (&key.organization_id, &key.project_id) {
                (None, _) => "instance".to_string(),
                (Some(o), None) => format!("organization {o}"),
                (Some(_), Some(p)) => format!("project {p}"),
            };
            eprintln!("created key {} ({reach}; scopes {}). Shown once:", key.id, key.scopes.0.join(","));
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
                    println!("{:<16}  {:<10}  {:<36}  {:<24}  {}", k.id, state, project, k.scopes.0.join(","), k.name);
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

async fn client_keys(cmd: ClientKeysCommand, store: &Store) -> anyhow::Result<()> {
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

async fn admins(cmd: AdminsCommand, store: &Store) -> anyhow::Result<()> {
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
