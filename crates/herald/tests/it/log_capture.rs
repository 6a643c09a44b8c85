//! The suite's log and secret ledger: every server the suite starts logs (at `debug`, as an
//! operator chasing a problem would run it; Herald's own code at `trace`) as JSON into one
//! file, and every secret the suite is handed or hands over (API keys, webhook secrets, JWTs,
//! refresh and session tokens, GameTalk secret keys, passwords) is written to a second.
//! `ops::logs_never_contain_a_secret` checks the two against each other during the run, and
//! `scripts/test.sh` again after it, over the logs of every test.
//!
//! Files: `$HERALD_TEST_LOG_DIR` (scripts/test.sh sets it), else `target/tmp/suite-logs`, one
//! pair per test process: `herald-<pid>.log`, `secrets-<pid>.txt`.

use std::{
    collections::HashSet,
    fs::{File, OpenOptions},
    io::Write,
    path::PathBuf,
    sync::{Mutex, OnceLock},
};

use serde_json::Value;
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// JSON fields whose string value is a credential.
const SECRET_FIELDS: &[&str] =
    &["keyValue", "secret", "secretKey", "accessToken", "refreshToken", "token", "password", "previousSecret"];

struct Ledger {
    secrets_file: Mutex<File>,
    seen: Mutex<HashSet<String>>,
    log_path: PathBuf,
}

static LEDGER: OnceLock<Option<Ledger>> = OnceLock::new();

fn dir() -> PathBuf {
    std::env::var_os("HERALD_TEST_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("suite-logs"))
}

/// Installs the suite's subscriber once: warnings to the test's own output (shown when a test
/// fails), everything at debug level to the log file.
pub fn init() {
    LEDGER.get_or_init(|| {
        let dir = dir();
        let pid = std::process::id();
        let log_path = dir.join(format!("herald-{pid}.log"));
        let opened = std::fs::create_dir_all(&dir).and_then(|()| {
            let log = File::create(&log_path)?;
            let secrets = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(dir.join(format!("secrets-{pid}.txt")))?;
            Ok((log, secrets))
        });
        let (log, secrets) = match opened {
            Ok(files) => files,
            Err(e) => panic!("cannot open the suite's log files in {}: {e}", dir.display()),
        };
        let console = tracing_subscriber::fmt::layer().with_test_writer().with_filter(EnvFilter::new("herald=warn"));
        let file = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(Mutex::new(log))
            .with_filter(EnvFilter::new("debug,herald=trace,hyper=info,hyper_util=info,reqwest=info,h2=info"));
        let _ = tracing_subscriber::registry().with(console).with(file).try_init();
        Some(Ledger { secrets_file: Mutex::new(secrets), seen: Mutex::default(), log_path })
    });
}

fn ledger() -> Option<&'static Ledger> {
    LEDGER.get().and_then(Option::as_ref)
}

/// Notes a secret the suite handled.
pub fn secret(value: &str) {
    // Short values (a test's `"x"`) would match by chance.
    let Some(ledger) = ledger() else { return };
    if value.len() < 12 {
        return;
    }
    let mut seen = ledger.seen.lock().unwrap_or_else(|p| p.into_inner());
    if seen.insert(value.to_owned()) {
        let mut file = ledger.secrets_file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(file, "{value}");
    }
}

/// Notes every secret in a request or response body: credential fields, and values shaped
/// like Herald keys (`hk_`), webhook secrets (`whsec_`) or JWTs, wherever they sit.
pub fn secrets_in(body: &Value) {
    match body {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if SECRET_FIELDS.contains(&k.as_str()) => secret(s),
                    other => secrets_in(other),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(secrets_in),
        Value::String(s) if s.starts_with("hk_") || s.starts_with("whsec_") || looks_like_jwt(s) => secret(s),
        _ => {}
    }
}

fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.split('.').count() == 3
}

/// Secrets noted so far that appear in the log file so far, masked.
pub fn leaked() -> Vec<String> {
    let Some(ledger) = ledger() else { return Vec::new() };
    let log = std::fs::read_to_string(&ledger.log_path).unwrap_or_default();
    let seen = ledger.seen.lock().unwrap_or_else(|p| p.into_inner());
    seen.iter()
        .filter(|s| log.contains(s.as_str()))
        .map(|s| format!("{}...", s.chars().take(8).collect::<String>()))
        .collect()
}

/// Lines of the log file so far that contain every one of `texts`.
pub fn lines_with(texts: &[&str]) -> Vec<String> {
    let log = ledger().and_then(|l| std::fs::read_to_string(&l.log_path).ok()).unwrap_or_default();
    log.lines().filter(|l| texts.iter().all(|t| l.contains(t))).map(str::to_owned).collect()
}
