use tokio::sync::oneshot;

use super::{
    params::{max_param, params_in_order, renumber},
    writer::{Job, Part, join, merged, merged_postgres},
    *,
};

#[test]
fn renumbering_shifts_every_parameter() {
    let mut out = String::new();
    renumber("INSERT INTO t (a, b) VALUES ($1, $2) -- $10", 12, &mut out);
    assert_eq!(out, "INSERT INTO t (a, b) VALUES ($13, $14) -- $22");
    assert_eq!(max_param("VALUES ($1, $12, $3)"), 12);
}

#[test]
fn same_shaped_scripts_merge_into_multi_row_inserts() {
    let script = |a: i32, b: i32| {
        let mut s = Script::default();
        s.push("INSERT INTO t (x) VALUES ($1)", vec![a.into()]);
        s.push("INSERT INTO u (y, z) VALUES ($1, lower($2))", vec![b.into(), b.into()]);
        Job { script: s, reply: oneshot::channel().0 }
    };
    let (sql, _, args) = merged(&[script(1, 2), script(3, 4)]).expect("mergeable");
    assert_eq!(
        sql,
        "BEGIN IMMEDIATE;\nINSERT INTO t (x) VALUES (?), (?);\n\
         INSERT INTO u (y, z) VALUES (?, lower(?)), (?, lower(?));\nCOMMIT"
    );
    let ints: Vec<i32> = args.iter().map(|a| if let Arg::I32(Some(v)) = a { *v } else { -1 }).collect();
    assert_eq!(ints, vec![1, 3, 2, 2, 4, 4]);
    let mut other = Script::default();
    other.push("INSERT INTO t (x) VALUES ($1)", vec![5i32.into()]);
    assert!(merged(&[script(1, 2), Job { script: other, reply: oneshot::channel().0 }]).is_none());
    assert!(!params_in_order("($2, $1)", 2) && params_in_order("($1, $2)", 2));
}

#[test]
fn scripts_of_another_shape_run_beside_the_merged_ones() {
    let publish = |n: i32| {
        let mut s = Script::default();
        s.push("INSERT INTO t (x) VALUES ($1)", vec![n.into()]);
        Job { script: s, reply: oneshot::channel().0 }
    };
    let mut fan_out = Script::default();
    fan_out.push("INSERT INTO d (a) VALUES ($1), ($2)", vec![7i32.into(), 8i32.into()]);
    fan_out.push("UPDATE c SET seq = MAX(seq, $1)", vec![9i32.into()]);
    let fan_out = Job { script: fan_out, reply: oneshot::channel().0 };
    let (sql, parts, args) = merged(&[publish(1), fan_out, publish(2)]).expect("the publishes merge");
    assert_eq!(
        sql,
        "BEGIN IMMEDIATE;\nINSERT INTO t (x) VALUES (?), (?);\nINSERT INTO d (a) VALUES (?), (?);\n\
         UPDATE c SET seq = MAX(seq, ?);\nCOMMIT"
    );
    assert_eq!(parts.len(), 5, "a part per statement, BEGIN and COMMIT included");
    let ints: Vec<i32> = args.iter().map(|a| if let Arg::I32(Some(v)) = a { *v } else { -1 }).collect();
    assert_eq!(ints, vec![1, 2, 7, 8, 9]);
}

#[test]
fn joined_scripts_run_in_one_transaction() {
    let mut a = Script::default();
    a.push("INSERT INTO t VALUES ($1)", vec![1i32.into()]);
    let mut b = Script::default();
    b.push("INSERT INTO t VALUES ($1, $2)", vec![2i32.into(), 3i32.into()]);
    let jobs: Vec<Job> = [a, b].into_iter().map(|script| Job { script, reply: oneshot::channel().0 }).collect();
    let (sql, parts, args) = join(&jobs);
    assert_eq!(sql, "BEGIN IMMEDIATE;\nINSERT INTO t VALUES (?);\nINSERT INTO t VALUES (?, ?);\nCOMMIT");
    assert_eq!(args.len(), 3);
    let owners: Vec<_> = parts.iter().map(|p| if let Part::Job(k) = p { *k as i32 } else { -1 }).collect();
    assert_eq!(owners, vec![-1, 0, 1, -1]);
}

