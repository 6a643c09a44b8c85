//! The SQLite and PostgreSQL schemas agree after migration: the same tables, the same columns
//! (names and nullability), the same indexes by name (and uniqueness). The migrations are
//! written twice (`migrations/{sqlite,postgres}`); a column or index added to one backend
//! only would otherwise be found by whichever query first needs it there.

use std::collections::BTreeSet;

use herald::store::Store;
use sqlx::{Connection, Row};

use crate::common::{Backend, test_config};

/// Tables one backend has on purpose and the other has not.
const ONLY_SQLITE: &[&str] = &[
    // SQLite's one writer commits events in `seq` order, so fan-out keeps a high-water mark
    // (migrations/sqlite/0003_fanout_cursor.sql).
    "fanout_cursor",
];
const ONLY_POSTGRES: &[&str] = &[
    // PostgreSQL commits events out of `seq` order, so a trigger on `events` fills a small
    // queue that fan-out deletes from (migrations/postgres/0003_outbox_queue.sql).
    "outbox_pending",
];

/// Columns (table, column) one backend has on purpose and the other has not.
const COLUMNS_ONLY_SQLITE: &[(&str, &str)] = &[
    // Left over: the per-event fan-out flag that 0003 replaced on both backends. PostgreSQL
    // dropped it; on SQLite it stayed (NOT NULL DEFAULT FALSE, read and written by nothing,
    // and `migrate-data` copies the columns PostgreSQL has). Dropping it would rewrite the
    // whole `events` table, the largest one, in a migration.
    ("events", "fanned_out"),
];
const COLUMNS_ONLY_POSTGRES: &[(&str, &str)] = &[
    // The writing transaction's id: the realtime feed reads only windows of transactions that
    // have all ended (`pg_snapshot_xmin`), as PostgreSQL takes `seq` at insert, not at commit.
    // SQLite's one writer commits in `seq` order (migrations/postgres/0005_realtime.sql).
    ("events", "xid"),
];
/// Indexes (table, index) one backend has on purpose and the other has not.
const INDEXES_ONLY_POSTGRES: &[(&str, &str)] = &[
    // The feed's lookup by `xid` (above).
    ("events", "events_xid"),
];

/// (table, column, nullable) / (table, index, unique), sorted, for one backend.
#[derive(Debug, Default)]
struct Schema {
    tables: BTreeSet<String>,
    columns: BTreeSet<(String, String, bool)>,
    indexes: BTreeSet<(String, String, bool)>,
}

impl Schema {
    /// This schema less what only it has on purpose; fails if an exception is gone.
    fn without(mut self, tables: &[&str], columns: &[(&str, &str)], indexes: &[(&str, &str)]) -> Schema {
        for table in tables {
            assert!(self.tables.contains(*table), "the exception `{table}` no longer exists: drop it from the list");
        }
        let listed = |list: &[(&str, &str)], t: &str, n: &str| list.iter().any(|(lt, ln)| *lt == t && *ln == n);
        for (what, list, names) in [
            ("column", columns, self.columns.iter().map(|(t, c, _)| (t, c)).collect::<Vec<_>>()),
            ("index", indexes, self.indexes.iter().map(|(t, i, _)| (t, i)).collect::<Vec<_>>()),
        ] {
            for (t, n) in list {
                assert!(
                    names.iter().any(|(nt, nn)| nt == t && nn == n),
                    "the exception {what} `{t}.{n}` no longer exists: drop it from the list"
                );
            }
        }
        let keep = |t: &String| !tables.contains(&t.as_str());
        self.tables.retain(keep);
        self.columns.retain(|(t, c, _)| keep(t) && !listed(columns, t, c));
        self.indexes.retain(|(t, i, _)| keep(t) && !listed(indexes, t, i));
        self
    }
}

async fn migrated(backend: Backend, dir: &std::path::Path) -> Option<String> {
    let config = test_config(backend, dir).await?;
    let store = Store::connect(&config).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.close().await;
    Some(config.effective_database_url())
}

