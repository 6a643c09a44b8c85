//! `serve`: the server in the foreground, with the first start's key and hints printed.

use crate::{
    app::{Server, shutdown_signal},
    config::Config,
    store::Store,
};

pub(super) async fn serve(config: Config) -> anyhow::Result<()> {
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
