//! Pages of list answers, and the `WHERE` filters of list queries.

use chrono::{DateTime, Utc};

/// Page request: `page` counts from 1.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub page: u32,
    pub limit: u32,
}

impl PageRequest {
    pub fn offset(&self) -> i64 {
        i64::from(self.page.saturating_sub(1)) * i64::from(self.limit)
    }
}

#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// A row plus the `COUNT(*) OVER ()` total of its query, so one statement answers both the
/// page and the paging info.
#[derive(sqlx::FromRow)]
pub(crate) struct Counted<T> {
    #[sqlx(flatten)]
    pub row: T,
    pub total_count: i64,
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern, lower-cased, wrapped in `%`.
pub(crate) fn contains_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Fetches one page of `$row`s: `SELECT * $from_where ORDER BY $order LIMIT .. OFFSET ..`
/// with `$binds` (text, or [`Bind`]s) as `$1..$n`. Limit and offset are integers Herald
/// computed, never input.
macro_rules! fetch_page {
    ($store:expr, $row:ty, $from_where:expr, $order:expr, $binds:expr, $page:expr) => {{
        let from_where: String = $from_where;
        let binds: Vec<$crate::store::Bind> = $binds.into_iter().map(Into::into).collect();
        let page: $crate::store::PageRequest = $page;
        let sql = format!(
            "SELECT *, COUNT(*) OVER () AS total_count {from_where} ORDER BY {} LIMIT {} OFFSET {}",
            $order,
            page.limit,
            page.offset()
        );
        let count_sql = format!("SELECT COUNT(*) {from_where}");
        $crate::store::with_pool!($store, read, |pool| {
            let mut query = sqlx::query_as::<_, $crate::store::Counted<$row>>(sqlx::AssertSqlSafe(sql));
            for b in &binds {
                query = match b {
                    $crate::store::Bind::Text(t) => query.bind(t.clone()),
                    $crate::store::Bind::Time(t) => query.bind(*t),
                };
            }
            let rows = query.fetch_all(pool).await?;
            let total = match rows.first() {
                Some(first) => first.total_count,
                None if page.offset() == 0 => 0,
                // Past the last page: the window count has no row to ride on.
                None => {
                    let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
                    for b in &binds {
                        count = match b {
                            $crate::store::Bind::Text(t) => count.bind(t.clone()),
                            $crate::store::Bind::Time(t) => count.bind(*t),
                        };
                    }
                    count.fetch_one(pool).await?
                }
            };
            Ok($crate::store::Page { items: rows.into_iter().map(|r| r.row).collect(), total })
        })
    }};
}
pub(crate) use fetch_page;

/// A parameter of a [`Filter`]: text, or a time (bound as a time, so it compares with time
/// columns on PostgreSQL, and in the same text form as stored ones on SQLite).
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Time(DateTime<Utc>),
}

impl From<&str> for Bind {
    fn from(s: &str) -> Bind {
        Bind::Text(s.to_owned())
    }
}

impl From<String> for Bind {
    fn from(s: String) -> Bind {
        Bind::Text(s)
    }
}

impl From<DateTime<Utc>> for Bind {
    fn from(t: DateTime<Utc>) -> Bind {
        Bind::Time(t)
    }
}

/// Builds a `WHERE` clause with numbered parameters, shared by the list queries.
#[derive(Default)]
pub(crate) struct Filter {
    clauses: Vec<String>,
    pub binds: Vec<Bind>,
}

impl Filter {
    /// Adds `clause`, where `?` stands for the next parameter (each `?` binds `value` again).
    pub fn push(&mut self, clause: &str, value: impl Into<Bind>) {
        let value = value.into();
        let mut out = String::new();
        for (i, part) in clause.split('?').enumerate() {
            if i > 0 {
                self.binds.push(value.clone());
                out.push_str(&format!("${}", self.binds.len()));
            }
            out.push_str(part);
        }
        self.clauses.push(out);
    }

    /// Adds a condition that takes no parameter.
    pub fn raw(&mut self, clause: &str) {
        self.clauses.push(clause.to_owned());
    }

    /// The conditions joined with `AND` (`1 = 1` when there are none).
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            return "1 = 1".into();
        }
        self.clauses.join(" AND ")
    }
}
