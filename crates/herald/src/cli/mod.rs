//! The `herald` command line: run the server, migrate, and manage keys and admin accounts
//! straight in the database (for first set-up and recovery, when no key is at hand); and the
//! operator commands that talk to a running server ([`remote`]).

mod credentials;
mod remote;
mod serve;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use self::{
    credentials::{AdminsCommand, ClientKeysCommand, KeysCommand, admins, client_keys, keys},
    serve::serve,
};
use crate::{
    app::interrupted,
    config::{Config, LogFormat},
    store::{Store, StoreError},
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