#[test]
fn same_shaped_scripts_merge_into_one_numbered_statement_on_postgres() {
    let script = |a: i32, b: i32, tail: &'static str| {
        let mut s = Script::default();
        s.push("INSERT INTO t (x) VALUES ($1)", vec![a.into()]);
        s.push(format!("INSERT INTO u (y, z) VALUES ($1, lower($2)){tail}"), vec![b.into(), b.into()]);
        Job { script: s, reply: oneshot::channel().0 }
    };
    let ints =
        |args: &[Arg]| -> Vec<i32> { args.iter().map(|a| if let Arg::I32(Some(v)) = a { *v } else { -1 }).collect() };
    let (sql, args) = merged_postgres(&[script(1, 2, ""), script(3, 4, "")]).expect("mergeable");
    assert_eq!(
        sql,
        "WITH s0 AS (INSERT INTO t (x) VALUES ($1), ($2)) \
         INSERT INTO u (y, z) VALUES ($3, lower($4)), ($5, lower($6))"
    );
    assert_eq!(ints(&args), [1, 3, 2, 2, 4, 4]);

    // Rows to return from an insert that is not the last: every insert is a WITH query.
    let (sql, _) =
        merged_postgres(&[script(1, 2, " RETURNING id, seq"), script(3, 4, " RETURNING id, seq")]).expect("mergeable");
    assert_eq!(
        sql,
        "WITH s0 AS (INSERT INTO t (x) VALUES ($1), ($2)), \
         s1 AS (INSERT INTO u (y, z) VALUES ($3, lower($4)), ($5, lower($6)) RETURNING id, seq) SELECT * FROM s1"
    );

    // One position: the multi-row insert alone.
    let mut one = Script::default();
    one.push("INSERT INTO t (x) VALUES ($1) RETURNING id, seq", vec![7i32.into()]);
    let (sql, args) = merged_postgres(&[Job { script: one, reply: oneshot::channel().0 }]).expect("mergeable");
    assert_eq!(sql, "INSERT INTO t (x) VALUES ($1) RETURNING id, seq");
    assert_eq!(ints(&args), [7]);

    // Different columns returned by two inserts cannot come back as one set of rows.
    let mut two = Script::default();
    two.push("INSERT INTO t (x) VALUES ($1) RETURNING id", vec![1i32.into()]);
    two.push("INSERT INTO u (y) VALUES ($1) RETURNING id, seq", vec![2i32.into()]);
    assert!(merged_postgres(&[Job { script: two, reply: oneshot::channel().0 }]).is_none());
}

/// Every request of a batch that met a full disk is told the database is out of storage (its
/// message, its `Retry-After`), not only the one whose write met it: the others get a copy of
/// the error, which must keep that kind.
#[tokio::test]
async fn a_copied_out_of_storage_error_is_still_out_of_storage() {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await.expect("open");
    for sql in ["CREATE TABLE t (x BLOB)", "PRAGMA max_page_count = 4"] {
        sqlx::query(sql).execute(&mut conn).await.expect(sql);
    }
    let full = sqlx::query("INSERT INTO t VALUES (zeroblob(100000))")
        .execute(&mut conn)
        .await
        .expect_err("four pages cannot hold 100 kB");
    assert!(crate::store::out_of_resources(&full), "{full}");
    let copy = crate::store::copy_batch_error(&full, "the batched write failed");
    assert!(crate::store::out_of_resources(&copy) && crate::store::is_unavailable(&copy), "{copy}");
    let broken = crate::store::copy_batch_error(&sqlx::Error::Protocol("bad".into()), "the batched write failed");
    assert!(!crate::store::is_unavailable(&broken), "a job's own error is not the database's: {broken}");
}
