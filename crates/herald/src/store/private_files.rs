//! The embedded database's files are private to the user running Herald.
//!
//! The SQLite file holds the JWT signing secret, webhook secrets and GameTalk secret keys, so
//! Herald creates its directory `0700` and the file `0600` (SQLite gives the `-wal` and `-shm`
//! files it creates later the database file's mode). Existing files are not changed behind the
//! operator's back: a directory or file that other users can read gets a warning at start that
//! says how to fix it.

use std::path::Path;

/// Creates the database's directory and file with private modes if they do not exist yet,
/// and warns about existing ones that other users can read.
pub(super) fn prepare(db_file: &Path) -> std::io::Result<()> {
    let dir = db_file.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        if dir.exists() {
            warn_if_shared(dir, "data directory", "700");
        } else {
            create_private_dir(dir)?;
        }
    }
    if db_file.exists() {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db_file.as_os_str().to_owned();
            name.push(suffix);
            let path = Path::new(&name);
            if path.exists() {
                warn_if_shared(path, "database file", "600");
            }
        }
    } else if !is_in_memory(db_file) {
        create_private_file(db_file)?;
    }
    Ok(())
}

/// `sqlite::memory:` and `sqlite://:memory:` name no file.
fn is_in_memory(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.is_empty() || p.contains(":memory:"))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(unix)]
fn create_private_file(file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // An empty file is a valid, empty SQLite database: sqlx opens it and the migrations fill it.
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, what: &str, private_mode: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "the {what} is readable by other users and holds secrets (signing keys, webhook secrets): \
                 run `chmod {private_mode} {}`",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(not(unix))]
fn create_private_file(_file: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path, _what: &str, _private_mode: &str) {}
