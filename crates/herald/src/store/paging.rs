//! Pages of list answers: one statement for the page and its total.

use super::{StoreResult, query_builder};

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

/// Fetches one page of `R`s: `SELECT *, COUNT(*) OVER () AS total_count <from_where> ORDER BY
/// <order> LIMIT .. OFFSET ..`, so one statement answers both the page and the paging info.
/// `from_where` pushes the `FROM .. WHERE ..` part, text and bound values, onto the builder it
/// is given; it runs a second time, after `SELECT COUNT(*)`, only for a page past the last one,
/// where the window count has no row to ride on. Called inside [`with_pool!`](super::with_pool),
/// so `from_where` is written once and checked for each backend. `order` is SQL text, so a
/// constant, never input.
pub(crate) async fn fetch_page<DB, R>(
    pool: &sqlx::Pool<DB>,
    order: &'static str,
    page: PageRequest,
    from_where: impl Fn(&mut sqlx::QueryBuilder<DB>),
) -> StoreResult<Page<R>>
where
    DB: sqlx::Database,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
    Counted<R>: for<'r> sqlx::FromRow<'r, DB::Row> + Send + Unpin,
{
    let mut q = query_builder(pool, "SELECT *, COUNT(*) OVER () AS total_count ");
    from_where(&mut q);
    q.push(" ORDER BY ").push(order);
    q.push(" LIMIT ").push_bind(i64::from(page.limit)).push(" OFFSET ").push_bind(page.offset());
    let rows = q.build_query_as::<Counted<R>>().fetch_all(pool).await?;
    let total = match rows.first() {
        Some(first) => first.total_count,
        None if page.offset() == 0 => 0,
        None => {
            let mut count = query_builder(pool, "SELECT COUNT(*) ");
            from_where(&mut count);
            count.build_query_scalar::<i64>().fetch_one(pool).await?
        }
    };
    Ok(Page { items: rows.into_iter().map(|r| r.row).collect(), total })
}
