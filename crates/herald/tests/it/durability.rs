//! What an acknowledged write means on SQLite (`database.sqlite_synchronous`, OPERATIONS.md):
//! by default a commit is flushed to disk before Herald answers.

use herald::{
    config::SqliteSynchronous,
    store::{Backend, Store},
};

use crate::common::{Backend as TestBackend, test_config};

/// SQLite's `PRAGMA synchronous` on the write connection of a store opened with `setting`
/// (0 OFF, 1 NORMAL, 2 FULL).
async fn synchronous_of(setting: Option<SqliteSynchronous>) -> i64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(TestBackend::Sqlite, dir.path()).await.expect("sqlite config");
    if let Some(setting) = setting {
        config.database.sqlite_synchronous = setting;
    }
    let store = Store::connect(&config).await.expect("connect");
    let Backend::Sqlite { write, .. } = store.backend() else { panic!("not SQLite") };
    let level = sqlx::query_scalar::<_, i64>("PRAGMA synchronous").fetch_one(write).await.expect("pragma");
    store.close().await;
    level
}

#[tokio::test]
async fn sqlite_flushes_every_commit_by_default() {
    assert_eq!(synchronous_of(None).await, 2, "synchronous = FULL");
}

#[tokio::test]
async fn sqlite_synchronous_normal_is_an_opt_in() {
    assert_eq!(synchronous_of(Some(SqliteSynchronous::Normal)).await, 1, "synchronous = NORMAL");
    assert_eq!(synchronous_of(Some(SqliteSynchronous::Full)).await, 2);
}