async fn sqlite_schema(url: &str) -> Schema {
    let mut conn = sqlx::SqliteConnection::connect(url).await.expect("open sqlite");
    let tables = "SELECT name FROM sqlite_master WHERE type = 'table' \
                  AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'";
    let mut schema = Schema::default();
    for row in sqlx::query(tables).fetch_all(&mut conn).await.expect("tables") {
        schema.tables.insert(row.get("name"));
    }
    // A PRIMARY KEY column without NOT NULL may hold NULL in SQLite (a legacy quirk; an
    // INTEGER PRIMARY KEY cannot), never in PostgreSQL; Herald never writes one, so a key
    // column counts as NOT NULL here.
    let columns = format!(
        "SELECT m.name AS t, p.name AS c, p.\"notnull\" AS nn, p.pk AS pk \
         FROM ({tables}) m, pragma_table_info(m.name) p"
    );
    for row in sqlx::query(sqlx::AssertSqlSafe(columns)).fetch_all(&mut conn).await.expect("columns") {
        let not_null = row.get::<i64, _>("nn") != 0 || row.get::<i64, _>("pk") != 0;
        schema.columns.insert((row.get("t"), row.get("c"), !not_null));
    }
    // Indexes made by CREATE INDEX (origin `c`): those backing a PRIMARY KEY or UNIQUE
    // constraint are named by each database itself (`sqlite_autoindex_*`, `*_pkey`).
    let indexes = format!(
        "SELECT m.name AS t, i.name AS i, i.\"unique\" AS u \
         FROM ({tables}) m, pragma_index_list(m.name) i WHERE i.origin = 'c'"
    );
    for row in sqlx::query(sqlx::AssertSqlSafe(indexes)).fetch_all(&mut conn).await.expect("indexes") {
        schema.indexes.insert((row.get("t"), row.get("i"), row.get::<i64, _>("u") != 0));
    }
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect postgres");
    let mut schema = Schema::default();
    let tables = "SELECT table_name::text AS t FROM information_schema.tables \
                  WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_sqlx%'";
    for row in sqlx::query(tables).fetch_all(&mut conn).await.expect("tables") {
        schema.tables.insert(row.get("t"));
    }
    let columns = "SELECT table_name::text AS t, column_name::text AS c, is_nullable = 'YES' AS n \
                   FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'";
    for row in sqlx::query(columns).fetch_all(&mut conn).await.expect("columns") {
        schema.columns.insert((row.get("t"), row.get("c"), row.get("n")));
    }
    // Indexes not backing a constraint (see the SQLite side).
    let indexes = "SELECT t.relname::text AS t, i.relname::text AS i, x.indisunique AS u \
                   FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
                   JOIN pg_namespace n ON n.oid = t.relnamespace \
                   WHERE n.nspname = 'public' AND t.relname NOT LIKE '\\_sqlx%' \
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)";
    for row in sqlx::query(indexes).fetch_all(&mut conn).await.expect("indexes") {
        schema.indexes.insert((row.get("t"), row.get("i"), row.get("u")));
    }
    schema
}

/// What `a` has and `b` has not, one per line.
fn missing<T: Ord + std::fmt::Debug>(a: &BTreeSet<T>, b: &BTreeSet<T>, what: &str) -> Vec<String> {
    a.difference(b).map(|x| format!("{what}: {x:?}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_schemas_agree_after_migration() {
    let dir = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .expect("tempdir");
    let Some(pg_url) = migrated(Backend::Postgres, dir.path()).await else {
        eprintln!("skipped: HERALD_TEST_SKIP_PG=1");
        return;
    };
    let sqlite_url = migrated(Backend::Sqlite, dir.path()).await.expect("sqlite");
    let sqlite = sqlite_schema(&sqlite_url).await;
    let postgres = postgres_schema(&pg_url).await;
    assert!(sqlite.tables.len() > 10 && sqlite.indexes.len() > 5, "read the schema: {sqlite:?}");
    let sqlite = sqlite.without(ONLY_SQLITE, COLUMNS_ONLY_SQLITE, &[]);
    let postgres = postgres.without(ONLY_POSTGRES, COLUMNS_ONLY_POSTGRES, INDEXES_ONLY_POSTGRES);
    let mut differences = Vec::new();
    for (a, b, side) in [(&sqlite, &postgres, "only on SQLite"), (&postgres, &sqlite, "only on PostgreSQL")] {
        differences.extend(missing(&a.tables, &b.tables, &format!("table {side}")));
        differences.extend(missing(&a.columns, &b.columns, &format!("(table, column, nullable) {side}")));
        differences.extend(missing(&a.indexes, &b.indexes, &format!("(table, index, unique) {side}")));
    }
    assert!(differences.is_empty(), "the schemas differ:\n{}", differences.join("\n"));
}
