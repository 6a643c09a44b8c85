//! `herald users import`: players from a CSV file.

use std::{io::IsTerminal, path::PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Map, Value};

use super::{Remote, output::out};

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create players from a CSV file with a header row: `username` (required), `id`,
    /// `email`, `displayName`, `avatarUrl`, `role`, `status`, `metadata` (JSON).
    Import {
        file: PathBuf,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Check the file only; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The CSV columns `users import` reads, and the API field each becomes.
const USER_COLUMNS: &[(&str, &str)] = &[
    ("id", "id"),
    ("username", "username"),
    ("email", "email"),
    ("displayname", "displayName"),
    ("display_name", "displayName"),
    ("avatarurl", "avatarUrl"),
    ("avatar_url", "avatarUrl"),
    ("role", "role"),
    ("status", "status"),
    ("metadata", "metadata"),
];

/// Reads the file into request bodies, each with its line number. Fails on the first
/// problem with the file itself (unknown column, bad metadata JSON, missing username).
fn read_users(file: &std::path::Path) -> anyhow::Result<Vec<(u64, Value)>> {
    let mut reader = csv::Reader::from_path(file).with_context(|| format!("cannot read {}", file.display()))?;
    let headers = reader.headers()?.clone();
    let mut fields = Vec::new();
    for h in &headers {
        let field = USER_COLUMNS.iter().find(|(col, _)| col.eq_ignore_ascii_case(h.trim())).map(|(_, f)| *f);
        let Some(field) = field else {
            bail!(
                "unknown column `{h}`; the columns are id, username, email, displayName, avatarUrl, role, status, metadata"
            );
        };
        fields.push(field);
    }
    if !fields.contains(&"username") {
        bail!("the file has no `username` column");
    }
    let mut users = Vec::new();
    for record in reader.records() {
        let record = record?;
        let line = record.position().map_or(0, |p| p.line());
        let mut user = Map::new();
        for (field, value) in fields.iter().zip(record.iter()) {
            if value.is_empty() {
                continue;
            }
            let value = if *field == "metadata" {
                serde_json::from_str(value).with_context(|| format!("line {line}: metadata is not JSON"))?
            } else {
                Value::String(value.to_owned())
            };
            user.insert((*field).to_owned(), value);
        }
        if !user.contains_key("username") {
            bail!("line {line}: username is empty");
        }
        users.push((line, Value::Object(user)));
    }
    Ok(users)
}

/// Summary of an import.
pub struct Imported {
    pub created: usize,
    pub failed: usize,
}

pub async fn import_users(
    remote: Option<&Remote>,
    file: &std::path::Path,
    concurrency: usize,
) -> anyhow::Result<Imported> {
    let users = read_users(file)?;
    let Some(remote) = remote else {
        out(&format!("{}: {} players, the file is well-formed (dry run: nothing sent)", file.display(), users.len()))?;
        return Ok(Imported { created: 0, failed: 0 });
    };
    let bar = indicatif::ProgressBar::new(users.len() as u64);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} players ({per_sec}, {eta} left)")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut results = futures_util::stream::iter(users)
        .map(|(line, user)| async move { (line, remote.call(Method::POST, "/api/v1/users", Some(&user)).await) })
        .buffer_unordered(concurrency.clamp(1, 64));
    let (mut created, mut failed) = (0, 0);
    while let Some((line, result)) = results.next().await {
        bar.inc(1);
        match result {
            Ok(_) => created += 1,
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("line {line}: {e}"));
            }
        }
    }
    bar.finish_and_clear();
    out(&format!("created {created}, failed {failed}"))?;
    Ok(Imported { created, failed })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn csv_rows_become_request_bodies() {
        let dir = std::env::temp_dir().join(format!("herald-import-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("players.csv");
        std::fs::write(
            &file,
            "username,Display_Name,metadata,email\nann,Ann,\"{\"\"level\"\": 3}\",\nbob,,,bob@example.com\n",
        )
        .expect("write");
        let users = read_users(&file).expect("read");
        assert_eq!(users[0], (2, json!({"username": "ann", "displayName": "Ann", "metadata": {"level": 3}})));
        assert_eq!(users[1], (3, json!({"username": "bob", "email": "bob@example.com"})));
        std::fs::write(&file, "username,nickname\nann,a\n").expect("write");
        let err = read_users(&file).expect_err("unknown column").to_string();
        assert!(err.contains("unknown column `nickname`"), "{err}");
        std::fs::write(&file, "username,metadata\nann,{oops\n").expect("write");
        assert!(read_users(&file).expect_err("bad JSON").to_string().contains("line 2"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
